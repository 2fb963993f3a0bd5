import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ticksFromUnixNs, vfsEtagFromTicks } from '../../testkit/kudu-server/dotnet';
import { api, rawRequest, startTestServer, stopTestServer, TestServer, writeFile } from './test-helpers';

const TEXT = '0123456789abcdefghij'; // 20 bytes

function expectedEtag(file: string): string {
  return vfsEtagFromTicks(ticksFromUnixNs(fs.statSync(file, { bigint: true }).mtimeNs));
}

describe('kudu-server: VFS', function () {
  let t: TestServer | undefined;
  afterEach(async () => {
    await stopTestServer(t);
    t = undefined;
  });

  it('serves a file with ETag, Last-Modified, type and length; HEAD has no body', async () => {
    t = await startTestServer();
    const file = writeFile(t.home, 'site/wwwroot/notes.txt', TEXT);
    // Whole seconds: fractional utimes go through a double and may land a nanosecond early.
    fs.utimesSync(file, new Date('2024-03-01T10:00:00Z'), new Date('2024-03-01T10:00:00Z'));
    const res = await api(t.kudu, 'api/vfs/site/wwwroot/notes.txt');
    assert.equal(res.status, 200);
    assert.equal(await res.text(), TEXT);
    assert.equal(res.headers.get('content-type'), 'text/plain');
    assert.equal(res.headers.get('content-length'), '20');
    assert.equal(res.headers.get('accept-ranges'), 'bytes');
    assert.equal(res.headers.get('last-modified'), 'Fri, 01 Mar 2024 10:00:00 GMT');
    // BitConverter.GetBytes(ticks) printed byte by byte: the ticks in little-endian order.
    // 2024-03-01T10:00:00Z is 638448840000000000 ticks = 0x08DC39D65B75D000.
    assert.equal(res.headers.get('etag'), '"00d0755bd639dc08"');
    assert.equal(res.headers.get('etag'), expectedEtag(file));

    const head = await api(t.kudu, 'vfs/site/wwwroot/notes.txt', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '20');
    assert.equal(await head.text(), '');

    writeFile(t.home, 'data/x.json', '{}');
    writeFile(t.home, 'data/x.db', 'SQLite');
    writeFile(t.home, 'data/x.js', '');
    assert.equal((await api(t.kudu, 'api/vfs/data/x.json')).headers.get('content-type'), 'application/json');
    assert.equal((await api(t.kudu, 'api/vfs/data/x.db')).headers.get('content-type'), 'application/octet-stream');
    assert.equal((await api(t.kudu, 'api/vfs/data/x.js')).headers.get('content-type'), 'application/javascript');
  });

  it('answers If-None-Match with 304', async () => {
    t = await startTestServer();
    const file = writeFile(t.home, 'a.txt', TEXT);
    const res = await api(t.kudu, 'api/vfs/a.txt', { headers: { 'if-none-match': expectedEtag(file) } });
    assert.equal(res.status, 304);
    assert.equal(res.headers.get('etag'), expectedEtag(file));
    assert.equal((await api(t.kudu, 'api/vfs/a.txt', { headers: { 'if-none-match': '"0000000000000000"' } })).status, 200);
  });

  it('serves single byte ranges with 206, 416 when unsatisfiable, and honours If-Range', async () => {
    t = await startTestServer();
    const file = writeFile(t.home, 'r.bin', TEXT);
    const get = (range: string, extra: Record<string, string> = {}): Promise<Response> =>
      api(t!.kudu, 'api/vfs/r.bin', { headers: { range, ...extra } });

    let res = await get('bytes=2-5');
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), 'bytes 2-5/20');
    assert.equal(res.headers.get('content-length'), '4');
    assert.equal(await res.text(), '2345');

    res = await get('bytes=15-');
    assert.equal(res.status, 206);
    assert.equal(await res.text(), 'fghij');
    res = await get('bytes=-3');
    assert.equal(res.headers.get('content-range'), 'bytes 17-19/20');
    assert.equal(await res.text(), 'hij');
    res = await get('bytes=18-100');
    assert.equal(res.headers.get('content-range'), 'bytes 18-19/20');
    assert.equal(await res.text(), 'ij');

    res = await get('bytes=20-');
    assert.equal(res.status, 416);
    assert.equal(res.headers.get('content-range'), 'bytes */20');
    assert.deepEqual(await res.json(), { Message: 'None of the requested ranges (bytes=20-) overlap with the current extent of the selected resource.' });

    res = await get('bytes=2-5', { 'if-range': '"0011223344556677"' });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), TEXT);
    res = await get('bytes=2-5', { 'if-range': expectedEtag(file) });
    assert.equal(res.status, 206);
    assert.equal(await res.text(), '2345');

    const recorded = t.kudu.requests.filter(r => r.path === '/api/vfs/r.bin');
    assert.equal(recorded[0].range, 'bytes=2-5');
    assert.equal(recorded[0].status, 206);
  });

  it('ignores Range when supportsRange is false', async () => {
    t = await startTestServer({ supportsRange: false });
    writeFile(t.home, 'r.bin', TEXT);
    const res = await api(t.kudu, 'api/vfs/r.bin', { headers: { range: 'bytes=2-5' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('accept-ranges'), null);
    assert.equal(await res.text(), TEXT);
  });

  it('reports a missing path as Web API JSON with the full local path', async () => {
    t = await startTestServer();
    const res = await api(t.kudu, 'api/vfs/site/nothing.txt');
    assert.equal(res.status, 404);
    assert.match(res.headers.get('content-type')!, /^application\/json/);
    assert.deepEqual(await res.json(), { Message: `'${path.join(t.home, 'site/nothing.txt')}' not found.` });
  });

  it('redirects a directory without slash and a file with slash (307), keeping the query', async () => {
    t = await startTestServer();
    writeFile(t.home, 'site/wwwroot/f.txt', TEXT);
    let res = await api(t.kudu, 'api/vfs/site/wwwroot?x=1');
    assert.equal(res.status, 307);
    assert.equal(res.headers.get('location'), `${t.kudu.url}api/vfs/site/wwwroot/?x=1`);
    res = await api(t.kudu, 'api/vfs/site/wwwroot/f.txt/');
    assert.equal(res.status, 307);
    assert.equal(res.headers.get('location'), `${t.kudu.url}api/vfs/site/wwwroot/f.txt`);
    res = await api(t.kudu, 'api/vfs');
    assert.equal(res.status, 307);
    assert.equal(res.headers.get('location'), `${t.kudu.url}api/vfs/`);
  });

  it('lists one directory level with Kudu\'s entry fields', async () => {
    t = await startTestServer();
    const file = writeFile(t.home, 'site/wwwroot/b.txt', 'hello');
    writeFile(t.home, 'site/wwwroot/A dir/inner.txt', 'deep');
    const res = await api(t.kudu, 'api/vfs/site/wwwroot/');
    assert.equal(res.status, 200);
    const entries = (await res.json()) as Array<Record<string, unknown>>;
    assert.deepEqual(entries.map(e => e.name), ['A dir', 'b.txt']);
    const [dir, txt] = entries;
    assert.deepEqual(Object.keys(txt), ['name', 'size', 'mtime', 'crtime', 'mime', 'href', 'path']);
    assert.equal(dir.size, 0);
    assert.equal(dir.mime, 'inode/directory');
    assert.equal(dir.href, `${t.kudu.url}api/vfs/site/wwwroot/A%20dir/`);
    assert.equal(dir.path, path.join(t.home, 'site/wwwroot/A dir'));
    assert.equal(txt.size, 5);
    assert.equal(txt.mime, 'text/plain');
    assert.equal(txt.href, `${t.kudu.url}api/vfs/site/wwwroot/b.txt`);
    assert.equal(txt.path, file);
    assert.match(txt.mtime as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?\+00:00$/);
    assert.equal(new Date(txt.mtime as string).getTime(), Math.floor(fs.statSync(file).mtimeMs));

    const root = (await (await api(t.kudu, 'api/vfs/')).json()) as Array<{ name: string }>;
    assert.deepEqual(root.map(e => e.name), ['site']);
  });

  it('creates, guards and overwrites files with If-Match, creates folders', async () => {
    t = await startTestServer();
    let res = await api(t.kudu, 'api/vfs/site/new/deep/file.txt', { method: 'PUT', body: 'v1' });
    assert.equal(res.status, 201);
    const file = path.join(t.home, 'site/new/deep/file.txt');
    assert.equal(fs.readFileSync(file, 'utf8'), 'v1');
    assert.equal(res.headers.get('etag'), expectedEtag(file));

    res = await api(t.kudu, 'api/vfs/site/new/deep/file.txt', { method: 'PUT', body: 'v2' });
    assert.equal(res.status, 412);
    assert.deepEqual(await res.json(), { Message: 'Updating an existing resource requires an If-Match header carrying a single, strong ETag.' });

    res = await api(t.kudu, 'api/vfs/site/new/deep/file.txt', { method: 'PUT', body: 'v2', headers: { 'if-match': '"0000000000000000"' } });
    assert.equal(res.status, 412);
    assert.deepEqual(await res.json(), { Message: 'ETag does not represent the latest state of the resource.' });
    assert.equal(res.headers.get('etag'), expectedEtag(file));

    res = await api(t.kudu, 'api/vfs/site/new/deep/file.txt', { method: 'PUT', body: 'v2', headers: { 'if-match': '*' } });
    assert.equal(res.status, 204);
    assert.equal(fs.readFileSync(file, 'utf8'), 'v2');
    res = await api(t.kudu, 'api/vfs/site/new/deep/file.txt', { method: 'PUT', body: 'v3', headers: { 'if-match': expectedEtag(file) } });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('etag'), expectedEtag(file));
    assert.equal(fs.readFileSync(file, 'utf8'), 'v3');

    res = await api(t.kudu, 'api/vfs/site/folder/', { method: 'PUT' });
    assert.equal(res.status, 201);
    assert.ok(fs.statSync(path.join(t.home, 'site/folder')).isDirectory());
    res = await api(t.kudu, 'api/vfs/site/folder/', { method: 'PUT' });
    assert.equal(res.status, 409);
  });

  it('deletes files with If-Match and folders (recursive on request)', async () => {
    t = await startTestServer();
    writeFile(t.home, 'd/x.txt', 'x');
    let res = await api(t.kudu, 'api/vfs/d/x.txt', { method: 'DELETE' });
    assert.equal(res.status, 412);
    res = await api(t.kudu, 'api/vfs/d/x.txt', { method: 'DELETE', headers: { 'if-match': '*' } });
    assert.equal(res.status, 200);
    assert.ok(!fs.existsSync(path.join(t.home, 'd/x.txt')));

    writeFile(t.home, 'e/sub/y.txt', 'y');
    res = await api(t.kudu, 'api/vfs/e/', { method: 'DELETE' });
    assert.equal(res.status, 409);
    res = await api(t.kudu, 'api/vfs/e/?recursive=true', { method: 'DELETE' });
    assert.equal(res.status, 200);
    assert.ok(!fs.existsSync(path.join(t.home, 'e')));
  });

  it('never reaches outside %HOME%', async () => {
    t = await startTestServer();
    const secret = path.join(path.dirname(t.home), path.basename(t.home) + '-secret.txt');
    fs.writeFileSync(secret, 'TOP SECRET');
    try {
      const name = path.basename(secret);
      for (const p of [
        `/api/vfs/..%2f${name}`,
        `/api/vfs/%2e%2e/${name}`,
        `/api/vfs/..%5c${name}`,
        `/api/vfs/site/..%2f..%2f${name}`,
        `/api/vfs/%252e%252e/${name}`,
        `/api/zip/..%2f`,
      ]) {
        const res = await rawRequest(t.kudu.url.replace(/\/$/, '') + p);
        assert.ok(res.status === 400 || res.status === 404, `${p}: ${res.status}`);
        assert.ok(!res.body.toString().includes('TOP SECRET'), p);
      }
      const put = await rawRequest(t.kudu.url + 'api/vfs/..%2fplanted.txt', { method: 'PUT' }, Buffer.from('x'));
      assert.equal(put.status, 400);
      assert.ok(!fs.existsSync(path.join(path.dirname(t.home), 'planted.txt')));
    } finally {
      fs.rmSync(secret, { force: true });
    }
  });

  it('still serves a file another process holds open (FileShare.ReadWrite)', async () => {
    t = await startTestServer();
    writeFile(t.home, 'data/live.db', TEXT);
    t.kudu.lockFile('data/live.db');
    const res = await api(t.kudu, 'api/vfs/data/live.db');
    assert.equal(res.status, 200);
    assert.equal(await res.text(), TEXT);
  });
});
