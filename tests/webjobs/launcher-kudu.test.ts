/**
 * The backup WebJob as built (out/tasks/AppServiceWebJobRun/webjob/sqlite-backup.zip), installed on
 * the Kudu-compatible server and run by it: Kudu picks run.sh, which starts the launcher with the
 * Node on the PATH — an old one here, as a default Windows worker's 32-bit Node is for our job —
 * and the launcher finds a usable Node in a worker-like folder tree (version folders of symlinks to
 * real Node binaries). The jobs see only the environment given here: no Node but the ones named.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WEBJOB_ZIP } from '../../scripts/build';
import { startKuduServer, type KuduServer } from '../../testkit/kudu-server/server';
import { AppProcess, checkAppDatabase, createAppDatabase, killAllApps } from '../../testkit/harness/sqlite-app';
import { api, outputLog, runJob, waitForRunEnd } from '../kudu-server/test-helpers';

const JOB = 'sqlite-backup';
const JOB_DIR = ['site', 'wwwroot', 'App_Data', 'jobs', 'triggered', JOB];
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** A Node older than 22 outside this project (the machine's own), or undefined. */
function oldNode(): { file: string; version: string } | undefined {
  for (const file of ['/usr/bin/node', '/usr/local/bin/node', '/bin/node']) {
    try {
      const version = execFileSync(file, ['-v'], { encoding: 'utf8', timeout: 30_000 }).trim();
      if (Number(version.slice(1).split('.')[0]) < 22) return { file, version };
    } catch {
      // not there
    }
  }
  return undefined;
}

/** The message lines of a run's Kudu log. */
function logMessages(home: string, runId: string): string[] {
  return outputLog(home, JOB, runId)
    .split('\r\n')
    .filter(Boolean)
    .map((l) => l.replace(/^\[[^\]]*\] /, ''));
}

