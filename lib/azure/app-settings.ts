/**
 * An App Service app's (or slot's) app settings read through Azure Resource Manager:
 * `POST …/sites/{app}[/slots/{slot}]/config/appsettings/list`. Listing reveals the values, so it
 * takes `Microsoft.Web/sites/config/list/Action` (in Website Contributor, not in Reader). The
 * values may be secrets: callers read the names they need and log none of the rest.
 *
 * @example
 *   const settings = await readAppSettings(connection, { appName: 'my-blog', slot: 'staging' }, { http, log });
 *   settings.WEBSITE_RUN_FROM_PACKAGE;
 */
import type { HttpContext } from '../http';
import type { AppServiceTarget, AzureRmConnection, ConnectLog } from './app-service';
import { subscriptionLabel } from './app-service';
import { ArmClient } from './arm';
import { scopeFor, TokenCache, tokenCredential } from './token-credential';

export interface AppSettingsOptions {
  /** User-Agent, deadline, the agent's proxy and certificates. */
  http: HttpContext;
  log: Pick<ConnectLog, 'info' | 'debug'>;
}

export async function readAppSettings(connection: AzureRmConnection, target: AppServiceTarget, options: AppSettingsOptions): Promise<Record<string, string>> {
  const principal = connection.source.description;
  const tokens = new TokenCache(connection.source, scopeFor(connection.resourceManagerUrl), options.log.debug);
  const arm = new ArmClient({
    resourceManagerUrl: connection.resourceManagerUrl,
    credential: tokenCredential(tokens, `a Microsoft Entra token (Azure Resource Manager) of ${principal}`),
    http: options.http,
    principal,
    subscriptionLabel: subscriptionLabel(connection),
  });
  try {
    const resourceGroup = target.resourceGroup ?? (await arm.findResourceGroup(connection.subscriptionId, target.appName));
    const slot = target.slot && target.slot.toLowerCase() !== 'production' ? target.slot : undefined;
    const site = await arm.getSite({ subscriptionId: connection.subscriptionId, resourceGroup, name: target.appName, slot });
    return await arm.appSettings(site);
  } finally {
    arm.close();
    connection.source.close?.();
  }
}
