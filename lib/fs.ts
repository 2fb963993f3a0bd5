/**
 * Small file system steps every task shares: the way a file is put in place (written beside its
 * target under a short temporary name, synced, renamed), and SQLite's side files.
 *
 * @example
 *   const temp = tempPathBeside(target);        // '<dir>/.partial-1a2b3c4d5e6f'
 *   fs.writeFileSync(temp, data);
 *   fsyncFile(temp);
 *   fs.renameSync(temp, target);
 *   // or, for small files:
 *   writeFileAtomic(target, data);
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The files SQLite keeps beside a database while it is in use. */
export const SQLITE_SIDE_SUFFIXES = ['-journal', '-wal', '-shm'] as const;

export function sqliteSideFiles(database: string): string[] {
  return SQLITE_SIDE_SUFFIXES.map((suffix) => database + suffix);
}

/**
 * A temporary name in the target's folder (so the final rename stays on one file system). Short
 * and of fixed length, so that a target whose name is at the file system's limit still works;
 * hidden, so nothing takes it for a finished file.
 */
export function tempPathBeside(target: string): string {
  return path.join(path.dirname(target), `.partial-${randomBytes(6).toString('hex')}`);
}

export function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export function fsyncFile(file: string): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export async function fsyncFileAsync(file: string): Promise<void> {
  const handle = await fs.promises.open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Syncs a folder, so a rename in it survives a power cut (a no-op where folders cannot be opened: Windows). */
export function fsyncFolder(folder: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(folder, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Windows cannot open a folder for syncing; NTFS orders the rename itself.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Writes a whole file so that readers see the old one or the new one, never a part. */
export function writeFileAtomic(target: string, data: string | Buffer): void {
  const temp = tempPathBeside(target);
  try {
    fs.writeFileSync(temp, data);
    fsyncFile(temp);
    fs.renameSync(temp, target);
  } finally {
    fs.rmSync(temp, { force: true });
  }
}

/**
 * `p` resolved against `base`, keeping a trailing slash (or backslash) as the platform's
 * separator: a destination written as a folder stays a folder, on every agent. On Linux, where a
 * backslash is otherwise a character of a name, a trailing one still means "a folder", so that a
 * pipeline shared with Windows agents means the same thing on both.
 */
export function resolveKeepingSlash(base: string, p: string, pathApi: typeof path = path): string {
  if (!endsWithSeparator(p)) return pathApi.resolve(base, p);
  const trimmed = p.replace(/[/\\]+$/, '');
  // A root (`/`, `C:\`) keeps its separator: `C:` alone means "the current folder on C:".
  const resolved = trimmed === '' || /^[a-zA-Z]:$/.test(trimmed) ? pathApi.resolve(base, p) : pathApi.resolve(base, trimmed);
  return resolved.endsWith(pathApi.sep) ? resolved : resolved + pathApi.sep;
}

/** Written as a folder: ends with a slash or backslash. */
export function endsWithSeparator(p: string): boolean {
  return /[/\\]$/.test(p);
}
