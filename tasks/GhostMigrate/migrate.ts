/**
 * GhostMigrate: Ghost's migrations run on the build's copy of the SQLite database, judged by what
 * the database holds afterwards rather than by the migrator's exit code, and undone byte for byte
 * when they fail.
 *
 * Before: find Ghost (MigratorConfig.js, its knex-migrator), check the database file, load
 * MigratorConfig.js as knex-migrator will (it must name our file), read the migration tables,
 * copy the file aside. Run: knex-migrator (or the user's command) in ghostRoot with a deadline.
 * After: integrity_check, the lock released, no migration pending for Ghost's version. Any
 * failure puts the copy back.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Log } from '../../lib/log';
import { SqliteFileError, verifySqliteFile } from '../../lib/sqlite/verify';
import { inspectGhostRoot, probeMigratorConfig, type GhostInstall, type MigratorConfigProbe } from './ghost-root';
import {
  addedRows,
  checkHealth,
  compareVersions,
  describePending,
  highestVersion,
  readDatabaseState,
  releaseLock,
  type DatabaseState,
  type Health,
  type MigrationRow,
} from './migration-state';
import { errorLines, formatMinutes, runMigrator, type MigratorRun } from './run-migrator';
import { discardSnapshot, restoreSnapshot, takeSnapshot, type Snapshot } from './snapshot';

export type WhenLocked = 'fail' | 'release';

export interface MigrateOptions {
  ghostRoot: string;
  /** Relative paths are taken against ghostRoot. */
  databasePath: string;
  nodeEnv: string;
  /** A command line to run instead of knex-migrator (`node db.js`); run through the shell in ghostRoot. */
  command?: string;
  initIfMissing: boolean;
  whenLocked: WhenLocked;
  restoreOnFailure: boolean;
  timeoutMs: number;
  /** Absolute path of the node to run Ghost's code with. */
  node: string;
  /** Where the copy of the database is kept during the run. */
  tempDir: string;
  /** The environment the migrator inherits; default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface MigrationReport {
  status: 'migrated' | 'initialised' | 'up-to-date' | 'failed';
  database: string;
  /** False when the run started without a database (initIfMissing). */
  existedBefore: boolean;
  ghostRoot: string;
  ghostVersion?: string;
  currentVersion?: string | null;
  knexMigratorVersion?: string;
  nodeVersion?: string;
  /** What ran: the command line, or knex-migrator's bin. */
  ran?: string;
  /** Rows the run added to `migrations` that are in the database now (none once restored). */
  applied: MigrationRow[];
  versionBefore?: string;
  /** The highest version recorded in the database as it is now. */
  databaseVersion?: string;
  pendingBefore: string;
  lockReleasedFrom?: string | null;
  durationMs?: number;
  warnings: string[];
  failure?: {
    problems: string[];
    errorLines: string[];
    /** 'restored': byte-identical again; 'kept': left as the migrator left it; 'restore-failed'. */
    database: 'restored' | 'kept' | 'restore-failed';
    backup?: string;
    /** Of the database before the run. */
    sha256?: string;
  };
}

export class MigrationFailedError extends Error {
  constructor(
    message: string,
    readonly report: MigrationReport,
  ) {
    super(message);
  }
}

const SQLITE_CLIENTS = ['sqlite3', 'better-sqlite3'];

