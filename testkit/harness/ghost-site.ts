/**
 * Throwaway Ghost folders for the GhostMigrate tests: a copy of testkit/fixtures/ghost in a temp
 * folder, its `node_modules` a symlink (a junction on Windows) to this repository's, so the
 * REAL knex-migrator, knex and better-sqlite3 are what Ghost's folder "has installed". The copy
 * lives outside the repository on purpose: from there, without the link, nothing resolves, which
 * is the "npm install not run" case.
 *
 * Databases at a chosen version are made the way a real site's database came to be: knex-migrator
 * init by an older Ghost (whose tree had no newer version folders), migrations run up to that
 * version, then the newer folders and package.json version of the current Ghost put in place.
 *
 * @example
 *   const site = createSite();
 *   prepareDatabase(site, '6.0');          // content/data/ghost.db at 6.0; the fixture's Ghost is 6.2
 *   site.addMigration('6.2', '2025-10-20-broken.js', 'module.exports = {up() { throw new Error("x") }}');
 *   site.cleanup();
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { compareMigrationVersions } from '../../tasks/GhostMigrate/migration-state';
import { REPO_ROOT } from './agent';

export const GHOST_FIXTURE = path.join(REPO_ROOT, 'testkit', 'fixtures', 'ghost');
/** The version of the fixture's Ghost (its package.json). */
export const FIXTURE_VERSION = (JSON.parse(fs.readFileSync(path.join(GHOST_FIXTURE, 'package.json'), 'utf8')) as { version: string }).version;

export interface GhostSite {
  /** The temp folder holding everything (ghost/ and whatever a test adds). */
  dir: string;
  /** The Ghost folder: ghostRoot. */
  root: string;
  /** content/data/ghost.db in it. */
  db: string;
  versionsDir: string;
  addMigration(version: string, name: string, source: string): string;
  setVersion(version: string): void;
  cleanup(): void;
}

export interface SiteOptions {
  /** False: no node_modules at all ("npm install not run"). */
  nodeModules?: boolean;
  /**
   * The SQLite driver's native module built for another platform (a node_modules installed on
   * one OS and run on another): better-sqlite3's binary is its prebuild for this target, so that
   * loading it fails in the dynamic loader (ERR_DLOPEN_FAILED) where knex first connects.
   */
  driverBuiltFor?: 'win32-x64' | 'darwin-x64';
}

export function createSite(options: SiteOptions = {}): GhostSite {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ghost-site-'));
  const root = path.join(dir, 'ghost');
  fs.cpSync(GHOST_FIXTURE, root, { recursive: true });
  if (options.driverBuiltFor) linkModulesWithForeignDriver(path.join(root, 'node_modules'), options.driverBuiltFor);
  else if (options.nodeModules ?? true) fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(root, 'node_modules'), 'junction');
  const versionsDir = path.join(root, 'core', 'server', 'data', 'migrations', 'versions');
  return {
    dir,
    root,
    db: path.join(root, 'content', 'data', 'ghost.db'),
    versionsDir,
    addMigration(version, name, source) {
      const file = path.join(versionsDir, version, name);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, source);
      return file;
    },
    setVersion(version) {
      const file = path.join(root, 'package.json');
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string };
      pkg.version = version;
      fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + '\n');
    },
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A node_modules of links to this repository's packages, but for knex and better-sqlite3, which are
 * copies: knex loads its driver from where it really lies, so both must live in the site. The
 * driver's binary is the prebuild for `target`, where node-gyp would have put one built here.
 */
function linkModulesWithForeignDriver(nodeModules: string, target: string): void {
  const repoModules = path.join(REPO_ROOT, 'node_modules');
  fs.mkdirSync(nodeModules);
  for (const name of fs.readdirSync(repoModules)) {
    if (name === 'knex' || name === 'better-sqlite3') continue;
    fs.symlinkSync(path.join(repoModules, name), path.join(nodeModules, name), 'junction');
  }
  fs.cpSync(path.join(repoModules, 'knex'), path.join(nodeModules, 'knex'), { recursive: true });
  const driver = path.join(nodeModules, 'better-sqlite3');
  for (const part of ['package.json', 'lib']) fs.cpSync(path.join(repoModules, 'better-sqlite3', part), path.join(driver, part), { recursive: true });
  fs.mkdirSync(path.join(driver, 'build', 'Release'), { recursive: true });
  fs.copyFileSync(path.join(repoModules, 'better-sqlite3', 'prebuilds', `${target}.node`), path.join(driver, 'build', 'Release', 'better_sqlite3.node'));
}

/** Runs the real knex-migrator bin in the site, as Ghost's tooling would; throws with its output on failure. */
export function knexMigrator(site: GhostSite, command: 'init' | 'migrate', db = site.db): string {
  const bin = path.join(site.root, 'node_modules', 'knex-migrator', 'bin', `knex-migrator-${command}`);
  const run = spawnSync(process.execPath, [bin, '--mgpath', site.root], {
    cwd: site.root,
    // Logging to stdout, for the error below; no pre-migration export (these make the site's past).
    env: { ...process.env, NODE_ENV: 'production', database__connection__filename: db, logging__transports: '["stdout"]', disableMigrationBackups: 'true' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (run.status !== 0) throw new Error(`knex-migrator ${command} failed (${run.status ?? run.signal}):\n${run.stdout}\n${run.stderr}`);
  return run.stdout;
}

/**
 * Leaves site.db at `version` (e.g. '6.0'): init with no version folders, then migrate with the
 * folders up to `version` and package.json at `<version>.0`; finally the site's own folders and
 * version come back, so everything newer is pending.
 */
export function prepareDatabase(site: GhostSite, version: string): void {
  const held = path.join(site.dir, 'held-versions');
  fs.rmSync(held, { recursive: true, force: true });
  fs.renameSync(site.versionsDir, held);
  fs.mkdirSync(site.versionsDir);
  const original = (JSON.parse(fs.readFileSync(path.join(site.root, 'package.json'), 'utf8')) as { version: string }).version;
  try {
    site.setVersion(`${version}.0`);
    knexMigrator(site, 'init');
    for (const folder of fs.readdirSync(held)) {
      if (compareMigrationVersions(folder, version) <= 0) fs.cpSync(path.join(held, folder), path.join(site.versionsDir, folder), { recursive: true });
    }
    knexMigrator(site, 'migrate');
  } finally {
    fs.rmSync(site.versionsDir, { recursive: true, force: true });
    fs.renameSync(held, site.versionsDir);
    site.setVersion(original);
  }
}

export interface DbSnapshot {
  tables: string[];
  migrations: Array<{ name: string; version: string }>;
  locked: number;
}

export function readDb(file: string): DbSnapshot {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return {
      tables: db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all() as string[],
      migrations: db.prepare('SELECT name, version FROM migrations ORDER BY id').all() as Array<{ name: string; version: string }>,
      locked: Number(db.prepare("SELECT locked FROM migrations_lock WHERE lock_key = 'km01'").pluck().get()),
    };
  } finally {
    db.close();
  }
}

export function setLock(file: string, locked: boolean): void {
  const db = new Database(file);
  try {
    db.prepare("UPDATE migrations_lock SET locked = ?, acquired_at = '2026-11-01 03:14:15' WHERE lock_key = 'km01'").run(locked ? 1 : 0);
  } finally {
    db.close();
  }
}

export function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Alive and not a zombie (a killed grandchild stays a zombie until whoever adopted it reaps it). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return process.platform !== 'linux';
  }
}
