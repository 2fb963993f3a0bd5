/**
 * A local stand-in for the Azure services an Azure Resource Manager service connection talks to,
 * served over HTTPS on 127.0.0.1 with the test certificate in testkit/fixtures/azure (MSAL accepts
 * only an https:// authority):
 *
 * - Microsoft Entra ID: OIDC metadata and the v2 token endpoint (client secret, certificate
 *   assertion, federated assertion), and IMDS for managed identities (entra.ts);
 * - the job's OIDC token endpoint in Azure DevOps (`System.OidcRequestUri`) (entra.ts);
 * - Azure Resource Manager for App Service apps and slots, with role checks (arm.ts);
 * - each app's SCM site: a TLS front end to a Kudu-compatible server that lets through only
 *   tokens this fake issued, for the right audience, to a principal with the right role (scm-proxy.ts).
 *
 * @example
 *   const azure = await startAzureFake();
 *   const sp = azure.addPrincipal({ secret: 's3cret', roles: [{ scope: azure.subscriptionScope, role: 'Website Contributor' }] });
 *   const kudu = await startKuduServer({ home, auth: { bearer: azure.kuduAccepts } });
 *   const site = await azure.addSite({ resourceGroup: 'rg', name: 'blog', kudu });
 *   await runTask({ ..., endpoints: { arm: azure.endpoint(sp) }, env: azure.taskEnv() });
 */
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { Endpoint } from '../harness/agent';
import { REPO_ROOT } from '../harness/agent';
import type { KuduServer } from '../kudu-server';
import { handleArm } from './arm';
import { handleEntra } from './entra';
import { startScmProxy, type ScmProxy } from './scm-proxy';

const FIXTURES = path.join(REPO_ROOT, 'testkit', 'fixtures', 'azure');
/** For NODE_EXTRA_CA_CERTS in task processes. */
export const TEST_CA_FILE = path.join(FIXTURES, 'ca.pem');
export const SERVICE_PRINCIPAL_PEM = path.join(FIXTURES, 'service-principal.pem');
export const TLS = { cert: fs.readFileSync(path.join(FIXTURES, 'server.pem')), key: fs.readFileSync(path.join(FIXTURES, 'server-key.pem')) };

/** The App Service audience in the public cloud, which the tasks ask for first. */
export const APP_SERVICE_AUDIENCE = 'https://appservice.azure.com';

/**
 * Built-in roles, and 'Site Publisher': a custom role with only Microsoft.Web/sites/read and
 * Microsoft.Web/sites/publish/Action, the least the Kudu tasks need (it cannot list settings).
 */
export type Role = 'Website Contributor' | 'Reader' | 'Site Publisher';

export interface FakePrincipal {
  clientId: string;
  objectId: string;
  tenantId: string;
  secret?: string;
  /** The PEM holding the certificate whose key signs the client assertion. */
  certificatePem?: string;
  /** Accepts the pipeline OIDC token issued for this service connection id. */
  federatedConnectionId?: string;
  /** A managed identity: reached through IMDS; `system` when no client id is asked for. */
  managedIdentity?: 'system' | 'user';
  roles: Array<{ scope: string; role: Role }>;
}

export interface FakeSite {
  resourceGroup: string;
  name: string;
  slot?: string;
  state: string;
  id: string;
  scmUrl: string;
  basicAuth: { allow: boolean; username: string; password: string };
  proxy: ScmProxy;
  /** The Kudu-compatible server behind the SCM site: its app settings are the site's. */
  kudu: KuduServer;
}

export interface IssuedToken {
  token: string;
  audience: string;
  principal: FakePrincipal;
  issuedAt: number;
  expiresAt: number;
  revoked: boolean;
}

export interface FakeRequest {
  service: 'entra' | 'imds' | 'oidc' | 'arm' | 'scm';
  method: string;
  path: string;
  status: number;
  /** The audience of the bearer token sent, when it was one the fake issued. */
  audience?: string;
  /** The client's port: a proxy's outbound connection (testkit/proxy `upstreamPorts`) or the task's own. */
  remotePort?: number;
}

