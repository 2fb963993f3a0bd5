/**
 * What the agent gives every task besides its inputs, read once per run: the task's deadline, and
 * how requests reach the network (the agent's proxy with its credentials and bypass list, its
 * certificate authority file and client certificate), as Microsoft's tasks read them through
 * task-lib (`getHttpProxyConfiguration`, `getHttpCertConfiguration`). Every credential is
 * registered with `setSecret` before it is used.
 */
import * as fs from 'node:fs';
import * as tl from 'azure-pipelines-task-lib/task';
import { Deadline } from '../deadline';
import { proxyAuthorization, type NetworkSettings, type ProxySettings, type TlsSettings } from '../http';
import type { Log } from '../log';

/**
 * How long a task without a `timeoutMinutes` input may run at most: 6 hours, the longest a job may
 * run on Microsoft-hosted agents. Every request, retry, poll and listing checks it, so a server
 * that trickles or never ends cannot hold a task beyond it. The step's own `timeoutInMinutes`
 * (its control options) is the place for a shorter limit.
 */
export const DEFAULT_TASK_MINUTES = 360;

/** The run's one deadline: from the task's `timeoutMinutes` when it has one, otherwise the default. */
export function taskDeadline(timeoutMinutes?: number, input = 'timeoutMinutes'): Deadline {
  if (timeoutMinutes === undefined) {
    return Deadline.after(DEFAULT_TASK_MINUTES * 60_000, `the task's limit of ${DEFAULT_TASK_MINUTES} minutes (tasks without a timeoutMinutes input)`);
  }
  return Deadline.after(timeoutMinutes * 60_000, `${input} (${timeoutMinutes})`);
}

/** The agent's proxy and certificates, or undefined when it has neither. */
export function agentNetwork(log: Log): NetworkSettings | undefined {
  const proxy = agentProxy(log);
  const tls = agentCertificates(log);
  return proxy || tls ? { proxy, tls } : undefined;
}

function agentProxy(log: Log): ProxySettings | undefined {
  let config: tl.ProxyConfiguration | null;
  try {
    config = tl.getHttpProxyConfiguration();
  } catch (err) {
    throw new Error(`The agent's proxy bypass list (Agent.ProxyBypassList) is not a JSON list of patterns: ${(err as Error).message}`, { cause: err });
  }
  if (!config?.proxyUrl) return undefined;
  const proxy: ProxySettings = { url: config.proxyUrl, username: config.proxyUsername || undefined, password: config.proxyPassword || undefined };
  // The agent marks Agent.ProxyPassword secret itself; registering it (and the header built from
  // it) again costs nothing and covers agents that do not.
  secret(proxy.password);
  secret(proxyAuthorization(proxy)?.slice('Basic '.length));
  let url: URL;
  try {
    url = new URL(proxy.url);
  } catch {
    throw new Error(`The agent's proxy URL (Agent.ProxyUrl) is not a URL. Fix the agent's proxy settings (its .proxy file, or config.sh --proxyurl).`);
  }
  if (url.username || url.password) {
    secret(decodeURIComponent(url.password));
    proxy.username ??= decodeURIComponent(url.username);
    proxy.password ??= decodeURIComponent(url.password);
    url.username = url.password = '';
    proxy.url = url.toString();
  }
  proxy.bypass = (config.proxyBypassHosts ?? []).map((pattern) => {
    try {
      return new RegExp(pattern, 'i');
    } catch (err) {
      throw new Error(`The agent's proxy bypass list (Agent.ProxyBypassList) holds '${pattern}', which is not a regular expression: ${(err as Error).message}`);
    }
  });
  log.info(`Requests go through the agent's proxy ${url.protocol}//${url.host}${proxy.username ? ` as '${proxy.username}'` : ''}` + (proxy.bypass.length ? `, except for ${proxy.bypass.length} bypass pattern(s).` : '.'));
  return proxy;
}

function agentCertificates(log: Log): TlsSettings | undefined {
  const config = tl.getHttpCertConfiguration();
  if (!config) return undefined;
  secret(config.passphrase);
  const settings: TlsSettings = { passphrase: config.passphrase || undefined };
  if (config.caFile) {
    settings.ca = readAgentFile(config.caFile, "certificate authority file (Agent.CAInfo)");
    log.debug(`Trusting the agent's certificate authorities in ${config.caFile} besides the system's.`);
  }
  if (config.certArchiveFile) settings.pfx = readAgentFile(config.certArchiveFile, 'client certificate archive (Agent.ClientCertArchive)');
  else if (config.certFile) {
    settings.cert = readAgentFile(config.certFile, 'client certificate (Agent.ClientCert)');
    if (config.keyFile) settings.key = readAgentFile(config.keyFile, 'client certificate key (Agent.ClientCertKey)');
  }
  if (settings.pfx || settings.cert) log.debug(`Presenting the agent's client certificate (${config.certArchiveFile ?? config.certFile}).`);
  return settings;
}

function readAgentFile(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new Error(`The agent's ${what} '${file}' cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Check the agent's certificate settings.`);
  }
}

/** setSecret, for values that may be absent; the agent refuses multi-line secrets, so each line goes alone. */
export function secret(value: string | undefined): void {
  if (!value) return;
  for (const line of value.split(/\r?\n/)) if (line) tl.setSecret(line);
}
