/**
 * Real Ghost releases from the npm registry, installed the way Ghost-CLI installs them (the
 * package unpacked, its production dependencies installed inside it) into a cache folder outside
 * the repository, each with the Node.js it will run on: native modules (sqlite3, better-sqlite3)
 * are compiled for that Node, against its own headers, since prebuilt binaries cannot be fetched
 * here. A finished install leaves `.installed.json`; a later run reuses it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const CACHE = process.env.REAL_GHOST_CACHE ?? path.join(os.homedir(), '.cache', 'appservice-sqlite-tasks', 'real-ghost');

export interface NodeBinary {
  file: string;
  version: string;
  /** The folder holding include/node (npm's nodedir), when this Node has its headers beside it. */
  headers?: string;
}

export interface GhostInstall {
  version: string;
  root: string;
  node: NodeBinary;
  /** How long the install took when it was made (not this run, if reused). */
  installSeconds: number;
  reused: boolean;
}

export function describeNode(file: string): NodeBinary {
  const real = fs.realpathSync(file);
  const version = execFileSync(real, ['-p', 'process.version'], { encoding: 'utf8' }).trim();
  const dir = path.dirname(path.dirname(real));
  return { file: real, version, headers: fs.existsSync(path.join(dir, 'include', 'node', 'node.h')) ? dir : undefined };
}

/** Every `node` on PATH (npm run puts node_modules/.bin first), deduplicated by the file it is. */
export function nodesOnPath(): NodeBinary[] {
  const seen = new Set<string>();
  const found: NodeBinary[] = [];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir, 'node');
    if (!dir || !fs.existsSync(file)) continue;
    const real = fs.realpathSync(file);
    if (seen.has(real)) continue;
    seen.add(real);
    found.push(describeNode(real));
  }
  return found;
}

function run(file: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; log: string }): void {
  const out = fs.openSync(options.log, 'a');
  try {
    const r = spawnSync(file, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', out, out], timeout: 30 * 60_000 });
    if (r.status !== 0) {
      const tail = fs.readFileSync(options.log, 'utf8').split('\n').slice(-30).join('\n');
      throw new Error(`${path.basename(file)} ${args.join(' ')} failed (${r.status ?? r.signal ?? r.error?.message}) in ${options.cwd}; log ${options.log}:\n${tail}`);
    }
  } finally {
    fs.closeSync(out);
  }
}

/**
 * Ghost's development dependencies are of no use to a production install, and some come from git
 * hosts this machine cannot reach (Ghost 5: mock-knex from GitHub); npm resolves them even with
 * --omit=dev, so they go. Yarn's `resolutions` (Ghost 5) become npm's `overrides`.
 */
function productionOnly(file: string): void {
  const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  delete pkg.devDependencies;
  if (pkg.resolutions && !pkg.overrides) pkg.overrides = pkg.resolutions;
  fs.writeFileSync(file, JSON.stringify(pkg, null, 2));
}

/** ghost@version unpacked into the cache and its dependencies installed with `node`'s npm build. */
export function installGhost(version: string, node: NodeBinary, say: (line: string) => void): GhostInstall {
  const major = node.version.replace(/^v/, '').split('.')[0];
  const root = path.join(CACHE, `ghost-${version}-node${major}`);
  const marker = path.join(root, '.installed.json');
  if (fs.existsSync(marker)) {
    const made = JSON.parse(fs.readFileSync(marker, 'utf8')) as { installSeconds: number; node: string };
    if (made.node === node.version) return { version, root, node, installSeconds: made.installSeconds, reused: true };
  }
  say(`Installing ghost@${version} with Node.js ${node.version} into ${root} (native modules compile: minutes)…`);
  const started = Date.now();
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  const log = path.join(CACHE, `ghost-${version}-node${major}.install.log`);
  fs.writeFileSync(log, '');
  // npm's `#!/usr/bin/env node` then runs on this Node, and node-gyp builds for it.
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: [path.dirname(node.file), process.env.PATH].join(path.delimiter) };
  if (node.headers) env.npm_config_nodedir = node.headers;
  const tarball = path.join(CACHE, `ghost-${version}.tgz`);
  if (!fs.existsSync(tarball)) run('npm', ['pack', `ghost@${version}`, '--pack-destination', CACHE], { cwd: CACHE, env, log });
  run('tar', ['xzf', tarball, '-C', root, '--strip-components=1'], { cwd: CACHE, log });
  productionOnly(path.join(root, 'package.json'));
  // Ghost is installed with yarn or pnpm, which do not enforce peer ranges (bookshelf 1.2 names knex < 0.22).
  run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--loglevel=warn', '--legacy-peer-deps'], { cwd: root, env, log });
  const installSeconds = Math.round((Date.now() - started) / 1000);
  fs.writeFileSync(marker, JSON.stringify({ ghost: version, node: node.version, installSeconds }));
  say(`Installed ghost@${version} in ${installSeconds} s.`);
  return { version, root, node, installSeconds, reused: false };
}

/**
 * A Node.js release from the registry (the `node-<os>-<arch>` packages that the `node` package
 * installs from), with its headers, in the cache.
 */
export function installNode(version: string, say: (line: string) => void): NodeBinary {
  if (process.platform === 'win32') throw new Error('check:real-ghost runs on Linux or macOS.');
  const pkg = `node-${process.platform}-${process.arch}`;
  const prefix = path.join(CACHE, `node-${version}`);
  const file = path.join(prefix, 'node_modules', pkg, 'bin', 'node');
  if (!fs.existsSync(file)) {
    say(`Installing Node.js ${version} (${pkg}) into ${prefix}…`);
    fs.mkdirSync(prefix, { recursive: true });
    run('npm', ['install', '--no-audit', '--no-fund', '--no-save', '--prefix', prefix, `${pkg}@${version}`], { cwd: prefix, log: path.join(prefix, 'install.log') });
  }
  return describeNode(file);
}
