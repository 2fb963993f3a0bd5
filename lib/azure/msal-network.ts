/**
 * MSAL's requests (Microsoft Entra ID's metadata and token endpoints, the managed identity
 * endpoints) through lib/http, so they take the agent's proxy and certificates, retry like every
 * other request and end by the task's deadline. MSAL's own client uses Node's fetch, which knows
 * neither the agent's proxy nor its CA file.
 *
 * MSAL swallows some network errors (the metadata request) and wraps others in its own; the last
 * failure is kept here so that the message can say what really happened.
 */
import { AuthError, type INetworkModule, type NetworkResponse } from '@azure/msal-node';
import type { IncomingHttpHeaders } from 'node:http';
import { DeadlineError } from '../deadline';
import { HttpError, HttpTransport, type HttpContext, type HttpMethod } from '../http';

/** Entra's and IMDS's error answers, which MSAL reads itself; 408, 429 and 5xx are retried first. */
const MSAL_READS = Array.from({ length: 100 }, (_, i) => 400 + i).filter((s) => s !== 408 && s !== 429);

export interface MsalNetwork {
  client: INetworkModule;
  /** What the last request that failed ran into (an HttpError or the DeadlineError). */
  lastFailure: Error | undefined;
  close(): void;
}

export function msalNetwork(http: HttpContext): MsalNetwork {
  const transports = new Map<string, HttpTransport>();
  const network: MsalNetwork = {
    lastFailure: undefined,
    client: {
      sendGetRequestAsync: (url, options) => send('GET', url, options),
      sendPostRequestAsync: (url, options) => send('POST', url, options),
    },
    close: () => {
      for (const t of transports.values()) t.close();
      transports.clear();
    },
  };

  async function send<T>(method: HttpMethod, urlText: string, options?: { headers?: Record<string, string>; body?: string }): Promise<NetworkResponse<T>> {
    const url = new URL(urlText);
    let transport = transports.get(url.origin);
    if (!transport) {
      transport = new HttpTransport({ ...http, baseUrl: url.origin + '/', retry: { maxAttempts: 3 } });
      transports.set(url.origin, transport);
    }
    try {
      const res = await transport.send({
        method,
        path: url.pathname + url.search,
        headers: options?.headers,
        body: method === 'POST' ? () => Buffer.from(options?.body ?? '', 'utf8') : undefined,
        // Asking for a token changes nothing on the server: safe to send again.
        idempotent: true,
        accept: MSAL_READS,
        maxBodyBytes: 1024 * 1024,
      });
      return { status: res.status, headers: flatten(res.headers), body: parseBody<T>(res.body, res.status) };
    } catch (err) {
      if (!(err instanceof HttpError || err instanceof DeadlineError)) throw err;
      network.lastFailure = err;
      // MSAL passes its own errors on and replaces others with a bare "network_error".
      throw Object.assign(new AuthError('network_error', '', err.message), { cause: err });
    }
  }
  return network;
}

/** MSAL wants JSON; an answer that is not (a proxy's error page) is an empty object it will refuse. */
function parseBody<T>(body: Buffer, status: number): T {
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch {
    return { error: 'not_json', error_description: `The answer (${status}) is not JSON.` } as T;
  }
}

function flatten(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  return out;
}