describe('sqlite-backup WebJob started by Kudu through run.sh and the launcher', function () {
  this.timeout(180_000);
  const old = process.platform === 'win32' ? undefined : oldNode();
  const usable = process.execPath;
  let root: string;
  let home: string;
  let kudu: KuduServer | undefined;
  let tree: { pf64: string; pf86: string; bin: string };

  before(function () {
    // The scenarios need a Node older than 22 to start the launcher, as a worker's default Node
    // would; this machine's is /usr/bin/node (v20). Without one they cannot be staged honestly.
    if (!old) this.skip();
    assert.ok(Number(process.versions.node.split('.')[0]) >= 24, 'the tests run on the project Node (24), which has node:sqlite');
  });

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'launcher-kudu-'));
    home = path.join(root, 'home');
    tree = { pf64: path.join(root, 'Program Files'), pf86: path.join(root, 'Program Files (x86)'), bin: path.join(root, 'bin') };
    fs.mkdirSync(path.join(home, 'site', 'wwwroot', 'content', 'data'), { recursive: true });
    // The PATH holds the old Node and the few commands run.sh uses, nothing else.
    fs.mkdirSync(tree.bin);
    fs.symlinkSync(old!.file, path.join(tree.bin, 'node'));
    for (const command of ['bash', 'sh', 'dirname']) fs.symlinkSync(execFileSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).trim(), path.join(tree.bin, command));
  });

  afterEach(async () => {
    killAllApps();
    await kudu?.close();
    kudu = undefined;
    fs.rmSync(root, { recursive: true, force: true });
  });

  /** A Node version folder under one of the Program Files stand-ins: `<root>/nodejs/<version>/node`. */
  function installNode(programFiles: string, version: string, binary: string): string {
    const dir = path.join(programFiles, 'nodejs', version);
    fs.mkdirSync(dir, { recursive: true });
    fs.symlinkSync(binary, path.join(dir, 'node'));
    return path.join(dir, 'node');
  }

  async function startWithJob(settings: Record<string, string> = {}): Promise<KuduServer> {
    kudu = await startKuduServer({
      home,
      instanceId: 'w0rker',
      settings,
      env: { PATH: tree.bin, ProgramW6432: tree.pf64, 'ProgramFiles(x86)': tree.pf86, LANG: 'C.UTF-8' },
    });
    const put = await api(kudu, `api/triggeredwebjobs/${JOB}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/zip', 'content-disposition': 'attachment; filename=sqlite-backup.zip' },
      body: fs.readFileSync(WEBJOB_ZIP),
    });
    const body = await put.text();
    assert.equal(put.status, 200, body);
    assert.equal((JSON.parse(body) as { run_command: string }).run_command, 'run.sh');
    return kudu;
  }

  async function run(arguments_?: string): Promise<{ status: string; lines: string[]; result?: Record<string, unknown> }> {
    const { runId } = await runJob(kudu!, JOB, arguments_ === undefined ? '' : `?arguments=${encodeURIComponent(arguments_)}`);
    const end = await waitForRunEnd(kudu!, JOB, runId, 150_000);
    const lines = logMessages(home, runId);
    const result = lines.find((l) => l.startsWith('BACKUP_RESULT '));
    return { status: String(end.status), lines, result: result ? (JSON.parse(result.slice('BACKUP_RESULT '.length)) as Record<string, unknown>) : undefined };
  }

  const has = (lines: string[], pattern: RegExp) => assert.ok(lines.some((l) => pattern.test(l)), `a line ${pattern}:\n${lines.join('\n')}`);

  it('is started by the old Node on the PATH and backs up with the 64-bit Node it finds in the version folders (better-sqlite3)', async () => {
    const ghost = path.join(home, 'site', 'wwwroot', 'content', 'data', 'ghost.db');
    createAppDatabase(ghost, { journal: 'delete', sizeMb: 10 });
    installNode(tree.pf64, process.versions.node, usable);
    // A folder whose name lies: an old Node kept under a newer version's name.
    installNode(tree.pf86, '22.99.0', old!.file);
    await startWithJob();
    const writer = await AppProcess.start({ file: ghost, role: 'writer', rate: 100 });
    const r = await run('--destination "backups of ghost/" --keep-last 2');
    await writer.stop();
    assert.equal(r.status, 'Success', r.lines.join('\n'));
    has(r.lines, /^Run script 'run\.sh' with script host - 'BashScriptHost'$/);
    has(r.lines, new RegExp(`^sqlite-backup launcher on Node ${old!.version.replace(/\./g, '\\.')} `));
    has(r.lines, /22\.99\.0\/node \(.*\): too old: the backup needs Node 22 or later$/);
    has(r.lines, new RegExp(`Running the backup with Node v${process.versions.node.replace(/\./g, '\\.')} \\(x64, better-sqlite3\\): ${tree.pf64.replace(/[()]/g, '\\$&')}/nodejs/`));
    has(r.lines, /SQLite 3\.\d+\.\d+ through better-sqlite3, on Node v2\d/);
    assert.ok(r.result, r.lines.join('\n'));
    assert.equal(r.result.driver, 'better-sqlite3');
    const file = String(r.result.file);
    assert.equal(path.dirname(file), path.join(home, 'backups of ghost'), 'the arguments reached the job');
    assert.equal(r.result.sha256, sha(file));
    checkAppDatabase(file);
    assert.ok(fs.existsSync(`${file}.json`), 'the manifest is beside it');
  });

  it('backs up with node:sqlite when better-sqlite3 cannot load in any Node it finds', async () => {
    const ghost = path.join(home, 'site', 'wwwroot', 'content', 'data', 'ghost.db');
    createAppDatabase(ghost, { journal: 'wal', sizeMb: 5 });
    installNode(tree.pf86, process.versions.node, usable);
    await startWithJob();
    // What a 32-bit Node meets: no better-sqlite3 binary for its platform.
    const prebuilds = path.join(home, ...JOB_DIR, 'node_modules', 'better-sqlite3', 'prebuilds');
    for (const binary of fs.readdirSync(prebuilds)) fs.rmSync(path.join(prebuilds, binary));
    const r = await run();
    assert.equal(r.status, 'Success', r.lines.join('\n'));
    has(r.lines, new RegExp(`v${process.versions.node.replace(/\./g, '\\.')} x64 .*: usable, node:sqlite \\(the job's better-sqlite3 binaries are 64-bit and do not load in this x64 Node\\)$`));
    has(r.lines, /Running the backup with Node v\d+\.\d+\.\d+ \(x64, node:sqlite\)/);
    has(r.lines, /SQLite 3\.\d+\.\d+ through node:sqlite/);
    assert.ok(!r.lines.some((l) => /ExperimentalWarning/.test(l)), 'no experimental warning in the log');
    assert.equal(r.result?.driver, 'node:sqlite');
    const backup = path.join(home, 'site', 'wwwroot', 'content', 'data', 'backup.db');
    assert.equal(r.result?.sha256, sha(backup));
    checkAppDatabase(backup);
  });

  it('fails when no Node fits, listing what it found and the setting to add, and leaves the previous backup', async () => {
    createAppDatabase(path.join(home, 'site', 'wwwroot', 'content', 'data', 'ghost.db'), { journal: 'delete', sizeMb: 1 });
    const previous = path.join(home, 'site', 'wwwroot', 'content', 'data', 'backup.db');
    fs.writeFileSync(previous, 'previous backup');
    installNode(tree.pf86, '20.99.0', old!.file);
    await startWithJob();
    const r = await run();
    assert.equal(r.status, 'Failed', r.lines.join('\n'));
    has(r.lines, /found no Node\.js that can run it: it needs a 64-bit Node 22 or later \(better-sqlite3\), or any Node 22\.13 or later \(node:sqlite\)\.$/);
    has(r.lines, new RegExp(`Found 1, none fits: ${old!.version.replace(/\./g, '\\.')} x64 .*20\\.99\\.0/node\\.$`));
    has(r.lines, /Add the app setting SQLITE_BACKUP_NODE with the full path of one/);
    has(r.lines, /Job failed due to exit code 1$/);
    assert.equal(r.result, undefined);
    assert.equal(fs.readFileSync(previous, 'utf8'), 'previous backup');
  });

  it('uses the Node the app setting SQLITE_BACKUP_NODE names, and says so when it cannot run the backup', async () => {
    createAppDatabase(path.join(home, 'site', 'wwwroot', 'content', 'data', 'ghost.db'), { journal: 'delete', sizeMb: 1 });
    // Nothing in the version folders: only the setting leads to a usable Node.
    await startWithJob({ SQLITE_BACKUP_NODE: usable });
    const good = await run();
    assert.equal(good.status, 'Success', good.lines.join('\n'));
    has(good.lines, new RegExp(`${usable.replace(/[.()]/g, '\\$&')} \\(SQLITE_BACKUP_NODE\\): usable, better-sqlite3`));
    assert.equal(good.result?.node, process.version);

    kudu!.setSetting('SQLITE_BACKUP_NODE', old!.file);
    const bad = await run();
    assert.equal(bad.status, 'Failed', bad.lines.join('\n'));
    has(bad.lines, new RegExp(`The app setting SQLITE_BACKUP_NODE names ${old!.file}, which cannot run the backup \\(too old: the backup needs Node 22 or later\\)`));
  });
});
