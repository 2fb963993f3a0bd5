/**
 * AppServiceWebJobRun@1: start a triggered WebJob through Kudu and wait for it, streaming its log.
 */
import { DeadlineError } from '../../lib/deadline';
import { checkJobName } from '../../lib/remote-path';
import { taskDeadline } from '../../lib/task/agent-settings';
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
  const timeoutMinutes = getNumber('timeoutMinutes', 30, { min: 0.01, max: 1440 });
  // One deadline for the whole run: connecting, installing, waiting for another run, following ours.
  const deadline = taskDeadline(timeoutMinutes);
  const options = {
    jobName: checkJobName(getRequired('jobName'), 'jobName'),
    arguments: getString('arguments'),
    waitForCompletion: getBoolean('waitForCompletion', true),
    timeoutMs: timeoutMinutes * 60_000,
    deadline,
    pollIntervalMs: getNumber('pollIntervalSeconds', 5, { min: 0.1, max: 600 }) * 1000,
    whenAlreadyRunning: getChoice('whenAlreadyRunning', ['queue', 'attach', 'fail'] as const, 'queue'),
    streamLog: getBoolean('streamLog', true),
  };
  const installJob = getBoolean('installJob', false);
  const kudu = await kuduFromServiceConnection({ taskName: 'AppServiceWebJobRun', log: pipelineLog, deadline }).catch(explainTimeout);
  try {
    if (installJob) await installBundledJob(kudu, options.jobName, bundledJob(version), pipelineLog);
    const outcome = await runAndWait(kudu, options, pipelineLog);
    report(outcome, options.jobName, kudu.host);
    return outcome.status === 'Success'
      ? `WebJob '${options.jobName}' run ${outcome.runId} succeeded in ${outcome.durationSeconds} s.`
      : `WebJob '${options.jobName}' run ${outcome.runId} was accepted (not waiting for it).`;
  } catch (err) {
    if (err instanceof RunFailedError) report(err.outcome, options.jobName, kudu.host);
    return explainTimeout(err);
  } finally {
    kudu.close();
    deadline.dispose();
  }
});

/** The deadline's error says what ran out; say what to change. */
function explainTimeout(err: unknown): never {
  if (err instanceof DeadlineError) throw new Error(`${err.message} Raise timeoutMinutes if the job (or the wait for it) needs longer.`, { cause: err });
  throw err;
}

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
