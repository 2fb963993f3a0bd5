/**
 * What the task needs to know about the Ghost it migrates with, found before anything runs:
 * MigratorConfig.js in ghostRoot, the knex-migrator that ghostRoot has installed, Ghost's version,
 * and what MigratorConfig.js itself resolves to (database file, migrations folder, currentVersion)
 * when loaded the way knex-migrator will load it. Each failure says what to change.
 */
import { execFile, type ExecFileException } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The names knex-migrator looks for, in its order (6.x added .cjs and .mjs). */
export const MIGRATOR_CONFIG_NAMES = ['MigratorConfig.js', 'MigratorConfig.cjs', 'MigratorConfig.mjs'];

export interface KnexMigratorInstall {
  dir: string;
  version: string;
  /** Absolute path of a knex-migrator bin script, e.g. `migrate` → bin/knex-migrator-migrate. */
  bin(command: 'migrate' | 'init'): string;
}

export interface GhostInstall {
  root: string;
  migratorConfig: string;
  knexMigrator: KnexMigratorInstall;
  /** From ghostRoot/package.json, when it has one with a version. */
  ghostVersion?: { full: string; safe: string };
}

export function inspectGhostRoot(ghostRoot: string): GhostInstall {
  const root = path.resolve(ghostRoot);
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) {
    throw new Error(`ghostRoot '${root}' is not a folder. Point ghostRoot at the folder of Ghost itself (the one with MigratorConfig.js, package.json and core/).`);
  }
  const migratorConfig = MIGRATOR_CONFIG_NAMES.map((n) => path.join(root, n)).find((f) => fs.existsSync(f));
  if (!migratorConfig) {
    const found = findMigratorConfigBelow(root);
    throw new Error(
      `There is no MigratorConfig.js in ghostRoot '${root}', so this is not Ghost's folder. ` +
        (found.length
          ? `Found one in ${found.map((f) => `'${f}'`).join(', ')}: set ghostRoot to that folder.`
          : `Set ghostRoot to the folder of Ghost itself: for a Ghost-Azure repository its root, for a Ghost-CLI install versions/<version> (or current), for Ghost's source monorepo ghost/core.`),
    );
  }
  return { root, migratorConfig, knexMigrator: findKnexMigrator(root), ghostVersion: readGhostVersion(root) };
}

/** One and two levels down (not node_modules), where a mis-set ghostRoot usually leaves it. */
function findMigratorConfigBelow(root: string): string[] {
  const found: string[] = [];
  const visit = (dir: string, depth: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory() || e.name === 'node_modules' || e.name.startsWith('.')) continue;
      const sub = path.join(dir, e.name);
      if (MIGRATOR_CONFIG_NAMES.some((n) => fs.existsSync(path.join(sub, n)))) found.push(sub);
      else if (depth < 2) visit(sub, depth + 1);
    }
  };
  visit(root, 1);
  return found.slice(0, 3);
}

/** Node's own lookup for a package: node_modules/<name> in the folder and each parent. */
function findKnexMigrator(root: string): KnexMigratorInstall {
  for (let dir = root; ; dir = path.dirname(dir)) {
    const pkgFile = path.join(dir, 'node_modules', 'knex-migrator', 'package.json');
    if (fs.existsSync(pkgFile)) {
      const pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as { version?: string; bin?: Record<string, string> | string };
      const kmDir = path.dirname(pkgFile);
      return {
        dir: kmDir,
        version: pkg.version ?? 'unknown',
        bin: (command) => {
          const rel = typeof pkg.bin === 'object' ? pkg.bin[`knex-migrator-${command}`] : undefined;
          return path.join(kmDir, rel ?? path.join('bin', `knex-migrator-${command}`));
        },
      };
    }
    if (path.dirname(dir) === dir) break;
  }
  throw new Error(
    `knex-migrator is not installed in ghostRoot '${root}' (no node_modules/knex-migrator there or in a parent folder): Ghost's dependencies have not been installed. ` +
      `Run \`npm install\` (or \`yarn install\`) in that folder before this task, with the Node.js version Ghost needs.`,
  );
}

function readGhostVersion(root: string): GhostInstall['ghostVersion'] {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version?: unknown };
    const full = typeof pkg.version === 'string' ? pkg.version : undefined;
    const safe = full?.match(/^(\d+\.)?(\d+)/)?.[0];
    return full && safe ? { full, safe } : undefined;
  } catch {
    return undefined;
  }
}

