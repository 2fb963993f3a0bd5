/**
 * GhostMigrate: Ghost's migrations run on the build's copy of the SQLite database, judged by what
 * the database holds afterwards rather than by the migrator's exit code, and undone byte for byte
 * when they fail.
 *
 * The steps, in `migrateGhost`'s order: find Ghost (MigratorConfig.js, its knex-migrator); read
 * the database as it is; load MigratorConfig.js as knex-migrator will (it must name our file);
 * judge the database as Ghost would before anything runs; copy the file aside; run knex-migrator
 * (or the user's command) in ghostRoot with a deadline, Ghost logging to stdout and not exporting
 * the site; judge the database afterwards (integrity, lock, nothing pending). Any failure puts the
 * copy back and says why, in Ghost's own words.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Log } from '../../lib/log';
import { SqliteFileError, verifySqliteFile } from '../../lib/sqlite/verify';
import { cleanText } from '../../lib/text';
import { failureMessage } from './failure';
import { listExports, removeNewExports, SKIP_EXPORT_ENV } from './ghost-export';
import { markErrorLogs, readAppendedErrors, type ErrorLogMark } from './ghost-logs';
import { inspectGhostRoot, probeMigratorConfig, type GhostInstall, type MigratorConfigProbe } from './ghost-root';
import {
  addedRows,
  checkHealth,
  compareMigrationVersions,
  describePending,
  highestVersion,
  readDatabaseState,
  releaseLock,
  summarisePending,
  summariseVersions,
  type DatabaseState,
  type Health,
  type MigrationRow,
} from './migration-state';
import { diagnose, problem, type Cause, type Problem } from './problems';
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
  /** Every pending version with its count, in version order (the summary shows it whole). */
  pendingBefore: string;
  lockReleasedFrom?: string | null;
  /** Ghost's pre-migration exports the run left in content/data, removed by the task. */
  removedExports: string[];
  durationMs?: number;
  warnings: string[];
  failure?: {
    problems: Problem[];
    /** What Ghost's own lines say happened. */
    cause: Cause;
    /** Ghost's error lines, from its output and its error log; cleaned (outside text). */
    errorLines: string[];
    /** 'restored': byte-identical again; 'kept': left as the migrator left it; 'restore-failed'. */
    database: 'restored' | 'kept' | 'restore-failed';
    backup?: string;
    /** Of the database before the run. */
    sha256?: string;
    /** What the failed run left recorded (knex-migrator could not roll it all back), e.g. `128 migration(s) in 46 versions, 6.0 to 6.56`. */
    leftMigrated?: string;
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

/** One run of the task: what it was given, what it found, and what it will report. */
interface Migration {
  options: MigrateOptions;
  log: Log;
  install: GhostInstall;
  database: string;
  report: MigrationReport;
  /** The migrator's environment: Ghost's config reads the database, logging and export settings from it. */
  env: NodeJS.ProcessEnv;
  before?: DatabaseState;
  config?: MigratorConfigProbe;
  /** Ghost's major.minor: every folder up to it must be recorded. */
  target?: string;
  warn(message: string): void;
}

export async function migrateGhost(options: MigrateOptions, log: Log): Promise<MigrationReport> {
  const m = startMigration(options, log);
  readDatabaseBefore(m);
  await loadMigratorConfig(m);
  judgeBefore(m);
  const snapshot = takeSnapshot(m.database, options.tempDir);
  if (snapshot.existed) log.info(`Copied the database aside (${snapshot.bytes} bytes, sha256 ${snapshot.sha256}) to ${snapshot.copy}.`);
  let judged: Judged;
  try {
    judged = await runAndJudge(m);
  } catch (err) {
    throw restoreAfterError(err, snapshot, options);
  }
  if (!judged.problems.length && judged.after) return succeed(m, snapshot, judged.after);
  throw fail(m, snapshot, judged);
}

function startMigration(options: MigrateOptions, log: Log): Migration {
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
    removedExports: [],
    warnings: [],
  };
  log.info(`Ghost ${install.ghostVersion?.full ?? '(no version in package.json)'} in ${install.root}, knex-migrator ${install.knexMigrator.version}.`);
  const warn = (message: string) => {
    report.warnings.push(message);
    log.warn(message);
  };
  return { options, log, install, database, report, env: migratorEnv(options, database), warn };
}

