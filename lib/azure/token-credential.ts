/**
 * Microsoft Entra ID access tokens for an Azure Resource Manager service connection, obtained
 * with MSAL (@azure/msal-node): a service principal with a secret or a certificate, workload
 * identity federation (the pipeline's OIDC token as a client assertion), or a managed identity.
 *
 * MSAL does the protocol: authority metadata, the signed certificate assertion, the managed
 * identity endpoints, Entra's error format. This module adds what a pipeline task needs on top:
 * every token goes to an `onSecret` hook before anything else sees it, a cache renews tokens
 * before they expire (a WebJob wait can outlast a token), and errors say what to fix.
 *
 * @example
 *   const source = entraTokenSource({ kind: 'secret', tenantId, clientId, secret }, { authorityHost, onSecret: tl.setSecret });
 *   const arm = new TokenCache(source, 'https://management.azure.com/.default');
 *   const { token } = await arm.get();
 */
import * as crypto from 'node:crypto';
import { AuthError, ConfidentialClientApplication, LogLevel, ManagedIdentityApplication, type Configuration } from '@azure/msal-node';
import { DeadlineError } from '../deadline';
import { connectionProblem, HttpError, HttpTransport, type HttpContext } from '../http';
import type { KuduCredential } from '../kudu/credentials';
import { cleanText } from '../text';
import { msalNetwork } from './msal-network';

/** The identity of the service connection, as its authentication scheme describes it. */
export type EntraAuth =
  | { kind: 'secret'; tenantId: string; clientId: string; secret: string }
  | { kind: 'certificate'; tenantId: string; clientId: string; pem: string }
  | { kind: 'federated'; tenantId: string; clientId: string; assertion: () => Promise<string> }
  | { kind: 'managedIdentity'; clientId?: string };

export interface TokenSourceOptions {
  /** The cloud's login host from the service connection, e.g. `https://login.microsoftonline.com/`. */
  authorityHost: string;
  /** Gets every token before it is returned, so the caller can mask it in the pipeline log. */
  onSecret: (value: string) => void;
  debug?: (message: string) => void;
  /** The run's proxy, certificates and deadline for MSAL's requests; MSAL's own client without. */
  http?: HttpContext;
}

export interface AccessToken {
  token: string;
  expiresOnMs: number;
  obtainedAtMs: number;
}

export interface TokenSource {
  /** Who the tokens are for, for messages: `service principal '1b2c…' (client secret)`. */
  readonly description: string;
  /** A new token from Entra for a scope such as `https://management.azure.com/.default`; never cached here. */
  getToken(scope: string): Promise<AccessToken>;
  /** Releases the connections MSAL's requests kept open. */
  close?(): void;
}

