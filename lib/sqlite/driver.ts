/**
 * The one way lib/sqlite opens a database: a small interface (the part of better-sqlite3's API the
 * backup engine, verification and the WebJob use) with two implementations.
 *
 * - better-sqlite3: a native module, fast, shipped with 64-bit binaries only (Windows x64, Linux
 *   x64/arm64, macOS). Needs Node 22 or later; older Nodes crash loading it, so it is not tried there.
 * - node:sqlite (`DatabaseSync`): built into Node 22.13 and later, no native binary to load, so it
 *   also runs on a 32-bit Node (App Service's default Windows workers).
 *
 * Which one is used is decided once per process: SQLITE_BACKUP_DRIVER (`better-sqlite3` or
 * `node:sqlite`) when set — the WebJob's launcher sets it after probing, and tests set it to run
 * the engine on either — otherwise better-sqlite3 when it loads, else node:sqlite when this Node
 * has it, else an error that says what was tried. Both report SQLite's errors with `code` set to
 * SQLite's name (`SQLITE_BUSY`, `SQLITE_CANTOPEN`, `SQLITE_READONLY_RECOVERY`, ...).
 *
 * Only one SQLite library may touch a database file in a process: on POSIX, closing a descriptor
 * releases every lock the process holds on the file, and two libraries do not know each other's
 * descriptors. Deciding once keeps the engine on one.
 *
 * @example
 *   const db = openDatabase('ghost.db', { readonly: true, fileMustExist: true, timeout: 10_000 });
 *   try {
 *     const tables = db.prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table'").pluck().get();
 *     const mode = db.pragma('journal_mode', { simple: true });
 *   } finally {
 *     db.close();
 *   }
 */
import * as fs from 'node:fs';
import type * as NodeSqlite from 'node:sqlite';

export type SqliteDriverName = 'better-sqlite3' | 'node:sqlite';
export const SQLITE_DRIVERS: readonly SqliteDriverName[] = ['better-sqlite3', 'node:sqlite'];
/** The environment variable that picks the driver. */
export const DRIVER_VARIABLE = 'SQLITE_BACKUP_DRIVER';

export interface OpenOptions {
  /** Open read-only (never creates the file). */
  readonly?: boolean;
  /** Fail with SQLITE_CANTOPEN instead of creating a missing file. */
  fileMustExist?: boolean;
  /** Busy timeout in ms (how long a statement waits for another connection's lock). Default 5000, as better-sqlite3's. */
  timeout?: number;
}

export type SqlValue = null | number | bigint | string | Buffer | Uint8Array;

