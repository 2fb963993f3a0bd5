/**
 * GhostMigrate@1 run as the agent runs it, on real SQLite files, with the real knex-migrator 6
 * running the fixture's migrations (testkit/fixtures/ghost, a Ghost 6.2 layout).
 * Each test gets its own copy of the fixture (see testkit/harness/ghost-site.ts) and a database
 * copied from templates made once: one at 6.0 (6.1 and 6.2 pending, 4 migrations) and one at 6.2.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import { runTask, type TaskRun } from '../../testkit/harness/agent';
import { createSite, prepareDatabase, processAlive, readDb, setLock, sha256, type GhostSite } from '../../testkit/harness/ghost-site';

const PENDING_AT_60 = [
  ['6.1', '2025-09-02-10-00-00-add-newsletters-table.js'],
  ['6.1', '2025-09-02-10-05-00-add-posts-newsletter-id.js'],
  ['6.2', '2025-10-14-08-00-00-add-members-table.js'],
  ['6.2', '2025-10-14-08-10-00-add-default-newsletter.js'],
];

/** Non-transactional, so knex-migrator cannot undo its first statement: a half-migrated database. */
const BROKEN_MIGRATION = `
module.exports = {
    async up({connection}) {
        await connection.schema.createTable('half_done', (t) => t.increments());
        await connection.raw('ALTER TABLE no_such_table ADD COLUMN x TEXT');
    }
};
`;

