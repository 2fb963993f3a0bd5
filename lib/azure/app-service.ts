/**
 * An App Service app's Kudu (SCM) site reached through an Azure Resource Manager service
 * connection: find the app (and slot) through ARM, take its SCM host, and authenticate to Kudu
 * with a Microsoft Entra token. The App Service audience comes first (ARM tokens are being
 * retired for Kudu); the ARM token when Entra or Kudu will not take that; the app's publishing
 * credentials only as a last resort, where the app allows SCM basic auth and Kudu took no token.
 *
 * @example
 *   const { scmUrl, credential } = await connectAppService(connection, { appName: 'my-blog', slot: 'staging' }, { http, log, onSecret });
 *   const kudu = new KuduClient({ ...http, scmUrl, credential });
 */
import type { HttpContext } from '../http';
import type { KuduCredential } from '../kudu/credentials';
import { ArmClient, siteLabel, type AppServiceSite } from './arm';
import { EntraError, scopeFor, TokenCache, tokenCredential, type TokenSource } from './token-credential';

/** The clouds Azure DevOps names in a service connection's `environment`, and their endpoints. */
export const CLOUDS: Record<string, { resourceManager: string; authority: string; appServiceScope?: string }> = {
  azurecloud: {
    resourceManager: 'https://management.azure.com/',
    authority: 'https://login.microsoftonline.com/',
    appServiceScope: 'https://appservice.azure.com/.default',
  },
  azureusgovernment: {
    resourceManager: 'https://management.usgovcloudapi.net/',
    authority: 'https://login.microsoftonline.us/',
    appServiceScope: 'https://appservice.azure.us/.default',
  },
  azurechinacloud: {
    resourceManager: 'https://management.chinacloudapi.cn/',
    authority: 'https://login.chinacloudapi.cn/',
    appServiceScope: 'https://appservice.azure.cn/.default',
  },
  // Azure Germany is closed and Azure Stack has no App Service audience: ARM tokens there.
};

export interface AzureRmConnection {
  /** `AzureCloud`, `AzureUSGovernment`, `AzureChinaCloud`, `AzureStack`, ... */
  environment: string;
  resourceManagerUrl: string;
  subscriptionId: string;
  subscriptionName?: string;
  source: TokenSource;
}

export interface AppServiceTarget {
  appName: string;
  /** Found from the app name when not given. */
  resourceGroup?: string;
  /** Undefined or `production` for the production slot. */
  slot?: string;
}

export interface ConnectLog {
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
}

export interface ConnectOptions {
  /** User-Agent, deadline, the agent's proxy and certificates, for every request. */
  http: HttpContext;
  log: ConnectLog;
  /** Gets every secret (publishing password, basic header) before it is used. */
  onSecret: (value: string) => void;
}

export interface AppServiceKudu {
  scmUrl: string;
  credential: KuduCredential;
  site: AppServiceSite;
}

export function subscriptionLabel(c: Pick<AzureRmConnection, 'subscriptionId' | 'subscriptionName'>): string {
  return c.subscriptionName && c.subscriptionName !== c.subscriptionId ? `'${c.subscriptionName}' (${c.subscriptionId})` : `'${c.subscriptionId}'`;
}

export async function connectAppService(connection: AzureRmConnection, target: AppServiceTarget, options: ConnectOptions): Promise<AppServiceKudu> {
  const principal = connection.source.description;
  const armTokens = new TokenCache(connection.source, scopeFor(connection.resourceManagerUrl), options.log.debug);
  const arm = new ArmClient({
    resourceManagerUrl: connection.resourceManagerUrl,
    credential: tokenCredential(armTokens, `a Microsoft Entra token (Azure Resource Manager) of ${principal}`),
    http: options.http,
    principal,
    subscriptionLabel: subscriptionLabel(connection),
  });
  try {
    // First the token on its own, so that a refused identity reads as Entra's answer.
    await armTokens.get();
    const slot = target.slot && target.slot.toLowerCase() !== 'production' ? target.slot : undefined;
    let resourceGroup = target.resourceGroup;
    if (!resourceGroup) {
      resourceGroup = await arm.findResourceGroup(connection.subscriptionId, target.appName);
      options.log.info(`Found app '${target.appName}' in resource group '${resourceGroup}'.`);
    }
    const site = await arm.getSite({ subscriptionId: connection.subscriptionId, resourceGroup, name: target.appName, slot });
    if (site.state && site.state.toLowerCase() !== 'running') {
      options.log.warn(`${siteLabel(site)} is ${site.state}; its SCM site may not answer until the app is started.`);
    }
    const cloud = CLOUDS[connection.environment.toLowerCase()];
    const credential = new AppServiceCredential(site, arm, armTokens, cloud?.appServiceScope, principal, options);
    // Get the first Kudu token now: a refused App Service audience falls back here, before any request.
    await credential.authorization();
    options.log.info(`Kudu: ${site.scmUrl} (${siteLabel(site)}, resource group '${resourceGroup}'), as ${principal}.`);
    return { scmUrl: site.scmUrl, credential, site };
  } catch (err) {
    arm.close();
    connection.source.close?.();
    throw err;
  }
}

