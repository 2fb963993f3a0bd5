/**
 * The one Kudu client every task uses: triggered WebJobs, the VFS and the zip endpoint of an
 * App Service's SCM site (https://<app>.scm.azurewebsites.net/). Paths are relative to %HOME% and
 * enter a URL only through lib/remote-path.ts (no `.`/`..`, nothing outside `api/vfs/` and
 * `api/zip/`); job names only through `checkJobName`. Everything read back is bounded: bodies by
 * size, listings by depth and entry count, every request by the task's Deadline.
 *
 * @example
 *   const kudu = new KuduClient({ scmUrl, credential: basicCredential(user, password), userAgent, deadline });
 *   const job = await kudu.getTriggeredJob('backup');
 *   const { runId } = await kudu.runTriggeredJob('backup', '--keep 7', 'run/1234');
 *   const run = await kudu.getJobRun('backup', runId);
 */
import * as fs from 'node:fs';
import { HttpError, HttpTransport, rangeHeader, readHead, headerText, numericHeader, totalFromContentRange } from '../http';
import type { Deadline } from '../deadline';
import type { HttpContext, HttpRequest, HttpResponse, RetryPolicy, StreamResponse } from '../http';
import { asFolder, checkEntryName, checkJobName, parseRemotePath, RemotePathError, vfsUrlPath, zipUrlPath, type RemotePath } from '../remote-path';
import { cleanText } from '../text';
import type { KuduCredential } from './credentials';
import { KuduError, kuduError } from './errors';
import { walkFolder, type ListedFile, type ListingLimits } from './listing';

export { LISTING_LIMITS, type ListedFile, type ListingLimits } from './listing';

/** A run as Kudu reports it (`/api/triggeredwebjobs/{job}/history/{id}`). */
export interface TriggeredJobRun {
  id: string;
  name: string;
  status: string;
  start_time: string | null;
  end_time: string | null;
  duration: string | null;
  output_url: string | null;
  error_url: string | null;
  url: string;
  job_name: string;
  trigger: string;
}

export interface TriggeredJob {
  name: string;
  run_command: string;
  url: string;
  type: string;
  error: string | null;
  settings: Record<string, unknown>;
  latest_run: TriggeredJobRun | null;
  history_url: string;
}

export interface VfsEntry {
  name: string;
  size: number;
  mtime: string;
  mime: string;
  href: string;
  path: string;
}

/** What `readRange` got. */
export interface RangeRead {
  exists: boolean;
  data: Buffer;
  /** The whole file's size, when the answer says. */
  size: number | undefined;
  etag?: string;
  /** The server honoured the Range header (206, or 416 past the end). */
  ranged: boolean;
  /** Body bytes taken off the connection (more than `data` when the server sent the whole file). */
  bytesReceived?: number;
}

/** A path relative to %HOME% as text (checked here) or already parsed. */
export type RemoteTarget = string | RemotePath;

/** Statuses after which a run changes no more. */
export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(['Success', 'Failed', 'Aborted', 'Stopped', 'Error']);
/** Statuses that mean the job holds its one-run-at-a-time lock. */
export const ACTIVE_STATUSES: ReadonlySet<string> = new Set(['Initializing', 'Running']);

/** Kudu's exact 409 texts (Kudu.Services/Resources.resx). */
export const ALREADY_RUNNING_TEXT = 'Cannot start a new run since job is already running.';
export const WEBJOBS_STOPPED_TEXT = 'WebJobs are currently in "stopped" state.';

/** The most each kind of answer may be: far above what Kudu sends, far below what hurts. */
const LIMITS = { job: 1024 * 1024, jobs: 8 * 1024 * 1024, listing: 64 * 1024 * 1024, text: 1024 * 1024, logChunk: 1024 * 1024 };

export interface KuduClientOptions extends HttpContext {
  /** The SCM site, `https://<app>.scm.azurewebsites.net/` (plain http only for a loopback host). */
  scmUrl: string;
  credential: KuduCredential;
  retry?: Partial<RetryPolicy>;
  /** No byte for this long fails a try; default 100 s. */
  idleTimeoutMs?: number;
  /** Overall limit of one try of a small request; default 5 minutes. */
  tryTimeoutMs?: number;
}

export class KuduClient {
  readonly http: HttpTransport;

