/**
 * The database fingerprint (lib/sqlite/fingerprint.ts): computed from header bytes, compared, and
 * its compact form; then the engine's record of it, on real databases whose app connections live
 * in processes of their own (ConnectionProcess), as the engine requires.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backupSqlite } from '../../lib/sqlite/backup';
import {
  compareFingerprints,
  fingerprintFromBytes,
  FingerprintError,
  formatFingerprint,
  formatTicks,
  frameBelongsTo,
  parseFingerprint,
  parseWalHeader,
  walFrameOffset,
  type DatabaseFingerprint,
} from '../../lib/sqlite/fingerprint';
import { ConnectionProcess, createAppDatabase, killAllApps } from '../../testkit/harness/sqlite-app';

/** A database header as SQLite writes it: magic, page size, versions (1 rollback, 2 WAL), counter, page count. */
function header(o: { pageSize?: number; wal?: boolean; cc?: number; pages?: number } = {}): Buffer {
  const b = Buffer.alloc(100);
  b.write('SQLite format 3\0', 0, 'latin1');
  b.writeUInt16BE(o.pageSize === 65536 ? 1 : (o.pageSize ?? 4096), 16);
  b[18] = b[19] = o.wal ? 2 : 1;
  b.writeUInt32BE(o.cc ?? 7, 24);
  b.writeUInt32BE(o.pages ?? 30, 28);
  b.writeUInt32BE(o.cc ?? 7, 92);
  return b;
}

function walHeader(o: { salt1: number; salt2: number; ckpt: number; pageSize?: number }): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32BE(0x377f0682, 0);
  b.writeUInt32BE(3007000, 4);
  b.writeUInt32BE(o.pageSize ?? 4096, 8);
  b.writeUInt32BE(o.ckpt, 12);
  b.writeUInt32BE(o.salt1, 16);
  b.writeUInt32BE(o.salt2, 20);
  return b;
}

function frameHeader(salt1: number, salt2: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32BE(5, 0);
  b.writeUInt32BE(salt1, 8);
  b.writeUInt32BE(salt2, 12);
  return b;
}

const gen = { salt1: 0x0a1b2c3d, salt2: 0x4e5f6a7b, ckpt: 3 };
const T = 17323309231234567n;

function walFp(o: { cc?: number; pages?: number; modified?: bigint; wal?: { frames: number; ckpt?: number; salt1?: number; orMore?: boolean } | null } = {}): DatabaseFingerprint {
  const fp = fingerprintFromBytes({
    header: header({ wal: true, cc: o.cc, pages: o.pages }),
    walHeader: o.wal ? walHeader({ ...gen, ckpt: o.wal.ckpt ?? gen.ckpt, salt1: o.wal.salt1 ?? gen.salt1 }) : undefined,
    walFrames: o.wal?.frames,
    modified: o.modified ?? T,
  });
  if (o.wal?.orMore && fp.wal) fp.wal.orMore = true;
  return fp;
}

