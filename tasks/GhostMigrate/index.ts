/**
 * GhostMigrate@1: run Ghost's database migrations on the build's copy of the SQLite database,
 * check the result, report it, and restore the copy when anything fails.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tl from 'azure-pipelines-task-lib/task';
import { getBoolean, getChoice, getNumber, getRequired, getString, setOutput } from '../../lib/task/inputs';
import { pipelineLog } from '../../lib/task/log';
import { runTask } from '../../lib/task/run';
import { uploadSummary } from '../../lib/task/summary';
import { MigrationFailedError, migrateGhost, type MigrationReport } from './migrate';
import { renderSummary } from './summary';

runTask(async () => {
  const tempDir = tl.getVariable('Agent.TempDirectory') || os.tmpdir();
  const options = {
    ghostRoot: getRequired('ghostRoot'),
    databasePath: getString('databasePath') ?? 'content/data/ghost.db',
    nodeEnv: getString('nodeEnv') ?? 'production',
    command: getString('command'),
    initIfMissing: getBoolean('initIfMissing', false),
    whenLocked: getChoice('whenLocked', ['fail', 'release'] as const, 'fail'),
    restoreOnFailure: getBoolean('restoreOnFailure', true),
    timeoutMs: getNumber('timeoutMinutes', 30, { min: 0.01, max: 1440 }) * 60_000,
    node: findNode(getString('nodeExecutable')),
    tempDir,
  };
  let report: MigrationReport;
  try {
    report = await migrateGhost(options, pipelineLog);
  } catch (err) {
    if (err instanceof MigrationFailedError) publish(err.report);
    throw err;
  }
  publish(report);
  const file = path.basename(report.database);
  switch (report.status) {
    case 'migrated':
      return `Applied ${report.applied.length} migration(s) to ${file}: now at version ${report.databaseVersion}.`;
    case 'initialised':
      return `Initialised ${file} at version ${report.databaseVersion ?? '(none)'}.`;
    default:
      return `${file} is up to date (version ${report.databaseVersion ?? '(none)'}).`;
  }
});

/** The node Ghost was installed with: the input, or the first `node` on PATH (not the agent's own). */
function findNode(input: string | undefined): string {
  if (input) {
    const file = /[\\/]/.test(input) ? path.resolve(input) : tl.which(input, false);
    if (!file || !fs.existsSync(file)) {
      throw new Error(`nodeExecutable '${input}' was not found. Give the full path of the node Ghost was installed with, or leave it empty to use the node on PATH.`);
    }
    return file;
  }
  const found = tl.which('node', false);
  if (!found) {
    throw new Error(
      `Node.js was not found on the agent's PATH. Install the Node.js version Ghost needs before this task (a NodeTool@0 or UseNode@1 step), or set nodeExecutable to its full path.`,
    );
  }
  return found;
}

function publish(report: MigrationReport): void {
  setOutput('migrationsApplied', report.applied.length);
  setOutput('databaseVersion', report.databaseVersion ?? '');
  uploadSummary('Ghost migrations', [renderSummary(report)]);
}
