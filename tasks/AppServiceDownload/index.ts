/**
 * AppServiceDownload@1: download a file or a folder from an App Service through Kudu, verified
 * and complete, or fail without touching the destination.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tl from 'azure-pipelines-task-lib/task';
import { taskDeadline } from '../../lib/task/agent-settings';
import { writeFileAtomic } from '../../lib/fs';
import { manifestFileFor, type BackupManifest } from '../../lib/sqlite/manifest';
import { getBoolean, getChoice, getNumber, getRequired, setOutput } from '../../lib/task/inputs';
import { kuduFromServiceConnection } from '../../lib/task/kudu-connection';
import { pipelineLog } from '../../lib/task/log';
import { runTask } from '../../lib/task/run';
import { code, markdownList, markdownTable, uploadSummary } from '../../lib/task/summary';
import { formatBytes } from '../../lib/format';
import { fetchFromAppService, type FetchResult } from './fetch';

runTask(async () => {
  const retries = getNumber('retries', 4, { min: 0, max: 20, integer: true });
  const destination = getRequired('destination');
  const request = {
    remotePath: getRequired('remotePath'),
    // Relative destinations are taken from the working directory, as Microsoft's tasks do.
    destination: path.resolve(tl.getVariable('System.DefaultWorkingDirectory') ?? process.cwd(), destination) + (/[/\\]$/.test(destination) ? path.sep : ''),
    extract: getBoolean('extract', true),
    verifySqlite: getChoice('verifySqlite', ['auto', 'always', 'never'] as const, 'auto'),
    requireComplete: getBoolean('requireComplete', true),
    overwrite: getBoolean('overwrite', true),
    retries,
  };
  // No timeoutMinutes input: the default deadline (DEFAULT_TASK_MINUTES) bounds every request and retry.
  const kudu = await kuduFromServiceConnection({ taskName: 'AppServiceDownload', log: pipelineLog, maxAttempts: retries + 1, deadline: taskDeadline() });
  try {
    const result = await fetchFromAppService(kudu, request, pipelineLog);
    setOutput('downloadedPath', result.path);
    setOutput('downloadedFiles', result.files);
    setOutput('downloadedBytes', result.bytes);
    if (result.sha256) setOutput('downloadedSha256', result.sha256);
    if (result.manifest) {
      // For the release's AppServiceDatabaseGuard: the live database's state when this backup was taken.
      setOutput('databaseFingerprint', result.manifest.fingerprint);
      setOutput('backupTakenAt', result.manifest.takenAt);
      setOutput('backupSourcePath', result.manifest.source);
      setOutput('backupManifest', keepManifest(request.remotePath, result.manifest));
    }
    for (const db of result.databases) pipelineLog.info(`SQLite check passed: ${db.tables} tables, ${db.pageCount} pages of ${db.pageSize} bytes, ${db.journal} journal.`);
    publishSummary(request.remotePath, kudu.host, result);
    const what = result.kind === 'file' ? `${result.bytes} bytes` : `${result.files} files, ${result.bytes} bytes`;
    return `Downloaded ${request.remotePath} to ${result.path} (${what}).`;
  } finally {
    kudu.close();
  }
});

/**
 * The manifest, as checked against the file, kept on the agent (not beside the destination,
 * which is inside the site): SitePackage's backupManifest publishes it beside the zip.
 */
function keepManifest(remotePath: string, manifest: BackupManifest): string {
  const folder = path.join(tl.getVariable('Agent.TempDirectory') || os.tmpdir(), `backup-manifest-${randomUUID().slice(0, 8)}`);
  fs.mkdirSync(folder, { recursive: true });
  const file = path.join(folder, manifestFileFor(path.posix.basename(remotePath.replace(/\\/g, '/'))));
  writeFileAtomic(file, JSON.stringify(manifest, null, 2) + '\n');
  return file;
}

/** What came down, checked how, and the backup it is (when it has a manifest). */
function publishSummary(remotePath: string, host: string, result: FetchResult): void {
  const m = result.manifest;
  const table = markdownTable([
    ['From', `${code(remotePath)} on ${code(host)}`],
    ['To', code(result.path)],
    ['Size', result.kind === 'file' ? formatBytes(result.bytes) : `${result.files} files, ${formatBytes(result.bytes)}`],
    ['SHA-256', result.sha256 && code(result.sha256)],
    ['SQLite', result.databases.length ? result.databases.map((d) => `integrity_check ok, ${d.tables} tables, ${d.journal} journal`).join('; ') : undefined],
    ['Backup taken', m && `${code(m.takenAt)} from ${code(m.source)}`],
    ['Fingerprint', m && code(m.fingerprint)],
  ]);
  const missing = result.missing.length ? ['Missing from Kudu’s zip (requireComplete is off):', markdownList(result.missing.map((f) => code(f)), 20)] : [];
  uploadSummary(`Download of ${path.posix.basename(remotePath.replace(/\\/g, '/').replace(/\/+$/, '')) || 'files'}`, [table, ...missing]);
}
