/**
 * KuduClient.readRange and the VFS's file times, against the Kudu-compatible server: a few bytes
 * of a file with Range, and with a server that ignores Range, a bounded read of its answer.
 */
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KuduClient, lastWriteFromVfsEtag, parseVfsTime } from '../../lib/kudu/client';
import { basicCredential } from '../../lib/kudu/credentials';
import { startKuduServer, type KuduServer } from '../../testkit/kudu-server';

describe('KuduClient.readRange', function () {
  this.timeout(60_000);
  let home: string;
  let kudu: KuduServer | undefined;
  let client: KuduClient | undefined;
  const data = crypto.randomBytes(300_000);

  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'range-home-'));
    fs.mkdirSync(path.join(home, 'data'));
    fs.writeFileSync(path.join(home, 'data', 'file.bin'), data);
    fs.writeFileSync(path.join(home, 'data', 'empty.bin'), '');
  });
  afterEach(async () => {
    client?.close();
    await kudu?.close();
    fs.rmSync(home, { recursive: true, force: true });
  });

  async function start(supportsRange: boolean): Promise<KuduClient> {
    kudu = await startKuduServer({ home, supportsRange });
    client = new KuduClient({ scmUrl: kudu.url, credential: basicCredential('user', 'pass'), userAgent: 'test' });
    return client;
  }

  it('reads a slice with a Range request, and says where the file ends', async () => {
    const c = await start(true);
    const got = await c.readRange('data/file.bin', 1000, 24);
    assert.ok(got.ranged);
    assert.ok(got.data.equals(data.subarray(1000, 1024)));
    assert.equal(got.size, data.length);
    assert.equal(kudu!.requests.at(-1)!.range, 'bytes=1000-1023');
    const tail = await c.readRange('data/file.bin', data.length - 10, 24);
    assert.ok(tail.data.equals(data.subarray(data.length - 10)));
    const past = await c.readRange('data/file.bin', data.length, 24);
    assert.deepEqual([past.exists, past.data.length, past.size], [true, 0, data.length]);
    const empty = await c.readRange('data/empty.bin', 0, 32);
    assert.deepEqual([empty.exists, empty.data.length, empty.size], [true, 0, 0]);
    const missing = await c.readRange('data/nothing.bin', 0, 32);
    assert.equal(missing.exists, false);
    await assert.rejects(c.readRange('data', 0, 32), /is a folder/);
  });

  it('reads only what it needs when the server sends the whole file', async () => {
    const c = await start(false);
    const head = await c.readRange('data/file.bin', 0, 100);
    assert.equal(head.ranged, false);
    assert.ok(head.data.equals(data.subarray(0, 100)));
    const mid = await c.readRange('data/file.bin', 5000, 24);
    assert.ok(mid.data.equals(data.subarray(5000, 5024)));
    assert.equal(mid.size, data.length);
    const past = await c.readRange('data/file.bin', data.length + 5, 24);
    assert.deepEqual([past.exists, past.data.length], [true, 0]);
    // The client is still usable after dropping connections.
    assert.ok((await c.readRange('data/file.bin', 0, 16)).data.equals(data.subarray(0, 16)));
  });

  it('turns the VFS ETag and the listing time into the file\'s write time', async () => {
    const c = await start(true);
    const file = path.join(home, 'data', 'file.bin');
    fs.utimesSync(file, new Date('2024-03-01T10:00:00.123Z'), new Date('2024-03-01T10:00:00.123Z'));
    const ticks = fs.statSync(file, { bigint: true }).mtimeNs / 100n;
    const got = await c.readRange('data/file.bin', 0, 1);
    assert.equal(lastWriteFromVfsEtag(got.etag), ticks);
    const entry = (await c.listDirectory('data'))!.find((e) => e.name === 'file.bin')!;
    assert.equal(parseVfsTime(entry.mtime), ticks);
    assert.equal(lastWriteFromVfsEtag('W/"abc"'), undefined);
    assert.equal(parseVfsTime('2024-03-01T11:00:00.5+01:00'), parseVfsTime('2024-03-01T10:00:00.5Z'));
    assert.equal(parseVfsTime('yesterday'), undefined);
  });
});
