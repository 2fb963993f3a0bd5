/**
 * The backup WebJob's run.js, run as Kudu runs it: a child process with HOME set (here to a temp
 * folder laid out like an App Service's), its arguments on the command line or in
 * WEBJOBS_COMMAND_ARGUMENTS.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { version } from '../../package.json';
import { compareFingerprints, fingerprintFromBytes, parseFingerprint } from '../../lib/sqlite/fingerprint';
import { MANIFEST_FORMAT, parseManifest } from '../../lib/sqlite/manifest';
import { DEFAULT_HEARTBEAT_SECONDS } from '../../lib/sqlite/backup-args';
import { splitArguments } from '../../webjobs/sqlite-backup/run';
import { REPO_ROOT } from '../../testkit/harness/agent';
import { AppProcess, checkAppDatabase, createAppDatabase, killAllApps } from '../../testkit/harness/sqlite-app';

const RUN_JS = path.resolve(__dirname, '..', '..', 'webjobs', 'sqlite-backup', 'run.js');
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

interface JobRun {
  code: number | null;
  stdout: string;
  lines: string[];
  result?: Record<string, unknown>;
}

describe('sqlite-backup WebJob (run.js)', function () {
  this.timeout(120_000);
  let home: string;
  let data: string;
  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'webjob-home-'));
    data = path.join(home, 'site', 'wwwroot', 'content', 'data');
    fs.mkdirSync(data, { recursive: true });
  });
  afterEach(() => {
    killAllApps();
    fs.rmSync(home, { recursive: true, force: true });
  });

  function runJob(args: string[], env: Record<string, string> = {}): Promise<JobRun> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [RUN_JS, ...args], { cwd: os.tmpdir(), env: { ...process.env, HOME: home, WEBJOBS_COMMAND_ARGUMENTS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c));
      child.stderr.on('data', (c: Buffer) => (stdout += c));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`run.js did not finish in 60 s:\n${stdout}`));
      }, 60_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        const lines = stdout.split('\n').filter(Boolean);
        const resultLine = lines.find((l) => l.startsWith('BACKUP_RESULT '));
        resolve({ code, stdout, lines, result: resultLine ? (JSON.parse(resultLine.slice('BACKUP_RESULT '.length)) as Record<string, unknown>) : undefined });
      });
    });
  }

  it("backs up Ghost's database to backup.db by default while Ghost writes, and prints a summary", async () => {
    const ghost = path.join(data, 'ghost.db');
    createAppDatabase(ghost, { journal: 'delete', sizeMb: 20 });
    const writer = await AppProcess.start({ file: ghost, role: 'writer', rate: 100 });
    const run = await runJob([]);
    await writer.stop();
    assert.equal(run.code, 0, run.stdout);
    const backup = path.join(data, 'backup.db');
    checkAppDatabase(backup);
    assert.ok(run.result, run.stdout);
    assert.equal(run.result.file, backup);
    assert.equal(run.result.sha256, sha(backup));
    assert.equal(run.result.bytes, fs.statSync(backup).size);
    assert.equal(typeof run.result.maxLockMs, 'number');
    const summary = run.lines.find((l) => l.startsWith('Backed up '));
    assert.ok(summary && summary.includes(`sha256 ${sha(backup)}`) && /writers could have waited at most \d+ ms/.test(summary), run.stdout);
  });

  it('writes a manifest beside the backup: fingerprint, sha256, sizes, source, times, lock, version', async () => {
    const ghost = path.join(data, 'ghost.db');
    createAppDatabase(ghost, { journal: 'delete', sizeMb: 2 });
    const run = await runJob([]);
    assert.equal(run.code, 0, run.stdout);
    const backup = path.join(data, 'backup.db');
    const manifestFile = `${backup}.json`;
    assert.equal(run.result?.manifest, manifestFile);
    const manifest = parseManifest(fs.readFileSync(manifestFile, 'utf8'), manifestFile);
    assert.ok(manifest);
    assert.equal(manifest.format, MANIFEST_FORMAT);
    assert.equal(manifest.file, 'backup.db');
    assert.equal(manifest.sha256, sha(backup));
    assert.equal(manifest.bytes, fs.statSync(backup).size);
    assert.equal(manifest.databaseSha256, manifest.sha256);
    assert.equal(manifest.source, ghost);
    assert.equal(manifest.takenAt, run.result?.takenAt);
    assert.equal(manifest.maxLockMs, run.result?.maxLockMs);
    assert.equal(manifest.extensionVersion, version);
    assert.equal(manifest.journal, 'rollback');
    assert.equal(manifest.fingerprint, run.result?.fingerprint);
    // The idle database is still in the state the manifest records.
    assert.deepEqual(compareFingerprints(parseFingerprint(manifest.fingerprint), fingerprintFromBytes({ header: fs.readFileSync(ghost).subarray(0, 100) })), []);
    assert.ok(run.lines.some((l) => l.startsWith(`Wrote ${manifestFile}: fingerprint v1:rollback:`)), run.stdout);
    assert.deepEqual(fs.readdirSync(data).filter((n) => n.endsWith('.tmp')), [], 'no temporary file is left');
  });

  it('keeps a manifest beside each kept backup only, and confirms it when the backup is skipped as unchanged', async () => {
    createAppDatabase(path.join(data, 'ghost.db'), { journal: 'wal', sizeMb: 1 });
    const folder = path.join(home, 'backups');
    const made: string[] = [];
    for (let i = 0; i < 3; i++) {
      const run = await runJob(['--destination', 'backups/', '--keep-last', '2', '--gzip']);
      assert.equal(run.code, 0, run.stdout);
      made.push(String(run.result?.file));
      // Timestamped names have one-second steps.
      await new Promise((r) => setTimeout(r, 1100));
    }
    const names = fs.readdirSync(folder).filter((n) => !n.startsWith('.')).sort();
    assert.deepEqual(names, [path.basename(made[1]), `${path.basename(made[1])}.json`, path.basename(made[2]), `${path.basename(made[2])}.json`].sort());
    const manifest = parseManifest(fs.readFileSync(`${made[2]}.json`, 'utf8'), 'm')!;
    assert.equal(manifest.sha256, sha(made[2]), 'the sha256 of the .gz as written');
    assert.equal(manifest.gzip, true);
    assert.match(manifest.fingerprint, /^v1:wal:.*:wal=none$/);

    fs.rmSync(folder, { recursive: true });
    const first = await runJob(['--skip-if-unchanged']);
    const second = await runJob(['--skip-if-unchanged']);
    assert.equal(second.result?.skipped, true, second.stdout);
    const confirmed = parseManifest(fs.readFileSync(path.join(data, 'backup.db.json'), 'utf8'), 'm')!;
    assert.equal(confirmed.takenAt, first.result?.takenAt);
    assert.ok(confirmed.confirmedAt && confirmed.confirmedAt > confirmed.takenAt, JSON.stringify(confirmed));
    assert.equal(confirmed.sha256, sha(path.join(data, 'backup.db')));
  });

  it('takes its arguments from WEBJOBS_COMMAND_ARGUMENTS, relative to HOME, quotes and all', async () => {
    fs.mkdirSync(path.join(home, 'data'));
    createAppDatabase(path.join(home, 'data', 'app.db'), { journal: 'wal', sizeMb: 2 });
    const run = await runJob([], { WEBJOBS_COMMAND_ARGUMENTS: `--source data/app.db --destination "backups of app/" --verify quick --gzip --keep-last 3` });
    assert.equal(run.code, 0, run.stdout);
    const file = String(run.result?.file);
    assert.equal(path.dirname(file), path.join(home, 'backups of app'));
    assert.match(path.basename(file), /^app-\d{8}-\d{6}\.db\.gz$/);
    assert.ok(run.lines.some((l) => l.startsWith('Verified the copy with PRAGMA quick_check')), run.stdout);
  });

  it('prefers the command line, and takes absolute paths', async () => {
    const src = path.join(home, 'elsewhere.db');
    createAppDatabase(src, { journal: 'delete', sizeMb: 1 });
    const dest = path.join(home, 'out', 'copy-%H.db');
    const run = await runJob(['--source', src, '--destination', dest, '--verify', 'none'], { WEBJOBS_COMMAND_ARGUMENTS: '--source ignored.db' });
    assert.equal(run.code, 0, run.stdout);
    assert.match(String(run.result?.file), /copy-\d{2}\.db$/);
  });

  it('skips an unchanged database and says so', async () => {
    createAppDatabase(path.join(data, 'ghost.db'), { journal: 'delete', sizeMb: 1 });
    assert.equal((await runJob(['--skip-if-unchanged'])).code, 0);
    const again = await runJob(['--skip-if-unchanged']);
    assert.equal(again.code, 0, again.stdout);
    assert.equal(again.result?.skipped, true);
  });

  it('fails (exit code 1) with a clear message when the database is missing, leaving the previous backup', async () => {
    fs.writeFileSync(path.join(data, 'backup.db'), 'previous');
    const run = await runJob([]);
    assert.equal(run.code, 1, run.stdout);
    assert.ok(run.lines.some((l) => l.startsWith('Backup failed: ') && l.includes('ghost.db does not exist')), run.stdout);
    assert.equal(fs.readFileSync(path.join(data, 'backup.db'), 'utf8'), 'previous');
    assert.equal(run.result, undefined);
  });

  it('exits 2 on bad arguments', async () => {
    for (const args of [['--verify', 'full'], ['--keep-last', 'many'], ['--colour'], ['stray']]) {
      const run = await runJob(args);
      assert.equal(run.code, 2, `${args.join(' ')}:\n${run.stdout}`);
    }
    const noHome = await runJob([], { HOME: '' });
    assert.equal(noHome.code, 2);
    assert.match(noHome.stdout, /HOME is not set/);
  });

  it('prints a heartbeat while it works, from a thread of its own', async () => {
    createAppDatabase(path.join(data, 'ghost.db'), { journal: 'delete', sizeMb: 150 });
    const run = await runJob(['--heartbeat-seconds', '0.05']);
    assert.equal(run.code, 0, run.stdout);
    const beats = run.lines.filter((l) => l.startsWith('still working ('));
    assert.ok(beats.length >= 2, `heartbeats:\n${run.stdout}`);
    // The default is well inside Kudu's idle limit, and the 30 s the job promises.
    assert.equal(DEFAULT_HEARTBEAT_SECONDS, 20);
  });

  it('ships settings.job as JSON without a schedule', () => {
    const settings = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'webjobs', 'sqlite-backup', 'settings.job'), 'utf8')) as Record<string, unknown>;
    assert.equal(settings.schedule, undefined);
  });

  it('splits arguments like a shell for the simple cases', () => {
    assert.deepEqual(splitArguments(`--source "a b/c.db" --destination='x y/' --gzip`), ['--source', 'a b/c.db', '--destination=x y/', '--gzip']);
    assert.deepEqual(splitArguments('  '), []);
    assert.deepEqual(splitArguments(String.raw`--source D:\home\data\ghost.db`), ['--source', String.raw`D:\home\data\ghost.db`]);
  });
});
