/**
 * The backup WebJob: a triggered (or scheduled) job that backs up the app's live SQLite database
 * on Azure App Service with the backup engine, where the pipeline agent cannot reach the file.
 * Kudu runs `node run.js [arguments]`; a run's arguments also arrive in WEBJOBS_COMMAND_ARGUMENTS.
 *
 *   run.js [--source <path>] [--destination <path>] [--verify integrity|quick|none] [--gzip]
 *          [--skip-if-unchanged] [--keep-last <n>] [--busy-timeout <ms>] [--heartbeat-seconds <s>]
 *
 * Defaults: `site/wwwroot/content/data/ghost.db` → `site/wwwroot/content/data/backup.db`; relative
 * paths are from %HOME% (D:\home on Windows, /home on Linux). The destination may be a folder
 * ending in / (timestamped names) or hold %Y %m %d %H %M %S (UTC).
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
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { version } from '../../package.json';
import { backupSqlite, SqliteBackupError, type BackupReport } from '../../lib/sqlite/backup';
import { progressPrinter } from '../../lib/sqlite/cli';
import { formatFingerprint } from '../../lib/sqlite/fingerprint';
import { formatBytes } from '../../lib/format';
import { neutraliseCommands } from '../../lib/text';
import { placeManifest } from '../../lib/sqlite/manifest';
import { SqliteFileError } from '../../lib/sqlite/verify';
import { lineLog, type Log } from '../../lib/log';

export const DEFAULT_SOURCE = 'site/wwwroot/content/data/ghost.db';
export const DEFAULT_DESTINATION = 'site/wwwroot/content/data/backup.db';
const DEFAULT_HEARTBEAT_SECONDS = 20;

class UsageError extends Error {}

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

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = argv.length ? argv : splitArguments(env.WEBJOBS_COMMAND_ARGUMENTS ?? '');
  let options;
  try {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        source: { type: 'string', default: DEFAULT_SOURCE },
        destination: { type: 'string', default: DEFAULT_DESTINATION },
        verify: { type: 'string', default: 'integrity' },
        gzip: { type: 'boolean', default: false },
        'skip-if-unchanged': { type: 'boolean', default: false },
        'keep-last': { type: 'string', default: '0' },
        'busy-timeout': { type: 'string', default: '10000' },
        'heartbeat-seconds': { type: 'string', default: String(DEFAULT_HEARTBEAT_SECONDS) },
      },
    });
    if (positionals.length) throw new UsageError(`Unexpected argument '${positionals[0]}'.`);
    const home = env.HOME;
    const fromHome = (p: string) => {
      if (path.isAbsolute(p)) return p;
      if (!home) throw new UsageError(`HOME is not set, so '${p}' cannot be found: run this as an App Service WebJob, or give an absolute path.`);
      const folder = /[\\/]$/.test(p);
      return path.resolve(home, p) + (folder ? path.sep : '');
    };
    options = {
      source: fromHome(values.source),
      destination: fromHome(values.destination),
      verify: values.verify as 'integrity',
      gzip: values.gzip,
      skipIfUnchanged: values['skip-if-unchanged'],
      keepLast: number('--keep-last', values['keep-last']),
      busyTimeoutMs: number('--busy-timeout', values['busy-timeout']),
      heartbeatMs: Math.max(10, number('--heartbeat-seconds', values['heartbeat-seconds']) * 1000),
    };
  } catch (err) {
    print(`Bad arguments: ${(err as Error).message}`);
    print('Usage: run.js [--source <path>] [--destination <path>] [--verify integrity|quick|none] [--gzip] [--skip-if-unchanged] [--keep-last <n>] [--busy-timeout <ms>]');
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
  const printProgress = progressPrinter(print, Math.min(options.heartbeatMs, 10_000));
  try {
    const report = await backupSqlite(options.source, options.destination, {
      verify: options.verify,
      gzip: options.gzip,
      skipIfUnchanged: options.skipIfUnchanged,
      keepLast: options.keepLast,
      busyTimeoutMs: options.busyTimeoutMs,
      log,
      onProgress: (p) => {
        heartbeat.status(`${p.phase} ${p.total ? Math.floor((100 * p.done) / p.total) : 0}% of ${formatBytes(p.total)}`);
        printProgress(p);
      },
    });
    const manifest = placeManifest(report, version);
    print(`Wrote ${manifest}: fingerprint ${formatFingerprint(report.fingerprint)}.`);
    print(
      `BACKUP_RESULT ${JSON.stringify({
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
      })}`,
    );
    return 0;
  } catch (err) {
    const known = err instanceof SqliteBackupError || err instanceof SqliteFileError;
    print(`Backup failed: ${known ? (err as Error).message : ((err as Error).stack ?? String(err))}`);
    return err instanceof SqliteBackupError && err.kind === 'usage' ? 2 : 1;
  } finally {
    heartbeat.stop();
  }
}

function number(name: string, raw: string): number {
  const n = Number(raw);
  if (!raw.trim() || !Number.isFinite(n) || n < 0) throw new UsageError(`${name} must be a number, 0 or more, not '${raw}'.`);
  return n;
}

if (require.main === module) {
  main(process.argv.slice(2), process.env).then((code) => (process.exitCode = code));
}
