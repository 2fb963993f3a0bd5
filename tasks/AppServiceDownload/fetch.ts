/**
 * The work of AppServiceDownload: bring a file or a folder down from the app through Kudu, check
 * it, and only then put it where the next step looks. Everything lands first under a temporary
 * name beside the destination, so a failed run leaves the destination as it was.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { extractZip, listZip } from '../../lib/archive';
import { listSome as list, secondsSince as seconds } from '../../lib/format';
import { fsyncFile, isDirectory, tempPathBeside as tempBeside } from '../../lib/fs';
import type { KuduClient } from '../../lib/kudu/client';
import { downloadFile, downloadZip, IsFolderError } from '../../lib/kudu/download';
import { manifestFileFor, parseManifest, type BackupManifest } from '../../lib/sqlite/manifest';
import { SqliteFileError, startsLikeSqlite, verifySqliteFile, type SqliteFileReport } from '../../lib/sqlite/verify';
import type { Log } from '../../lib/log';

export type VerifySqlite = 'auto' | 'always' | 'never';

export interface FetchRequest {
  /** Relative to %HOME%; a trailing slash means a folder. */
  remotePath: string;
  /** Absolute. A file path for a file, a folder for a folder. */
  destination: string;
  extract: boolean;
  verifySqlite: VerifySqlite;
  requireComplete: boolean;
  overwrite: boolean;
  /** Tries after the first, for every request and for the body. */
  retries: number;
}

export interface FetchResult {
  kind: 'file' | 'folder' | 'zip';
  path: string;
  files: number;
  bytes: number;
  sha256?: string;
  databases: SqliteFileReport[];
  /** Files the server has that the archive lacked (only when requireComplete is false). */
  missing: string[];
  /** A file's backup manifest (`<remotePath>.json`, written by the built-in backup job), checked against the file. */
  manifest?: BackupManifest;
}

const DB_EXTENSIONS = /\.(db|sqlite|sqlite3)$/i;

export async function fetchFromAppService(kudu: KuduClient, request: FetchRequest, log: Log): Promise<FetchResult> {
  const remote = request.remotePath.replace(/\\/g, '/').replace(/^\/+/, '');
  if (!remote || remote === '/') throw new Error(`remotePath is empty: give a path relative to %HOME%, like site/wwwroot/content/data/backup.db.`);
  if (remote.endsWith('/')) return fetchFolder(kudu, remote, request, log);
  try {
    return await fetchFile(kudu, remote, request, log);
  } catch (err) {
    if (!(err instanceof IsFolderError)) throw err;
    log.info(`${remote} is a folder on the server; downloading it as a folder.`);
    return fetchFolder(kudu, remote + '/', request, log);
  }
}

async function fetchFile(kudu: KuduClient, remote: string, request: FetchRequest, log: Log): Promise<FetchResult> {
  let target = request.destination;
  if (/[/\\]$/.test(target) || isDirectory(target)) target = path.join(target, path.posix.basename(remote));
  if (fs.existsSync(target) && !request.overwrite) {
    throw new Error(`${target} already exists and overwrite is false. Remove it, choose another destination, or set overwrite: true.`);
  }
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const temp = tempBeside(target);
  try {
    log.info(`Downloading ${remote} from ${kudu.host} to ${target}`);
    const started = Date.now();
    const got = await downloadFile(kudu, remote, temp, {
      attempts: request.retries + 1,
      onInterruption: (m) => log.warn(m),
      onProgress: (bytes, total) => log.debug(`${bytes}${total ? ` of ${total}` : ''} bytes`),
    });
    syncIfReplacing(temp, target);
    const databases: SqliteFileReport[] = [];
    if (appliesSqliteCheck(request.verifySqlite, remote, temp)) databases.push(checkDatabase(temp, remote, got.bytes));
    // Read after the file: the backup job renames a new backup into place before it rewrites the
    // manifest, so a backup that ran meanwhile shows as a mismatch, never as a wrong match.
    const manifest = await fetchManifest(kudu, remote, got.sha256, log);
    fs.renameSync(temp, target);
    log.info(`Downloaded ${got.bytes} bytes in ${seconds(started)} s, sha256 ${got.sha256}${got.resumes ? `, resumed ${got.resumes}×` : ''}${got.restarts ? `, restarted ${got.restarts}× (the file changed)` : ''}.`);
    return { kind: 'file', path: target, files: 1, bytes: got.bytes, sha256: got.sha256, databases, missing: [], manifest };
  } finally {
    fs.rmSync(temp, { force: true });
  }
}

/**
 * The manifest beside a downloaded backup, when there is one (a 404 means none: any other file),
 * after checking that it describes the file that came down.
 */
