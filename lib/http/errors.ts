/**
 * The transport's one error: facts about a request that did not get a usable answer, never advice.
 * Each caller (the Kudu client, Azure Resource Manager, Microsoft Entra ID, the pipeline's OIDC
 * request) words its own message from these fields and keeps this error as its `cause`.
 *
 * @example
 *   try { await transport.send({ method: 'GET', path: 'api/vfs/' }); }
 *   catch (err) {
 *     if (err instanceof HttpError && err.status === 403) throw new MyError(`... ${err.bodyText}`, { cause: err });
 *   }
 */
import { cleanText } from '../text';

export type HttpErrorKind =
  | 'status' // an answer with a status the caller did not accept
  | 'network' // no (complete) answer: DNS, refused, reset, idle, a body cut short
  | 'timeout' // one try took longer than its overall limit
  | 'too-large' // a body longer than the caller's limit
  | 'proxy' // the agent's proxy refused to connect us (407, 403, 502 to CONNECT)
  | 'url'; // refused before sending anything: not a URL, or plain http to a remote host

export interface HttpErrorFacts {
  kind: HttpErrorKind;
  method: string;
  /** Path without the query (which may carry arguments), as sent. */
  path: string;
  host: string;
  status?: number;
  /** Node's error code (ECONNRESET, ENOTFOUND, CERT_HAS_EXPIRED, ...) or one of this module's. */
  code?: string;
  /** What the body said, cleaned and cut to a few hundred characters (see `bodyExcerpt`). */
  bodyText?: string;
  /** The code the service put in its error body (ARM's `error.code`, Entra's `error`, ...). */
  serviceCode?: string;
  /** Tries made, the last included. */
  attempts?: number;
  elapsedMs?: number;
  retriable?: boolean;
  /** Retry-After of the answer, in milliseconds. */
  retryAfterMs?: number;
  /** For `too-large`: the limit that was crossed. */
  limitBytes?: number;
  /** A short account of what happened, from the socket's or parser's error. */
  detail?: string;
}

export class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly kind: HttpErrorKind;
  readonly method: string;
  readonly path: string;
  readonly host: string;
  readonly status?: number;
  readonly code?: string;
  readonly bodyText?: string;
  readonly serviceCode?: string;
  readonly retriable: boolean;
  readonly retryAfterMs?: number;
  readonly limitBytes?: number;
  readonly detail?: string;
  attempts: number;
  elapsedMs: number;

  constructor(facts: HttpErrorFacts, options?: { cause?: unknown }) {
    super(describe(facts), options);
    this.kind = facts.kind;
    this.method = facts.method;
    this.path = facts.path;
    this.host = facts.host;
    this.status = facts.status;
    this.code = facts.code;
    this.bodyText = facts.bodyText;
    this.serviceCode = facts.serviceCode;
    this.retriable = facts.retriable === true;
    this.retryAfterMs = facts.retryAfterMs;
    this.limitBytes = facts.limitBytes;
    this.detail = facts.detail;
    this.attempts = facts.attempts ?? 1;
    this.elapsedMs = facts.elapsedMs ?? 0;
  }

  /** `GET /api/vfs/x on host` */
  get where(): string {
    return `${this.method} ${this.path} on ${this.host}`;
  }

  /** ` (gave up after 5 tries in 42 s)` when more than one try was made, else ''. */
  get triesText(): string {
    return this.attempts > 1 ? ` (gave up after ${this.attempts} tries in ${Math.round(this.elapsedMs / 1000)} s)` : '';
  }

  /** Records the tries behind this error (the transport calls it when it gives up). */
  gaveUp(attempts: number, elapsedMs: number): this {
    this.attempts = attempts;
    this.elapsedMs = elapsedMs;
    if (attempts > 1) this.message = describe(this) + this.triesText;
    return this;
  }
}

function describe(f: HttpErrorFacts): string {
  const where = `${f.method} ${f.path} on ${f.host}`;
  switch (f.kind) {
    case 'status':
      return `${where} answered ${f.status}${f.bodyText ? `: ${f.bodyText}` : ''}`;
    case 'too-large':
      return `${where} sent more than ${f.limitBytes} bytes, the most this request reads`;
    case 'timeout':
      return `${where} did not complete: ${f.detail ?? 'no complete answer in time'}`;
    case 'proxy':
      return `${where}: the proxy refused the connection: ${f.detail ?? f.status ?? ''}`.trim();
    case 'url':
      return f.detail ?? `${where}: not a URL this transport may use`;
    default:
      return `${where} failed: ${[f.code, f.detail].filter(Boolean).join(' ')}`.trim();
  }
}