/** The database as it is before anything runs; refuses a missing, damaged or locked one. */
function readDatabaseBefore(m: Migration): void {
  const { options, database, report, log } = m;
  if (!report.existedBefore) {
    if (!options.initIfMissing) {
      throw new Error(
        `The database ${database} does not exist (databasePath '${options.databasePath}', relative to ghostRoot). ` +
          `Download the site's database to that path before this task, fix databasePath, or set initIfMissing: true to create a new, empty Ghost database there.`,
      );
    }
    log.info(`${database} does not exist: it will be created and initialised (initIfMissing).`);
    return;
  }
  const before = checkDatabaseBefore(database);
  m.before = before;
  report.versionBefore = highestVersion(before.rows);
  log.info(`Database ${database}: ${before.rows.length} migrations recorded, highest version ${report.versionBefore ?? 'none'}.`);
  if (before.lock.locked && options.whenLocked === 'fail') {
    throw new Error(
      `The database's migration lock is set (migrations_lock.locked = 1${before.lock.acquiredAt ? `, acquired ${cleanText(before.lock.acquiredAt)}` : ''}): ` +
        `a migration was killed before it finished, or the copy was taken while Ghost was migrating. Nothing was run. ` +
        `If the site runs normally on this database, set whenLocked: release and the task will release the lock before migrating (and check the result); ` +
        `to release it by hand: UPDATE migrations_lock SET locked=0 WHERE lock_key='km01'. If a migration really was interrupted, take a fresh backup of the site's database first.`,
    );
  }
}

/** MigratorConfig.js, loaded the way the migrator will load it, must point at this file. */
async function loadMigratorConfig(m: Migration): Promise<void> {
  const { options, install, database, env, log } = m;
  let config = await probeMigratorConfig(install, options.node, env);
  if (config.client && SQLITE_CLIENTS.includes(config.client)) {
    // Pinned: a command that changes folder would otherwise read another config.<env>.json, or Ghost's built-in MySQL.
    env.database__client = config.client;
  } else {
    noteClient(m, config.client);
    env.database__client = 'sqlite3';
    config = await probeMigratorConfig(install, options.node, env);
  }
  checkConfigTargets(config, database, options.nodeEnv, install);
  m.config = config;
  m.report.nodeVersion = config.node;
  m.report.currentVersion = config.currentVersion;
  log.info(`Node.js ${config.node} (${options.node}); MigratorConfig.js: currentVersion ${config.currentVersion}, migrations in ${config.migrationPath}.`);
}

/**
 * Ghost's built-in production config names MySQL; the task sets SQLite for the migrator, so that
 * is only worth a line. It matters when the site's own config file names another client: the
 * deployed Ghost would then not use the file migrated here.
 */
function noteClient(m: Migration, client: string | null): void {
  const { options, database } = m;
  const file = `config.${options.nodeEnv}.json`;
  const sets = `The task sets database__client=sqlite3 so that the migrations run on ${path.basename(database)} and on no other database.`;
  const siteClient = siteConfigClient(path.join(m.install.root, file));
  if (siteClient && !SQLITE_CLIENTS.includes(siteClient)) {
    m.warn(
      `The site's ${file} uses the database client '${cleanText(siteClient, 40)}'. ${sets} ` +
        `Unless the App Service's settings set database__client and database__connection__filename, the deployed Ghost will not use this SQLite file.`,
    );
  } else {
    m.log.info(`Ghost's built-in config for NODE_ENV=${options.nodeEnv} uses the database client '${cleanText(client ?? '(none)', 40)}'. ${sets}`);
  }
}

