/**
 * The few Azure Resource Manager calls a Kudu task needs: find an App Service app (and slot),
 * read its SCM host, and, only for the last-resort basic-auth path, its SCM basic-auth policy and
 * publishing credentials. Requests go through lib/http (retries with backoff and Retry-After,
 * timeouts and the task's deadline, a token refresh after a 401, the agent's proxy); errors are
 * worded from the transport's facts and name the subscription, resource group and app, and the
 * role that is missing.
 *
 * @example
 *   const arm = new ArmClient({ resourceManagerUrl, credential, userAgent, principal, subscriptionLabel });
 *   const resourceGroup = await arm.findResourceGroup(subscriptionId, 'my-blog');
 *   const site = await arm.getSite({ subscriptionId, resourceGroup, name: 'my-blog', slot: 'staging' });
 *   site.scmUrl; // https://my-blog-staging.scm.azurewebsites.net/
 */
import { connectionProblem, HttpError, HttpTransport, type HttpContext, type HttpResponse } from '../http';
import type { KuduCredential } from '../kudu/credentials';

/** Old enough to exist in every cloud, sovereign ones included; has everything read here. */
const WEB_API = '2022-03-01';
const RESOURCES_API = '2021-04-01';

export interface SiteAddress {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  /** Undefined for the production slot. */
  slot?: string;
}

export interface AppServiceSite extends SiteAddress {
  /** The ARM resource id. */
  id: string;
  /** `https://<app>[-<slot>].scm.azurewebsites.net/`, from the site's Repository host name. */
  scmUrl: string;
  /** `Running`, `Stopped`, ... */
  state?: string;
  kind?: string;
}

/** What went wrong in finding the app, for the task's advice (which names its inputs). */
export type ArmProblem = 'cannot-list' | 'app-not-found' | 'app-ambiguous' | 'site-not-found';

export class ArmError extends Error {
  override readonly name = 'ArmError';
  constructor(
    message: string,
    readonly status?: number,
    /** ARM's error code: AuthorizationFailed, ResourceNotFound, SubscriptionNotFound, ... */
    readonly code?: string,
    options?: { cause?: unknown; problem?: ArmProblem; slot?: boolean },
  ) {
    super(message, options);
    this.problem = options?.problem;
    this.slot = options?.slot ?? false;
  }

  readonly problem: ArmProblem | undefined;
  /** The app was asked for with a slot. */
  readonly slot: boolean;
}

export interface ArmClientOptions {
  /** The service connection's Resource Manager URL, e.g. `https://management.azure.com/`. */
  resourceManagerUrl: string;
  /** Bearer tokens for the Resource Manager audience. */
  credential: KuduCredential;
  /** User-Agent, deadline, the agent's proxy and certificates. */
  http: HttpContext;
  /** Who calls, for messages: `service principal '…' (client secret)`. */
  principal: string;
  /** The subscription as users know it: `'Production' (1234…)`. */
  subscriptionLabel: string;
}

/** The role every message about a missing permission names. */
export const ROLE_HINT =
  'Give it the Website Contributor role on the app (or a role with Microsoft.Web/sites/read and Microsoft.Web/sites/publish/Action): ' +
  'Azure portal > the app > Access control (IAM) > Add role assignment.';

export class ArmClient {
  private readonly http: HttpTransport;

  constructor(private readonly options: ArmClientOptions) {
    this.http = new HttpTransport({ ...options.http, baseUrl: options.resourceManagerUrl, authorizer: options.credential, retry: { maxAttempts: 4 } });
  }

  close(): void {
    this.http.close();
  }

