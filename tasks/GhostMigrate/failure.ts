/**
 * The task's error when a migration run fails: what went wrong, Ghost's own error lines, what
 * became of the database, and what to do next. The advice switches on the problems' kinds and on
 * the cause read from Ghost's lines, and names the task's inputs; it never matches wording.
 */
import type { MigrateOptions, MigrationReport } from './migrate';
import type { Cause, Problem, ProblemKind } from './problems';

export function failureMessage(report: MigrationReport, options: MigrateOptions): string {
  const failure = report.failure!;
  const parts = [`Ghost's migrations failed: ${failure.problems.map((p) => p.message).join('; ')}.`];
  if (failure.errorLines.length) parts.push(`Ghost's error:\n${failure.errorLines.map((l) => `  ${l}`).join('\n')}`);
  else parts.push(`Ghost printed no error, and wrote none to its error log during the run.`);
  parts.push(databaseFate(report));
  parts.push(`Next: ${advice(failure.problems, failure.cause, report, options)}`);
  return parts.join('\n');
}

function databaseFate(report: MigrationReport): string {
  const failure = report.failure!;
  // knex-migrator rolls back what it can; when its rollback fails too, the earlier versions stay applied.
  const half = failure.leftMigrated ? `The migrator left the database half-migrated (${failure.leftMigrated} still recorded after its rollback). ` : '';
  switch (failure.database) {
    case 'restored':
      return report.existedBefore
        ? `${half}The database was restored: ${report.database} is byte-identical to before the run (sha256 ${failure.sha256}).`
        : `The database was removed again: ${report.database} did not exist before the run.`;
    case 'kept':
      return (
        `${half}The database was left as the migrator left it (restoreOnFailure: false)${failure.backup ? `; the copy taken before the run is ${failure.backup}` : ''}. ` +
        `Do not deploy it.`
      );
    case 'restore-failed':
      return `The database could NOT be restored; the copy taken before the run is ${failure.backup ?? '(none)'}. Do not deploy ${report.database}.`;
  }
}

function advice(problems: Problem[], cause: Cause, report: MigrationReport, options: MigrateOptions): string {
  const has = (kind: ProblemKind) => problems.some((p) => p.kind === kind);
  if (has('timeout')) {
    return `raise timeoutMinutes if the migrations need longer on this database; if one hangs, run them locally on a copy to find which. The production site was not touched.`;
  }
  if (has('cancelled')) return 'run the pipeline again.';
  if (cause.kind === 'native-module') return nativeModuleAdvice(cause, report, options);
  if (cause.kind === 'native-crash') return nativeCrashAdvice(cause, report, options);
  if (cause.kind === 'lock') {
    return (
      `the database was busy or its migration lock was held: another process had the file open (a second job or step on the same file?), or the copy was taken while Ghost was migrating. ` +
      `Make sure nothing else uses ${report.database} during this task, take a fresh backup, and run again; for a lock left by a killed migration, see whenLocked.`
    );
  }
  if (has('skipped-newer')) return `run Ghost's migrator from ghostRoot: remove any 'cd' from the command, or leave command empty to let the task run knex-migrator.`;
  if (has('exit-0-rolled-back')) {
    return `fix the failing migration that Ghost's error names. Leave command empty to let the task run knex-migrator directly, which reports failures properly.`;
  }
  if (has('lock-still-set')) return `the migrator did not release its lock; Ghost's error above says why. Run again once that is fixed.`;
  if (has('excess-rows')) return 'the database was migrated by a different Ghost than the one in ghostRoot; deploy that Ghost version, or inspect the migrations table.';
  const reproduce = `Reproduce it locally with the same Ghost on a copy of the database${options.command ? ` and '${options.command}'` : ' and `knex-migrator migrate`'}. The production site was not touched.`;
  if (cause.kind === 'migration-error') {
    return `Ghost's error above names the migration that failed and why (often a migration that does not work on SQLite, or data it does not expect). ${reproduce}`;
  }
  return (
    `Ghost said nothing about the failure. Run the migrator by hand in ghostRoot with the same Node.js (${options.node}) to see what it does; ` +
    `if it crashes before logging, its Node.js or its installed dependencies are the first suspects. ${reproduce}`
  );
}

function nativeModuleAdvice(cause: Extract<Cause, { kind: 'native-module' }>, report: MigrationReport, options: MigrateOptions): string {
  const abi = cause.builtFor && cause.needs ? ` (built for NODE_MODULE_VERSION ${cause.builtFor}; this Node.js needs ${cause.needs})` : '';
  return (
    `a native module of Ghost's${cause.module ? ` (${cause.module})` : ''} was built for another Node.js or platform${abi}, so the Node.js that ran the migrator, ` +
    `${report.nodeVersion ?? 'unknown version'} at ${options.node}, cannot load it. Install Ghost's dependencies (npm ci) in ghostRoot with the same Node.js that runs this task's migrator, ` +
    `on the agent's OS: choose it with a NodeTool@0 (UseNode@1) step before both, or set nodeExecutable to the node Ghost was installed with. Ghost 6 needs Node.js ^22.23.1 or ^24.20.0.`
  );
}

function nativeCrashAdvice(cause: Extract<Cause, { kind: 'native-crash' }>, report: MigrationReport, options: MigrateOptions): string {
  return (
    `Node.js ${report.nodeVersion ?? ''} (${options.node}) aborted${cause.module ? ` in the native module ${cause.module}` : ''} instead of reporting an error: that is a crash, not a failed migration. ` +
    `A known case: Ghost 6's better-sqlite3 12 aborts at random on Node.js 24.19 and later ("Assertion failed: (env) != nullptr", nodejs/node#65446). ` +
    `Run Ghost's migrator on Node.js 22 (Ghost 6 needs ^22.23.1): install Ghost's dependencies with it and set nodeExecutable to it, or choose it with a NodeTool@0 (UseNode@1) step.`
  );
}
