/**
 * SqliteBackup@1: a zero-downtime, verified backup of a live SQLite database on the agent's machine.
 */
import * as path from 'node:path';
import * as tl from 'azure-pipelines-task-lib/task';
import { backupSqlite, summaryLine, type BackupReport } from '../../lib/sqlite/backup';
import { progressPrinter } from '../../lib/sqlite/cli';
import { formatFingerprint } from '../../lib/sqlite/fingerprint';
import { placeManifest } from '../../lib/sqlite/manifest';
import { formatBytes, formatMs } from '../../lib/format';
import { resolveKeepingSlash } from '../../lib/fs';
import { getBoolean, getChoice, getNumber, getRequired, getString, setOutput } from '../../lib/task/inputs';
import { pipelineLog } from '../../lib/task/log';
import { runTask } from '../../lib/task/run';
import { version } from '../../package.json';
import { code, markdownTable, uploadSummary } from '../../lib/task/summary';

runTask(async () => {
  const base = tl.getVariable('System.DefaultWorkingDirectory') || process.cwd();
  const report = await backupSqlite(resolveKeepingSlash(base, getRequired('databasePath')), resolveKeepingSlash(base, getString('backupPath') ?? `${tl.getVariable('Build.ArtifactStagingDirectory') ?? base}/`), {
    verify: getChoice('verify', ['integrity', 'quick', 'none'] as const, 'integrity'),
    gzip: getChoice('compress', ['none', 'gzip'] as const, 'none') === 'gzip',
    skipIfUnchanged: getBoolean('skipIfUnchanged', false),
    keepLast: getNumber('keepLast', 0, { min: 0, integer: true }),
    busyTimeoutMs: Math.round(getNumber('busyTimeoutSeconds', 10, { min: 0, max: 3600 }) * 1000),
    log: pipelineLog,
    onProgress: progressPrinter((line) => console.log(line)),
  });
  // The same manifest the backup WebJob writes: a release's AppServiceDatabaseGuard can read the fingerprint from it.
  const manifest = placeManifest(report, version);
  setOutput('backupFile', report.file);
  setOutput('backupManifest', manifest);
  setOutput('backupSha256', report.sha256);
  setOutput('backupBytes', report.bytes);
  setOutput('backupSkipped', report.skipped);
  setOutput('maxLockMilliseconds', Math.ceil(report.maxLockMs));
  setOutput('databaseFingerprint', formatFingerprint(report.fingerprint));
  publishSummary(report);
  return summaryLine(report);
});

/** A small table on the run page. */
function publishSummary(report: BackupReport): void {
  const rows: Array<[string, string | undefined]> = report.skipped
    ? [['Backup', `skipped: unchanged since ${code(report.file)}`]]
    : [
        ['Backup', code(report.file)],
        ['Size', `${formatBytes(report.bytes)}${report.gzip ? ` (database ${formatBytes(report.databaseBytes)})` : ''}`],
        ['SHA-256', code(report.sha256)],
        ['Database', `${report.pageCount} pages of ${report.pageSize} bytes, ${report.journal === 'wal' ? 'WAL' : 'rollback journal'}`],
        ['Fingerprint', code(formatFingerprint(report.fingerprint))],
        ['Verified', report.verify],
        ['Took', formatMs(report.durationMs)],
        ['Writers could wait', formatMs(report.maxLockMs)],
      ];
  uploadSummary(`SQLite backup of ${path.basename(report.source)}`, [markdownTable(rows)]);
}
