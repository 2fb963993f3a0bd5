/**
 * The backup engine on its own: what it writes, what it refuses, what it leaves alone. The tests
 * with other processes writing and reading at the same time are in sqlite-backup-concurrent.test.ts.
 */
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import Database from 'better-sqlite3';
import { backupSqlite, SqliteBackupError, type BackupOptions } from '../../lib/sqlite/backup';
import { partialFileFor } from '../../lib/sqlite/backup-files';
import { parseHeader } from '../../lib/sqlite/header';
import { SqliteFileError } from '../../lib/sqlite/verify';
import { memoryLog, type Log } from '../../lib/log';
import { BACKUP_CLI, ConnectionProcess, killAllApps } from '../../testkit/harness/sqlite-app';

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const header = (f: string) => parseHeader(fs.readFileSync(f).subarray(0, 100));

/** A log that keeps its lines (lib/log's memoryLog; lib/task/log would load task-lib, which writes a .taskkey file). */
export function collectingLog(): Log & { lines: string[] } {
  return memoryLog();
}

describe('lib/sqlite backupSqlite', function () {
  this.timeout(60_000);
  let dir: string;
  let children: ChildProcess[];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backup-'));
    children = [];
  });
  afterEach(() => {
    killAllApps();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function makeDb(name: string, journal: 'delete' | 'truncate' | 'wal' = 'delete', rows = 300): string {
    const file = path.join(dir, name);
    const db = new Database(file);
    db.pragma(`journal_mode = ${journal}`);
    db.exec('CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT)');
    const insert = db.prepare('INSERT INTO posts (body) VALUES (?)');
    db.transaction(() => {
      for (let i = 0; i < rows; i++) insert.run(`${i} `.repeat(200));
    })();
    db.close();
    return file;
  }

  const count = (file: string) => {
    const db = new Database(file, { readonly: header(file).journal === 'rollback', fileMustExist: true });
    try {
      return db.prepare('SELECT count(*) FROM posts').pluck().get() as number;
    } finally {
      db.close();
    }
  };

  async function failure(promise: Promise<unknown>): Promise<Error> {
    try {
      await promise;
    } catch (err) {
      return err as Error;
    }
    throw new Error('expected the backup to fail');
  }

  /** The folder's listing, with each file's bytes, to prove nothing changed. */
  const snapshot = (folder: string) =>
    fs.existsSync(folder) ? fs.readdirSync(folder).sort().map((n) => `${n}:${sha(path.join(folder, n))}:${fs.statSync(path.join(folder, n)).mtimeMs}`) : [];

  it('copies a rollback-journal database byte for byte and reports it, leaving the source as it was', async () => {
    const src = makeDb('ghost.db');
    const before = sha(src);
    const log = collectingLog();
    const dest = path.join(dir, 'out', 'backup.db');
    const report = await backupSqlite(src, dest, { log });
    assert.equal(sha(dest), before);
    assert.equal(sha(src), before);
    assert.equal(report.file, dest);
    assert.equal(report.sha256, before);
    assert.equal(report.databaseSha256, before);
    assert.equal(report.bytes, fs.statSync(src).size);
    assert.equal(report.journal, 'rollback');
    assert.equal(report.pageSize, header(src).pageSize);
    assert.equal(report.pageCount * report.pageSize, report.bytes);
    assert.equal(report.changeCounter, header(src).changeCounter);
    assert.equal(report.skipped, false);
    assert.ok(report.maxLockMs >= 0 && report.maxLockMs < 5000, `maxLockMs ${report.maxLockMs}`);
    assert.ok(report.lockSpans.some((s) => s.what.includes('BEGIN IMMEDIATE')));
    assert.deepEqual(fs.readdirSync(dir).sort(), ['ghost.db', 'out'], 'no -journal beside the source');
    assert.deepEqual(fs.readdirSync(path.join(dir, 'out')).sort(), ['.backup.db.last-backup.json', 'backup.db']);
    assert.ok(log.lines.some((l) => l.startsWith('Final pass under BEGIN IMMEDIATE')), log.lines.join('\n'));
    assert.ok(log.lines.some((l) => l.startsWith('Backed up ')), log.lines.join('\n'));
  });

  it('copies a WAL database with commits still in its -wal into one file, without checkpointing the source', async () => {
    const src = makeDb('wal.db', 'wal');
    const app = await ConnectionProcess.open(src, ['PRAGMA wal_autocheckpoint = 0', "INSERT INTO posts (body) VALUES ('only in the WAL')"]);
    const dbBefore = sha(src);
    const walBefore = sha(`${src}-wal`);
    const dest = path.join(dir, 'backup.db');
    const report = await backupSqlite(src, dest);
    assert.equal(report.journal, 'wal');
    assert.equal(count(dest), 301);
    assert.equal(header(dest).journal, 'wal', 'the backup keeps the journal mode');
    assert.ok(!fs.existsSync(`${dest}-wal`) && !fs.existsSync(`${dest}-shm`), 'the backup is one file');
    assert.equal(sha(src), dbBefore);
    assert.equal(sha(`${src}-wal`), walBefore);
    assert.equal(header(src).journal, 'wal');
    assert.equal(report.maxLockMs < 1000, true);
    await app.close();
  });

  it('copies a WAL database whose app has crashed, reading its -wal without changing a byte', async () => {
    const src = makeDb('crashed.db', 'wal');
    // A child writes into the WAL and dies without closing, as a crashed app would.
    const child = spawnSync(process.execPath, [
      '-e',
      `const D = require(${JSON.stringify(require.resolve('better-sqlite3'))}); const db = new D(${JSON.stringify(src)});
       db.pragma('wal_autocheckpoint = 0'); db.prepare("INSERT INTO posts (body) VALUES ('after the crash')").run(); process.kill(process.pid, 'SIGKILL');`,
    ]);
    assert.equal(child.signal, 'SIGKILL');
    const files = ['crashed.db', 'crashed.db-wal'].map((f) => path.join(dir, f));
    const before = files.map(sha);
    await backupSqlite(src, path.join(dir, 'b', 'backup.db'));
    assert.equal(count(path.join(dir, 'b', 'backup.db')), 301);
    assert.deepEqual(files.map(sha), before);
  });

  it('leaves the journal mode and journal file of a TRUNCATE-mode app alone', async () => {
    const src = makeDb('t.db', 'truncate');
    // The app's connection stays open in TRUNCATE mode; its commit leaves a 0-byte -journal.
    const app = await ConnectionProcess.open(src, ['PRAGMA journal_mode = truncate', "INSERT INTO posts (body) VALUES ('x')"]);
    assert.equal(fs.statSync(`${src}-journal`).size, 0);
    const before = sha(src);
    await backupSqlite(src, path.join(dir, 'backup.db'));
    assert.equal(sha(src), before);
    assert.equal(fs.statSync(`${src}-journal`).size, 0);
    assert.equal(header(src).journal, 'rollback');
    await app.close();
  });

  describe('bad sources: a clear error, nothing at the destination changed', () => {
    let dest: string;
    let previous: string[];
    beforeEach(async () => {
      dest = path.join(dir, 'backups', 'backup.db');
      await backupSqlite(makeDb('good.db'), dest);
      previous = snapshot(path.dirname(dest));
    });

    const cases: Array<[string, () => string, string]> = [
      ['a missing file', () => path.join(dir, 'nope.db'), 'missing'],
      ['a zero-byte file', () => (fs.writeFileSync(path.join(dir, 'zero.db'), ''), path.join(dir, 'zero.db')), 'empty'],
      ['a file that is not SQLite', () => (fs.writeFileSync(path.join(dir, 'text.db'), 'not a database '.repeat(500)), path.join(dir, 'text.db')), 'not-sqlite'],
      ['a folder', () => dir, 'not-sqlite'],
    ];
    for (const [what, make, kind] of cases) {
      it(what, async () => {
        const err = await failure(backupSqlite(make(), dest));
        assert.ok(err instanceof SqliteFileError, String(err));
        assert.equal(err.kind, kind);
        assert.deepEqual(snapshot(path.dirname(dest)), previous);
      });
    }

    it('a database with damaged pages fails verification', async () => {
      const src = makeDb('damaged.db', 'delete', 2000);
      const fd = fs.openSync(src, 'r+');
      fs.writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 4096 * 5); // garbage over a b-tree page
      fs.closeSync(fd);
      const err = await failure(backupSqlite(src, dest));
      assert.ok(err instanceof SqliteBackupError, String(err));
      assert.equal(err.kind, 'verify');
      assert.match(err.message, /nothing was replaced/);
      assert.deepEqual(snapshot(path.dirname(dest)), previous);
      // verify: none skips the check and takes the copy as it is.
      const report = await backupSqlite(src, path.join(dir, 'unchecked.db'), { verify: 'none' });
      assert.equal(report.sha256, sha(src));
    });

    it('a database locked by another connection past the busy timeout', async () => {
      const src = makeDb('locked.db');
      const holder = await ConnectionProcess.open(src, ['BEGIN EXCLUSIVE', "INSERT INTO posts (body) VALUES ('x')"]);
      const started = Date.now();
      const err = await failure(backupSqlite(src, dest, { busyTimeoutMs: 300 }));
      await holder.close();
      assert.ok(err instanceof SqliteBackupError, String(err));
      assert.equal(err.kind, 'busy');
      assert.match(err.message, /300 ms/);
      assert.ok(Date.now() - started < 10_000);
      assert.deepEqual(snapshot(path.dirname(dest)), previous);
    });

    it('an unreadable file (as an unprivileged user)', function () {
      const src = makeDb('secret.db');
      fs.chmodSync(src, 0o000);
      fs.chmodSync(dir, 0o777);
      fs.chmodSync(path.dirname(dest), 0o777);
      const asRoot = process.getuid?.() === 0;
      if (!asRoot && process.platform === 'win32') this.skip();
      // Root reads anything; run the CLI as 'nobody' so that permissions apply.
      const run = spawnSync(process.execPath, [BACKUP_CLI, 'backup', src, dest], { encoding: 'utf8', ...(asRoot ? { uid: 65534, gid: 65534 } : {}) });
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stderr, /cannot be read \(EACCES\)/);
      assert.deepEqual(snapshot(path.dirname(dest)), previous);
    });
  });

  it('creates a destination folder that does not exist', async () => {
    const dest = path.join(dir, 'a', 'b', 'c', 'backup.db');
    await backupSqlite(makeDb('x.db'), dest);
    assert.ok(fs.existsSync(dest));
  });

  it('refuses to write over the database itself', async () => {
    const src = makeDb('self.db');
    const err = await failure(backupSqlite(src, src));
    assert.ok(err instanceof SqliteBackupError && err.kind === 'usage', String(err));
    assert.equal(count(src), 300);
    // Also when a rolling name happens to expand to it.
    const hourly = makeDb('db-07.db');
    const rolled = await failure(backupSqlite(hourly, path.join(dir, 'db-%H.db'), { now: () => new Date(Date.UTC(2026, 0, 1, 7)) }));
    assert.ok(rolled instanceof SqliteBackupError && rolled.kind === 'usage', String(rolled));
    assert.equal(count(hourly), 300);
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n.includes('.partial-')), []);
  });

  it('rolls back a hot journal left by a crashed writer, and backs up the committed state', async () => {
    const src = makeDb('hot.db', 'delete', 3000);
    // The writer spills changed pages into the database file (tiny cache), then dies before COMMIT.
    const crashed = spawnSync(process.execPath, [
      '-e',
      `const D = require(${JSON.stringify(require.resolve('better-sqlite3'))}); const db = new D(${JSON.stringify(src)});
       db.pragma('cache_size = 5'); db.exec('BEGIN'); db.prepare("UPDATE posts SET body = 'torn'").run(); process.kill(process.pid, 'SIGKILL');`,
    ]);
    assert.equal(crashed.signal, 'SIGKILL');
    assert.ok(fs.statSync(`${src}-journal`).size > 0, 'a hot journal is left');
    const log = collectingLog();
    const report = await backupSqlite(src, path.join(dir, 'backup.db'), { log });
    const copy = new Database(report.file, { readonly: true });
    assert.equal(copy.prepare("SELECT count(*) FROM posts WHERE body = 'torn'").pluck().get(), 0);
    assert.equal(copy.prepare('SELECT count(*) FROM posts').pluck().get(), 3000);
    copy.close();
    assert.ok(!fs.existsSync(`${src}-journal`), 'SQLite rolled the journal back');
    assert.ok(log.lines.some((l) => l.includes('hot journal')), log.lines.join('\n'));
  });

  it('writes gzip that decompresses to the verified database', async () => {
    const src = makeDb('g.db', 'delete', 2000);
    const report = await backupSqlite(src, path.join(dir, 'backup.db'), { gzip: true });
    assert.equal(report.file, path.join(dir, 'backup.db.gz'));
    assert.ok(!fs.existsSync(path.join(dir, 'backup.db')));
    assert.equal(report.sha256, sha(report.file));
    assert.equal(report.bytes, fs.statSync(report.file).size);
    assert.ok(report.bytes < report.databaseBytes / 2, `compressed ${report.bytes} of ${report.databaseBytes}`);
    const plain = path.join(dir, 'plain.db');
    fs.writeFileSync(plain, zlib.gunzipSync(fs.readFileSync(report.file)));
    assert.equal(sha(plain), report.databaseSha256);
    assert.equal(sha(plain), sha(src));
    assert.equal(count(plain), 2000);
  });

  for (const journal of ['delete', 'wal'] as const) {
    it(`skipIfUnchanged writes nothing the second time, and backs up after a commit (${journal})`, async () => {
      const src = makeDb(`s-${journal}.db`, journal);
      const out = path.join(dir, 'out');
      const options: BackupOptions = { skipIfUnchanged: true, gzip: true };
      const first = await backupSqlite(src, `${out}/`, { ...options, now: () => new Date('2026-01-01T00:00:00Z') });
      assert.equal(first.skipped, false);
      const listing = snapshot(out);
      const log = collectingLog();
      const second = await backupSqlite(src, `${out}/`, { ...options, log, now: () => new Date('2026-01-01T01:00:00Z') });
      assert.equal(second.skipped, true);
      assert.equal(second.file, first.file);
      assert.equal(second.sha256, first.sha256);
      assert.deepEqual(snapshot(out), listing, 'nothing written');
      assert.ok(log.lines.some((l) => /nothing written/.test(l)), log.lines.join('\n'));

      const app = new Database(src);
      app.prepare("INSERT INTO posts (body) VALUES ('new')").run();
      app.close();
      const third = await backupSqlite(src, `${out}/`, { ...options, now: () => new Date('2026-01-01T02:00:00Z') });
      assert.equal(third.skipped, false);
      assert.notEqual(third.file, first.file);
      assert.notEqual(third.databaseSha256, first.databaseSha256);

      // A last backup that has gone missing is no reason to skip.
      fs.rmSync(third.file);
      const fourth = await backupSqlite(src, `${out}/`, { ...options, now: () => new Date('2026-01-01T03:00:00Z') });
      assert.equal(fourth.skipped, false);
    });
  }

  it('keepLast keeps the newest timestamped backups, deleting only after a new one is in place', async () => {
    const src = makeDb('ghost.db');
    const out = path.join(dir, 'backups') + path.sep;
    const at = (h: number) => () => new Date(Date.UTC(2026, 10, 23, h, 4, 5));
    for (const h of [1, 2, 3]) {
      const r = await backupSqlite(src, out, { keepLast: 2, now: at(h) });
      fs.utimesSync(r.file, new Date(Date.UTC(2026, 10, 23, h)), new Date(Date.UTC(2026, 10, 23, h)));
    }
    assert.deepEqual(fs.readdirSync(out).filter((n) => !n.startsWith('.')).sort(), ['ghost-20261123-020405.db', 'ghost-20261123-030405.db']);
    // A failed backup deletes nothing.
    const bad = path.join(dir, 'ghost.db');
    fs.writeFileSync(bad, '');
    await failure(backupSqlite(bad, out, { keepLast: 1, now: at(4) }));
    assert.equal(fs.readdirSync(out).filter((n) => !n.startsWith('.')).length, 2);
  });

  it('rolls over a fixed set of %-names, and rejects unknown placeholders before copying', async () => {
    const src = makeDb('ghost.db');
    const pattern = path.join(dir, 'hourly', 'backup-%H.db');
    const at = (h: number, m = 0) => () => new Date(Date.UTC(2026, 0, 1, h, m));
    const a = await backupSqlite(src, pattern, { now: at(1) });
    await backupSqlite(src, pattern, { now: at(2) });
    const app = new Database(src);
    app.prepare("INSERT INTO posts (body) VALUES ('x')").run();
    app.close();
    const c = await backupSqlite(src, pattern, { now: at(1, 30) });
    assert.equal(c.file, a.file);
    assert.equal(count(c.file), 301);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'hourly')).filter((n) => !n.startsWith('.')).sort(), ['backup-01.db', 'backup-02.db']);
    const err = await failure(backupSqlite(src, path.join(dir, 'backup-%q.db')));
    assert.ok(err instanceof SqliteBackupError && err.kind === 'usage' && /%q/.test(err.message), String(err));
  });

  it('cleans up partial files of backups that were killed, but not those of a running one', async () => {
    const src = makeDb('ghost.db');
    const dest = path.join(dir, 'backup.db');
    const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    children.push(sleeper);
    const partialOf = (pid: number) => partialFileFor(dest).replace(/-(\d+)-([0-9a-f]{6})$/, `-${pid}-$2`);
    const dead = partialOf(2 ** 22 + 12345); // beyond Linux's pid_max default: no such process
    const alive = partialOf(sleeper.pid!);
    for (const f of [dead, `${dead}-journal`, alive]) fs.writeFileSync(f, 'x');
    const log = collectingLog();
    await backupSqlite(src, dest, { log });
    assert.ok(!fs.existsSync(dead) && !fs.existsSync(`${dead}-journal`));
    assert.ok(fs.existsSync(alive));
    assert.ok(log.lines.some((l) => l.includes('did not finish')), log.lines.join('\n'));
  });

  it('reports progress, including the final pass while the lock is held', async () => {
    const src = makeDb('p.db');
    const phases: string[] = [];
    await backupSqlite(src, path.join(dir, 'backup.db'), { onProgress: (p) => phases.push(p.phase) });
    for (const phase of ['copy', 'final', 'verify', 'commit']) assert.ok(phases.includes(phase), phases.join(','));
  });

  it('has a command line: a JSON report, exit codes 0, 1 and 2', () => {
    const src = makeDb('cli.db');
    const cli = (...args: string[]) => spawnSync(process.execPath, [BACKUP_CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
    const ok = cli('backup', src, path.join(dir, 'out') + '/', '--json', '--verify', 'quick', '--keep-last', '2', '--gzip');
    assert.equal(ok.status, 0, ok.stderr);
    const report = JSON.parse(ok.stdout) as { file: string; sha256: string; verify: string; gzip: boolean };
    assert.equal(report.sha256, sha(report.file));
    assert.equal(report.verify, 'quick');
    assert.match(path.basename(report.file), /^cli-\d{8}-\d{6}\.db\.gz$/);
    assert.match(ok.stderr, /Verified the copy with PRAGMA quick_check/, 'phase lines on stderr');
    const plain = cli('backup', src, path.join(dir, 'plain.db'));
    assert.equal(plain.status, 0, plain.stderr);
    assert.match(plain.stdout, /^Backed up .* sha256 [0-9a-f]{64}/);
    const missing = cli('backup', path.join(dir, 'nope.db'), path.join(dir, 'x.db'), '--json');
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /Backup failed: .*does not exist/);
    assert.equal((JSON.parse(missing.stdout) as { kind: string }).kind, 'missing');
    for (const args of [['backup', src], ['restore', src, 'x.db'], ['backup', src, 'x.db', '--keep-last', 'two'], ['backup', src, 'x.db', '--verify', 'full']]) {
      const bad = cli(...args);
      assert.equal(bad.status, 2, `${args.join(' ')}: ${bad.stderr}`);
      assert.match(bad.stderr, /Usage: cli\.js backup/);
    }
  });

  it('rejects bad options before touching anything', async () => {
    const src = makeDb('o.db');
    for (const options of [{ verify: 'full' }, { keepLast: -1 }, { keepLast: 1.5 }, { busyTimeoutMs: -5 }] as BackupOptions[]) {
      const err = await failure(backupSqlite(src, path.join(dir, 'x', 'backup.db'), options));
      assert.ok(err instanceof SqliteBackupError && err.kind === 'usage', String(err));
    }
    assert.ok(!fs.existsSync(path.join(dir, 'x')));
    const gz = await failure(backupSqlite(src, path.join(dir, 'backup.db.gz')));
    assert.ok(gz instanceof SqliteBackupError && gz.kind === 'usage');
  });
});
