/**
 * The backup WebJob's launcher, shipped as run.js: it finds the best Node.js on the worker and runs
 * the backup (sqlite-backup.js) with it. Kudu would start run.js itself with whatever node.exe is on
 * its PATH — a 32-bit Node on a default Windows worker (kudu#2047), for which the job has no
 * better-sqlite3 binary — so the job ships run.cmd (Windows) and run.sh (Linux), which Kudu prefers
 * to run.js; they start this file with any Node they find, and this file chooses:
 *
 *   1. the app setting SQLITE_BACKUP_NODE, when set: that Node or a clear failure, nothing else;
 *   2. the newest Node in which the job's better-sqlite3 loads (a 64-bit Node 22 or later:
 *      `%ProgramW6432%\nodejs\<version>\node.exe` on Windows workers);
 *   3. the newest Node with a built-in node:sqlite (22.13 or later, 32-bit ones too);
 *   4. otherwise it fails, listing every Node it found and the setting to add.
 *
 * Every candidate is asked (a short child process) for its version, its architecture and which
 * SQLite drivers load in it, since folder names can lie (retired versions are symlinks to others).
 * The backup then runs with stdio inherited, so its lines reach Kudu's log at once (Kudu kills a
 * job that is silent and idle for WEBJOBS_IDLE_TIMEOUT), and its exit code is passed on.
 *
 * The Node that runs this file may be old (whatever is on the PATH): the build compiles it to ES5
 * (scripts/build.ts) and it uses only APIs old Nodes have — callbacks, no Promise, no spread.
 */
import * as childProcess from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

/** The app setting that names the Node to use. */
export const NODE_SETTING = 'SQLITE_BACKUP_NODE';
/** The backup itself, beside this file in the job's folder. */
export const JOB_FILE = 'sqlite-backup.js';
const PROBE_TIMEOUT_MS = 60000;
const MARKER = 'SQLITE_BACKUP_PROBE ';

export type Env = { [name: string]: string | undefined };

/** A folder holding one sub-folder per Node version (`<dir>\<version>\<bin>\<exe>`). */
export interface VersionedRoot {
  dir: string;
  /** Between the version folder and the executable: '' on Windows, 'bin' in Linux layouts. */
  bin: string;
}

/** Where to look for Node, from the environment and platform alone, so that a test can set both. */
export interface SearchPlan {
  exe: string;
  explicit?: string;
  roots: VersionedRoot[];
  pathDirs: string[];
  join: (...parts: string[]) => string;
  /** Whether two paths name the same file (case-insensitive on Windows). */
  same: (a: string, b: string) => boolean;
}

/** A Node found on disk, before it is asked anything. */
export interface Candidate {
  file: string;
  /** Where it came from, for messages: `%ProgramW6432%\nodejs`, `PATH`, `SQLITE_BACKUP_NODE`. */
  from: string;
}

/** What a candidate said about itself; `error` when it did not answer. */
export interface Probe extends Candidate {
  version?: string;
  arch?: string;
  betterSqlite3?: boolean;
  nodeSqlite?: boolean;
  error?: string;
}

export interface Choice {
  probe: Probe;
  driver: 'better-sqlite3' | 'node:sqlite';
}

/** The folders searched and the executable's name, for `platform` with environment `env`. */
export function searchPlan(env: Env, platform: string, exe?: string): SearchPlan {
  const windows = platform === 'win32';
  const p = windows ? path.win32 : path.posix;
  const get = (name: string) => envValue(env, name, windows);
  const roots: VersionedRoot[] = [];
  const addRoot = (base: string | undefined, bin: string) => {
    if (!base) return;
    const dir = p.join(base, 'nodejs');
    for (let i = 0; i < roots.length; i++) if (sameText(roots[i].dir, dir, windows)) return;
    roots.push({ dir, bin });
  };
  // Windows workers keep one folder per Node version under both Program Files folders; in a 32-bit
  // process %ProgramFiles% is the x86 one and %ProgramW6432% the 64-bit one. Elsewhere these
  // variables are normally unset (a test sets them to stand in for a worker's folders).
  addRoot(get('ProgramW6432'), '');
  addRoot(get('ProgramFiles(x86)'), '');
  addRoot(get('ProgramFiles'), '');
  // App Service's Linux images keep Node under /opt/nodejs/<version>/bin (unverified for WebJobs).
  if (!windows) roots.push({ dir: '/opt/nodejs', bin: 'bin' });
  const pathText = get('PATH') || '';
  const pathDirs = pathText.split(windows ? ';' : ':').filter((d) => d.length > 0);
  const explicit = get(NODE_SETTING);
  return {
    exe: exe || (windows ? 'node.exe' : 'node'),
    explicit: explicit && explicit.trim() ? explicit.trim() : undefined,
    roots,
    pathDirs,
    join: p.join,
    same: (a, b) => sameText(a, b, windows),
  };
}

