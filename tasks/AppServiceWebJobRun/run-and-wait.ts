/**
 * Starts a triggered WebJob through Kudu and follows it to its end, streaming its log. Kudu allows
 * one run of a job at a time and answers the start with 202 and a Location; everything after
 * that is polling the run and reading its output_log.txt with Range requests.
 */
import { randomUUID } from 'node:crypto';
import {
  ACTIVE_STATUSES,
  ALREADY_RUNNING_TEXT,
  TERMINAL_STATUSES,
  WEBJOBS_STOPPED_TEXT,
  type KuduClient,
  type TriggeredJobRun,
} from '../../lib/kudu/client';
import { KuduError } from '../../lib/kudu/errors';
import { sleep } from '../../lib/kudu/http';
import { LogTail } from '../../lib/kudu/log-tail';
import type { Log } from '../../lib/log';

export type WhenAlreadyRunning = 'queue' | 'attach' | 'fail';

export interface RunOptions {
  jobName: string;
  arguments?: string;
  waitForCompletion: boolean;
  timeoutMs: number;
  pollIntervalMs: number;
  whenAlreadyRunning: WhenAlreadyRunning;
  streamLog: boolean;
}

export interface RunOutcome {
  runId: string;
  /** Kudu's status; `Initializing` or `Running` when not waited for. */
  status: string;
  durationSeconds: number;
  logUrl: string;
  /** True when the run was someone else's (whenAlreadyRunning: attach). */
  attached: boolean;
  /** The last lines of the run's log. */
  lastLines: string[];
}

/** A run that ended in a state other than Success, or did not end in time. */
export class RunFailedError extends Error {
  constructor(
    message: string,
    readonly outcome: RunOutcome,
  ) {
    super(message);
  }
}

/** Kudu's message when it kills a job that printed nothing and used no CPU for too long. */
const IDLE_KILL = /was aborted due to no output nor CPU activity for (\d+) seconds/;

export async function runAndWait(kudu: KuduClient, options: RunOptions, log: Log): Promise<RunOutcome> {
  const deadline = Date.now() + options.timeoutMs;
  const job = await getJobOrExplain(kudu, options.jobName);

  let current = job.latest_run && ACTIVE_STATUSES.has(job.latest_run.status) ? job.latest_run : undefined;
  for (;;) {
    if (current) {
      const busy = `WebJob '${options.jobName}' is already running (run ${current.id}, ${describeTrigger(current)}).`;
      if (options.whenAlreadyRunning === 'fail') {
        throw new Error(`${busy} whenAlreadyRunning is 'fail'. Wait for it to end, or set whenAlreadyRunning to 'queue' or 'attach'.`);
      }
      if (options.whenAlreadyRunning === 'attach') {
        log.info(`${busy} Attaching to it and reporting its result.`);
        return finish(kudu, options, await follow(kudu, options, current.id, deadline, log), true);
      }
      log.info(`${busy} Waiting for it to end before starting a new run.`);
      await follow(kudu, { ...options, streamLog: false }, current.id, deadline, log);
    }
    const started = await start(kudu, options, deadline, log);
    if ('busy' in started) {
      current = started.busy;
      continue;
    }
    log.info(`Started run ${started.runId} of WebJob '${options.jobName}' on ${kudu.host}.`);
    if (!options.waitForCompletion) {
      return {
        runId: started.runId,
        status: 'Initializing',
        durationSeconds: 0,
        logUrl: kudu.url(logPath(options.jobName, started.runId)),
        attached: false,
        lastLines: [],
      };
    }
    return finish(kudu, options, await follow(kudu, options, started.runId, deadline, log), false);
  }
}

async function getJobOrExplain(kudu: KuduClient, jobName: string) {
  try {
    return await kudu.getTriggeredJob(jobName);
  } catch (err) {
    if (!(err instanceof KuduError) || err.kind !== 'not-found') throw err;
    const names = (await kudu.listTriggeredJobs().catch(() => [])).map((j) => j.name);
    throw new Error(
      `The triggered WebJob '${jobName}' does not exist on ${kudu.host}. ` +
        (names.length ? `Triggered WebJobs there: ${names.map((n) => `'${n}'`).join(', ')}.` : 'The app has no triggered WebJobs.') +
        ` Check jobName (names are case-sensitive), or let the task install the built-in backup job with installJob: true.`,
    );
  }
}

