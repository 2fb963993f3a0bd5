// Triggered WebJobs: `/api/triggeredwebjobs/...` (JobsController + TriggeredJobsManager + TriggeredJobRunner).
import * as fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as path from 'node:path';
import {
  DEFAULT_DATETIME_JSON, hash32, jsonDateTimeUtc, nowTicks, parseJsonDateTime, runIdFromTicks, timeSpanText,
} from './dotnet';
import { readBody, requestOrigin, sendEmpty, sendHttpError, sendJson, sendText } from './http';
import {
  BinariesCache, buildJob, checkJobName, JobInfo, newJobDirectory, NO_RUNNABLE_SCRIPT, readJobSettings, scriptDirectoryOf,
  writeJobSettings,
} from './job-files';
import { JobProcess, readRunStatus, RunLog, splitArguments } from './job-run';
import { withSpooledBody, extractZip } from './zip';

const ALREADY_RUNNING = 'Cannot start a new run since job is already running.';
const WEBJOBS_STOPPED = 'WebJobs are currently in "stopped" state.';
const MISSING_CONTENT_DISPOSITION = 'Missing Content-Disposition header.';

export interface WebJobsOptions {
  home: string;
  /** Stands for D:\local: scratch space outside %HOME% (job binaries are copied to its Temp). */
  localDir: string;
  instanceId: string;
  nodePath: string;
  siteName: string;
  getSetting(name: string): string | undefined;
  /** Every app setting: jobs see each as NAME and APPSETTING_NAME, as Kudu's processes do. */
  listSettings(): Array<[string, string]>;
  /** The SCM process's environment, which job processes inherit; default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface RunningJob {
  name: string;
  runId: string;
  pid: number | undefined;
}

/** TriggeredJobRun as JSON (Kudu.Contracts/Jobs/TriggeredJobRun.cs). */
export interface RunJson {
  id: string;
  name: string;
  status: string | null;
  start_time: string;
  end_time: string;
  duration: string | null;
  output_url: string | null;
  error_url: string | null;
  url: string;
  job_name: string;
  trigger: string | null;
}

type EndMode = 'stop' | 'abort';

/** A run from POST /run until its process is gone and its end is recorded. */
class Run {
  process: JobProcess | undefined;
  endMode: EndMode | undefined;
  /** After an abort nothing more is written, as if the SCM process had died. */
  muted = false;
  readonly finished: Promise<void>;
  markFinished!: () => void;

  constructor(readonly jobName: string, readonly runId: string, readonly log: RunLog, readonly args: string | undefined) {
    this.finished = new Promise(resolve => (this.markFinished = resolve));
  }
}

class ConflictError extends Error {}
class WebJobsStoppedError extends Error {}

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));

function isTrueLike(value: string | undefined): boolean {
  return value !== undefined && ['1', 'true'].includes(value.trim().toLowerCase());
}

export class TriggeredJobs {
  readonly jobsRoot: string;
  readonly dataRoot: string;
  /** The in-memory triggeredJob.lock: one run per job, held from POST /run to the end of the run. */
  private locks = new Map<string, Run>();
  /** Runs whose process may still be alive (aborted runs leave `locks` at once). */
  private active = new Set<Run>();
  private lastRunIds = new Map<string, string>();
  private binaries: BinariesCache;
  private closing = false;

  constructor(private readonly opts: WebJobsOptions) {
    this.jobsRoot = path.join(opts.home, 'site', 'wwwroot', 'App_Data', 'jobs', 'triggered');
    this.dataRoot = path.join(opts.home, 'data', 'jobs', 'triggered');
    this.binaries = new BinariesCache(path.join(opts.localDir, 'Temp'));
  }

  // ---- routes --------------------------------------------------------------------------------