/** What MigratorConfig.js exports, as seen by a process started like the migrator. */
export interface MigratorConfigProbe {
  /** `process.version` of the node that loaded it. */
  node: string;
  currentVersion: string | null;
  /** Absolute (a relative one is taken against ghostRoot, the migrator's working directory). */
  migrationPath: string | null;
  subfolder: string;
  client: string | null;
  filename: string | null;
  /** Ghost's content folder (absolute), from its config module, when the probe could load it. */
  contentPath: string | null;
  /** Where Ghost's logger writes its files (loggingrc.js's path), when known. */
  logsPath: string | null;
}

/**
 * Runs with `node -e` so that nothing beyond the task's index.js needs shipping, and in plain old
 * JavaScript because the node running it is Ghost's, which may be old. Writes its answer to a file
 * (argv) rather than stdout, which Ghost's config code may also write to.
 */
const PROBE = `
var fs = require('fs'), path = require('path');
var out = process.argv[process.argv.length - 1];
var names = ${JSON.stringify(MIGRATOR_CONFIG_NAMES)};
var file = null;
for (var i = 0; i < names.length && !file; i++) if (fs.existsSync(path.join(process.cwd(), names[i]))) file = path.join(process.cwd(), names[i]);
var config = require(file);
if (config && config[Symbol.toStringTag] === 'Module' && 'default' in config) config = config.default;
var db = (config && config.database) || {};
var conn = db.connection;
var contentPath = null, logsPath = null;
// Ghost 4+ keeps its config in core/shared/config, 1.x-3.x in core/server/config.
['core/shared/config', 'core/server/config'].some(function (m) {
  try {
    var paths = require(path.join(process.cwd(), m)).get('paths');
    contentPath = paths && paths.contentPath ? String(paths.contentPath) : null;
    return true;
  } catch (e) { return false; }
});
try {
  var rc = require(path.join(process.cwd(), 'loggingrc'));
  if (rc && rc.path) logsPath = String(rc.path);
} catch (e) {}
var filename = typeof conn === 'string' ? conn : (conn && conn.filename);
fs.writeFileSync(out, JSON.stringify({
  node: process.version,
  currentVersion: config.currentVersion == null ? null : String(config.currentVersion),
  migrationPath: config.migrationPath ? String(config.migrationPath) : null,
  subfolder: config.subfolder ? String(config.subfolder) : 'versions',
  client: db.client ? String(db.client) : null,
  filename: filename ? String(filename) : null,
  contentPath: contentPath,
  logsPath: logsPath
}));
process.exit(0);
`;

export async function probeMigratorConfig(install: GhostInstall, node: string, env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<MigratorConfigProbe> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ghost-probe-'));
  const out = path.join(dir, 'config.json');
  try {
    const failure = await new Promise<{ err: ExecFileException; stderr: string; stdout: string } | undefined>((resolve) => {
      execFile(node, ['-e', PROBE, out], { cwd: install.root, env, timeout: timeoutMs, killSignal: 'SIGKILL', windowsHide: true, maxBuffer: 4 << 20 }, (err, stdout, stderr) =>
        resolve(err ? { err, stdout: String(stdout), stderr: String(stderr) } : undefined),
      );
    });
    if (failure) {
      const { err } = failure;
      if (err.code === 'ENOENT' || err.code === 'EACCES') {
        throw new Error(`Cannot run Node.js at '${node}' (${err.code}). Set nodeExecutable to the node Ghost was installed with, or put it on PATH (a NodeTool@0 or UseNode@1 step).`);
      }
      if (err.killed) throw new Error(`Loading ${path.basename(install.migratorConfig)} did not finish within ${timeoutMs / 1000} s.`);
      const detail = meaningfulLines(failure.stderr + '\n' + failure.stdout).slice(0, 12).join('\n');
      throw new Error(
        `Loading Ghost's ${path.basename(install.migratorConfig)} from '${install.root}' failed, so knex-migrator would fail the same way:\n${detail}\n` +
          `Check Ghost's config for NODE_ENV=${env.NODE_ENV} (config.${env.NODE_ENV}.json in ghostRoot) and that its dependencies are installed with this node (${node}).`,
      );
    }
    const probe = JSON.parse(fs.readFileSync(out, 'utf8')) as MigratorConfigProbe;
    for (const key of ['migrationPath', 'contentPath', 'logsPath'] as const) {
      const value = probe[key];
      if (value) probe[key] = path.resolve(install.root, value);
    }
    return probe;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Output lines worth showing: no ANSI colours, no stack frames, no blanks. */
export function meaningfulLines(text: string): string[] {
  return stripAnsi(text)
    .split(/\r?\n/)
    .filter((l) => l.trim() && !/^\s+at\s/.test(l) && !/^-{10,}$/.test(l.trim()));
}

export function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
}
