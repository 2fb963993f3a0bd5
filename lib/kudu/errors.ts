/**
 * Errors from Kudu that a pipeline user can act on: each message says what happened, on which
 * host and path, and what to do about it. No message ever carries a credential.
 */
export type KuduErrorKind =
  | 'auth' // 401
  | 'forbidden' // 403
  | 'not-found' // 404
  | 'conflict' // 409
  | 'http' // any other unexpected status
  | 'network' // no HTTP answer: DNS, refused, reset, timeout
  | 'insecure'; // refused before sending anything

export class KuduError extends Error {
  override readonly name = 'KuduError';
  constructor(
    message: string,
    readonly kind: KuduErrorKind,
    readonly details: {
      status?: number;
      code?: string;
      method?: string;
      path?: string;
      host?: string;
      body?: string;
      retriable?: boolean;
    } = {},
  ) {
    super(message);
  }

  get status(): number | undefined {
    return this.details.status;
  }

  /** Worth trying again later (the poller keeps going through these until its deadline). */
  get retriable(): boolean {
    return this.details.retriable === true;
  }
}

/** Statuses Kudu or App Service's front end send when a later try may work. */
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
  'KUDU_IDLE_TIMEOUT',
  'KUDU_TRUNCATED',
]);

export function statusError(
  status: number,
  method: string,
  path: string,
  host: string,
  credentialDescription: string,
  body: string,
  credentialKind: 'basic' | 'bearer' = 'basic',
): KuduError {
  const where = `${method} ${path} on ${host}`;
  const details = { status, method, path, host, body, retriable: RETRIABLE_STATUSES.has(status) };
  const bodyText = summariseBody(body);
  switch (status) {
    case 401:
      if (credentialKind === 'bearer') {
        return new KuduError(
          `Kudu refused ${credentialDescription} (401 Unauthorized, ${where}). The token is not accepted for this app: it may have expired, ` +
            `or be for another tenant or audience. With an Azure Resource Manager service connection, check that the app is in the connection's tenant; ` +
            `with a Generic connection, put a current token in its password field.`,
          'auth',
          details,
        );
      }
      return new KuduError(
        `Kudu refused the ${credentialDescription} (401 Unauthorized, ${where}). ` +
          `Check the user name and password in the service connection: they are the app's publishing credentials ` +
          `(Deployment Center > FTPS credentials, or the publish profile). If they are right, SCM basic-auth publishing ` +
          `is probably disabled on the app, which is the default for new apps: enable "SCM Basic Auth Publishing Credentials" ` +
          `under Configuration > General settings, or use an Azure Resource Manager service connection.`,
        'auth',
        details,
      );
    case 403:
      return new KuduError(
        `Kudu denied access (403 Forbidden, ${where}) with ${credentialDescription}. ` +
          `The identity needs the Website Contributor role (or Microsoft.Web/sites/publish/Action) on the app` +
          (credentialKind === 'bearer' ? '.' : `; with publishing credentials, SCM basic-auth publishing may be disabled on the app.`),
        'forbidden',
        details,
      );
    case 404:
      return new KuduError(`Not found: ${path} on ${host} (404).${bodyText ? ' ' + bodyText : ''}`, 'not-found', details);
    case 409:
      return new KuduError(`Kudu answered 409 Conflict to ${where}: ${bodyText || '(no message)'}`, 'conflict', details);
    default:
      return new KuduError(
        `Kudu answered ${status} to ${where}.${bodyText ? ' ' + bodyText : ''}` +
          (RETRIABLE_STATUSES.has(status) ? ' The SCM site may be restarting or overloaded; try again later.' : ''),
        'http',
        details,
      );
  }
}

export function networkError(err: NodeJS.ErrnoException, method: string, path: string, host: string): KuduError {
  const code = err.code ?? 'EUNKNOWN';
  const details = { code, method, path, host, retriable: RETRIABLE_CODES.has(code) };
  switch (code) {
    case 'ENOTFOUND':
      return new KuduError(
        `Could not resolve the host name '${host}' (${method} ${path}). Check the URL of the service connection: ` +
          `it should be the app's SCM site, like https://<app>.scm.azurewebsites.net/.`,
        'network',
        details,
      );
    case 'ECONNREFUSED':
      return new KuduError(`Could not connect to ${host}: the connection was refused (${method} ${path}).`, 'network', details);
    case 'KUDU_IDLE_TIMEOUT':
    case 'ETIMEDOUT':
    case 'ESOCKETTIMEDOUT':
      return new KuduError(`${host} stopped answering (${method} ${path}): ${err.message}`, 'network', details);
    default:
      return new KuduError(`The connection to ${host} failed (${method} ${path}): ${code} ${err.message}`.trim(), 'network', details);
  }
}

/** Kudu's error bodies are plain text or `{"Message": "..."}`; keep them short in our messages. */
export function summariseBody(body: string): string {
  const text = body.trim();
  if (!text) return '';
  try {
    const json = JSON.parse(text) as { Message?: string; message?: string; ExceptionMessage?: string };
    const message = json.ExceptionMessage ?? json.Message ?? json.message;
    if (typeof message === 'string') return message.slice(0, 500);
  } catch {
    // Plain text.
  }
  return text.replace(/\s+/g, ' ').slice(0, 500);
}
