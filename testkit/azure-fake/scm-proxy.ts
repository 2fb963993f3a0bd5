/**
 * An app's SCM site in the Azure fake: a TLS front end on its own port that forwards to a
 * Kudu-compatible server, as App Service's front end does for `<app>.scm.azurewebsites.net`.
 * Bearer tokens are checked here as the front end does: 401 for a token that is not a live one
 * issued for an audience Kudu takes, 403 for a principal without the publish permission on the
 * app. Basic credentials pass through to the Kudu server, which checks them itself (and accepts
 * bearer tokens only through the fake's `kuduAccepts`).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { KuduServer } from '../kudu-server';
import { canPublish } from './arm';
import { bearerOf, sendJson, TLS, type AzureFake, type FakeRequest, type FakeSite } from './index';

export interface ScmProxy {
  /** `https://127.0.0.1:<port>/` */
  url: string;
  close(): Promise<void>;
}

export async function startScmProxy(fake: AzureFake, site: FakeSite, kudu: KuduServer): Promise<ScmProxy> {
  const target = new URL(kudu.url);
  const agent = new http.Agent({ keepAlive: true });
  const server = https.createServer(TLS, (req, res) => {
    const record: FakeRequest = { service: 'scm', method: req.method ?? 'GET', path: req.url ?? '/', status: 0, remotePort: req.socket.remotePort };
    fake.requests.push(record);
    res.on('finish', () => (record.status = res.statusCode));
    const token = bearerOf(req);
    if (token) {
      const issued = fake.tokens.find((t) => t.token === token);
      record.audience = issued?.audience;
      if (!fake.kuduAccepts(token)) {
        req.resume();
        res.writeHead(401, { 'WWW-Authenticate': 'Bearer realm="site"', 'Content-Length': 0 });
        return res.end();
      }
      if (!canPublish(issued!.principal, site)) {
        req.resume();
        return sendJson(res, 403, { Message: `The principal '${issued!.principal.objectId}' does not have the permission Microsoft.Web/sites/publish/Action on '${site.id}'.` });
      }
    }
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
        up.on('error', () => res.destroy());
        up.on('aborted', () => res.destroy());
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}/`,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      agent.destroy();
      await closed;
    },
  };
}
