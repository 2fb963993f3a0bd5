/**
 * Starts a triggered WebJob through Kudu and follows it to its end, streaming its log. Kudu allows
 * one run of a job at a time and answers the start with 202 and a Location; everything after
 * that is polling the run and reading its output_log.txt with Range requests. Every wait, poll
 * and request ends by the task's deadline, and no run is started after it.
 */
import { randomUUID } from 'node:crypto';
import {
  ACTIVE_STATUSES,
  ALREADY_RUNNING_TEXT,
  KuduClient,
  TERMINAL_STATUSES,
  WEBJOBS_STOPPED_TEXT,
  type TriggeredJobRun,
} from '../../lib/kudu/client';
import { DeadlineError, type Deadline } from '../../lib/deadline';
import { KuduError } from '../../lib/kudu/errors';
import { LogTail } from '../../lib/kudu/log-tail';
import type { Log } from '../../lib/log';
import { cleanText } from '../../lib/text';

export type WhenAlreadyRunning = 'queue' | 'attach' | 'fail';

export interface RunOptions {
  jobName: string;
  arguments?: string;
  waitForCompletion: boolean;
  /** For messages: the time allowed (timeoutMinutes). */
  timeoutMs: number;
  /** The task's deadline, set from timeoutMinutes: nothing here outlives it. */
  deadline: Deadline;
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
        return finish(kudu, options, await follow(kudu, options, current.id, log), true);
      }
      log.info(`${busy} Waiting for it to end before starting a new run.`);
      const other = await follow(kudu, { ...options, streamLog: false }, current.id, log);
      if (other.timedOut) throw stillBusy(options, other.run);
    }
    // Never a new run once the time is up, however the wait before it ended.
    options.deadline.check(`before starting a run of WebJob '${options.jobName}'`);
    const started = await start(kudu, options, log);
    if ('busy' in started) {
      current = started.busy;
      // Another run took the lock meanwhile: a pause before following it, so that a server
      // that keeps answering "already running" cannot make this a busy loop.
      await options.deadline.sleep(options.pollIntervalMs);
      continue;
    }
    log.info(`Started run ${started.runId} of WebJob '${options.jobName}' on ${kudu.host}.`);
    if (!options.waitForCompletion) {
      return { runId: started.runId, status: 'Initializing', durationSeconds: 0, logUrl: logUrl(kudu, options.jobName, started.runId), attached: false, lastLines: [] };
    }
    return finish(kudu, options, await follow(kudu, options, started.runId, log), false);
  }
}

function stillBusy(options: RunOptions, run: TriggeredJobRun): Error {
  return new Error(
    `WebJob '${options.jobName}' was still running run ${run.id} (last status: ${cleanText(run.status, 50)}) when the time allowed by ${options.deadline.source} ran out, ` +
      `so no new run was started. Raise timeoutMinutes to wait longer, or set whenAlreadyRunning to 'attach' to report that run's result instead.`,
  );
}

async function getJobOrExplain(kudu: KuduClient, jobName: string) {
  try {
    return await kudu.getTriggeredJob(jobName);
  } catch (err) {
    if (!(err instanceof KuduError) || err.kind !== 'not-found') throw err;
    const names = (await kudu.listTriggeredJobs().catch(() => [])).map((j) => cleanText(j.name, 100)).slice(0, 50);
    throw new Error(
      `The triggered WebJob '${jobName}' does not exist on ${kudu.host}. ` +
        (names.length ? `Triggered WebJobs there: ${names.map((n) => `'${n}'`).join(', ')}.` : 'The app has no triggered WebJobs.') +
        ` Check jobName (names are case-sensitive), or let the task install the built-in backup job with installJob: true.`,
      { cause: err },
    );
  }
}

/**
 * POSTs the run once. When the answer is lost the run may still have started, so the history is
 * searched for the marker carried in our User-Agent before anything is sent again.
 */
async function start(kudu: KuduClient, options: RunOptions, log: Log): Promise<{ runId: string } | { busy: TriggeredJobRun }> {
  for (let attempt = 1; ; attempt++) {
    options.deadline.check(`before starting a run of WebJob '${options.jobName}'`);
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
            { cause: err },
          );
        }
        if (!text.includes(ALREADY_RUNNING_TEXT) && !/already running/i.test(text)) throw err;
        // Another run began between our look and our POST (a schedule, another pipeline).
        const busy = (await kudu.getJobHistory(options.jobName)).find((r) => ACTIVE_STATUSES.has(r.status));
        if (busy) return { busy };
        await options.deadline.sleep(options.pollIntervalMs);
        continue;
      }
      if (!err.retriable) throw err;
      log.warn(`Starting the run got no clear answer (${err.message}); looking at the job's history before trying again.`);
      const found = await findAfterLostAnswer(kudu, options, marker);
      if (found) return { runId: found.id };
      if (attempt >= 3) throw err;
    }
  }
}

