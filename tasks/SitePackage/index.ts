/**
 * SitePackage@1: zip the site for a slot deployment, check its SQLite databases, and publish the
 * archive as the build's artifact (with the backup's manifest beside it, when given).
 */
import * as path from 'node:path';
import * as tl from 'azure-pipelines-task-lib/task';
import { formatBytes } from '../../lib/format';
import { getBoolean, getFilePath, getRequired, getString, setOutput } from '../../lib/task/inputs';
import { pipelineLog } from '../../lib/task/log';
import { runTask } from '../../lib/task/run';
import { uploadSummary } from '../../lib/task/summary';
import { packageSite, placeBesideArchive, readBackupManifest, renderSummary } from './package-site';

runTask(async () => {
  const base = tl.getVariable('System.DefaultWorkingDirectory') ?? process.cwd();
  const rootFolder = path.resolve(base, getRequired('rootFolder'));
  const manifest = getFilePath('backupManifest');
  const manifestFile = manifest ? path.resolve(base, manifest) : undefined;
  // Checked first: a wrong manifest fails the task before anything is written.
  const manifestText = manifestFile && readBackupManifest(manifestFile);
  const request = {
    rootFolder,
    exclude: [...excludeLines(getString('exclude')), ...insideSite(rootFolder, manifestFile)],
    archiveFile: path.resolve(base, getRequired('archiveFile')),
    verifySqlite: getBoolean('verifySqlite', true),
  };
  const publish = getBoolean('publishArtifact', true);
  const artifactName = publish ? getRequired('artifactName') : undefined;

  pipelineLog.info(`Packaging ${request.rootFolder} into ${request.archiveFile}${request.exclude.length ? `, excluding ${request.exclude.join(', ')}` : ''}`);
  const result = await packageSite(request, pipelineLog);
  pipelineLog.info(
    `Packaged ${result.files} files: ${formatBytes(result.bytesIn)} in, ${formatBytes(result.bytesOut)} out, in ${result.seconds.toFixed(1)} s. sha256 ${result.sha256}`,
  );
  if (result.excluded.length) pipelineLog.info(`Excluded: ${result.excluded.slice(0, 20).join(', ')}${result.excluded.length > 20 ? ', ...' : ''}`);
  const manifestCopy = manifestFile && manifestText ? placeBesideArchive(manifestFile, manifestText, request.archiveFile) : undefined;
  if (manifestCopy) pipelineLog.info(`Backup manifest ${manifestFile} placed beside the zip as ${manifestCopy}.`);

  setOutput('archiveFile', result.output);
  setOutput('archiveSha256', result.sha256);
  setOutput('archiveEntries', result.entries);
  setOutput('archiveBytes', result.bytesOut);
  if (manifestCopy) setOutput('backupManifestCopy', manifestCopy);
  uploadSummary(`Site package${artifactName ? ` ${artifactName}` : ''}`, renderSummary(result, { artifactName, manifest: manifestCopy && path.basename(manifestCopy) }));
  if (!artifactName) return `Packaged ${result.files} files into ${result.output}.`;
  tl.uploadArtifact(artifactName, result.output, artifactName);
  // The same artifact and folder: the release finds it at <artifact>/backup.db.json.
  if (manifestCopy) tl.uploadArtifact(artifactName, manifestCopy, artifactName);
  return `Packaged ${result.files} files into ${path.basename(result.output)} and published it as artifact '${artifactName}'${manifestCopy ? `, with ${path.basename(manifestCopy)}` : ''}.`;
});

/** The exclude input: one glob a line, `#` comments and blank lines skipped. */
function excludeLines(text: string | undefined): string[] {
  return (text ?? '')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
}

/** A manifest kept inside the site folder is left out of the zip: it travels beside it. */
function insideSite(root: string, file: string | undefined): string[] {
  if (!file) return [];
  const rel = path.relative(root, file);
  if (!rel || rel.startsWith('..') || path.isAbsolute(rel)) return [];
  // Glob characters in the name are matched literally.
  return [rel.split(path.sep).map((s) => s.replace(/[*?[\]{}()!+@]/g, '[$&]')).join('/')];
}
