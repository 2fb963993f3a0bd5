/**
 * Builds dist/<publisher>.<id>-<version>.vsix with tfx-cli. Each task ships self-contained: its
 * compiled entry bundled with esbuild into one index.js, its task.json, icon and assets, and, for
 * tasks that use SQLite, better-sqlite3 with the prebuilt binaries for every agent OS (Windows,
 * Linux, macOS; x64 and arm64) — the native addon cannot be bundled, so it stays a module.
 *
 * Run after `npm run build` (`npm run package` does both).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, TASKS_OUT, taskNames } from './build';
import { bundle } from './bundle';

const DIST = path.join(ROOT, 'dist');
const STAGE = path.join(DIST, 'stage');

/** Everything in the compiled task folder that is not JavaScript: task.json, icon, assets. */
function copyTaskAssets(task: string, into: string): void {
  const from = path.join(TASKS_OUT, task);
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    if (entry.isFile() && /\.(js|js\.map|d\.ts)$/.test(entry.name)) continue;
    if (entry.isDirectory() && !fs.readdirSync(path.join(from, entry.name)).some((f) => !/\.(js|js\.map)$/.test(f))) continue;
    fs.cpSync(path.join(from, entry.name), path.join(into, entry.name), { recursive: true });
  }
}

export async function packageExtension(): Promise<string> {
  fs.rmSync(STAGE, { recursive: true, force: true });
  fs.mkdirSync(STAGE, { recursive: true });
  for (const file of ['vss-extension.json', 'overview.md', 'LICENSE']) fs.copyFileSync(path.join(ROOT, file), path.join(STAGE, file));
  fs.cpSync(path.join(ROOT, 'images'), path.join(STAGE, 'images'), { recursive: true });
  for (const task of taskNames()) {
    const into = path.join(STAGE, 'tasks', task);
    fs.mkdirSync(into, { recursive: true });
    copyTaskAssets(task, into);
    const natives = await bundle({ entry: path.join(TASKS_OUT, task, 'index.js'), outfile: path.join(into, 'index.js') });
    console.log(`${task}: bundled${natives.length ? ` with ${natives.join(', ')}` : ''}`);
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'vss-extension.json'), 'utf8')) as { publisher: string; id: string; version: string };
  const vsix = path.join(DIST, `${manifest.publisher}.${manifest.id}-${manifest.version}.vsix`);
  fs.rmSync(vsix, { force: true });
  const tfx = path.join(ROOT, 'node_modules', 'tfx-cli', '_build', 'tfx-cli.js');
  execFileSync(
    process.execPath,
    [tfx, 'extension', 'create', '--root', STAGE, '--manifest-globs', 'vss-extension.json', '--output-path', vsix, '--no-prompt', '--no-color'],
    { stdio: 'inherit', cwd: STAGE },
  );
  console.log(`${path.relative(ROOT, vsix)}: ${(fs.statSync(vsix).size / 1048576).toFixed(1)} MiB`);
  return vsix;
}

if (require.main === module) {
  packageExtension().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