async function fetchManifest(kudu: KuduClient, remote: string, sha256: string, log: Log): Promise<BackupManifest | undefined> {
  const where = manifestFileFor(remote);
  const text = await kudu.readText(where);
  if (text === undefined) return undefined;
  const manifest = parseManifest(text, where);
  if (!manifest) {
    log.info(`${where} is not a backup manifest; ignoring it.`);
    return undefined;
  }
  if (manifest.sha256 !== sha256) {
    throw new Error(
      `The backup and its manifest disagree: ${where} describes a file with sha256 ${manifest.sha256} (taken ${manifest.takenAt}), ` +
        `but the downloaded ${remote} has sha256 ${sha256}. A backup probably ran during the download (the job puts the new file in place, ` +
        `then rewrites the manifest): run the download again. If it keeps failing, run the backup again to rewrite both.`,
    );
  }
  log.info(`Backup manifest ${where}: taken ${manifest.takenAt} from ${manifest.source}, fingerprint ${manifest.fingerprint}.`);
  return manifest;
}

async function fetchFolder(kudu: KuduClient, remote: string, request: FetchRequest, log: Log): Promise<FetchResult> {
  const folder = remote.replace(/\/+$/, '');
  const name = path.posix.basename(folder) || 'wwwroot';
  const started = Date.now();
  const stamp = new Date(started - 2000);
  // The server's listing is only needed at the end; asking for it while the zip streams in hides
  // its cost (one request per folder) behind the download.
  const listing = settle(kudu.listFilesRecursive(folder));

  if (!request.extract) {
    const target = /\.zip$/i.test(request.destination) ? request.destination : path.join(request.destination, `${name}.zip`);
    if (fs.existsSync(target) && !request.overwrite) throw new Error(`${target} already exists and overwrite is false.`);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const temp = tempBeside(target);
    try {
      const zip = await downloadCheckedZip(kudu, folder, temp, request, log, true);
      const entries = (await listZip(temp)).filter((e) => !e.isDirectory);
      const missing = checkComplete(folder, await listing, new Set(entries.map((e) => e.name)), stamp, request, log);
      syncIfReplacing(temp, target);
      fs.renameSync(temp, target);
      log.info(`Saved ${folder}/ as ${target}: ${entries.length} files, ${zip.bytes} bytes, in ${seconds(started)} s.`);
      return { kind: 'zip', path: target, files: entries.length, bytes: zip.bytes, sha256: zip.sha256, databases: [], missing };
    } finally {
      fs.rmSync(temp, { force: true });
    }
  }

  const destination = request.destination;
  const staging = tempBeside(destination);
  const zipFile = staging + '.zip';
  fs.mkdirSync(path.dirname(destination), { recursive: true });
  try {
    log.info(`Downloading ${folder}/ from ${kudu.host} as a zip`);
    const zip = await downloadCheckedZip(kudu, folder, zipFile, request, log, false);
    log.info(`Got ${zip.bytes} bytes of zip in ${seconds(started)} s; extracting`);
    const extracted = await extractZip({ zipFile, destination: staging }).catch((err: Error) => {
      throw new Error(`The zip of ${folder}/ from ${kudu.host}: ${err.message.split(zipFile).join('the archive')}`);
    });
    fs.rmSync(zipFile, { force: true });
    const missing = checkComplete(folder, await listing, new Set(extracted.entries), stamp, request, log);
    const databases: SqliteFileReport[] = [];
    if (request.verifySqlite !== 'never') {
      for (const rel of extracted.entries) {
        const file = path.join(staging, rel);
        if (appliesSqliteCheck(request.verifySqlite === 'always' ? 'auto' : request.verifySqlite, rel, file)) {
          databases.push(checkDatabase(file, `${folder}/${rel}`, fs.statSync(file).size));
        }
      }
    }
    moveIntoPlace(staging, destination, request.overwrite);
    log.info(`Extracted ${extracted.files} files (${extracted.bytes} bytes) into ${destination} in ${seconds(started)} s.`);
    return { kind: 'folder', path: destination, files: extracted.files, bytes: extracted.bytes, databases, missing };
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
    fs.rmSync(zipFile, { force: true });
  }
}

/** Kudu's zip is streamed without a length: a cut-off body still looks like a finished response. */
async function downloadCheckedZip(kudu: KuduClient, folder: string, temp: string, request: FetchRequest, log: Log, hash: boolean) {
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= request.retries + 1; attempt++) {
    const zip = await downloadZip(kudu, folder, temp, { attempts: request.retries + 2 - attempt, hash, onInterruption: (m) => log.warn(m) });
    try {
      await listZip(temp);
      return zip;
    } catch (err) {
      lastError = err as Error;
      log.warn(`The zip of ${folder}/ is incomplete or corrupt (${lastError.message}); downloading it again.`);
    }
  }
  throw new Error(`The zip of ${folder}/ from ${kudu.host} was incomplete or corrupt in ${request.retries + 1} tries: ${lastError?.message}`);
}

