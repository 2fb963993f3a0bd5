/**
 * AppServiceDatabaseGuard against the Kudu-compatible server and a live database whose app runs
 * in processes of its own: the backup's fingerprint (from SqliteBackup, run as the agent runs it),
 * then commits, checkpoints and readers in other processes, then the guard. Last, end to end: the
 * built-in WebJob backs up while the app writes, AppServiceDownload brings the fingerprint from
 * the backup's manifest, and the guard sees the writes the swap would lose.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fingerprintFromBytes, formatFingerprint, parseWalHeader } from '../../lib/sqlite/fingerprint';
import { genericEndpoint, runTask, type TaskRun } from '../../testkit/harness/agent';
import { AppProcess, checkAppDatabase, ConnectionProcess, createAppDatabase, killAllApps } from '../../testkit/harness/sqlite-app';
import { startKuduServer, type KuduServer } from '../../testkit/kudu-server';

const DATA = 'site/wwwroot/content/data';
const BUMP = "UPDATE counters SET value = value + 1 WHERE name = 'ops'";
const AUTH = { basic: { username: '$blog', password: 'pw-0123456789' } };

describe('AppServiceDatabaseGuard', function () {
  this.timeout(120_000);
  let home: string;
  let work: string;
  let kudu: KuduServer;
  const live = () => path.join(home, ...DATA.split('/'), 'ghost.db');

  beforeEach(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'guard-home-'));
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'guard-work-'));
    fs.mkdirSync(path.join(home, ...DATA.split('/')), { recursive: true });
    kudu = await startKuduServer({ home, auth: AUTH });
  });
  afterEach(async () => {
    killAllApps();
    await kudu.close();
    fs.rmSync(home, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });

  /** The backup's fingerprint, as SqliteBackup records it at the instant of its copy. */
  async function backup(): Promise<string> {
    const run = await runTask({ task: 'SqliteBackup', inputs: { databasePath: live(), backupPath: path.join(work, 'backup.db'), verify: 'quick' }, workDir: work });
    assert.equal(run.result, 'Succeeded', run.output);
    return run.variables.databaseFingerprint.value;
  }

  function guard(expectedFingerprint: string, inputs: Record<string, string> = {}, server: KuduServer = kudu): Promise<TaskRun> {
    return runTask({
      task: 'AppServiceDatabaseGuard',
      inputs: { connectionType: 'Generic', kuduService: 'kudu', expectedFingerprint, ...inputs },
      endpoints: { kudu: genericEndpoint(server.url, '$blog', 'pw-0123456789') },
    });
  }

  /** Runs statements on a connection of its own (another process), then closes it. */
  async function app(...statements: string[]): Promise<void> {
    const connection = await ConnectionProcess.open(live(), ['PRAGMA wal_autocheckpoint = 0', ...statements]);
    await connection.close();
  }

  function assertUnchanged(run: TaskRun, expected: string): void {
    assert.equal(run.result, 'Succeeded', run.output);
    assert.equal(run.variables.databaseChanged.value, 'false');
    assert.equal(run.variables.databaseChanged.isOutput, true);
    assert.match(run.resultMessage!, /has not changed since the backup/);
    if (!expected.includes(':wal=')) assert.equal(run.variables.liveFingerprint.value, expected);
  }

  function assertChanged(run: TaskRun, what: RegExp): void {
    assert.equal(run.result, 'Failed', run.output);
    assert.equal(run.variables.databaseChanged.value, 'true');
    assert.match(run.resultMessage!, /The live database site\/wwwroot\/content\/data\/ghost\.db on 127\.0\.0\.1:\d+ has changed since the backup: /);
    assert.match(run.resultMessage!, what);
    assert.match(run.resultMessage!, /Run the build again so that its backup includes the new writes.*set onChange: warn/);
  }

  describe('rollback journal', () => {
    beforeEach(() => createAppDatabase(live(), { journal: 'delete', sizeMb: 2 }));

    it('passes when nothing was committed since the backup, with one 100-byte Range read', async () => {
      const expected = await backup();
      const run = await guard(expected);
      assertUnchanged(run, expected);
      const reads = kudu.requests.filter((r) => r.path.startsWith(`/api/vfs/${DATA}/`));
      assert.deepEqual(reads.map((r) => [r.path, r.range, r.status]), [[`/api/vfs/${DATA}/ghost.db`, 'bytes=0-99', 206]]);
    });

    it('fails after one commit, saying what changed and what to do', async () => {
      const expected = await backup();
      await app(BUMP);
      const run = await guard(expected);
      const cc = Number(/cc=(\d+)/.exec(expected)![1]);
      assertChanged(run, new RegExp(`change counter went from ${cc} to ${cc + 1}: 1 commit since the backup`));
      assert.match(run.variables.liveFingerprint.value, new RegExp(`^v1:rollback:cc=${cc + 1}:`));
    });

    it('stays unchanged while the app only reads', async () => {
      const expected = await backup();
      const reader = await AppProcess.start({ file: live(), role: 'reader', rate: 200 });
      const during = await guard(expected);
      const stats = await reader.stop();
      assert.ok(stats.ops > 0 && Object.keys(stats.errors).length === 0, JSON.stringify(stats.errors));
      assertUnchanged(during, expected);
      assertUnchanged(await guard(expected), expected);
    });

    it('warns and goes on with onChange: warn', async () => {
      const expected = await backup();
      await app(BUMP, BUMP);
      const run = await guard(expected, { onChange: 'warn' });
      assert.equal(run.result, 'SucceededWithIssues', run.output);
      assert.equal(run.variables.databaseChanged.value, 'true');
      assert.equal(run.warnings.length, 1, run.output);
      assert.match(run.warnings[0], /has changed since the backup: .*2 commits since the backup\. Continuing because onChange is warn: the swap will throw away what was written since the backup\.$/);
      assert.equal(run.resultMessage, run.warnings[0]);
    });
  });

  describe('WAL', () => {
    let holder: ConnectionProcess;
    beforeEach(async () => {
      createAppDatabase(live(), { journal: 'wal', sizeMb: 2 });
      // The app's connection, open throughout, keeps the -wal (its last close would checkpoint it away); two commits in it.
      holder = await ConnectionProcess.open(live(), ['PRAGMA wal_autocheckpoint = 0', BUMP, BUMP]);
    });
    afterEach(() => holder.close());

    const walSize = () => fs.statSync(`${live()}-wal`).size;
    const walGeneration = () => parseWalHeader(fs.readFileSync(`${live()}-wal`).subarray(0, 32));

    it('passes when nothing was committed, the backup\'s frames still in the -wal, also after a checkpoint copied them into the file', async () => {
      const expected = await backup();
      assert.match(expected, /:wal=[0-9a-f]{8}\.[0-9a-f]{8}\.\d+\+2$/);
      assertUnchanged(await guard(expected), expected);
      await app('PRAGMA wal_checkpoint(PASSIVE)');
      const run = await guard(expected);
      assertUnchanged(run, expected);
      assert.equal(run.variables.liveFingerprint.value.replace(/:mt=\d+/, ''), expected.replace(/:mt=\d+/, ''));
    });

    it('fails on a commit still in the -wal', async () => {
      const expected = await backup();
      await app(BUMP);
      const run = await guard(expected);
      assertChanged(run, /its -wal has frames after the backup's last commit \(frame 2\)/);
      assert.match(run.variables.liveFingerprint.value, /\+3\+$/);
    });

    it('fails on a commit that a checkpoint has since copied into the database file', async () => {
      const expected = await backup();
      await app(BUMP, 'PRAGMA wal_checkpoint(PASSIVE)');
      assertChanged(await guard(expected), /frames after the backup's last commit/);
    });

    it('fails on a commit in a -wal restarted over older frames, where neither its size nor its header changes', async () => {
      await app(...Array.from({ length: 20 }, () => BUMP), 'PRAGMA wal_checkpoint(PASSIVE)');
      const before = walGeneration();
      await app(BUMP); // restarts the -wal: new salts, frame 1 written over the old frame 1
      assert.notDeepEqual(walGeneration(), before, 'the -wal restarted');
      const expected = await backup();
      assert.match(expected, /\+1$/);
      const [size, generation] = [walSize(), walGeneration()];
      await app(BUMP);
      assert.equal(walSize(), size, 'the commit went over an old frame: the -wal did not grow');
      assert.deepEqual(walGeneration(), generation, 'nor did its header change');
      assertChanged(await guard(expected), /its -wal has frames after the backup's last commit \(frame 1\)/);
    });

    it('fails on a commit after a TRUNCATE checkpoint emptied the -wal (the database file was written)', async () => {
      const expected = await backup();
      await app(BUMP, 'PRAGMA wal_checkpoint(TRUNCATE)');
      assert.equal(walSize(), 0);
      const run = await guard(expected);
      assertChanged(run, /its -wal was checkpointed into the database file and emptied, and the database file was written at .* after the backup saw it at/);
      assert.match(run.variables.liveFingerprint.value, /:wal=none$/);
    });

    it('passes after a TRUNCATE checkpoint that had nothing to copy', async () => {
      await app('PRAGMA wal_checkpoint(PASSIVE)');
      const expected = await backup();
      await app('PRAGMA wal_checkpoint(TRUNCATE)');
      assert.equal(walSize(), 0);
      assertUnchanged(await guard(expected), expected);
    });

    it('stays unchanged while the app only reads', async () => {
      const expected = await backup();
      const reader = await AppProcess.start({ file: live(), role: 'reader', rate: 200 });
      const during = await guard(expected);
      await reader.stop();
      assertUnchanged(during, expected);
      assertUnchanged(await guard(expected), expected);
    });
  });

  describe('errors, and servers without Range', () => {
    it('fails clearly when the live database is not there', async () => {
      const run = await guard('v1:rollback:cc=3:pages=10:ps=4096');
      assert.equal(run.result, 'Failed', run.output);
      assert.match(run.resultMessage!, /site\/wwwroot\/content\/data\/ghost\.db on 127\.0\.0\.1:\d+ does not exist \(404\)\. The guard reads the live database: set remotePath/);
      assert.equal(run.variables.databaseChanged, undefined);
    });

    it('fails clearly, before asking the server anything, on a malformed or unset fingerprint', async () => {
      const bad = await guard('v1:rollback:cc=3:ps=4096');
      assert.equal(bad.result, 'Failed', bad.output);
      assert.match(bad.resultMessage!, /^Input 'expectedFingerprint': 'v1:rollback:cc=3:ps=4096' is not a database fingerprint \('pages=' is missing\)\. A fingerprint looks like v1:rollback:/);
      const unset = await guard('$(download.databaseFingerprint)');
      assert.match(unset.resultMessage!, /unexpanded macro '\$\(download\.databaseFingerprint\)'/);
      assert.equal(kudu.requests.length, 0);
    });

    it('reads only the head of a 1 GiB database from a server that ignores Range, and of its -wal', async () => {
      const slow = await startKuduServer({ home, auth: AUTH, supportsRange: false });
      try {
        createAppDatabase(live(), { journal: 'delete', sizeMb: 1 });
        // A 1 GiB file (sparse: its header is all the guard reads).
        fs.truncateSync(live(), 1 << 30);
        const expected = formatFingerprint(fingerprintFromBytes({ header: fs.readFileSync(live()).subarray(0, 100) }));
        const run = await guard(expected, {}, slow);
        assertUnchanged(run, expected);
        const reads = slow.requests.filter((r) => r.path === `/api/vfs/${DATA}/ghost.db`);
        assert.equal(reads.length, 1);
        assert.equal(reads[0].status, 200, 'the whole file was offered');
        assert.ok(reads[0].bytesSent < 64 << 20, `the server sent ${reads[0].bytesSent} bytes of 1 GiB before the guard hung up`);

        // WAL: the frame after the backup's last one is found by reading up to it.
        createAppDatabase(live(), { journal: 'wal', sizeMb: 1 });
        const holder = await ConnectionProcess.open(live(), ['PRAGMA wal_autocheckpoint = 0', BUMP]);
        try {
          const walExpected = await backup();
          assertUnchanged(await guard(walExpected, {}, slow), walExpected);
          await app(BUMP);
          assertChanged(await guard(walExpected, {}, slow), /frames after the backup's last commit \(frame 1\)/);
        } finally {
          await holder.close();
        }
      } finally {
        await slow.close();
      }
    });
  });

  it('end to end: the built-in job backs up while the app writes, the download carries the fingerprint, the guard sees the later writes; after a backup of the idle app it passes', async function () {
    this.timeout(180_000);
    const endpoints = { kudu: genericEndpoint(kudu.url, '$blog', 'pw-0123456789') };
    const backupJob = () =>
      runTask({ task: 'AppServiceWebJobRun', inputs: { connectionType: 'Generic', kuduService: 'kudu', jobName: 'sqlite-backup', installJob: true, pollIntervalSeconds: 0.5, timeoutMinutes: 2 }, endpoints });
    const download = () =>
      runTask({ task: 'AppServiceDownload', inputs: { connectionType: 'Generic', kuduService: 'kudu', remotePath: `${DATA}/backup.db`, destination: 'content/data/ghost.db' }, endpoints, workDir: work });

    createAppDatabase(live(), { journal: 'delete', sizeMb: 8 });
    const writer = await AppProcess.start({ file: live(), role: 'writer', rate: 100 });
    let job: TaskRun;
    let got: TaskRun;
    let stats;
    try {
      await new Promise((r) => setTimeout(r, 300));
      job = await backupJob();
      got = await download();
      // The app goes on writing a little after the backup, then stops (as it would before a check).
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      stats = await writer.stop();
    }
    assert.equal(job.result, 'Succeeded', job.output);
    assert.equal(got.result, 'Succeeded', got.output);
    const fingerprint = got.variables.databaseFingerprint.value;
    assert.match(fingerprint, /^v1:rollback:cc=\d+:pages=\d+:ps=4096$/);
    assert.match(got.variables.backupTakenAt.value, /^\d{4}-\d\d-\d\dT/);
    assert.equal(got.variables.backupSourcePath.value, live());
    const inBackup = checkAppDatabase(path.join(work, 'content', 'data', 'ghost.db')).ops;
    assert.ok(stats.ops > inBackup, `the app committed after the backup (${stats.ops} commits in all, ${inBackup} in the backup)`);

    const changed = await guard(fingerprint);
    assertChanged(changed, new RegExp(`${stats.ops - inBackup} commits since the backup`));

    // The app idle: a new backup, and nothing written after it.
    assert.equal((await backupJob()).result, 'Succeeded');
    const again = await download();
    assert.equal(again.result, 'Succeeded', again.output);
    assertUnchanged(await guard(again.variables.databaseFingerprint.value), again.variables.databaseFingerprint.value);
  });
});
