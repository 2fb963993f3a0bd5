/**
 * knex-migrator's bookkeeping read straight from the SQLite file: the `migrations` rows, the
 * `migrations_lock` row, and the same health rule knex-migrator applies (files in each version
 * folder against rows recorded for that version). Read by the task itself, so the verdict does not
 * depend on what the migrator process said or how it exited.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { readHeader } from '../../lib/sqlite/verify';

export interface MigrationRow {
  name: string;
  version: string;
  currentVersion: string | null;
}

export interface LockState {
  /** The table and its `km01` row exist. */
  present: boolean;
  locked: boolean;
  acquiredAt: string | null;
}

export interface DatabaseState {
  /** False when the file has no `migrations` table: knex-migrator never initialised it. */
  initialised: boolean;
  rows: MigrationRow[];
  lock: LockState;
}

/** WAL-flagged files need SQLite's -shm, so they are opened read-write (as verifySqliteFile does). */
function open(file: string, write: boolean): Database.Database {
  const { header } = readHeader(file);
  return new Database(file, { readonly: !write && header.journal === 'rollback', fileMustExist: true });
}

export function readDatabaseState(file: string): DatabaseState {
  const db = open(file, false);
  try {
    const has = (table: string) => !!db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?").get(table);
    const rows = has('migrations') ? (db.prepare('SELECT name, version, currentVersion FROM migrations ORDER BY id').all() as MigrationRow[]) : [];
    let lock: LockState = { present: false, locked: false, acquiredAt: null };
    if (has('migrations_lock')) {
      const row = db.prepare("SELECT * FROM migrations_lock WHERE lock_key = 'km01'").get() as { locked?: unknown; acquired_at?: string | null } | undefined;
      // knex stores the boolean as 0/1, or '0' from the column default.
      if (row) lock = { present: true, locked: Number(row.locked) === 1, acquiredAt: row.acquired_at ?? null };
    }
    return { initialised: has('migrations'), rows, lock };
  } finally {
    db.close();
  }
}

/** What knex-migrator's unlock() writes: locked = 0 and the release time (local, as it does). */
export function releaseLock(file: string): void {
  const db = open(file, true);
  try {
    const d = new Date();
    const p = (n: number) => String(n).padStart(2, '0');
    const now = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    db.prepare("UPDATE migrations_lock SET locked = 0, released_at = ? WHERE lock_key = 'km01'").run(now);
  } finally {
    db.close();
  }
}

/**
 * knex-migrator's versions are loose (`6`, `6.1`, `6.1.0`, `1.1-members`): it reads them with
 * semver.coerce, the first run of digits and dots, and orders them by that. This does the same.
 */