/** The file system calls the search makes, so that a test can stand in a Windows tree. */
export interface SearchFs {
  list(dir: string): string[];
  isFile(file: string): boolean;
  /** The file a path finally names (symlinks resolved); the path itself when unknown. */
  real(file: string): string;
}

export const realFs: SearchFs = {
  list: (dir) => {
    try {
      return fs.readdirSync(dir);
    } catch (err) {
      return [];
    }
  },
  isFile: (file) => {
    try {
      return fs.statSync(file).isFile();
    } catch (err) {
      return false;
    }
  },
  real: (file) => {
    try {
      return fs.realpathSync(file);
    } catch (err) {
      return file;
    }
  },
};

/** Every Node the plan finds (not the explicit one): version folders newest name first, then the PATH's. */
export function findCandidates(plan: SearchPlan, disk: SearchFs): Candidate[] {
  const found: Candidate[] = [];
  const seen: string[] = [];
  const add = (file: string, from: string) => {
    if (!disk.isFile(file)) return;
    const real = disk.real(file);
    for (let i = 0; i < seen.length; i++) if (plan.same(seen[i], real)) return;
    seen.push(real);
    found.push({ file, from });
  };
  for (let r = 0; r < plan.roots.length; r++) {
    const root = plan.roots[r];
    const versions = disk.list(root.dir).filter((name) => parseVersion(name) !== undefined);
    versions.sort((a, b) => compareVersions(parseVersion(b)!, parseVersion(a)!));
    for (let v = 0; v < versions.length; v++) add(root.bin ? plan.join(root.dir, versions[v], root.bin, plan.exe) : plan.join(root.dir, versions[v], plan.exe), root.dir);
  }
  for (let d = 0; d < plan.pathDirs.length; d++) add(plan.join(plan.pathDirs[d], plan.exe), 'PATH');
  return found;
}

/** `v22.13.1`, `22.13.1`, `22` → [22, 13, 1]; anything else → undefined. */
export function parseVersion(text: string): number[] | undefined {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2] || 0), Number(m[3] || 0)] : undefined;
}

export function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

/** The driver the backup would use with this Node, or why it cannot run there. */
export function verdict(probe: Probe): { driver?: Choice['driver']; why: string } {
  if (probe.error !== undefined) return { why: `did not answer: ${probe.error}` };
  const version = parseVersion(probe.version || '');
  if (!version || version[0] < 22) return { why: 'too old: the backup needs Node 22 or later' };
  if (probe.betterSqlite3) return { driver: 'better-sqlite3', why: `better-sqlite3${probe.nodeSqlite ? ' (node:sqlite too)' : ''}` };
  if (probe.nodeSqlite) return { driver: 'node:sqlite', why: `node:sqlite (the job's better-sqlite3 binaries are 64-bit and do not load in this ${probe.arch} Node)` };
  return { why: `neither better-sqlite3 (${probe.arch}; the job ships 64-bit binaries) nor node:sqlite (built in from Node 22.13)` };
}

