/**
 * Turns the task's service connection inputs into a Kudu client: the one place every Kudu task
 * goes through, for either kind of connection (`connectionType`, Azure Resource Manager by default).
 *
 * - Generic (`kuduService`): the URL is the SCM site; user name and password are the publishing
 *   credentials, or an empty user name and a bearer token in the password.
 * - AzureRM (`azureSubscription`, `appName`, `resourceGroupName`, `slotName`): the app is found
 *   through Azure Resource Manager, and Kudu gets Microsoft Entra tokens (lib/azure).
 *
 * Every secret is registered with the agent before any request is made, so it is masked wherever
 * it might surface.
 */
import * as os from 'node:os';
import * as tl from 'azure-pipelines-task-lib/task';
import { basicCredential, bearerCredential, type KuduCredential } from '../kudu/credentials';
import { KuduClient } from '../kudu/client';
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
  const agent = userAgent(options.taskName);
  // Loaded only for AzureRM: MSAL and the ARM code cost memory and start-up time the Generic path does not need.
  const { scmUrl, credential } =
    type === 'AzureRM' ? await (await import('./azurerm-connection')).azureRmKudu({ userAgent: agent, log: options.log }) : genericKudu(options);
  return new KuduClient({
    scmUrl,
    credential,
    userAgent: agent,
    retry: options.maxAttempts ? { maxAttempts: options.maxAttempts } : undefined,
    debug: (m) => options.log.debug(m),
    onRetry: ({ attempt, delayMs, reason }) => options.log.info(`Retrying in ${(delayMs / 1000).toFixed(1)} s (try ${attempt + 1}): ${reason}`),
  });
}

function genericKudu(options: ConnectionOptions): { scmUrl: string; credential: KuduCredential } {
  const input = options.input ?? 'kuduService';
  const id = tl.getInput(input, false)?.trim();
  if (!id) throw new Error(`Input '${input}' is required: choose the Generic service connection that points at the app's SCM site.`);
  const url = tl.getEndpointUrl(id, true);
  if (!url) {
    throw new Error(`The service connection '${id}' (input '${input}') has no URL, or the task cannot see it. Check that it exists and that this pipeline is allowed to use it.`);
  }
  // getEndpointAuthorization, unlike getEndpointAuthorizationParameter, does not debug-log the
  // values it returns: the password must not reach any log line before it is registered.
  const parameters = tl.getEndpointAuthorization(id, true)?.parameters ?? {};
  const username = parameters.username ?? '';
  const password = parameters.password ?? '';
  if (!password) {
    throw new Error(
      `The service connection for ${url} has no password. Put the app's publishing password there (user name '$<app name>'), ` +
        `or leave the user name empty and put a bearer token in the password.`,
    );
  }
  const credential: KuduCredential = username ? basicCredential(username, password) : bearerCredential(password, 'the bearer token of the service connection');
  for (const secret of credential.secrets) tl.setSecret(secret);
  return { scmUrl: url, credential };
}
