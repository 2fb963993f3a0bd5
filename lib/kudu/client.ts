/**
 * The one Kudu client every task uses: triggered WebJobs, the VFS and the zip endpoint of an
 * App Service's SCM site (https://<app>.scm.azurewebsites.net/). Paths are relative to %HOME%.
 *
 * @example
 *   const kudu = new KuduClient({ scmUrl, credential: basicCredential(user, password), userAgent });
 *   const job = await kudu.getTriggeredJob('backup');
 *   const { runId } = await kudu.runTriggeredJob('backup', '--keep 7');
 *   const run = await kudu.getJobRun('backup', runId);
 */
import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import { KuduError } from './errors';
import { headerText, HttpTransport, numericHeader, readAll, totalFromContentRange, type HttpRequest, type HttpResponse, type StreamResponse, type TransportOptions } from './http';

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

/** Statuses after which a run changes no more. */
export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(['Success', 'Failed', 'Aborted', 'Stopped', 'Error']);
/** Statuses that mean the job holds its one-run-at-a-time lock. */
export const ACTIVE_STATUSES: ReadonlySet<string> = new Set(['Initializing', 'Running']);

/** Kudu's exact 409 texts (Kudu.Services/Resources.resx). */
export const ALREADY_RUNNING_TEXT = 'Cannot start a new run since job is already running.';
export const WEBJOBS_STOPPED_TEXT = 'WebJobs are currently in "stopped" state.';

export type KuduClientOptions = TransportOptions;

export class KuduClient {
  readonly http: HttpTransport;

  constructor(readonly options: KuduClientOptions) {
    this.http = new HttpTransport(options);
  }

  get host(): string {
    return this.http.host;
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
    return json(await this.http.send({ method: 'GET', path: 'api/triggeredwebjobs' }));
  }

  /** The job, or a not-found KuduError naming it. */
  async getTriggeredJob(name: string): Promise<TriggeredJob> {
    const res = await this.http.send({ method: 'GET', path: `api/triggeredwebjobs/${enc(name)}`, accept: [404] });
    if (res.status === 404) throw new KuduError(`The triggered WebJob '${name}' does not exist on ${this.host}.`, 'not-found', { status: 404 });
    return json(res);
  }

  /** Creates or replaces a job from a zip that holds its files (run.js, settings.job, ...). */
  async putTriggeredJob(name: string, zipFile: string): Promise<TriggeredJob> {
    const size = fs.statSync(zipFile).size;
    const res = await this.http.send({
      method: 'PUT',
      path: `api/triggeredwebjobs/${enc(name)}`,
      headers: {
        'Content-Type': 'application/zip',
        'Content-Disposition': `attachment; filename=${name}.zip`,
        'Content-Length': String(size),
      },
      body: () => fs.createReadStream(zipFile),
    });
    return json(res);
  }

  /** Replaces the job's settings.job (schedule, is_singleton, ...). */
  async putJobSettings(name: string, settings: Record<string, unknown>): Promise<void> {
    await this.http.send({
      method: 'PUT',
      path: `api/triggeredwebjobs/${enc(name)}/settings`,
      headers: { 'Content-Type': 'application/json' },
      body: () => Buffer.from(JSON.stringify(settings), 'utf8'),
    });
  }

  /**
   * Starts a run. Sent once, never retried here: if the answer is lost, the run may have started,
   * and only the job's history can tell (see `findRunByTrigger`). `marker` goes into the
   * User-Agent, which Kudu records in the run's `trigger`, so the run can be found again.
   */
  async runTriggeredJob(name: string, args: string | undefined, marker: string): Promise<{ runId: string; location: string }> {
    const query = args ? `?arguments=${encodeURIComponent(args)}` : '';
    const request: HttpRequest = {
      method: 'POST',
      path: `api/triggeredwebjobs/${enc(name)}/run${query}`,
      userAgent: `${this.options.userAgent} ${marker}`,
      accept: [404, 409],
    };
    const res = await this.http.send(request);
    const text = res.body.toString('utf8').trim();
    if (res.status === 404) throw new KuduError(`The triggered WebJob '${name}' does not exist on ${this.host}.`, 'not-found', { status: 404 });
    if (res.status === 409) throw new KuduError(text || 'Conflict', 'conflict', { status: 409, body: text });
    const location = String(res.headers.location ?? '');
    const runId = location.split('/').filter(Boolean).pop() ?? '';
    if (!/^\d+$/.test(runId)) {
      throw new KuduError(
        `Kudu accepted the run of '${name}' (${res.status}) but sent no usable Location header ('${location}'); cannot follow the run.`,
        'http',
        { status: res.status },
      );
    }
    return { runId, location };
  }

