/**
 * How a request reaches its host: directly, or through a proxy (CONNECT for https://, forwarding
 * with an absolute URL for http://), trusting extra certificate authorities and presenting a client
 * certificate when there is one. lib/task/agent-settings.ts fills these from what the agent gives
 * every task (Agent.ProxyUrl, Agent.ProxyBypassList, Agent.CAInfo, Agent.ClientCert, ...).
 *
 * @example
 *   const route = routeTo(new URL('https://blog.scm.azurewebsites.net/'), { proxy: { url: 'http://proxy:8080', bypass: [] } });
 *   https.request(url, { agent: route.agent, ... });
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';

export interface ProxySettings {
  /** `http://proxy.example:8080`; an `https://` proxy is reached over TLS. */
  url: string;
  username?: string;
  password?: string;
  /** Requests whose URL one of these matches go direct (the agent's bypass list: regular expressions). */
  bypass?: RegExp[];
}

export interface TlsSettings {
  /** PEM certificates of authorities to trust besides the system's (a company CA). */
  ca?: string | Buffer;
  /** A client certificate (PEM) and its key, or a PKCS#12 archive; the passphrase of either. */
  cert?: string | Buffer;
  key?: string | Buffer;
  pfx?: Buffer;
  passphrase?: string;
}

export interface NetworkSettings {
  proxy?: ProxySettings;
  tls?: TlsSettings;
}

export interface Route {
  agent: http.Agent;
  /** Set when the request goes through a proxy: its address, for messages (no credentials). */
  proxy?: string;
  /** For http:// through a proxy: send to the proxy, with the absolute URL as the path. */
  forward?: { host: string; port: number; secure: boolean; authorization?: string };
}

/** The instance metadata endpoint of Azure VMs is link-local: no proxy can reach it for us. */
const LINK_LOCAL = /^169\.254\.\d+\.\d+$/;

/** The proxy for `url`, unless there is none or the bypass list sends it direct. */
export function proxyFor(url: URL, settings: NetworkSettings | undefined): URL | undefined {
  const proxy = settings?.proxy;
  if (!proxy?.url) return undefined;
  if (LINK_LOCAL.test(url.hostname)) return undefined;
  // As task-lib does it: each pattern is tested against the whole URL.
  if ((proxy.bypass ?? []).some((pattern) => new RegExp(pattern.source, pattern.flags.replace('g', '')).test(url.href))) return undefined;
  return new URL(proxy.url);
}

/** `Basic …` for the proxy's credentials, or undefined without a user name. */
export function proxyAuthorization(proxy: ProxySettings | undefined): string | undefined {
  if (!proxy?.username) return undefined;
  return 'Basic ' + Buffer.from(`${proxy.username}:${proxy.password ?? ''}`, 'utf8').toString('base64');
}

/** An agent for requests to `target`'s origin, with keep-alive, honouring the settings. */
export function routeTo(target: URL, settings: NetworkSettings | undefined, options: { maxSockets?: number; idleTimeoutMs?: number } = {}): Route {
  const proxy = proxyFor(target, settings);
  const base = { keepAlive: true, maxSockets: options.maxSockets ?? 8 };
  const secure = target.protocol === 'https:';
  const tlsOptions = secure ? tlsOptionsFor(settings?.tls) : {};
  if (!proxy) return { agent: secure ? new https.Agent({ ...base, ...tlsOptions }) : new http.Agent(base) };
  const authorization = proxyAuthorization(settings?.proxy);
  const shown = `${proxy.protocol}//${proxy.host}`;
  if (!secure) {
    const forwardAgent = proxy.protocol === 'https:' ? new https.Agent({ ...base, ...tlsOptionsFor(settings?.tls) }) : new http.Agent(base);
    return { agent: forwardAgent, proxy: shown, forward: { host: proxy.hostname, port: portOf(proxy), secure: proxy.protocol === 'https:', authorization } };
  }
  const tunnel = new TunnelAgent({ ...base, ...tlsOptions }, proxy, authorization, tlsOptionsFor(settings?.tls), options.idleTimeoutMs ?? 100_000);
  return { agent: tunnel, proxy: shown };
}