export async function migrateGhost(options: MigrateOptions, log: Log): Promise<MigrationReport> {
  const install = inspectGhostRoot(options.ghostRoot);
  const database = path.resolve(install.root, options.databasePath);
  const report: MigrationReport = {
    status: 'failed',
    database,
    existedBefore: fs.existsSync(database),
    ghostRoot: install.root,
    ghostVersion: install.ghostVersion?.full,
    knexMigratorVersion: install.knexMigrator.version,
    applied: [],
    pendingBefore: '',
    warnings: [],
  };
  const warn = (message: string) => {
    report.warnings.push(message);
    log.warn(message);
  };
  log.info(`Ghost ${install.ghostVersion?.full ?? '(no version in package.json)'} in ${install.root}, knex-migrator ${install.knexMigrator.version}.`);

  // The database as it is before anything runs.
  let before: DatabaseState | undefined;
  if (!report.existedBefore) {
    if (!options.initIfMissing) {
      throw new Error(
        `The database ${database} does not exist (databasePath '${options.databasePath}', relative to ghostRoot). ` +
          `Download the site's database to that path before this task, fix databasePath, or set initIfMissing: true to create a new, empty Ghost database there.`,
      );
    }
    log.info(`${database} does not exist: it will be created and initialised (initIfMissing).`);
  } else {
    before = checkDatabaseBefore(database);
    report.versionBefore = highestVersion(before.rows);
    log.info(`Database ${database}: ${before.rows.length} migrations recorded, highest version ${report.versionBefore ?? 'none'}.`);
  }
  if (before?.lock.locked && options.whenLocked === 'fail') {
    throw new Error(
      `The database's migration lock is set (migrations_lock.locked = 1${before.lock.acquiredAt ? `, acquired ${before.lock.acquiredAt}` : ''}): ` +
        `a migration was killed before it finished, or the copy was taken while Ghost was migrating. Nothing was run. ` +
        `If the site runs normally on this database, set whenLocked: release and the task will release the lock before migrating (and check the result); ` +
        `to release it by hand: UPDATE migrations_lock SET locked=0 WHERE lock_key='km01'. If a migration really was interrupted, take a fresh backup of the site's database first.`,
    );
  }

  // MigratorConfig.js, loaded the way the migrator will load it, must point at this file.
  const env = migratorEnv(options, database, undefined);
  let config = await probeMigratorConfig(install, options.node, env);
  if (!config.client || !SQLITE_CLIENTS.includes(config.client)) {
    warn(
      `Ghost's config for NODE_ENV=${options.nodeEnv} uses the database client '${config.client ?? '(none)'}'. ` +
        `The task sets database__client=sqlite3 so that the migrations run on ${path.basename(database)} and on no other database.`,
    );
    env.database__client = 'sqlite3';
    config = await probeMigratorConfig(install, options.node, env);
  }
  checkConfigTargets(config, database, options.nodeEnv, install);
  report.nodeVersion = config.node;
  report.currentVersion = config.currentVersion;
  log.info(`Node.js ${config.node} (${options.node}); MigratorConfig.js: currentVersion ${config.currentVersion}, migrations in ${config.migrationPath}.`);

  const target = install.ghostVersion?.safe ?? config.currentVersion!;
  if (install.ghostVersion && config.currentVersion && compareVersions(config.currentVersion, install.ghostVersion.safe) !== 0) {
    warn(
      `MigratorConfig.js gives currentVersion ${config.currentVersion}, but Ghost's package.json in ghostRoot says ${install.ghostVersion.full}: ` +
        `knex-migrator skips migrations of versions above its currentVersion. Ghost reads its version from the package.json nearest the working directory.`,
    );
  }
  const healthBefore = before ? checkHealth(before.rows, config.migrationPath!, config.subfolder, target) : undefined;
  report.pendingBefore = healthBefore ? describePending(healthBefore.pending) : 'all (new database)';
  if (healthBefore) {
    log.info(healthBefore.pending.length ? `Pending for Ghost ${target}: ${report.pendingBefore}.` : `No migration pending for Ghost ${target}.`);
    if (healthBefore.unknownVersions.length) {
      warn(
        `The database records migrations of versions this Ghost has no folder for (${healthBefore.unknownVersions.join(', ')}): a newer Ghost has migrated it. ` +
          `Ghost ${install.ghostVersion?.full ?? target} may not run on it; deploy the newer Ghost, or restore a backup taken before that upgrade.`,
      );
    }
  }

  // Copy aside; from here on every way out leaves the database as it was, or says it did not.
  const snapshot = takeSnapshot(database, options.tempDir);
  if (snapshot.existed) log.info(`Copied the database aside (${snapshot.bytes} bytes, sha256 ${snapshot.sha256}) to ${snapshot.copy}.`);
  let judged: Judged;
  try {
    judged = await runAndJudge({ options, install, database, before, config, env, target, report, warn }, log);
  } catch (err) {
    throw restoreAfterError(err, snapshot, options);
  }
  const { run, problems, after } = judged;

  if (!problems.length && after) {
    discardSnapshot(snapshot);
    report.applied = addedRows(before?.rows ?? [], after.rows);
    report.databaseVersion = highestVersion(after.rows);
    report.status = !report.existedBefore ? 'initialised' : report.applied.length ? 'migrated' : 'up-to-date';
    logApplied(report, log);
    return report;
  }

  report.failure = { problems, errorLines: errorLines(run.lines), database: 'kept', sha256: snapshot.existed ? snapshot.sha256 : undefined };
  if (options.restoreOnFailure) {
    try {
      restoreSnapshot(snapshot);
      discardSnapshot(snapshot);
      report.failure.database = 'restored';
      report.databaseVersion = report.versionBefore;
    } catch (err) {
      report.failure.database = 'restore-failed';
      report.failure.backup = snapshot.existed ? snapshot.copy : undefined;
      problems.push(`Restoring the database failed: ${(err as Error).message}`);
    }
  } else {
    report.failure.backup = snapshot.existed ? snapshot.copy : undefined;
    if (after) {
      report.applied = addedRows(before?.rows ?? [], after.rows);
      report.databaseVersion = highestVersion(after.rows);
    }
  }
  throw new MigrationFailedError(failureMessage(report, options), report);
}