export interface SqliteStatement {
  get(...params: SqlValue[]): unknown;
  all(...params: SqlValue[]): unknown[];
  run(...params: SqlValue[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  iterate(...params: SqlValue[]): IterableIterator<unknown>;
  /** From now on, rows are their first column's value. */
  pluck(): SqliteStatement;
}

export interface SqliteDatabase {
  readonly inTransaction: boolean;
  prepare(sql: string): SqliteStatement;
  exec(sql: string): void;
  /** `PRAGMA <source>`: all rows, or with `simple` the first column of the first row. */
  pragma(source: string, options?: { simple?: boolean }): unknown;
  close(): void;
}

export interface SqliteDriver {
  name: SqliteDriverName;
  /** The SQLite library's version (`3.53.4`). */
  sqliteVersion: string;
  open(file: string, options?: OpenOptions): SqliteDatabase;
}

/** No driver can be loaded, or the one asked for cannot. */
export class SqliteDriverError extends Error {
  override readonly name = 'SqliteDriverError';
}

let chosen: SqliteDriver | undefined;

/** The process's driver, chosen on first use (see the file's comment). */
export function sqliteDriver(): SqliteDriver {
  chosen ??= chooseDriver(process.env[DRIVER_VARIABLE]);
  return chosen;
}

/** Opens a database with the process's driver. */
export function openDatabase(file: string, options: OpenOptions = {}): SqliteDatabase {
  return sqliteDriver().open(file, options);
}

/** The driver `wanted` names (throws when it cannot load), or the first of the two that loads. */
export function chooseDriver(wanted: string | undefined): SqliteDriver {
  const name = wanted?.trim();
  if (name && !(SQLITE_DRIVERS as readonly string[]).includes(name)) {
    throw new SqliteDriverError(`${DRIVER_VARIABLE} is '${name}': set it to better-sqlite3 or node:sqlite, or leave it unset to choose automatically.`);
  }
  const failures: string[] = [];
  for (const candidate of name ? [name as SqliteDriverName] : SQLITE_DRIVERS) {
    try {
      return loadDriver(candidate);
    } catch (err) {
      failures.push(`${candidate}: ${(err as Error).message}`);
    }
  }
  throw new SqliteDriverError(
    `No SQLite driver can run on Node ${process.version} (${process.arch}) here — ${failures.join('; ')}. ` +
      `Use a 64-bit Node 22 or later (better-sqlite3), or Node 22.13 or later (its built-in node:sqlite).`,
  );
}

/** Loads one driver; each opens an in-memory database on loading, so a missing binary shows now. */
export function loadDriver(name: SqliteDriverName): SqliteDriver {
  return name === 'better-sqlite3' ? loadBetterSqlite3() : loadNodeSqlite();
}

function loadBetterSqlite3(): SqliteDriver {
  const major = Number(process.versions.node.split('.')[0]);
  // Loading its binary on an older Node crashes the process instead of throwing.
  if (major < 22) throw new Error(`better-sqlite3 needs Node 22 or later, and this is ${process.version}`);
  // Loaded only when chosen: a bundle keeps it external, and a Node without its binary never loads it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Database = require('better-sqlite3') as typeof import('better-sqlite3');
  // Its API is the interface's; its errors already carry SQLite's code names.
  const open = (file: string, options: OpenOptions = {}) =>
    new Database(file, { readonly: options.readonly ?? false, fileMustExist: options.fileMustExist ?? false, timeout: options.timeout ?? 5000 }) as SqliteDatabase;
  return { name: 'better-sqlite3', sqliteVersion: versionOf(open), open };
}

function loadNodeSqlite(): SqliteDriver {
  let sqlite: typeof NodeSqlite;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    sqlite = require('node:sqlite') as typeof NodeSqlite;
  } catch {
    throw new Error(`this Node (${process.version}) has no node:sqlite: it is built in from Node 22.13`);
  }
  const open = (file: string, options?: OpenOptions) => NodeSqliteDatabase.open(sqlite, file, options);
  return { name: 'node:sqlite', sqliteVersion: versionOf(open), open };
}

function versionOf(open: SqliteDriver['open']): string {
  const db = open(':memory:');
  try {
    return String(db.prepare('SELECT sqlite_version()').pluck().get());
  } finally {
    db.close();
  }
}

/** node:sqlite's DatabaseSync behind the interface. */
class NodeSqliteDatabase implements SqliteDatabase {
  /** For Nodes without `isTransaction` (before 22.16): what our own BEGIN/COMMIT/ROLLBACK left. */
  private tracked = false;

  private constructor(private readonly db: NodeSqlite.DatabaseSync) {}