  constructor(readonly options: KuduClientOptions) {
    try {
      this.http = new HttpTransport({ ...options, baseUrl: options.scmUrl, authorizer: options.credential, describeError: (err) => kuduError(err, options.credential) });
    } catch (err) {
      if (err instanceof HttpError && err.code === 'HTTP_URL_INVALID') {
        throw new KuduError(`The service connection's URL is not a URL. It should be the app's SCM site, like https://<app>.scm.azurewebsites.net/.`, 'insecure', {}, { cause: err });
      }
      throw err instanceof HttpError ? kuduError(err, options.credential) : err;
    }
  }

  get host(): string {
    return this.http.host;
  }

  /** The proxy requests go through (for messages), or undefined. */
  get proxy(): string | undefined {
    return this.http.proxy;
  }

  get deadline(): Deadline | undefined {
    return this.options.deadline;
  }

  /** The absolute URL of a path under the SCM root (no credentials in it). */
  url(path: string): string {
    return this.http.urlFor(path).toString();
  }

  close(): void {
    this.http.close();
  }

  // ---- triggered WebJobs -------------------------------------------------------------------

  async listTriggeredJobs(): Promise<TriggeredJob[]> {
    const jobs = this.json<TriggeredJob[]>(await this.http.send({ method: 'GET', path: 'api/triggeredwebjobs', maxBodyBytes: LIMITS.jobs }), 'the list of triggered WebJobs');
    return Array.isArray(jobs) ? jobs.filter((j) => typeof j?.name === 'string') : [];
  }

  /** The job, or a not-found KuduError naming it. */
  async getTriggeredJob(name: string): Promise<TriggeredJob> {
    const res = await this.http.send({ method: 'GET', path: jobPath(name), accept: [404], maxBodyBytes: LIMITS.job });
    if (res.status === 404) throw this.noSuchJob(name);
    return this.json(res, `WebJob '${name}'`);
  }

  /** Creates or replaces a job from a zip that holds its files (run.js, settings.job, ...). */
  async putTriggeredJob(name: string, zipFile: string): Promise<TriggeredJob> {
    const size = fs.statSync(zipFile).size;
    const res = await this.http.send({
      method: 'PUT',
      path: jobPath(name),
      headers: { 'Content-Type': 'application/zip', 'Content-Disposition': `attachment; filename=${checkJobName(name, 'The WebJob name')}.zip`, 'Content-Length': String(size) },
      body: () => fs.createReadStream(zipFile),
      maxBodyBytes: LIMITS.job,
    });
    return this.json(res, `the uploaded WebJob '${name}'`);
  }

  /** Replaces the job's settings.job (schedule, is_singleton, ...). */
  async putJobSettings(name: string, settings: Record<string, unknown>): Promise<void> {
    await this.http.send({
      method: 'PUT',
      path: `${jobPath(name)}/settings`,
      headers: { 'Content-Type': 'application/json' },
      body: () => Buffer.from(JSON.stringify(settings), 'utf8'),
      maxBodyBytes: LIMITS.job,
    });
  }

  /**
   * Starts a run. Sent once, never retried here: if the answer is lost, the run may have started,
   * and only the job's history can tell (see `findRunByTrigger`). `marker` goes into the
   * User-Agent, which Kudu records in the run's `trigger`, so the run can be found again.
   */
  async runTriggeredJob(name: string, args: string | undefined, marker: string): Promise<{ runId: string; location: string }> {
    const query = args ? `?arguments=${encodeURIComponent(args)}` : '';
    const request: HttpRequest = { method: 'POST', path: `${jobPath(name)}/run${query}`, userAgent: `${this.options.userAgent} ${marker}`, accept: [404, 409], maxBodyBytes: LIMITS.job };
    const res = await this.http.send(request);
    const text = res.body.toString('utf8').trim();
    if (res.status === 404) throw this.noSuchJob(name);
    if (res.status === 409) throw new KuduError(cleanBody(text) || 'Conflict', 'conflict', { status: 409, body: cleanBody(text) });
    const location = String(res.headers.location ?? '');
    const runId = location.split('/').filter(Boolean).pop() ?? '';
    if (!isRunId(runId)) {
      throw new KuduError(
        `Kudu accepted the run of '${name}' (${res.status}) but sent no usable Location header ('${cleanBody(location, 200)}'); cannot follow the run.`,
        'invalid',
        { status: res.status },
      );
    }
    return { runId, location };
  }

