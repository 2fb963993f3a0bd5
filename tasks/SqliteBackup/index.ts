/**
 * SqliteBackup@1: a zero-downtime, verified backup of a live SQLite database on the agent's machine.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tl from 'azure-pipelines-task-lib/task';
import { backupSqlite, summaryLine, type BackupReport } from '../../lib/sqlite/backup';
import { progressPrinter } from '../../lib/sqlite/cli';
import { placeManifest } from '../../lib/sqlite/manifest';
import { formatFingerprint } from '../../lib/sqlite/fingerprint';
import { formatBytes, formatMs } from '../../lib/format';
import { getBoolean, getChoice, getNumber, getRequired, getString, setOutput } from '../../lib/task/inputs';
import { pipelineLog } from '../../lib/task/log';
import { runTask } from '../../lib/task/run';
import { version } from '../../package.json';

runTask(async () => {
  const base = tl.getVariable('System.DefaultWorkingDirectory') || process.cwd();
  const report = await backupSqlite(fromBase(getRequired('databasePath'), base), fromBase(getString('backupPath') ?? `${tl.getVariable('Build.ArtifactStagingDirectory') ?? base}/`, base), {
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
  uploadSummary(report);
  return summaryLine(report);
});

/** A relative path from the working directory, keeping a trailing separator (it means "a folder"). */
function fromBase(p: string, base: string): string {
  const folder = /[\\/]$/.test(p);
  const resolved = path.resolve(base, p);
  return folder ? resolved + path.sep : resolved;
}

/** A small table on the run's summary page. */
function uploadSummary(report: BackupReport): void {
  const temp = tl.getVariable('Agent.TempDirectory');
  if (!temp) return;
  const rows = report.skipped
    ? [['Backup', `skipped: unchanged since \`${report.file}\``]]
    : [
        ['Backup', `\`${report.file}\``],
        ['Size', `${formatBytes(report.bytes)}${report.gzip ? ` (database ${formatBytes(report.databaseBytes)})` : ''}`],
        ['SHA-256', `\`${report.sha256}\``],
        ['Database', `${report.pageCount} pages of ${report.pageSize} bytes, ${report.journal === 'wal' ? 'WAL' : 'rollback journal'}`],
        ['Verified', report.verify],
        ['Took', formatMs(report.durationMs)],
        ['Writers could wait', formatMs(report.maxLockMs)],
      ];
  const file = path.join(temp, `sqlite-backup-${Date.now()}.md`);
  fs.writeFileSync(file, `| | |\n|---|---|\n${rows.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}\n`);
  tl.uploadSummary(file);
}