  /** Runs, newest first; a job that never ran has no history folder and Kudu answers 404. */
  async getJobHistory(name: string): Promise<TriggeredJobRun[]> {
    const res = await this.http.send({ method: 'GET', path: `api/triggeredwebjobs/${enc(name)}/history`, accept: [404] });
    if (res.status === 404) return [];
    return (json<{ runs: TriggeredJobRun[] }>(res).runs ?? []).slice();
  }

  async getJobRun(name: string, runId: string): Promise<TriggeredJobRun> {
    const res = await this.http.send({ method: 'GET', path: `api/triggeredwebjobs/${enc(name)}/history/${enc(runId)}`, accept: [404] });
    if (res.status === 404) {
      throw new KuduError(`Run ${runId} of WebJob '${name}' is not in the job's history on ${this.host}.`, 'not-found', { status: 404 });
    }
    return json(res);
  }

  /** The run whose trigger carries `marker` (our User-Agent at POST time), if Kudu started it. */
  async findRunByTrigger(name: string, marker: string): Promise<TriggeredJobRun | undefined> {
    return (await this.getJobHistory(name)).find((run) => (run.trigger ?? '').includes(marker));
  }

  // ---- VFS ---------------------------------------------------------------------------------

  /**
   * Bytes of a file from `offset` to its end (for a log that grows). Returns the new bytes and
   * whether the file exists yet. A server that ignores Range still works: the head is dropped.
   */
  async readFrom(vfsPath: string, offset: number): Promise<{ exists: boolean; data: Buffer }> {
    const res = await this.http.send({
      method: 'GET',
      path: vfsPath,
      headers: offset > 0 ? { Range: `bytes=${offset}-` } : {},
      accept: [404, 416],
    });
    if (res.status === 404) return { exists: false, data: Buffer.alloc(0) };
    if (res.status === 416) return { exists: true, data: Buffer.alloc(0) };
    if (res.status === 206) return { exists: true, data: res.body };
    return { exists: true, data: res.body.subarray(Math.min(offset, res.body.length)) };
  }

  /**
   * `length` bytes of a file from `offset` (fewer at its end), with a Range request. A server that
   * ignores Range sends the whole file: only what is needed is read, then the connection is
   * dropped, so the head of a 1 GiB database costs a few hundred bytes either way. `size` is the
   * file's size as the answer gives it (Content-Range, or Content-Length of a whole-file answer).
   */
  async readRange(remotePath: string, offset: number, length: number): Promise<RangeRead> {
    const res = await this.openStream(vfsFilePath(remotePath), { Range: `bytes=${offset}-${offset + length - 1}` }, [307, 404, 416]);
    const etag = headerText(res.headers.etag);
    if (res.status === 404 || res.status === 307 || res.status === 416) {
      res.stream.resume();
      if (res.status === 404) return { exists: false, data: Buffer.alloc(0), size: undefined, ranged: false };
      if (res.status === 307) throw new KuduError(`${remotePath} is a folder on ${this.host}, not a file.`, 'http', { status: 307 });
      // Asked past the end: the file is shorter than `offset` (an empty -wal, say).
      return { exists: true, data: Buffer.alloc(0), size: totalFromContentRange(res.headers['content-range']), etag, ranged: true };
    }
    if (res.status === 206) {
      // The server cut the range itself: read it to its end, which keeps the connection reusable.
      const data = await readAll(res.stream);
      return { exists: true, data: data.subarray(0, length), size: totalFromContentRange(res.headers['content-range']), etag, ranged: true, bytesReceived: data.length };
    }
    const head = await readHead(res.stream, offset + length);
    const data = head.data.subarray(Math.min(offset, head.data.length));
    return { exists: true, data, size: numericHeader(res.headers['content-length']), etag, ranged: false, bytesReceived: head.received };
  }

  /** A small text file through the VFS (a manifest, a version file); undefined when it does not exist. */
  async readText(remotePath: string): Promise<string | undefined> {
    const res = await this.http.send({ method: 'GET', path: vfsFilePath(remotePath), accept: [404] });
    return res.status === 404 ? undefined : res.body.toString('utf8');
  }

  /** One level of a folder (`path` ends with `/`); undefined when it does not exist. */
  async listDirectory(vfsFolder: string): Promise<VfsEntry[] | undefined> {
    const res = await this.http.send({ method: 'GET', path: vfsFolderPath(vfsFolder), accept: [404] });
    if (res.status === 404) return undefined;
    return json(res);
  }

