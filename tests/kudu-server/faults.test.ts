import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { api, rawRequest, readZip, startTestServer, stopTestServer, TestServer, writeFile } from './test-helpers';

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));

describe('kudu-server: faults', function () {
  let t: TestServer | undefined;
  afterEach(async () => {
    await stopTestServer(t);
    t = undefined;
  });

  it('answers with a fault status, body and headers for N requests, then normally', async () => {
    t = await startTestServer();
    writeFile(t.home, 'a.txt', 'hello');
    const fault = t.kudu.faults.add({ path: '/api/vfs/a.txt', status: 503, body: 'busy', headers: { 'Retry-After': '1' }, times: 2 });
    for (let i = 0; i < 2; i++) {
      const res = await api(t.kudu, 'api/vfs/a.txt');
      assert.equal(res.status, 503);
      assert.equal(res.headers.get('retry-after'), '1');
      assert.equal(await res.text(), 'busy');
    }
    assert.equal(fault.remaining, 0);
    assert.equal(fault.hits, 2);
    const ok = await api(t.kudu, 'api/vfs/a.txt');
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), 'hello');
    assert.deepEqual(t.kudu.requests.map(r => r.status), [503, 503, 200]);
  });

  it('matches by method, RegExp and order of addition; Infinity lasts until cleared', async () => {
    t = await startTestServer();
    writeFile(t.home, 'a.txt', 'hello');
    const postOnly = t.kudu.faults.add({ method: 'POST', path: /^\/api\/triggeredwebjobs\/[^/]+\/run/, status: 429 });
    const first = t.kudu.faults.add({ path: /a\.txt$/, status: 500 });
    const second = t.kudu.faults.add({ path: '/api/vfs/a.txt', status: 502, times: Infinity });
    assert.equal((await api(t.kudu, 'api/vfs/a.txt')).status, 500);
    assert.equal((await api(t.kudu, 'api/vfs/a.txt')).status, 502);
    assert.equal((await api(t.kudu, 'api/vfs/a.txt')).status, 502);
    assert.equal((await api(t.kudu, 'api/triggeredwebjobs/x/run?arguments=1', { method: 'POST' })).status, 429);
    assert.equal(postOnly.hits, 1);
    assert.equal(first.hits, 1);
    assert.equal(second.hits, 2);
    assert.equal(second.remaining, Infinity);
    t.kudu.faults.clear();
    assert.equal((await api(t.kudu, 'api/vfs/a.txt')).status, 200);
  });

  it('applies before authentication, like a front end in the way', async () => {
    t = await startTestServer();
    t.kudu.faults.add({ path: '/api/vfs/', status: 503 });
    const res = await fetch(t.kudu.url + 'api/vfs/');
    assert.equal(res.status, 503);
    assert.equal((await fetch(t.kudu.url + 'api/vfs/')).status, 401);
    assert.ok(t.kudu.requests.every(r => !JSON.stringify(r).toLowerCase().includes('basic ')));
  });

  it('delays the answer', async () => {
    t = await startTestServer();
    writeFile(t.home, 'a.txt', 'hello');
    t.kudu.faults.add({ path: '/api/vfs/a.txt', delayMs: 300 });
    const started = Date.now();
    const res = await api(t.kudu, 'api/vfs/a.txt');
    assert.equal(await res.text(), 'hello');
    assert.ok(Date.now() - started >= 290, `took ${Date.now() - started} ms`);
  });

  it('resets the connection after N body bytes of a streamed file', async () => {
    t = await startTestServer();
    writeFile(t.home, 'big.bin', randomBytes(1024 * 1024));
    t.kudu.faults.add({ path: '/api/vfs/big.bin', resetAfterBytes: 1000 });
    const res = await rawRequest(t.kudu.url + 'api/vfs/big.bin');
    await sleep(20);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], String(1024 * 1024));
    assert.ok(res.body.length <= 1000, `got ${res.body.length} bytes`);
    assert.ok(res.error, 'the client saw the connection break');
    assert.equal(res.socketError?.code, 'ECONNRESET');
    assert.equal(res.complete, false);
  });

  it('truncates a Content-Length body by closing the connection', async () => {
    t = await startTestServer();
    writeFile(t.home, 'big.bin', randomBytes(256 * 1024));
    t.kudu.faults.add({ path: '/api/vfs/big.bin', truncateAfterBytes: 5000 });
    const res = await rawRequest(t.kudu.url + 'api/vfs/big.bin');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], String(256 * 1024));
    assert.equal(res.body.length, 5000);
    assert.ok(res.error, 'a short Content-Length body is an error for the client');
    assert.equal(res.complete, false);
  });

  it('truncates a chunked body into a complete but short response', async () => {
    t = await startTestServer();
    writeFile(t.home, 'site/big.bin', randomBytes(512 * 1024));
    t.kudu.faults.add({ path: '/api/zip/site/', truncateAfterBytes: 3000 });
    const res = await rawRequest(t.kudu.url + 'api/zip/site/');
    assert.equal(res.status, 200);
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.error, undefined);
    assert.equal(res.complete, true);
    assert.equal(res.body.length, 3000);
    await assert.rejects(readZip(res.body));
  });

  it('can break a fault response body too, and a JSON answer', async () => {
    t = await startTestServer();
    t.kudu.faults.add({ path: '/x', status: 500, body: 'x'.repeat(100), truncateAfterBytes: 10 });
    const res = await rawRequest(t.kudu.url + 'x');
    assert.equal(res.status, 500);
    assert.equal(res.body.length, 10);
    assert.equal(res.complete, false);

    writeFile(t.home, 'site/a.txt', 'a');
    t.kudu.faults.add({ path: '/api/vfs/site/', resetAfterBytes: 5 });
    const listing = await rawRequest(t.kudu.url + 'api/vfs/site/');
    await sleep(20);
    assert.equal(listing.status, 200);
    assert.ok(listing.body.length <= 5);
    assert.equal(listing.socketError?.code, 'ECONNRESET');
  });
});
