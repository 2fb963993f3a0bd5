/**
 * The manifest every backup front end (the WebJob, SqliteBackup, the CLI) writes beside each backup
 * (`backup.db.json` for `backup.db`): what the backup holds and where it came from, above all the
 * source's fingerprint at the instant of the copy, which a release compares with the live database
 * right before the slot swap. Its sha256 ties it to one backup file: a download checks the two agree.
 *
 * @example
 *   placeManifest(report, version);   // after the backup is in place
 *   const manifest = parseManifest(text, 'site/wwwroot/content/data/backup.db.json');
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackupReport } from './backup';
import { SqliteBackupError } from './backup-error';
import { formatFingerprint, parseFingerprint } from './fingerprint';
import { writeFileAtomic } from '../fs';

/** Marks a JSON file as one of these manifests (a `.json` beside a file may be anything else). */
export const MANIFEST_FORMAT = 'appservice-sqlite-backup-manifest/1';

export interface BackupManifest {
  format: typeof MANIFEST_FORMAT;
  /** The backup's file name; the manifest sits beside it. */
  file: string;
  /** The source's fingerprint at the instant of the copy (lib/sqlite/fingerprint.ts, compact form). */
  fingerprint: string;
  /** Size and SHA-256 of the backup file as written (the .gz when compressed). */
  bytes: number;
  sha256: string;
  /** Size and SHA-256 of the database itself (equal to the above without compression). */
  databaseBytes: number;
  databaseSha256: string;
  gzip: boolean;
  journal: 'rollback' | 'wal';
  pageSize: number;
  pageCount: number;
  /** The live database that was backed up (a path on the app). */
  source: string;
  /** When the backup's state was copied (ISO, UTC). */
  takenAt: string;
  /** Set when a later run found the database unchanged and kept this backup: the state was still current then. */
  confirmedAt?: string;
  /** The longest time the app's writers could have waited on the backup. */
  maxLockMs: number;
  /** The version of the extension (and of the backup job) that wrote it. */
  extensionVersion: string;
}

export function manifestFileFor(backupFile: string): string {
  return `${backupFile}.json`;
}

export function manifestFromReport(report: BackupReport, extensionVersion: string, now = new Date()): BackupManifest {
  return {
    format: MANIFEST_FORMAT,
    file: path.basename(report.file),
    fingerprint: formatFingerprint(report.fingerprint),
    bytes: report.bytes,
    sha256: report.sha256,
    databaseBytes: report.databaseBytes,
    databaseSha256: report.databaseSha256,
    gzip: report.gzip,
    journal: report.journal,
    pageSize: report.pageSize,
    pageCount: report.pageCount,
    source: report.source,
    takenAt: report.takenAt,
    ...(report.skipped ? { confirmedAt: now.toISOString() } : {}),
    maxLockMs: Math.ceil(report.maxLockMs),
    extensionVersion,
  };
}

/**
 * Writes the manifest beside the backup, whole or not at all: a temporary file in the same
 * folder, synced, renamed over the old manifest. Returns the manifest's path.
 */
export function writeManifest(backupFile: string, manifest: BackupManifest): string {
  const target = manifestFileFor(backupFile);
  writeFileAtomic(target, JSON.stringify(manifest, null, 2) + '\n');
  return target;
}

/**
 * Writes the manifest beside a backup that is in place, and removes those of the backups keepLast
 * deleted. If it cannot be written, the old manifest goes too — it describes the previous backup —
 * and this throws: without it a release cannot check the live database. Returns its path.
 */
export function placeManifest(report: BackupReport, extensionVersion: string): string {
  for (const deleted of report.deleted) fs.rmSync(manifestFileFor(deleted), { force: true });
  try {
    return writeManifest(report.file, manifestFromReport(report, extensionVersion));
  } catch (err) {
    fs.rmSync(manifestFileFor(report.file), { force: true });
    throw new SqliteBackupError(
      `The backup ${report.file} is in place, but its manifest ${manifestFileFor(report.file)} could not be written (${(err as Error).message}): ` +
        `check the free space and permissions of the folder, and run the backup again.`,
      'destination',
    );
  }
}

/**
 * The manifest in `text`, or undefined when the text is not one (not JSON, or JSON without the
 * manifest's `format`: some other file that happens to sit there). Throws when it says it is a
 * manifest but a field is missing or wrong.
 */
export function parseManifest(text: string, where: string): BackupManifest | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || (value as { format?: unknown }).format !== MANIFEST_FORMAT) return undefined;
  const m = value as Record<string, unknown>;
  const bad = (field: string, want: string): never => {
    throw new Error(`The backup manifest ${where} is damaged: '${field}' should be ${want}, not ${JSON.stringify(m[field])}. Run the backup again to rewrite it.`);
  };
  for (const field of ['file', 'fingerprint', 'source', 'takenAt', 'extensionVersion'] as const) if (typeof m[field] !== 'string' || !m[field]) bad(field, 'a string');
  for (const field of ['bytes', 'databaseBytes', 'pageSize', 'pageCount', 'maxLockMs'] as const) {
    if (typeof m[field] !== 'number' || !Number.isInteger(m[field]) || (m[field] as number) < 0) bad(field, 'a whole number');
  }
  for (const field of ['sha256', 'databaseSha256'] as const) if (typeof m[field] !== 'string' || !/^[0-9a-f]{64}$/.test(m[field] as string)) bad(field, 'a SHA-256 in hex');
  if (m.journal !== 'rollback' && m.journal !== 'wal') bad('journal', "'rollback' or 'wal'");
  if (typeof m.gzip !== 'boolean') bad('gzip', 'true or false');
  if (m.confirmedAt !== undefined && typeof m.confirmedAt !== 'string') bad('confirmedAt', 'a time');
  try {
    parseFingerprint(m.fingerprint as string);
  } catch (err) {
    throw new Error(`The backup manifest ${where} is damaged: ${(err as Error).message}`);
  }
  return m as unknown as BackupManifest;
}
