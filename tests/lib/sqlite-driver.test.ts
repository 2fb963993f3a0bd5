/**
 * lib/sqlite/driver: both implementations behave as the engine expects — the same rows, the same
 * pragma shapes, the same transaction state and SQLite's error names — and the choice follows
 * SQLITE_BACKUP_DRIVER. Real files, real locks held by a second connection.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chooseDriver, loadDriver, SQLITE_DRIVERS, sqliteCodeName, SqliteDriverError, type SqliteDriver } from '../../lib/sqlite/driver';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return String((err as { code?: unknown }).code);
  }
  throw new Error('expected an error');
}

for (const name of SQLITE_DRIVERS) {
  describe(`lib/sqlite driver: ${name}`, () => {
    let driver: SqliteDriver;
    let dir: string;
    let file: string;
    before(() => (driver = loadDriver(name)));
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'driver-'));
      file = path.join(dir, 'a b%#?.db');
      const db = driver.open(file);
      db.exec('CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT); INSERT INTO posts (title) VALUES (\'one\'), (\'two\')');
      db.close();
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('reads rows, plucked values and pragmas in better-sqlite3 shapes', () => {
      const db = driver.open(file, { fileMustExist: true });
      try {
        assert.deepEqual({ ...(db.prepare('SELECT id, title FROM posts WHERE id = ?').get(2) as object) }, { id: 2, title: 'two' });
        assert.deepEqual(db.prepare('SELECT title FROM posts ORDER BY id').all().map((r) => ({ ...(r as object) })), [{ title: 'one' }, { title: 'two' }]);
        assert.deepEqual(db.prepare('SELECT title FROM posts ORDER BY id').pluck().all(), ['one', 'two']);
        assert.equal(db.prepare('SELECT count(*) FROM posts').pluck().get(), 2);
        assert.deepEqual([...db.prepare('SELECT id FROM posts ORDER BY id').pluck().iterate()], [1, 2]);
        assert.equal(Number(db.prepare('INSERT INTO posts (title) VALUES (?)').run('three').changes), 1);
        assert.equal(db.pragma('journal_mode', { simple: true }), 'delete');
        assert.equal(db.pragma('page_count', { simple: true }), 2);
        const rows = db.pragma('integrity_check') as Array<Record<string, unknown>>;
        assert.equal(rows.length, 1);
        assert.equal(Object.values(rows[0])[0], 'ok');
      } finally {
        db.close();
      }
    });

    it('tracks the transaction state through BEGIN, COMMIT and ROLLBACK', () => {
      const db = driver.open(file);
      try {
        assert.equal(db.inTransaction, false);
        db.exec('BEGIN IMMEDIATE');
        assert.equal(db.inTransaction, true);
        db.exec('ROLLBACK');
        assert.equal(db.inTransaction, false);
        db.exec('BEGIN');
        db.prepare('SELECT 1').get();
        db.exec('COMMIT');
        assert.equal(db.inTransaction, false);
      } finally {
        db.close();
      }
    });

    it('never creates a file that must exist, and opens read-only without writing', () => {
      const missing = path.join(dir, 'missing.db');
      assert.equal(codeOf(() => driver.open(missing, { fileMustExist: true })), 'SQLITE_CANTOPEN');
      assert.equal(codeOf(() => driver.open(missing, { readonly: true })), 'SQLITE_CANTOPEN');
      assert.equal(fs.existsSync(missing), false);
      const before = fs.readFileSync(file);
      const db = driver.open(file, { readonly: true });
      try {
        assert.equal(codeOf(() => db.exec("INSERT INTO posts (title) VALUES ('x')")), 'SQLITE_READONLY');
      } finally {
        db.close();
      }
      assert.deepEqual(fs.readFileSync(file), before);
    });

    it("names SQLite's errors as better-sqlite3 does: a lock held past the busy timeout, a file that is not a database", () => {
      const holder = driver.open(file);
      const waiter = driver.open(file, { timeout: 50 });
      try {
        holder.exec('BEGIN IMMEDIATE');
        const started = Date.now();
        assert.equal(codeOf(() => waiter.exec('BEGIN IMMEDIATE')), 'SQLITE_BUSY');
        assert.ok(Date.now() - started >= 40, 'waited for the busy timeout');
        assert.equal(waiter.inTransaction, false);
        waiter.pragma('busy_timeout = 0');
        assert.equal(codeOf(() => waiter.exec('BEGIN IMMEDIATE')), 'SQLITE_BUSY');
      } finally {
        holder.exec('ROLLBACK');
        holder.close();
        waiter.close();
      }
      const junk = path.join(dir, 'junk.db');
      fs.writeFileSync(junk, Buffer.alloc(4096, 7));
      const db = driver.open(junk, { readonly: true });
      try {
        assert.equal(codeOf(() => db.prepare('SELECT count(*) FROM sqlite_schema').get()), 'SQLITE_NOTADB');
      } finally {
        db.close();
      }
    });

    if (name === 'node:sqlite') it('tracks the transaction state itself on a Node without isTransaction (before 22.16)', () => {
      const db = driver.open(file, { timeout: 0 });
      try {
        // The DatabaseSync inside, as Node 22.13 to 22.15 make it: no isTransaction getter.
        const inside = db as unknown as { db: object };
        const native = inside.db;
        inside.db = new Proxy(native, {
          get: (target, key) => {
            if (key === 'isTransaction') return undefined;
            const value = Reflect.get(target, key, target) as unknown;
            return typeof value === 'function' ? value.bind(target) : value;
          },
        });
        assert.equal(db.inTransaction, false);
        db.exec('BEGIN IMMEDIATE');
        assert.equal(db.inTransaction, true);
        db.exec('COMMIT');
        assert.equal(db.inTransaction, false);
        db.exec('begin');
        db.exec('rollback');
        assert.equal(db.inTransaction, false);
        const other = driver.open(file, { timeout: 0 });
        try {
          other.exec('BEGIN IMMEDIATE');
          assert.equal(codeOf(() => db.exec('BEGIN IMMEDIATE')), 'SQLITE_BUSY');
          assert.equal(db.inTransaction, false, 'a BEGIN that failed leaves no transaction');
        } finally {
          other.exec('ROLLBACK');
          other.close();
        }
      } finally {
        db.close();
      }
    });

    it('reports the SQLite version it runs', () => {
      assert.match(driver.sqliteVersion, /^3\.\d+\.\d+$/);
    });
  });
}

describe('lib/sqlite driver choice', () => {
  it('takes the driver SQLITE_BACKUP_DRIVER names, and refuses a name it does not know', () => {
    assert.equal(chooseDriver('node:sqlite').name, 'node:sqlite');
    assert.equal(chooseDriver(' better-sqlite3 ').name, 'better-sqlite3');
    assert.equal(chooseDriver(undefined).name, 'better-sqlite3');
    assert.throws(() => chooseDriver('sqlite3'), (err: Error) => err instanceof SqliteDriverError && /SQLITE_BACKUP_DRIVER is 'sqlite3': set it to better-sqlite3 or node:sqlite/.test(err.message));
  });

  it('falls back to node:sqlite in a process where better-sqlite3 cannot load', () => {
    // A process whose module resolution cannot see better-sqlite3: the driver module copied alone.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'driver-alone-'));
    try {
      fs.copyFileSync(path.join(__dirname, '..', '..', 'lib', 'sqlite', 'driver.js'), path.join(dir, 'driver.js'));
      const script = `const d = require('./driver.js'); process.stdout.write(d.sqliteDriver().name);`;
      const run = spawnSync(process.execPath, ['-e', script], { cwd: dir, env: { ...process.env, SQLITE_BACKUP_DRIVER: '', NODE_PATH: '' }, encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      assert.equal(run.stdout, 'node:sqlite');
      const forced = spawnSync(process.execPath, ['-e', script], { cwd: dir, env: { ...process.env, SQLITE_BACKUP_DRIVER: 'better-sqlite3', NODE_PATH: '' }, encoding: 'utf8' });
      assert.notEqual(forced.status, 0);
      assert.match(forced.stderr, /No SQLite driver can run on Node v[\d.]+ \(\w+\) here — better-sqlite3: Cannot find module 'better-sqlite3'/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names SQLite result codes, extended ones included', () => {
    assert.equal(sqliteCodeName(5), 'SQLITE_BUSY');
    assert.equal(sqliteCodeName(264), 'SQLITE_READONLY_RECOVERY');
    assert.equal(sqliteCodeName(14 | (3 << 8)), 'SQLITE_CANTOPEN');
    assert.equal(sqliteCodeName(26), 'SQLITE_NOTADB');
  });
});
