/**
 * SitePackage@1: zip the site for a slot deployment, check its SQLite databases, and publish the
 * archive as the build's artifact.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tl from 'azure-pipelines-task-lib/task';
import { getBoolean, getRequired, getString, setOutput } from '../../lib/task/inputs';
import { pipelineLog } from '../../lib/task/log';
import { runTask } from '../../lib/task/run';
import { packageSite, renderSummary } from './package-site';

runTask(async () => {
  const base = tl.getVariable('System.DefaultWorkingDirectory') ?? process.cwd();
  const request = {
    rootFolder: path.resolve(base, getRequired('rootFolder')),
    exclude: (getString('exclude') ?? '')
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#')),
    archiveFile: path.resolve(base, getRequired('archiveFile')),
    verifySqlite: getBoolean('verifySqlite', true),
  };
  const publish = getBoolean('publishArtifact', true);
  const artifactName = publish ? getRequired('artifactName') : undefined;

  pipelineLog.info(`Packaging ${request.rootFolder} into ${request.archiveFile}${request.exclude.length ? `, excluding ${request.exclude.join(', ')}` : ''}`);
  const result = await packageSite(request, pipelineLog);
  pipelineLog.info(
    `Packaged ${result.files} files: ${result.bytesIn} bytes in, ${result.bytesOut} bytes out, in ${result.seconds.toFixed(1)} s. sha256 ${result.sha256}`,
  );
  if (result.excluded.length) pipelineLog.info(`Excluded: ${result.excluded.slice(0, 20).join(', ')}${result.excluded.length > 20 ? ', ...' : ''}`);

  setOutput('archiveFile', result.output);
  setOutput('archiveSha256', result.sha256);
  setOutput('archiveEntries', result.entries);
  setOutput('archiveBytes', result.bytesOut);
  const summary = path.join(tl.getVariable('Agent.TempDirectory') || os.tmpdir(), `SitePackage-${Date.now()}.md`);
  fs.writeFileSync(summary, renderSummary(result, artifactName));
  tl.uploadSummary(summary);
  if (artifactName) {
    tl.uploadArtifact(artifactName, result.output, artifactName);
    return `Packaged ${result.files} files into ${path.basename(result.output)} and published it as artifact '${artifactName}'.`;
  }
  return `Packaged ${result.files} files into ${result.output}.`;
});
