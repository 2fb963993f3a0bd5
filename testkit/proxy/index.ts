/**
 * A company proxy on 127.0.0.1 for tests: `CONNECT host:port` tunnels (what https:// requests
 * use) and forwarding of absolute-URL requests (what http:// requests use), optionally behind
 * Basic credentials (407 without them). It records every request that reached it, so a test can
 * prove what went through it and what did not. A TLS front end (`startTlsFront`) stands for a
 * server whose certificate only the agent's CA file trusts, and that may demand a client
 * certificate.
 *
 * @example
 *   const proxy = await startProxy({ credentials: { username: 'corp', password: 'pw' } });
 *   await runTask({ ..., variables: { 'Agent.ProxyUrl': proxy.url, 'Agent.ProxyUsername': 'corp' } });
 *   proxy.requests; // [{ method: 'CONNECT', target: '127.0.0.1:4431', status: 200, authorized: true }, ...]
 */
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';

export interface ProxiedRequest {
  /** `CONNECT`, or the forwarded request's method. */
  method: string;
  /** `host:port` for CONNECT, the absolute URL otherwise. */
  target: string;
  /** What the proxy answered (200 for an open tunnel, 407 without credentials, the upstream's status). */
  status: number;
  /** The request carried the right Proxy-Authorization. */
  authorized: boolean;
}

export interface TestProxy {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly requests: ProxiedRequest[];
  /**
   * Local ports of the connections the proxy opened to servers: a server that records its
   * clients' ports can tell what came through the proxy from what came direct.
   */
  readonly upstreamPorts: Set<number>;
  /** Hosts (`host:port`) reached through the proxy, in first-seen order. */
  hosts(): string[];
  close(): Promise<void>;
}

export async function startProxy(options: { credentials?: { username: string; password: string } } = {}): Promise<TestProxy> {
  const requests: ProxiedRequest[] = [];
  const upstreamPorts = new Set<number>();
  const sockets = new Set<Duplex>();
  const expected = options.credentials ? 'Basic ' + Buffer.from(`${options.credentials.username}:${options.credentials.password}`).toString('base64') : undefined;
  const authorized = (req: http.IncomingMessage) => expected === undefined || req.headers['proxy-authorization'] === expected;
  const challenge = 'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test proxy"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n';

  const server = http.createServer((req, res) => {
    const record: ProxiedRequest = { method: req.method ?? 'GET', target: req.url ?? '', status: 0, authorized: authorized(req) };
    requests.push(record);
    if (!record.authorized) {
      record.status = 407;
      req.resume();
      res.writeHead(407, { 'Proxy-Authenticate': 'Basic realm="test proxy"', 'Content-Length': 0 });
      return res.end();
    }
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      record.status = 400;
      res.writeHead(400, { 'Content-Length': 0 });
      return res.end();
    }
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const upstream = http.request({ host: target.hostname, port: target.port || 80, method: req.method, path: target.pathname + target.search, headers }, (up) => {
      record.status = up.statusCode ?? 0;
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
      up.on('error', () => res.destroy());
    });
    upstream.on('socket', (socket) => socket.once('connect', () => upstreamPorts.add(socket.localPort ?? 0)));
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });

  server.on('connect', (req: http.IncomingMessage, client: Duplex, head: Buffer) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    const record: ProxiedRequest = { method: 'CONNECT', target: req.url ?? '', status: 0, authorized: authorized(req) };
    requests.push(record);
    if (!record.authorized) {
      record.status = 407;
      client.end(challenge);
      return;
    }
    const [host, port] = splitHostPort(req.url ?? '');
    const upstream = net.connect(port, host, () => {
      upstreamPorts.add(upstream.localPort ?? 0);
      record.status = 200;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => {
      if (!record.status) {
        record.status = 502;
        client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
      } else client.destroy();
    });
    client.on('close', () => upstream.destroy());
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    upstreamPorts,
    hosts: () => [...new Set(requests.map((r) => (r.method === 'CONNECT' ? r.target : new URL(r.target).host)))],
    async close() {
      for (const s of sockets) s.destroy();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

function splitHostPort(authority: string): [string, number] {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(authority);
  return m ? [m[1], Number(m[2])] : [authority, 443];
}

export interface TlsFront {
  /** `https://127.0.0.1:<port>/` */
  readonly url: string;
  /** Client certificates' subjects seen, one per TLS connection that presented one. */
  readonly clientCertificates: string[];
  close(): Promise<void>;
}

/**
 * An HTTPS front end for an http:// server (a Kudu-compatible server): TLS with `tls.cert`/`key`,
 * and, with `clientCa`, only clients whose certificate that authority signed get through.
 */
export async function startTlsFront(target: string, tls: { cert: Buffer; key: Buffer; clientCa?: Buffer }): Promise<TlsFront> {
  const upstreamUrl = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const clientCertificates: string[] = [];
  const server = https.createServer(
    { cert: tls.cert, key: tls.key, ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}) },
    (req, res) => {
      const upstream = http.request({ host: upstreamUrl.hostname, port: upstreamUrl.port, method: req.method, path: req.url, headers: req.headers, agent }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
        up.on('error', () => res.destroy());
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    },
  );
  server.on('secureConnection', (socket) => {
    const peer = socket.getPeerCertificate();
    if (peer && peer.subject) clientCertificates.push(String(peer.subject.CN));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}/`,
    clientCertificates,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      agent.destroy();
      await closed;
    },
  };
}
