// A real HTTP server on 127.0.0.1 that answers like Kudu, the App Service SCM site.
// Start one with startKuduServer({ home }); see README.md next to this file.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { AuthOptions, DEFAULT_AUTH, isAuthorized, sendUnauthorized } from './auth';
import { dropResponse, FaultHandle, Faults, FaultSpec, limitResponseBody, trickle } from './faults';
import { sendHttpError, sendJson } from './http';
import { handleVfs } from './vfs';
import { RunningJob, TriggeredJobs } from './webjobs';
import { handleZip } from './zip';

export interface KuduServerOptions {
  /** Served as %HOME%; created if missing. */
  home: string;
  /** Default: Basic `user` / `pass`. Requests without valid credentials get 401. */
  auth?: AuthOptions;
  /** App settings: WEBJOBS_STOPPED, WEBJOBS_IDLE_TIMEOUT (seconds, default 120), WEBJOBS_HISTORY_SIZE (default 50); jobs see them all as environment variables. */
  settings?: Record<string, string>;
  /** Node used for run.js jobs; default process.execPath. */
  nodePath?: string;
  /** Default true; false ignores Range headers (always 200 with the whole file). */
  supportsRange?: boolean;
  /** Short instance id in log lines; default 6 random hex characters. */
  instanceId?: string;
  /** Port on 127.0.0.1; default 0 (a free one). */
  port?: number;
  /** WEBSITE_SITE_NAME given to jobs; default 'kudu-server'. */
  siteName?: string;
  /** The environment job processes inherit (the SCM process's: PATH, ProgramW6432, ...); default process.env. App settings are added to it. */
  env?: NodeJS.ProcessEnv;
}

export interface RecordedRequest {
  method: string;
  /** Path with query, as sent. */
  path: string;
  /** 0 until the response status is decided. */
  status: number;
  /** '' when the request had no User-Agent. */
  userAgent: string;
  range?: string;
  /** Body bytes the handler handed to the response (what a client that stops reading early still made the server send). */
  bytesSent: number;
}

export interface KuduJobsControl {
  /** Kill the run's process tree without touching its status file (a crash or recycle): it reads Aborted. */
  abort(jobName: string): Promise<void>;
  /** Stop it as Kudu does on refresh: log "WebJob process was aborted", status Stopped. */
  stop(jobName: string): Promise<void>;
  /** Resolves once no job process is running; rejects after timeoutMs. */
  waitForIdle(timeoutMs: number): Promise<void>;
  /** Runs whose process may be alive, with the leader's pid once spawned. */
  running(): RunningJob[];
}

export interface KuduServer {
  /** `http://127.0.0.1:<port>/` */
  readonly url: string;
  readonly port: number;
  /** Absolute path of %HOME%. */
  readonly home: string;
  /** Every request in arrival order; Authorization values are never stored. */
  readonly requests: RecordedRequest[];
  readonly faults: { add(spec: FaultSpec): FaultHandle; clear(): void };
  readonly jobs: KuduJobsControl;
  setSetting(name: string, value: string | undefined): void;
  getSetting(name: string): string | undefined;
  /** Every app setting, as `GET api/settings` lists them. */
  appSettings(): Record<string, string>;
  /** Simulate another process holding the file open without sharing (path relative to home). */
  lockFile(relPath: string): void;
  unlockFile(relPath: string): void;
  /** Kill every job process tree, close every socket, remove scratch files. */
  close(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));

/** Adds the size of every body chunk written to `record.bytesSent` (before any fault trims it). */
function countBodyBytes(res: http.ServerResponse, record: RecordedRequest): void {
  const size = (chunk: unknown): number => (typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk instanceof Uint8Array ? chunk.byteLength : 0);
  const patched = res as unknown as { write: (...args: unknown[]) => boolean; end: (...args: unknown[]) => http.ServerResponse };
  const write = patched.write.bind(res);
  const end = patched.end.bind(res);
  patched.write = (chunk: unknown, ...rest: unknown[]) => {
    record.bytesSent += size(chunk);
    return write(chunk, ...rest);
  };
  patched.end = (chunk?: unknown, ...rest: unknown[]) => {
    if (typeof chunk !== 'function') record.bytesSent += size(chunk);
    return end(chunk, ...rest);
  };
}

/** Whatever follows `prefix` in `pathname` ('' or '/...'), or undefined if it is another route. */
function routeRest(pathname: string, prefix: string): string | undefined {
  if (pathname === prefix) return '';
  return pathname.startsWith(prefix + '/') ? pathname.slice(prefix.length) : undefined;
}

const JOB_PREFIXES = ['/api/triggeredwebjobs', '/api/triggeredjobs', '/api/jobs/triggered', '/jobs/triggered'];

