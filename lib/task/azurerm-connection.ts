/**
 * Reads an Azure Resource Manager service connection the way the agent hands it to a task, turns
 * it into an Entra token source, and connects to the app the task's inputs name. The agent's names (as Microsoft's azure-arm-rest reads them):
 *
 * - scheme `ServicePrincipal`: parameters `serviceprincipalid`, `tenantid`, `authenticationType`
 *   (`spnKey` or `spnCertificate`), `serviceprincipalkey` or `servicePrincipalCertificate`;
 * - scheme `WorkloadIdentityFederation`: `serviceprincipalid`, `tenantid`; the assertion is the
 *   job's OIDC token from `System.OidcRequestUri`, asked for with `System.AccessToken`;
 * - scheme `ManagedServiceIdentity`: `tenantid`; data `msiclientId` for a user-assigned identity;
 * - data: `subscriptionId`, `subscriptionName`, `environment`, `activeDirectoryAuthority`
 *   (or the older `environmentAuthorityUrl`), `scopeLevel`; the URL is Resource Manager's.
 *
 * Values are read with getEndpointAuthorization, which, unlike getEndpointAuthorizationParameter,
 * does not write them to the debug log, and every secret is registered before it is used.
 */
import * as tl from 'azure-pipelines-task-lib/task';
import { CLOUDS, connectAppService, type AppServiceKudu, type AzureRmConnection, type ConnectLog } from '../azure/app-service';
import { ArmError, type ArmProblem } from '../azure/arm';
import { entraTokenSource, pipelineAssertion, type EntraAuth } from '../azure/token-credential';
import type { HttpContext } from '../http';
import { getRequired, getString } from './inputs';

/**
 * The task's AzureRM inputs (`azureSubscription`, `appName`, `resourceGroupName`, `slotName`) →
 * the app's SCM URL and a credential for it. Called from kudu-connection.ts only.
 */
export async function azureRmKudu(options: { http: HttpContext; log: ConnectLog }): Promise<AppServiceKudu> {
  const id = tl.getInput('azureSubscription', false)?.trim();
  if (!id) throw new Error("Input 'azureSubscription' is required: choose the Azure Resource Manager service connection for the app's subscription.");
  const connection = azureRmConnection(id, { input: 'azureSubscription', http: options.http, debug: (m) => options.log.debug(m) });
  const target = { appName: getRequired('appName'), resourceGroup: getString('resourceGroupName'), slot: getString('slotName') };
  try {
    return await connectAppService(connection, target, { http: options.http, log: options.log, onSecret: (value) => tl.setSecret(value) });
  } catch (err) {
    throw err instanceof ArmError && err.problem ? new ArmError(`${err.message} ${inputAdvice(err.problem, err.slot)}`, err.status, err.code, { cause: err, problem: err.problem }) : err;
  }
}

/** What to change in the task's inputs when the app cannot be found. */
function inputAdvice(problem: ArmProblem, slot: boolean): string {
  switch (problem) {
    case 'cannot-list':
      return "Set the task's resourceGroupName input, or give the identity the Reader role on the subscription.";
    case 'app-not-found':
      return "Check appName and the service connection's subscription, or set resourceGroupName if the identity can only read the app's resource group.";
    case 'app-ambiguous':
      return 'Set resourceGroupName.';
    case 'site-not-found':
      return `Check appName${slot ? ', slotName' : ''} and resourceGroupName, and that the service connection is for the app's subscription.`;
  }
}

export interface EndpointOptions {
  /** The input that named the connection, for messages. */
  input: string;
  /** User-Agent, deadline, the agent's proxy and certificates. */
  http: HttpContext;
  debug: (message: string) => void;
}

export function azureRmConnection(id: string, options: EndpointOptions): AzureRmConnection {
  const auth = tl.getEndpointAuthorization(id, true);
  if (!auth) {
    throw new Error(
      `The Azure Resource Manager service connection '${id}' (input '${options.input}') cannot be read. Check that it exists and that this pipeline is allowed to use it.`,
    );
  }
  const parameters = auth.parameters ?? {};
  const param = (key: string): string | undefined => {
    const found = Object.keys(parameters).find((k) => k.toLowerCase() === key.toLowerCase());
    const value = found ? parameters[found]?.trim() : undefined;
    return value || undefined;
  };
  const data = (key: string): string | undefined => tl.getEndpointDataParameter(id, key, true)?.trim() || undefined;
  const required = (value: string | undefined, what: string): string => {
    if (!value) throw new Error(`The Azure Resource Manager service connection '${id}' has no ${what}. Edit the service connection, or create it again.`);
    return value;
  };

  const environment = data('environment') ?? 'AzureCloud';
  const cloud = CLOUDS[environment.toLowerCase()];
  const resourceManagerUrl = tl.getEndpointUrl(id, true)?.trim() || cloud?.resourceManager;
  const authorityHost = data('activeDirectoryAuthority') ?? data('environmentAuthorityUrl') ?? cloud?.authority;
  const subscriptionId = data('subscriptionId');
  if (!subscriptionId) {
    const scope = data('scopeLevel');
    throw new Error(
      `The service connection '${id}' is not scoped to a subscription${scope ? ` (its scope level is ${scope})` : ''}. ` +
        `Kudu tasks need an Azure Resource Manager connection with the scope level Subscription, for the app's subscription.`,
    );
  }

  const entra = entraAuthOf(id, auth.scheme, { param, data, required, http: options.http });
  if (!resourceManagerUrl || (!authorityHost && entra.kind !== 'managedIdentity')) {
    throw new Error(
      `The service connection '${id}' is for the '${environment}' environment, and does not say where its Resource Manager and Microsoft Entra endpoints are.`,
    );
  }
  options.debug(`Azure Resource Manager connection: environment ${environment}, ${resourceManagerUrl}, authority ${authorityHost ?? '(managed identity)'}, scheme ${auth.scheme}.`);
  return {
    environment,
    resourceManagerUrl,
    subscriptionId,
    subscriptionName: data('subscriptionName'),
    source: entraTokenSource(entra, { authorityHost: authorityHost ?? 'https://login.microsoftonline.com/', onSecret: tl.setSecret, debug: options.debug, http: options.http }),
  };
}

