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
import { bearerCredential, type KuduCredential } from '../kudu/credentials';
import { KuduError, summariseBody } from '../kudu/errors';
import { HttpTransport } from '../kudu/http';

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
  ) {
    super(message);
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
  // Warnings and errors only, without personal data: MSAL never logs tokens or secrets, and
  // nothing at these levels is noise in a pipeline's debug log.
  const system = {
    loggerOptions: {
      loggerCallback: (_level: LogLevel, message: string) => options.debug?.(`MSAL: ${message}`),
      piiLoggingEnabled: false,
      logLevel: LogLevel.Warning,
    },
  };
  const managed = auth.kind === 'managedIdentity';
  const reach = managed ? "the agent machine's managed identity endpoint" : `Microsoft Entra ID at ${options.authorityHost}`;
  let acquire: (scope: string) => Promise<{ accessToken: string; expiresOn: Date | null } | null>;
  if (auth.kind === 'managedIdentity') {
    const app = new ManagedIdentityApplication({
      managedIdentityIdParams: auth.clientId ? { userAssignedClientId: auth.clientId } : undefined,
      system,
    });
    // forceRefresh: TokenCache decides when a token is renewed, not MSAL's own cache.
    acquire = (scope) => app.acquireToken({ resource: scope.replace(/\/\.default$/, ''), forceRefresh: true });
  } else {
    const authority = new URL(encodeURIComponent(auth.tenantId), withSlash(options.authorityHost)).toString();
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
    acquire = (scope) => app.acquireTokenByClientCredential({ scopes: [scope], skipCache: true });
  }
  return {
    description,
    async getToken(scope) {
      const obtainedAtMs = Date.now();
      let result: { accessToken: string; expiresOn: Date | null } | null;
      try {
        result = await acquire(scope);
      } catch (err) {
        throw entraError(err, description, scope, reach, managed);
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
  userAgent: string;
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
      scmUrl: url.origin + '/',
      credential: bearerCredential(options.systemAccessToken, "the pipeline's access token"),
      userAgent: options.userAgent,
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
        accept: [400, 401, 403, 404],
      });
      const text = res.body.toString('utf8');
      if (res.status >= 300) {
        throw new EntraError(
          `Azure DevOps refused to issue the pipeline's OIDC token for workload identity federation (${res.status} from ${where}): ` +
            `${summariseBody(text) || '(no message)'}. Check that this pipeline is allowed to use the service connection.`,
          `oidc_${res.status}`,
          '',
          true,
        );
      }
      let token: unknown;
      try {
        token = (JSON.parse(text) as { oidcToken?: unknown }).oidcToken;
      } catch {
        token = undefined;
      }
      if (typeof token !== 'string' || !token) {
        throw new EntraError(`Azure DevOps sent no OIDC token (${res.status} from ${where}).`, 'oidc_empty', '', true);
      }
      options.onSecret(token);
      return token;
    } catch (err) {
      if (err instanceof KuduError) {
        throw new EntraError(`Could not get the pipeline's OIDC token from ${where}: ${err.details.code ?? err.status ?? ''} ${err.message}`.trim(), 'oidc_network', '', false);
      }
      throw err;
    } finally {
      transport.close();
    }
  };
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

function entraError(err: unknown, who: string, scope: string, reach: string, managed: boolean): EntraError {
  if (err instanceof EntraError) return err;
  // MSAL wraps an error thrown by the client-assertion callback; the inner one says more.
  const cause = (err as { cause?: unknown } | undefined)?.cause;
  if (cause instanceof EntraError) return cause;
  if (err instanceof AuthError) {
    const text = (err.errorMessage || err.message || '').trim();
    const number = /AADSTS(\d+)/.exec(text)?.[1];
    const code = number ? `${err.errorCode} (AADSTS${number})` : err.errorCode;
    if (!number && /network|endpoints_resolution|openid_config|unable_to_load/i.test(err.errorCode)) {
      return new EntraError(
        `Could not reach ${reach} to get a token for ${who} (${err.errorCode}): ${firstLine(text)}` +
          (managed ? ' A managed identity connection works only on agents that run on Azure VMs or scale sets with that identity assigned.' : ''),
        err.errorCode,
        scope,
        false,
      );
    }
    const hint =
      (number && ENTRA_HINTS[number]) ||
      (managed
        ? 'Check that the agent runs on an Azure VM or scale set with this managed identity assigned, and the client ID in the service connection.'
        : 'Check the service connection (Project settings > Service connections) and its identity in Microsoft Entra ID.');
    return new EntraError(
      `Microsoft Entra ID refused a token for ${who} (scope ${scope}): ${code}: ${firstLine(text)} ${hint}`,
      code,
      scope,
      err.errorCode !== 'network_error',
    );
  }
  const message = err instanceof Error ? err.message : String(err);
  return new EntraError(`Could not get a token for ${who} (scope ${scope}): ${message}`, undefined, scope, false);
}

/** Entra's descriptions run on with trace and correlation ids on later lines; keep the sentence. */
function firstLine(text: string): string {
  const line = text.split(/\r?\n/)[0].trim();
  return line.length > 600 ? line.slice(0, 600) + '…' : line;
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
