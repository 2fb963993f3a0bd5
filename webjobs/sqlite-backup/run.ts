/**
 * The backup WebJob: a triggered (or scheduled) job that backs up the app's live SQLite database
 * on Azure App Service with the backup engine, where the pipeline agent cannot reach the file.
 * Kudu starts run.cmd (Windows) or run.sh (Linux), which start the launcher (launcher.ts, shipped
 * as run.js), which picks the best Node on the worker and runs this file (shipped as
 * sqlite-backup.js) with it. A run's arguments arrive in WEBJOBS_COMMAND_ARGUMENTS, or on the
 * command line when it is run by hand.
 *
 *   run.js [--source <path>] [--destination <path>] [--verify integrity|quick|none] [--gzip]
 *          [--skip-if-unchanged] [--keep-last <n>] [--busy-timeout <ms>] [--heartbeat-seconds <s>]
 *
 * The arguments are the CLI's (lib/sqlite/backup-args.ts). Defaults:
 * `site/wwwroot/content/data/ghost.db` → `site/wwwroot/content/data/backup.db`; relative paths are
 * from %HOME% (D:\home on Windows, /home on Linux). The destination may be a folder ending in /
 * (timestamped names) or hold %Y %m %d %H %M %S (UTC).
 *
 * Output: one line per phase; a heartbeat at least every 20 s even while a long step blocks the
 * main thread (Kudu aborts a triggered job that prints nothing and uses no CPU for too long);
 * the engine's summary line; then `BACKUP_RESULT {json}` for machines. Exit code 0 on success (or skipped
 * as unchanged), 1 on failure — Kudu shows the run as Failed — and 2 for bad arguments.
 *
 * Beside the backup it writes a manifest (`backup.db.json` for `backup.db`, lib/sqlite/manifest.ts)
 * once the backup is in place: the source's fingerprint at the instant of the copy, the backup's
 * sha256 and size, and where and when it was taken. AppServiceDownload reads it and hands the
 * fingerprint to the release, whose AppServiceDatabaseGuard checks that production has not changed
 * since.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { version } from '../../package.json';
import { backupSqlite, SqliteBackupError, type BackupProgress, type BackupReport } from '../../lib/sqlite/backup';
import { BACKUP_OPTIONS_HELP, BackupUsageError, parseBackupArguments } from '../../lib/sqlite/backup-args';
import { progressPrinter } from '../../lib/sqlite/cli';
import { sqliteDriver, SqliteDriverError } from '../../lib/sqlite/driver';
import { formatFingerprint } from '../../lib/sqlite/fingerprint';
import { formatBytes } from '../../lib/format';
import { neutraliseCommands } from '../../lib/text';
import { placeManifest } from '../../lib/sqlite/manifest';
import { readHeader, SqliteFileError } from '../../lib/sqlite/verify';
import { lineLog, type Log } from '../../lib/log';
import { sharedStorageOf, storageWarnings } from './storage';

export const DEFAULT_SOURCE = 'site/wwwroot/content/data/ghost.db';
export const DEFAULT_DESTINATION = 'site/wwwroot/content/data/backup.db';

const USAGE = `Usage: run.js [--source <path>] [--destination <path>] [options]

  --source <path>          the live database (default ${DEFAULT_SOURCE}, from %HOME%)
  --destination <path>     a file, a folder ending in / (timestamped names), or a name with
                           %Y %m %d %H %M %S (UTC) (default ${DEFAULT_DESTINATION})
${BACKUP_OPTIONS_HELP}`;

/** Writes whole lines straight to stdout, so that they interleave cleanly with the heartbeat thread's. */
function print(line: string): void {
  fs.writeSync(1, `${neutraliseCommands(line)}\n`);
}

/**
 * A thread that prints "still working" every few seconds. It runs beside the main thread, so it
 * keeps printing while the main thread is inside one long SQLite call (an integrity check of a
 * large database) that no timer of the main thread could interrupt.
 */