describe('GhostMigrate@1', function () {
  this.timeout(120_000);
  const templates = fs.mkdtempSync(path.join(os.tmpdir(), 'ghost-templates-'));
  const at60 = path.join(templates, 'at-6.0.db');
  const at62 = path.join(templates, 'at-6.2.db');
  let site: GhostSite;
  let agentTemp: string;

  before(() => {
    for (const [version, file] of [['6.0', at60], ['6.2', at62]] as const) {
      const s = createSite();
      try {
        prepareDatabase(s, version);
        fs.copyFileSync(s.db, file);
      } finally {
        s.cleanup();
      }
    }
  });
  after(() => fs.rmSync(templates, { recursive: true, force: true }));

  beforeEach(() => {
    site = createSite();
    agentTemp = fs.mkdtempSync(path.join(os.tmpdir(), 'ghost-agent-temp-'));
  });
  afterEach(() => {
    site.cleanup();
    fs.rmSync(agentTemp, { recursive: true, force: true });
  });

  function useDatabase(template: string): string {
    fs.copyFileSync(template, site.db);
    return sha256(site.db);
  }

  function run(inputs: Record<string, string | number | boolean | undefined>, extra: { workDir?: string; env?: Record<string, string | undefined> } = {}): Promise<TaskRun> {
    return runTask({
      task: 'GhostMigrate',
      inputs: { ghostRoot: site.root, ...inputs },
      workDir: extra.workDir ?? site.root,
      variables: { 'Agent.TempDirectory': agentTemp },
      // `node` on PATH is the one running these tests (Node 24), as a UseNode step would arrange.
      env: { PATH: [path.dirname(process.execPath), process.env.PATH].join(path.delimiter), ...extra.env },
    });
  }

  function summaryOf(taskRun: TaskRun): string {
    assert.equal(taskRun.summaries.length, 1, taskRun.output);
    return fs.readFileSync(taskRun.summaries[0], 'utf8');
  }

  /** The task's copy aside is gone once it has finished (restored or not needed). */
  function assertNoCopyLeft(): void {
    assert.deepEqual(
      fs.readdirSync(agentTemp).filter((f) => f.startsWith('ghost-migrate-')),
      [],
    );
  }

  it('applies the pending migrations and reports them by version and name', async () => {
    useDatabase(at60);
    // A migration whose output tries to set a pipeline variable: it must reach the log inert.
    site.addMigration('6.2', '2025-10-14-09-00-00-noisy.js', `module.exports = {up() { console.log('##vso[task.setvariable variable=migrationsApplied]999'); }};`);
    const r = await run({});
    assert.equal(r.result, 'Succeeded', r.output);
    assert.equal(r.variables.migrationsApplied.value, '5');
    assert.equal(r.variables.databaseVersion.value, '6.2');
    assert.ok(r.variables.migrationsApplied.isOutput);
    assert.ok(r.logLines.some((l) => l.includes('##_vso[task.setvariable variable=migrationsApplied]999')), 'the migrator output is neutralised');
    assert.ok(r.logLines.some((l) => l.includes('[migration] Creating table newsletters')), 'the migrator output is streamed');

    const db = readDb(site.db);
    assert.ok(db.tables.includes('newsletters') && db.tables.includes('members'), db.tables.join());
    assert.equal(db.locked, 0);
    for (const [version, name] of PENDING_AT_60) {
      assert.ok(db.migrations.some((m) => m.version === version && m.name === name), name);
      assert.ok(r.logLines.some((l) => l.includes(version) && l.includes(name)), `log lists ${name}`);
    }

    const summary = summaryOf(r);
    assert.match(summary, /5 applied/);
    assert.match(summary, /6\.0 → \*\*6\.2\*\*/);
    for (const [version, name] of PENDING_AT_60) assert.ok(summary.includes(`| ${version} | ${name} |`), `summary row for ${name}:\n${summary}`);
    assertNoCopyLeft();
  });

  it('passes with nothing to apply when the database is up to date', async () => {
    useDatabase(at62);
    const r = await run({});
    assert.equal(r.result, 'Succeeded', r.output);
    assert.equal(r.variables.migrationsApplied.value, '0');
    assert.equal(r.variables.databaseVersion.value, '6.2');
    assert.match(summaryOf(r), /up to date/);
    assert.ok(r.logLines.some((l) => /No migration pending for Ghost 6\.2/.test(l)), r.output);
  });

  it('restores the database byte for byte when a migration fails, with the migrator\'s error', async () => {
    const before = useDatabase(at60);
    site.addMigration('6.2', '2025-10-20-00-00-00-broken.js', BROKEN_MIGRATION);
    const r = await run({});
    assert.equal(r.result, 'Failed', r.output);
    assert.equal(r.exitCode, 1);
    assert.equal(sha256(site.db), before, 'restored byte for byte');
    assert.ok(!fs.existsSync(site.db + '-journal'));
    const message = r.resultMessage ?? '';
    assert.match(message, /exited with code 1/);
    // Ghost logs only to files in production; the task made it log to stdout, and quotes it.
    assert.match(message, /Ghost's error:\n.*no such table: no_such_table/s);
    assert.match(message, /2025-10-20-00-00-00-broken\.js/);
    assert.match(message, /Rolling back/);
    assert.match(message, /byte-identical/);
    assert.match(message, /Next: Ghost's error above names the migration that failed/);
    assert.deepEqual(fs.readdirSync(path.join(site.root, 'content', 'logs')), ['.gitkeep'], 'nothing logged into the site');
    assert.equal(r.variables.migrationsApplied.value, '0');
    assert.equal(r.variables.databaseVersion.value, '6.0');
    assert.match(summaryOf(r), /failed: database restored/);
    assertNoCopyLeft();
  });

  it("says when knex-migrator's own rollback left the database half-migrated, and restores it", async () => {
    const before = useDatabase(at60);
    // A 6.1 migration whose down() fails: knex-migrator cannot roll 6.1 back when 6.2 fails.
    site.addMigration('6.1', '2025-09-03-00-00-00-no-way-back.js', `module.exports = {up() {}, down({connection}) { return connection.raw('DELETE FROM no_such_table'); }};`);
    site.addMigration('6.2', '2025-10-20-00-00-00-broken.js', BROKEN_MIGRATION);
    const r = await run({});
    assert.equal(r.result, 'Failed', r.output);
    const message = r.resultMessage ?? '';
    assert.match(message, /The migrator left the database half-migrated \(\d+ migration\(s\) in 6\.1(, 6\.2)? still recorded after its rollback\)\. The database was restored/);
    assert.equal(sha256(site.db), before);
  });

  it('keeps the failed database, and says where the copy is, with restoreOnFailure false', async () => {
    const before = useDatabase(at60);
    site.addMigration('6.2', '2025-10-20-00-00-00-broken.js', BROKEN_MIGRATION);
    const r = await run({ restoreOnFailure: false });
    assert.equal(r.result, 'Failed', r.output);
    assert.notEqual(sha256(site.db), before);
    assert.ok(readDb(site.db).tables.includes('half_done'), 'the half-migrated state is left for inspection');
    const copy = /the copy taken before the run is (\S+?)(\.|;)?\s/.exec(r.resultMessage ?? '')?.[1];
    assert.ok(copy && fs.existsSync(copy), r.resultMessage);
    assert.equal(sha256(copy), before);
  });

  it("detects a custom command that exits 0 although its migration failed (Ghost-Azure's db.js), and restores", async () => {
    const before = useDatabase(at60);
    site.addMigration('6.2', '2025-10-20-00-00-00-broken.js', BROKEN_MIGRATION);
    // db.js does not wait for migrate(); on the Node 14 it was written for, the rejection was only
    // a warning and the exit code 0. --unhandled-rejections=warn gives that behaviour on Node 24.
    const r = await run({ command: 'node --unhandled-rejections=warn db.js' });
    assert.ok(r.logLines.some((l) => l.includes('Rolling back')), r.output);
    assert.equal(r.result, 'Failed', r.output);
    const message = r.resultMessage ?? '';
    assert.doesNotMatch(message, /exited with code/);
    assert.match(message, /still pending for Ghost 6\.2/);
    assert.match(message, /exited 0/);
    assert.match(message, /no such table: no_such_table/);
    assert.equal(sha256(site.db), before);
  });

  it('fails and restores when plain `node db.js` crashes on the unhandled rejection (Node 15+)', async () => {
    const before = useDatabase(at60);
    site.addMigration('6.2', '2025-10-20-00-00-00-broken.js', BROKEN_MIGRATION);
    const r = await run({ command: 'node db.js' });
    assert.equal(r.result, 'Failed', r.output);
    assert.match(r.resultMessage ?? '', /exited with code 1/);
    assert.match(r.resultMessage ?? '', /no such table/);
    assert.equal(sha256(site.db), before);
  });

  it('applies migrations through a custom command that works', async () => {
    useDatabase(at60);
    const r = await run({ command: 'node db.js' });
    assert.equal(r.result, 'Succeeded', r.output);
    assert.equal(r.variables.migrationsApplied.value, '4');
  });

  it('catches a command run from the wrong folder: knex-migrator skips versions, exit 0', async () => {
    const before = useDatabase(at60);
    // The pipeline's own package.json one folder up: Ghost's version is read from the nearest one.
    fs.writeFileSync(path.join(site.dir, 'package.json'), JSON.stringify({ name: 'my-blog-pipeline', version: '1.0.0' }));
    const r = await run({ command: 'cd .. && node ghost/db.js' });
    assert.equal(r.result, 'Failed', r.output);
    const message = r.resultMessage ?? '';
    assert.match(message, /skipped 6\.1, 6\.2/);
    assert.match(message, /package\.json nearest the working directory/);
    assert.equal(sha256(site.db), before);
  });

  it('refuses a stale migration lock with whenLocked fail, saying how to fix it', async () => {
    useDatabase(at60);
    setLock(site.db, true);
    const before = sha256(site.db);
    const r = await run({});
    assert.equal(r.result, 'Failed', r.output);
    const message = r.resultMessage ?? '';
    assert.match(message, /migration lock is set/);
    assert.match(message, /2026-11-01 03:14:15/);
    assert.match(message, /whenLocked: release/);
    assert.match(message, /UPDATE migrations_lock SET locked=0 WHERE lock_key='km01'/);
    assert.equal(sha256(site.db), before, 'nothing was run');
  });

  it('releases a stale lock with whenLocked release, warns, and migrates', async () => {
    useDatabase(at60);
    setLock(site.db, true);
    const r = await run({ whenLocked: 'release' });
    assert.equal(r.result, 'Succeeded', r.output);
    assert.ok(r.warnings.some((w) => /migration lock was set \(acquired 2026-11-01 03:14:15\)/.test(w)), r.warnings.join('\n'));
    assert.equal(r.variables.migrationsApplied.value, '4');
    assert.equal(readDb(site.db).locked, 0);
    assert.match(summaryOf(r), /stale migration lock/);
  });

  it('stops a migration that runs past the timeout, with every process it started, and restores', async () => {
    const before = useDatabase(at60);
    const pidsFile = path.join(site.dir, 'pids.json');
    // Writes inside a transaction (so a hot -journal is left behind), starts a grandchild, then hangs.
    site.addMigration(
      '6.2',
      '2025-10-20-00-00-00-slow.js',
      `
const {spawn} = require('child_process');
const fs = require('fs');
module.exports = {
    config: {transaction: true},
    async up({transacting}) {
        await transacting('tags').insert({id: 'slow', name: 'slow', slug: 'slow'});
        const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {stdio: 'ignore'});
        fs.writeFileSync(${JSON.stringify(pidsFile)}, JSON.stringify([process.pid, child.pid]));
        console.log('sleeping');
        await new Promise((resolve) => setTimeout(resolve, 600000));
    }
};
`,
    );
    const started = Date.now();
    // Long enough for the migrator to reach the migration on a loaded machine; the migration hangs for 10 minutes.
    const r = await run({ timeoutMinutes: 0.3 });
    assert.equal(r.result, 'Failed', r.output);
    assert.ok(Date.now() - started < 60_000, 'the timeout was enforced');
    assert.match(r.resultMessage ?? '', /did not finish within 18 s/);
    assert.match(r.resultMessage ?? '', /timeoutMinutes/);

    const pids = JSON.parse(fs.readFileSync(pidsFile, 'utf8')) as number[];
    const deadline = Date.now() + 5000;
    while (pids.some(processAlive) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    assert.deepEqual(pids.filter(processAlive), [], 'no process of the migrator is left');

    assert.equal(sha256(site.db), before, 'restored byte for byte');
    assert.ok(!fs.existsSync(site.db + '-journal'), 'the hot journal was removed');
    assert.equal(readDb(site.db).migrations.length, readDb(at60).migrations.length);
  });

  it('kills processes the migrator leaves running after it exits, with a warning', async () => {
    useDatabase(at60);
    const pidFile = path.join(site.dir, 'straggler.pid');
    site.addMigration(
      '6.2',
      '2025-10-20-00-00-00-straggler.js',
      `
const {spawn} = require('child_process');
module.exports = {up() {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {stdio: 'inherit'});
    child.unref();
    require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(child.pid));
}};
`,
    );
    const r = await run({});
    assert.equal(r.result, 'Succeeded', r.output);
    assert.ok(r.warnings.some((w) => /left processes running; they were killed/.test(w)), r.warnings.join('\n'));
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    const deadline = Date.now() + 5000;
    while (processAlive(pid) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    assert.ok(!processAlive(pid), 'the straggler is gone');
  });

  it("makes a Ghost configured for MySQL migrate the SQLite file, and nothing else", async () => {
    useDatabase(at60);
    fs.writeFileSync(
      path.join(site.root, 'config.production.json'),
      JSON.stringify({ database: { client: 'mysql', connection: { host: 'db.invalid', user: 'ghost', password: 'x', database: 'ghost' } } }),
    );
    const r = await run({});
    assert.equal(r.result, 'Succeeded', r.output);
    assert.ok(r.warnings.some((w) => /database__client=sqlite3/.test(w)), r.warnings.join('\n'));
    assert.equal(r.variables.migrationsApplied.value, '4');
  });

  it('fails on a missing database unless initIfMissing, and then initialises it', async () => {
    const r1 = await run({});
    assert.equal(r1.result, 'Failed', r1.output);
    assert.match(r1.resultMessage ?? '', /does not exist/);
    assert.match(r1.resultMessage ?? '', /initIfMissing/);
    assert.ok(!fs.existsSync(site.db), 'nothing was created');

    const r2 = await run({ initIfMissing: true });
    assert.equal(r2.result, 'Succeeded', r2.output);
    const db = readDb(site.db);
    assert.ok(db.tables.includes('posts'));
    assert.equal(db.locked, 0);
    // 2 init scripts run, 6 version migrations recorded as done by knex-migrator's init.
    assert.equal(r2.variables.migrationsApplied.value, '8');
    assert.equal(r2.variables.databaseVersion.value, '6.2');
    assert.match(summaryOf(r2), /initialised/);
  });

  it('removes a database it created when initialising fails', async () => {
    fs.writeFileSync(path.join(site.root, 'core', 'server', 'data', 'migrations', 'init', '3-broken.js'), BROKEN_MIGRATION);
    const r = await run({ initIfMissing: true });
    assert.equal(r.result, 'Failed', r.output);
    assert.match(r.resultMessage ?? '', /removed again/);
    assert.deepEqual(fs.readdirSync(path.dirname(site.db)).filter((f) => f.startsWith('ghost.db')), []);
  });

  it('says where Ghost is when ghostRoot has no MigratorConfig.js', async () => {
    const r = await run({ ghostRoot: site.dir });
    assert.equal(r.result, 'Failed', r.output);
    assert.match(r.resultMessage ?? '', /no MigratorConfig\.js in ghostRoot/);
    assert.ok((r.resultMessage ?? '').includes(`Found one in '${site.root}'`), r.resultMessage);
  });

  it('says to run npm install when knex-migrator is not installed', async () => {
    site.cleanup();
    site = createSite({ nodeModules: false });
    useDatabase(at60);
    const before = sha256(site.db);
    const r = await run({});
    assert.equal(r.result, 'Failed', r.output);
    assert.match(r.resultMessage ?? '', /knex-migrator is not installed/);
    assert.match(r.resultMessage ?? '', /npm install/);
    assert.equal(sha256(site.db), before);
  });

  it('says so when node is not on PATH', async () => {
    useDatabase(at60);
    const r = await run({}, { env: { PATH: path.join(site.dir, 'no-node-here') } });
    assert.equal(r.result, 'Failed', r.output);
    assert.match(r.resultMessage ?? '', /Node\.js was not found on the agent's PATH/);
  });

  it('refuses a corrupt database and leaves it untouched', async () => {
    useDatabase(at60);
    const bytes = fs.readFileSync(site.db);
    bytes.fill(0xa5, 4096, 8192); // page 2: a table's b-tree page, now garbage
    fs.writeFileSync(site.db, bytes);
    const before = sha256(site.db);
    const r = await run({});
    assert.equal(r.result, 'Failed', r.output);
    assert.match(r.resultMessage ?? '', /was not touched/);
    assert.match(r.resultMessage ?? '', /corrupt|integrity_check|malformed/);
    assert.equal(sha256(site.db), before);
  });

  it('refuses a 0-byte database and a file that is not SQLite', async () => {
    fs.writeFileSync(site.db, '');
    const r1 = await run({});
    assert.equal(r1.result, 'Failed', r1.output);
    assert.match(r1.resultMessage ?? '', /empty \(0 bytes\)/);
    assert.match(r1.resultMessage ?? '', /backup API/);
    assert.equal(fs.statSync(site.db).size, 0);

    fs.writeFileSync(site.db, '<html>502 Bad Gateway</html>'.padEnd(4096));
    const r2 = await run({});
    assert.equal(r2.result, 'Failed', r2.output);
    assert.match(r2.resultMessage ?? '', /not a SQLite database/);
  });

  it('resolves a relative databasePath against ghostRoot, not the working directory', async () => {
    useDatabase(at60);
    // A decoy at the same relative path under the working directory must not be touched.
    const workDir = path.join(site.dir, 'elsewhere');
    const decoy = path.join(workDir, 'content', 'data', 'ghost.db');
    fs.mkdirSync(path.dirname(decoy), { recursive: true });
    fs.copyFileSync(at60, decoy);
    const decoySha = sha256(decoy);
    const r = await run({ databasePath: 'content/data/ghost.db' }, { workDir });
    assert.equal(r.result, 'Succeeded', r.output);
    assert.equal(r.variables.migrationsApplied.value, '4');
    assert.equal(sha256(decoy), decoySha);
    assert.ok(readDb(site.db).tables.includes('members'));
  });

  describe('as Ghost 5 and 6 really behave', () => {
    const logsDir = () => path.join(site.root, 'content', 'logs');
    const dataDir = () => path.join(site.root, 'content', 'data');
    const exportsIn = (dir: string) => fs.readdirSync(dir).filter((f) => /ghost\.\d{4}(-\d\d){5}\.json$/.test(f));
    const noop = 'module.exports = {up() {}, down() {}};';

    it('shows no false alarm for the version folders Ghost 6 merged (4.0–4.46 into 4.47)', async () => {
      // The database as Ghost 5 left it: 4.0 … 4.47 recorded, each a folder of its own then.
      for (let minor = 0; minor <= 47; minor++) site.addMigration(`4.${minor}`, `2022-0${1 + (minor % 5)}-01-${minor}-ghost4.js`, noop);
      prepareDatabase(site, '6.0');
      // Ghost 6's tree: 4.0–4.46 gone, 4.47 holding two files of other names (final-v4, no-op).
      for (let minor = 0; minor <= 47; minor++) fs.rmSync(path.join(site.versionsDir, `4.${minor}`), { recursive: true });
      site.addMigration('4.47', '2022-05-03-15-30-final-v4.js', noop);
      const r = await run({});
      assert.equal(r.result, 'Succeeded', r.output);
      assert.deepEqual(r.warnings, [], 'no warning at all');
      assert.equal(r.variables.migrationsApplied.value, '4');
      assert.ok(!r.logLines.some((l) => /newer Ghost/.test(l)), r.output);
    });

    it('still warns when a newer Ghost has migrated the database', async () => {
      site.addMigration('6.3', '2025-11-01-00-00-00-from-6.3.js', noop);
      site.addMigration('6.10', '2026-03-01-00-00-00-from-6.10.js', noop);
      site.setVersion('6.10.0');
      prepareDatabase(site, '6.10');
      // Now the site's Ghost is 6.2 again: it has no folder for 6.3 or 6.10.
      fs.rmSync(path.join(site.versionsDir, '6.3'), { recursive: true });
      fs.rmSync(path.join(site.versionsDir, '6.10'), { recursive: true });
      site.setVersion('6.2.0');
      const r = await run({});
      assert.equal(r.result, 'Succeeded', r.output);
      assert.ok(r.warnings.some((w) => /versions newer than this Ghost knows \(6\.3, 6\.10\): a newer Ghost has migrated it/.test(w)), r.warnings.join('\n'));
    });

    it('sorts pending versions as versions and summarises a long list in the log; the summary has them all', async () => {
      useDatabase(at62);
      for (let minor = 3; minor <= 12; minor++) site.addMigration(`6.${minor}`, `2026-01-01-00-00-${String(minor).padStart(2, '0')}-step.js`, noop);
      site.setVersion('6.12.0');
      const r = await run({});
      assert.equal(r.result, 'Succeeded', r.output);
      assert.ok(r.logLines.some((l) => l.includes('Pending for Ghost 6.12: 10 migration(s) in 10 versions, 6.3 to 6.12.')), r.output);
      assert.match(summaryOf(r), /Pending before the run: 6\.3 \(1 of 1\), 6\.4 \(1 of 1\), .*6\.9 \(1 of 1\), 6\.10 \(1 of 1\), 6\.11 \(1 of 1\), 6\.12 \(1 of 1\)/);
    });

    it("notes Ghost's built-in MySQL default in a line, not a warning", async () => {
      useDatabase(at60);
      fs.rmSync(path.join(site.root, 'config.production.json'));
      const r = await run({});
      assert.equal(r.result, 'Succeeded', r.output);
      assert.deepEqual(r.warnings, []);
      assert.ok(r.logLines.some((l) => /built-in config for NODE_ENV=production uses the database client 'mysql2'/.test(l)), r.output);
    });

    it("quotes Ghost's error from its error log when the command keeps Ghost logging to files", async () => {
      const before = useDatabase(at60);
      site.addMigration('6.2', '2025-10-20-00-00-00-broken.js', BROKEN_MIGRATION);
      // An error from an earlier day is in the log already: only what this run appends counts.
      const errorLog = path.join(logsDir(), 'http___localhost_2368_production.error.log');
      fs.writeFileSync(errorLog, JSON.stringify({ level: 50, msg: 'last week: SMTP refused', err: { message: 'last week: SMTP refused' } }) + '\n');
      // A command with settings of its own: Ghost's production logging (files only) and its export on.
      const r = await run({
        command: `logging__transports='["file"]' disableMigrationBackups=false disableJSBackups=false node node_modules/knex-migrator/bin/knex-migrator-migrate --mgpath .`,
      });
      assert.equal(r.result, 'Failed', r.output);
      assert.ok(!r.logLines.some((l) => l.includes('no such table')), 'Ghost printed nothing: it logged to its files');
      assert.deepEqual(exportsIn(dataDir()), [], 'the export this run made is removed on failure too');
      const message = r.resultMessage ?? '';
      assert.match(message, /Ghost's error:\n.*no such table: no_such_table/s);
      assert.doesNotMatch(message, /last week/);
      assert.match(message, /Next: Ghost's error above names the migration that failed/);
      assert.equal(sha256(site.db), before);
    });

    it("quotes Ghost's error in development, where Ghost logs to stdout anyway", async () => {
      useDatabase(at60);
      site.addMigration('6.2', '2025-10-20-00-00-00-broken.js', BROKEN_MIGRATION);
      fs.copyFileSync(path.join(site.root, 'config.production.json'), path.join(site.root, 'config.development.json'));
      const r = await run({ nodeEnv: 'development' });
      assert.equal(r.result, 'Failed', r.output);
      assert.match(r.resultMessage ?? '', /Ghost's error:\n.*no such table: no_such_table/s);
    });

    it('names a native module built for another platform, not a migration, and restores', async () => {
      site.cleanup();
      site = createSite({ driverBuiltFor: 'win32-x64' });
      const before = useDatabase(at60);
      const r = await run({});
      assert.equal(r.result, 'Failed', r.output);
      const message = r.resultMessage ?? '';
      assert.match(message, /Ghost's error:\n.*(invalid ELF header|ERR_DLOPEN_FAILED)/s);
      assert.match(message, /Next: a native module of Ghost's .* was built for another Node\.js or platform/);
      assert.match(message, /nodeExecutable/);
      assert.match(message, /NodeTool@0/);
      assert.doesNotMatch(message, /names the migration that failed/);
      assert.equal(sha256(site.db), before);
    });

    it('says Node.js crashed, not a migration, when the migrator aborts', async () => {
      const before = useDatabase(at60);
      site.addMigration('6.2', '2025-10-20-00-00-00-abort.js', `module.exports = {up() { process.abort(); }};`);
      const r = await run({});
      assert.equal(r.result, 'Failed', r.output);
      const message = r.resultMessage ?? '';
      assert.match(message, /the migrator was killed \(SIGABRT\)/);
      assert.match(message, /Next: Node\.js v\d+\.\d+\.\d+ \(.*\) aborted instead of reporting an error/);
      assert.match(message, /Node\.js 22 \(Ghost 6 needs \^22\.23\.1\).*nodeExecutable/);
      assert.equal(sha256(site.db), before);
    });

    it('says the database was busy when another connection held it during a migration', async () => {
      const before = useDatabase(at60);
      // Another writer: a second connection that cannot get the write lock knex's transaction holds.
      site.addMigration(
        '6.2',
        '2025-10-20-00-00-00-busy.js',
        `
const Database = require('better-sqlite3');
module.exports = {
    config: {transaction: true},
    async up({transacting}) {
        await transacting('tags').insert({id: 'busy', name: 'busy', slug: 'busy'});
        const other = new Database(${JSON.stringify(site.db)}, {timeout: 0});
        try { other.prepare("INSERT INTO tags (id, name, slug) VALUES ('x', 'x', 'x')").run(); } finally { other.close(); }
    }
};
`,
      );
      const r = await run({});
      assert.equal(r.result, 'Failed', r.output);
      const message = r.resultMessage ?? '';
      assert.match(message, /Ghost's error:\n.*database is locked/s);
      assert.match(message, /Next: the database was busy or its migration lock was held/);
      assert.equal(sha256(site.db), before);
    });

    it("leaves no export in the site: Ghost's own is turned off, and one Ghost cannot skip is removed", async () => {
      useDatabase(at60);
      // An export from before (Ghost at boot, last month) is the site's business: it stays.
      const old = path.join(dataDir(), 'my-ghost-blog.ghost.2026-10-01-03-00-00.json');
      fs.writeFileSync(old, '{"db":[]}');
      const r1 = await run({});
      assert.equal(r1.result, 'Succeeded', r1.output);
      assert.deepEqual(exportsIn(dataDir()), [path.basename(old)], "Ghost 6's export was turned off");
      assert.ok(r1.logLines.some((l) => l.includes('Database backup before migration is disabled in Ghost config')), r1.output);

      // A Ghost whose hook exports whatever the settings say (as older ones do).
      useDatabase(at60);
      fs.writeFileSync(
        path.join(site.root, 'core', 'server', 'data', 'migrations', 'hooks', 'migrate', 'index.js'),
        `const backup = require('./backup');\nexports.before = ({connection}) => backup.writeExport(connection);\n`,
      );
      const r2 = await run({});
      assert.equal(r2.result, 'Succeeded', r2.output);
      assert.ok(r2.logLines.some((l) => /Database backup written to .*my-ghost-blog\.ghost\.\d{4}(-\d\d){5}\.json/.test(l)), r2.output);
      assert.deepEqual(exportsIn(dataDir()), [path.basename(old)], 'the export this run made is gone, the old one kept');
      assert.ok(r2.logLines.some((l) => /Removed .*my-ghost-blog\.ghost\.\d{4}(-\d\d){5}\.json \(\d+ bytes\): Ghost's own JSON export/.test(l)), r2.output);
      assert.match(summaryOf(r2), /Removed Ghost's pre-migration JSON export of the site/);

      // And the package made from the site holds no export at all (SitePackage's default excludes).
      const zipFile = path.join(site.dir, 'site.zip');
      const pack = await runTask({ task: 'SitePackage', inputs: { rootFolder: site.root, archiveFile: zipFile }, workDir: site.dir });
      assert.equal(pack.result, 'Succeeded', pack.output);
      const names = new AdmZip(zipFile).getEntries().map((e) => e.entryName);
      assert.ok(names.includes('content/data/ghost.db'), names.join('\n'));
      assert.deepEqual(names.filter((n) => /ghost\.\d{4}(-\d\d){5}\.json$/.test(n)), []);
    });
  });
});