interface RunContext {
  options: MigrateOptions;
  install: GhostInstall;
  database: string;
  before: DatabaseState | undefined;
  config: MigratorConfigProbe;
  env: NodeJS.ProcessEnv;
  target: string;
  report: MigrationReport;
  warn(message: string): void;
}

interface Judged {
  run: MigratorRun;
  /** Empty when the run succeeded. */
  problems: string[];
  /** The database's tables after the run, when it could be read. */
  after?: DatabaseState;
}

/** The stale lock released (on request), the migrator run, and the database judged afterwards. */
async function runAndJudge(ctx: RunContext, log: Log): Promise<Judged> {
  const { options, install, database, before, config, env, target, report } = ctx;
  if (before?.lock.locked) {
    ctx.warn(
      `The migration lock was set${before.lock.acquiredAt ? ` (acquired ${before.lock.acquiredAt})` : ''}, left by a migration that did not finish. ` +
        `Releasing it before migrating (whenLocked: release); the result is checked as usual.`,
    );
    releaseLock(database);
    report.lockReleasedFrom = before.lock.acquiredAt;
  }
  const init = !before && !options.command;
  if (!before) fs.mkdirSync(path.dirname(database), { recursive: true });
  const program = { file: options.node, args: [install.knexMigrator.bin(init ? 'init' : 'migrate'), '--mgpath', install.root] };
  report.ran = options.command ?? `node ${path.relative(install.root, program.args[0])} --mgpath ${install.root}`;
  log.info(
    `Running ${options.command ? `'${options.command}'` : `knex-migrator ${init ? 'init' : 'migrate'}`} in ${install.root} ` +
      `(NODE_ENV=${options.nodeEnv}, database__connection__filename=${database}${env.database__client ? `, database__client=${env.database__client}` : ''}), ` +
      `timeout ${formatMinutes(options.timeoutMs)}.`,
  );
  const run = await runMigrator({ cwd: install.root, env, timeoutMs: options.timeoutMs, ...(options.command ? { shell: options.command } : { program }) }, log);
  report.durationMs = run.durationMs;
  if (run.leftovers) ctx.warn('The migrator exited but left processes running; they were killed so that nothing else writes to the database.');

  // Judge by the database, whatever the exit code said.
  const problems = runProblems(run, options);
  if (run.timedOut || run.cancelled) return { run, problems };
  const { after, healthAfter } = checkDatabaseAfter(database, config.migrationPath!, config, target, problems);
  if (healthAfter && problems.length) explainPending(healthAfter, run, config, install, problems);
  return { run, problems, after };
}

/** An unexpected error after the copy was taken: put the copy back before reporting it. */
function restoreAfterError(err: unknown, snapshot: Snapshot, options: MigrateOptions): Error {
  const message = err instanceof Error ? err.message : String(err);
  if (!options.restoreOnFailure) {
    return new Error(`${message}\nThe database was left as it is (restoreOnFailure: false)${snapshot.existed ? `; the copy taken before is ${snapshot.copy}` : ''}.`);
  }
  try {
    restoreSnapshot(snapshot);
    discardSnapshot(snapshot);
    return new Error(`${message}\nThe database was restored to what it was before the task.`);
  } catch (restoreErr) {
    return new Error(
      `${message}\nRestoring the database failed too (${(restoreErr as Error).message})${snapshot.existed ? `; the copy taken before is ${snapshot.copy}` : ''}. Do not deploy ${snapshot.file}.`,
    );
  }
}

/** Refuses what knex-migrator must not be run on; returns the tables it will work from. */
function checkDatabaseBefore(database: string): DatabaseState {
  try {
    verifySqliteFile(database);
  } catch (err) {
    if (!(err instanceof SqliteFileError)) throw err;
    const hint =
      err.kind === 'empty'
        ? ' A 0-byte ghost.db is what a plain download of the live file gives while Ghost holds it open: download a copy made with SQLite\'s backup API instead (the SqliteBackup task, or the backup WebJob).'
        : '';
    throw new Error(`The database was not touched: ${err.message}${hint}`);
  }
  const state = readDatabaseState(database);
  if (!state.initialised) {
    throw new Error(
      `${database} is a SQLite database without a 'migrations' table: knex-migrator has never initialised it, so it is not a Ghost database (or not the one Ghost uses). Check databasePath.`,
    );
  }
  return state;
}