const HEARTBEAT_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const started = Date.now();
let status = 'starting';
parentPort.on('message', (m) => { status = m; });
setInterval(() => {
  fs.writeSync(1, 'still working (' + Math.round((Date.now() - started) / 1000) + ' s): ' + status + '\\n');
}, workerData.everyMs);
`;

function startHeartbeat(everyMs: number): { status(text: string): void; stop(): void } {
  const worker = new Worker(HEARTBEAT_SOURCE, { eval: true, workerData: { everyMs } });
  worker.unref();
  return {
    status: (text) => worker.postMessage(text),
    stop: () => void worker.terminate(),
  };
}

/** Splits WEBJOBS_COMMAND_ARGUMENTS like a shell would for simple cases: spaces, "double" and 'single' quotes. */
export function splitArguments(text: string): string[] {
  const args: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|([^\s"']+)/g;
  let current: string | undefined;
  let lastEnd = -1;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const piece = m[1] ?? m[2] ?? m[3];
    // Pieces that touch (--destination="a b") belong to one argument.
    if (current !== undefined && m.index === lastEnd) current += piece;
    else {
      if (current !== undefined) args.push(current);
      current = piece;
    }
    lastEnd = m.index + m[0].length;
  }
  if (current !== undefined) args.push(current);
  return args;
}

interface JobOptions {
  source: string;
  destination: string;
  verify: 'integrity' | 'quick' | 'none';
  gzip: boolean;
  skipIfUnchanged: boolean;
  keepLast: number;
  busyTimeoutMs: number;
  heartbeatMs: number;
}

/** The run's options: its arguments (the command line, else WEBJOBS_COMMAND_ARGUMENTS), paths from %HOME%. */
export function jobOptions(argv: string[], env: NodeJS.ProcessEnv): JobOptions {
  const args = parseBackupArguments(argv.length ? argv : splitArguments(env.WEBJOBS_COMMAND_ARGUMENTS ?? ''), 'webjob');
  const fromHome = (p: string) => {
    if (path.isAbsolute(p)) return p;
    if (!env.HOME) throw new BackupUsageError(`HOME is not set, so '${p}' cannot be found: run this as an App Service WebJob, or give an absolute path.`);
    const folder = /[\\/]$/.test(p);
    return path.resolve(env.HOME, p) + (folder ? path.sep : '');
  };
  return {
    source: fromHome(args.source ?? DEFAULT_SOURCE),
    destination: fromHome(args.destination ?? DEFAULT_DESTINATION),
    verify: args.verify,
    gzip: args.gzip,
    skipIfUnchanged: args.skipIfUnchanged,
    keepLast: args.keepLast,
    busyTimeoutMs: args.busyTimeoutMs,
    heartbeatMs: Math.max(10, args.heartbeatSeconds * 1000),
  };
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let options: JobOptions;
  try {
    options = jobOptions(argv, env);
  } catch (err) {
    if (!(err instanceof BackupUsageError)) throw err;
    print(`Bad arguments: ${err.message}`);
    print(USAGE);
    return 2;
  }
  const heartbeat = startHeartbeat(options.heartbeatMs);
  const base = lineLog(print);
  const log: Log = {
    ...base,
    info: (m) => {
      base.info(m);
      heartbeat.status(m);
    },
  };
  try {
    const driver = sqliteDriver();
    log.info(`SQLite ${driver.sqliteVersion} through ${driver.name}, on Node ${process.version} (${process.arch}).`);
    warnAboutStorage(options.source, env, log);
    const report = await backupSqlite(options.source, options.destination, {
      verify: options.verify,
      gzip: options.gzip,
      skipIfUnchanged: options.skipIfUnchanged,
      keepLast: options.keepLast,
      busyTimeoutMs: options.busyTimeoutMs,
      log,
      onProgress: progressListener(heartbeat, Math.min(options.heartbeatMs, 10_000)),
    });
    const manifest = placeManifest(report, version);
    print(`Wrote ${manifest}: fingerprint ${formatFingerprint(report.fingerprint)}.`);
    print(`BACKUP_RESULT ${JSON.stringify(resultOf(report, manifest, driver.name))}`);
    return 0;
  } catch (err) {
    const known = err instanceof SqliteBackupError || err instanceof SqliteFileError || err instanceof SqliteDriverError;
    print(`Backup failed: ${known ? (err as Error).message : ((err as Error).stack ?? String(err))}`);
    return err instanceof SqliteBackupError && err.kind === 'usage' ? 2 : 1;
  } finally {
    heartbeat.stop();
  }
}

/** Progress lines, and the heartbeat's status. */
function progressListener(heartbeat: { status(text: string): void }, everyMs: number): (p: BackupProgress) => void {
  const printProgress = progressPrinter(print, everyMs);
  return (p) => {
    heartbeat.status(`${p.phase} ${p.total ? Math.floor((100 * p.done) / p.total) : 0}% of ${formatBytes(p.total)}`);
    printProgress(p);
  };
}

/** Once per run: a WAL database on App Service's shared storage, and the instance count the job cannot see. */
function warnAboutStorage(source: string, env: NodeJS.ProcessEnv, log: Log): void {
  const shared = sharedStorageOf(source, { env, platform: process.platform });
  if (!shared) return;
  let journal: 'rollback' | 'wal';
  try {
    journal = readHeader(source).header.journal;
  } catch {
    return; // the backup says what is wrong with the file
  }
  const { warn, info } = storageWarnings(source, journal, shared);
  for (const line of warn) log.warn(line);
  for (const line of info) log.info(line);
}

/** The BACKUP_RESULT line's fields: what a pipeline needs without parsing the prose. */
function resultOf(report: BackupReport, manifest: string, driver: string): Record<string, unknown> {
  return {
    file: report.file,
    skipped: report.skipped,
    bytes: report.bytes,
    sha256: report.sha256,
    databaseBytes: report.databaseBytes,
    databaseSha256: report.databaseSha256,
    journal: report.journal,
    pageSize: report.pageSize,
    pageCount: report.pageCount,
    changeCounter: report.changeCounter,
    maxLockMs: Math.ceil(report.maxLockMs),
    durationMs: Math.round(report.durationMs),
    takenAt: report.takenAt,
    fingerprint: formatFingerprint(report.fingerprint),
    manifest,
    driver,
    node: process.version,
  };
}

if (require.main === module) {
  main(process.argv.slice(2), process.env).then((code) => (process.exitCode = code));
}