/** `database.client` of the site's own config file, if it has one that parses. */
function siteConfigClient(file: string): string | undefined {
  try {
    if (fs.statSync(file).size > 1 << 20) return undefined;
    const json = JSON.parse(fs.readFileSync(file, 'utf8')) as { database?: { client?: unknown } };
    return typeof json?.database?.client === 'string' ? json.database.client : undefined;
  } catch {
    return undefined;
  }
}

/** knex-migrator's health rule before the run: what is pending, and whether a newer Ghost was here. */
function judgeBefore(m: Migration): void {
  const { install, config, before, report, log } = m;
  const target = install.ghostVersion?.safe ?? config!.currentVersion!;
  m.target = target;
  if (install.ghostVersion && config!.currentVersion && compareMigrationVersions(config!.currentVersion, install.ghostVersion.safe) !== 0) {
    m.warn(
      `MigratorConfig.js gives currentVersion ${config!.currentVersion}, but Ghost's package.json in ghostRoot says ${install.ghostVersion.full}: ` +
        `knex-migrator skips migrations of versions above its currentVersion. Ghost reads its version from the package.json nearest the working directory.`,
    );
  }
  if (!before) {
    report.pendingBefore = 'all (new database)';
    return;
  }
  const health = checkHealth(before.rows, config!.migrationPath!, config!.subfolder, target);
  report.pendingBefore = describePending(health.pending);
  log.info(health.pending.length ? `Pending for Ghost ${target}: ${summarisePending(health.pending)}.` : `No migration pending for Ghost ${target}.`);
  if (health.retiredVersions.length) {
    log.debug(`Recorded versions this Ghost has merged or removed (knex-migrator ignores them): ${health.retiredVersions.join(', ')}.`);
  }
  if (health.newerVersions.length) {
    const versions = health.newerVersions.map((v) => cleanText(v, 40));
    m.warn(
      `The database records migrations of versions newer than this Ghost knows (${summariseVersions(versions)}): a newer Ghost has migrated it. ` +
        `Ghost ${install.ghostVersion?.full ?? target} may not run on it; deploy the newer Ghost, or restore a backup taken before that upgrade.`,
    );
  }
}

interface Judged {
  run: MigratorRun;
  /** Empty when the run succeeded. */
  problems: Problem[];
  /** The database's tables after the run, when it could be read. */
  after?: DatabaseState;
  /** What Ghost appended to its error logs during the run. */
  loggedErrors: string[];
}

/** The stale lock released (on request), the migrator run, and the database judged afterwards. */
async function runAndJudge(m: Migration): Promise<Judged> {
  const { options, database, before, config } = m;
  if (before?.lock.locked) releaseStaleLock(m);
  if (!before) fs.mkdirSync(path.dirname(database), { recursive: true });
  const exportDirs = ghostExportDirs(m);
  const exportsBefore = listExports(exportDirs);
  const logMark = markErrorLogs(config!.logsPath ?? path.join(config!.contentPath ?? path.join(m.install.root, 'content'), 'logs'));

  const run = await startMigrator(m);
  const loggedErrors = readLoggedErrors(logMark, m.log);
  removeExports(m, exportsBefore, exportDirs);
  if (run.leftovers) m.warn('The migrator exited but left processes running; they were killed so that nothing else writes to the database.');

  // Judge by the database, whatever the exit code said.
  const problems = runProblems(run, options);
  if (run.timedOut || run.cancelled) return { run, problems, loggedErrors };
  const { after, health } = checkDatabaseAfter(database, config!, m.target!, problems);
  if (health && problems.length) explainPending(health, run, config!, m.install, problems);
  return { run, problems, after, loggedErrors };
}

function releaseStaleLock(m: Migration): void {
  const acquiredAt = m.before!.lock.acquiredAt;
  m.warn(
    `The migration lock was set${acquiredAt ? ` (acquired ${cleanText(acquiredAt)})` : ''}, left by a migration that did not finish. ` +
      `Releasing it before migrating (whenLocked: release); the result is checked as usual.`,
  );
  releaseLock(m.database);
  m.report.lockReleasedFrom = acquiredAt;
}

