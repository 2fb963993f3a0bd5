/**
 * Turns the task's service connection inputs into a Kudu client: the one place every Kudu task
 * goes through, for either kind of connection (`connectionType`, Azure Resource Manager by default).
 *
 * - Generic (`kuduService`): the URL is the SCM site; user name and password are the publishing
 *   credentials, or an empty user name and a bearer token in the password. A URL with user-info
 *   (`https://$app:PW@app.scm.azurewebsites.net/`, as Azure's publishing credentials give it)
 *   supplies them when the connection's fields are empty.
 * - AzureRM (`azureSubscription`, `appName`, `resourceGroupName`, `slotName`): the app is found
 *   through Azure Resource Manager, and Kudu gets Microsoft Entra tokens (lib/azure).
 *
 * Every request goes through the agent's proxy and trusts its certificates (agent-settings.ts),
 * and ends by the task's deadline. Every secret is registered with the agent before any request
 * is made, and before anything could print it.
 */
import * as os from 'node:os';
import * as tl from 'azure-pipelines-task-lib/task';
import type { Deadline } from '../deadline';
import type { HttpContext } from '../http';
import { basicCredential, bearerCredential, type KuduCredential } from '../kudu/credentials';
import { KuduClient } from '../kudu/client';
import { agentNetwork, secret, taskDeadline } from './agent-settings';
import { getChoice } from './inputs';
import type { Log } from './log';
import { version } from '../../package.json';

export interface ConnectionOptions {
  /** The input holding the Generic service connection; `kuduService` in every task. */
  input?: string;
  /** Task name, for the User-Agent (Kudu records it in a run's trigger). */
  taskName: string;
  log: Log;
  maxAttempts?: number;
  /** The task's deadline; the default one (DEFAULT_TASK_MINUTES) when not given. */
  deadline?: Deadline;
}

export function userAgent(taskName: string): string {
  return `AppServiceSqliteTasks/${version} (${taskName}; node ${process.version}; ${os.platform()})`;
}

export async function kuduFromServiceConnection(options: ConnectionOptions): Promise<KuduClient> {
  const type = getChoice('connectionType', ['AzureRM', 'Generic'] as const, 'AzureRM');
  if (type === 'AzureRM' && !tl.getInput('azureSubscription', false)?.trim() && tl.getInput(options.input ?? 'kuduService', false)?.trim()) {
    // YAML written before Azure Resource Manager became the default: say so rather than ask for a subscription.
    throw new Error(
      `connectionType is AzureRM (the default) but only a Generic service connection is given ('${options.input ?? 'kuduService'}'). ` +
        `Add connectionType: Generic to use it, or set azureSubscription and appName to connect through Azure Resource Manager.`,
    );
  }
  // Read first: a Generic URL's user-info is registered as a secret before any other line is printed.
  const generic = type === 'Generic' ? genericKudu(options) : undefined;
  const http: HttpContext = {
    userAgent: userAgent(options.taskName),
    deadline: options.deadline ?? taskDeadline(),
    network: agentNetwork(options.log),
    debug: (m) => options.log.debug(m),
    onRetry: ({ attempt, delayMs, error }) => options.log.info(`Retrying in ${(delayMs / 1000).toFixed(1)} s (try ${attempt + 1}): ${error.message}`),
  };
  // Loaded only for AzureRM: MSAL and the ARM code cost memory and start-up time the Generic path does not need.
  const { scmUrl, credential } = generic ?? (await (await import('./azurerm-connection')).azureRmKudu({ http, log: options.log }));
  return new KuduClient({ ...http, scmUrl, credential, retry: options.maxAttempts ? { maxAttempts: options.maxAttempts } : undefined });
}

function genericKudu(options: ConnectionOptions): { scmUrl: string; credential: KuduCredential } {
  const input = options.input ?? 'kuduService';
  const id = tl.getInput(input, false)?.trim();
  if (!id) throw new Error(`Input '${input}' is required: choose the Generic service connection that points at the app's SCM site.`);
  const endpoint = endpointUrl(id);
  if (!endpoint) {
    throw new Error(`The service connection '${id}' (input '${input}') has no URL, or the task cannot see it. Check that it exists and that this pipeline is allowed to use it.`);
  }
  // getEndpointAuthorization, unlike getEndpointAuthorizationParameter, does not debug-log the
  // values it returns: the password must not reach any log line before it is registered.
  const parameters = tl.getEndpointAuthorization(id, true)?.parameters ?? {};
  const fromFields = Boolean(parameters.password);
  const username = (fromFields ? parameters.username : endpoint.username) ?? '';
  const password = (fromFields ? parameters.password : endpoint.password) ?? '';
  if (!password) {
    throw new Error(
      `The service connection for ${endpoint.url} has no password. Put the app's publishing password there (user name '$<app name>'), ` +
        `or leave the user name empty and put a bearer token in the password.`,
    );
  }
  const credential: KuduCredential = username ? basicCredential(username, password) : bearerCredential(password, 'the bearer token of the service connection');
  for (const value of credential.secrets) secret(value);
  return { scmUrl: endpoint.url, credential };
}

/**
 * The connection's URL without its user-info, and that user-info (decoded). Read from the
 * variable task-lib's getEndpointUrl reads, because getEndpointUrl debug-logs the whole URL, and
 * with it a password in the user-info, before anyone could register it.
 */
function endpointUrl(id: string): { url: string; username?: string; password?: string } | undefined {
  const raw = process.env[`ENDPOINT_URL_${id}`]?.trim();
  if (!raw) return undefined;
  const userInfo = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)@/i.exec(raw)?.[1];
  if (userInfo) {
    const password = userInfo.slice(userInfo.indexOf(':') + 1);
    for (const value of [userInfo, safeDecode(userInfo), userInfo.includes(':') ? password : '', safeDecode(password)]) secret(value);
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Not echoed: it may hold a password.
    throw new Error(`The URL of the service connection '${id}' is not a URL. It should be the app's SCM site, like https://<app>.scm.azurewebsites.net/.`);
  }
  const username = safeDecode(url.username) || undefined;
  const password = safeDecode(url.password) || undefined;
  url.username = '';
  url.password = '';
  return { url: url.toString(), username, password };
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