async function findAfterLostAnswer(kudu: KuduClient, options: RunOptions, marker: string): Promise<TriggeredJobRun | undefined> {
  // The history itself may be unreachable for a moment (the same outage that lost the answer).
  for (let i = 0; i < 5 && !options.deadline.expired(); i++) {
    try {
      return await kudu.findRunByTrigger(options.jobName, marker);
    } catch (err) {
      if (!(err instanceof KuduError) || !err.retriable) throw err;
      await options.deadline.sleep(options.pollIntervalMs);
    }
  }
  return undefined;
}

interface Followed {
  run: TriggeredJobRun;
  timedOut: boolean;
  tail: LogTail;
}

/**
 * Polls the run until it ends or the deadline passes; transient failures are waited out. A
 * streamed log is folded into a group on the run page.
 */
async function follow(kudu: KuduClient, options: RunOptions, runId: string, log: Log): Promise<Followed> {
  const tail = new LogTail(kudu, KuduClient.jobLogPath(options.jobName, runId), options.streamLog ? (line) => log.external(line) : () => undefined);
  if (options.streamLog) log.group(`Log of run ${runId} of WebJob '${options.jobName}'`);
  try {
    return await poll(kudu, options, runId, tail, log);
  } finally {
    tail.flush();
    if (options.streamLog) log.endGroup();
  }
}

async function poll(kudu: KuduClient, options: RunOptions, runId: string, tail: LogTail, log: Log): Promise<Followed> {
  const { deadline } = options;
  let run: TriggeredJobRun | undefined;
  let troubled = false;
  while (!deadline.expired()) {
    try {
      run = await kudu.getJobRun(options.jobName, runId);
      await tail.poll();
      if (troubled) log.info('Kudu answers again.');
      troubled = false;
      if (TERMINAL_STATUSES.has(run.status)) {
        // The job may have written its last lines after the status changed: read to the end.
        await readRest(tail, deadline, log);
        return { run, timedOut: false, tail };
      }
    } catch (err) {
      if (err instanceof DeadlineError) break;
      if (!(err instanceof KuduError) || !err.retriable) throw err;
      if (!troubled) log.warn(`Could not read the run's state, will keep trying until the timeout: ${err.message}`);
      troubled = true;
    }
    await deadline.sleep(options.pollIntervalMs);
  }
  return { run: run ?? placeholderRun(options.jobName, runId), timedOut: true, tail };
}

async function readRest(tail: LogTail, deadline: Deadline, log: Log): Promise<void> {
  for (let i = 0; i < 3; i++) {
    try {
      await tail.readToEnd(deadline);
      return;
    } catch (err) {
      if (err instanceof DeadlineError) return;
      if (!(err instanceof KuduError) || !err.retriable) throw err;
      if (i === 2) log.warn(`Could not read the end of the run's log: ${err.message}`);
    }
  }
}

function finish(kudu: KuduClient, options: RunOptions, followed: Followed, attached: boolean): RunOutcome {
  const { run, tail } = followed;
  // Everything from the run's record is the site's text: cleaned before it reaches a message or an output variable.
  const outcome: RunOutcome = {
    runId: run.id,
    status: cleanText(run.status, 50),
    durationSeconds: durationSeconds(run),
    logUrl: typeof run.output_url === 'string' && run.output_url ? cleanText(run.output_url, 1000) : logUrl(kudu, options.jobName, run.id),
    attached,
    lastLines: tail.lastLines(15).map((line) => cleanText(line, 2000)),
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

function logUrl(kudu: KuduClient, jobName: string, runId: string): string {
  return kudu.url(`api/vfs/${KuduClient.jobLogPath(jobName, runId).text}`);
}

function describeTrigger(run: TriggeredJobRun): string {
  const when = typeof run.start_time === 'string' && !run.start_time.startsWith('0001-') ? `started ${cleanText(run.start_time, 40)}` : 'starting';
  return `${when}${run.trigger ? `, ${cleanText(run.trigger, 200)}` : ''}`;
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
  const start = typeof run.start_time === 'string' ? Date.parse(run.start_time) : NaN;
  const end = typeof run.end_time === 'string' && !run.end_time.startsWith('0001-') ? Date.parse(run.end_time) : NaN;
  if (Number.isFinite(start) && Number.isFinite(end) && end >= start) return Math.round((end - start) / 100) / 10;
  const m = /^(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)$/.exec(typeof run.duration === 'string' ? run.duration : '');
  if (!m) return 0;
  const seconds = Number(m[1] ?? 0) * 86400 + Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]);
  return Math.round(seconds * 10) / 10;
}