  /** Runs, newest first; a job that never ran has no history folder and Kudu answers 404. */
  async getJobHistory(name: string): Promise<TriggeredJobRun[]> {
    const res = await this.http.send({ method: 'GET', path: `${jobPath(name)}/history`, accept: [404], maxBodyBytes: LIMITS.jobs });
    if (res.status === 404) return [];
    const runs = this.json<{ runs?: unknown }>(res, `the run history of '${name}'`).runs;
    return Array.isArray(runs) ? runs.filter(isRun) : [];
  }

  async getJobRun(name: string, runId: string): Promise<TriggeredJobRun> {
    const res = await this.http.send({ method: 'GET', path: `${jobPath(name)}/history/${checkRunId(runId)}`, accept: [404], maxBodyBytes: LIMITS.job });
    if (res.status === 404) {
      throw new KuduError(`Run ${runId} of WebJob '${name}' is not in the job's history on ${this.host}.`, 'not-found', { status: 404 });
    }
    const run = this.json<unknown>(res, `run ${runId} of '${name}'`);
    if (!isRun(run)) throw new KuduError(`Kudu's answer about run ${runId} of '${name}' on ${this.host} is not a run (no id or status).`, 'invalid', { status: res.status });
    return run;
  }

  /** The run whose trigger carries `marker` (our User-Agent at POST time), if Kudu started it. */
  async findRunByTrigger(name: string, marker: string): Promise<TriggeredJobRun | undefined> {
    return (await this.getJobHistory(name)).find((run) => (run.trigger ?? '').includes(marker));
  }

  // ---- VFS ---------------------------------------------------------------------------------

  /**
   * Up to `maxBytes` of a file from `offset` (for a log that grows): the new bytes, and whether
   * the file exists yet. A server that ignores Range still works: the head is dropped.
   */
  async readFrom(file: RemoteTarget, offset: number, maxBytes = LIMITS.logChunk): Promise<{ exists: boolean; data: Buffer }> {
    const res = await this.openStream(vfsUrlPath(this.remote(file)), { Range: rangeHeader(offset, maxBytes) }, [404, 416]);
    if (res.status === 404 || res.status === 416) {
      res.stream.resume();
      return { exists: res.status === 416, data: Buffer.alloc(0) };
    }
    if (res.status === 206) return { exists: true, data: (await readHead(res.stream, maxBytes)).data };
    const head = await readHead(res.stream, offset + maxBytes);
    return { exists: true, data: head.data.subarray(Math.min(offset, head.data.length)) };
  }

  /**
   * `length` bytes of a file from `offset` (fewer at its end), with a Range request. A server that
   * ignores Range sends the whole file: only what is needed is read, then the connection is
   * dropped, so the head of a 1 GiB database costs a few hundred bytes either way. `size` is the
   * file's size as the answer gives it (Content-Range, or Content-Length of a whole-file answer).
   */
  async readRange(file: RemoteTarget, offset: number, length: number): Promise<RangeRead> {
    const target = this.remote(file);
    const res = await this.openStream(vfsUrlPath(target), { Range: rangeHeader(offset, length) }, [307, 404, 416]);
    const etag = headerText(res.headers.etag);
    if (res.status === 404 || res.status === 307 || res.status === 416) {
      res.stream.resume();
      if (res.status === 404) return { exists: false, data: Buffer.alloc(0), size: undefined, ranged: false };
      if (res.status === 307) throw new KuduError(`${target.text} is a folder on ${this.host}, not a file.`, 'http', { status: 307 });
      // Asked past the end: the file is shorter than `offset` (an empty -wal, say).
      return { exists: true, data: Buffer.alloc(0), size: totalFromContentRange(res.headers['content-range']), etag, ranged: true };
    }
    if (res.status === 206) {
      // One byte more than asked: a server that sends exactly the range ends the body by itself,
      // which keeps the connection reusable; one that sends more is cut off.
      const head = await readHead(res.stream, length + 1);
      return { exists: true, data: head.data.subarray(0, length), size: totalFromContentRange(res.headers['content-range']), etag, ranged: true, bytesReceived: head.received };
    }
    const head = await readHead(res.stream, offset + length);
    const data = head.data.subarray(Math.min(offset, head.data.length));
    return { exists: true, data, size: numericHeader(res.headers['content-length']), etag, ranged: false, bytesReceived: head.received };
  }

  /** A small text file through the VFS (a manifest, a version file); undefined when it does not exist. */
  async readText(file: RemoteTarget, maxBytes = LIMITS.text): Promise<string | undefined> {
    const res = await this.http.send({ method: 'GET', path: vfsUrlPath(this.remote(file)), accept: [404], maxBodyBytes: maxBytes });
    return res.status === 404 ? undefined : res.body.toString('utf8');
  }