export async function startKuduServer(options: KuduServerOptions): Promise<KuduServer> {
  const home = path.resolve(options.home);
  fs.mkdirSync(home, { recursive: true });
  const localDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kudu-server-local-'));
  const auth = options.auth ?? DEFAULT_AUTH;
  const settings = new Map(Object.entries(options.settings ?? {}));
  const supportsRange = options.supportsRange ?? true;
  const locked = new Set<string>();
  const faults = new Faults();
  const requests: RecordedRequest[] = [];
  const jobs = new TriggeredJobs({
    home,
    localDir,
    instanceId: options.instanceId ?? randomBytes(3).toString('hex'),
    nodePath: options.nodePath ?? process.execPath,
    siteName: options.siteName ?? 'kudu-server',
    getSetting: name => settings.get(name),
    listSettings: () => [...settings],
    env: options.env,
  });
  const vfsContext = { home, supportsRange, isLocked: (p: string) => locked.has(p), tempDir: path.join(localDir, 'Temp') };

  async function route(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const pathname = url.pathname;
    let rest: string | undefined;
    if ((rest = routeRest(pathname, '/api/vfs') ?? routeRest(pathname, '/vfs')) !== undefined) {
      return handleVfs(req, res, vfsContext, rest, url);
    }
    if ((rest = routeRest(pathname, '/api/zip') ?? routeRest(pathname, '/zip')) !== undefined) {
      return handleZip(req, res, vfsContext, rest, url);
    }
    for (const prefix of JOB_PREFIXES) {
      if ((rest = routeRest(pathname, prefix)) !== undefined) return jobs.handle(req, res, rest, url);
    }
    if ((pathname === '/api/settings' || pathname === '/api/settings/') && (req.method === 'GET' || req.method === 'HEAD')) {
      // Kudu's SettingsController.GetAll: its own settings merged with the app settings, one JSON object.
      req.resume();
      return sendJson(res, 200, Object.fromEntries(settings));
    }
    if (pathname === '/api/webjobs' || pathname === '/api/webjobs/') {
      if (req.method === 'GET' || req.method === 'HEAD') return jobs.sendJobList(req, res, `http://${req.headers.host}`);
    }
    req.resume();
    sendHttpError(res, 404, `No HTTP resource was found that matches the request URI 'http://${req.headers.host}${req.url}'.`);
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const rawPath = req.url ?? '/';
    const record: RecordedRequest = { method, path: rawPath, status: 0, userAgent: req.headers['user-agent'] ?? '', bytesSent: 0 };
    if (req.headers.range !== undefined) record.range = req.headers.range;
    requests.push(record);
    countBodyBytes(res, record);
    const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => http.ServerResponse;
    (res as unknown as { writeHead: (...args: unknown[]) => http.ServerResponse }).writeHead = (...args: unknown[]) => {
      record.status = args[0] as number;
      return writeHead(...args);
    };
    res.on('close', () => {
      if (res.headersSent) record.status = res.statusCode;
    });

    try {
      // Faults act before authentication, like a front end or network in the way.
      const fault = faults.take(method, rawPath);
      if (fault?.delayMs) await sleep(fault.delayMs);
      if (fault?.dropResponse) dropResponse(res);
      else if (fault?.resetAfterBytes !== undefined) limitResponseBody(res, fault.resetAfterBytes, 'reset');
      else if (fault?.truncateAfterBytes !== undefined) limitResponseBody(res, fault.truncateAfterBytes, 'truncate');
      if (fault?.status !== undefined) {
        req.resume();
        const body = Buffer.isBuffer(fault.body) ? fault.body : Buffer.from(fault.body ?? '', 'utf8');
        const headers: Record<string, string | number> = { ...(fault.headers ?? {}) };
        if (body.length > 0 && !Object.keys(headers).some(h => h.toLowerCase() === 'content-type')) {
          headers['Content-Type'] = 'text/plain; charset=utf-8';
        }
        headers['Content-Length'] = body.length;
        res.writeHead(fault.status, headers);
        if (fault.trickleMs !== undefined) trickle(res, body, fault.trickleMs);
        else res.end(body);
        return;
      }
      if (!isAuthorized(req, auth)) {
        req.resume();
        return sendUnauthorized(res);
      }
      await route(req, res, new URL(`http://${req.headers.host ?? '127.0.0.1'}${rawPath}`));
    } catch (e) {
      const error = e as Error;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // IncludeErrorDetailPolicy.Always: Web API shows the exception.
      sendJson(res, 500, {
        Message: 'An error has occurred.',
        ExceptionMessage: error.message,
        ExceptionType: error.name,
        StackTrace: error.stack ?? null,
      });
    }
  }

  const server = http.createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  const toLocal = (relPath: string): string => path.resolve(home, relPath.replace(/^[\\/]+/, ''));
  let closing: Promise<void> | undefined;

  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    home,
    requests,
    faults: { add: spec => faults.add(spec), clear: () => faults.clear() },
    jobs: {
      abort: name => jobs.abort(name),
      stop: name => jobs.stop(name),
      waitForIdle: timeoutMs => jobs.waitForIdle(timeoutMs),
      running: () => jobs.running(),
    },
    setSetting(name, value) {
      if (value === undefined) settings.delete(name);
      else settings.set(name, value);
    },
    getSetting: name => settings.get(name),
    appSettings: () => Object.fromEntries(settings),
    lockFile: relPath => void locked.add(toLocal(relPath)),
    unlockFile: relPath => void locked.delete(toLocal(relPath)),
    close() {
      closing ??= (async () => {
        await jobs.close();
        const closed = new Promise<void>(resolve => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
        fs.rmSync(localDir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