/**
 * POSTs the run once. When the answer is lost the run may still have started, so the history is
 * searched for the marker carried in our User-Agent before anything is sent again.
 */
async function start(
  kudu: KuduClient,
  options: RunOptions,
  deadline: number,
  log: Log,
): Promise<{ runId: string } | { busy: TriggeredJobRun }> {
  for (let attempt = 1; ; attempt++) {
    const marker = `run/${randomUUID()}`;
    try {
      return await kudu.runTriggeredJob(options.jobName, options.arguments, marker);
    } catch (err) {
      if (!(err instanceof KuduError)) throw err;
      if (err.kind === 'conflict') {
        const text = err.details.body ?? '';
        if (text.includes(WEBJOBS_STOPPED_TEXT) || /stopped/i.test(text)) {
          throw new Error(
            `Kudu refused to start '${options.jobName}': ${text} WebJobs are stopped on this app: remove the WEBJOBS_STOPPED app setting ` +
              `(or set it to 0) in the app's Configuration, then run again.`,
          );
        }
        if (text.includes(ALREADY_RUNNING_TEXT) || /already running/i.test(text)) {
          // Another run began between our look and our POST (a schedule, another pipeline).
          const busy = await latestActiveRun(kudu, options.jobName);
          if (busy) return { busy };
          if (Date.now() >= deadline) throw new Error(`WebJob '${options.jobName}' stayed busy until the timeout; no run was started.`);
          await sleep(Math.min(options.pollIntervalMs, deadline - Date.now()));
          continue;
        }
        throw err;
      }
      if (!err.retriable) throw err;
      log.warn(`Starting the run got no clear answer (${err.message}); looking at the job's history before trying again.`);
      const found = await findAfterLostAnswer(kudu, options.jobName, marker, deadline, options.pollIntervalMs);
      if (found) return { runId: found.id };
      if (attempt >= 3 || Date.now() >= deadline) throw err;
    }
  }
}

async function findAfterLostAnswer(
  kudu: KuduClient,
  jobName: string,
  marker: string,
  deadline: number,
  pollIntervalMs: number,
): Promise<TriggeredJobRun | undefined> {
  // The history itself may be unreachable for a moment (the same outage that lost the answer).
  for (let i = 0; i < 5 && Date.now() < deadline; i++) {
    try {
      return await kudu.findRunByTrigger(jobName, marker);
    } catch (err) {
      if (!(err instanceof KuduError) || !err.retriable) throw err;
      await sleep(Math.min(pollIntervalMs, Math.max(0, deadline - Date.now())));
    }
  }
  return undefined;
}

async function latestActiveRun(kudu: KuduClient, jobName: string): Promise<TriggeredJobRun | undefined> {
  const runs = await kudu.getJobHistory(jobName);
  return runs.find((r) => ACTIVE_STATUSES.has(r.status));
}

interface Followed {
  run: TriggeredJobRun;
  timedOut: boolean;
  tail: LogTail;
}

/** Polls the run until it ends or the deadline passes; transient failures are waited out. */
async function follow(kudu: KuduClient, options: RunOptions, runId: string, deadline: number, log: Log): Promise<Followed> {
  const tail = new LogTail(kudu, logPath(options.jobName, runId), options.streamLog ? (line) => log.external(line) : () => undefined);
  let run: TriggeredJobRun | undefined;
  let troubled = false;
  for (;;) {
    try {
      run = await kudu.getJobRun(options.jobName, runId);
      await tail.poll();
      if (troubled) log.info('Kudu answers again.');
      troubled = false;
      if (TERMINAL_STATUSES.has(run.status)) break;
    } catch (err) {
      if (!(err instanceof KuduError) || !err.retriable) throw err;
      if (!troubled) log.warn(`Could not read the run's state, will keep trying until the timeout: ${err.message}`);
      troubled = true;
    }
    if (Date.now() >= deadline) {
      await tail.poll().catch(() => undefined);
      tail.flush();
      return { run: run ?? placeholderRun(options.jobName, runId), timedOut: true, tail };
    }
    await sleep(Math.min(options.pollIntervalMs, Math.max(0, deadline - Date.now())));
  }
  // The job may have written its last lines after the status changed: read to the end.
  await readRest(tail, log);
  tail.flush();
  return { run, timedOut: false, tail };
}