/** TLS options: the system's authorities plus the extra ones, and the client certificate. */
export function tlsOptionsFor(settings: TlsSettings | undefined): tls.ConnectionOptions {
  if (!settings) return {};
  const options: tls.ConnectionOptions = {};
  if (settings.ca) {
    // `ca` replaces Node's list; keep the system's (and NODE_EXTRA_CA_CERTS where Node can say).
    const defaults = (tls as { getCACertificates?: (kind: string) => string[] }).getCACertificates?.('default') ?? tls.rootCertificates;
    options.ca = [...defaults, settings.ca.toString()];
  }
  if (settings.pfx) options.pfx = settings.pfx;
  if (settings.cert) options.cert = settings.cert;
  if (settings.key) options.key = settings.key;
  if (settings.passphrase) options.passphrase = settings.passphrase;
  return options;
}

/** An error from the proxy while opening the tunnel (its status, when it answered). */
export class ProxyError extends Error {
  override readonly name = 'ProxyError';
  constructor(
    message: string,
    readonly code: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/**
 * HTTPS through a proxy: each new connection starts with `CONNECT host:port`, then TLS to the
 * host inside the tunnel (so the proxy sees neither the path nor the credentials we send).
 */
class TunnelAgent extends https.Agent {
  constructor(
    options: https.AgentOptions,
    private readonly proxy: URL,
    private readonly authorization: string | undefined,
    private readonly proxyTls: tls.ConnectionOptions,
    private readonly idleTimeoutMs: number,
  ) {
    super(options);
  }

  override createConnection(options: https.RequestOptions & tls.ConnectionOptions, callback: (err: Error | null, socket?: Duplex) => void): undefined {
    const host = String(options.host ?? options.hostname ?? 'localhost');
    const port = Number(options.port ?? 443);
    const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    const headers: Record<string, string> = { Host: authority };
    if (this.authorization) headers['Proxy-Authorization'] = this.authorization;
    const request = (this.proxy.protocol === 'https:' ? https : http).request({
      host: this.proxy.hostname,
      port: portOf(this.proxy),
      method: 'CONNECT',
      path: authority,
      headers,
      agent: false,
      ...(this.proxy.protocol === 'https:' ? this.proxyTls : {}),
    });
    let done = false;
    const finish = (err: Error | null, socket?: Duplex) => {
      if (done) return;
      done = true;
      signal?.removeEventListener('abort', onAbort);
      callback(err, socket);
    };
    // The transport's abort signal for this try (see transport.ts): a hanging proxy ends with it.
    const signal = (options as { tunnelSignal?: AbortSignal }).tunnelSignal;
    const onAbort = () => request.destroy(new ProxyError(`the proxy ${this.proxy.host} did not open the tunnel in time`, 'PROXY_TIMEOUT'));
    signal?.addEventListener('abort', onAbort, { once: true });
    request.setTimeout(this.idleTimeoutMs, onAbort);
    request.once('error', (err) => finish(err));
    request.once('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        const what = res.statusCode === 407 ? 'asks for credentials the agent did not give, or refused them' : `answered ${res.statusCode} ${res.statusMessage ?? ''}`.trim();
        finish(new ProxyError(`the proxy ${this.proxy.host} ${what} to CONNECT ${authority}`, res.statusCode === 407 ? 'PROXY_AUTH' : 'PROXY_REFUSED', res.statusCode));
        return;
      }
      const secure = tls.connect({ ...options, socket, servername: options.servername ?? (isIp(host) ? undefined : host) });
      secure.once('secureConnect', () => finish(null, secure));
      secure.once('error', (err) => finish(err));
    });
    request.end();
    return undefined;
  }
}

function portOf(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}

function isIp(host: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(host) || host.includes(':');
}