interface ConnectionFields {
  param: (key: string) => string | undefined;
  data: (key: string) => string | undefined;
  required: (value: string | undefined, what: string) => string;
  http: HttpContext;
}

/** The identity the connection's authentication scheme describes; its secret registered before use. */
function entraAuthOf(id: string, scheme: string | undefined, { param, data, required, http }: ConnectionFields): EntraAuth {
  switch ((scheme || 'ServicePrincipal').toLowerCase()) {
    case 'serviceprincipal': {
      const tenantId = required(param('tenantid'), 'tenant ID');
      const clientId = required(param('serviceprincipalid'), 'service principal ID');
      if ((param('authenticationType') ?? 'spnKey').toLowerCase() === 'spncertificate') {
        const pem = required(param('servicePrincipalCertificate'), 'certificate');
        registerPem(pem);
        return { kind: 'certificate', tenantId, clientId, pem };
      }
      const secret = required(param('serviceprincipalkey'), 'service principal key');
      tl.setSecret(secret);
      return { kind: 'secret', tenantId, clientId, secret };
    }
    case 'workloadidentityfederation': {
      const tenantId = required(param('tenantid'), 'tenant ID');
      const clientId = required(param('serviceprincipalid'), 'service principal ID');
      return { kind: 'federated', tenantId, clientId, assertion: pipelineAssertion({ ...oidcRequest(), serviceConnectionId: id, http, onSecret: tl.setSecret }) };
    }
    case 'managedserviceidentity':
      return { kind: 'managedIdentity', clientId: data('msiclientId') };
    case 'publishprofile':
      throw new Error(
        `The service connection '${id}' uses a publish profile, which holds only the app's basic-auth publishing credentials. ` +
          `Use a Generic connection with those credentials, or an Azure Resource Manager connection with workload identity federation, a service principal or a managed identity.`,
      );
    default:
      throw new Error(`The service connection '${id}' uses the authentication scheme '${scheme}', which this task does not support.`);
  }
}

/** Where to ask for the job's OIDC token, and the token to ask with. */
function oidcRequest(): { requestUri: string; systemAccessToken: string } {
  const system = tl.getEndpointAuthorization('SYSTEMVSSCONNECTION', true)?.parameters ?? {};
  const accessKey = Object.keys(system).find((k) => k.toLowerCase() === 'accesstoken');
  const systemAccessToken = (accessKey ? system[accessKey] : undefined) || tl.getVariable('System.AccessToken');
  if (!systemAccessToken) {
    throw new Error(
      "Workload identity federation needs the job's access token (System.AccessToken) to get an OIDC token, and the task cannot see it. " +
        'Check that the job is allowed to use its OAuth token.',
    );
  }
  tl.setSecret(systemAccessToken);
  let requestUri = tl.getVariable('System.OidcRequestUri');
  if (!requestUri) {
    // Agents before System.OidcRequestUri (2024): the same endpoint, built from the job's ids.
    const collection = tl.getVariable('System.CollectionUri') ?? tl.getVariable('System.TeamFoundationCollectionUri');
    const ids = ['System.TeamProjectId', 'System.HostType', 'System.PlanId', 'System.JobId'].map((v) => tl.getVariable(v));
    if (!collection || ids.some((v) => !v)) {
      throw new Error('Workload identity federation needs System.OidcRequestUri (or the job ids to build it), and the task cannot see it. Update the agent.');
    }
    const [project, hub, plan, job] = ids as string[];
    requestUri = new URL(`${project}/_apis/distributedtask/hubs/${hub}/plans/${plan}/jobs/${job}/oidctoken`, collection.endsWith('/') ? collection : collection + '/').toString();
  }
  return { requestUri, systemAccessToken };
}

/**
 * A PEM is several lines, and the agent masks one line at a time (a multi-line secret is refused
 * outright), so each line of the private key is registered on its own.
 */
function registerPem(pem: string): void {
  const key = /-----BEGIN [A-Z ]*PRIVATE KEY-----([\s\S]+?)-----END/.exec(pem)?.[1] ?? '';
  for (const line of key.split(/\r?\n/).map((l) => l.trim())) {
    if (line.length >= 16) tl.setSecret(line);
  }
}