describe('database fingerprint', () => {
  describe('from bytes, and its compact form', () => {
    it('rollback journal: change counter, page count, page size', () => {
      const fp = fingerprintFromBytes({ header: header({ cc: 1234, pages: 5678 }) });
      assert.deepEqual(fp, { journal: 'rollback', changeCounter: 1234, pageCount: 5678, pageSize: 4096 });
      assert.equal(formatFingerprint(fp), 'v1:rollback:cc=1234:pages=5678:ps=4096');
      assert.deepEqual(parseFingerprint('v1:rollback:cc=1234:pages=5678:ps=4096'), fp);
    });

    it('WAL: the -wal generation, its frames and the file time; none when the -wal is empty or absent', () => {
      const fp = walFp({ cc: 12, pages: 40, wal: { frames: 120 } });
      assert.equal(formatFingerprint(fp), `v1:wal:cc=12:pages=40:ps=4096:mt=${T}:wal=0a1b2c3d.4e5f6a7b.3+120`);
      assert.deepEqual(parseFingerprint(formatFingerprint(fp)), fp);
      for (const empty of [undefined, Buffer.alloc(0), Buffer.alloc(10), Buffer.alloc(32)]) {
        const none = fingerprintFromBytes({ header: header({ wal: true }), walHeader: empty, modified: T });
        assert.equal(none.wal, null);
        assert.match(formatFingerprint(none), /:wal=none$/);
      }
      const live = walFp({ wal: { frames: 121, orMore: true } });
      assert.match(formatFingerprint(live), /\+121\+$/);
      assert.deepEqual(parseFingerprint(formatFingerprint(live)), live);
      assert.equal(fingerprintFromBytes({ header: header({ pageSize: 65536 }) }).pageSize, 65536);
    });

    it('reads the -wal header and tells frames of this generation from older ones', () => {
      const h = walHeader({ ...gen, pageSize: 1024 });
      assert.deepEqual(parseWalHeader(h), { pageSize: 1024, checkpoint: 3, salt1: gen.salt1, salt2: gen.salt2 });
      const bigEndianChecksums = Buffer.from(h);
      bigEndianChecksums.writeUInt32BE(0x377f0683, 0);
      assert.ok(parseWalHeader(bigEndianChecksums));
      assert.equal(parseWalHeader(Buffer.alloc(32)), undefined);
      assert.equal(walFrameOffset(4096, 1), 32);
      assert.equal(walFrameOffset(4096, 3), 32 + 2 * (24 + 4096));
      assert.ok(frameBelongsTo(frameHeader(gen.salt1, gen.salt2), { ...gen, checkpoint: 3 }));
      assert.ok(!frameBelongsTo(frameHeader(gen.salt1 - 1, 0x12345678), { ...gen, checkpoint: 3 }));
    });

    it('refuses what is not a fingerprint, saying what one looks like and where it comes from', () => {
      const bad = ['', 'hello', 'v2:rollback:cc=1:pages=1:ps=4096', 'v1:delete:cc=1:pages=1:ps=4096', 'v1:rollback:cc=1:pages=1', 'v1:rollback:cc=x:pages=1:ps=4096',
        'v1:rollback:cc=1:pages=1:ps=4000', 'v1:rollback:cc=1:pages=1:ps=4096:wal=none', 'v1:wal:cc=1:pages=1:ps=4096', 'v1:wal:cc=1:pages=1:ps=4096:wal=abc',
        'v1:rollback:cc=1:cc=2:pages=1:ps=4096', 'v1:rollback:cc=99999999999:pages=1:ps=4096', 'v1:rollback:cc=1:pages=1:ps=4096:size=3'];
      for (const text of bad) {
        assert.throws(() => parseFingerprint(text), (err: Error) => {
          assert.ok(err instanceof FingerprintError, text);
          assert.match(err.message, /v1:rollback:cc=1234:pages=5678:ps=4096/, text);
          assert.match(err.message, /databaseFingerprint/, text);
          return true;
        });
      }
      assert.throws(() => parseFingerprint('v9:rollback:cc=1:pages=1:ps=4096'), /update the extension/);
      assert.throws(() => parseFingerprint('$(download.databaseFingerprint)'), /unexpanded macro.*not set in this run/);
    });
  });

  describe('comparing', () => {
    it('rollback journal: the change counter counts the commits', () => {
      const before = fingerprintFromBytes({ header: header({ cc: 10, pages: 30 }) });
      assert.deepEqual(compareFingerprints(before, before), []);
      const after = fingerprintFromBytes({ header: header({ cc: 13, pages: 31 }) });
      const changes = compareFingerprints(before, after);
      assert.deepEqual(changes.map((c) => c.what), ['change-counter', 'page-count']);
      assert.match(changes[0].message, /went from 10 to 13: 3 commits since the backup/);
      assert.match(changes[1].message, /grew from 30 to 31 pages/);
      const wrapped = compareFingerprints(fingerprintFromBytes({ header: header({ cc: 0xffffffff }) }), fingerprintFromBytes({ header: header({ cc: 0 }) }));
      assert.match(wrapped[0].message, /1 commit since/);
    });

    it('a switch of journal mode, or of page size, is a change', () => {
      const rollback = fingerprintFromBytes({ header: header() });
      assert.match(compareFingerprints(rollback, walFp({ cc: 7 }))[0].message, /switched from the rollback journal to WAL/);
      assert.match(compareFingerprints(rollback, fingerprintFromBytes({ header: header({ pageSize: 8192 }) }))[0].message, /page size changed from 4096 to 8192/);
    });

    it('WAL: same generation and no frame after the backup\'s last one is unchanged, whatever a checkpoint did to the file time', () => {
      const backup = walFp({ wal: { frames: 120 } });
      assert.deepEqual(compareFingerprints(backup, walFp({ wal: { frames: 120 } })), []);
      assert.deepEqual(compareFingerprints(backup, walFp({ wal: { frames: 120 }, modified: T + 5n })), []);
    });

    it('WAL: a frame after the backup\'s last one, a restarted -wal, or a -wal where there was none is a change', () => {
      const backup = walFp({ wal: { frames: 120 } });
      assert.match(compareFingerprints(backup, walFp({ wal: { frames: 121, orMore: true } }))[0].message, /frames after the backup's last commit \(frame 120\)/);
      assert.match(compareFingerprints(backup, walFp({ wal: { frames: 1, ckpt: 4, salt1: gen.salt1 + 1, orMore: true } }))[0].message, /restarted after a checkpoint \(checkpoint sequence 3 → 4/);
      assert.match(compareFingerprints(walFp({ wal: null }), walFp({ wal: { frames: 1, orMore: true } }))[0].message, /holds transactions written after the backup/);
    });

    it('WAL: an emptied -wal is a change exactly when the database file was written after the backup', () => {
      const backup = walFp({ wal: { frames: 120 } });
      assert.deepEqual(compareFingerprints(backup, walFp({ wal: null })), []);
      const written = compareFingerprints(backup, walFp({ wal: null, modified: T + 1n }));
      assert.equal(written[0].what, 'file-written');
      assert.match(written[0].message, /checkpointed into the database file and emptied.*written at .*after the backup saw it at/);
      assert.deepEqual(compareFingerprints(walFp({ wal: null }), walFp({ wal: null })), []);
      assert.match(compareFingerprints(walFp({ wal: null }), walFp({ wal: null, modified: T + 1n }))[0].message, /is empty, and the database file was written/);
      assert.match(compareFingerprints(backup, { ...walFp({ wal: null }), modified: undefined })[0].message, /cannot tell/);
    });

    it('WAL: a checkpoint that wrote page 1 shows in the header', () => {
      const changes = compareFingerprints(walFp({ cc: 12, wal: { frames: 120 } }), walFp({ cc: 13, wal: { frames: 120 } }));
      assert.match(changes[0].message, /header changed \(change counter 12 → 13\): a checkpoint copied new pages into it/);
    });

    it('refuses to take a live fingerprint as the expected one', () => {
      assert.throws(() => compareFingerprints(walFp({ wal: { frames: 3, orMore: true } }), walFp({ wal: { frames: 3 } })), /read from a live database/);
    });

    it('shows file times with all seven decimals', () => {
      assert.equal(formatTicks(17323309231234567n), '2024-11-23T03:02:03.1234567Z');
    });
  });

  describe('recorded by the backup engine at the instant of the copy', function () {
    this.timeout(60_000);
    let dir: string;
    beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fingerprint-'))));
    afterEach(() => {
      killAllApps();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    const liveHeader = (file: string) => fs.readFileSync(file).subarray(0, 100);

    it('rollback journal: the header of the database the copy holds', async () => {
      const db = path.join(dir, 'app.db');
      createAppDatabase(db, { journal: 'delete', sizeMb: 1 });
      const app = await ConnectionProcess.open(db, ["UPDATE counters SET value = value + 1 WHERE name = 'ops'"]);
      await app.close();
      const report = await backupSqlite(db, path.join(dir, 'backup.db'));
      assert.equal(report.fingerprint.journal, 'rollback');
      assert.equal(report.fingerprint.changeCounter, report.changeCounter);
      assert.deepEqual(report.fingerprint, fingerprintFromBytes({ header: liveHeader(db) }));
      assert.deepEqual(compareFingerprints(report.fingerprint, fingerprintFromBytes({ header: liveHeader(path.join(dir, 'backup.db')) })), []);

      // Skipped as unchanged: the fingerprint of now, which is the same state.
      const again = await backupSqlite(db, path.join(dir, 'backup.db'), { skipIfUnchanged: true });
      assert.equal(again.skipped, true);
      assert.deepEqual(again.fingerprint, report.fingerprint);
    });

    it('WAL: the -wal generation and the frames the copy holds, and the file time', async () => {
      const db = path.join(dir, 'app.db');
      createAppDatabase(db, { journal: 'wal', sizeMb: 1 });
      // The app's connection stays open, so the -wal keeps its frames (the last close would checkpoint it away).
      const app = await ConnectionProcess.open(db, [
        'PRAGMA wal_autocheckpoint = 0',
        "UPDATE counters SET value = value + 1 WHERE name = 'ops'",
        "UPDATE counters SET value = value + 1 WHERE name = 'ops'",
        "UPDATE counters SET value = value + 1 WHERE name = 'ops'",
      ]);
      try {
        const walBytes = fs.readFileSync(`${db}-wal`);
        const report = await backupSqlite(db, path.join(dir, 'backup.db'));
        const fp = report.fingerprint;
        assert.equal(fp.journal, 'wal');
        const generation = parseWalHeader(walBytes)!;
        assert.ok(fp.wal, formatFingerprint(fp));
        assert.deepEqual({ salt1: fp.wal.salt1, salt2: fp.wal.salt2, checkpoint: fp.wal.checkpoint }, { salt1: generation.salt1, salt2: generation.salt2, checkpoint: generation.checkpoint });
        // Three commits of one page each (the counters table's leaf), and every frame the copy holds is of this generation.
        assert.equal(fp.wal.frames, (walBytes.length - 32) / (24 + 4096));
        assert.equal(fp.wal.frames, 3);
        assert.equal(fp.modified, fs.statSync(db, { bigint: true }).mtimeNs / 100n);
        assert.deepEqual(compareFingerprints(fp, fingerprintFromBytes({ header: liveHeader(db), walHeader: walBytes, walFrames: 3, modified: fp.modified })), []);
      } finally {
        await app.close();
      }
      // The app gone, its last close checkpointed and removed the -wal.
      assert.ok(!fs.existsSync(`${db}-wal`));
      const report = await backupSqlite(db, path.join(dir, 'backup.db'));
      assert.equal(report.fingerprint.wal, null);
      assert.match(formatFingerprint(report.fingerprint), /:wal=none$/);
    });
  });
});