  /** The resource group of the one app named `appName` in the subscription. */
  async findResourceGroup(subscriptionId: string, appName: string): Promise<string> {
    const filter = `resourceType eq 'Microsoft.Web/sites' and name eq '${appName.replace(/'/g, "''")}'`;
    let path: string | undefined = `subscriptions/${enc(subscriptionId)}/resources?$filter=${encodeURIComponent(filter)}&api-version=${RESOURCES_API}`;
    const found: string[] = [];
    const what = `the apps named '${appName}' in subscription ${this.options.subscriptionLabel}`;
    while (path) {
      let page: { value?: Array<{ id?: string; name?: string; type?: string }>; nextLink?: string };
      try {
        page = (await this.request('GET', path, what)) as typeof page;
      } catch (err) {
        if (err instanceof ArmError && err.status === 403) {
          throw new ArmError(
            `${capitalise(this.options.principal)} may not list the resources of subscription ${this.options.subscriptionLabel} (403 ${err.code ?? ''}), ` +
              `so the app's resource group cannot be found.`,
            403,
            err.code,
            { cause: err, problem: 'cannot-list' },
          );
        }
        throw err;
      }
      for (const resource of page.value ?? []) {
        // The filter is matched by ARM; check again in case a proxy or an old API ignores it.
        if (resource.name?.toLowerCase() !== appName.toLowerCase() || resource.type?.toLowerCase() !== 'microsoft.web/sites') continue;
        const group = resource.id?.split('/')[4];
        if (group) found.push(group);
      }
      path = page.nextLink ? this.relative(page.nextLink) : undefined;
    }
    if (found.length === 0) {
      throw new ArmError(
        `No App Service app named '${appName}' in subscription ${this.options.subscriptionLabel} (searched every resource group ${this.options.principal} can read).`,
        404,
        'AppNotFound',
        { problem: 'app-not-found' },
      );
    }
    if (found.length > 1) {
      throw new ArmError(
        `More than one app is named '${appName}' in subscription ${this.options.subscriptionLabel}: in resource groups ${found.map((g) => `'${g}'`).join(', ')}.`,
        409,
        'AppAmbiguous',
        { problem: 'app-ambiguous' },
      );
    }
    return found[0];
  }

  async getSite(address: SiteAddress): Promise<AppServiceSite> {
    const label = siteLabel(address);
    const where = `resource group '${address.resourceGroup}' of subscription ${this.options.subscriptionLabel}`;
    let site: { id?: string; kind?: string; properties?: { state?: string; hostNameSslStates?: Array<{ name?: string; hostType?: string | number }>; enabledHostNames?: string[] } };
    try {
      site = (await this.request('GET', `${sitePath(address)}?api-version=${WEB_API}`, `${label} in ${where}`)) as typeof site;
    } catch (err) {
      if (err instanceof ArmError && err.status === 404) {
        const missing = err.code === 'ResourceGroupNotFound' ? `The resource group '${address.resourceGroup}' was not found` : `${capitalise(label)} was not found`;
        throw new ArmError(
          `${missing} in ${err.code === 'ResourceGroupNotFound' ? `subscription ${this.options.subscriptionLabel}` : where} (404 ${err.code ?? ''}).`,
          404,
          err.code,
          { cause: err, problem: 'site-not-found', slot: address.slot !== undefined },
        );
      }
      throw err;
    }
    const states = site.properties?.hostNameSslStates ?? [];
    // The SCM site's host is the one of type Repository (the Kudu site); it is also right for
    // App Service Environments and custom domains, where the name does not follow the pattern.
    const scmHost =
      states.find((s) => String(s.hostType).toLowerCase() === 'repository' || s.hostType === 1)?.name ??
      site.properties?.enabledHostNames?.find((h) => h.includes('.scm.'));
    if (!scmHost) {
      throw new ArmError(
        `Azure Resource Manager reports no SCM (Kudu) host for ${label} in ${where}. Kudu tasks need an App Service app with an SCM site ` +
          `(apps on Linux Consumption or Flex Consumption plans have none).`,
        undefined,
        'NoScmHost',
      );
    }
    return {
      ...address,
      id: site.id ?? '/' + sitePath(address),
      scmUrl: `https://${scmHost}/`,
      state: site.properties?.state,
      kind: site.kind,
    };
  }

  /** Whether the app allows SCM basic auth with publishing credentials; false when it cannot be read. */
  async scmBasicAuthAllowed(address: SiteAddress): Promise<boolean> {
    try {
      const policy = (await this.request('GET', `${sitePath(address)}/basicPublishingCredentialsPolicies/scm?api-version=${WEB_API}`, `the SCM basic-auth policy of ${siteLabel(address)}`)) as {
        properties?: { allow?: boolean };
      };
      return policy.properties?.allow === true;
    } catch (err) {
      if (err instanceof ArmError) {
        this.options.http.debug?.(`SCM basic-auth policy not readable: ${err.message}`);
        return false;
      }
      throw err;
    }
  }