/** Rules 2 and 3 of the file's comment over the probed candidates; undefined when none fits. */
export function chooseNode(probes: Probe[]): Choice | undefined {
  let best: Choice | undefined;
  for (let i = 0; i < probes.length; i++) {
    const driver = verdict(probes[i]).driver;
    if (!driver) continue;
    const better = !best || (driver === 'better-sqlite3' && best.driver === 'node:sqlite') ||
      (driver === best.driver && compareVersions(parseVersion(probes[i].version!)!, parseVersion(best.probe.version!)!) > 0);
    if (better) best = { probe: probes[i], driver };
  }
  return best;
}

/** One line per probed Node, for the log. */
export function describeProbe(probe: Probe): string {
  const v = verdict(probe);
  const who = probe.version ? `${probe.version} ${probe.arch}` : '?';
  return `  ${who} ${probe.file} (${probe.from}): ${v.driver ? 'usable, ' : ''}${v.why}`;
}

/** The failure, after the probes' own lines: what was found in short, and the one setting to add. */
export function failureMessage(plan: SearchPlan, probes: Probe[], explicit?: Probe): string {
  if (explicit) {
    return (
      `The app setting ${NODE_SETTING} names ${explicit.file}, which cannot run the backup (${verdict(explicit).why}). ` +
      `Point it at a 64-bit Node 22 or later, or any Node 22.13 or later, or remove it to let the job search.`
    );
  }
  const lines = ['The sqlite-backup job found no Node.js that can run it: it needs a 64-bit Node 22 or later (better-sqlite3), or any Node 22.13 or later (node:sqlite).'];
  if (probes.length) {
    lines.push(`Found ${probes.length}, none fits: ${probes.map((p) => (p.version ? `${p.version} ${p.arch} ${p.file}` : `${p.file} (no answer)`)).join('; ')}.`);
  } else {
    lines.push(`Found no ${plan.exe} in ${plan.roots.map((r) => r.dir).concat(['the PATH']).join(', ')}.`);
  }
  const example = plan.exe === 'node.exe' ? 'D:\\Program Files\\nodejs\\22.17.0\\node.exe' : '/opt/nodejs/22.17.0/bin/node';
  lines.push(`Add the app setting ${NODE_SETTING} with the full path of one, for example ${example} (Configuration > Application settings; saving it restarts the app).`);
  return lines.join('\n');
}

/**
 * Asks one Node for its version, architecture and SQLite drivers. The question is ES5 too (the
 * Node may be old), and tries better-sqlite3 only on Node 22 or later: older ones crash loading it.
 */
const PROBE_SOURCE = [
  "var r = { version: process.version, arch: process.arch, betterSqlite3: false, nodeSqlite: false };",
  "if (Number(process.versions.node.split('.')[0]) >= 22) {",
  "  try { var s = require('node:sqlite'); new s.DatabaseSync(':memory:').close(); r.nodeSqlite = true; } catch (e) {}",
  "  try { var B = require(require('path').join(process.argv[1], 'node_modules', 'better-sqlite3')); new B(':memory:').close(); r.betterSqlite3 = true; } catch (e) {}",
  '}',
  `process.stdout.write('${MARKER}' + JSON.stringify(r) + '\\n');`,
].join('\n');

export function probeNode(candidate: Candidate, jobDir: string, done: (probe: Probe) => void): void {
  const answer = (extra: Partial<Probe>) => {
    const probe: Probe = { file: candidate.file, from: candidate.from };
    for (const key in extra) (probe as unknown as Record<string, unknown>)[key] = (extra as Record<string, unknown>)[key];
    done(probe);
  };
  childProcess.execFile(candidate.file, ['-e', PROBE_SOURCE, jobDir], { timeout: PROBE_TIMEOUT_MS, windowsHide: true, maxBuffer: 1 << 20 }, (err, stdout) => {
    const line = String(stdout || '').split('\n').filter((l) => l.indexOf(MARKER) === 0)[0];
    if (!line) return answer({ error: err ? String(err.message || err).split('\n')[0] : 'no answer' });
    try {
      const said = JSON.parse(line.slice(MARKER.length)) as Partial<Probe>;
      answer({ version: String(said.version), arch: String(said.arch), betterSqlite3: said.betterSqlite3 === true, nodeSqlite: said.nodeSqlite === true });
    } catch (e) {
      answer({ error: 'an answer that is not JSON' });
    }
  });
}

