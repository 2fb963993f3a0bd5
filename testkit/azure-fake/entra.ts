/**
 * The Microsoft Entra ID part of the Azure fake: OIDC metadata and the v2 token endpoint for the
 * client-credentials grant (secret, certificate assertion, federated assertion), IMDS for managed
 * identities, and Azure DevOps' job OIDC token endpoint. Error answers have Entra's shape
 * (`error`, `error_description` starting with the AADSTS number, `error_codes`).
 */
import { createHash, createPublicKey, randomUUID, verify, constants, X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { APP_SERVICE_AUDIENCE, bearerOf, normaliseAudience, opaqueToken, readBody, sendJson, type AzureFake, type FakePrincipal, type FakeRequest } from './index';

export async function handleEntra(fake: AzureFake, req: IncomingMessage, res: ServerResponse, record: FakeRequest): Promise<void> {
  const url = new URL(req.url ?? '/', fake.url);
  const parts = url.pathname.split('/').filter(Boolean);
  record.service = 'entra';

  // GET /{tenant}/v2.0/.well-known/openid-configuration
  if (req.method === 'GET' && parts[1] === 'v2.0' && parts[2] === '.well-known') {
    const base = `${fake.url}${parts[0]}`;
    return sendJson(res, 200, {
      issuer: `${base}/v2.0`,
      token_endpoint: `${base}/oauth2/v2.0/token`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      jwks_uri: `${base}/discovery/v2.0/keys`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    });
  }

  // POST /{tenant}/oauth2/v2.0/token
  if (req.method === 'POST' && parts[1] === 'oauth2' && parts[3] === 'token') {
    return token(fake, parts[0], new URLSearchParams(await readBody(req)), `${fake.url}${parts[0]}/oauth2/v2.0/token`, res);
  }

  // GET /metadata/identity/oauth2/token (IMDS, reached through AZURE_POD_IDENTITY_AUTHORITY_HOST)
  if (req.method === 'GET' && url.pathname.replace(/\/$/, '') === '/metadata/identity/oauth2/token') {
    record.service = 'imds';
    return imds(fake, req, url, res);
  }

  // POST /{org}/{project}/_apis/distributedtask/hubs/{hub}/plans/{plan}/jobs/{job}/oidctoken
  if (req.method === 'POST' && url.pathname.endsWith('/oidctoken')) {
    record.service = 'oidc';
    await readBody(req);
    if (bearerOf(req) !== fake.systemAccessToken) {
      return sendJson(res, 401, { message: 'TF400813: The user is not authorized to access this resource.', typeKey: 'UnauthorizedRequestException' });
    }
    const connectionId = url.searchParams.get('serviceConnectionId') ?? '';
    if (!url.searchParams.get('api-version') || !connectionId) return sendJson(res, 400, { message: 'serviceConnectionId and api-version are required.' });
    // JWT-shaped like Azure DevOps' tokens; only this fake checks them.
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const exp = Math.floor(Date.now() / 1000) + 600;
    const oidcToken = `${b64({ typ: 'JWT', alg: 'RS256' })}.${b64({ iss: `${fake.url}example`, sub: `sc://example/blog/${connectionId}`, aud: 'api://AzureADTokenExchange', exp })}.${opaqueToken('sig')}`;
    fake.oidcTokens.set(oidcToken, { connectionId, expiresAt: exp * 1000 });
    return sendJson(res, 200, { oidcToken });
  }

  sendJson(res, 404, { error: 'not_found', error_description: `The fake has no ${req.method} ${url.pathname}` });
}

function entraError(res: ServerResponse, status: number, error: string, aadsts: number, text: string): void {
  const traceId = randomUUID();
  sendJson(res, status, {
    error,
    error_description: `AADSTS${aadsts}: ${text} Trace ID: ${traceId} Correlation ID: ${randomUUID()} Timestamp: ${new Date().toISOString()}`,
    error_codes: [aadsts],
    timestamp: new Date().toISOString(),
    trace_id: traceId,
  });
}

function issue(fake: AzureFake, principal: FakePrincipal, audience: string): { token: string; lifetime: number } {
  const lifetime = fake.options.tokenLifetimeSeconds ?? 3600;
  const token = opaqueToken('entra');
  const now = Date.now();
  fake.tokens.push({ token, audience: normaliseAudience(audience), principal, issuedAt: now, expiresAt: now + lifetime * 1000, revoked: false });
  return { token, lifetime };
}

/** The audience of a scope, or an error answer when Entra would refuse it. */
function audienceFor(fake: AzureFake, scope: string, res: ServerResponse): string | undefined {
  if (!/\/\.default$/.test(scope)) {
    entraError(res, 400, 'invalid_scope', 1002012, `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.`);
    return undefined;
  }
  const audience = normaliseAudience(scope);
  const appService = normaliseAudience(APP_SERVICE_AUDIENCE);
  if (audience === fake.armAudience || (audience === appService && !fake.options.refuseAppServiceAudience)) return audience;
  entraError(res, 400, 'invalid_resource', 500011, `The resource principal named ${scope.replace(/\/\.default$/, '')} was not found in the tenant named ${fake.tenantId}.`);
  return undefined;
}

function token(fake: AzureFake, tenant: string, form: URLSearchParams, tokenEndpoint: string, res: ServerResponse): void {
  if (form.get('grant_type') !== 'client_credentials') return entraError(res, 400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.');
  if (tenant !== fake.tenantId) return entraError(res, 400, 'invalid_request', 90002, `Tenant '${tenant}' not found.`);
  const clientId = form.get('client_id') ?? '';
  const principal = fake.principals.find((p) => p.clientId === clientId && !p.managedIdentity);
  if (!principal) return entraError(res, 400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${tenant}'.`);

  const secret = form.get('client_secret');
  const assertion = form.get('client_assertion');
  if (secret !== null) {
    if (!principal.secret || secret !== principal.secret) return entraError(res, 401, 'invalid_client', 7000215, 'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.');
  } else if (assertion !== null) {
    if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') return entraError(res, 400, 'invalid_request', 50027, 'Invalid client assertion type.');
    const problem = principal.federatedConnectionId ? checkFederated(fake, principal, assertion) : checkCertificate(principal, assertion, tokenEndpoint);
    if (problem) return entraError(res, problem.status, problem.error, problem.aadsts, problem.text);
  } else {
    return entraError(res, 400, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
  }

  const audience = audienceFor(fake, form.get('scope') ?? '', res);
  if (!audience) return;
  const { token: accessToken, lifetime } = issue(fake, principal, audience);
  sendJson(res, 200, { token_type: 'Bearer', expires_in: lifetime, ext_expires_in: lifetime, access_token: accessToken });
}

type Problem = { status: number; error: string; aadsts: number; text: string };

function checkFederated(fake: AzureFake, principal: FakePrincipal, assertion: string): Problem | undefined {
  const issued = fake.oidcTokens.get(assertion);
  if (!issued || issued.connectionId !== principal.federatedConnectionId) {
    return { status: 400, error: 'invalid_request', aadsts: 70021, text: 'No matching federated identity record found for presented assertion.' };
  }
  if (issued.expiresAt <= Date.now()) return { status: 400, error: 'invalid_client', aadsts: 700024, text: 'Client assertion is not within its valid time range.' };
  return undefined;
}

/** The client assertion MSAL builds from a certificate: a JWT signed with the private key. */
function checkCertificate(principal: FakePrincipal, assertion: string, tokenEndpoint: string): Problem | undefined {
  const bad = (text: string): Problem => ({ status: 401, error: 'invalid_client', aadsts: 700027, text });
  if (!principal.certificatePem) return bad('Client assertion failed signature validation: no certificate is registered on the application.');
  const [h, p, s] = assertion.split('.');
  if (!h || !p || !s) return bad('The client assertion is not a JWT.');
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as { alg?: string; 'x5t#S256'?: string; x5t?: string };
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as { aud?: string; iss?: string; sub?: string; exp?: number };
  const cert = new X509Certificate(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(principal.certificatePem)![0]);
  const sha256 = createHash('sha256').update(cert.raw).digest('base64url');
  const sha1 = createHash('sha1').update(cert.raw).digest('base64url');
  if (header['x5t#S256'] !== sha256 && header.x5t !== sha1) return bad('The certificate thumbprint in the client assertion does not match a registered certificate.');
  const key = createPublicKey(cert.publicKey.export({ type: 'spki', format: 'pem' }));
  const data = Buffer.from(`${h}.${p}`);
  const signature = Buffer.from(s, 'base64url');
  const ok =
    header.alg === 'PS256'
      ? verify('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, signature)
      : header.alg === 'RS256' && verify('sha256', data, key, signature);
  if (!ok) return bad('Client assertion contains an invalid signature.');
  if (claims.aud !== tokenEndpoint || claims.iss !== principal.clientId || claims.sub !== principal.clientId) return bad('The client assertion has the wrong audience, issuer or subject.');
  if (!claims.exp || claims.exp * 1000 <= Date.now()) return { status: 400, error: 'invalid_client', aadsts: 700024, text: 'Client assertion is not within its valid time range.' };
  return undefined;
}

function imds(fake: AzureFake, req: IncomingMessage, url: URL, res: ServerResponse): void {
  if (req.headers.metadata !== 'true') return sendJson(res, 400, { error: 'invalid_request', error_description: 'Required metadata header not specified' });
  const clientId = url.searchParams.get('client_id');
  const principal = fake.principals.find((p) => (clientId ? p.managedIdentity === 'user' && p.clientId === clientId : p.managedIdentity === 'system'));
  if (!principal) return sendJson(res, 400, { error: 'invalid_request', error_description: 'Identity not found' });
  const resource = url.searchParams.get('resource') ?? '';
  const audience = normaliseAudience(resource);
  const appService = normaliseAudience(APP_SERVICE_AUDIENCE);
  if (audience !== fake.armAudience && (audience !== appService || fake.options.refuseAppServiceAudience)) {
    return sendJson(res, 400, { error: 'invalid_resource', error_description: `AADSTS500011: The resource principal named ${resource} was not found in the tenant.` });
  }
  const { token: accessToken, lifetime } = issue(fake, principal, audience);
  sendJson(res, 200, {
    access_token: accessToken,
    client_id: principal.clientId,
    expires_in: String(lifetime),
    expires_on: String(Math.floor(Date.now() / 1000) + lifetime),
    ext_expires_in: String(lifetime),
    not_before: String(Math.floor(Date.now() / 1000)),
    resource,
    token_type: 'Bearer',
  });
}
