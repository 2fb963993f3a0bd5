/**
 * One origin's HTTP(S) requests, for any service (Kudu, Azure Resource Manager, the pipeline's
 * OIDC endpoint, Microsoft Entra ID through MSAL):
 *
 * - retried with exponential backoff, full jitter and Retry-After, but only when that is safe: a
 *   request that is not idempotent (POST, unless the caller says otherwise) is sent once;
 * - bounded in time three ways: an idle timeout (no byte for a while), an overall limit per try,
 *   and the task's Deadline, which no try, backoff or body outlives;
 * - bodies read into memory with a size limit;
 * - a 401 asks the authorizer for fresh credentials (a token that expired during a long wait);
 * - through the agent's proxy and with its certificates (network.ts).
 *
 * Failures are HttpErrors (facts: status, code, body excerpt, tries) or, once the deadline has
 * passed, the Deadline's DeadlineError; callers word their own messages from those.
 *
 * @example
 *   const t = new HttpTransport({ baseUrl: 'https://blog.scm.azurewebsites.net/', userAgent, authorizer, deadline });
 *   const res = await t.send({ method: 'GET', path: 'api/triggeredwebjobs', maxBodyBytes: 1 << 20 });
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { setMaxListeners } from 'node:events';
import { Readable } from 'node:stream';
import type { Deadline } from '../deadline';
import { BodyTooLargeError, DEFAULT_MAX_BODY_BYTES, numericHeader, parseRetryAfter, readAll, readHead } from './body';
import { bodyExcerpt, HttpError, RETRIABLE_CODES, RETRIABLE_STATUSES } from './errors';
import { routeTo, ProxyError, type NetworkSettings, type Route } from './network';

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

/** Where the Authorization header comes from (a password, a token that renews). */
export interface Authorizer {
  authorization(): Promise<string>;
  /** After a 401: true when a try with fresh credentials makes sense. Asked at most MAX_REFRESHES times per request. */
  refresh?(): Promise<boolean>;
  close?(): void;
}

/** Refreshes per request: a fresh token, then (Azure Resource Manager) up to two fallbacks. */
export const MAX_REFRESHES = 3;

export interface RetryInfo {
  attempt: number;
  delayMs: number;
  error: HttpError;
}

/** What every request of a task run shares: who we are, until when, and how the network is reached. */
export interface HttpContext {
  userAgent: string;
  /** The task's deadline: no try, backoff or body outlives it. */
  deadline?: Deadline;
  /** The agent's proxy and certificates. */
  network?: NetworkSettings;
  /** Debug output; never given secrets. */
  debug?: (message: string) => void;
  /** A retry is about to happen; for a visible line. */
  onRetry?: (info: RetryInfo) => void;
}

export interface TransportOptions extends HttpContext {
  /** The origin (and base path) every request path is relative to. */
  baseUrl: string;
  authorizer?: Authorizer;
  retry?: Partial<RetryPolicy>;
  /** No byte for this long fails the try; default 100 s. */
  idleTimeoutMs?: number;
  /** Overall limit of one try (send: headers and body; open: until the headers); default 5 minutes. */
  tryTimeoutMs?: number;
  /** The most `send` reads into memory; default 16 MiB. */
  maxBodyBytes?: number;
  /**
   * A service's wording for the transport's facts, applied to what leaves the transport (the
   * error of a request that gave up, a failure in a streamed body); the HttpError stays its cause.
   */
  describeError?: (err: HttpError) => Error;
}

export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';