/** The environment Ghost's config reads the database from (nconf: `__` separates levels). */
function migratorEnv(options: MigrateOptions, database: string, client: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(options.env ?? process.env)) {
    // The agent's task inputs and connections are not the migrator's business.
    if (!/^(INPUT_|ENDPOINT_|SECRET_)/i.test(k)) env[k] = v;
  }
  env.NODE_ENV = options.nodeEnv;
  env.database__connection__filename = database;
  if (client) env.database__client = client;
  // `node` in a custom command, and knex-migrator's `#!/usr/bin/env node`, mean the chosen node.
  const pathKey = Object.keys(env).find((k) => k.toUpperCase() === 'PATH') ?? 'PATH';
  env[pathKey] = [path.dirname(options.node), env[pathKey]].filter(Boolean).join(path.delimiter);
  return env;
}

function samePath(a: string, b: string): boolean {
  const real = (p: string) => {
    const abs = path.resolve(p);
    try {
      return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
    } catch {
      return abs;
    }
  };
  const [x, y] = [real(a), real(b)];
  return process.platform === 'win32' ? x.toLowerCase() === y.toLowerCase() : x === y;
}

function checkConfigTargets(config: MigratorConfigProbe, database: string, nodeEnv: string, install: GhostInstall): void {
  const name = path.basename(install.migratorConfig);
  if (!config.client || !SQLITE_CLIENTS.includes(config.client)) {
    throw new Error(`${name} still gives the database client '${config.client}' with database__client=sqlite3 set: Ghost's config does not read environment variables here, so the task cannot make it migrate ${database}.`);
  }
  if (!config.filename || !samePath(path.resolve(install.root, config.filename), database)) {
    throw new Error(
      `${name} (NODE_ENV=${nodeEnv}) gives the database file '${config.filename ?? '(none)'}', not ${database}, although database__connection__filename is set: ` +
        `something overrides environment variables in Ghost's config (an overrides.json, or a MigratorConfig.js that builds its own database settings). Nothing was run, so that no other database is migrated.`,
    );
  }
  if (!config.migrationPath || !fs.existsSync(config.migrationPath)) {
    throw new Error(`${name} gives the migrations folder '${config.migrationPath ?? '(none)'}', which does not exist. Is ghostRoot a complete Ghost installation?`);
  }
  if (!config.currentVersion) throw new Error(`${name} exports no currentVersion; knex-migrator cannot run with it.`);
}

function runProblems(run: MigratorRun, options: MigrateOptions): string[] {
  if (run.cancelled) return ['the job was cancelled while the migrator ran (it was stopped)'];
  if (run.timedOut) return [`the migrator did not finish within ${formatMinutes(options.timeoutMs)} and was stopped, with every process it started`];
  if (run.exitCode !== 0) return [run.exitCode === null ? `the migrator was killed (${run.signal ?? 'no exit code'})` : `the migrator exited with code ${run.exitCode}`];
  return [];
}

function checkDatabaseAfter(
  database: string,
  migrationPath: string,
  config: MigratorConfigProbe,
  target: string,
  problems: string[],
): { after?: DatabaseState; healthAfter?: Health } {
  if (!fs.existsSync(database)) {
    problems.push(`${database} does not exist after the run`);
    return {};
  }
  try {
    verifySqliteFile(database);
  } catch (err) {
    if (!(err instanceof SqliteFileError)) throw err;
    problems.push(
      err.kind === 'side-files'
        ? `${err.message.split(':')[0]}: the migrator left its journal behind (it died mid-write, or a process still has the database open)`
        : `the database fails its checks after the run: ${err.message}`,
    );
    return {};
  }
  const after = readDatabaseState(database);
  if (!after.initialised) {
    problems.push(`the database has no 'migrations' table after the run: the migrator did not initialise it`);
    return { after };
  }
  if (after.lock.locked) problems.push(`the migration lock is still set after the run (migrations_lock.locked = 1): Ghost would refuse to start on this database`);
  const healthAfter = checkHealth(after.rows, migrationPath, config.subfolder, target);
  if (healthAfter.pending.length) problems.push(`migrations are still pending for Ghost ${target}: ${describePending(healthAfter.pending)}`);
  if (healthAfter.excess.length) {
    problems.push(
      `the migrations table has more rows than there are files for ${healthAfter.excess.map((v) => v.version).join(', ')} (knex-migrator's MIGRATION_STATE_ERROR): Ghost would refuse to start`,
    );
  }
  return { after, healthAfter };
}

