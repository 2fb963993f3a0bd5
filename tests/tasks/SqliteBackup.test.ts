/**
 * SqliteBackup@1 run the way the agent runs it (testkit/harness/agent.ts), on real files, with the
 * app writing in another process for one of the runs.
 */
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { compareFingerprints, fingerprintFromBytes, parseFingerprint } from '../../lib/sqlite/fingerprint';
import { MANIFEST_FORMAT, parseManifest } from '../../lib/sqlite/manifest';
import { version } from '../../package.json';
import { runTask, type TaskRun } from '../../testkit/harness/agent';
import { AppProcess, checkAppDatabase, createAppDatabase, killAllApps } from '../../testkit/harness/sqlite-app';

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

describe('SqliteBackup task', function () {
  this.timeout(120_000);
  let work: string;
  beforeEach(() => (work = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-backup-task-'))));
  afterEach(() => {
    killAllApps();
    fs.rmSync(work, { recursive: true, force: true });
  });

  const run = (inputs: Record<string, string | boolean | number>): Promise<TaskRun> => runTask({ task: 'SqliteBackup', inputs, workDir: work });
  const out = (r: TaskRun, name: string) => {
    const v = r.variables[name];
    assert.ok(v, `output ${name} is set:\n${r.output}`);
    assert.equal(v.isOutput, true);
    return v.value;
  };

  it('backs up a live database into a timestamped file in a folder, with outputs, phase lines and a summary', async () => {
    fs.mkdirSync(path.join(work, 'content'));
    createAppDatabase(path.join(work, 'content', 'ghost.db'), { journal: 'delete', sizeMb: 20 });
    const writer = await AppProcess.start({ file: path.join(work, 'content', 'ghost.db'), role: 'writer', rate: 100 });
    const r = await run({ databasePath: 'content/ghost.db', backupPath: 'backups/' });
    await writer.stop();
    assert.equal(r.result, 'Succeeded', r.output);
    const file = out(r, 'backupFile');
    assert.match(path.basename(file), /^ghost-\d{8}-\d{6}\.db$/);
    assert.equal(path.dirname(file), path.join(work, 'backups'));
    assert.equal(out(r, 'backupSha256'), sha(file));
    assert.equal(Number(out(r, 'backupBytes')), fs.statSync(file).size);
    assert.equal(out(r, 'backupSkipped'), 'false');
    assert.ok(Number(out(r, 'maxLockMilliseconds')) >= 0);
    // The fingerprint is the copy's state: its header, as the final pass left it (the app kept writing after).
    const fingerprint = parseFingerprint(out(r, 'databaseFingerprint'));
    assert.deepEqual(compareFingerprints(fingerprint, fingerprintFromBytes({ header: fs.readFileSync(file).subarray(0, 100) })), []);
    assert.match(out(r, 'databaseFingerprint'), /^v1:rollback:cc=\d+:pages=\d+:ps=4096$/);
    checkAppDatabase(file);
    for (const line of [/^Journal mode: rollback journal/, /^Copied .* without a lock/, /^Final pass under BEGIN IMMEDIATE/, /^Verified the copy with PRAGMA integrity_check/, /^Backed up /]) {
      assert.ok(r.logLines.some((l) => line.test(l)), `a log line ${line}:\n${r.logLines.join('\n')}`);
    }
    assert.match(r.resultMessage ?? '', /writers could have waited at most/);
    assert.equal(r.summaries.length, 1);
  });

  it('compresses, and skips the second time when nothing changed', async () => {
    createAppDatabase(path.join(work, 'app.db'), { journal: 'wal', sizeMb: 5 });
    const inputs = { databasePath: 'app.db', backupPath: 'b/app.db', compress: 'gzip', skipIfUnchanged: true, verify: 'quick' };
    const first = await run(inputs);
    assert.equal(first.result, 'Succeeded', first.output);
    const file = out(first, 'backupFile');
    assert.equal(file, path.join(work, 'b', 'app.db.gz'));
    checkAppDatabase(writeGunzipped(file));
    const second = await run(inputs);
    assert.equal(second.result, 'Succeeded', second.output);
    assert.equal(out(second, 'backupSkipped'), 'true');
    assert.equal(out(second, 'backupFile'), file);
    assert.equal(out(second, 'backupSha256'), out(first, 'backupSha256'));
    assert.match(out(first, 'databaseFingerprint'), /^v1:wal:cc=\d+:pages=\d+:ps=4096:mt=\d+:wal=none$/);
    assert.equal(out(second, 'databaseFingerprint'), out(first, 'databaseFingerprint'), 'nothing changed, nothing was written');
    assert.match(second.resultMessage ?? '', /skipped/);
  });

  it("writes the WebJob's manifest beside the backup, and confirms it when a later run is skipped", async () => {
    createAppDatabase(path.join(work, 'app.db'), { journal: 'delete', sizeMb: 1 });
    const first = await run({ databasePath: 'app.db', backupPath: 'b/app.db', skipIfUnchanged: true });
    assert.equal(first.result, 'Succeeded', first.output);
    const backup = out(first, 'backupFile');
    const manifestFile = out(first, 'backupManifest');
    assert.equal(manifestFile, `${backup}.json`);
    const manifest = parseManifest(fs.readFileSync(manifestFile, 'utf8'), manifestFile);
    assert.ok(manifest, 'a manifest in the shared format');
    assert.equal(manifest.format, MANIFEST_FORMAT);
    assert.equal(manifest.file, 'app.db');
    assert.equal(manifest.sha256, sha(backup));
    assert.equal(manifest.bytes, fs.statSync(backup).size);
    assert.equal(manifest.fingerprint, out(first, 'databaseFingerprint'));
    assert.equal(manifest.source, path.join(work, 'app.db'));
    assert.equal(manifest.extensionVersion, version);
    assert.equal(manifest.confirmedAt, undefined);
    assert.deepEqual(fs.readdirSync(path.join(work, 'b')).filter((n) => !n.startsWith('.')).sort(), ['app.db', 'app.db.json']);
    const second = await run({ databasePath: 'app.db', backupPath: 'b/app.db', skipIfUnchanged: true });
    assert.equal(out(second, 'backupSkipped'), 'true');
    const confirmed = parseManifest(fs.readFileSync(manifestFile, 'utf8'), manifestFile)!;
    assert.equal(confirmed.takenAt, manifest.takenAt);
    assert.ok(confirmed.confirmedAt && confirmed.confirmedAt > manifest.takenAt, 'the skipped run confirms the backup still holds the current state');
  });

  it('keeps the last N backups, each with its manifest', async () => {
    createAppDatabase(path.join(work, 'app.db'), { journal: 'delete', sizeMb: 1 });
    for (let i = 0; i < 3; i++) {
      const r = await run({ databasePath: path.join(work, 'app.db'), backupPath: 'keep/app-%Y%m%d-%H%M%S.db', keepLast: 2, verify: 'none' });
      assert.equal(r.result, 'Succeeded', r.output);
      await new Promise((res) => setTimeout(res, 1100)); // a new name each second
    }
    const names = fs.readdirSync(path.join(work, 'keep')).filter((n) => !n.startsWith('.'));
    const backups = names.filter((n) => n.endsWith('.db'));
    assert.equal(backups.length, 2);
    assert.deepEqual(names.sort(), [...backups, ...backups.map((b) => `${b}.json`)].sort(), 'pruned backups lose their manifests too');
  });

  it('fails with a clear message and no outputs for a missing database', async () => {
    const r = await run({ databasePath: 'nope.db', backupPath: 'b/' });
    assert.equal(r.result, 'Failed');
    assert.match(r.resultMessage ?? '', /nope\.db does not exist/);
    assert.equal(r.variables.backupFile, undefined);
    assert.ok(!fs.existsSync(path.join(work, 'b')) || fs.readdirSync(path.join(work, 'b')).length === 0);
  });

  it('fails on a bad input before doing anything', async () => {
    createAppDatabase(path.join(work, 'app.db'), { journal: 'delete', sizeMb: 1 });
    const bad = await run({ databasePath: 'app.db', verify: 'full' });
    assert.equal(bad.result, 'Failed');
    assert.match(bad.resultMessage ?? '', /Input 'verify' must be one of 'integrity', 'quick', 'none', not 'full'/);
    const negative = await run({ databasePath: 'app.db', keepLast: -1 });
    assert.equal(negative.result, 'Failed');
    assert.match(negative.resultMessage ?? '', /keepLast/);
  });

  it('defaults to a timestamped file in the artifact staging folder', async () => {
    createAppDatabase(path.join(work, 'app.db'), { journal: 'delete', sizeMb: 1 });
    const r = await run({ databasePath: 'app.db' });
    assert.equal(r.result, 'Succeeded', r.output);
    assert.match(out(r, 'backupFile'), /[\\/]a[\\/]app-\d{8}-\d{6}\.db$/);
  });

  function writeGunzipped(gz: string): string {
    const plain = gz.replace(/\.gz$/, '.plain.db');
    fs.writeFileSync(plain, zlib.gunzipSync(fs.readFileSync(gz)));
    return plain;
  }
});