export interface HttpRequest {
  method: HttpMethod;
  /** Path under the base URL, with its query: `api/vfs/site/wwwroot/`. A leading slash is ignored. */
  path: string;
  headers?: Record<string, string>;
  /** A body factory, so that a retry can send the body again. */
  body?: () => Buffer | Readable;
  /** Statuses handed back to the caller instead of raised as errors (2xx always are). */
  accept?: number[];
  /** Default: every method but POST. Only idempotent requests are retried. */
  idempotent?: boolean;
  /** Override the transport's User-Agent (the WebJob run marks its POST). */
  userAgent?: string;
  maxAttempts?: number;
  /** This request's overall limit per try, instead of the transport's. */
  timeoutMs?: number;
  /** For `send`: the most bytes read into memory. */
  maxBodyBytes?: number;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface StreamResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body; a failure mid-body (reset, idle, deadline) is an HttpError or DeadlineError on this stream. */
  stream: Readable;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export function isLoopback(hostname: string): boolean {
  return LOOPBACK.has(hostname) || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** An error body is read for its message up to this many bytes. */
const ERROR_BODY_BYTES = 64 * 1024;

export class HttpTransport {
  readonly baseUrl: URL;
  readonly host: string;
  /** The proxy requests go through, for messages; undefined when direct. */
  readonly proxy: string | undefined;
  private readonly retry: RetryPolicy;
  private readonly idleTimeoutMs: number;
  private readonly route: Route;

  constructor(private readonly options: TransportOptions) {
    this.baseUrl = checkedBaseUrl(options.baseUrl);
    this.host = this.baseUrl.host;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.idleTimeoutMs = options.idleTimeoutMs ?? 100_000;
    this.route = routeTo(this.baseUrl, options.network, { idleTimeoutMs: this.idleTimeoutMs });
    this.proxy = this.route.proxy;
    // Every try listens to the deadline's signal while it runs; many run at once in a listing.
    if (options.deadline) setMaxListeners(0, options.deadline.signal);
  }

  get deadline(): Deadline | undefined {
    return this.options.deadline;
  }

  urlFor(path: string): URL {
    return new URL(path.replace(/^[/\\]+/, ''), this.baseUrl);
  }

  /** Sends a request and reads the whole body (at most `maxBodyBytes`); retried as the policy allows. */
  async send(request: HttpRequest): Promise<HttpResponse> {
    const limit = request.maxBodyBytes ?? this.options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    return this.withRetry(request, async (control) => {
      const res = await this.once(request, control, false);
      const declared = numericHeader(res.headers['content-length']);
      try {
        if (declared !== undefined && declared > limit) throw new BodyTooLargeError(limit);
        const body = await readAll(res.stream, limit);
        return { status: res.status, headers: res.headers, body };
      } catch (err) {
        res.stream.destroy();
        if (err instanceof BodyTooLargeError) throw this.tooLarge(request, err.limitBytes);
        throw err;
      }
    });
  }

  /**
   * Sends a request and hands back the body as a stream once the headers are in. Retries happen
   * only before that; a break in the body is the caller's to handle (e.g. resume with Range).
   */
  async open(request: HttpRequest): Promise<StreamResponse> {
    return this.withRetry(request, async (control) => {
      const res = await this.once(request, control, true);
      // The try's own limit covered the wait for the headers; the body runs until the deadline.
      control.stopTimer();
      return res;
    });
  }

  close(): void {
    this.route.agent.destroy();
    this.options.authorizer?.close?.();
  }

  private async withRetry<T extends { status: number; headers: http.IncomingHttpHeaders }>(
    request: HttpRequest,
    attempt: (control: TryControl) => Promise<T & ({ body: Buffer } | { stream: Readable })>,
  ): Promise<T> {
    const idempotent = request.idempotent ?? request.method !== 'POST';
    const maxAttempts = idempotent ? (request.maxAttempts ?? this.retry.maxAttempts) : 1;
    const started = Date.now();
    const deadline = this.options.deadline;
    let refreshes = 0;
    let failure: HttpError | undefined;
    for (let n = 1; ; n++) {
      if (deadline?.expired()) throw withCause(deadline.error(`waiting for ${this.where(request)}`), failure);
      const control = new TryControl(deadline, request.timeoutMs ?? this.options.tryTimeoutMs ?? 300_000);
      try {
        const res = await attempt(control);
        if (res.status < 300 || request.accept?.includes(res.status)) return res;
        failure = await this.statusFailure(request, res);
        control.dispose();
        if (res.status === 401 && refreshes < MAX_REFRESHES && (await this.options.authorizer?.refresh?.())) {
          // A token may have expired during a long wait; another try with a fresh one.
          refreshes++;
          n--;
          continue;
        }
      } catch (err) {
        control.dispose();
        if (!(err instanceof HttpError)) throw err;
        failure = err;
      }
      const elapsed = Date.now() - started;
      const delayMs = this.backoff(n, failure, elapsed);
      if (!failure.retriable || n >= maxAttempts || elapsed >= this.retry.maxTotalMs || (deadline && deadline.remainingMs() <= delayMs)) {
        throw this.describe(failure.gaveUp(n, elapsed));
      }
      this.options.onRetry?.({ attempt: n, delayMs, error: failure });
      this.options.debug?.(`retry ${n}/${maxAttempts - 1} in ${Math.round(delayMs)} ms: ${failure.message}`);
      await (deadline ? deadline.sleep(delayMs) : new Promise((resolve) => setTimeout(resolve, delayMs)));
    }
  }

  private backoff(n: number, failure: HttpError, elapsed: number): number {
    const jitter = Math.random() * Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (n - 1));
    return Math.min(Math.max(jitter, failure.retryAfterMs ?? 0), Math.max(0, this.retry.maxTotalMs - elapsed));
  }

  private async statusFailure(request: HttpRequest, res: { status: number; headers: http.IncomingHttpHeaders } & ({ body: Buffer } | { stream: Readable })): Promise<HttpError> {
    const body = 'body' in res ? res.body.subarray(0, ERROR_BODY_BYTES) : (await readHead(res.stream, ERROR_BODY_BYTES).catch(() => ({ data: Buffer.alloc(0) }))).data;
    const excerpt = bodyExcerpt(body);
    const viaProxy = this.route.forward !== undefined && res.status === 407;
    return new HttpError({
      kind: viaProxy ? 'proxy' : 'status',
      method: request.method,
      path: this.urlFor(request.path).pathname,
      host: this.host,
      status: res.status,
      code: viaProxy ? 'PROXY_AUTH' : undefined,
      detail: viaProxy ? `the proxy ${this.route.proxy} asks for credentials the agent did not give, or refused them (407)` : undefined,
      bodyText: excerpt.text || undefined,
      serviceCode: excerpt.serviceCode,
      retriable: RETRIABLE_STATUSES.has(res.status),
      retryAfterMs: parseRetryAfter(res.headers['retry-after']),
    });
  }

  /**
   * One try: resolves when the response headers are in. A body handed to the caller (`open`)
   * fails with the service's wording; one read here (`send`) with the HttpError, which may be retried.
   */
  private async once(request: HttpRequest, control: TryControl, handedOver: boolean): Promise<StreamResponse> {
    const url = this.urlFor(request.path);
    const headers: Record<string, string> = { 'User-Agent': request.userAgent ?? this.options.userAgent, Accept: '*/*', ...request.headers };
    if (this.options.authorizer) headers.Authorization = await this.options.authorizer.authorization();
    const body = request.body?.();
    if (Buffer.isBuffer(body)) headers['Content-Length'] = String(body.length);
    this.options.debug?.(`${request.method} ${url.pathname}${this.route.proxy ? ` (through ${this.route.proxy})` : ''}`);
    return new Promise<StreamResponse>((resolve, reject) => {
      const req = this.request(url, request.method, headers, control.signal);
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        if (body instanceof Readable) body.destroy();
        reject(this.failure(request, err, control));
      };
      req.setTimeout(this.idleTimeoutMs, () => req.destroy(coded(`no answer within ${Math.round(this.idleTimeoutMs / 1000)} s`, 'HTTP_IDLE_TIMEOUT')));
      req.on('error', fail);
      req.on('response', (res) => {
        settled = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, stream: this.guardBody(res, request, control, handedOver) });
      });
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        body.on('error', (err) => req.destroy(err));
        body.pipe(req);
      }
    });
  }

  private request(url: URL, method: string, headers: Record<string, string>, signal: AbortSignal): http.ClientRequest {
    const forward = this.route.forward;
    // `tunnelSignal` reaches the proxy tunnel's createConnection (network.ts), which Node's `signal` does not.
    const common = { method, agent: this.route.agent, signal, tunnelSignal: signal };
    if (!forward) return (url.protocol === 'https:' ? https : http).request(url, { ...common, headers });
    const proxied: Record<string, string> = { ...headers, Host: url.host };
    if (forward.authorization) proxied['Proxy-Authorization'] = forward.authorization;
    return (forward.secure ? https : http).request({ ...common, host: forward.host, port: forward.port, path: url.href, headers: proxied });
  }

  /**
   * Passes the body on, turning mid-body failures into errors: a reset, an idle socket, a body
   * shorter than its Content-Length (Node reports that as 'aborted'), the deadline.
   */
  private guardBody(res: http.IncomingMessage, request: HttpRequest, control: TryControl, handedOver: boolean): Readable {
    let done = false;
    const out = new Readable({
      read: () => res.resume(),
      // A caller that has what it needs destroys the body (e.g. the head of a file a server sent
      // whole): the connection goes with it, so the rest is not downloaded.
      destroy: (err, callback) => {
        done = true;
        control.dispose();
        if (!res.complete) res.destroy();
        callback(err);
      },
    });
    let received = 0;
    const expected = numericHeader(res.headers['content-length']);
    const fail = (err: Error) => {
      if (done) return;
      done = true;
      control.dispose();
      const failure = this.failure(request, err, control);
      out.destroy(handedOver ? this.describe(failure) : failure);
    };
    control.onAbort(() => res.destroy(coded('aborted', 'ABORT_ERR')));
    res.setTimeout(this.idleTimeoutMs, () => res.destroy(coded(`no data for ${Math.round(this.idleTimeoutMs / 1000)} s`, 'HTTP_IDLE_TIMEOUT')));
    res.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (!out.push(chunk)) res.pause();
    });
    res.on('aborted', () => fail(coded('the connection closed in the middle of the response', 'ECONNRESET')));
    res.on('error', (err) => fail(err));
    res.on('end', () => {
      if (done) return;
      if (expected !== undefined && received < expected && request.method !== 'HEAD') {
        fail(coded(`the body ended after ${received} of ${expected} bytes`, 'HTTP_TRUNCATED'));
        return;
      }
      done = true;
      control.dispose();
      out.push(null);
    });
    res.on('close', () => {
      if (!res.complete) fail(coded('the connection closed in the middle of the response', 'ECONNRESET'));
    });
    return out;
  }

  /** A socket, proxy or abort error as an HttpError, or the DeadlineError once the deadline passed. */
  private failure(request: HttpRequest, err: Error, control: TryControl): Error {
    const facts = { method: request.method, path: this.urlFor(request.path).pathname, host: this.host };
    if (control.reason === 'deadline' && this.options.deadline) return this.options.deadline.error(`waiting for ${this.where(request)}`);
    if (control.reason === 'timeout') {
      return new HttpError({ ...facts, kind: 'timeout', code: 'HTTP_REQUEST_TIMEOUT', retriable: true, detail: `no complete answer within ${Math.round(control.timeoutMs / 1000)} s` }, { cause: err });
    }
    if (err instanceof ProxyError) {
      return new HttpError({ ...facts, kind: 'proxy', code: err.code, status: err.status, detail: err.message, retriable: err.code === 'PROXY_TIMEOUT' }, { cause: err });
    }
    const code = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
    return new HttpError({ ...facts, kind: 'network', code, detail: err.message, retriable: RETRIABLE_CODES.has(code) }, { cause: err });
  }

  private describe(err: Error): Error {
    return err instanceof HttpError && this.options.describeError ? this.options.describeError(err) : err;
  }

  private tooLarge(request: HttpRequest, limitBytes: number): HttpError {
    return new HttpError({ kind: 'too-large', method: request.method, path: this.urlFor(request.path).pathname, host: this.host, code: 'HTTP_BODY_TOO_LARGE', limitBytes });
  }

  private where(request: HttpRequest): string {
    return `${request.method} ${this.urlFor(request.path).pathname} on ${this.host}`;
  }
}