export interface AzureFakeOptions {
  /** expires_in of every token, in seconds; default 3600. */
  tokenLifetimeSeconds?: number;
  /** Entra answers AADSTS500011 for the App Service audience (a tenant without it). */
  refuseAppServiceAudience?: boolean;
  /** Audiences Kudu accepts (`arm` for the fake's Resource Manager); default the App Service one only. Read at each request. */
  kuduAudiences?: string[];
}

export interface AzureFake {
  /** `https://127.0.0.1:<port>/` */
  readonly url: string;
  readonly tenantId: string;
  readonly subscriptionId: string;
  readonly subscriptionScope: string;
  readonly armAudience: string;
  /** The value of System.AccessToken the OIDC endpoint wants. */
  readonly systemAccessToken: string;
  readonly options: AzureFakeOptions;
  readonly principals: FakePrincipal[];
  readonly sites: FakeSite[];
  readonly tokens: IssuedToken[];
  /** Pipeline OIDC tokens issued, by token. */
  readonly oidcTokens: Map<string, { connectionId: string; expiresAt: number }>;
  readonly requests: FakeRequest[];
  addPrincipal(p: Partial<FakePrincipal>): FakePrincipal;
  addSite(site: { resourceGroup: string; name: string; slot?: string; kudu: KuduServer; state?: string; basicAuth?: FakeSite['basicAuth'] }): Promise<FakeSite>;
  /** For startKuduServer's auth.bearer: a live token this fake issued for an audience Kudu takes. */
  kuduAccepts: (token: string) => boolean;
  /** The token if it is one this fake issued, live, for the audience. */
  liveToken(token: string, audience: string): IssuedToken | undefined;
  revokeAll(): void;
  /** An Azure Resource Manager service connection as the agent hands it to a task. */
  endpoint(principal: FakePrincipal, scheme?: 'ServicePrincipal' | 'WorkloadIdentityFederation' | 'ManagedServiceIdentity'): Endpoint;
  /** Environment for task processes: trust the test CA; IMDS at this fake. */
  taskEnv(): Record<string, string>;
  /** Pipeline variables for workload identity federation. */
  oidcVariables(): Record<string, string>;
  /** The SYSTEMVSSCONNECTION endpoint the agent gives every task. */
  systemEndpoint(): Endpoint;
  close(): Promise<void>;
}

export function normaliseAudience(scopeOrResource: string): string {
  return scopeOrResource.replace(/\/\.default$/, '').replace(/\/+$/, '').toLowerCase();
}

export function hasRole(principal: FakePrincipal, resourceId: string, roles: Role[]): boolean {
  const id = resourceId.toLowerCase();
  return principal.roles.some((r) => roles.includes(r.role) && (id === r.scope.toLowerCase() || id.startsWith(r.scope.toLowerCase() + '/')));
}

export function opaqueToken(prefix: string): string {
  return `${prefix}.${randomBytes(24).toString('base64url')}`;
}

