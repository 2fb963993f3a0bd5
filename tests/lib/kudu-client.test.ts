/**
 * The Kudu client's transport against the Kudu-compatible server: what it retries and what it
 * never does, Retry-After, the User-Agent, and the errors a user reads.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KuduClient } from '../../lib/kudu/client';
import { basicCredential } from '../../lib/kudu/credentials';
import { KuduError } from '../../lib/kudu/errors';
import { startKuduServer, type KuduServer } from '../../testkit/kudu-server';

describe('lib/kudu KuduClient', function () {
  this.timeout(60_000);
  let home: string;
  let kudu: KuduServer;
  const clients: KuduClient[] = [];

  beforeEach(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'kudu-client-'));
    kudu = await startKuduServer({ home, auth: { basic: { username: 'u', password: 'p-secret' } } });
    fs.mkdirSync(path.join(home, 'site', 'wwwroot'), { recursive: true });
    fs.writeFileSync(path.join(home, 'site', 'wwwroot', 'hello.txt'), 'hello');
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await kudu.close();
    fs.rmSync(home, { recursive: true, force: true });
  });

  function client(options: { password?: string; url?: string; maxAttempts?: number; baseDelayMs?: number } = {}): KuduClient {
    const c = new KuduClient({
      scmUrl: options.url ?? kudu.url,
      credential: basicCredential('u', options.password ?? 'p-secret'),
      userAgent: 'AppServiceSqliteTasks/test',
      retry: { maxAttempts: options.maxAttempts ?? 4, baseDelayMs: options.baseDelayMs ?? 50, maxDelayMs: 200, maxTotalMs: 20_000 },
    });
    clients.push(c);
    return c;
  }

  async function error(promise: Promise<unknown>): Promise<KuduError> {
    try {
      await promise;
    } catch (err) {
      assert.ok(err instanceof KuduError, String(err));
      return err;
    }
    throw new Error('expected a KuduError');
  }

  it('refuses plain http to anything but a loopback host, and credentials in the URL', () => {
    assert.throws(() => client({ url: 'http://myblog.scm.azurewebsites.net/' }), /only https:\/\/ is allowed/);
    assert.doesNotThrow(() => client({ url: 'http://127.0.0.1:1/' }));
    assert.doesNotThrow(() => client({ url: 'http://localhost:1/' }));
    const c = client({ url: 'https://user:pw@myblog.scm.azurewebsites.net/some/path?x=1' });
    assert.equal(c.url('api/vfs/'), 'https://myblog.scm.azurewebsites.net/some/path/api/vfs/');
  });

  it('retries 503 and honours Retry-After, and sends its User-Agent', async () => {
    kudu.faults.add({ method: 'GET', path: '/api/vfs/site/wwwroot/hello.txt', status: 503, headers: { 'Retry-After': '1' }, times: 2 });
    const started = Date.now();
    assert.equal(await client().readText('site/wwwroot/hello.txt'), 'hello');
    assert.ok(Date.now() - started >= 1900, `waited ${Date.now() - started} ms for two Retry-After: 1`);
    const gets = kudu.requests.filter((r) => r.path === '/api/vfs/site/wwwroot/hello.txt');
    assert.equal(gets.length, 3);
    assert.ok(gets.every((r) => r.userAgent === 'AppServiceSqliteTasks/test'));
  });

  it('retries a connection reset and a 429, then gives up with the count', async () => {
    kudu.faults.add({ method: 'GET', path: '/api/vfs/site/wwwroot/hello.txt', resetAfterBytes: 1 });
    kudu.faults.add({ method: 'GET', path: '/api/vfs/site/wwwroot/hello.txt', status: 429, headers: { 'Retry-After': '0' } });
    assert.equal(await client().readText('site/wwwroot/hello.txt'), 'hello');

    kudu.faults.add({ method: 'GET', path: '/api/vfs/site/wwwroot/hello.txt', status: 502, times: Infinity });
    const err = await error(client({ maxAttempts: 3 }).readText('site/wwwroot/hello.txt'));
    assert.equal(err.status, 502);
    assert.match(err.message, /gave up after 3 tries/);
  });

  it('never re-sends a POST', async () => {
    const dir = path.join(home, 'site', 'wwwroot', 'App_Data', 'jobs', 'triggered', 'job');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'run.js'), 'setTimeout(() => {}, 100)');
    kudu.faults.add({ method: 'POST', path: /\/run$/, status: 503, times: 5 });
    const err = await error(client().runTriggeredJob('job', undefined, 'run/test'));
    assert.equal(err.status, 503);
    assert.equal(kudu.requests.filter((r) => r.method === 'POST').length, 1);
  });

  it('does not retry what a retry cannot fix, and says what to do', async () => {
    const unauthorized = await error(client({ password: 'wrong' }).readText('site/wwwroot/hello.txt'));
    assert.equal(unauthorized.kind, 'auth');
    assert.match(unauthorized.message, /publishing credentials/);
    assert.match(unauthorized.message, /SCM Basic Auth Publishing Credentials/);
    assert.ok(!unauthorized.message.includes('wrong'), 'the password is not in the message');
    assert.equal(kudu.requests.filter((r) => r.status === 401).length, 1, 'a 401 is not retried');

    kudu.faults.add({ method: 'GET', path: '/api/vfs/site/wwwroot/hello.txt', status: 403 });
    const forbidden = await error(client().readText('site/wwwroot/hello.txt'));
    assert.equal(forbidden.kind, 'forbidden');
    assert.match(forbidden.message, /Website Contributor/);

    const missing = await error(client().getTriggeredJob('nope'));
    assert.equal(missing.kind, 'not-found');
    assert.match(missing.message, /'nope' does not exist/);
  });

  it('names the host when it cannot be resolved, and when nothing listens', async () => {
    const dns = await error(client({ url: 'https://no-such-app.invalid/', maxAttempts: 1 }).readText('x'));
    assert.match(dns.message, /Could not resolve the host name 'no-such-app\.invalid'/);
    const refused = await error(client({ url: 'http://127.0.0.1:1/', maxAttempts: 2 }).readText('x'));
    assert.match(refused.message, /Could not connect to 127\.0\.0\.1:1: the connection was refused/);
  });
});
