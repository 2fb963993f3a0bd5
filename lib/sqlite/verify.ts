/**
 * Checks that a file is a whole, healthy SQLite database before anything relies on it: present,
 * not empty, the SQLite header, no leftover -journal or -wal beside it, `PRAGMA integrity_check`
 * (or quick_check), and at least one table. Opening never changes the file: rollback-journal
 * files are opened read-only; WAL-flagged files need SQLite's -shm index, so they are opened
 * read-write (SQLite then removes the -wal/-shm it made on close, and the bytes stay the same).
 *
 * @example
 *   const report = verifySqliteFile('content/data/ghost.db');          // throws SqliteFileError
 *   console.log(report.pageCount, report.tables, report.journal);
 *   verifySqliteFile(copy, { check: 'quick', requireTables: false });
 */
import * as fs from 'node:fs';
import { openDatabase, SqliteDriverError, type SqliteDatabase } from './driver';
import { HEADER_BYTES, hasSqliteMagic, parseHeader, type SqliteHeader } from './header';
import { sqliteSideFiles } from '../fs';

export type IntegrityLevel = 'integrity' | 'quick' | 'none';

export type SqliteFileErrorKind = 'missing' | 'empty' | 'not-sqlite' | 'unreadable' | 'side-files' | 'corrupt' | 'no-tables';

export class SqliteFileError extends Error {
  override readonly name = 'SqliteFileError';
  constructor(
    message: string,
    readonly kind: SqliteFileErrorKind,
    readonly file: string,
  ) {
    super(message);
  }
}

export interface SqliteFileReport {
  file: string;
  bytes: number;
  pageSize: number;
  pageCount: number;
  journal: 'rollback' | 'wal';
  changeCounter: number;
  /** User tables (not sqlite_*). */
  tables: number;
  check: IntegrityLevel;
}

export interface VerifyOptions {
  check?: IntegrityLevel;
  /** Fail when the database has no table of its own (an empty shell). Default true. */
  requireTables?: boolean;
  /** Accept a -journal/-wal beside the file (a live database, not a copy). Default false. */
  allowSideFiles?: boolean;
}

/** Journal files SQLite may keep beside a database; their presence next to a copy means trouble. */
export function sideFilesOf(file: string): string[] {
  return sqliteSideFiles(file).filter((f) => !f.endsWith('-shm') && fs.existsSync(f));
}

/**
 * Whether a file begins with SQLite's header: how a database is recognised whatever its name
 * (Windows' Thumbs.db is not SQLite; a backup may be called anything).
 */
export function startsLikeSqlite(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(16);
    return hasSqliteMagic(head.subarray(0, fs.readSync(fd, head, 0, 16, 0)));
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads and checks the 100-byte header only; cheap, and what every other check starts with. */
export function readHeader(file: string): { header: SqliteHeader; bytes: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new SqliteFileError(`${file} does not exist.`, 'missing', file);
    if (code === 'EISDIR') throw new SqliteFileError(`${file} is a folder, not a SQLite database file.`, 'not-sqlite', file);
    throw new SqliteFileError(`${file} cannot be read (${code}): check its permissions.`, 'unreadable', file);
  }
  try {
    const stat = fs.fstatSync(fd);
    // POSIX opens a folder for reading without complaint; the read would fail with EISDIR.
    if (stat.isDirectory()) throw new SqliteFileError(`${file} is a folder, not a SQLite database file.`, 'not-sqlite', file);
    const size = stat.size;
    if (size === 0) {
      throw new SqliteFileError(`${file} is empty (0 bytes): it is not a usable SQLite database.`, 'empty', file);
    }
    const head = Buffer.alloc(HEADER_BYTES);
    const read = fs.readSync(fd, head, 0, HEADER_BYTES, 0);
    if (!hasSqliteMagic(head.subarray(0, read))) {
      throw new SqliteFileError(`${file} is not a SQLite database: it does not start with the "SQLite format 3" header.`, 'not-sqlite', file);
    }
    if (read < HEADER_BYTES) throw new SqliteFileError(`${file} is cut off: ${size} bytes, less than a SQLite header.`, 'corrupt', file);
    const header = parseHeader(head);
    if (size % header.pageSize !== 0) {
      throw new SqliteFileError(
        `${file} is ${size} bytes, not a whole number of ${header.pageSize}-byte pages: the file is truncated or was copied while being written.`,
        'corrupt',
        file,
      );
    }
    return { header, bytes: size };
  } finally {
    fs.closeSync(fd);
  }
}

export function verifySqliteFile(file: string, options: VerifyOptions = {}): SqliteFileReport {
  const check = options.check ?? 'integrity';
  const { header, bytes } = readHeader(file);
  if (!options.allowSideFiles) {
    const side = sideFilesOf(file);
    if (side.length) {
      throw new SqliteFileError(
        `${file} has ${side.map((s) => s.slice(file.length)).join(' and ')} beside it: the copy holds uncommitted or uncheckpointed changes ` +
          `(it was taken with a file copy while the database was in use). Take the copy with SQLite's backup API (SqliteBackup, or the backup WebJob) instead.`,
        'side-files',
        file,
      );
    }
  }
  let db: SqliteDatabase;
  try {
    db = openDatabase(file, { readonly: header.journal === 'rollback', fileMustExist: true });
  } catch (err) {
    if (err instanceof SqliteDriverError) throw err;
    throw new SqliteFileError(`${file} cannot be opened as a SQLite database: ${(err as Error).message}`, 'corrupt', file);
  }
  try {
    if (check !== 'none') {
      let rows: string[];
      try {
        rows = db
          .prepare(check === 'quick' ? 'PRAGMA quick_check(20)' : 'PRAGMA integrity_check(20)')
          .pluck()
          .all() as string[];
      } catch (err) {
        throw new SqliteFileError(`${file} is corrupt: ${(err as Error).message}`, 'corrupt', file);
      }
      if (!(rows.length === 1 && rows[0] === 'ok')) {
        throw new SqliteFileError(
          `${file} failed PRAGMA ${check === 'quick' ? 'quick_check' : 'integrity_check'}: ${rows.slice(0, 5).join('; ')}${rows.length > 5 ? '; ...' : ''}`,
          'corrupt',
          file,
        );
      }
    }
    let tables: number;
    let pageCount: number;
    try {
      tables = db.prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").pluck().get() as number;
      pageCount = db.pragma('page_count', { simple: true }) as number;
    } catch (err) {
      throw new SqliteFileError(`${file} is corrupt: ${(err as Error).message}`, 'corrupt', file);
    }
    if ((options.requireTables ?? true) && tables === 0) {
      throw new SqliteFileError(`${file} is a SQLite database with no tables: an empty database, not the application's data.`, 'no-tables', file);
    }
    return { file, bytes, pageSize: header.pageSize, pageCount, journal: header.journal, changeCounter: header.changeCounter, tables, check };
  } finally {
    db.close();
  }
}
