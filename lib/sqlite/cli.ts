/**
 * A small command line for the backup engine, for cron jobs, scripts and the tests:
 *
 *   node out/lib/sqlite/cli.js backup <source> <destination>
 *        [--verify integrity|quick|none] [--gzip] [--skip-if-unchanged] [--keep-last N]
 *        [--busy-timeout ms] [--json]
 *
 * Phase lines and progress go to stderr; the report goes to stdout (as JSON with --json).
 * Exit code 0 when a backup was written or skipped as unchanged, 1 when it failed, 2 for a usage error.
 *
 * @example
 *   node out/lib/sqlite/cli.js backup /srv/ghost/content/data/ghost.db /backups/ --gzip --keep-last 14
 */
import { parseArgs } from 'node:util';
import { lineLog, type Log } from '../log';
import { backupSqlite, summaryLine, SqliteBackupError, type BackupProgress, type BackupReport } from './backup';
import { formatBytes } from '../format';
import { SqliteFileError } from './verify';

const USAGE = `Usage: cli.js backup <source> <destination> [options]

  <destination>            a file, a folder ending in / (timestamped names), or a name with
                           %Y %m %d %H %M %S (UTC), e.g. backup-%H.db
  --verify <level>         integrity (default), quick or none
  --gzip                   write <name>.gz
  --skip-if-unchanged      write nothing when the database has not changed since the last backup
  --keep-last <n>          keep the newest n backups of this name pattern (0 = all)
  --busy-timeout <ms>      how long to wait for the app's locks (default 10000)
  --json                   print the report as JSON
`;

class UsageError extends Error {}

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
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        verify: { type: 'string', default: 'integrity' },
        gzip: { type: 'boolean', default: false },
        'skip-if-unchanged': { type: 'boolean', default: false },
        'keep-last': { type: 'string', default: '0' },
        'busy-timeout': { type: 'string', default: '10000' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const log = stderrLog();
  try {
    if (positionals[0] !== 'backup' || positionals.length !== 3) throw new UsageError('Expected: backup <source> <destination>');
    const report: BackupReport = await backupSqlite(positionals[1], positionals[2], {
      verify: values.verify as 'integrity',
      gzip: values.gzip,
      skipIfUnchanged: values['skip-if-unchanged'],
      keepLast: wholeNumber('--keep-last', values['keep-last']),
      busyTimeoutMs: wholeNumber('--busy-timeout', values['busy-timeout']),
      log,
      onProgress: progressPrinter((l) => log.info(l)),
    });
    process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : summaryLine(report) + '\n');
    return 0;
  } catch (err) {
    if (err instanceof UsageError || (err instanceof SqliteBackupError && err.kind === 'usage')) {
      process.stderr.write(`${err.message}\n\n${USAGE}`);
      return 2;
    }
    const known = err instanceof SqliteBackupError || err instanceof SqliteFileError;
    process.stderr.write(`Backup failed: ${known ? (err as Error).message : (err as Error).stack ?? String(err)}\n`);
    if (values.json) process.stdout.write(JSON.stringify({ error: (err as Error).message, kind: (err as { kind?: string }).kind }) + '\n');
    return 1;
  }
}

function wholeNumber(name: string, raw: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n)) throw new UsageError(`${name} must be a whole number, not '${raw}'.`);
  return n;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
