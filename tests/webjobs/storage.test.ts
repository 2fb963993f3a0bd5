/**
 * webjobs/sqlite-backup/storage: when the job warns about App Service's shared storage, with the
 * environment, platform and file system type of a Windows and a Linux worker injected.
 */
import * as assert from 'node:assert/strict';
import { sharedStorageOf, storageWarnings } from '../../webjobs/sqlite-backup/storage';

const CIFS = 0xff534d42;
const EXT4 = 0xef53;

describe('sqlite-backup WebJob: shared storage', () => {
  const windowsWorker = { HOME: 'D:\\home', WEBSITE_INSTANCE_ID: 'a1b2c3' };

  it("recognises a Windows worker's D:\\home, and nothing else on Windows", () => {
    const onShare = sharedStorageOf('D:\\home\\site\\wwwroot\\content\\data\\ghost.db', { env: windowsWorker, platform: 'win32' });
    assert.match(onShare?.reason ?? '', /^D:\\home is App Service's shared storage \(an SMB share every instance of the app uses\)$/);
    assert.ok(sharedStorageOf('d:\\HOME\\site\\ghost.db', { env: windowsWorker, platform: 'win32' }), 'paths on Windows are case-insensitive');
    assert.equal(sharedStorageOf('D:\\local\\Temp\\ghost.db', { env: windowsWorker, platform: 'win32' }), undefined);
    assert.equal(sharedStorageOf('D:\\home\\site\\ghost.db', { env: { HOME: 'D:\\home' }, platform: 'win32' }), undefined, 'not on App Service');
  });

  it('recognises a network file system on Linux from statfs, whatever the environment says', () => {
    const file = '/home/site/wwwroot/content/data/ghost.db';
    const seen: string[] = [];
    const cifs = sharedStorageOf(file, { env: {}, platform: 'linux', fileSystemType: (p) => (seen.push(p), CIFS) });
    assert.match(cifs?.reason ?? '', /^\/home\/site\/wwwroot\/content\/data is on a network file system \(CIFS\)$/);
    assert.deepEqual(seen, ['/home/site/wwwroot/content/data']);
    assert.equal(sharedStorageOf(file, { env: { WEBSITE_INSTANCE_ID: 'x', HOME: '/home' }, platform: 'linux', fileSystemType: () => EXT4 }), undefined);
    assert.equal(sharedStorageOf(file, { env: {}, platform: 'linux', fileSystemType: () => undefined }), undefined);
  });

  it('warns about WAL on shared storage, and notes the instance count it cannot see', () => {
    const shared = { reason: 'D:\\home is shared' };
    const wal = storageWarnings('D:\\home\\ghost.db', 'wal', shared);
    assert.equal(wal.warn.length, 1);
    assert.match(wal.warn[0], /uses WAL, and D:\\home is shared\. SQLite's documentation says WAL does not work over a network file system/);
    assert.match(wal.warn[0], /PRAGMA journal_mode=DELETE/);
    const rollback = storageWarnings('D:\\home\\ghost.db', 'rollback', shared);
    assert.deepEqual(rollback.warn, []);
    assert.match(rollback.info[0], /more than one instance.*the job cannot see how many there are/);
  });
});