async function startMigrator(m: Migration): Promise<MigratorRun> {
  const { options, install, database, env, report, log } = m;
  const init = !m.before && !options.command;
  const program = { file: options.node, args: [install.knexMigrator.bin(init ? 'init' : 'migrate'), '--mgpath', install.root] };
  report.ran = options.command ?? `node ${path.relative(install.root, program.args[0])} --mgpath ${install.root}`;
  log.info(
    `Running ${options.command ? `'${options.command}'` : `knex-migrator ${init ? 'init' : 'migrate'}`} in ${install.root} ` +
      `(NODE_ENV=${options.nodeEnv}, database__connection__filename=${database}${env.database__client ? `, database__client=${env.database__client}` : ''}; ` +
      `Ghost logs to stdout and skips its own JSON export: the task keeps a copy of the database), timeout ${formatMinutes(options.timeoutMs)}.`,
  );
  const run = await runMigrator({ cwd: install.root, env, timeoutMs: options.timeoutMs, ...(options.command ? { shell: options.command } : { program }) }, log);
  report.durationMs = run.durationMs;
  return run;
}

/** Where Ghost writes its pre-migration export: content/data, which is usually the database's folder. */
function ghostExportDirs(m: Migration): string[] {
  const dirs = [path.dirname(m.database)];
  if (m.config?.contentPath) dirs.push(path.join(m.config.contentPath, 'data'));
  return dirs;
}

function removeExports(m: Migration, before: Set<string>, dirs: string[]): void {
  const removed = removeNewExports(before, dirs);
  for (const { file, bytes } of removed) {
    m.log.info(
      `Removed ${file} (${bytes} bytes): Ghost's own JSON export of the whole site, written by its pre-migration hook, which this Ghost cannot be told to skip. ` +
        `The task's copy of the database already covers it, and it would otherwise be packaged and deployed.`,
    );
  }
  m.report.removedExports.push(...removed.map((r) => path.basename(r.file)));
}

function readLoggedErrors(mark: ErrorLogMark, log: Log): string[] {
  try {
    return readAppendedErrors(mark);
  } catch (err) {
    log.debug(`Could not read Ghost's error logs in ${mark.dir}: ${(err as Error).message}`);
    return [];
  }
}

/** An unexpected error after the copy was taken: put the copy back before reporting it. */
function restoreAfterError(err: unknown, snapshot: Snapshot, options: MigrateOptions): Error {
  const message = err instanceof Error ? err.message : String(err);
  if (!options.restoreOnFailure) {
    return new Error(`${message}\nThe database was left as it is (restoreOnFailure: false)${snapshot.existed ? `; the copy taken before is ${snapshot.copy}` : ''}.`, { cause: err });
  }
  try {
    restoreSnapshot(snapshot);
    discardSnapshot(snapshot);
    return new Error(`${message}\nThe database was restored to what it was before the task.`, { cause: err });
  } catch (restoreErr) {
    return new Error(
      `${message}\nRestoring the database failed too (${(restoreErr as Error).message})${snapshot.existed ? `; the copy taken before is ${snapshot.copy}` : ''}. Do not deploy ${snapshot.file}.`,
      { cause: err },
    );
  }
}

function succeed(m: Migration, snapshot: Snapshot, after: DatabaseState): MigrationReport {
  const { report, before, log } = m;
  discardSnapshot(snapshot);
  report.applied = addedRows(before?.rows ?? [], after.rows);
  report.databaseVersion = highestVersion(after.rows);
  report.status = !report.existedBefore ? 'initialised' : report.applied.length ? 'migrated' : 'up-to-date';
  logApplied(report, log);
  return report;
}

