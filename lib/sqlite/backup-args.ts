/**
 * The backup's command-line arguments, parsed one way for its two front ends: the CLI
 * (lib/sqlite/cli.ts, `backup <source> <destination> [options]`) and the WebJob
 * (webjobs/sqlite-backup/run.ts, `[--source <path>] [--destination <path>] [options]`). Same flags,
 * same number rules, same messages; each front end only adds its own defaults.
 *
 * @example
 *   const args = parseBackupArguments(['backup', 'ghost.db', 'backups/', '--keep-last', '7'], 'cli');
 *   args.source;    // 'ghost.db'
 *   args.keepLast;  // 7
 */
import { parseArgs } from 'node:util';
import type { IntegrityLevel } from './verify';

export type BackupFrontEnd = 'cli' | 'webjob';

export interface BackupArguments {
  /** As given (relative paths unresolved); undefined when not given. */
  source?: string;
  destination?: string;
  verify: IntegrityLevel;
  gzip: boolean;
  skipIfUnchanged: boolean;
  keepLast: number;
  busyTimeoutMs: number;
  /** How often to print "still working" and progress during a long step. */
  heartbeatSeconds: number;
  /** The CLI's: print the report as JSON. */
  json: boolean;
  help: boolean;
}

/** Arguments that cannot be used: the front end prints the message and the usage, and exits 2. */
export class BackupUsageError extends Error {
  override readonly name = 'BackupUsageError';
}

export const DEFAULT_HEARTBEAT_SECONDS = 20;

/** The options both front ends take, for their usage text. */
export const BACKUP_OPTIONS_HELP = `  --verify <level>         integrity (default), quick or none
  --gzip                   write <name>.gz
  --skip-if-unchanged      write nothing when the database has not changed since the last backup
  --keep-last <n>          keep the newest n backups of this name pattern (0 = all, the default)
  --busy-timeout <ms>      how long to wait for the app's locks (default 10000)
  --heartbeat-seconds <s>  how often to print progress during a long step (default ${DEFAULT_HEARTBEAT_SECONDS})`;

const OPTIONS = {
  source: { type: 'string' },
  destination: { type: 'string' },
  verify: { type: 'string', default: 'integrity' },
  gzip: { type: 'boolean', default: false },
  'skip-if-unchanged': { type: 'boolean', default: false },
  'keep-last': { type: 'string', default: '0' },
  'busy-timeout': { type: 'string', default: '10000' },
  'heartbeat-seconds': { type: 'string', default: String(DEFAULT_HEARTBEAT_SECONDS) },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

const VERIFY_LEVELS: readonly IntegrityLevel[] = ['integrity', 'quick', 'none'];

/** Parses `args` for one front end; throws BackupUsageError. */
export function parseBackupArguments(args: readonly string[], frontEnd: BackupFrontEnd): BackupArguments {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], allowPositionals: true, options: OPTIONS });
  } catch (err) {
    throw new BackupUsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (frontEnd === 'webjob' && values.json) throw new BackupUsageError("Unknown option '--json': the job always prints its result as a BACKUP_RESULT line.");
  const paths = frontEnd === 'cli' ? cliPaths(positionals, values) : webJobPaths(positionals, values);
  if (!(VERIFY_LEVELS as readonly string[]).includes(values.verify)) {
    throw new BackupUsageError(`--verify must be one of ${VERIFY_LEVELS.join(', ')}, not '${values.verify}'.`);
  }
  return {
    ...paths,
    verify: values.verify as IntegrityLevel,
    gzip: values.gzip,
    skipIfUnchanged: values['skip-if-unchanged'],
    keepLast: wholeNumber('--keep-last', values['keep-last']),
    busyTimeoutMs: wholeNumber('--busy-timeout', values['busy-timeout']),
    heartbeatSeconds: positiveNumber('--heartbeat-seconds', values['heartbeat-seconds']),
    json: values.json,
    help: values.help,
  };
}

type Values = { source?: string; destination?: string; help: boolean };

/** `backup <source> <destination>`, or `backup --source <source> --destination <destination>`. */
function cliPaths(positionals: string[], values: Values): { source?: string; destination?: string } {
  if (values.help) return {};
  const [command, ...paths] = positionals;
  if (command !== 'backup') throw new BackupUsageError(command === undefined ? 'Expected: backup <source> <destination>' : `Unknown command '${command}': expected backup <source> <destination>.`);
  if (paths.length && (values.source !== undefined || values.destination !== undefined)) {
    throw new BackupUsageError('Give the source and destination either as backup <source> <destination> or as --source and --destination, not both.');
  }
  const [source = values.source, destination = values.destination, extra] = paths;
  if (extra !== undefined) throw new BackupUsageError(`Unexpected argument '${extra}'.`);
  if (source === undefined || destination === undefined) throw new BackupUsageError('Expected: backup <source> <destination>');
  return { source, destination };
}

function webJobPaths(positionals: string[], values: Values): { source?: string; destination?: string } {
  if (positionals.length) throw new BackupUsageError(`Unexpected argument '${positionals[0]}': give paths as --source <path> and --destination <path>.`);
  return { source: values.source, destination: values.destination };
}

function wholeNumber(flag: string, raw: string): number {
  const n = Number(raw.trim());
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n)) throw new BackupUsageError(`${flag} must be a whole number, 0 or more, not '${raw}'.`);
  return n;
}

function positiveNumber(flag: string, raw: string): number {
  const n = Number(raw.trim());
  if (!/^\d+(\.\d+)?$/.test(raw.trim()) || !(n > 0) || !Number.isFinite(n)) throw new BackupUsageError(`${flag} must be a number above 0, not '${raw}'.`);
  return n;
}
