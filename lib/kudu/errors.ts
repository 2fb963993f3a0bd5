/**
 * Errors from Kudu that a pipeline user can act on: each message says what happened, on which
 * host and path, and what to do about it, worded from the transport's facts (lib/http HttpError,
 * kept as `cause`). No message ever carries a credential.
 */
import { connectionProblem, HttpError } from '../http';

export type KuduErrorKind =
  | 'auth' // 401
  | 'forbidden' // 403
  | 'not-found' // 404
  | 'conflict' // 409
  | 'http' // any other unexpected status
  | 'network' // no HTTP answer: DNS, refused, reset, timeout, proxy, certificate
  | 'too-large' // an answer longer than we read
  | 'invalid' // an answer we cannot use: not JSON, a name that is not a name, a listing that loops
  | 'insecure'; // refused before sending anything

/** Why App Service or Kudu answered 403, from what it said. */
export type ForbiddenReason = 'ip-restricted' | 'app-stopped' | 'permission';

export interface KuduErrorDetails {
  status?: number;
  code?: string;
  method?: string;
  path?: string;
  host?: string;
  /** What the body said, cleaned and short. */
  body?: string;
  retriable?: boolean;
  /** For a 403. */
  reason?: ForbiddenReason;
}

export class KuduError extends Error {
  override readonly name = 'KuduError';
  constructor(
    message: string,
    readonly kind: KuduErrorKind,
    readonly details: KuduErrorDetails = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get status(): number | undefined {
    return this.details.status;
  }

  /** Worth trying again later (the poller keeps going through these until its deadline). */
  get retriable(): boolean {
    return this.details.retriable === true;
  }
}

/** Who was asking, for the messages about 401 and 403. */
export interface CredentialFacts {
  kind: 'basic' | 'bearer';
  description: string;
}

/** The transport's facts in Kudu's words. */
export function kuduError(err: HttpError, credential: CredentialFacts): KuduError {
  const details: KuduErrorDetails = {
    status: err.status,
    code: err.code ?? err.serviceCode,
    method: err.method,
    path: err.path,
    host: err.host,
    body: err.bodyText,
    retriable: err.retriable,
  };
  const where = `${err.method} ${err.path} on ${err.host}`;
  const tries = err.triesText;
  const said = err.bodyText ? ` ${err.bodyText}` : '';
  if (err.kind === 'too-large') {
    return new KuduError(`Kudu's answer to ${where} is larger than ${err.limitBytes} bytes, more than such an answer can be; refusing to read it.`, 'too-large', details, { cause: err });
  }
  if (err.kind === 'url') return new KuduError(`${err.detail}. Use the app's SCM URL, like https://<app>.scm.azurewebsites.net/.`, 'insecure', details, { cause: err });
  if (err.kind !== 'status') return new KuduError(unreachable(err), 'network', details, { cause: err });
  switch (err.status) {
    case 401:
      return new KuduError(unauthorized(credential, where), 'auth', details, { cause: err });
    case 403:
      return forbidden(err, credential, details);
    case 404:
      return new KuduError(`Not found: ${err.path} on ${err.host} (404).${said}`, 'not-found', details, { cause: err });
    case 409:
      return new KuduError(`Kudu answered 409 Conflict to ${where}: ${err.bodyText || '(no message)'}`, 'conflict', details, { cause: err });
    default:
      return new KuduError(
        `Kudu answered ${err.status} to ${where}.${said}${tries}` + (err.retriable ? ' The SCM site may be restarting or overloaded; try again later.' : ''),
        'http',
        details,
        { cause: err },
      );
  }
}

function unreachable(err: HttpError): string {
  const where = `${err.method} ${err.path}`;
  if (err.code === 'ENOTFOUND') {
    return (
      `Could not resolve the host name '${err.host.replace(/:\d+$/, '')}' (${where}). Check the URL of the service connection: ` +
      `it should be the app's SCM site, like https://<app>.scm.azurewebsites.net/.`
    );
  }
  if (err.code === 'ECONNREFUSED') return `Could not connect to ${err.host}: the connection was refused (${where}).${err.triesText}`;
  return `Could not reach Kudu (${where} on ${err.host}): ${connectionProblem(err)}${err.triesText}`;
}

function unauthorized(credential: CredentialFacts, where: string): string {
  if (credential.kind === 'bearer') {
    return (
      `Kudu refused ${credential.description} (401 Unauthorized, ${where}). The token is not accepted for this app: it may have expired, ` +
      `or be for another tenant or audience. With an Azure Resource Manager service connection, check that the app is in the connection's tenant; ` +
      `with a Generic connection, put a current token in its password field.`
    );
  }
  return (
    `Kudu refused the ${credential.description} (401 Unauthorized, ${where}). ` +
    `Check the user name and password in the service connection: they are the app's publishing credentials ` +
    `(Deployment Center > FTPS credentials, or the publish profile). If they are right, SCM basic-auth publishing ` +
    `is probably disabled on the app, which is the default for new apps: enable "SCM Basic Auth Publishing Credentials" ` +
    `under Configuration > General settings, or use an Azure Resource Manager service connection.`
  );
}

/**
 * The three 403s a pipeline meets, told apart by what was answered: App Service's front end
 * blocking the agent's address ("Ip Forbidden", or its "Error 403 - Forbidden ... has blocked your
 * access" page), the app being stopped ("Error 403 - This web app is stopped."), and Kudu refusing
 * an identity without the publish permission.
 */
export function forbiddenReason(bodyText: string | undefined): ForbiddenReason {
  const text = bodyText ?? '';
  if (/\bip forbidden\b|has blocked your access|\bip address\b.*\b(denied|blocked|not allowed)\b/i.test(text)) return 'ip-restricted';
  if (/\b(web app|site|app) is (stopped|disabled)\b/i.test(text)) return 'app-stopped';
  return 'permission';
}

function forbidden(err: HttpError, credential: CredentialFacts, details: KuduErrorDetails): KuduError {
  const reason = forbiddenReason(err.bodyText);
  const said = err.bodyText ? `: ${err.bodyText}` : '';
  const where = `${err.method} ${err.path} on ${err.host}`;
  let message: string;
  switch (reason) {
    case 'ip-restricted':
      message =
        `The app's SCM site refused this agent's address (403 Forbidden, ${where}${said}). Its access restrictions do not let the agent in. ` +
        `In the Azure portal: the app > Networking > Access restrictions > Advanced tool site, allow the agent's outbound IP address ` +
        `(Microsoft-hosted agents have no fixed address: use a self-hosted agent with one, or a rule for the AzureCloud service tag).`;
      break;
    case 'app-stopped':
      message =
        `The app is stopped, so its SCM site takes no requests (403 Forbidden, ${where}${said}). ` +
        `Start it (Azure portal > the app > Start). If it was not stopped by hand, a spending limit or the Free/Shared plan's quota disabled it: check the subscription and the app's quotas.`;
      break;
    default:
      message =
        `Kudu denied access (403 Forbidden, ${where}${said}) with ${credential.description}. ` +
        `The identity needs the Website Contributor role (or Microsoft.Web/sites/publish/Action) on the app` +
        (credential.kind === 'bearer' ? '.' : `; with publishing credentials, SCM basic-auth publishing may be disabled on the app.`);
  }
  return new KuduError(message, 'forbidden', { ...details, reason }, { cause: err });
}