/** Probes candidates one after another (each prints its line at once, so Kudu sees the job alive). */
function probeAll(candidates: Candidate[], jobDir: string, print: (line: string) => void, done: (probes: Probe[]) => void): void {
  const probes: Probe[] = [];
  const next = (i: number) => {
    if (i === candidates.length) return done(probes);
    probeNode(candidates[i], jobDir, (probe) => {
      probes.push(probe);
      print(describeProbe(probe));
      next(i + 1);
    });
  };
  next(0);
}

/** Runs the backup with the chosen Node: stdio inherited, exit code passed on, signals forwarded. */
function runJob(choice: Choice, jobDir: string, argv: string[], env: Env, exit: (code: number) => void): void {
  const childEnv: Env = {};
  for (const key in env) childEnv[key] = env[key];
  childEnv.SQLITE_BACKUP_DRIVER = choice.driver;
  // Kudu hands the run's arguments over in WEBJOBS_COMMAND_ARGUMENTS as it got them; the command
  // line has been through cmd.exe or bash first, so the job reads the variable when it is there.
  const args = (choice.driver === 'node:sqlite' ? ['--disable-warning=ExperimentalWarning'] : [])
    .concat([path.join(jobDir, JOB_FILE)])
    .concat(env.WEBJOBS_COMMAND_ARGUMENTS === undefined ? argv : []);
  const child = childProcess.spawn(choice.probe.file, args, { stdio: 'inherit', env: childEnv, windowsHide: true });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  process.on('SIGTERM', forward('SIGTERM'));
  process.on('SIGINT', forward('SIGINT'));
  child.on('error', (err) => {
    console.log(`The backup could not be started with ${choice.probe.file}: ${err.message}`);
    exit(1);
  });
  // Killed by a signal: no exit code, a failed run.
  child.on('exit', (code) => exit(code === null ? 1 : code));
}

export interface LaunchOptions {
  env: Env;
  platform: string;
  argv: string[];
  /** The job's folder: sqlite-backup.js and node_modules/better-sqlite3. */
  jobDir: string;
  print: (line: string) => void;
  exit: (code: number) => void;
  disk?: SearchFs;
}

export function launch(options: LaunchOptions): void {
  const plan = searchPlan(options.env, options.platform);
  const disk = options.disk || realFs;
  const print = options.print;
  print(`sqlite-backup launcher on Node ${process.version} (${process.arch}): looking for the Node.js to run the backup with.`);
  const start = (choice: Choice) => {
    print(`Running the backup with Node ${choice.probe.version} (${choice.probe.arch}, ${choice.driver}): ${choice.probe.file}`);
    runJob(choice, options.jobDir, options.argv, options.env, options.exit);
  };
  if (plan.explicit) {
    return probeNode({ file: plan.explicit, from: NODE_SETTING }, options.jobDir, (probe) => {
      print(describeProbe(probe));
      const driver = verdict(probe).driver;
      if (driver) return start({ probe, driver });
      print(failureMessage(plan, [], probe));
      options.exit(1);
    });
  }
  probeAll(findCandidates(plan, disk), options.jobDir, print, (probes) => {
    const choice = chooseNode(probes);
    if (choice) return start(choice);
    print(failureMessage(plan, probes));
    options.exit(1);
  });
}

function envValue(env: Env, name: string, caseInsensitive: boolean): string | undefined {
  if (!caseInsensitive || env[name] !== undefined) return env[name];
  const lower = name.toLowerCase();
  for (const key in env) if (key.toLowerCase() === lower) return env[key];
  return undefined;
}

function sameText(a: string, b: string, caseInsensitive: boolean): boolean {
  return caseInsensitive ? a.toLowerCase() === b.toLowerCase() : a === b;
}

if (require.main === module) {
  launch({
    env: process.env,
    platform: process.platform,
    argv: process.argv.slice(2),
    jobDir: __dirname,
    print: (line) => console.log(line),
    exit: (code) => {
      process.exitCode = code;
    },
  });
}