/** Statuses that a later try may not get: throttling, and a front end or SCM site restarting. */
export const RETRIABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

/** Socket and DNS errors worth retrying. ENOTFOUND is not: a wrong host name stays wrong. */
export const RETRIABLE_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'ERR_STREAM_PREMATURE_CLOSE',
  'HTTP_IDLE_TIMEOUT',
  'HTTP_TRUNCATED',
  'HTTP_REQUEST_TIMEOUT',
]);

/**
 * What an error body says, short and safe to print: the message of the JSON shapes our services
 * use (Kudu's `Message`/`ExceptionMessage`, ARM's `error.message`, Entra's `error_description`,
 * Azure DevOps' `message`), else the text with its whitespace folded; HTML reduced to its text.
 * Cleaned of control characters and pipeline commands (lib/text), at most `max` characters.
 */
export function bodyExcerpt(body: Buffer | string, max = 500): { text: string; serviceCode?: string } {
  const raw = (Buffer.isBuffer(body) ? body.toString('utf8') : body).trim();
  if (!raw) return { text: '' };
  const json = parseJson(raw);
  if (json) {
    const error = typeof json.error === 'object' && json.error !== null ? (json.error as Record<string, unknown>) : undefined;
    const message = firstString(json.ExceptionMessage, json.Message, json.message, error?.message, json.error_description);
    const code = firstString(error?.code, json.Code, typeof json.error === 'string' ? json.error : undefined, json.typeKey);
    if (message || code) return { text: cleanText(oneLine(message ?? code ?? ''), max), serviceCode: code ? cleanText(code, 100) : undefined };
  }
  const text = /^<(!doctype|html|head|body|h1|p)\b/i.test(raw) ? htmlText(raw) : raw;
  return { text: cleanText(oneLine(text), max) };
}

function parseJson(text: string): Record<string, unknown> | undefined {
  if (!/^[{]/.test(text)) return undefined;
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function firstString(...values: unknown[]): string | undefined {
  return values.find((v): v is string => typeof v === 'string' && v.trim() !== '');
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** An HTML error page's words, without its markup, scripts and styles. */
function htmlText(html: string): string {
  return html
    .replace(/<(script|style)\b[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&nbsp;/g, ' ')
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'");
}

/** Node's codes for a certificate that does not verify. */
const CERTIFICATE_CODES = /^(UNABLE_TO_|SELF_SIGNED_CERT|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH)/;

/**
 * Why a request got no answer, as a clause any service's message can end with: the proxy, a
 * certificate the agent does not trust, a name that does not resolve, a refused or broken
 * connection, a try that ran out of time.
 */
export function connectionProblem(err: HttpError): string {
  const code = err.code ?? '';
  if (err.kind === 'proxy') {
    return `${err.detail ?? 'the proxy refused the connection'}. Check the agent's proxy settings (its URL, user name and password, and bypass list).`;
  }
  if (err.kind === 'timeout') return `${err.detail ?? 'no complete answer in time'}.`;
  if (err.kind === 'too-large') return `the answer was longer than ${err.limitBytes} bytes, more than such an answer can be; it was not read.`;
  if (CERTIFICATE_CODES.test(code)) {
    return (
      `the TLS certificate of ${err.host} is not trusted (${code}: ${err.detail ?? ''}). If a company proxy or certificate authority signs it, ` +
      `give the agent that authority's certificate (the agent's --sslcacert setting, which tasks read as Agent.CAInfo).`
    );
  }
  switch (code) {
    case 'ENOTFOUND':
      return `the host name '${err.host.replace(/:\d+$/, '')}' could not be resolved.`;
    case 'ECONNREFUSED':
      return `the connection was refused.`;
    case 'HTTP_IDLE_TIMEOUT':
    case 'ETIMEDOUT':
    case 'ESOCKETTIMEDOUT':
      return `${err.host} stopped answering: ${err.detail ?? code}.`;
    default:
      return `${[code, err.detail].filter(Boolean).join(' ')}.`;
  }
}