  /**
   * One level of a folder; undefined when it does not exist. Every entry's name is checked
   * (no separators, `.` or `..`) before anyone can put it into a path.
   */
  async listDirectory(folder: RemoteTarget): Promise<VfsEntry[] | undefined> {
    const target = asFolder(this.remote(folder));
    const res = await this.http.send({ method: 'GET', path: vfsUrlPath(target), accept: [404], maxBodyBytes: LIMITS.listing });
    if (res.status === 404) return undefined;
    const listing = this.json<unknown>(res, `the listing of ${target.text || '%HOME%'}`);
    if (!Array.isArray(listing)) throw new KuduError(`Kudu's listing of ${target.text || '%HOME%'} on ${this.host} is not a list.`, 'invalid', { status: res.status });
    return listing.map((entry) => this.entry(entry, target));
  }

  /**
   * Every file under a folder, with paths relative to it (forward slashes). Kudu lists one level
   * per request, so sub-folders are walked a few at a time; the walk refuses a listing that loops
   * (an entry seen twice) and stops at LISTING_LIMITS.
   */
  async listFilesRecursive(folder: RemoteTarget, concurrency = 4, limits?: Partial<ListingLimits>): Promise<ListedFile[]> {
    const root = asFolder(this.remote(folder));
    if ((await this.listDirectory(root)) === undefined) {
      throw new KuduError(`The folder ${root.text} does not exist on ${this.host}.`, 'not-found', { status: 404 });
    }
    return walkFolder(root, (f) => this.listDirectory(f).then((entries) => entries ?? []), { concurrency, limits, host: this.host });
  }

  /**
   * A GET whose body the caller streams (file downloads, zip downloads). `urlPath` must be what
   * `vfsFilePath`/`zipFolderPath` (or lib/remote-path's `vfsUrlPath`/`zipUrlPath`) made: only the
   * file system and zip endpoints are reachable this way.
   */
  async openStream(urlPath: string, headers: Record<string, string> = {}, accept: number[] = []): Promise<StreamResponse> {
    return this.http.open({ method: 'GET', path: checkedUrlPath(urlPath), headers, accept });
  }

  /**
   * The site's app settings as its Kudu sees them (`api/settings`: Kudu's SettingsController,
   * its own settings merged with the app's). Values are strings; anything else is left out.
   * Values may be secrets: callers read the names they need and never log the rest.
   */
  async appSettings(): Promise<Record<string, string>> {
    const res = await this.http.send({ method: 'GET', path: 'api/settings', headers: { Accept: 'application/json' }, maxBodyBytes: 4 << 20 });
    const all = this.json<unknown>(res, 'the app settings');
    // Old Kudu answered an empty array when there were none.
    if (Array.isArray(all) && all.length === 0) return {};
    if (typeof all !== 'object' || all === null || Array.isArray(all)) {
      throw new KuduError(`Kudu's api/settings on ${this.host} sent no settings object.`, 'invalid', { path: 'api/settings', host: this.host });
    }
    return Object.fromEntries(Object.entries(all).filter((e): e is [string, string] => typeof e[1] === 'string'));
  }

  /** The run's log file, relative to %HOME%. */
  static jobLogPath(jobName: string, runId: string): RemotePath {
    return parseRemotePath(`data/jobs/triggered/${checkJobName(jobName, 'The WebJob name')}/${checkRunId(runId)}/output_log.txt`);
  }

  private remote(target: RemoteTarget): RemotePath {
    return typeof target === 'string' ? parseRemotePath(target, 'The path') : target;
  }

  private entry(raw: unknown, folder: RemotePath): VfsEntry {
    const e = (typeof raw === 'object' && raw !== null ? raw : {}) as Partial<Record<keyof VfsEntry, unknown>>;
    try {
      checkEntryNameOf(e.name);
    } catch (err) {
      throw new KuduError(`Kudu's listing of ${folder.text || '%HOME%'} on ${this.host}: ${(err as Error).message}`, 'invalid', {}, { cause: err });
    }
    const text = (v: unknown) => (typeof v === 'string' ? v : '');
    return { name: e.name as string, size: typeof e.size === 'number' ? e.size : 0, mtime: text(e.mtime), mime: text(e.mime), href: text(e.href), path: text(e.path) };
  }