type Stage = 'appservice' | 'arm' | 'basic';

/**
 * Kudu's Authorization header for an ARM connection, with the fallbacks in order. A 401 first
 * gets a fresh token of the same kind (it may have been revoked, or the clocks disagree); a 401
 * on a token fresh from Entra moves to the next kind.
 */
class AppServiceCredential implements KuduCredential {
  readonly secrets: string[] = [];
  private stage: Stage;
  private readonly appServiceTokens: TokenCache | undefined;
  private basicHeader: string | undefined;
  private basicUser = '';

  constructor(
    private readonly site: AppServiceSite,
    private readonly arm: ArmClient,
    private readonly armTokens: TokenCache,
    appServiceScope: string | undefined,
    private readonly principal: string,
    private readonly options: ConnectOptions,
  ) {
    this.appServiceTokens = appServiceScope ? new TokenCache(armTokens.source, appServiceScope, options.log.debug) : undefined;
    this.stage = this.appServiceTokens ? 'appservice' : 'arm';
  }

  get kind(): 'basic' | 'bearer' {
    return this.stage === 'basic' ? 'basic' : 'bearer';
  }

  get description(): string {
    switch (this.stage) {
      case 'appservice':
        return `a Microsoft Entra token (App Service audience) of ${this.principal}`;
      case 'arm':
        return `a Microsoft Entra token (Azure Resource Manager audience) of ${this.principal}`;
      case 'basic':
        return `the publishing credentials of user '${this.basicUser}' (read through Azure Resource Manager)`;
    }
  }

  async authorization(): Promise<string> {
    if (this.stage === 'appservice') {
      try {
        return `Bearer ${(await this.appServiceTokens!.get()).token}`;
      } catch (err) {
        if (!(err instanceof EntraError && err.refused)) throw err;
        // Some tenants cannot issue the App Service audience yet; Kudu takes ARM tokens too.
        this.options.log.info(`Microsoft Entra ID gives no token for the App Service audience here (${err.code ?? 'refused'}); using the Azure Resource Manager token for Kudu.`);
        this.stage = 'arm';
      }
    }
    if (this.stage === 'arm') return `Bearer ${(await this.armTokens.get()).token}`;
    return this.basicHeader!;
  }

  async refresh(): Promise<boolean> {
    const tokens = this.stage === 'appservice' ? this.appServiceTokens! : this.stage === 'arm' ? this.armTokens : undefined;
    if (tokens && !tokens.justRenewed) {
      await tokens.renew();
      return true;
    }
    if (this.stage === 'appservice') {
      this.options.log.warn(`Kudu did not accept a fresh App Service token (401); using the Azure Resource Manager token instead.`);
      this.stage = 'arm';
      await this.armTokens.renew();
      return true;
    }
    if (this.stage === 'arm') return this.toBasic();
    return false;
  }

  close(): void {
    this.arm.close();
    this.armTokens.source.close?.();
  }

  private async toBasic(): Promise<boolean> {
    if (!(await this.arm.scmBasicAuthAllowed(this.site))) {
      this.options.log.debug(`Kudu took no Entra token and ${siteLabel(this.site)} does not allow SCM basic auth: nothing left to try.`);
      return false;
    }
    let creds: { username: string; password: string };
    try {
      creds = await this.arm.publishingCredentials(this.site);
    } catch (err) {
      this.options.log.debug(`Publishing credentials not readable: ${(err as Error).message}`);
      return false;
    }
    const encoded = Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64');
    this.options.onSecret(creds.password);
    this.options.onSecret(encoded);
    this.basicUser = creds.username;
    this.basicHeader = `Basic ${encoded}`;
    this.stage = 'basic';
    this.options.log.warn(
      `Kudu accepted no Microsoft Entra token for ${siteLabel(this.site)}; the app allows SCM basic auth, so its publishing credentials are used.`,
    );
    return true;
  }
}
