/**
 * lib/http against the Kudu-compatible server: the facts an HttpError carries, body limits, the
 * task's deadline against a trickling server and a long Retry-After, the per-try limit, the 401
 * refresh hook and the idempotency rule; and what bodyExcerpt makes of the error bodies our
 * services send.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Deadline, DeadlineError } from '../../lib/deadline';
import { bodyExcerpt, HttpError, HttpTransport, type Authorizer, type TransportOptions } from '../../lib/http';
import { startKuduServer, type KuduServer } from '../../testkit/kudu-server';

const BASIC = 'Basic ' + Buffer.from('user:pass').toString('base64');

describe('lib/http HttpTransport', function () {
  this.timeout(60_000);
  let home: string;
  let kudu: KuduServer;
  const transports: HttpTransport[] = [];
  const deadlines: Deadline[] = [];

  beforeEach(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'http-transport-'));
    fs.mkdirSync(path.join(home, 'site', 'wwwroot'), { recursive: true });
    fs.writeFileSync(path.join(home, 'site', 'wwwroot', 'hello.txt'), 'hello');
    fs.writeFileSync(path.join(home, 'site', 'wwwroot', 'hundred.txt'), 'x'.repeat(100));
    kudu = await startKuduServer({ home });
  });
  afterEach(async () => {
    for (const t of transports.splice(0)) t.close();
    for (const d of deadlines.splice(0)) d.dispose();
    await kudu.close();
    fs.rmSync(home, { recursive: true, force: true });
  });

  function transport(options: Partial<TransportOptions> = {}): HttpTransport {
    const t = new HttpTransport({
      baseUrl: kudu.url,
      userAgent: 'http-test',
      authorizer: { authorization: async () => BASIC },
      retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 50, maxTotalMs: 20_000 },
      ...options,
    });
    transports.push(t);
    return t;
  }

  function deadline(ms: number): Deadline {
    const d = Deadline.after(ms, 'the test deadline');
    deadlines.push(d);
    return d;
  }

  async function failure(promise: Promise<unknown>): Promise<Error> {
    try {
      await promise;
    } catch (err) {
      return err as Error;
    }
    throw new Error('expected the request to fail');
  }

  it('gives up with an HttpError that carries the facts: status, method, path, host, cleaned body, tries, cause', async () => {
    kudu.faults.add({ path: '/api/vfs/site/wwwroot/hello.txt', status: 503, times: Infinity, body: JSON.stringify({ Message: 'busy\n##vso[task.setvariable variable=x]1' }) });
    const err = await failure(transport().send({ method: 'GET', path: 'api/vfs/site/wwwroot/hello.txt' }));
    assert.ok(err instanceof HttpError, String(err));
    assert.equal(err.kind, 'status');
    assert.equal(err.status, 503);
    assert.equal(err.method, 'GET');
    assert.equal(err.path, '/api/vfs/site/wwwroot/hello.txt');
    assert.equal(err.host, new URL(kudu.url).host);
    assert.equal(err.bodyText, 'busy ##_vso[task.setvariable variable=x]1');
    assert.equal(err.attempts, 3);
    assert.equal(err.retriable, true);
    assert.match(err.message, /answered 503: busy .*\(gave up after 3 tries in \d+ s\)$/);

    const refused = await failure(transport({ baseUrl: 'http://127.0.0.1:1/' }).send({ method: 'GET', path: 'x' }));
    assert.ok(refused instanceof HttpError);
    assert.deepEqual([refused.kind, refused.code, refused.attempts], ['network', 'ECONNREFUSED', 3]);
    assert.equal((refused.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
  });

  it('reads a body only up to its limit, with or without a Content-Length', async () => {
    const t = transport();
    assert.equal((await t.send({ method: 'GET', path: 'api/vfs/site/wwwroot/hundred.txt', maxBodyBytes: 100 })).body.length, 100);
    const declared = await failure(t.send({ method: 'GET', path: 'api/vfs/site/wwwroot/hundred.txt', maxBodyBytes: 99 }));
    assert.ok(declared instanceof HttpError);
    assert.deepEqual([declared.kind, declared.limitBytes, declared.retriable], ['too-large', 99, false]);
    // Kudu streams a zip without a Content-Length: the limit cuts it while it is read.
    const streamed = await failure(t.send({ method: 'GET', path: 'api/zip/site/wwwroot/', maxBodyBytes: 64 }));
    assert.ok(streamed instanceof HttpError && streamed.kind === 'too-large', String(streamed));
    assert.match(streamed.message, /sent more than 64 bytes/);
  });

  it("ends a request at the task's deadline while the server trickles one byte a second, and starts no try after it", async () => {
    kudu.faults.add({ path: '/api/vfs/site/wwwroot/hello.txt', status: 200, body: 'x'.repeat(60), trickleMs: 1000, times: Infinity });
    const started = Date.now();
    const err = await failure(transport({ deadline: deadline(800) }).send({ method: 'GET', path: 'api/vfs/site/wwwroot/hello.txt' }));
    assert.ok(err instanceof DeadlineError, String(err));
    assert.match(err.message, /Stopped waiting for GET \/api\/vfs\/site\/wwwroot\/hello\.txt on 127\.0\.0\.1:\d+: the time allowed by the test deadline ran out/);
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms against a 60-second trickle`);
    assert.equal(kudu.requests.length, 1, 'no second try after the deadline');
  });

  it('limits each try overall, and tries again within the deadline', async () => {
    kudu.faults.add({ path: '/api/vfs/site/wwwroot/hello.txt', status: 200, body: 'x'.repeat(60), trickleMs: 1000 });
    const res = await transport({ tryTimeoutMs: 500 }).send({ method: 'GET', path: 'api/vfs/site/wwwroot/hello.txt' });
    assert.equal(res.body.toString(), 'hello');
    assert.equal(kudu.requests.length, 2);
  });

  it('does not sleep through a Retry-After that reaches past the deadline', async () => {
    kudu.faults.add({ path: '/api/vfs/site/wwwroot/hello.txt', status: 503, headers: { 'Retry-After': '600' }, times: Infinity });
    const started = Date.now();
    const err = await failure(transport({ deadline: deadline(2000), retry: { maxAttempts: 5, maxTotalMs: 900_000 } }).send({ method: 'GET', path: 'api/vfs/site/wwwroot/hello.txt' }));
    assert.ok(err instanceof HttpError && err.status === 503, String(err));
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    assert.equal(kudu.requests.length, 1);
  });

  it('asks the authorizer for fresh credentials after a 401, and tries once more', async () => {
    let refreshed = 0;
    const authorizer: Authorizer = {
      authorization: async () => (refreshed ? BASIC : 'Basic ' + Buffer.from('user:old').toString('base64')),
      refresh: async () => (++refreshed, true),
    };
    const res = await transport({ authorizer }).send({ method: 'GET', path: 'api/vfs/site/wwwroot/hello.txt' });
    assert.equal(res.body.toString(), 'hello');
    assert.equal(refreshed, 1);
    assert.deepEqual(kudu.requests.map((r) => r.status), [401, 200]);
  });

  it('sends a POST once, unless the caller says it is idempotent', async () => {
    kudu.faults.add({ method: 'POST', path: '/api/triggeredwebjobs/x/run', status: 503, times: 2 });
    const once = await failure(transport().send({ method: 'POST', path: 'api/triggeredwebjobs/x/run' }));
    assert.ok(once instanceof HttpError && once.attempts === 1);
    assert.equal(kudu.requests.length, 1);
    const again = await failure(transport().send({ method: 'POST', path: 'api/triggeredwebjobs/x/run', idempotent: true }));
    // The second fault use, then the real server: it has no job 'x' (404).
    assert.ok(again instanceof HttpError && again.status === 404, String(again));
    assert.equal(kudu.requests.length, 3);
  });
});

describe('lib/http bodyExcerpt', () => {
  it('takes the message (and code) of the error shapes our services send, cleaned and short', () => {
    assert.deepEqual(bodyExcerpt('{"Message":"An error has occurred.","ExceptionMessage":"Access denied"}'), { text: 'Access denied', serviceCode: undefined });
    assert.deepEqual(bodyExcerpt('{"error":{"code":"AuthorizationFailed","message":"The client may not"}}'), { text: 'The client may not', serviceCode: 'AuthorizationFailed' });
    assert.deepEqual(bodyExcerpt('{"error":"invalid_client","error_description":"AADSTS7000215: bad secret"}'), { text: 'AADSTS7000215: bad secret', serviceCode: 'invalid_client' });
    assert.equal(bodyExcerpt('<!DOCTYPE html><html><head><style>x{}</style></head><body><h1>Error 403 - This web app is stopped.</h1></body></html>').text, 'Error 403 - This web app is stopped.');
    assert.equal(bodyExcerpt('line one\n##[error]two\u0007').text, 'line one ##_[error]two?');
    assert.equal(bodyExcerpt('y'.repeat(2000)).text.length, 501);
    assert.equal(bodyExcerpt('').text, '');
  });
});