/**
 * Kudu's zip endpoint leaves out, silently, every file it cannot open (in use or locked). The VFS
 * listing shows what the server has; a file missing from the archive and older than the download
 * was skipped.
 */
function checkComplete(folder: string, listing: Settled<ServerFile[]>, archived: Set<string>, stamp: Date, request: FetchRequest, log: Log): string[] {
  if ('error' in listing) throw listing.error;
  const onServer = listing.value;
  const absent = onServer.filter((f) => !archived.has(f.path));
  const skipped = absent.filter((f) => !(Date.parse(f.mtime) > stamp.getTime())).map((f) => f.path);
  const newer = absent.filter((f) => Date.parse(f.mtime) > stamp.getTime()).map((f) => f.path);
  if (newer.length) log.info(`${newer.length} file(s) appeared on the server during the download and are not included: ${list(newer)}`);
  if (!skipped.length) return [];
  const message =
    `${skipped.length} file(s) in ${folder}/ on the server are missing from Kudu's zip: ${list(skipped)}. ` +
    `Kudu's zip endpoint silently skips files it cannot open because another process holds them (in use or locked). ` +
    `Download those files one by one (a file download reads files opened for sharing), or stop what holds them.`;
  if (request.requireComplete) throw new Error(message + ' Set requireComplete: false to accept an incomplete folder with a warning.');
  log.warn(message);
  return skipped;
}

type ServerFile = { path: string; size: number; mtime: string };
type Settled<T> = { value: T } | { error: unknown };

/** A promise that never rejects (so an early failure elsewhere leaves no unhandled rejection). */
function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

function appliesSqliteCheck(mode: VerifySqlite, name: string, file: string): boolean {
  if (mode === 'never') return false;
  if (mode === 'always' || DB_EXTENSIONS.test(name)) return true;
  return startsLikeSqlite(file);
}

function checkDatabase(file: string, remote: string, bytes: number): SqliteFileReport {
  if (bytes === 0) {
    throw new Error(
      `${remote} is empty (0 bytes). App Service gives a 0-byte copy of a SQLite database that the app holds open and locked ` +
        `(the platform's own backup does the same). Download a backup made with SQLite's online backup API instead: add ` +
        `AppServiceWebJobRun with installJob: true before this step (its built-in job writes site/wwwroot/content/data/backup.db ` +
        `without stopping the app) and download that file.`,
    );
  }
  try {
    return verifySqliteFile(file);
  } catch (err) {
    if (err instanceof SqliteFileError) throw new Error(`The downloaded ${remote} is not a healthy SQLite database: ${err.message.split(file).join(remote)}`);
    throw err;
  }
}

/**
 * Puts the extracted tree where it belongs: a rename when the destination does not exist yet,
 * otherwise file by file over what is there (files the archive lacks stay). With overwrite off,
 * nothing moves if any file would be replaced.
 */
function moveIntoPlace(staging: string, destination: string, overwrite: boolean): void {
  if (!fs.existsSync(destination)) {
    fs.renameSync(staging, destination);
    return;
  }
  if (!isDirectory(destination)) throw new Error(`${destination} exists and is a file; a folder download needs a folder as its destination.`);
  const { files, emptyFolders } = walk(staging);
  if (!overwrite) {
    const clashes = files.filter((rel) => fs.existsSync(path.join(destination, rel)));
    if (clashes.length) throw new Error(`overwrite is false and ${clashes.length} file(s) already exist in ${destination}: ${list(clashes)}`);
  }
  for (const rel of files) {
    const target = path.join(destination, rel);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.renameSync(path.join(staging, rel), target);
  }
  for (const rel of emptyFolders) fs.mkdirSync(path.join(destination, rel), { recursive: true });
}

function walk(root: string, rel = '', out = { files: [] as string[], emptyFolders: [] as string[] }) {
  const entries = fs.readdirSync(path.join(root, rel), { withFileTypes: true });
  if (rel && entries.length === 0) out.emptyFolders.push(rel);
  for (const entry of entries) {
    const child = rel ? path.join(rel, entry.name) : entry.name;
    if (entry.isDirectory()) walk(root, child, out);
    else out.files.push(child);
  }
  return out;
}

/**
 * Before a rename replaces a file, the new one goes to disk first: otherwise a power cut right
 * after the rename can leave neither the old copy nor the new one. A file that replaces nothing
 * risks nothing a new download does not mend, and skipping the sync saves seconds per GiB.
 */
function syncIfReplacing(temp: string, target: string): void {
  if (fs.existsSync(target)) fsyncFile(temp);
}
