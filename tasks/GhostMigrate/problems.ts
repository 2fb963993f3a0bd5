/**
 * What went wrong in a migration run, as data: each problem has a `kind` that the advice switches
 * on (never its wording), and the run as a whole gets a `cause` read from what Ghost itself said
 * (its output, and the lines it appended to its error log): a migration that failed, a native
 * module built for another Node.js, a lock, or a timeout.
 */

export type ProblemKind =
  | 'cancelled'
  | 'timeout'
  | 'killed'
  | 'exit-code'
  | 'database-missing'
  | 'journal-left'
  | 'database-damaged'
  | 'not-initialised'
  | 'lock-still-set'
  | 'still-pending'
  | 'excess-rows'
  | 'skipped-newer'
  | 'exit-0-rolled-back'
  | 'exit-0-nothing-applied'
  | 'restore-failed';

export interface Problem {
  kind: ProblemKind;
  message: string;
}

export const problem = (kind: ProblemKind, message: string): Problem => ({ kind, message });

export type Cause =
  /** better-sqlite3/sqlite3 cannot be loaded by this Node.js; the ABI numbers when Node said them. */
  | { kind: 'native-module'; builtFor?: string; needs?: string; module?: string }
  /** Node.js itself aborted or crashed inside a native module (SIGABRT, SIGSEGV, a failed CHECK). */
  | { kind: 'native-crash'; module?: string }
  /** SQLite's busy error, or knex-migrator's own lock. */
  | { kind: 'lock' }
  | { kind: 'timeout' }
  /** A migration threw: knex-migrator rolled back, or logged an error. */
  | { kind: 'migration-error' }
  | { kind: 'unknown' };

const NATIVE = /NODE_MODULE_VERSION|was compiled against a different Node\.js version|ERR_DLOPEN_FAILED|Module did not self-register|invalid ELF header/;
const CRASH = /Assertion failed:|Native stack trace|Segmentation fault|Aborted \(core dumped\)/;
const LOCK = /SQLITE_BUSY|database is locked|Migration lock was never released|Migrations are running at the moment|MigrationsAreLocked|MIGRATION_LOCKED/i;
const MIGRATION = /Rolling back:|Rollback (was successful|failed)|MigrationScript|ERROR\s|Error:/;

export interface RunEnd {
  timedOut: boolean;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

/** Reads the cause from Ghost's own lines (already stripped of colours) and how it ended, most specific first. */
export function diagnose(lines: string[], end: RunEnd): Cause {
  if (end.timedOut) return { kind: 'timeout' };
  const text = lines.join('\n');
  // 128 + 6 and 128 + 11: a shell reports a child's SIGABRT and SIGSEGV that way.
  const crashed = end.signal === 'SIGABRT' || end.signal === 'SIGSEGV' || end.exitCode === 134 || end.exitCode === 139;
  if (crashed || CRASH.test(text)) return { kind: 'native-crash', module: /[\w@.+-]+\.node\b/.exec(text)?.[0] };
  if (NATIVE.test(text)) {
    // "…compiled against a different Node.js version using NODE_MODULE_VERSION 127. This version of Node.js requires NODE_MODULE_VERSION 137."
    const builtFor = /using\s+NODE_MODULE_VERSION\s+(\d+)/.exec(text)?.[1];
    const needs = /requires\s+NODE_MODULE_VERSION\s+(\d+)/.exec(text)?.[1];
    const module = /[\w@.+-]+\.node\b/.exec(text)?.[0];
    return { kind: 'native-module', builtFor, needs, module };
  }
  if (LOCK.test(text)) return { kind: 'lock' };
  if (MIGRATION.test(text)) return { kind: 'migration-error' };
  return { kind: 'unknown' };
}