export class EntraError extends Error {
  override readonly name = 'EntraError';
  constructor(
    message: string,
    /** Entra's error (`invalid_client`) with its AADSTS number when there is one. */
    readonly code: string | undefined,
    readonly scope: string,
    /** True when Entra answered and said no; false for network and configuration errors. */
    readonly refused: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function describeAuth(auth: EntraAuth): string {
  switch (auth.kind) {
    case 'secret':
      return `service principal '${auth.clientId}' (client secret)`;
    case 'certificate':
      return `service principal '${auth.clientId}' (certificate)`;
    case 'federated':
      return `service principal '${auth.clientId}' (workload identity federation)`;
    case 'managedIdentity':
      return auth.clientId ? `the managed identity '${auth.clientId}'` : "the agent's system-assigned managed identity";
  }
}

export function entraTokenSource(auth: EntraAuth, options: TokenSourceOptions): TokenSource {
  const description = describeAuth(auth);
  const network = options.http ? msalNetwork(options.http) : undefined;
  const managed = auth.kind === 'managedIdentity';
  const system = {
    // Warnings and errors only, without personal data: MSAL never logs tokens or secrets, and
    // nothing at these levels is noise in a pipeline's debug log.
    loggerOptions: {
      loggerCallback: (_level: LogLevel, message: string) => options.debug?.(`MSAL: ${message}`),
      piiLoggingEnabled: false,
      logLevel: LogLevel.Warning,
    },
    networkClient: network?.client,
    // lib/http retries already; MSAL's managed identity retries would multiply them.
    disableInternalRetries: network !== undefined,
  };
  const reach = managed ? "the agent machine's managed identity endpoint" : `Microsoft Entra ID at ${options.authorityHost}`;
  const acquire = msalAcquirer(auth, options.authorityHost, system);
  return {
    description,
    close: () => network?.close(),
    async getToken(scope) {
      const obtainedAtMs = Date.now();
      let result: { accessToken: string; expiresOn: Date | null } | null;
      if (network) network.lastFailure = undefined;
      try {
        result = await acquire(scope);
      } catch (err) {
        throw entraError(err, { who: description, scope, reach, managed, lastFailure: network?.lastFailure });
      }
      if (!result?.accessToken) throw new EntraError(`Microsoft Entra ID sent no token for ${description} (${scope}).`, undefined, scope, true);
      options.onSecret(result.accessToken);
      // Without an expiry, assume a short life so the token is renewed soon rather than too late.
      const expiresOnMs = result.expiresOn?.getTime() ?? obtainedAtMs + 10 * 60_000;
      options.debug?.(`Got a token for ${scope}, valid for ${Math.round((expiresOnMs - obtainedAtMs) / 1000)} s.`);
      return { token: result.accessToken, expiresOnMs, obtainedAtMs };
    },
  };
}

type Acquire = (scope: string) => Promise<{ accessToken: string; expiresOn: Date | null } | null>;

/** The MSAL application for the identity, as a function from scope to MSAL's result. */
function msalAcquirer(auth: EntraAuth, authorityHost: string, system: NonNullable<Configuration['system']>): Acquire {
  if (auth.kind === 'managedIdentity') {
    const app = new ManagedIdentityApplication({
      managedIdentityIdParams: auth.clientId ? { userAssignedClientId: auth.clientId } : undefined,
      system,
    });
    // forceRefresh: TokenCache decides when a token is renewed, not MSAL's own cache.
    return (scope) => app.acquireToken({ resource: scope.replace(/\/\.default$/, ''), forceRefresh: true });
  }
  const authority = new URL(encodeURIComponent(auth.tenantId), withSlash(authorityHost)).toString();
  const config: Configuration = {
    // Listing the host as known spares a call to login.microsoftonline.com's instance discovery,
    // which sovereign clouds and Azure Stack do not need.
    auth: { clientId: auth.clientId, authority, knownAuthorities: [new URL(authority).host] },
    system,
  };
  if (auth.kind === 'secret') config.auth.clientSecret = auth.secret;
  else if (auth.kind === 'certificate') config.auth.clientCertificate = certificateCredential(auth.pem);
  // A callback, so each token request gets a fresh OIDC token: the pipeline's expire in minutes.
  else config.auth.clientAssertion = () => auth.assertion();
  const app = new ConfidentialClientApplication(config);
  return (scope) => app.acquireTokenByClientCredential({ scopes: [scope], skipCache: true });
}

/** When a token is due for renewal: 5 minutes before it expires, or halfway through a shorter life. */
export function renewalDue(token: AccessToken, now = Date.now()): boolean {
  const margin = Math.min(5 * 60_000, (token.expiresOnMs - token.obtainedAtMs) / 2);
  return now >= token.expiresOnMs - margin;
}

/**
 * One scope's token, renewed before it expires. Concurrent callers share one request to Entra.
 * If a renewal fails while the old token still has a while to live, the old one is used.
 */
export class TokenCache {
  private current: AccessToken | undefined;
  private pending: Promise<AccessToken> | undefined;
  /** The current token was fetched because a server refused the one before. */
  private forced = false;

  constructor(
    readonly source: TokenSource,
    readonly scope: string,
    private readonly debug?: (message: string) => void,
  ) {}

  async get(): Promise<AccessToken> {
    if (this.current && !renewalDue(this.current)) return this.current;
    try {
      return await this.fetch(false);
    } catch (err) {
      const old = this.current;
      if (old && old.expiresOnMs - Date.now() > 30_000) {
        this.debug?.(`Renewing the token for ${this.scope} failed; the current one is still valid: ${(err as Error).message}`);
        return old;
      }
      throw err;
    }
  }

  /** A new token now, whatever the age of the cached one (after a 401). */
  renew(): Promise<AccessToken> {
    return this.fetch(true);
  }

  /** True when the current token came fresh from Entra after a refusal less than a minute ago. */
  get justRenewed(): boolean {
    return this.forced && this.current !== undefined && Date.now() - this.current.obtainedAtMs < 60_000;
  }

  private fetch(forced: boolean): Promise<AccessToken> {
    this.pending ??= this.source.getToken(this.scope).then(
      (token) => {
        this.current = token;
        this.forced = forced;
        this.pending = undefined;
        return token;
      },
      (err: unknown) => {
        this.pending = undefined;
        throw err;
      },
    );
    return this.pending;
  }
}

/**
 * A Kudu-transport credential over one scope's tokens: renewed before expiry, and once more after
 * a 401 (a second 401 with a token fresh from Entra is not a matter of age).
 */
export function tokenCredential(cache: TokenCache, description: string): KuduCredential {
  return {
    kind: 'bearer',
    description,
    secrets: [],
    authorization: async () => `Bearer ${(await cache.get()).token}`,
    refresh: async () => {
      if (cache.justRenewed) return false;
      await cache.renew();
      return true;
    },
  };
}

/** `https://management.azure.com/` → `https://management.azure.com/.default`. */
export function scopeFor(resourceUrl: string): string {
  return new URL(resourceUrl).origin + '/.default';
}

export interface PipelineOidcOptions {
  /** `System.OidcRequestUri`: the job's OIDC token endpoint in Azure DevOps. */
  requestUri: string;
  /** `System.AccessToken`, which the endpoint wants as a bearer token. */
  systemAccessToken: string;
  serviceConnectionId: string;
  /** User-Agent, proxy, certificates and deadline. */
  http: HttpContext;
  onSecret: (value: string) => void;
}

/**
 * The client assertion for workload identity federation: an OIDC token Azure DevOps issues for
 * this job and service connection (the same request Azure Identity's AzurePipelinesCredential
 * makes). One plain HTTP call; azure-devops-node-api's createOidcToken would add a large
 * dependency for it.
 */
export function pipelineAssertion(options: PipelineOidcOptions): () => Promise<string> {
  return async () => {
    const url = new URL(options.requestUri);
    url.searchParams.set('api-version', '7.1');
    url.searchParams.set('serviceConnectionId', options.serviceConnectionId);
    const transport = new HttpTransport({
      ...options.http,
      baseUrl: url.origin + '/',
      authorizer: { authorization: async () => `Bearer ${options.systemAccessToken}` },
      retry: { maxAttempts: 3, baseDelayMs: 2000 },
    });
    const where = `${url.host}${url.pathname}`;
    try {
      const res = await transport.send({
        method: 'POST',
        path: url.pathname + url.search,
        // Suppress: answer 401 instead of redirecting to a sign-in page.
        headers: { 'Content-Type': 'application/json', 'X-TFS-FedAuthRedirect': 'Suppress' },
        body: () => Buffer.alloc(0),
        idempotent: true,
        maxBodyBytes: 256 * 1024,
      });
      let token: unknown;
      try {
        token = (JSON.parse(res.body.toString('utf8')) as { oidcToken?: unknown }).oidcToken;
      } catch {
        token = undefined;
      }
      if (typeof token !== 'string' || !token) {
        throw new EntraError(`Azure DevOps sent no OIDC token (${res.status} from ${where}).`, 'oidc_empty', '', true);
      }
      options.onSecret(token);
      return token;
    } catch (err) {
      if (err instanceof HttpError) throw oidcError(err, where);
      throw err;
    } finally {
      transport.close();
    }
  };
}

/** The OIDC request's failure in Azure DevOps' terms. */
function oidcError(err: HttpError, where: string): EntraError {
  if (err.kind === 'status' && err.status !== undefined && err.status < 500 && !err.retriable) {
    return new EntraError(
      `Azure DevOps refused to issue the pipeline's OIDC token for workload identity federation (${err.status} from ${where}): ` +
        `${err.bodyText || '(no message)'}. Check that this pipeline is allowed to use the service connection.`,
      `oidc_${err.status}`,
      '',
      true,
      { cause: err },
    );
  }
  const what = err.kind === 'status' ? `Azure DevOps answered ${err.status}${err.bodyText ? `: ${err.bodyText}` : ''}.` : connectionProblem(err);
  return new EntraError(`Could not get the pipeline's OIDC token from ${where}: ${what}${err.triesText}`, 'oidc_network', '', false, { cause: err });
}

/** Entra's answers that a user can fix, by AADSTS number. */
const ENTRA_HINTS: Record<string, string> = {
  '7000215': 'The client secret in the service connection is wrong: edit the service connection and enter the current secret.',
  '7000222': "The service principal's client secret has expired: create a new one and update the service connection.",
  '700016': 'The app registration was not found in the tenant: check the service connection\'s tenant ID and service principal (client) ID.',
  '90002': "The tenant was not found: check the service connection's tenant ID.",
  '900023': "The tenant ID is not valid: check the service connection's tenant ID.",
  '700027': "The certificate is not registered on the app registration: upload the service connection's certificate under Certificates & secrets.",
  '700024': 'The client assertion is outside its valid time range: check the agent clock.',
  '70021':
    "No federated credential on the app registration matches this pipeline: its issuer and subject must be the ones shown on the service connection's page in Azure DevOps.",
  '700213':
    "No federated credential on the app registration matches this pipeline: its issuer and subject must be the ones shown on the service connection's page in Azure DevOps.",
  '7000112': 'The app registration is disabled.',
  '500011': 'The resource is not available in this tenant.',
};

interface FailureContext {
  who: string;
  scope: string;
  /** Where tokens come from, for messages: Entra at its host, or the managed identity endpoint. */
  reach: string;
  managed: boolean;
  /** What MSAL's last request through lib/http ran into (MSAL may have swallowed it). */
  lastFailure?: Error;
}

function entraError(err: unknown, context: FailureContext): Error {
  const { who, scope } = context;
  if (err instanceof EntraError) return err;
  // MSAL wraps an error thrown by the client-assertion callback or the network client; the inner one says more.
  const cause = (err as { cause?: unknown } | undefined)?.cause;
  if (cause instanceof EntraError || cause instanceof DeadlineError) return cause;
  if (err instanceof AuthError) {
    const text = (err.errorMessage || err.message || '').trim();
    const number = /AADSTS(\d+)/.exec(text)?.[1];
    const unreachable = !number && /network|endpoints_resolution|openid_config|unable_to_load/i.test(err.errorCode);
    const failure = cause instanceof HttpError ? cause : unreachable ? context.lastFailure : undefined;
    if (failure instanceof DeadlineError) return failure;
    if (failure instanceof HttpError) return transportFailure(failure, context);
    if (unreachable) {
      return new EntraError(
        `Could not reach ${context.reach} to get a token for ${who} (${err.errorCode}): ${firstLine(text)}` + (context.managed ? MANAGED_HINT : ''),
        err.errorCode,
        scope,
        false,
        { cause: err },
      );
    }
    return refusal(err, text, number, context);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new EntraError(`Could not get a token for ${who} (scope ${scope}): ${message}`, undefined, scope, false, { cause: err });
}

const MANAGED_HINT = ' A managed identity connection works only on agents that run on Azure VMs or scale sets with that identity assigned.';

/** A request to Entra or the managed identity endpoint that got no usable answer. */
function transportFailure(failure: HttpError, context: FailureContext): EntraError {
  const problem = failure.kind === 'status' ? `it answered ${failure.status}${failure.bodyText ? `: ${failure.bodyText}` : ''}.` : connectionProblem(failure);
  return new EntraError(
    `Could not get a token for ${context.who} from ${context.reach}: ${problem}${failure.triesText}` + (context.managed && failure.kind !== 'status' ? MANAGED_HINT : ''),
    failure.code ?? `http_${failure.status}`,
    context.scope,
    false,
    { cause: failure },
  );
}

/** Entra answered and said no: its code and description, and what to fix. */
function refusal(err: AuthError, text: string, number: string | undefined, context: FailureContext): EntraError {
  const code = number ? `${err.errorCode} (AADSTS${number})` : err.errorCode;
  const hint =
    (number && ENTRA_HINTS[number]) ||
    (context.managed
      ? 'Check that the agent runs on an Azure VM or scale set with this managed identity assigned, and the client ID in the service connection.'
      : 'Check the service connection (Project settings > Service connections) and its identity in Microsoft Entra ID.');
  return new EntraError(
    `Microsoft Entra ID refused a token for ${context.who} (scope ${context.scope}): ${code}: ${firstLine(text)} ${hint}`,
    code,
    context.scope,
    err.errorCode !== 'network_error',
    { cause: err },
  );
}

/** Entra's descriptions run on with trace and correlation ids on later lines; keep the sentence. */
function firstLine(text: string): string {
  return cleanText(text.split(/\r?\n/)[0].trim(), 600);
}

function withSlash(url: string): string {
  return url.endsWith('/') ? url : url + '/';
}

/**
 * The one-PEM certificate of a service connection (certificate and unencrypted private key, as
 * Azure DevOps asks for) → what MSAL signs its client assertion with. SHA-256 thumbprint: MSAL
 * then signs with PS256, which Entra accepts and prefers to SHA-1.
 */
function certificateCredential(pem: string): { thumbprintSha256: string; privateKey: string } {
  const cert = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem);
  const key = /-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]+?-----END \1PRIVATE KEY-----/.exec(pem);
  const problem = (what: string) =>
    new EntraError(
      `The service connection's certificate ${what}. It must be one PEM holding the certificate and its unencrypted private key ` +
        `(openssl pkcs12 -in cert.pfx -out cert.pem -nodes).`,
      'certificate',
      '',
      false,
    );
  if (!cert) throw problem('has no "BEGIN CERTIFICATE" block');
  if (!key) throw problem('has no private key');
  if (/ENCRYPTED/.test(key[1])) throw problem('has an encrypted private key');
  try {
    crypto.createPrivateKey(key[0]);
  } catch {
    throw problem('has a private key that cannot be read');
  }
  const der = Buffer.from(cert[1].replace(/\s+/g, ''), 'base64');
  return { thumbprintSha256: crypto.createHash('sha256').update(der).digest('hex'), privateKey: key[0] };
}
