/**
 * AppServiceWebJobRun@1: start a triggered WebJob through Kudu and wait for it, streaming its log.
 */
import { getBoolean, getChoice, getNumber, getRequired, getString, setOutput } from '../../lib/task/inputs';
import { kuduFromServiceConnection } from '../../lib/task/kudu-connection';
import { pipelineLog } from '../../lib/task/log';
import { runTask } from '../../lib/task/run';
import { code, markdownTable, uploadSummary } from '../../lib/task/summary';
import { cleanText } from '../../lib/text';
import { version } from '../../package.json';
import { bundledJob, installBundledJob } from './install-job';
import { RunFailedError, runAndWait, type RunOutcome } from './run-and-wait';

runTask(async () => {
  const options = {
    jobName: getRequired('jobName'),
    arguments: getString('arguments'),
    waitForCompletion: getBoolean('waitForCompletion', true),
    timeoutMs: getNumber('timeoutMinutes', 30, { min: 0.01, max: 1440 }) * 60_000,
    pollIntervalMs: getNumber('pollIntervalSeconds', 5, { min: 0.1, max: 600 }) * 1000,
    whenAlreadyRunning: getChoice('whenAlreadyRunning', ['queue', 'attach', 'fail'] as const, 'queue'),
    streamLog: getBoolean('streamLog', true),
  };
  const installJob = getBoolean('installJob', false);
  const kudu = await kuduFromServiceConnection({ taskName: 'AppServiceWebJobRun', log: pipelineLog });
  try {
    if (installJob) await installBundledJob(kudu, options.jobName, bundledJob(version), pipelineLog);
    const outcome = await runAndWait(kudu, options, pipelineLog);
    report(outcome, options.jobName, kudu.host);
    return outcome.status === 'Success'
      ? `WebJob '${options.jobName}' run ${outcome.runId} succeeded in ${outcome.durationSeconds} s.`
      : `WebJob '${options.jobName}' run ${outcome.runId} was accepted (not waiting for it).`;
  } catch (err) {
    if (err instanceof RunFailedError) report(err.outcome, options.jobName, kudu.host);
    throw err;
  } finally {
    kudu.close();
  }
});

function report(outcome: RunOutcome, jobName: string, host: string): void {
  setOutput('runId', outcome.runId);
  setOutput('runStatus', outcome.status);
  setOutput('runDurationSeconds', outcome.durationSeconds);
  setOutput('runLogUrl', outcome.logUrl);
  const table = markdownTable([
    ['Job', `${code(jobName)} on ${code(host)}`],
    ['Run', `${code(outcome.runId)}${outcome.attached ? ' (a run already in progress, followed)' : ''}`],
    ['Status', outcome.status === 'Success' ? `✔ ${outcome.status}` : outcome.status],
    ['Took', `${outcome.durationSeconds} s`],
    ['Log', code(outcome.logUrl)],
  ]);
  const tail = outcome.status !== 'Success' && outcome.lastLines.length ? ['Last lines of its log:', '```\n' + outcome.lastLines.map((l) => cleanText(l).replace(/```/g, "'''")).join('\n') + '\n```'] : [];
  uploadSummary(`WebJob ${jobName}`, [table, ...tail]);
}
