/**
 * After `tsc`: make each compiled task folder under out/tasks runnable the way the agent runs it
 * (its task.json and icon beside the compiled entry), and build the backup WebJob's package that
 * AppServiceWebJobRun installs (`installJob`). Tests and the demo run tasks from there; `npm run
 * package` bundles them into the .vsix.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createZip } from '../lib/archive';
import { version } from '../package.json';
import { bundle, ROOT } from './bundle';

export { ROOT };
export const TASKS_SRC = path.join(ROOT, 'tasks');
export const TASKS_OUT = path.join(ROOT, 'out', 'tasks');

/** Files of a task folder that ship as they are (everything else is TypeScript source). */
export const TASK_ASSETS = ['task.json', 'icon.png'];

/** Where AppServiceWebJobRun finds the job it installs. */
export const WEBJOB_ZIP = path.join(TASKS_OUT, 'AppServiceWebJobRun', 'webjob', 'sqlite-backup.zip');

/**
 * App Service runs WebJobs on Windows x64 (64-bit platform setting) or Linux; better-sqlite3's
 * other binaries would only make the upload bigger.
 */
const WEBJOB_PREBUILDS = ['win32-x64', 'linux-x64', 'linux-arm64'];

/**
 * Runs before the bundle loads better-sqlite3, so a wrong Node or a 32-bit worker get a sentence
 * that says what to change instead of a failed native module load.
 */
const WEBJOB_PREFLIGHT = `(function () {
  var major = Number(process.versions.node.split('.')[0]);
  var target = process.platform + '-' + process.arch;
  if (major < 22) {
    console.error('The sqlite-backup WebJob needs Node.js 22 or later, and runs on ' + process.version + '. On Windows set the app setting WEBSITE_NODE_DEFAULT_VERSION to ~22 (or later); on Linux choose a Node 22+ runtime stack.');
    process.exit(1);
  }
  if (${JSON.stringify(WEBJOB_PREBUILDS)}.indexOf(target) < 0) {
    console.error('The sqlite-backup WebJob has no SQLite binary for ' + target + '.' + (process.arch === 'ia32' ? ' The app runs 32-bit: set Platform to 64 Bit under Configuration > General settings.' : ''));
    process.exit(1);
  }
})();`;

export function taskNames(): string[] {
  return fs
    .readdirSync(TASKS_SRC, { withFileTypes: true })
    .filter((d) => d.isDirectory() && fs.existsSync(path.join(TASKS_SRC, d.name, 'task.json')))
    .map((d) => d.name)
    .sort();
}

/** The WebJob as Kudu takes it: a zip whose root holds run.js, settings.job and what run.js needs. */
export async function buildWebJob(): Promise<string> {
  const source = path.join(ROOT, 'webjobs', 'sqlite-backup');
  const stage = path.join(ROOT, 'out', 'webjob-stage', 'sqlite-backup');
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  await bundle({
    entry: path.join(ROOT, 'out', 'webjobs', 'sqlite-backup', 'run.js'),
    outfile: path.join(stage, 'run.js'),
    banner: WEBJOB_PREFLIGHT,
    prebuilds: WEBJOB_PREBUILDS,
  });
  for (const file of ['settings.job', 'README.md']) fs.copyFileSync(path.join(source, file), path.join(stage, file));
  // Its version tells installJob whether the app has an older copy.
  fs.writeFileSync(
    path.join(stage, 'package.json'),
    JSON.stringify({ name: 'appservice-sqlite-backup-webjob', version, private: true, description: 'SQLite backup WebJob of the App Service SQLite tasks' }, null, 2) + '\n',
  );
  fs.mkdirSync(path.dirname(WEBJOB_ZIP), { recursive: true });
  await createZip({ root: stage, output: WEBJOB_ZIP });
  return WEBJOB_ZIP;
}

async function main(): Promise<void> {
  for (const task of taskNames()) {
    const out = path.join(TASKS_OUT, task);
    fs.mkdirSync(out, { recursive: true });
    for (const asset of TASK_ASSETS) {
      const src = path.join(TASKS_SRC, task, asset);
      if (fs.existsSync(src)) fs.copyFileSync(src, path.join(out, asset));
    }
  }
  await buildWebJob();
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