/** Why migrations can be pending after a run that exited 0: the traps the brief of this task names. */
function explainPending(health: Health, run: MigratorRun, config: MigratorConfigProbe, install: GhostInstall, problems: string[]): void {
  if (!health.pending.length || run.exitCode !== 0) return;
  const text = run.lines.map((l) => l.text);
  const skipped = [...new Set(text.flatMap((t) => /knex-migrator is skipping (\S+)/.exec(t)?.[1] ?? []))];
  if (skipped.length) {
    problems.push(
      `the migrator skipped ${skipped.join(', ')} as newer than its currentVersion: MigratorConfig.js took Ghost's version from a package.json other than ghostRoot's. ` +
        `Ghost reads it from the package.json nearest the working directory, so the command must run Ghost from ghostRoot (${install.root}) without changing folder`,
    );
  } else if (text.some((t) => /Rolling back:/.test(t))) {
    problems.push(`a migration failed and was rolled back, yet the command exited 0: it does not wait for knex-migrator's migrate() (as Ghost-Azure's db.js does not), so its exit code cannot be trusted`);
  } else {
    problems.push(`the command exited 0 without applying them${config.currentVersion ? ` (knex-migrator's currentVersion was ${config.currentVersion} when the task loaded MigratorConfig.js)` : ''}`);
  }
}

function logApplied(report: MigrationReport, log: Log): void {
  if (!report.applied.length) {
    log.info(`No migration was pending: the database is at ${report.databaseVersion ?? 'its initial version'}.`);
    return;
  }
  log.info(`${report.status === 'initialised' ? 'Initialised the database; recorded' : 'Applied'} ${report.applied.length} migration(s):`);
  for (const row of report.applied) log.info(`  ${row.version.padEnd(8)} ${row.name}`);
}

function failureMessage(report: MigrationReport, options: MigrateOptions): string {
  const failure = report.failure!;
  const neutral = (s: string) => s.replace(/##vso\[/gi, '##_vso[');
  const parts = [`Ghost's migrations failed: ${failure.problems.join('; ')}.`];
  if (failure.errorLines.length) parts.push(`The migrator's output:\n${failure.errorLines.map((l) => `  ${neutral(l)}`).join('\n')}`);
  switch (failure.database) {
    case 'restored':
      parts.push(
        report.existedBefore
          ? `The database was restored: ${report.database} is byte-identical to before the run (sha256 ${failure.sha256}).`
          : `The database was removed again: ${report.database} did not exist before the run.`,
      );
      break;
    case 'kept':
      parts.push(`The database was left as the migrator left it (restoreOnFailure: false)${failure.backup ? `; the copy taken before the run is ${failure.backup}` : ''}. Do not deploy it.`);
      break;
    case 'restore-failed':
      parts.push(`The database could NOT be restored; the copy taken before the run is ${failure.backup ?? '(none)'}. Do not deploy ${report.database}.`);
  }
  parts.push(`Next: ${advice(failure.problems, options)}`);
  return parts.join('\n');
}

function advice(problems: string[], options: MigrateOptions): string {
  const all = problems.join(' ');
  if (/did not finish within/.test(all)) {
    return `raise timeoutMinutes if the migrations need longer on this database; if one hangs, run them locally on a copy to find which. The production site was not touched.`;
  }
  if (/cancelled/.test(all)) return 'run the pipeline again.';
  if (/skipped .* newer than its currentVersion/.test(all)) return `run Ghost's migrator from ghostRoot: remove any 'cd' from the command, or leave command empty to let the task run knex-migrator.`;
  if (/exit code cannot be trusted/.test(all)) {
    return `fix the failing migration shown above (the message names it). Leave command empty to let the task run knex-migrator directly, which reports failures properly.`;
  }
  if (/lock is still set/.test(all)) return 'the migrator did not release its lock; look at its output above for the reason and run again.';
  if (/more rows than there are files/.test(all)) return 'the database was migrated by a different Ghost than the one in ghostRoot; deploy that Ghost version, or inspect the migrations table.';
  return (
    `read the migrator's error above: it names the migration that failed and why (often a migration that does not work on SQLite, or data it does not expect). ` +
    `Reproduce it locally with the same Ghost on a copy of the database${options.command ? ` and '${options.command}'` : ' and `knex-migrator migrate`'}. The production site was not touched.`
  );
}