export function parseMigrationVersion(v: string): [number, number, number] | undefined {
  const m = /(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(v);
  return m ? [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] : undefined;
}

/** Orders migration versions as knex-migrator does (`6.10` after `6.9`); unreadable ones first. */
export function compareMigrationVersions(a: string, b: string): number {
  const x = parseMigrationVersion(a);
  const y = parseMigrationVersion(b);
  if (!x || !y) return x ? 1 : y ? -1 : 0;
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
}

/** Distinct versions in knex-migrator's order. */
export function sortMigrationVersions(versions: Iterable<string>): string[] {
  return [...new Set(versions)].sort(compareMigrationVersions);
}

export interface VersionHealth {
  /** `init` or the version as knex-migrator keys it (the digits of the folder name). */
  version: string;
  folder: string;
  files: string[];
  recorded: number;
  /** Files of the folder with no row of that version. */
  missing: string[];
}

export interface Health {
  /** The version whose migrations must all be recorded (Ghost's major.minor). */
  target: string;
  /** Folders up to the target with fewer rows than files: knex-migrator's DB_NEEDS_MIGRATION (or DB_NOT_INITIALISED for init). */
  pending: VersionHealth[];
  /** More rows than files: knex-migrator's MIGRATION_STATE_ERROR, which stops Ghost from booting. */
  excess: VersionHealth[];
  /** Folders newer than the target that are not recorded; knex-migrator skips them without --force. */
  future: VersionHealth[];
  /**
   * Versions recorded in the table, with no folder in this Ghost, and newer than anything this
   * Ghost knows (its highest folder and its own version): a newer Ghost migrated the database.
   */
  newerVersions: string[];
  /**
   * Versions recorded with no folder that are not newer: folders a later Ghost merged or removed
   * (Ghost 6 folds 4.0–4.46 into 4.47). knex-migrator only counts folders, so it ignores these.
   */
  retiredVersions: string[];
}

/** Files knex-migrator counts in a folder: everything but dot files. */
function listFiles(dir: string): string[] {
  try {
    return fs
      .readdirSync(dir)
      .filter((f) => !f.startsWith('.'))
      .sort();
  } catch {
    return [];
  }
}

interface VersionFolder {
  /** `init`, or the digits of the folder's name, as knex-migrator keys it (`1.1-members` counts as `1.1`). */
  version: string;
  folder: string;
  dir: string;
}

/** The init folder and every version folder, in version order, as knex-migrator's _integrityCheck lists them. */
function versionFolders(migrationPath: string, subfolder: string): VersionFolder[] {
  const folders: VersionFolder[] = [{ version: 'init', folder: 'init', dir: path.join(migrationPath, 'init') }];
  const versionsDir = path.join(migrationPath, subfolder);
  for (const folder of listFiles(versionsDir)) {
    if (!fs.statSync(path.join(versionsDir, folder)).isDirectory()) continue;
    const version = /([\d._]+)/.exec(folder)?.[1];
    if (version) folders.push({ version, folder, dir: path.join(versionsDir, folder) });
  }
  // Listed as versions, not as text: 6.2 before 6.10.
  return folders.sort((a, b) => (a.version === 'init' ? -1 : b.version === 'init' ? 1 : compareMigrationVersions(a.version, b.version)));
}

export function checkHealth(rows: MigrationRow[], migrationPath: string, subfolder: string, target: string): Health {
  const health: Health = { target, pending: [], excess: [], future: [], newerVersions: [], retiredVersions: [] };
  const folders = versionFolders(migrationPath, subfolder);
  for (const { version, folder, dir } of folders) {
    const files = listFiles(dir);
    const recorded = rows.filter((r) => r.version === version);
    const recordedNames = new Set(recorded.map((r) => r.name));
    const entry: VersionHealth = { version, folder, files, recorded: recorded.length, missing: files.filter((f) => !recordedNames.has(f)) };
    if (version !== 'init' && compareMigrationVersions(version, target) > 0) {
      if (entry.recorded < files.length) health.future.push(entry);
      continue;
    }
    if (entry.recorded < files.length) health.pending.push(entry);
    else if (entry.recorded > files.length) health.excess.push(entry);
  }
  const known = new Set(folders.map((f) => f.version));
  const highestKnown = sortMigrationVersions([target, ...known].filter((v) => v !== 'init')).pop() ?? target;
  for (const version of sortMigrationVersions(rows.map((r) => r.version))) {
    if (version === 'init' || known.has(version)) continue;
    if (compareMigrationVersions(version, highestKnown) > 0) health.newerVersions.push(version);
    else health.retiredVersions.push(version);
  }
  return health;
}

/** The highest version folder recorded as migrated (init aside). */
export function highestVersion(rows: MigrationRow[]): string | undefined {
  return sortMigrationVersions(rows.map((r) => r.version).filter((v) => v !== 'init' && parseMigrationVersion(v))).pop();
}

export function addedRows(before: MigrationRow[], after: MigrationRow[]): MigrationRow[] {
  const key = (r: MigrationRow) => `${r.version}\0${r.name}`;
  const had = new Set(before.map(key));
  return after.filter((r) => !had.has(key(r)));
}

/** `6.1 (2 of 2), 6.2 (1 of 3)`: every version, for the summary page. */
export function describePending(list: VersionHealth[]): string {
  return list.map((v) => `${v.version} (${v.files.length - v.recorded} of ${v.files.length})`).join(', ');
}

/** Short enough for one log line: up to `max` versions listed, else `45 versions, 6.0 to 6.65`. */
export function summariseVersions(versions: string[], max = 6): string {
  const sorted = sortMigrationVersions(versions);
  if (sorted.length <= max) return sorted.join(', ');
  return `${sorted.length} versions, ${sorted[0]} to ${sorted[sorted.length - 1]}`;
}

/** The pending migrations in one line: `2 migrations in 6.1, 6.2` or `130 migrations in 45 versions, 6.0 to 6.65`. */
export function summarisePending(list: VersionHealth[]): string {
  const count = list.reduce((n, v) => n + v.files.length - v.recorded, 0);
  return `${count} migration(s) in ${summariseVersions(list.map((v) => v.version))}`;
}