  /** The app's publishing user and password (`config/publishingcredentials/list`). */
  async publishingCredentials(address: SiteAddress): Promise<{ username: string; password: string }> {
    const creds = (await this.request('POST', `${sitePath(address)}/config/publishingcredentials/list?api-version=${WEB_API}`, `the publishing credentials of ${siteLabel(address)}`)) as {
      properties?: { publishingUserName?: string; publishingPassword?: string };
    };
    const username = creds.properties?.publishingUserName;
    const password = creds.properties?.publishingPassword;
    if (!username || !password) throw new ArmError(`Azure Resource Manager sent no publishing credentials for ${siteLabel(address)}.`);
    return { username, password };
  }

  /**
   * The app's (or slot's) app settings (`config/appsettings/list`). Listing reveals the values, so
   * it takes `Microsoft.Web/sites/config/list/Action`, which Reader lacks. Values may be secrets.
   */
  async appSettings(address: SiteAddress): Promise<Record<string, string>> {
    const what = `the app settings of ${siteLabel(address)}`;
    let body: { properties?: unknown };
    try {
      body = (await this.request('POST', `${sitePath(address)}/config/appsettings/list?api-version=${WEB_API}`, what)) as typeof body;
    } catch (err) {
      if (err instanceof ArmError && err.status === 403) {
        throw new ArmError(
          `${capitalise(this.options.principal)} may not list ${what} (403: it needs Microsoft.Web/sites/config/list/Action, which Reader lacks). ${ROLE_HINT}`,
          403,
          err.code,
          { cause: err },
        );
      }
      throw err;
    }
    const props = body?.properties;
    if (typeof props !== 'object' || props === null) return {};
    return Object.fromEntries(Object.entries(props).filter((e): e is [string, string] => typeof e[1] === 'string'));
  }

  private relative(link: string): string {
    const url = new URL(link, this.http.baseUrl);
    return url.pathname + url.search;
  }

  private async request(method: 'GET' | 'POST', path: string, what: string): Promise<unknown> {
    let res: HttpResponse;
    try {
      res = await this.http.send({
        method,
        path,
        headers: { Accept: 'application/json', ...(method === 'POST' ? { 'Content-Type': 'application/json' } : {}) },
        body: method === 'POST' ? () => Buffer.alloc(0) : undefined,
        // Reading and listing change nothing, so even the POST may be sent again.
        idempotent: true,
        maxBodyBytes: 8 * 1024 * 1024,
      });
    } catch (err) {
      if (err instanceof HttpError) throw this.armError(err, what);
      throw err;
    }
    try {
      return JSON.parse(res.body.toString('utf8')) as unknown;
    } catch (err) {
      throw new ArmError(`Azure Resource Manager sent something that is not JSON for ${what} (${res.status}).`, res.status, undefined, { cause: err });
    }
  }

  /** The transport's facts in Resource Manager's terms. */
  private armError(err: HttpError, what: string): ArmError {
    const options = { cause: err };
    if (err.kind !== 'status') {
      return new ArmError(`Could not reach Azure Resource Manager at ${err.host} for ${what}: ${connectionProblem(err)}${err.triesText}`, undefined, err.code, options);
    }
    const code = err.serviceCode;
    const said = `${err.status} ${code ?? ''}`.trim() + (err.bodyText && err.bodyText !== code ? `: ${err.bodyText}` : '');
    switch (err.status) {
      case 401:
        return new ArmError(
          `Azure Resource Manager did not accept the token of ${this.options.principal} for ${what} (${said}). ` +
            `Check that the service connection's tenant is the one of subscription ${this.options.subscriptionLabel}.`,
          401,
          code,
          options,
        );
      case 403:
        return new ArmError(`${capitalise(this.options.principal)} is not allowed to read ${what} (${said}). ${ROLE_HINT}`, 403, code, options);
      default:
        return new ArmError(`Azure Resource Manager answered ${said} for ${what}.${err.triesText}`, err.status, code, options);
    }
  }
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

function sitePath(a: SiteAddress): string {
  const site = `subscriptions/${enc(a.subscriptionId)}/resourceGroups/${enc(a.resourceGroup)}/providers/Microsoft.Web/sites/${enc(a.name)}`;
  return a.slot ? `${site}/slots/${enc(a.slot)}` : site;
}

export function siteLabel(a: { name: string; slot?: string }): string {
  return a.slot ? `slot '${a.slot}' of app '${a.name}'` : `app '${a.name}'`;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
