/**
 * The WebJob launcher's search and choice, with Windows semantics (path.win32, case-insensitive
 * names, `;` in PATH) and a worker's folders stood in by an injected file system; and the shipped
 * run.js, run.cmd and run.sh as the build writes them. The launcher run for real, by the
 * Kudu-compatible server, is in launcher-kudu.test.ts.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as yauzl from 'yauzl';
import { assertEs5 } from '../../scripts/bundle';
import { WEBJOB_ZIP } from '../../scripts/build';
import {
  chooseNode, failureMessage, findCandidates, searchPlan, verdict, type Probe, type SearchFs,
} from '../../webjobs/sqlite-backup/launcher';

const STAGE = path.resolve(__dirname, '..', '..', 'webjob-stage', 'sqlite-backup');

/** A Windows worker's disk: version folders (some symlinks to others), the x86 root's ancient node.exe. */
function windowsDisk(files: string[], links: Record<string, string> = {}): SearchFs {
  const norm = (p: string) => path.win32.normalize(p).toLowerCase();
  const all = new Set(files.map(norm));
  const real = (p: string) => {
    for (const [from, to] of Object.entries(links)) if (norm(p).startsWith(norm(from) + '\\')) return path.win32.join(to, p.slice(from.length + 1));
    return p;
  };
  return {
    list: (dir) => [...new Set(files.filter((f) => norm(path.win32.dirname(path.win32.dirname(f))) === norm(dir)).map((f) => path.win32.basename(path.win32.dirname(f))))],
    isFile: (file) => all.has(norm(file)),
    real,
  };
}

const WORKER_ENV = {
  // A 32-bit cmd.exe on 64-bit Windows: %ProgramFiles% is the x86 folder.
  ProgramW6432: 'C:\\Program Files',
  'ProgramFiles(x86)': 'C:\\Program Files (x86)',
  ProgramFiles: 'C:\\Program Files (x86)',
  Path: 'C:\\Windows\\system32;c:\\program files (x86)\\nodejs\\20.9.0;C:\\Program Files\\Git\\bin',
};

const probe = (file: string, version: string, arch: string, betterSqlite3: boolean, nodeSqlite: boolean): Probe => ({ file, from: 'x', version, arch, betterSqlite3, nodeSqlite });

