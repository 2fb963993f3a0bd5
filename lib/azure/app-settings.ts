/**
 * An App Service app's (or slot's) app settings read through Azure Resource Manager:
 * `POST …/sites/{app}[/slots/{slot}]/config/appsettings/list`. Listing reveals the values, so it
 * takes `Microsoft.Web/sites/config/list/Action` (in Website Contributor, not in Reader). The
 * values may be secrets: callers read the names they need and log none of the rest.
 *
 * @example
 *   const settings = await readAppSettings(connection, { appName: 'my-blog', slot: 'staging' }, { userAgent, log });
 *   settings.WEBSITE_RUN_FROM_PACKAGE;
 */
import { KuduError } from '../kudu/errors';
import { HttpTransport } from '../kudu/http';
import type { AppServiceTarget, AzureRmConnection, ConnectLog } from './app-service';
import { subscriptionLabel } from './app-service';
import { ArmClient, ArmError, ROLE_HINT, siteLabel } from './arm';
import { scopeFor, TokenCache, tokenCredential } from './token-credential';

const WEB_API = '2022-03-01';

export interface AppSettingsOptions {
  userAgent: string;
  log: Pick<ConnectLog, 'info' | 'debug'>;
}

export async function readAppSettings(connection: AzureRmConnection, target: AppServiceTarget, options: AppSettingsOptions): Promise<Record<string, string>> {
  const principal = connection.source.description;
  const tokens = new TokenCache(connection.source, scopeFor(connection.resourceManagerUrl), options.log.debug);
  const credential = tokenCredential(tokens, `a Microsoft Entra token (Azure Resource Manager) of ${principal}`);
  const common = { userAgent: options.userAgent, debug: options.log.debug };
  const arm = new ArmClient({ resourceManagerUrl: connection.resourceManagerUrl, credential, principal, subscriptionLabel: subscriptionLabel(connection), ...common });
  const http = new HttpTransport({ scmUrl: connection.resourceManagerUrl, credential, retry: { maxAttempts: 4 }, ...common });
  try {
    const resourceGroup = target.resourceGroup ?? (await arm.findResourceGroup(connection.subscriptionId, target.appName));
    const slot = target.slot && target.slot.toLowerCase() !== 'production' ? target.slot : undefined;
    const site = await arm.getSite({ subscriptionId: connection.subscriptionId, resourceGroup, name: target.appName, slot });
    const what = `the app settings of ${siteLabel(site)}`;
    let res;
    try {
      res = await http.send({
        method: 'POST',
        path: `${site.id.replace(/^\/+/, '')}/config/appsettings/list?api-version=${WEB_API}`,
        headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
        body: () => Buffer.alloc(0),
        // Listing changes nothing: a lost answer may be asked for again.
        idempotent: true,
        accept: [401, 403, 404],
      });
    } catch (err) {
      if (err instanceof KuduError) {
        throw Object.assign(new ArmError(`Azure Resource Manager answered ${err.status ?? 'nothing'} for ${what}: ${err.message}`, err.status, err.details.code), { cause: err });
      }
      throw err;
    }
    if (res.status === 403) {
      throw new ArmError(`${principal.charAt(0).toUpperCase()}${principal.slice(1)} may not list ${what} (403: it needs Microsoft.Web/sites/config/list/Action, which Reader lacks). ${ROLE_HINT}`, 403, 'AuthorizationFailed');
    }
    if (res.status >= 300) throw new ArmError(`Azure Resource Manager answered ${res.status} for ${what}.`, res.status);
    return stringProperties(res.body.toString('utf8'), what);
  } finally {
    arm.close();
    http.close();
  }
}

function stringProperties(text: string, what: string): Record<string, string> {
  let body: { properties?: unknown };
  try {
    body = JSON.parse(text) as { properties?: unknown };
  } catch {
    throw new ArmError(`Azure Resource Manager sent something that is not JSON for ${what}.`);
  }
  const props = body.properties;
  if (typeof props !== 'object' || props === null) return {};
  return Object.fromEntries(Object.entries(props).filter((e): e is [string, string] => typeof e[1] === 'string'));
}