/** Puts the copy back (unless told not to) and builds the error that says what happened. */
function fail(m: Migration, snapshot: Snapshot, judged: Judged): MigrationFailedError {
  const { report, options, before } = m;
  const { run, problems, after, loggedErrors } = judged;
  const output = run.lines.map((l) => l.text);
  report.failure = {
    problems,
    cause: diagnose([...output, ...loggedErrors], run),
    errorLines: mergeErrorLines(errorLines(run.lines), loggedErrors),
    database: 'kept',
    sha256: snapshot.existed ? snapshot.sha256 : undefined,
    leftMigrated: describeLeft(addedRows(before?.rows ?? [], after?.rows ?? [])),
  };
  if (options.restoreOnFailure) {
    try {
      restoreSnapshot(snapshot);
      discardSnapshot(snapshot);
      report.failure.database = 'restored';
      report.databaseVersion = report.versionBefore;
    } catch (err) {
      report.failure.database = 'restore-failed';
      report.failure.backup = snapshot.existed ? snapshot.copy : undefined;
      problems.push(problem('restore-failed', `Restoring the database failed: ${(err as Error).message}`));
    }
  } else {
    report.failure.backup = snapshot.existed ? snapshot.copy : undefined;
    if (after) {
      report.applied = addedRows(before?.rows ?? [], after.rows);
      report.databaseVersion = highestVersion(after.rows);
    }
  }
  return new MigrationFailedError(failureMessage(report, options), report);
}

function describeLeft(rows: MigrationRow[]): string | undefined {
  const versions = rows.map((r) => cleanText(r.version, 40)).filter((v) => v !== 'init');
  return versions.length ? `${rows.length} migration(s) in ${summariseVersions(versions)}` : undefined;
}

/** The output's error lines, then what the error log adds; each cleaned (outside text) and abridged. */
function mergeErrorLines(fromOutput: string[], fromLog: string[], max = 25): string[] {
  const lines = [...fromOutput];
  for (const line of fromLog) if (!lines.some((l) => l.includes(line.replace(/^ERROR /, '').trim()))) lines.push(line);
  return lines.slice(0, max).map((l) => cleanText(abridge(l), Infinity));
}

/**
 * A long line keeps its start and its end: SQLite puts the reason after the statement, so Ghost's
 * "create table `x` (… 400 characters …) - view `x` already exists" must not lose its last words.
 */
export function abridge(line: string, head = 160, tail = 240): string {
  return line.length <= head + tail + 3 ? line : `${line.slice(0, head)} … ${line.slice(-tail)}`;
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
    throw new Error(`The database was not touched: ${err.message}${hint}`, { cause: err });
  }
  const state = readDatabaseState(database);
  if (!state.initialised) {
    throw new Error(
      `${database} is a SQLite database without a 'migrations' table: knex-migrator has never initialised it, so it is not a Ghost database (or not the one Ghost uses). Check databasePath.`,
    );
  }
  return state;
}

/**
 * The environment Ghost's config reads (nconf: `__` separates levels): the database, logging to
 * stdout (production logs only to files under content/logs, so a failure would print nothing),
 * and its pre-migration export off. The site's config files are not touched.
 */
function migratorEnv(options: MigrateOptions, database: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(options.env ?? process.env)) {
    // The agent's task inputs and connections are not the migrator's business.
    if (!/^(INPUT_|ENDPOINT_|SECRET_)/i.test(k)) env[k] = v;
  }
  env.NODE_ENV = options.nodeEnv;
  env.database__connection__filename = database;
  env.logging__transports = '["stdout"]';
  Object.assign(env, SKIP_EXPORT_ENV);
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

function runProblems(run: MigratorRun, options: MigrateOptions): Problem[] {
  if (run.cancelled) return [problem('cancelled', 'the job was cancelled while the migrator ran (it was stopped)')];
  if (run.timedOut) return [problem('timeout', `the migrator did not finish within ${formatMinutes(options.timeoutMs)} and was stopped, with every process it started`)];
  if (run.exitCode === null) return [problem('killed', `the migrator was killed (${run.signal ?? 'no exit code'})`)];
  if (run.exitCode !== 0) return [problem('exit-code', `the migrator exited with code ${run.exitCode}`)];
  return [];
}