  static open(sqlite: typeof NodeSqlite, file: string, options: OpenOptions = {}): NodeSqliteDatabase {
    // Read-only never creates; read-write would. (A `file:...?mode=rw` URI would say "never create"
    // to SQLite itself, but not every Node with node:sqlite opens names as URIs.)
    if (options.fileMustExist && !options.readonly && file !== ':memory:' && !fs.existsSync(file)) {
      throw Object.assign(new Error('unable to open database file'), { code: 'SQLITE_CANTOPEN' });
    }
    const db = translate(() => new sqlite.DatabaseSync(file, { readOnly: options.readonly ?? false }));
    const wrapped = new NodeSqliteDatabase(db);
    try {
      // The constructor's own `timeout` option is newer than node:sqlite itself.
      wrapped.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(options.timeout ?? 5000))}`);
    } catch (err) {
      db.close();
      throw err;
    }
    return wrapped;
  }

  get inTransaction(): boolean {
    const native = (this.db as { isTransaction?: boolean }).isTransaction;
    return typeof native === 'boolean' ? native : this.tracked;
  }

  prepare(sql: string): SqliteStatement {
    return new NodeSqliteStatement(translate(() => this.db.prepare(sql)));
  }

  exec(sql: string): void {
    translate(() => this.db.exec(sql));
    if (/^\s*BEGIN\b/i.test(sql)) this.tracked = true;
    else if (/^\s*(COMMIT|END|ROLLBACK)\b/i.test(sql)) this.tracked = false;
  }

  pragma(source: string, options: { simple?: boolean } = {}): unknown {
    const statement = this.prepare(`PRAGMA ${source}`);
    return options.simple ? statement.pluck().get() : statement.all();
  }

  close(): void {
    translate(() => this.db.close());
  }
}

class NodeSqliteStatement implements SqliteStatement {
  private plucked = false;

  constructor(private readonly statement: NodeSqlite.StatementSync) {}

  get(...params: SqlValue[]): unknown {
    return this.shape(translate(() => this.statement.get(...(params as NodeSqlite.SQLInputValue[]))));
  }

  all(...params: SqlValue[]): unknown[] {
    return translate(() => this.statement.all(...(params as NodeSqlite.SQLInputValue[]))).map((row) => this.shape(row));
  }

  run(...params: SqlValue[]): { changes: number | bigint; lastInsertRowid: number | bigint } {
    return translate(() => this.statement.run(...(params as NodeSqlite.SQLInputValue[])));
  }

  *iterate(...params: SqlValue[]): IterableIterator<unknown> {
    const rows = translate(() => this.statement.iterate(...(params as NodeSqlite.SQLInputValue[])));
    for (;;) {
      const next = translate(() => rows.next());
      if (next.done) return;
      yield this.shape(next.value);
    }
  }

  pluck(): SqliteStatement {
    this.plucked = true;
    return this;
  }

  private shape(row: unknown): unknown {
    if (!this.plucked || row === undefined || row === null) return row;
    for (const key in row as Record<string, unknown>) return (row as Record<string, unknown>)[key];
    return undefined;
  }
}

/** SQLite's primary result codes by number, as better-sqlite3 names them. */
const PRIMARY_CODES: Record<number, string> = {
  1: 'ERROR', 2: 'INTERNAL', 3: 'PERM', 4: 'ABORT', 5: 'BUSY', 6: 'LOCKED', 7: 'NOMEM', 8: 'READONLY', 9: 'INTERRUPT',
  10: 'IOERR', 11: 'CORRUPT', 12: 'NOTFOUND', 13: 'FULL', 14: 'CANTOPEN', 15: 'PROTOCOL', 16: 'EMPTY', 17: 'SCHEMA',
  18: 'TOOBIG', 19: 'CONSTRAINT', 20: 'MISMATCH', 21: 'MISUSE', 22: 'NOLFS', 23: 'AUTH', 24: 'FORMAT', 25: 'RANGE', 26: 'NOTADB',
};

/** The extended codes whose names the engine's advice depends on. */
const EXTENDED_CODES: Record<number, string> = {
  261: 'BUSY_RECOVERY', 517: 'BUSY_SNAPSHOT', 773: 'BUSY_TIMEOUT',
  264: 'READONLY_RECOVERY', 520: 'READONLY_CANTLOCK', 776: 'READONLY_ROLLBACK', 1032: 'READONLY_DBMOVED', 1288: 'READONLY_CANTINIT', 1544: 'READONLY_DIRECTORY',
  267: 'CORRUPT_VTAB', 523: 'CORRUPT_SEQUENCE', 779: 'CORRUPT_INDEX',
};

/** SQLite's name for a result code number: `SQLITE_BUSY`, `SQLITE_READONLY_RECOVERY`. */
export function sqliteCodeName(errcode: number): string {
  return `SQLITE_${EXTENDED_CODES[errcode] ?? PRIMARY_CODES[errcode & 0xff] ?? `UNKNOWN_${errcode}`}`;
}

/**
 * node:sqlite's errors carry `code: 'ERR_SQLITE_ERROR'` and the number in `errcode`; the engine
 * (like better-sqlite3) speaks of SQLite's names. The error keeps its message and stack.
 */
function translate<T>(work: () => T): T {
  try {
    return work();
  } catch (err) {
    const e = err as { code?: unknown; errcode?: unknown };
    if (e && e.code === 'ERR_SQLITE_ERROR' && typeof e.errcode === 'number') e.code = sqliteCodeName(e.errcode);
    throw err;
  }
}
