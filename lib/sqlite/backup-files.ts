/**
 * The files at a backup destination: what a backup is called (a fixed name, a timestamped name in
 * a folder, or a rolling name with %-placeholders such as Litestream's `backup-%H`), the partial
 * files of a backup in progress, putting a finished backup in place atomically, and pruning old
 * ones. Times in names are UTC, like Kudu's logs and WebJob schedules.
 *
 * A backup is written to a hidden partial file beside its final name
 * (`.backup.db.partial-<host>-<pid>-<random>`), synced, then renamed over the final name, so a
 * reader of the final name sees the old backup or the new one, never part of one. A backup that is
 * killed leaves its partial file behind; the next backup into the same folder deletes it (at once
 * when it was made on this machine by a process that is gone, otherwise after a day).
 *
 * @example
 *   const dest = resolveDestination('/backups/', 'content/data/ghost.db', { gzip: true });
 *   dest.fileFor(new Date('2026-11-23T01:02:03Z'));  // /backups/ghost-20261123-010203.db.gz
 *   resolveDestination('/backups/ghost-%H.db', 'ghost.db').fileFor(now);  // /backups/ghost-01.db
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fsyncFolder, isDirectory, sqliteSideFiles } from '../fs';
import { SqliteBackupError } from './backup-error';

const PLACEHOLDERS: Record<string, { digits: number; of: (d: Date) => number }> = {
  Y: { digits: 4, of: (d) => d.getUTCFullYear() },
  m: { digits: 2, of: (d) => d.getUTCMonth() + 1 },
  d: { digits: 2, of: (d) => d.getUTCDate() },
  H: { digits: 2, of: (d) => d.getUTCHours() },
  M: { digits: 2, of: (d) => d.getUTCMinutes() },
  S: { digits: 2, of: (d) => d.getUTCSeconds() },
};

/** The pattern of a folder destination: `{source name without extension}-{yyyyMMdd-HHmmss}.db`. */
export const TIMESTAMPED = '%Y%m%d-%H%M%S';

/** A day: partial files older than this are deleted whoever made them. */
const STALE_PARTIAL_MS = 24 * 3600_000;

export interface BackupDestination {
  folder: string;
  /** The file name with its placeholders: `ghost-%Y%m%d-%H%M%S.db.gz`, `backup-%H.db`, `backup.db`. */
  pattern: string;
  /** True when the name changes with time (a folder destination or %-placeholders). */
  rolling: boolean;
  /** The record of the last backup written here, for skipIfUnchanged. */
  recordFile: string;
  fileFor(date: Date): string;
}

/**
 * Turns a destination as a user gives it into a folder and a name pattern. A path ending in `/`
 * (or `\`), or naming an existing folder, means "timestamped backups in this folder".
 */
export function resolveDestination(destination: string, source: string, options: { gzip?: boolean } = {}): BackupDestination {
  if (!destination.trim()) throw new SqliteBackupError('The backup destination is empty: give a file path, or a folder ending in /.', 'usage');
  const isFolder = /[\\/]$/.test(destination) || isDirectory(destination);
  let folder: string;
  let pattern: string;
  if (isFolder) {
    folder = path.resolve(destination);
    const stem = path.basename(source).replace(/\.[^.]*$/, '') || 'database';
    pattern = `${stem}-${TIMESTAMPED}.db`;
  } else {
    folder = path.dirname(path.resolve(destination));
    pattern = path.basename(destination);
  }
  if (options.gzip && !pattern.endsWith('.gz')) pattern += '.gz';
  if (!options.gzip && pattern.endsWith('.gz')) {
    throw new SqliteBackupError(`The destination ${destination} ends in .gz but compression is off: turn gzip on, or drop the .gz.`, 'usage');
  }
  patternRegex(pattern); // reject unknown placeholders now, not after the copy
  return {
    folder,
    pattern,
    rolling: pattern.includes('%'),
    recordFile: path.join(folder, `.${pattern}.last-backup.json`),
    fileFor: (date) => path.join(folder, expandPattern(pattern, date)),
  };
}

/** `backup-%Y%m%d.db` at 2026-11-23 → `backup-20261123.db`; `%%` is a literal `%`. */
export function expandPattern(pattern: string, date: Date): string {
  return pattern.replace(/%(.)/g, (whole, key: string) => {
    if (key === '%') return '%';
    const p = PLACEHOLDERS[key];
    if (!p) throw unknownPlaceholder(pattern, key);
    return String(p.of(date)).padStart(p.digits, '0');
  });
}