/**
 * One try's abort: its overall limit, or the deadline, whichever comes first. Listeners on the
 * deadline's long-lived signal are removed when the try ends, so thousands of requests leave none.
 */
class TryControl {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private readonly onDeadline = () => this.abort('deadline');
  reason: 'deadline' | 'timeout' | undefined;

  constructor(
    private readonly deadline: Deadline | undefined,
    readonly timeoutMs: number,
  ) {
    this.timer = setTimeout(() => this.abort('timeout'), timeoutMs);
    deadline?.signal.addEventListener('abort', this.onDeadline, { once: true });
    if (deadline?.expired()) this.abort('deadline');
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  onAbort(listener: () => void): void {
    if (this.signal.aborted) listener();
    else this.signal.addEventListener('abort', listener, { once: true });
  }

  /** The try's own limit no longer applies (a streamed body); the deadline still does. */
  stopTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  dispose(): void {
    this.stopTimer();
    this.deadline?.signal.removeEventListener('abort', this.onDeadline);
  }

  private abort(reason: 'deadline' | 'timeout'): void {
    if (this.reason) return;
    this.reason = reason;
    this.controller.abort();
  }
}

function checkedBaseUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // Not echoed: a URL that does not parse may still hold credentials.
    throw new HttpError({ kind: 'url', method: 'GET', path: '/', host: '', code: 'HTTP_URL_INVALID', detail: 'the base URL is not a URL' });
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
    const detail = `Refusing to send credentials to ${url.protocol}//${url.host}: only https:// is allowed (plain http only for a loopback host)`;
    throw new HttpError({ kind: 'url', method: 'GET', path: '/', host: url.host, code: 'HTTP_URL_INSECURE', detail });
  }
  // Credentials in the URL would end up in messages; callers pass them through the authorizer.
  url.username = '';
  url.password = '';
  url.search = '';
  url.hash = '';
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

function coded(message: string, code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

function withCause<E extends Error>(err: E, cause: unknown): E {
  if (cause !== undefined) (err as { cause?: unknown }).cause = cause;
  return err;
}
