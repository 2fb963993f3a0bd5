/**
 * The parts of GhostMigrate that decide without running anything: knex-migrator's health rule
 * applied to folders and rows, version order, and which output lines explain a failure.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkHealth, compareMigrationVersions, highestVersion, summarisePending, summariseVersions, type MigrationRow } from '../../tasks/GhostMigrate/migration-state';
import { abridge } from '../../tasks/GhostMigrate/migrate';
import { diagnose } from '../../tasks/GhostMigrate/problems';
import { errorLines } from '../../tasks/GhostMigrate/run-migrator';

describe('GhostMigrate migration state', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ghost-state-'));
    const files: Record<string, string[]> = {
      init: ['1-create.js', '2-fixtures.js'],
      'versions/6.0': ['a.js', 'b.js', '.DS_Store'],
      'versions/6.1-members': ['c.js'],
      'versions/6.3': ['d.js'],
    };
    for (const [folder, names] of Object.entries(files)) {
      fs.mkdirSync(path.join(dir, folder), { recursive: true });
      for (const n of names) fs.writeFileSync(path.join(dir, folder, n), '');
    }
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const row = (version: string, name: string): MigrationRow => ({ version, name, currentVersion: '6.2' });

  it('applies knex-migrator health rule: pending, excess, future and unknown versions', () => {
    const rows = [row('init', '1-create.js'), row('init', '2-fixtures.js'), row('6.0', 'a.js'), row('7.0', 'z.js')];
    const health = checkHealth(rows, dir, 'versions', '6.2');
    // 6.0 lacks b.js (dot files do not count); `6.1-members` is keyed as 6.1, as knex-migrator does.
    assert.deepEqual(
      health.pending.map((v) => [v.version, v.missing]),
      [
        ['6.0', ['b.js']],
        ['6.1', ['c.js']],
      ],
    );
    assert.deepEqual(health.future.map((v) => v.version), ['6.3']);
    assert.deepEqual(health.newerVersions, ['7.0']);
    assert.deepEqual(health.retiredVersions, []);
    assert.deepEqual(health.excess, []);

    const excess = checkHealth([...rows, row('6.0', 'b.js'), row('6.0', 'gone.js'), row('6.1', 'c.js')], dir, 'versions', '6.2');
    assert.deepEqual(excess.pending, []);
    assert.deepEqual(excess.excess.map((v) => v.version), ['6.0']);
  });

  it('counts a missing init script as pending (knex-migrator: DB_NOT_INITIALISED)', () => {
    const health = checkHealth([row('init', '1-create.js')], dir, 'versions', '5.0');
    assert.deepEqual(health.pending.map((v) => v.version), ['init']);
  });

  it("ignores recorded versions whose folders this Ghost merged away, as knex-migrator does (Ghost 6: 4.0–4.46 into 4.47)", () => {
    fs.mkdirSync(path.join(dir, 'versions', '4.47'));
    fs.writeFileSync(path.join(dir, 'versions', '4.47', 'final.js'), '');
    // Recorded by Ghost 4 and 5: 4.0 … 4.47 each, and 6.0 … 6.3; this Ghost (6.3) has folders 4.47, 6.0, 6.1, 6.3.
    const old = Array.from({ length: 47 }, (_, i) => row(`4.${i}`, 'x.js'));
    const rows = [row('init', '1-create.js'), row('init', '2-fixtures.js'), ...old, row('4.47', 'final.js'), row('6.0', 'a.js'), row('6.0', 'b.js'), row('6.1', 'c.js'), row('6.2', 'gone.js'), row('6.3', 'd.js')];
    const health = checkHealth(rows, dir, 'versions', '6.3');
    assert.deepEqual(health.pending, []);
    assert.deepEqual(health.excess, []);
    assert.deepEqual(health.newerVersions, [], 'no false "a newer Ghost migrated it"');
    assert.equal(health.retiredVersions.length, 48);
    assert.deepEqual(health.retiredVersions.slice(0, 3), ['4.0', '4.1', '4.2'], 'in version order');
    assert.equal(health.retiredVersions.at(-1), '6.2');

    // A database migrated by a newer Ghost still says so: versions above this Ghost's highest.
    const newer = checkHealth([...rows, row('6.4', 'e.js'), row('6.10', 'f.js')], dir, 'versions', '6.3');
    assert.deepEqual(newer.newerVersions, ['6.4', '6.10']);
  });

  it('lists pending versions in version order and summarises long lists', () => {
    for (const v of ['6.10', '6.2', '6.9']) {
      fs.mkdirSync(path.join(dir, 'versions', v));
      fs.writeFileSync(path.join(dir, 'versions', v, 'x.js'), '');
    }
    const health = checkHealth([row('init', '1-create.js'), row('init', '2-fixtures.js')], dir, 'versions', '6.10');
    assert.deepEqual(health.pending.map((v) => v.version), ['6.0', '6.1', '6.2', '6.3', '6.9', '6.10']);
    assert.equal(summarisePending(health.pending), '7 migration(s) in 6.0, 6.1, 6.2, 6.3, 6.9, 6.10');
    const many = Array.from({ length: 45 }, (_, i) => `6.${44 - i}`);
    assert.equal(summariseVersions(many), '45 versions, 6.0 to 6.44');
  });

  it('orders loose versions numerically', () => {
    assert.ok(compareMigrationVersions('6.10', '6.9') > 0);
    assert.equal(compareMigrationVersions('6.1', '6.1.0'), 0);
    assert.equal(highestVersion([row('init', 'x'), row('6.9', 'a'), row('6.10', 'b'), row('5.130', 'c')]), '6.10');
  });

  it("picks knex-migrator's rollback notes and logged error, without stack frames", () => {
    const out = [
      '[hooks/migrate] before: backing up 1 post(s)',
      '[2026-11-23 14:01:43] INFO Rolling back: no such table: x.',
      '[2026-11-23 14:01:43] INFO Rollback was successful.',
      '[2026-11-23 14:01:43] ERROR no such table: x',
      '',
      'no such table: x',
      '{"name":"2025-10-20-broken.js"}',
      'Error ID:',
      '    300',
      '----------------------------------------',
      'SqliteError: no such table: x',
      '    at Database.prepare (wrappers.js:5:21)',
    ].map((text) => ({ stream: 'stdout' as const, text }));
    assert.deepEqual(errorLines(out), [
      '[2026-11-23 14:01:43] INFO Rolling back: no such table: x.',
      '[2026-11-23 14:01:43] INFO Rollback was successful.',
      '[2026-11-23 14:01:43] ERROR no such table: x',
      '{"name":"2025-10-20-broken.js"}',
      'SqliteError: no such table: x',
    ]);
    // No logged ERROR: stderr; nothing there either: the last lines.
    assert.deepEqual(errorLines([{ stream: 'stdout', text: 'a' }, { stream: 'stderr', text: 'Error: boom' }, { stream: 'stderr', text: '    at x' }]), ['Error: boom']);
    assert.deepEqual(errorLines([{ stream: 'stdout', text: 'a' }, { stream: 'stdout', text: 'sleeping' }]), ['a', 'sleeping']);
  });

  it("keeps the end of a long error line, where SQLite puts the reason", () => {
    const line = `ERROR create table \`members_x\` (${'`c` varchar(24) not null, '.repeat(30)}primary key (\`id\`)) - view \`members_x\` already exists`;
    const short = abridge(line);
    assert.ok(short.length < 420, String(short.length));
    assert.ok(short.startsWith('ERROR create table `members_x`'));
    assert.ok(short.endsWith('- view `members_x` already exists'));
    assert.equal(abridge('short'), 'short');
  });

  it('reads the cause from what Ghost and Node.js printed', () => {
    const end = { timedOut: false, exitCode: 1, signal: null };
    const abi =
      "Error: The module '/g/node_modules/better-sqlite3/build/Release/better_sqlite3.node' was compiled against a different Node.js version using NODE_MODULE_VERSION 127. This version of Node.js requires NODE_MODULE_VERSION 137.";
    assert.deepEqual(diagnose([abi], end), { kind: 'native-module', builtFor: '127', needs: '137', module: 'better_sqlite3.node' });
    assert.equal(diagnose(['[x] ERROR SqliteError: database is locked'], end).kind, 'lock');
    assert.equal(diagnose(['Migration lock was never released or currently a migration is running.'], end).kind, 'lock');
    assert.equal(diagnose(['[x] INFO Rolling back: no such table: x.'], end).kind, 'migration-error');
    assert.equal(diagnose(['  #  Assertion failed: (env) != nullptr', ' 3: Statement::~Statement() [/g/better_sqlite3.node]'], { ...end, exitCode: null, signal: 'SIGABRT' }).kind, 'native-crash');
    assert.equal(diagnose(['anything'], { ...end, timedOut: true }).kind, 'timeout');
    assert.equal(diagnose(['Finished'], end).kind, 'unknown');
  });
});