/** A regular expression matching every name the pattern can expand to. */
export function patternRegex(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c !== '%') {
      source += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      continue;
    }
    const key = pattern[++i];
    if (key === '%') source += '%';
    else if (key !== undefined && PLACEHOLDERS[key]) source += `\\d{${PLACEHOLDERS[key].digits}}`;
    else throw unknownPlaceholder(pattern, key ?? '');
  }
  return new RegExp(`^${source}$`);
}

function unknownPlaceholder(pattern: string, key: string): SqliteBackupError {
  return new SqliteBackupError(`The backup name ${pattern} has an unknown placeholder %${key}: use %Y %m %d %H %M %S (UTC), or %% for a literal %.`, 'usage');
}

/** Backups in the folder matching the pattern, newest first (by modification time, then name). */
export function listBackups(destination: BackupDestination): string[] {
  const regex = patternRegex(destination.pattern);
  let names: string[];
  try {
    names = fs.readdirSync(destination.folder);
  } catch {
    return [];
  }
  return names
    .filter((n) => regex.test(n))
    .map((n) => {
      const file = path.join(destination.folder, n);
      return { file, mtime: fs.statSync(file).mtimeMs };
    })
    .sort((a, b) => b.mtime - a.mtime || (a.file < b.file ? 1 : -1))
    .map((e) => e.file);
}

/** Deletes all but the newest `keep` backups of the destination; returns what it deleted. */
export function pruneBackups(destination: BackupDestination, keep: number, mustKeep: string): string[] {
  if (!keep) return [];
  const deleted: string[] = [];
  for (const file of listBackups(destination).filter((f) => f !== mustKeep).slice(Math.max(0, keep - 1))) {
    fs.rmSync(file, { force: true });
    deleted.push(file);
  }
  return deleted;
}

/** A short tag of this machine, so a partial file's maker can be told apart on a shared folder. */
const HOST_TAG = crypto.createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);
const PARTIAL = /^\..+\.partial-([0-9a-f]{8})-(\d+)-[0-9a-f]{6}(\.gz)?(-wal|-shm|-journal)?$/;

/** A hidden name beside `finalFile` for a backup in progress. */
export function partialFileFor(finalFile: string, suffix = ''): string {
  const tag = `${HOST_TAG}-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
  return path.join(path.dirname(finalFile), `.${path.basename(finalFile)}.partial-${tag}${suffix}`);
}

/**
 * Deletes partial files that killed backups left in the folder: those of a process of this
 * machine that is gone, and any older than a day. Returns what it deleted.
 */
export function removeStalePartials(folder: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(folder);
  } catch {
    return [];
  }
  const deleted: string[] = [];
  for (const name of names) {
    const m = PARTIAL.exec(name);
    if (!m) continue;
    const file = path.join(folder, name);
    const ours = m[1] === HOST_TAG;
    const pid = Number(m[2]);
    let stale: boolean;
    try {
      stale = (ours && pid !== process.pid && !processExists(pid)) || Date.now() - fs.statSync(file).mtimeMs > STALE_PARTIAL_MS;
    } catch {
      continue;
    }
    if (!stale) continue;
    fs.rmSync(file, { force: true });
    deleted.push(file);
  }
  return deleted;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Creates the folder (and its parents); a clear error when that is impossible. */
export function ensureFolder(folder: string): void {
  try {
    fs.mkdirSync(folder, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SqliteBackupError(`The backup folder ${folder} cannot be created (${code}): check the path and its permissions.`, 'destination');
  }
  if (!isDirectory(folder)) throw new SqliteBackupError(`The backup folder ${folder} is a file, not a folder.`, 'destination');
}

/**
 * Puts a finished, synced file in place of `finalFile` in one rename. SQLite files left beside an
 * old backup (-wal, -journal) are removed first: SQLite would apply them to the new file.
 */
export function replaceAtomically(partialFile: string, finalFile: string): void {
  for (const side of sqliteSideFiles(finalFile)) fs.rmSync(side, { force: true });
  let lastError: unknown;
  // Windows refuses to replace a file another process has open without delete sharing (a
  // download of the previous backup, an antivirus scan); such holds are brief, so retry a little.
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      fs.renameSync(partialFile, finalFile);
      fsyncFolder(path.dirname(finalFile));
      return;
    } catch (err) {
      lastError = err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'EBUSY' && code !== 'EACCES') break;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100 * (attempt + 1));
    }
  }
  const code = (lastError as NodeJS.ErrnoException).code;
  throw new SqliteBackupError(
    `The backup could not replace ${finalFile} (${code}): ${(lastError as Error).message}. Another process may have it open; the previous backup is unchanged.`,
    'destination',
  );
}