  private json<T>(res: HttpResponse, what: string): T {
    const text = res.body.toString('utf8');
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new KuduError(`Kudu sent something that is not JSON for ${what} (${res.status}): ${cleanBody(text, 200)}`, 'invalid', { status: res.status }, { cause: err });
    }
  }

  private noSuchJob(name: string): KuduError {
    return new KuduError(`The triggered WebJob '${name}' does not exist on ${this.host}.`, 'not-found', { status: 404 });
  }
}

function jobPath(name: string): string {
  return `api/triggeredwebjobs/${encodeURIComponent(checkJobName(name, 'The WebJob name'))}`;
}

function isRunId(id: unknown): id is string {
  return typeof id === 'string' && /^\d{1,30}$/.test(id);
}

function checkRunId(id: string): string {
  if (!isRunId(id)) throw new KuduError(`'${cleanBody(String(id), 100)}' is not a WebJob run id (Kudu's are digits, like 202611230830451234).`, 'invalid');
  return id;
}

function isRun(value: unknown): value is TriggeredJobRun {
  const run = value as Partial<TriggeredJobRun> | null;
  return typeof run === 'object' && run !== null && isRunId(run.id) && typeof run.status === 'string';
}

function checkEntryNameOf(name: unknown): void {
  if (typeof name !== 'string') throw new RemotePathError('The server listed an entry without a name; refusing to follow it.');
  checkEntryName(name);
}

/** Only `api/vfs/...` and `api/zip/...`, with segments that stay inside them. */
function checkedUrlPath(urlPath: string): string {
  const m = /^\/?api\/(vfs|zip)\/(.*)$/.exec(urlPath);
  if (!m) throw new KuduError(`Refusing to read '${cleanBody(urlPath, 200)}': only Kudu's file system (api/vfs/) and zip (api/zip/) endpoints are read this way.`, 'insecure');
  parseRemotePath(m[2], 'The path');
  return `api/${m[1]}/${m[2]}`;
}

function cleanBody(text: string, max = 500): string {
  return cleanText(text.replace(/\s+/g, ' ').trim(), max);
}

/** `site/wwwroot/content/data/ghost.db` → the VFS URL path of that file. */
export function vfsFilePath(remotePath: RemoteTarget): string {
  return vfsUrlPath(typeof remotePath === 'string' ? parseRemotePath(remotePath, 'The path') : remotePath);
}

/** A folder's VFS listing URL path (Kudu wants the trailing slash). */
export function vfsFolderPath(remoteFolder: RemoteTarget): string {
  return vfsUrlPath(asFolder(typeof remoteFolder === 'string' ? parseRemotePath(remoteFolder, 'The path') : remoteFolder));
}

/** A folder's zip URL path. */
export function zipFolderPath(remoteFolder: RemoteTarget): string {
  return zipUrlPath(typeof remoteFolder === 'string' ? parseRemotePath(remoteFolder, 'The path') : remoteFolder);
}

/** .NET ticks (100 ns since 0001-01-01) at the Unix epoch. */
const UNIX_EPOCH_TICKS = 621355968000000000n;

/**
 * When a file was last written, from the ETag Kudu's VFS gives it: the quoted hex of the bytes of
 * `LastWriteTimeUtc.Ticks` in little-endian order (VfsControllerBase). Returns 100 ns units since
 * the Unix epoch, or undefined for an ETag of another shape.
 */
export function lastWriteFromVfsEtag(etag: string | undefined): bigint | undefined {
  const m = /^"([0-9a-f]{16})"$/i.exec(etag?.trim() ?? '');
  if (!m) return undefined;
  return Buffer.from(m[1], 'hex').readBigInt64LE(0) - UNIX_EPOCH_TICKS;
}

/**
 * A VFS listing's `mtime` (a DateTimeOffset as Json.NET writes it: up to seven decimals, any
 * offset) in 100 ns units since the Unix epoch; undefined when it does not parse.
 */
export function parseVfsTime(text: string | undefined): bigint | undefined {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,7}))?(Z|[+-]\d\d:\d\d)?$/.exec(text?.trim() ?? '');
  if (!m) return undefined;
  let ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
  if (m[8] && m[8] !== 'Z') ms -= (m[8][0] === '-' ? -1 : 1) * (Number(m[8].slice(1, 3)) * 60 + Number(m[8].slice(4, 6))) * 60_000;
  return BigInt(ms) * 10_000n + BigInt((m[7] ?? '').padEnd(7, '0'));
}