function checkDatabaseAfter(database: string, config: MigratorConfigProbe, target: string, problems: Problem[]): { after?: DatabaseState; health?: Health } {
  if (!fs.existsSync(database)) {
    problems.push(problem('database-missing', `${database} does not exist after the run`));
    return {};
  }
  try {
    verifySqliteFile(database);
  } catch (err) {
    if (!(err instanceof SqliteFileError)) throw err;
    problems.push(
      err.kind === 'side-files'
        ? problem('journal-left', `${err.message.split(':')[0]}: the migrator left its journal behind (it died mid-write, or a process still has the database open)`)
        : problem('database-damaged', `the database fails its checks after the run: ${err.message}`),
    );
    return {};
  }
  const after = readDatabaseState(database);
  if (!after.initialised) {
    problems.push(problem('not-initialised', `the database has no 'migrations' table after the run: the migrator did not initialise it`));
    return { after };
  }
  if (after.lock.locked) problems.push(problem('lock-still-set', `the migration lock is still set after the run (migrations_lock.locked = 1): Ghost would refuse to start on this database`));
  const health = checkHealth(after.rows, config.migrationPath!, config.subfolder, target);
  if (health.pending.length) problems.push(problem('still-pending', `migrations are still pending for Ghost ${target}: ${summarisePending(health.pending)}`));
  if (health.excess.length) {
    problems.push(
      problem(
        'excess-rows',
        `the migrations table has more rows than there are files for ${summariseVersions(health.excess.map((v) => v.version))} (knex-migrator's MIGRATION_STATE_ERROR): Ghost would refuse to start`,
      ),
    );
  }
  return { after, health };
}

/** Why migrations can be pending after a run that exited 0: the traps of custom commands. */
function explainPending(health: Health, run: MigratorRun, config: MigratorConfigProbe, install: GhostInstall, problems: Problem[]): void {
  if (!health.pending.length || run.exitCode !== 0) return;
  const text = run.lines.map((l) => l.text);
  const skipped = [...new Set(text.flatMap((t) => /knex-migrator is skipping (\S+)/.exec(t)?.[1] ?? []))].map((v) => cleanText(v, 40));
  if (skipped.length) {
    problems.push(
      problem(
        'skipped-newer',
        `the migrator skipped ${summariseVersions(skipped)} as newer than its currentVersion: MigratorConfig.js took Ghost's version from a package.json other than ghostRoot's. ` +
          `Ghost reads it from the package.json nearest the working directory, so the command must run Ghost from ghostRoot (${install.root}) without changing folder`,
      ),
    );
  } else if (text.some((t) => /Rolling back:/.test(t))) {
    problems.push(
      problem('exit-0-rolled-back', `a migration failed and was rolled back, yet the command exited 0: it does not wait for knex-migrator's migrate() (as Ghost-Azure's db.js does not), so its exit code cannot be trusted`),
    );
  } else {
    problems.push(
      problem('exit-0-nothing-applied', `the command exited 0 without applying them${config.currentVersion ? ` (knex-migrator's currentVersion was ${config.currentVersion} when the task loaded MigratorConfig.js)` : ''}`),
    );
  }
}

function logApplied(report: MigrationReport, log: Log): void {
  if (!report.applied.length) {
    log.info(`No migration was pending: the database is at ${report.databaseVersion ?? 'its initial version'}.`);
    return;
  }
  const versions = summariseVersions(report.applied.map((r) => r.version).filter((v) => v !== 'init'));
  log.info(`${report.status === 'initialised' ? 'Initialised the database; recorded' : 'Applied'} ${report.applied.length} migration(s)${versions ? ` (${versions})` : ''}.`);
  // One line per migration, folded: an upgrade across a major version applies a hundred or more.
  log.group(`The ${report.applied.length} migration(s), by version and name`);
  for (const row of report.applied) log.info(`  ${cleanText(row.version, 40).padEnd(8)} ${cleanText(row.name, 200)}`);
  log.endGroup();
}