async function readRest(tail: LogTail, log: Log): Promise<void> {
  for (let i = 0; i < 3; i++) {
    try {
      await tail.poll();
      return;
    } catch (err) {
      if (!(err instanceof KuduError) || !err.retriable) throw err;
      if (i === 2) log.warn(`Could not read the end of the run's log: ${err.message}`);
    }
  }
}

function finish(kudu: KuduClient, options: RunOptions, followed: Followed, attached: boolean): RunOutcome {
  const { run, tail } = followed;
  const outcome: RunOutcome = {
    runId: run.id,
    status: run.status,
    durationSeconds: durationSeconds(run),
    logUrl: run.output_url ?? kudu.url(logPath(options.jobName, run.id)),
    attached,
    lastLines: tail.lastLines(15),
  };
  const minutes = +(options.timeoutMs / 60000).toFixed(2);
  if (followed.timedOut) {
    throw new RunFailedError(
      `Run ${run.id} of WebJob '${options.jobName}' did not finish within ${minutes} minute(s) (last status: ${run.status}). ` +
        `It may still be running on the app; its log is at ${outcome.logUrl}. Raise timeoutMinutes if the job needs longer.`,
      outcome,
    );
  }
  if (run.status === 'Success') return outcome;
  throw new RunFailedError(explainFailure(options.jobName, outcome), outcome);
}

function explainFailure(jobName: string, outcome: RunOutcome): string {
  const lines = outcome.lastLines;
  const idle = lines.map((l) => IDLE_KILL.exec(l)).find(Boolean);
  let why: string;
  switch (outcome.status) {
    case 'Failed':
      why = idle
        ? `Kudu killed it because it printed nothing and used no CPU for ${idle[1]} seconds (its idle timeout). ` +
          `Make the job print progress more often, or raise the WEBJOBS_IDLE_TIMEOUT app setting (seconds).`
        : 'The job exited with an error.';
      break;
    case 'Aborted':
      why = 'Its process ended without reporting a result: the app or its SCM site restarted (a swap, a scale-in, a recycle) while it ran. Run it again.';
      break;
    case 'Stopped':
      why = 'Kudu stopped it (WebJobs were stopped with the WEBJOBS_STOPPED setting, or the job was updated while it ran).';
      break;
    default:
      why = 'The job did not succeed.';
  }
  const tail = lines.length ? `\nLast lines of its log:\n${lines.join('\n')}` : '';
  return `Run ${outcome.runId} of WebJob '${jobName}' ended with status ${outcome.status}. ${why} Log: ${outcome.logUrl}${tail}`;
}

function logPath(jobName: string, runId: string): string {
  return `vfs/data/jobs/triggered/${encodeURIComponent(jobName)}/${runId}/output_log.txt`;
}

function describeTrigger(run: TriggeredJobRun): string {
  const when = run.start_time && !run.start_time.startsWith('0001-') ? `started ${run.start_time}` : 'starting';
  return `${when}${run.trigger ? `, ${run.trigger}` : ''}`;
}

function placeholderRun(jobName: string, runId: string): TriggeredJobRun {
  return {
    id: runId,
    name: runId,
    status: 'Unknown',
    start_time: null,
    end_time: null,
    duration: null,
    output_url: null,
    error_url: null,
    url: '',
    job_name: jobName,
    trigger: '',
  };
}

/** From start and end times, or Kudu's TimeSpan text (`[d.]hh:mm:ss[.fffffff]`). */
export function durationSeconds(run: TriggeredJobRun): number {
  const start = run.start_time ? Date.parse(run.start_time) : NaN;
  const end = run.end_time && !run.end_time.startsWith('0001-') ? Date.parse(run.end_time) : NaN;
  if (Number.isFinite(start) && Number.isFinite(end) && end >= start) return Math.round((end - start) / 100) / 10;
  const m = /^(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)$/.exec(run.duration ?? '');
  if (!m) return 0;
  const seconds = Number(m[1] ?? 0) * 86400 + Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]);
  return Math.round(seconds * 10) / 10;
}