export async function startAzureFake(options: AzureFakeOptions = {}): Promise<AzureFake> {
  const server = https.createServer(TLS);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `https://127.0.0.1:${port}/`;
  const tenantId = randomUUID();
  const subscriptionId = randomUUID();

  const fake: AzureFake = {
    url,
    tenantId,
    subscriptionId,
    subscriptionScope: `/subscriptions/${subscriptionId}`,
    armAudience: normaliseAudience(url),
    systemAccessToken: opaqueToken('system'),
    options,
    principals: [],
    sites: [],
    tokens: [],
    oidcTokens: new Map(),
    requests: [],

    addPrincipal(p) {
      const principal: FakePrincipal = { clientId: randomUUID(), objectId: randomUUID(), tenantId, roles: [], ...p };
      fake.principals.push(principal);
      return principal;
    },

    async addSite(s) {
      const id = `/subscriptions/${subscriptionId}/resourceGroups/${s.resourceGroup}/providers/Microsoft.Web/sites/${s.name}${s.slot ? `/slots/${s.slot}` : ''}`;
      const site = {
        resourceGroup: s.resourceGroup,
        name: s.name,
        slot: s.slot,
        state: s.state ?? 'Running',
        id,
        basicAuth: s.basicAuth ?? { allow: false, username: `$${s.name}`, password: 'unused' },
        kudu: s.kudu,
      } as FakeSite;
      site.proxy = await startScmProxy(fake, site, s.kudu);
      site.scmUrl = site.proxy.url;
      fake.sites.push(site);
      return site;
    },

    kuduAccepts: (token) =>
      (fake.options.kuduAudiences ?? [APP_SERVICE_AUDIENCE]).some((a) => fake.liveToken(token, a === 'arm' ? fake.armAudience : a) !== undefined),

    liveToken(token, audience) {
      const issued = fake.tokens.find((t) => t.token === token);
      if (!issued || issued.revoked || issued.expiresAt <= Date.now()) return undefined;
      return issued.audience === normaliseAudience(audience) ? issued : undefined;
    },

    revokeAll() {
      for (const t of fake.tokens) t.revoked = true;
    },

    endpoint(principal, scheme) {
      const kind = scheme ?? (principal.managedIdentity ? 'ManagedServiceIdentity' : principal.federatedConnectionId ? 'WorkloadIdentityFederation' : 'ServicePrincipal');
      const parameters: Record<string, string> = { tenantid: principal.tenantId };
      if (kind !== 'ManagedServiceIdentity') parameters.serviceprincipalid = principal.clientId;
      if (kind === 'ServicePrincipal') {
        if (principal.certificatePem) {
          parameters.authenticationType = 'spnCertificate';
          parameters.servicePrincipalCertificate = principal.certificatePem;
        } else {
          parameters.authenticationType = 'spnKey';
          parameters.serviceprincipalkey = principal.secret ?? '';
        }
      }
      const data: Record<string, string> = {
        environment: 'AzureCloud',
        scopeLevel: 'Subscription',
        subscriptionId,
        subscriptionName: 'Blog production',
        activeDirectoryAuthority: url,
        environmentAuthorityUrl: url,
        activeDirectoryServiceEndpointResourceId: url,
      };
      if (principal.managedIdentity === 'user') data.msiclientId = principal.clientId;
      return { url, scheme: kind, parameters, data };
    },

    taskEnv: () => ({ NODE_EXTRA_CA_CERTS: TEST_CA_FILE, AZURE_POD_IDENTITY_AUTHORITY_HOST: url.replace(/\/$/, '') }),

    oidcVariables: () => ({
      'System.OidcRequestUri': `${url}example/7f1e0c5a-0000-4000-8000-000000000001/_apis/distributedtask/hubs/build/plans/plan-1/jobs/job-1/oidctoken`,
    }),

    systemEndpoint: () => ({ url: 'https://dev.azure.com/example/', scheme: 'OAuth', parameters: { AccessToken: fake.systemAccessToken } }),

    async close() {
      await Promise.all(fake.sites.map((s) => s.proxy.close()));
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const record: FakeRequest = { service: 'arm', method: req.method ?? 'GET', path: req.url ?? '/', status: 0, remotePort: req.socket.remotePort };
    fake.requests.push(record);
    res.on('finish', () => (record.status = res.statusCode));
    const pathname = new URL(req.url ?? '/', url).pathname;
    const handled = /\/(oauth2|v2\.0\/\.well-known|metadata\/identity|_apis\/distributedtask)\b/.test(pathname)
      ? handleEntra(fake, req, res, record)
      : handleArm(fake, req, res, record);
    handled.catch((err: Error) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`fake error: ${err.message}`);
      } else res.destroy();
    });
  });
  return fake;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': text.length, ...headers });
  res.end(text);
}

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The bearer token of a request, or undefined. */
export function bearerOf(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization ?? '';
  return /^Bearer\s+(.+)$/i.exec(header)?.[1]?.trim();
}
