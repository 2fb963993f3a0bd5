/**
 * The transport under the Kudu client: one HTTPS request with an idle timeout, retried with
 * exponential backoff and full jitter when that is safe. Only idempotent requests are retried;
 * `POST .../run` is never re-sent blindly (the WebJob code looks at the history instead).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { Readable } from 'node:stream';
import { KuduError, networkError, RETRIABLE_STATUSES, statusError } from './errors';
import { MAX_REFRESHES, type KuduCredential } from './credentials';

export interface RetryPolicy {
  /** Tries in all, the first included. */
  maxAttempts: number;
  /** First backoff; each further one doubles, with full jitter. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** No new try starts after this long since the first one. */
  maxTotalMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, baseDelayMs: 1000, maxDelayMs: 20_000, maxTotalMs: 120_000 };

export interface TransportOptions {
  scmUrl: string;
  credential: KuduCredential;
  userAgent: string;
  retry?: Partial<RetryPolicy>;
  /** No byte received for this long fails the try. */
  idleTimeoutMs?: number;
  /** Debug output; never given secrets. */
  debug?: (message: string) => void;
  /** A retry is about to happen; for a visible warning. */
  onRetry?: (info: { attempt: number; delayMs: number; reason: string }) => void;
}

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  /** Path under the SCM root, with its query: `api/vfs/site/wwwroot/`. A leading slash is ignored. */
  path: string;
  headers?: Record<string, string>;
  /** A body factory, so that a retry can send the body again. */
  body?: () => Buffer | Readable;
  /** Statuses handed back to the caller instead of raised as errors (2xx always are). */
  accept?: number[];
  /** Default: every method but POST. */
  idempotent?: boolean;
  /** Override the client's User-Agent (the WebJob run marks its POST). */
  userAgent?: string;
  /** Tries for this request; default from the policy. */
  maxAttempts?: number;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface StreamResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body; errors mid-body (resets, idle timeout) surface as a KuduError on this stream. */
  stream: Readable;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export function isLoopback(hostname: string): boolean {
  return LOOPBACK.has(hostname) || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

export class HttpTransport {
  readonly baseUrl: URL;
  readonly host: string;
  private readonly retry: RetryPolicy;
  private readonly idleTimeoutMs: number;
  private readonly agent: http.Agent;

  constructor(private readonly options: TransportOptions) {
    let url: URL;
    try {
      url = new URL(options.scmUrl);
    } catch {
      throw new KuduError(
        `'${options.scmUrl}' is not a URL. The service connection's URL should be the app's SCM site, like https://<app>.scm.azurewebsites.net/.`,
        'insecure',
      );
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
      throw new KuduError(
        `Refusing to send credentials to ${url.protocol}//${url.host}: only https:// is allowed (plain http only for a loopback host). ` +
          `Use the app's SCM URL, like https://<app>.scm.azurewebsites.net/.`,
        'insecure',
      );
    }
    // Credentials in the URL would end up in logs; the connection's fields carry them instead.
    url.username = '';
    url.password = '';
    url.search = '';
    url.hash = '';
    if (!url.pathname.endsWith('/')) url.pathname += '/';
    this.baseUrl = url;
    this.host = url.host;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.idleTimeoutMs = options.idleTimeoutMs ?? 100_000;
    const AgentClass = url.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new AgentClass({ keepAlive: true, maxSockets: 8 });
  }

  urlFor(path: string): URL {
    return new URL(path.replace(/^[/\\]+/, ''), this.baseUrl);
  }

  /** Sends a request and reads the whole (small) body; retried as the policy allows. */
  async send(request: HttpRequest): Promise<HttpResponse> {
    return this.withRetry(request, async () => {
      const res = await this.once(request);
      const body = await readAll(res.stream);
      return { status: res.status, headers: res.headers, body };
    });
  }

  /**
   * Sends a request and hands back the body as a stream once the headers are in. Retries happen
   * only before that; a break in the body is the caller's to handle (e.g. resume with Range).
   */
  async open(request: HttpRequest): Promise<StreamResponse> {
    return this.withRetry(request, () => this.once(request));
  }

  close(): void {
    this.agent.destroy();
    this.options.credential.close?.();
  }

  private async withRetry<T extends { status: number; headers: http.IncomingHttpHeaders }>(
    request: HttpRequest,
    attempt: () => Promise<T & ({ body: Buffer } | { stream: Readable })>,
  ): Promise<T> {
    const idempotent = request.idempotent ?? request.method !== 'POST';
    const maxAttempts = idempotent ? (request.maxAttempts ?? this.retry.maxAttempts) : 1;
    const started = Date.now();
    let refreshes = 0;
    for (let n = 1; ; n++) {
      let failure: KuduError;
      let retryAfterMs: number | undefined;
      try {
        const res = await attempt();
        if (res.status < 300 || request.accept?.includes(res.status)) return res;
        const body = 'body' in res ? res.body.toString('utf8') : (await readAll(res.stream).catch(() => Buffer.alloc(0))).toString('utf8');
        failure = statusError(
          res.status,
          request.method,
          this.displayPath(request.path),
          this.host,
          this.options.credential.description,
          body,
          this.options.credential.kind,
        );
        if (res.status === 401 && refreshes < MAX_REFRESHES && this.options.credential.refresh && (await this.options.credential.refresh())) {
          // A token may have expired during a long wait; another try with a fresh one.
          refreshes++;
          n--;
          continue;
        }
        retryAfterMs = parseRetryAfter(res.headers['retry-after']);
      } catch (err) {
        if (err instanceof KuduError) failure = err;
        else throw err;
      }
      const elapsed = Date.now() - started;
      if (!failure.retriable || n >= maxAttempts || elapsed >= this.retry.maxTotalMs) {
        if (n > 1 && failure.retriable) failure.message += ` (gave up after ${n} tries in ${Math.round(elapsed / 1000)} s)`;
        throw failure;
      }
      const backoff = Math.random() * Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (n - 1));
      const delayMs = Math.min(Math.max(backoff, retryAfterMs ?? 0), Math.max(0, this.retry.maxTotalMs - elapsed));
      this.options.onRetry?.({ attempt: n, delayMs, reason: failure.message });
      this.options.debug?.(`retry ${n}/${maxAttempts - 1} in ${Math.round(delayMs)} ms: ${failure.message}`);
      await sleep(delayMs);
    }
  }

  /** One try: resolves when the response headers are in, rejects with a KuduError otherwise. */
  private async once(request: HttpRequest): Promise<StreamResponse> {
    const url = this.urlFor(request.path);
    const display = this.displayPath(request.path);
    const headers: Record<string, string> = {
      'User-Agent': request.userAgent ?? this.options.userAgent,
      Accept: '*/*',
      Authorization: await this.options.credential.authorization(),
      ...request.headers,
    };
    const body = request.body?.();
    if (Buffer.isBuffer(body)) headers['Content-Length'] = String(body.length);
    this.options.debug?.(`${request.method} ${url.pathname}${url.search}`);
    const transport = url.protocol === 'https:' ? https : http;
    return new Promise<StreamResponse>((resolve, reject) => {
      const req = transport.request(url, { method: request.method, headers, agent: this.agent });
      let settled = false;
      const fail = (err: NodeJS.ErrnoException) => {
        if (settled) return;
        settled = true;
        reject(networkError(err, request.method, display, this.host));
      };
      req.setTimeout(this.idleTimeoutMs, () => {
        req.destroy(Object.assign(new Error(`no answer within ${Math.round(this.idleTimeoutMs / 1000)} s`), { code: 'KUDU_IDLE_TIMEOUT' }));
      });
      req.on('error', fail);
      req.on('response', (res) => {
        settled = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, stream: this.guardBody(res, request.method, display) });
      });
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        body.on('error', (err) => req.destroy(err));
        body.pipe(req);
      }
    });
  }

  /**
   * Turns mid-body failures into KuduErrors: a reset, an idle socket, or a body shorter than its
   * Content-Length (Node reports that as 'aborted').
   */
  private guardBody(res: http.IncomingMessage, method: string, display: string): Readable {
    let done = false;
    const out = new Readable({
      read: () => res.resume(),
      // A caller that has what it needs destroys the body (e.g. the head of a file a server sent
      // whole): the connection goes with it, so the rest is not downloaded.
      destroy: (err, callback) => {
        done = true;
        if (!res.complete) res.destroy();
        callback(err);
      },
    });
    let received = 0;
    const expected = res.headers['content-length'] !== undefined ? Number(res.headers['content-length']) : undefined;
    const fail = (err: NodeJS.ErrnoException) => {
      if (done) return;
      done = true;
      out.destroy(networkError(err, method, display, this.host));
    };
    res.setTimeout(this.idleTimeoutMs, () => {
      res.destroy(Object.assign(new Error(`no data for ${Math.round(this.idleTimeoutMs / 1000)} s`), { code: 'KUDU_IDLE_TIMEOUT' }));
    });
    res.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (!out.push(chunk)) res.pause();
    });
    res.on('aborted', () => fail(Object.assign(new Error('the connection closed in the middle of the response'), { code: 'ECONNRESET' })));
    res.on('error', (err) => fail(err));
    res.on('end', () => {
      if (done) return;
      if (expected !== undefined && received < expected && method !== 'HEAD') {
        fail(Object.assign(new Error(`the body ended after ${received} of ${expected} bytes`), { code: 'KUDU_TRUNCATED' }));
        return;
      }
      done = true;
      out.push(null);
    });
    res.on('close', () => {
      if (!res.complete) fail(Object.assign(new Error('the connection closed in the middle of the response'), { code: 'ECONNRESET' }));
    });
    return out;
  }

  private displayPath(path: string): string {
    return '/' + path.replace(/^[/\\]+/, '').replace(/\?.*$/, '');
  }
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A header's value as one string (Node gives arrays for repeated headers). */
export function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The total of a Content-Range (`bytes 0-99/12345`, or `bytes` star `/12345` with a 416): 12345. */
export function totalFromContentRange(value: string | string[] | undefined): number | undefined {
  const m = /\/(\d+)\s*$/.exec(headerText(value) ?? '');
  return m ? Number(m[1]) : undefined;
}

/** A numeric header (Content-Length), or undefined when absent or not a number. */
export function numericHeader(value: string | string[] | undefined): number | undefined {
  const text = headerText(value);
  return text !== undefined && /^\d+$/.test(text.trim()) ? Number(text) : undefined;
}

/** Retry-After in seconds or as an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\d+(\.\d+)?$/.test(text.trim())) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, Math.max(0, ms));
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export { RETRIABLE_STATUSES };