  /** `rest` is what follows the route prefix, e.g. '', '/nightly', '/nightly/history/2024...'. */
  async handle(req: IncomingMessage, res: ServerResponse, rest: string, url: URL): Promise<void> {
    const method = req.method ?? 'GET';
    let segments: string[];
    try {
      segments = rest.split('/').filter(s => s !== '').map(s => decodeURIComponent(s));
    } catch {
      return sendEmpty(res, 404);
    }
    const origin = requestOrigin(req);
    if (segments.length === 0) {
      if (method !== 'GET' && method !== 'HEAD') return this.notAllowed(res, method);
      return this.sendJobList(req, res, origin);
    }
    const name = checkJobName(segments[0]);
    if (!name) {
      req.resume();
      return sendEmpty(res, 404);
    }
    const [, action, runId, ...extra] = segments;
    if (extra.length > 0) return this.noRoute(req, res);

    if (action === undefined) {
      if (method === 'GET' || method === 'HEAD') return this.sendJob(res, name, origin);
      if (method === 'PUT') return this.createJob(req, res, name, origin);
      if (method === 'DELETE') {
        this.deleteJob(name);
        return sendEmpty(res, 200);
      }
      return this.notAllowed(res, method);
    }
    if (action === 'run' && runId === undefined) {
      if (method !== 'POST') return this.notAllowed(res, method);
      req.resume();
      return this.invoke(req, res, name, url, origin);
    }
    if (action === 'history') {
      if (method !== 'GET' && method !== 'HEAD') return this.notAllowed(res, method);
      if (runId === undefined) return this.sendHistory(req, res, name, origin);
      const run = this.runJson(name, runId, origin, true);
      return run ? sendJson(res, 200, run) : sendEmpty(res, 404);
    }
    if (action === 'settings' && runId === undefined) {
      if (method === 'GET' || method === 'HEAD') return this.sendSettings(res, name);
      if (method === 'PUT') return this.putSettings(req, res, name);
      return this.notAllowed(res, method);
    }
    return this.noRoute(req, res);
  }

  private notAllowed(res: ServerResponse, method: string): void {
    sendHttpError(res, 405, `The requested resource does not support http method '${method}'.`);
  }

  private noRoute(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    sendHttpError(res, 404, `No HTTP resource was found that matches the request URI '${requestOrigin(req)}${req.url}'.`);
  }

