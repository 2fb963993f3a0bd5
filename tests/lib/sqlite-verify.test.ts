import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { parseHeader } from '../../lib/sqlite/header';
import { SqliteFileError, verifySqliteFile } from '../../lib/sqlite/verify';

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

describe('lib/sqlite verifySqliteFile', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'verify-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function makeDb(name: string, journal: 'delete' | 'wal' = 'delete', rows = 50): string {
    const file = path.join(dir, name);
    const db = new Database(file);
    db.pragma(`journal_mode = ${journal}`);
    db.exec('CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT)');
    const insert = db.prepare('INSERT INTO posts (body) VALUES (?)');
    for (let i = 0; i < rows; i++) insert.run('x'.repeat(500) + i);
    db.close();
    return file;
  }

  function kindOf(fn: () => unknown): string {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof SqliteFileError, String(err));
      return err.kind;
    }
    throw new Error('expected a SqliteFileError');
  }

  it('reports a healthy rollback-journal database without changing it', () => {
    const file = makeDb('ok.db');
    const before = sha(file);
    const report = verifySqliteFile(file);
    assert.equal(report.tables, 1);
    assert.equal(report.journal, 'rollback');
    assert.equal(report.bytes, report.pageCount * report.pageSize);
    assert.equal(sha(file), before);
    assert.deepEqual(fs.readdirSync(dir), ['ok.db']);
  });

  it('verifies a WAL-flagged copy and leaves no -wal or -shm behind, bytes unchanged', () => {
    const file = makeDb('wal.db', 'wal');
    assert.equal(parseHeader(fs.readFileSync(file).subarray(0, 100)).journal, 'wal');
    const before = sha(file);
    assert.equal(verifySqliteFile(file).journal, 'wal');
    assert.equal(sha(file), before);
    assert.deepEqual(fs.readdirSync(dir), ['wal.db']);
  });

  it('names each kind of bad file', () => {
    assert.equal(kindOf(() => verifySqliteFile(path.join(dir, 'missing.db'))), 'missing');
    fs.writeFileSync(path.join(dir, 'empty.db'), '');
    assert.equal(kindOf(() => verifySqliteFile(path.join(dir, 'empty.db'))), 'empty');
    fs.writeFileSync(path.join(dir, 'text.db'), 'hello, this is not a database at all'.repeat(100));
    assert.equal(kindOf(() => verifySqliteFile(path.join(dir, 'text.db'))), 'not-sqlite');
    const shell = path.join(dir, 'shell.db');
    new Database(shell).pragma('user_version = 1');
    assert.equal(kindOf(() => verifySqliteFile(shell)), 'no-tables');
    assert.equal(verifySqliteFile(shell, { requireTables: false }).tables, 0);
  });

  it('refuses a copy with a leftover journal beside it', () => {
    const file = makeDb('j.db');
    fs.writeFileSync(file + '-journal', 'x');
    assert.equal(kindOf(() => verifySqliteFile(file)), 'side-files');
  });

  it('finds corruption: a truncated file and damaged pages', () => {
    const file = makeDb('cut.db', 'delete', 400);
    const size = fs.statSync(file).size;
    fs.truncateSync(file, size - 1000);
    assert.equal(kindOf(() => verifySqliteFile(file)), 'corrupt');

    const damaged = makeDb('damaged.db', 'delete', 400);
    const bytes = fs.readFileSync(damaged);
    const pageSize = parseHeader(bytes).pageSize;
    // Scribble over the b-tree page header of page 3 (a table page).
    bytes.fill(0xff, pageSize * 2, pageSize * 2 + 64);
    fs.writeFileSync(damaged, bytes);
    assert.equal(kindOf(() => verifySqliteFile(damaged)), 'corrupt');
  });
});
