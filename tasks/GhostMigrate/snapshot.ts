/**
 * The copy taken aside before the migrator runs, and putting it back. A plain byte copy of the
 * closed file is a complete backup here: the file is the build's own, no process has it open.
 * Putting it back first removes any -journal/-wal/-shm a killed migrator left, because SQLite would
 * otherwise replay a hot journal into the restored file the next time it is opened.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SQLITE_SIDE_SUFFIXES } from '../../lib/fs';


export type Snapshot =
  | { file: string; existed: true; copy: string; dir: string; sha256: string; bytes: number }
  /** The database did not exist (initIfMissing): restoring means removing what the run created. */
  | { file: string; existed: false };

export function sha256File(file: string): string {
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

export function takeSnapshot(file: string, tempRoot: string): Snapshot {
  if (!fs.existsSync(file)) return { file, existed: false };
  fs.mkdirSync(tempRoot, { recursive: true });
  const dir = fs.mkdtempSync(path.join(tempRoot, 'ghost-migrate-'));
  const copy = path.join(dir, path.basename(file));
  const sha256 = sha256File(file);
  fs.copyFileSync(file, copy);
  const copied = sha256File(copy);
  if (copied !== sha256) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`The copy of ${file} taken before migrating differs from the original (sha256 ${copied} against ${sha256}); nothing was changed. Check the disk of the agent and run again.`);
  }
  return { file, existed: true, copy, dir, sha256, bytes: fs.statSync(copy).size };
}

function removeSideFiles(file: string): void {
  for (const suffix of SQLITE_SIDE_SUFFIXES) fs.rmSync(file + suffix, { force: true });
}

/** Puts the database back as it was; throws when the result is not byte-identical. */
export function restoreSnapshot(snapshot: Snapshot): void {
  removeSideFiles(snapshot.file);
  if (!snapshot.existed) {
    fs.rmSync(snapshot.file, { force: true });
    return;
  }
  fs.copyFileSync(snapshot.copy, snapshot.file);
  const now = sha256File(snapshot.file);
  if (now !== snapshot.sha256) {
    throw new Error(`Restoring ${snapshot.file} from ${snapshot.copy} gave different bytes (sha256 ${now}, expected ${snapshot.sha256}).`);
  }
}

export function discardSnapshot(snapshot: Snapshot): void {
  if (snapshot.existed) fs.rmSync(snapshot.dir, { recursive: true, force: true });
}
