/**
 * The backup engine while other processes use the database: a writer committing back to back and
 * a reader reading, in both journal modes. Every backup must be one instant of the app (checked
 * by the app's own invariants and against the source's ledger), readers must keep going, and a
 * backup killed halfway must leave the previous backup as it was.
 */
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backupSqlite } from '../../lib/sqlite/backup';
import { parseHeader } from '../../lib/sqlite/header';
import { AppProcess, BACKUP_CLI, checkAppDatabase, createAppDatabase, killAllApps, ledgerSha256, probeWrites, type AppStats, type WriteProbe } from '../../testkit/harness/sqlite-app';

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

describe('lib/sqlite backupSqlite with the app running in other processes', function () {
  this.timeout(120_000);
  let dir: string;
  let children: ChildProcess[];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backup-live-'));
    children = [];
  });
  afterEach(() => {
    killAllApps();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const journal of ['delete', 'truncate', 'wal'] as const) {
    it(`takes consistent backups while a writer commits back to back (${journal})`, async () => {
      const src = path.join(dir, 'app.db');
      // Past 64 MiB: the final pass runs on two threads, and a WAL copy in a child process.
      createAppDatabase(src, { journal, sizeMb: journal === 'truncate' ? 40 : 90 });
      // Frequent checkpoints in WAL mode: they write into the database file while it is copied.
      const writer = await AppProcess.start({ file: src, role: 'writer', rate: 0, walAutocheckpoint: journal === 'wal' ? 20 : undefined });
      await new Promise((r) => setTimeout(r, 300));
      const backups: Array<{ file: string; ops: number; ledger: string }> = [];
      let fixedUnderLock = 0;
      let walCopied = 0;
      for (let i = 0; i < 3; i++) {
        const report = await backupSqlite(src, path.join(dir, `backup-${i}.db`), { verify: 'quick' });
        assert.equal(report.journal, journal === 'wal' ? 'wal' : 'rollback');
        const state = checkAppDatabase(report.file); // throws when torn
        backups.push({ file: report.file, ops: state.ops, ledger: state.ledgerSha256 });
        fixedUnderLock += report.copy!.rewrittenUnderLock;
        walCopied += report.copy!.walBytes;
      }
      // The test exercises what it means to: torn blocks fixed by the final pass, a live -wal folded in.
      if (journal === 'wal') assert.ok(walCopied > 0, 'a -wal was copied');
      else assert.ok(fixedUnderLock > 0, 'the final pass rewrote blocks that changed during the lock-free copy');
      const writerStats = await writer.stop();
      assert.ok(writerStats.ops > 50, `the writer committed ${writerStats.ops} times`);
      assert.deepEqual(writerStats.errors, {}, 'BEGIN IMMEDIATE writers wait; they do not fail');
      // Each backup is the source at one instant: its ledger is the source's ledger up to that point.
      for (const b of backups) {
        assert.ok(b.ops > 0, 'commits landed before the backup');
        assert.equal(ledgerSha256(src, b.ops), b.ledger, `${b.file} (${b.ops} commits) matches the source's first ${b.ops} ledger rows`);
      }
      assert.ok(backups[2].ops > backups[0].ops, 'commits went on between backups');
      assert.equal(parseHeader(fs.readFileSync(src).subarray(0, 100)).journal, journal === 'wal' ? 'wal' : 'rollback', 'journal mode unchanged');
      checkAppDatabase(src);
    });
  }

  it('would catch a torn copy: a plain file copy taken during the same writes fails the checks', async () => {
    const src = path.join(dir, 'app.db');
    createAppDatabase(src, { journal: 'delete', sizeMb: 40 });
    const writer = await AppProcess.start({ file: src, role: 'writer', rate: 0 });
    await new Promise((r) => setTimeout(r, 300));
    let torn = 0;
    for (let i = 0; i < 10 && torn === 0; i++) {
      const copy = path.join(dir, `cp-${i}.db`);
      fs.copyFileSync(src, copy);
      try {
        checkAppDatabase(copy);
      } catch {
        torn++;
      }
    }
    await writer.stop();
    assert.ok(torn > 0, 'none of 10 plain copies was torn: the checks would not catch a bad backup');
  });

  for (const journal of ['delete', 'wal'] as const) {
    it(`keeps a reader in another process going while the app writes 100 commits/s (${journal})`, async () => {
      const src = path.join(dir, 'app.db');
      createAppDatabase(src, { journal, sizeMb: 60 });
      const writer = await AppProcess.start({ file: src, role: 'writer', rate: 100 });
      const reader = await AppProcess.start({ file: src, role: 'reader', rate: 200 });
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      const report = await backupSqlite(src, path.join(dir, 'backup.db'), { verify: 'none' });
      const ended = Date.now();
      await new Promise((r) => setTimeout(r, 200));
      const readerStats = await reader.stop();
      const writerStats = await writer.stop();
      checkAppDatabase(report.file);
      assert.deepEqual(readerStats.errors, {});
      assert.deepEqual(writerStats.errors, {});
      const during = readerStats.due.map((due, i) => ({ due, latency: readerStats.latency[i] })).filter((r) => r.due >= started && r.due <= ended);
      assert.ok(during.length > 0, 'the reader read during the backup');
      const worst = Math.max(...during.map((r) => r.latency));
      // Readers never wait for the backup (RESERVED, or a WAL read); the bound only absorbs a noisy machine.
      assert.ok(worst < 1000, `the reader's worst latency during the backup was ${worst.toFixed(0)} ms (backup held writers ${report.maxLockMs.toFixed(0)} ms)`);
    });
  }

  it('a deferred transaction that reads first gets SQLITE_BUSY at once during the final pass; other writes wait, reads go on', async () => {
    const src = path.join(dir, 'app.db');
    createAppDatabase(src, { journal: 'delete', sizeMb: 2 });
    let probe: WriteProbe | undefined;
    await backupSqlite(src, path.join(dir, 'backup.db'), {
      verify: 'none',
      // Runs while BEGIN IMMEDIATE is held: the probe's process sees the lock for its whole run.
      onProgress: (p) => {
        if (p.phase === 'final') probe = probeWrites(src, 400);
      },
    });
    assert.ok(probe, 'the final pass ran');
    assert.equal(probe.deferredReadThenWrite.outcome, 'SQLITE_BUSY');
    assert.ok(probe.deferredReadThenWrite.ms < 300, `deferred: busy after ${probe.deferredReadThenWrite.ms} ms, without waiting out its busy handler`);
    for (const kind of ['autocommitWrite', 'immediateTransaction'] as const) {
      assert.equal(probe[kind].outcome, 'SQLITE_BUSY', `${kind} times out only because the probe holds the lock past its 400 ms busy timeout`);
      assert.ok(probe[kind].ms >= 350, `${kind} waited in its busy handler (${probe[kind].ms} ms)`);
    }
    assert.equal(probe.read.outcome, 'ok');
    assert.ok(probe.read.ms < 300, `a read during the final pass took ${probe.read.ms} ms`);
  });

  it('still holds the lock at the end of a two-thread final pass (no descriptor of the database is closed under it)', async () => {
    const src = path.join(dir, 'app.db');
    createAppDatabase(src, { journal: 'delete', sizeMb: 90 });
    const probes: WriteProbe[] = [];
    await backupSqlite(src, path.join(dir, 'backup.db'), {
      verify: 'none',
      onProgress: (p) => {
        if (p.phase === 'final' && p.total > 64 << 20) probes.push(probeWrites(src, 300));
      },
    });
    assert.equal(probes.length, 2, 'probed at the start and at the end of the final pass');
    for (const probe of probes) {
      assert.equal(probe.autocommitWrite.outcome, 'SQLITE_BUSY', JSON.stringify(probe));
      assert.ok(probe.autocommitWrite.ms >= 250);
      assert.equal(probe.read.outcome, 'ok');
    }
  });

  it('a deferred read-then-write app writer gets SQLITE_BUSY only while the final pass holds the lock', async () => {
    const src = path.join(dir, 'app.db');
    createAppDatabase(src, { journal: 'delete', sizeMb: 60 });
    const writer = await AppProcess.start({ file: src, role: 'writer', rate: 100, transaction: 'deferred' });
    await new Promise((r) => setTimeout(r, 200));
    const report = await backupSqlite(src, path.join(dir, 'backup.db'), { verify: 'quick' });
    await new Promise((r) => setTimeout(r, 200));
    const stats: AppStats = await writer.stop();
    checkAppDatabase(report.file);
    checkAppDatabase(src);
    const final = report.lockSpans.find((s) => s.what.includes('BEGIN IMMEDIATE'))!;
    for (const at of stats.errorsAt) {
      assert.ok(at >= final.at - 20 && at <= final.at + final.ms + 50, `an error at +${(at - final.at).toFixed(0)} ms falls outside the final pass (0–${final.ms.toFixed(0)} ms)`);
    }
    assert.deepEqual(Object.keys(stats.errors).filter((k) => k !== 'SQLITE_BUSY'), []);
  });

  it('a backup killed halfway leaves the previous backup as it was, and the next run removes its partial file', async () => {
    const src = path.join(dir, 'app.db');
    createAppDatabase(src, { journal: 'delete', sizeMb: 200 });
    const dest = path.join(dir, 'out', 'backup.db');
    await backupSqlite(src, dest, { verify: 'none' });
    const good = sha(dest);
    const writer = await AppProcess.start({ file: src, role: 'writer', rate: 200 });

    // Killed the moment its partial file appears in the folder: during the bulk copy.
    const folder = path.dirname(dest);
    const cli = spawn(process.execPath, [BACKUP_CLI, 'backup', src, dest], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(cli);
    let stderr = '';
    cli.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
    const killed = await new Promise<NodeJS.Signals | null>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no partial file within 30 s: ${stderr}`)), 30_000);
      const poll = setInterval(() => {
        if (cli.signalCode === null && fs.readdirSync(folder).some((n) => n.includes('.partial-'))) cli.kill('SIGKILL');
      }, 2);
      cli.once('exit', (code, signal) => {
        clearTimeout(timer);
        clearInterval(poll);
        resolve(signal);
      });
    });
    await writer.stop();
    assert.equal(killed, 'SIGKILL', `the backup was killed before it finished: ${stderr}`);
    assert.equal(sha(dest), good, 'the previous backup is untouched');
    const partials = fs.readdirSync(path.dirname(dest)).filter((n) => n.includes('.partial-'));
    assert.ok(partials.length >= 1, 'the killed backup left its (hidden) partial file');
    const partialBytes = fs.statSync(path.join(path.dirname(dest), partials[0])).size;
    assert.ok(partialBytes < fs.statSync(src).size, `killed mid-copy: the partial file has ${partialBytes} of ${fs.statSync(src).size} bytes`);
    assert.ok(!fs.existsSync(`${dest}-journal`) && !fs.existsSync(`${dest}-wal`));

    const report = await backupSqlite(src, dest, { verify: 'quick' });
    checkAppDatabase(report.file);
    assert.deepEqual(fs.readdirSync(path.dirname(dest)).filter((n) => n.includes('.partial-')), [], 'the next run cleaned up');
  });
});
