import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { api, rawRequest, readZip, startTestServer, stopTestServer, TestServer, writeFile, zipBuffer } from './test-helpers';

describe('kudu-server: zip', function () {
  let t: TestServer | undefined;
  afterEach(async () => {
    await stopTestServer(t);
    t = undefined;
  });

  it('streams a folder as a zip: relative entries, empty folders, deflate, times kept, no Content-Length', async () => {
    t = await startTestServer();
    writeFile(t.home, 'site/wwwroot/index.html', '<h1>hi</h1>');
    const deep = writeFile(t.home, 'site/wwwroot/content/data/ghost.db', 'SQLite format 3\0' + 'x'.repeat(1000));
    fs.mkdirSync(path.join(t.home, 'site/wwwroot/content/images'), { recursive: true });
    // Even seconds: zip entries carry a DOS time with two-second resolution.
    const when = new Date(2024, 0, 15, 8, 30, 42);
    fs.utimesSync(deep, when, when);

    const res = await rawRequest(t.kudu.url + 'api/zip/site/wwwroot/');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/zip');
    assert.equal(res.headers['content-disposition'], 'attachment; filename=wwwroot.zip');
    assert.equal(res.headers['content-length'], undefined);
    assert.equal(res.headers['transfer-encoding'], 'chunked');

    const entries = await readZip(res.body);
    assert.deepEqual(entries.map(e => e.name), ['content/data/ghost.db', 'content/images/', 'index.html']);
    const db = entries[0];
    assert.equal(db.compressionMethod, 8);
    assert.equal(db.data.toString(), fs.readFileSync(deep, 'utf8'));
    assert.equal(db.mtime.getTime(), when.getTime());
    assert.equal(entries[2].data.toString(), '<h1>hi</h1>');
  });

  it('honours ?fileName= and zips /zip/ too', async () => {
    t = await startTestServer();
    writeFile(t.home, 'data/a.txt', 'a');
    const res = await api(t.kudu, 'zip/data/?fileName=backup-1.zip');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-disposition'), 'attachment; filename=backup-1.zip');
    const entries = await readZip(Buffer.from(await res.arrayBuffer()));
    assert.deepEqual(entries.map(e => e.name), ['a.txt']);
  });

  it('skips files it cannot open, silently, as Kudu does', async () => {
    t = await startTestServer();
    writeFile(t.home, 'data/ok.txt', 'ok');
    writeFile(t.home, 'data/locked.db', 'in use');
    writeFile(t.home, 'data/only-locked/inner.db', 'in use too');
    t.kudu.lockFile('data/locked.db');
    t.kudu.lockFile('data/only-locked/inner.db');
    const canTestPermissions = typeof process.getuid === 'function' && process.getuid() !== 0;
    if (canTestPermissions) fs.chmodSync(writeFile(t.home, 'data/secret.txt', 'no access'), 0o000);

    const res = await api(t.kudu, 'api/zip/data/');
    assert.equal(res.status, 200);
    const names = (await readZip(Buffer.from(await res.arrayBuffer()))).map(e => e.name);
    // A folder whose files were all skipped leaves no entry at all (it was not empty).
    assert.deepEqual(names, ['ok.txt']);

    t.kudu.unlockFile('data/locked.db');
    const again = (await readZip(Buffer.from(await (await api(t.kudu, 'api/zip/data/')).arrayBuffer()))).map(e => e.name);
    assert.deepEqual(again, ['locked.db', 'ok.txt']);
  });

  it('gives an empty zip for an empty folder, 404 for a file, 307 without the slash', async () => {
    t = await startTestServer();
    fs.mkdirSync(path.join(t.home, 'empty'));
    writeFile(t.home, 'file.txt', 'x');
    const empty = await api(t.kudu, 'api/zip/empty/');
    assert.equal(empty.status, 200);
    assert.deepEqual(await readZip(Buffer.from(await empty.arrayBuffer())), []);

    const file = await api(t.kudu, 'api/zip/file.txt');
    assert.equal(file.status, 404);
    assert.equal(await file.text(), '');
    const missing = await api(t.kudu, 'api/zip/nope/');
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { Message: `'${path.join(t.home, 'nope')}/' not found.` });
    const noSlash = await api(t.kudu, 'api/zip/empty');
    assert.equal(noSlash.status, 307);
    assert.equal(noSlash.headers.get('location'), `${t.kudu.url}api/zip/empty/`);
  });

  it('streams a larger folder intact', async function () {
    this.timeout(30_000);
    t = await startTestServer();
    const blob = randomBytes(24 * 1024 * 1024);
    writeFile(t.home, 'big/blob.bin', blob);
    const res = await rawRequest(t.kudu.url + 'api/zip/big/');
    assert.equal(res.status, 200);
    const [entry] = await readZip(res.body);
    assert.equal(createHash('sha256').update(entry.data).digest('hex'), createHash('sha256').update(blob).digest('hex'));
  });

  it('unpacks a PUT zip over a folder without deleting what is there', async () => {
    t = await startTestServer();
    writeFile(t.home, 'site/wwwroot/keep.txt', 'keep');
    const res = await api(t.kudu, 'api/zip/site/wwwroot/', {
      method: 'PUT',
      body: await zipBuffer({ 'new.txt': 'new', 'sub/inner.txt': 'inner' }, ['emptydir']),
    });
    assert.equal(res.status, 200);
    const root = path.join(t.home, 'site/wwwroot');
    assert.equal(fs.readFileSync(path.join(root, 'keep.txt'), 'utf8'), 'keep');
    assert.equal(fs.readFileSync(path.join(root, 'new.txt'), 'utf8'), 'new');
    assert.equal(fs.readFileSync(path.join(root, 'sub/inner.txt'), 'utf8'), 'inner');
    assert.ok(fs.statSync(path.join(root, 'emptydir')).isDirectory());

    const bad = await api(t.kudu, 'api/zip/site/wwwroot/', { method: 'PUT', body: 'not a zip' });
    assert.equal(bad.status, 400);
    assert.ok(typeof ((await bad.json()) as { Message: string }).Message === 'string');
  });
});
