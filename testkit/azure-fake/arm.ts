/**
 * The Azure Resource Manager part of the Azure fake: the subscription's resource list, App Service
 * apps and slots, their SCM basic-auth policy, publishing credentials and app settings. Bearer tokens must be
 * live ones this fake issued for the ARM audience; roles are checked as ARM does, with ARM's
 * error bodies (`{"error":{"code","message"}}`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerOf, hasRole, readBody, sendJson, type AzureFake, type FakePrincipal, type FakeRequest, type FakeSite } from './index';

const armError = (res: ServerResponse, status: number, code: string, message: string) => sendJson(res, status, { error: { code, message } });

export async function handleArm(fake: AzureFake, req: IncomingMessage, res: ServerResponse, record: FakeRequest): Promise<void> {
  record.service = 'arm';
  await readBody(req);
  const url = new URL(req.url ?? '/', fake.url);
  const token = bearerOf(req);
  if (!token) return armError(res, 401, 'AuthenticationFailed', "Authentication failed. The 'Authorization' header is missing.");
  const issued = fake.tokens.find((t) => t.token === token);
  if (!issued) return armError(res, 401, 'InvalidAuthenticationToken', 'The access token is invalid.');
  record.audience = issued.audience;
  if (issued.audience !== fake.armAudience) {
    return armError(res, 401, 'InvalidAuthenticationTokenAudience', `The access token has been obtained for wrong audience or resource '${issued.audience}'.`);
  }
  if (issued.revoked || issued.expiresAt <= Date.now()) {
    return armError(res, 401, 'ExpiredAuthenticationToken', "The access token expiry UTC time is earlier than current UTC time.");
  }
  if (!url.searchParams.get('api-version')) return armError(res, 400, 'MissingApiVersionParameter', "The api-version query parameter (?api-version=) is required for all requests.");
  const principal = issued.principal;
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0]?.toLowerCase() !== 'subscriptions') return armError(res, 404, 'NotFound', `No route for ${url.pathname}`);
  if (parts[1] !== fake.subscriptionId) return armError(res, 404, 'SubscriptionNotFound', `The subscription '${parts[1]}' could not be found.`);
  const forbidden = (action: string, scope: string) =>
    armError(
      res,
      403,
      'AuthorizationFailed',
      `The client '${principal.clientId}' with object id '${principal.objectId}' does not have authorization to perform action '${action}' over scope '${scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
    );

  // GET /subscriptions/{id}/resources?$filter=resourceType eq 'Microsoft.Web/sites' and name eq '{name}'
  if (parts.length === 3 && parts[2].toLowerCase() === 'resources' && req.method === 'GET') {
    if (!hasRole(principal, fake.subscriptionScope, ['Reader', 'Website Contributor'])) return forbidden('Microsoft.Resources/subscriptions/resources/read', fake.subscriptionScope);
    const filter = url.searchParams.get('$filter') ?? '';
    const type = /resourceType eq '([^']+)'/i.exec(filter)?.[1];
    const name = /name eq '((?:[^']|'')+)'/i.exec(filter)?.[1]?.replace(/''/g, "'");
    const value = fake.sites
      .filter((s) => !s.slot)
      .filter((s) => (!type || type.toLowerCase() === 'microsoft.web/sites') && (!name || s.name.toLowerCase() === name.toLowerCase()))
      .map((s) => ({ id: s.id, name: s.name, type: 'Microsoft.Web/sites', kind: 'app', location: 'westeurope' }));
    return sendJson(res, 200, { value });
  }

  // /subscriptions/{id}/resourceGroups/{rg}/providers/Microsoft.Web/sites/{name}[/slots/{slot}][/...]
  if (parts[2]?.toLowerCase() !== 'resourcegroups' || parts[4]?.toLowerCase() !== 'providers' || parts[5]?.toLowerCase() !== 'microsoft.web' || parts[6]?.toLowerCase() !== 'sites') {
    return armError(res, 404, 'NotFound', `No route for ${url.pathname}`);
  }
  const [resourceGroup, name] = [parts[3], parts[7]];
  const hasSlot = parts[8]?.toLowerCase() === 'slots';
  const slot = hasSlot ? parts[9] : undefined;
  const rest = parts.slice(hasSlot ? 10 : 8).join('/').toLowerCase();
  const scope = '/' + parts.slice(0, hasSlot ? 10 : 8).join('/');
  if (!hasRole(principal, scope, ['Reader', 'Website Contributor', 'Site Publisher'])) return forbidden('Microsoft.Web/sites/read', scope);
  if (!fake.sites.some((s) => s.resourceGroup.toLowerCase() === resourceGroup.toLowerCase())) {
    return armError(res, 404, 'ResourceGroupNotFound', `Resource group '${resourceGroup}' could not be found.`);
  }
  const site = fake.sites.find(
    (s) => s.resourceGroup.toLowerCase() === resourceGroup.toLowerCase() && s.name.toLowerCase() === name.toLowerCase() && (s.slot ?? '').toLowerCase() === (slot ?? '').toLowerCase(),
  );
  if (!site) {
    return armError(res, 404, 'ResourceNotFound', `The Resource 'Microsoft.Web/sites/${name}${slot ? `/slots/${slot}` : ''}' under resource group '${resourceGroup}' was not found.`);
  }

  if (rest === '' && req.method === 'GET') return sendJson(res, 200, siteJson(site));
  if (rest === 'basicpublishingcredentialspolicies/scm' && req.method === 'GET') {
    return sendJson(res, 200, { id: `${site.id}/basicPublishingCredentialsPolicies/scm`, name: 'scm', properties: { allow: site.basicAuth.allow } });
  }
  if (rest === 'config/publishingcredentials/list' && req.method === 'POST') {
    if (!canListConfig(principal, site)) return forbidden('Microsoft.Web/sites/config/list/Action', site.id);
    return sendJson(res, 200, {
      id: `${site.id}/publishingcredentials/$${site.name}`,
      name: site.name,
      properties: { publishingUserName: site.basicAuth.username, publishingPassword: site.basicAuth.password, scmUri: `https://${site.basicAuth.username}:${site.basicAuth.password}@${new URL(site.scmUrl).host}` },
    });
  }
  if (rest === 'config/appsettings/list' && req.method === 'POST') {
    // Listing app settings reveals their values: Microsoft.Web/sites/config/list/Action, which Reader lacks.
    if (!canListConfig(principal, site)) return forbidden('Microsoft.Web/sites/config/list/Action', site.id);
    return sendJson(res, 200, { id: `${site.id}/config/appsettings`, name: 'appsettings', type: 'Microsoft.Web/sites/config', properties: site.kudu.appSettings() });
  }
  return armError(res, 404, 'NotFound', `No route for ${req.method} ${url.pathname}`);
}

/** Microsoft.Web/sites/publish/Action: Kudu. */
export function canPublish(principal: FakePrincipal, site: FakeSite): boolean {
  return hasRole(principal, site.id, ['Website Contributor', 'Site Publisher']);
}

/** Microsoft.Web/sites/config/list/Action: settings and publishing credentials, values included. */
export function canListConfig(principal: FakePrincipal, site: FakeSite): boolean {
  return hasRole(principal, site.id, ['Website Contributor']);
}

function siteJson(site: FakeSite): unknown {
  const label = site.slot ? `${site.name}-${site.slot}` : site.name;
  return {
    id: site.id,
    name: site.slot ? `${site.name}/${site.slot}` : site.name,
    type: site.slot ? 'Microsoft.Web/sites/slots' : 'Microsoft.Web/sites',
    kind: 'app',
    location: 'West Europe',
    properties: {
      state: site.state,
      enabledHostNames: [`${label}.azurewebsites.net`, new URL(site.scmUrl).host],
      // The SCM site is the Repository host; here the TLS front end on 127.0.0.1.
      hostNameSslStates: [
        { name: `${label}.azurewebsites.net`, sslState: 'Disabled', hostType: 'Standard' },
        { name: new URL(site.scmUrl).host, sslState: 'Disabled', hostType: 'Repository' },
      ],
    },
  };
}