  /**
   * The list's ETag hashes name, run_command, type and error only (JobBase.GetHashCode), so a
   * run progressing does not change it: polling the list with If-None-Match sees 304s.
   */
  async sendJobList(req: IncomingMessage, res: ServerResponse, origin: string): Promise<void> {
    const jobs = this.listJobs();
    const etag = `"${hash32(jobs.map(j => `${j.name}|${j.runCommand}|triggered|`).join(';'))}"`;
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { ETag: etag });
      res.end();
      return;
    }
    sendJson(res, 200, jobs.map(j => this.jobJson(j, origin)), { ETag: etag });
  }

  private sendJob(res: ServerResponse, name: string, origin: string): void {
    const built = buildJob(this.jobsRoot, name);
    if (!built?.job) return sendEmpty(res, 404);
    sendJson(res, 200, this.jobJson(built.job, origin));
  }

  private async createJob(req: IncomingMessage, res: ServerResponse, name: string, origin: string): Promise<void> {
    const fileName = contentDispositionFileName(req.headers['content-disposition']);
    if (!fileName) {
      req.resume();
      return sendText(res, 400, MISSING_CONTENT_DISPOSITION);
    }
    const isZip = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase() === 'application/zip';
    let error: string | undefined;
    let status = 400;
    try {
      // Kudu replaces the files under a run in progress and lets it carry on; here the run is
      // aborted first (it reads Aborted) so no process ever runs a half-replaced job.
      await this.abortIfRunning(name);
      this.binaries.forget(name);
      const dir = newJobDirectory(this.jobsRoot, name);
      if (isZip) await withSpooledBody(req, path.join(this.opts.localDir, 'Temp'), file => extractZip(file, dir));
      else fs.writeFileSync(path.join(dir, fileName), await readBody(req));
      const built = buildJob(this.jobsRoot, name);
      error = built?.error ?? (built ? undefined : NO_RUNNABLE_SCRIPT);
      if (!error) return sendJson(res, 200, this.jobJson(built!.job!, origin));
    } catch (e) {
      req.resume();
      error = (e as Error).message;
      status = 500;
    }
    this.deleteJob(name);
    sendText(res, status, error);
  }

  /** DeleteJob: binaries and run history both go; a missing job is fine. */
  deleteJob(name: string): void {
    const run = this.locks.get(name);
    if (run) this.abortRun(run);
    this.binaries.forget(name);
    fs.rmSync(path.join(this.jobsRoot, name), { recursive: true, force: true });
    fs.rmSync(path.join(this.dataRoot, name), { recursive: true, force: true });
  }

  private sendSettings(res: ServerResponse, name: string): void {
    const dir = path.join(this.jobsRoot, name);
    if (!fs.existsSync(dir)) return sendEmpty(res, 404);
    sendJson(res, 200, readJobSettings(scriptDirectoryOf(dir)));
  }

  private async putSettings(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const body = await readBody(req);
    const dir = path.join(this.jobsRoot, name);
    if (!fs.existsSync(dir)) return sendEmpty(res, 404);
    let settings: unknown;
    try {
      settings = JSON.parse(body.toString('utf8'));
    } catch (e) {
      return sendHttpError(res, 400, (e as Error).message);
    }
    writeJobSettings(dir, settings);
    sendEmpty(res, 200);
  }

  private invoke(req: IncomingMessage, res: ServerResponse, name: string, url: URL, origin: string): void {
    const built = buildJob(this.jobsRoot, name);
    if (!built?.job) return sendEmpty(res, 404);
    const args = url.searchParams.get('arguments') ?? undefined;
    // HttpHeaders.UserAgent.ToString() of an absent header is empty.
    const trigger = 'External - ' + (req.headers['user-agent'] ?? '');
    let runId: string;
    try {
      runId = this.startRun(built.job, args, trigger);
    } catch (e) {
      if (e instanceof ConflictError) return sendText(res, 409, ALREADY_RUNNING);
      if (e instanceof WebJobsStoppedError) return sendText(res, 409, WEBJOBS_STOPPED);
      throw e;
    }
    // 202 for a direct SCM call (ARM would get 200); no body.
    sendEmpty(res, 202, { Location: `${origin}/api/triggeredwebjobs/${encodeURIComponent(built.job.name)}/history/${runId}` });
  }

  private sendHistory(req: IncomingMessage, res: ServerResponse, name: string, origin: string): void {
    const runIds = this.runIdsNewestFirst(name);
    if (!runIds) return sendEmpty(res, 404);
    const runs = runIds.map((id, i) => this.runJson(name, id, origin, i === 0)).filter((r): r is RunJson => r !== undefined);
    // CalculateETag: the latest run's id, status and end time; earlier runs cannot change.
    const etag = runs.length === 0
      ? `"${hash32(name)}-${hash32('EMPTY')}"`
      : `"${hash32(runs[0].id)}-${hash32(String(runs[0].status))}-${hash32(runs[0].end_time)}"`;
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { ETag: etag });
      res.end();
      return;
    }
    sendJson(res, 200, { runs }, { ETag: etag });
  }

  // ---- model ---------------------------------------------------------------------------------

  listJobs(): JobInfo[] {
    if (!fs.existsSync(this.jobsRoot)) return [];
    return fs.readdirSync(this.jobsRoot)
      .sort()
      .map(n => buildJob(this.jobsRoot, n)?.job)
      .filter((j): j is JobInfo => j !== undefined);
  }

  jobJson(job: JobInfo, origin: string): Record<string, unknown> {
    const url = `${origin}/api/triggeredwebjobs/${encodeURIComponent(job.name)}`;
    const latest = this.runIdsNewestFirst(job.name)?.[0];
    const schedulerLog = path.join(this.dataRoot, job.name, 'job_scheduler.log');
    return {
      latest_run: latest ? this.runJson(job.name, latest, origin, true) : null,
      history_url: url + '/history',
      scheduler_logs_url: fs.existsSync(schedulerLog) ? `${origin}/vfs/data/jobs/triggered/${encodeURIComponent(job.name)}/job_scheduler.log` : null,
      name: job.name,
      run_command: job.runCommand,
      url,
      extra_info_url: `${origin}/azurejobs/#/jobs/triggered/${encodeURIComponent(job.name)}`,
      type: 'triggered',
      error: null,
      using_sdk: fs.existsSync(path.join(this.dataRoot, job.name, 'webjobssdk.marker')),
      settings: job.settings,
    };
  }

  /** Run directories, newest first (by name, which is the time); undefined if the job never ran. */
  private runIdsNewestFirst(name: string): string[] | undefined {
    const dir = path.join(this.dataRoot, name);
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return undefined;
    }
    return entries.filter(e => e.isDirectory()).map(e => e.name).sort().reverse();
  }

  /**
   * BuildJobRun. `Running` is only believed for the latest run while the job's lock is held;
   * otherwise it reads `Aborted`. (Kudu checks `Running` only; `Initializing` is treated the same
   * here so a run killed before it started does not look alive forever.)
   * GET history/{id} passes isLatest=true for any id, as Kudu does.
   */
  runJson(name: string, runId: string, origin: string, isLatest: boolean): RunJson | undefined {
    if (checkJobName(runId) === undefined) return undefined;
    const runDir = path.join(this.dataRoot, name, runId);
    try {
      if (!fs.statSync(runDir).isDirectory()) return undefined;
    } catch {
      return undefined;
    }
    const file = readRunStatus(runDir) ?? {};
    let status = file.Status ?? null;
    if (status === 'Running' || status === 'Initializing') {
      if (!isLatest || !this.locks.has(name)) status = 'Aborted';
    }
    const start = parseJsonDateTime(file.StartTime);
    const end = parseJsonDateTime(file.EndTime);
    const jobPart = encodeURIComponent(name);
    const logUrl = (fileName: string): string | null =>
      fs.existsSync(path.join(runDir, fileName)) ? `${origin}/vfs/data/jobs/triggered/${jobPart}/${runId}/${fileName}` : null;
    return {
      id: runId,
      name: runId,
      status,
      start_time: jsonDateTimeUtc(start),
      end_time: end === undefined ? DEFAULT_DATETIME_JSON : jsonDateTimeUtc(end),
      duration: start === undefined ? null : timeSpanText((end ?? nowTicks()) - start),
      output_url: logUrl('output_log.txt'),
      // Nothing writes error_log.txt any more (stderr goes to output_log.txt), so this stays null.
      error_url: logUrl('error_log.txt'),
      url: `${origin}/api/triggeredwebjobs/${jobPart}/history/${runId}`,
      job_name: name,
      trigger: file.Trigger ?? null,
    };
  }

  // ---- running -------------------------------------------------------------------------------

  private setting(name: string): string | undefined {
    return this.opts.getSetting(name);
  }

  private idleTimeoutMs(): number {
    const seconds = Number(this.setting('WEBJOBS_IDLE_TIMEOUT'));
    return seconds > 0 ? seconds * 1000 : 120_000;
  }

  private historySize(): number {
    const size = parseInt(this.setting('WEBJOBS_HISTORY_SIZE') ?? '', 10);
    return size > 0 ? size : 50;
  }

  /** TriggeredJobRunner.StartJobRun up to the point where Kudu queues the work item. */
  startRun(job: JobInfo, args: string | undefined, trigger: string): string {
    if (this.closing || isTrueLike(this.setting('WEBJOBS_STOPPED'))) throw new WebJobsStoppedError();
    if (this.locks.has(job.name)) throw new ConflictError();
    const jobData = path.join(this.dataRoot, job.name);
    this.cleanupOldRuns(job.name);
    const runId = this.nextRunId(job.name);
    const run = new Run(job.name, runId, new RunLog(path.join(jobData, runId), this.opts.instanceId), args);
    this.locks.set(job.name, run);
    this.active.add(run);
    try {
      fs.mkdirSync(jobData, { recursive: true });
      fs.writeFileSync(path.join(jobData, 'triggeredJob.lock'), `Starting ${job.name} triggered WebJob`);
      run.log.create(trigger);
    } catch (e) {
      this.release(run);
      throw e;
    }
    setImmediate(() => void this.execute(run));
    return runId;
  }

  /** OldRunsCleanup: make room so that, with the new run, at most WEBJOBS_HISTORY_SIZE remain. */
  private cleanupOldRuns(name: string): void {
    const keep = this.historySize() - 1;
    const ids = this.runIdsNewestFirst(name) ?? [];
    for (const id of ids.slice(keep)) fs.rmSync(path.join(this.dataRoot, name, id), { recursive: true, force: true });
  }

  private nextRunId(name: string): string {
    let id = runIdFromTicks(nowTicks());
    const floor = [this.lastRunIds.get(name), this.runIdsNewestFirst(name)?.[0]].filter((x): x is string => !!x).sort().pop();
    if (floor !== undefined && id <= floor) id = (BigInt(floor) + 1n).toString();
    this.lastRunIds.set(name, id);
    return id;
  }

  private release(run: Run): void {
    if (this.locks.get(run.jobName) === run) {
      this.locks.delete(run.jobName);
      try {
        fs.rmSync(path.join(this.dataRoot, run.jobName, 'triggeredJob.lock'), { force: true });
      } catch {
        // the lock is the map entry; the file is only for show
      }
    }
    this.active.delete(run);
    run.markFinished();
  }

  /** The queued work item: InitializeJobInstance + RunJobInstance + ReportEndRun. */
  private async execute(run: Run): Promise<void> {
    const log = run.log;
    try {
      if (run.endMode) return this.finishBeforeStart(run);
      const built = buildJob(this.jobsRoot, run.jobName);
      if (!built?.job) throw new Error(`Missing job script to run - ${path.join(this.jobsRoot, run.jobName)}`);
      const job = built.job;
      const inPlace = typeof job.settings.is_in_place === 'boolean' ? job.settings.is_in_place : job.host.className === 'NodeScriptHost';
      const workingDir = inPlace ? job.scriptDir : this.binaries.prepare(job, m => log.info(m));
      const scriptFile = path.relative(job.scriptDir, job.scriptFile);
      log.info(`Run script '${path.basename(job.scriptFile)}' with script host - '${job.host.className}'`);
      if (run.endMode) return this.finishBeforeStart(run);

      const args = run.args === undefined ? [] : splitArguments(run.args);
      const command = job.host.command(scriptFile, args, this.opts.nodePath);
      const env: NodeJS.ProcessEnv = {
        ...(this.opts.env ?? process.env),
        ...appSettingsEnv(this.opts.listSettings()),
        HOME: this.opts.home,
        WEBSITE_SITE_NAME: this.opts.siteName,
        WEBJOBS_RUN_ID: run.runId,
        WEBJOBS_NAME: job.name,
        WEBJOBS_TYPE: 'triggered',
        WEBJOBS_DATA_PATH: path.join(this.dataRoot, job.name),
        WEBJOBS_PATH: workingDir,
        [`WEBSITE_TRIGGERED_JOB_RUNNING_${job.name}`]: 'true',
      };
      if (run.args !== undefined) env.WEBJOBS_COMMAND_ARGUMENTS = run.args;

      log.reportStatus('Running');
      run.process = new JobProcess({
        file: command.file,
        argv: command.argv,
        verbatim: command.verbatim,
        cwd: path.dirname(path.join(workingDir, scriptFile)),
        env,
        idleTimeoutMs: this.idleTimeoutMs(),
        processName: path.basename(command.file).replace(/\.exe$/i, ''),
        processArguments: scriptFile + (run.args !== undefined ? ' ' + run.args : ''),
        onStdout: line => run.muted || log.stdout(line),
        onStderr: line => run.muted || log.stderr(line),
      });
      const result = await run.process.done;
      if (run.muted) return;
      if (run.endMode === 'stop') {
        log.info('WebJob process was aborted');
        log.reportStatus('Stopped');
      } else if (result.kind === 'idle') {
        log.logError(result.message);
      } else if (result.kind === 'spawn-error') {
        log.logError(result.error.stack ?? String(result.error));
      } else if (result.code === 0) {
        log.reportStatus('Success');
      } else {
        log.logError('Job failed due to exit code ' + result.code);
      }
      log.reportEndRun();
    } catch (e) {
      // RunLog never throws after creation, so this cannot escape as an unhandled rejection.
      if (!run.muted) {
        log.logError('WebJob run failed due to: ' + ((e as Error).stack ?? String(e)));
        log.reportEndRun();
      }
    } finally {
      this.release(run);
    }
  }

  private finishBeforeStart(run: Run): void {
    if (run.endMode === 'stop') {
      run.log.info('WebJob process was aborted');
      run.log.reportStatus('Stopped');
      run.log.reportEndRun();
    }
  }

  // ---- test controls -------------------------------------------------------------------------

  running(): RunningJob[] {
    return [...this.active].map(r => ({ name: r.jobName, runId: r.runId, pid: r.process?.pid }));
  }

  private runningOrThrow(name: string): Run {
    const run = this.locks.get(name);
    if (!run) throw new Error(`WebJob '${name}' has no run in progress`);
    return run;
  }

  /** A crash: the tree dies, nothing is written, the lock is gone, so the run reads as Aborted. */
  private abortRun(run: Run): void {
    run.endMode = 'abort';
    run.muted = true;
    if (this.locks.get(run.jobName) === run) this.locks.delete(run.jobName);
    run.process?.kill();
  }

  async abort(name: string, timeoutMs = 10_000): Promise<void> {
    const run = this.runningOrThrow(name);
    this.abortRun(run);
    await this.waitFor(run, timeoutMs);
  }

  private async abortIfRunning(name: string): Promise<void> {
    const run = this.locks.get(name);
    if (!run) return;
    this.abortRun(run);
    await this.waitFor(run, 10_000);
  }

  /** Kudu's refresh: kill the tree, log "WebJob process was aborted", status Stopped. */
  async stop(name: string, timeoutMs = 10_000): Promise<void> {
    const run = this.runningOrThrow(name);
    run.endMode = 'stop';
    run.process?.kill();
    await this.waitFor(run, timeoutMs);
  }

  private async waitFor(run: Run, timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`run ${run.jobName}/${run.runId} did not end within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([run.finished, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async waitForIdle(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.active.size > 0) {
      if (Date.now() > deadline) {
        const names = [...this.active].map(r => `${r.jobName}/${r.runId}`).join(', ');
        throw new Error(`job processes still running after ${timeoutMs} ms: ${names}`);
      }
      await sleep(20);
    }
  }

  /** Kill every tree, write nothing (the runs read as Aborted afterwards), wait for the exits. */
  async close(timeoutMs = 10_000): Promise<void> {
    this.closing = true;
    const runs = [...this.active];
    for (const run of runs) this.abortRun(run);
    await Promise.race([Promise.all(runs.map(r => r.finished)), sleep(timeoutMs)]);
    // Belt and braces: anything in those trees that outlived the leader.
    for (const run of runs) run.process?.kill();
  }
}

/** App settings as App Service hands them to processes: NAME=value and APPSETTING_NAME=value. */
function appSettingsEnv(settings: Array<[string, string]>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of settings) {
    env[name] = value;
    env[`APPSETTING_${name}`] = value;
  }
  return env;
}

/**
 * ContentDisposition.FileName: only the `filename=` parameter counts (not `filename*=`), its
 * quotes and any folders are stripped.
 */
export function contentDispositionFileName(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /(?:^|;)\s*filename\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/i.exec(header);
  if (!m) return undefined;
  const name = m[1].trim().replace(/^"|"$/g, '');
  const base = name.split(/[\\/]/).pop() ?? '';
  return base.trim() === '' ? undefined : base;
}