describe('sqlite-backup WebJob launcher: where it looks and what it picks', () => {
  it("searches a Windows worker's 64-bit and 32-bit Node folders and the PATH for node.exe", () => {
    const plan = searchPlan(WORKER_ENV, 'win32');
    assert.equal(plan.exe, 'node.exe');
    assert.deepEqual(plan.roots.map((r) => r.dir), ['C:\\Program Files\\nodejs', 'C:\\Program Files (x86)\\nodejs']);
    assert.deepEqual(plan.pathDirs, ['C:\\Windows\\system32', 'c:\\program files (x86)\\nodejs\\20.9.0', 'C:\\Program Files\\Git\\bin']);
    assert.equal(plan.explicit, undefined);
    assert.equal(searchPlan({ ...WORKER_ENV, sqlite_backup_node: ' D:\\home\\node\\node.exe ' }, 'win32').explicit, 'D:\\home\\node\\node.exe', 'names are case-insensitive on Windows');
    assert.equal(searchPlan({ ...WORKER_ENV, SQLITE_BACKUP_NODE: '  ' }, 'win32').explicit, undefined);
    assert.equal(searchPlan(WORKER_ENV, 'win32', 'node64.exe').exe, 'node64.exe');
  });

  it('lists version folders newest first, skips other folders and the root node.exe, and counts a symlinked folder once', () => {
    const disk = windowsDisk(
      [
        'C:\\Program Files\\nodejs\\20.9.0\\node.exe',
        'C:\\Program Files\\nodejs\\22.17.0\\node.exe',
        'C:\\Program Files\\nodejs\\8.11.1\\node.exe',
        'C:\\Program Files\\nodejs\\node_modules\\npm\\node.exe',
        'C:\\Program Files\\nodejs\\24.1.0\\notnode.exe',
        'C:\\Program Files (x86)\\nodejs\\node.exe',
        'C:\\Program Files (x86)\\nodejs\\20.9.0\\node.exe',
        'C:\\Program Files (x86)\\nodejs\\22.13.1\\node.exe',
        'C:\\Program Files (x86)\\nodejs\\6.9.1\\node.exe',
      ],
      // A retired version kept as a symlink to a newer one (as Kudu's wiki describes).
      { 'C:\\Program Files (x86)\\nodejs\\6.9.1': 'C:\\Program Files (x86)\\nodejs\\22.13.1' },
    );
    const found = findCandidates(searchPlan(WORKER_ENV, 'win32'), disk);
    assert.deepEqual(
      found.map((c) => `${c.file} <${c.from}>`),
      [
        'C:\\Program Files\\nodejs\\22.17.0\\node.exe <C:\\Program Files\\nodejs>',
        'C:\\Program Files\\nodejs\\20.9.0\\node.exe <C:\\Program Files\\nodejs>',
        'C:\\Program Files\\nodejs\\8.11.1\\node.exe <C:\\Program Files\\nodejs>',
        'C:\\Program Files (x86)\\nodejs\\22.13.1\\node.exe <C:\\Program Files (x86)\\nodejs>',
        'C:\\Program Files (x86)\\nodejs\\20.9.0\\node.exe <C:\\Program Files (x86)\\nodejs>',
      ],
      'the PATH entry is the x86 20.9.0 again (different case counts as the same), and 6.9.1 is 22.13.1',
    );
  });

  it("looks under /opt/nodejs/<version>/bin on Linux, and in Windows-like folders only when the environment names them", () => {
    const plan = searchPlan({ PATH: '/usr/local/bin:/usr/bin:' }, 'linux');
    assert.equal(plan.exe, 'node');
    assert.deepEqual(plan.roots, [{ dir: '/opt/nodejs', bin: 'bin' }]);
    assert.deepEqual(plan.pathDirs, ['/usr/local/bin', '/usr/bin']);
    assert.deepEqual(searchPlan({ ProgramW6432: '/tmp/pf' }, 'linux').roots.map((r) => r.dir), ['/tmp/pf/nodejs', '/opt/nodejs']);
  });

  it('prefers any Node in which better-sqlite3 loads, then the newest with node:sqlite, and names why others do not fit', () => {
    const x64 = probe('C:\\Program Files\\nodejs\\22.2.0\\node.exe', 'v22.2.0', 'x64', true, false);
    const x64new = probe('C:\\Program Files\\nodejs\\24.1.0\\node.exe', 'v24.1.0', 'x64', true, true);
    const ia32 = probe('C:\\Program Files (x86)\\nodejs\\22.17.0\\node.exe', 'v22.17.0', 'ia32', false, true);
    const ia32old = probe('C:\\Program Files (x86)\\nodejs\\22.13.0\\node.exe', 'v22.13.0', 'ia32', false, true);
    const ia32none = probe('C:\\Program Files (x86)\\nodejs\\22.12.0\\node.exe', 'v22.12.0', 'ia32', false, false);
    const old = probe('C:\\Program Files (x86)\\nodejs\\20.9.0\\node.exe', 'v20.9.0', 'ia32', false, false);
    const silent: Probe = { file: 'C:\\broken\\node.exe', from: 'PATH', error: 'spawn EACCES' };

    assert.deepEqual(chooseNode([old, ia32, x64, x64new, silent]), { probe: x64new, driver: 'better-sqlite3' });
    assert.deepEqual(chooseNode([ia32, x64]), { probe: x64, driver: 'better-sqlite3' }, 'an older 64-bit Node beats a newer 32-bit one');
    assert.deepEqual(chooseNode([ia32old, old, ia32, ia32none]), { probe: ia32, driver: 'node:sqlite' });
    assert.equal(chooseNode([old, ia32none, silent]), undefined);
    assert.equal(chooseNode([]), undefined);

    assert.equal(verdict(old).why, 'too old: the backup needs Node 22 or later');
    assert.match(verdict(ia32none).why, /neither better-sqlite3 \(ia32; the job ships 64-bit binaries\) nor node:sqlite \(built in from Node 22\.13\)/);
    assert.match(verdict(ia32).why, /^node:sqlite \(the job's better-sqlite3 binaries are 64-bit and do not load in this ia32 Node\)$/);
    assert.equal(verdict(silent).why, 'did not answer: spawn EACCES');
  });

  it('fails with what it found and the one setting to add', () => {
    const plan = searchPlan(WORKER_ENV, 'win32');
    const old = probe('C:\\Program Files (x86)\\nodejs\\20.9.0\\node.exe', 'v20.9.0', 'ia32', false, false);
    const message = failureMessage(plan, [old]);
    assert.match(message, /found no Node\.js that can run it: it needs a 64-bit Node 22 or later \(better-sqlite3\), or any Node 22\.13 or later \(node:sqlite\)/);
    assert.match(message, /Found 1, none fits: v20\.9\.0 ia32 C:\\Program Files \(x86\)\\nodejs\\20\.9\.0\\node\.exe\./);
    assert.match(message, /Add the app setting SQLITE_BACKUP_NODE with the full path of one, for example D:\\Program Files\\nodejs\\22\.17\.0\\node\.exe/);
    assert.match(failureMessage(plan, []), /Found no node\.exe in C:\\Program Files\\nodejs, C:\\Program Files \(x86\)\\nodejs, the PATH\./);
    const explicit = failureMessage(plan, [], { ...old, from: 'SQLITE_BACKUP_NODE' });
    assert.match(explicit, /^The app setting SQLITE_BACKUP_NODE names C:\\Program Files \(x86\)\\nodejs\\20\.9\.0\\node\.exe, which cannot run the backup \(too old: the backup needs Node 22 or later\)\. Point it at/);
  });
});

describe('sqlite-backup WebJob package: its entries', () => {
  it('ships run.cmd (CRLF), run.sh (shebang, LF, executable), run.js in ES5, and runs in place', async () => {
    const modes = await unixModes(WEBJOB_ZIP);
    for (const name of ['run.cmd', 'run.sh', 'run.js', 'sqlite-backup.js', 'settings.job', 'package.json', 'node_modules/better-sqlite3/prebuilds/win32-x64.node']) {
      assert.ok(modes.has(name), `${name} is in the zip`);
    }
    assert.equal(modes.get('run.sh')! & 0o111, 0o111, 'run.sh is executable for everyone');
    const sh = fs.readFileSync(path.join(STAGE, 'run.sh'), 'utf8');
    assert.ok(sh.startsWith('#!/bin/sh\n') && !sh.includes('\r'), 'run.sh has a shebang and LF line ends');
    const cmd = fs.readFileSync(path.join(STAGE, 'run.cmd'), 'utf8');
    assert.ok(cmd.split('\n').slice(0, -1).every((line) => line.endsWith('\r')), 'every line of run.cmd ends in CRLF');
    assert.match(cmd, /"%LAUNCHER_NODE%" "%~dp0run\.js" %\*\r\nexit \/b %ERRORLEVEL%/);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(STAGE, 'settings.job'), 'utf8')), { is_in_place: true });
    const launcher = fs.readFileSync(path.join(STAGE, 'run.js'), 'utf8');
    await assertEs5(launcher, 'run.js');
    await assert.rejects(assertEs5('var f = () => 1;', 'x.js'), /x\.js is not ES5/);
    await assert.rejects(assertEs5('const a = 1;', 'y.js'), /y\.js is not ES5/);
  });
});

/** Each entry's Unix mode, from the high half of its external attributes. */
function unixModes(zipFile: string): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    yauzl.open(zipFile, { lazyEntries: true }, (err, zip) => {
      if (err) return reject(err);
      const modes = new Map<string, number>();
      zip.on('entry', (entry: yauzl.Entry) => {
        modes.set(entry.fileName, entry.externalFileAttributes >>> 16);
        zip.readEntry();
      });
      zip.on('end', () => resolve(modes));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}