  /**
   * Every file under a folder, with paths relative to it (forward slashes). Kudu lists one level
   * per request, so sub-folders are walked a few at a time.
   */
  async listFilesRecursive(vfsFolder: string, concurrency = 4): Promise<Array<{ path: string; size: number; mtime: string }>> {
    const root = trimSlashes(vfsFolder);
    if ((await this.listDirectory(root)) === undefined) {
      throw new KuduError(`The folder ${root}/ does not exist on ${this.host}.`, 'not-found', { status: 404 });
    }
    const files: Array<{ path: string; size: number; mtime: string }> = [];
    const queue: string[] = [''];
    const worker = async () => {
      for (let rel = queue.shift(); rel !== undefined; rel = queue.shift()) {
        const entries = (await this.listDirectory(rel ? `${root}/${rel}` : root)) ?? [];
        for (const entry of entries) {
          const path = rel ? `${rel}/${entry.name}` : entry.name;
          if (entry.mime === 'inode/directory') queue.push(path);
          else files.push({ path, size: entry.size, mtime: entry.mtime });
        }
      }
    };
    // Workers drain the shared queue; a worker that finds it empty while others still list may
    // stop early, so keep starting rounds until nothing is left.
    while (queue.length) await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
    return files.sort((a, b) => a.path.localeCompare(b.path));
  }

  /** A GET whose body the caller streams (file downloads, zip downloads). */
  async openStream(path: string, headers: Record<string, string> = {}, accept: number[] = []): Promise<StreamResponse> {
    return this.http.open({ method: 'GET', path, headers, accept });
  }

  /**
   * The site's app settings as its Kudu sees them (`api/settings`: Kudu's SettingsController,
   * its own settings merged with the app's). Values are strings; anything else is left out.
   * Values may be secrets: callers read the names they need and never log the rest.
   */
  async appSettings(): Promise<Record<string, string>> {
    const all = json<unknown>(await this.http.send({ method: 'GET', path: 'api/settings', headers: { Accept: 'application/json' } }));
    // Old Kudu answered an empty array when there were none.
    if (Array.isArray(all) && all.length === 0) return {};
    if (typeof all !== 'object' || all === null || Array.isArray(all)) {
      throw new KuduError(`Kudu's api/settings on ${this.host} sent no settings object.`, 'http', { path: 'api/settings', host: this.host });
    }
    return Object.fromEntries(Object.entries(all).filter((e): e is [string, string] => typeof e[1] === 'string'));
  }
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

/** Reads a body until `wanted` bytes are in, then drops the rest of it (and the connection). */
async function readHead(stream: Readable, wanted: number): Promise<{ data: Buffer; received: number }> {
  const chunks: Buffer[] = [];
  let received = 0;
  try {
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
      received += (chunk as Buffer).length;
      if (received >= wanted) break;
    }
  } finally {
    // Leaving the loop early destroys the stream; a body that ended by itself is left alone.
    if (!stream.readableEnded) stream.destroy();
  }
  return { data: Buffer.concat(chunks).subarray(0, wanted), received };
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

function trimSlashes(path: string): string {
  return path.replace(/^[/\\]+|[/\\]+$/g, '');
}

/** Each segment URL-encoded; backslashes taken as slashes. */
function encodePath(path: string): string {
  return trimSlashes(path.replace(/\\/g, '/'))
    .split('/')
    .filter(Boolean)
    .map(encodeURIComponent)
    .join('/');
}

/** `site/wwwroot/content/data/ghost.db` → the VFS URL path of that file. */
export function vfsFilePath(remotePath: string): string {
  return `api/vfs/${encodePath(remotePath)}`;
}

/** A folder's VFS listing URL path (Kudu wants the trailing slash). */
export function vfsFolderPath(remoteFolder: string): string {
  const encoded = encodePath(remoteFolder);
  return encoded ? `api/vfs/${encoded}/` : 'api/vfs/';
}

/** A folder's zip URL path. */
export function zipFolderPath(remoteFolder: string): string {
  const encoded = encodePath(remoteFolder);
  return encoded ? `api/zip/${encoded}/` : 'api/zip/';
}

function json<T>(res: HttpResponse): T {
  const text = res.body.toString('utf8');
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new KuduError(`Kudu sent something that is not JSON (${res.status}): ${text.slice(0, 200)}`, 'http', { status: res.status });
  }
}
