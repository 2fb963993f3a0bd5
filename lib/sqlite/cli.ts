/**
 * A small command line for the backup engine, for cron jobs, scripts and the tests:
 *
 *   node out/lib/sqlite/cli.js backup <source> <destination>
 *        [--verify integrity|quick|none] [--gzip] [--skip-if-unchanged] [--keep-last N]
 *        [--busy-timeout ms] [--heartbeat-seconds s] [--json]
 *
 * The arguments are the WebJob's (lib/sqlite/backup-args.ts). Like the WebJob and SqliteBackup it
 * writes the backup's manifest beside it (lib/sqlite/manifest.ts). Phase lines and progress go to
 * stderr; the report goes to stdout (as JSON with --json). Exit code 0 when a backup was written or
 * skipped as unchanged, 1 when it failed, 2 for a usage error.
 *
 * @example
 *   node out/lib/sqlite/cli.js backup /srv/ghost/content/data/ghost.db /backups/ --gzip --keep-last 14
 */
import { version } from '../../package.json';
import { lineLog, type Log } from '../log';
import { backupSqlite, summaryLine, SqliteBackupError, type BackupProgress, type BackupReport } from './backup';
import { BACKUP_OPTIONS_HELP, BackupUsageError, parseBackupArguments, type BackupArguments } from './backup-args';
import { formatBytes } from '../format';
import { placeManifest } from './manifest';
import { SqliteFileError } from './verify';

const USAGE = `Usage: cli.js backup <source> <destination> [options]

  <destination>            a file, a folder ending in / (timestamped names), or a name with
                           %Y %m %d %H %M %S (UTC), e.g. backup-%H.db
${BACKUP_OPTIONS_HELP}
  --json                   print the report as JSON
`;

/** A log that writes phase lines to stderr, prefixed with the time. */
export function stderrLog(): Log {
  return lineLog((m) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`));
}

/**
 * Progress of the long copy phases, at most every few seconds; the engine's own log already has a
 * line when each phase is done.
 */
export function progressPrinter(write: (line: string) => void, everyMs = 5000): (p: BackupProgress) => void {
  let phase = '';
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (!(p.done > 0 && p.done < p.total) || (p.phase === phase && now - last < everyMs)) return;
    phase = p.phase;
    last = now;
    write(`${p.phase}: ${Math.floor((100 * p.done) / p.total)}% of ${formatBytes(p.total)}`);
  };
}

export async function main(argv: string[]): Promise<number> {
  let args: BackupArguments;
  try {
    args = parseBackupArguments(argv, 'cli');
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const log = stderrLog();
  try {
    const report: BackupReport = await backupSqlite(args.source!, args.destination!, {
      verify: args.verify,
      gzip: args.gzip,
      skipIfUnchanged: args.skipIfUnchanged,
      keepLast: args.keepLast,
      busyTimeoutMs: args.busyTimeoutMs,
      log,
      onProgress: progressPrinter((l) => log.info(l), Math.min(args.heartbeatSeconds * 1000, 5000)),
    });
    const manifest = placeManifest(report, version);
    process.stdout.write(args.json ? JSON.stringify({ ...report, manifest }, null, 2) + '\n' : summaryLine(report) + '\n');
    return 0;
  } catch (err) {
    if (err instanceof BackupUsageError || (err instanceof SqliteBackupError && err.kind === 'usage')) {
      process.stderr.write(`${err.message}\n\n${USAGE}`);
      return 2;
    }
    const known = err instanceof SqliteBackupError || err instanceof SqliteFileError;
    process.stderr.write(`Backup failed: ${known ? (err as Error).message : (err as Error).stack ?? String(err)}\n`);
    if (args.json) process.stdout.write(JSON.stringify({ error: (err as Error).message, kind: (err as { kind?: string }).kind }) + '\n');
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
