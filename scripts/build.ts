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
import { JOB_FILE } from '../webjobs/sqlite-backup/launcher';
import { bundle, compileEs5, ROOT } from './bundle';

export { ROOT };
export const TASKS_SRC = path.join(ROOT, 'tasks');
export const TASKS_OUT = path.join(ROOT, 'out', 'tasks');

/** Files of a task folder that ship as they are (everything else is TypeScript source). */
export const TASK_ASSETS = ['task.json', 'icon.png'];

/** Where AppServiceWebJobRun finds the job it installs. */
export const WEBJOB_ZIP = path.join(TASKS_OUT, 'AppServiceWebJobRun', 'webjob', 'sqlite-backup.zip');

/**
 * App Service runs WebJobs on Windows x64 (64-bit platform setting) or Linux; better-sqlite3's
 * other binaries would only make the upload bigger. A 32-bit Node uses node:sqlite instead.
 */
const WEBJOB_PREBUILDS = ['win32-x64', 'linux-x64', 'linux-arm64'];

/**
 * Runs before anything else in sqlite-backup.js: the launcher (run.js) only starts it with Node 22
 * or later, so an older one means it was started by hand, or by a Kudu that ran it directly.
 */
const WEBJOB_PREFLIGHT = `(function () {
  if (Number(process.versions.node.split('.')[0]) < 22) {
    console.error('The sqlite-backup WebJob needs Node.js 22 or later, and was started with ' + process.version + ' (' + process.execPath + '). Start it through run.cmd, run.sh or run.js, which find a Node that fits, or set the app setting SQLITE_BACKUP_NODE to one.');
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

/**
 * The WebJob as Kudu takes it: a zip whose root holds the entries Kudu prefers (run.cmd on
 * Windows, run.sh on Linux: shebang, LF, executable), run.js (the launcher, ES5, which picks the
 * Node), sqlite-backup.js (the backup, bundled), better-sqlite3's binaries, settings.job (in place).
 */
export async function buildWebJob(): Promise<string> {
  const source = path.join(ROOT, 'webjobs', 'sqlite-backup');
  const stage = path.join(ROOT, 'out', 'webjob-stage', 'sqlite-backup');
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  await bundle({
    entry: path.join(ROOT, 'out', 'webjobs', 'sqlite-backup', 'run.js'),
    outfile: path.join(stage, JOB_FILE),
    banner: WEBJOB_PREFLIGHT,
    prebuilds: WEBJOB_PREBUILDS,
  });
  await compileEs5(path.join(source, 'launcher.ts'), path.join(stage, 'run.js'));
  const text = (file: string) => fs.readFileSync(path.join(source, file), 'utf8').replace(/\r\n/g, '\n');
  // cmd.exe misreads labels in LF-only batch files; a shell script with CRLF fails on its shebang.
  fs.writeFileSync(path.join(stage, 'run.cmd'), text('run.cmd').replace(/\n/g, '\r\n'));
  fs.writeFileSync(path.join(stage, 'run.sh'), text('run.sh'), { mode: 0o755 });
  fs.chmodSync(path.join(stage, 'run.sh'), 0o755);
  for (const file of ['settings.job', 'README.md']) fs.copyFileSync(path.join(source, file), path.join(stage, file));
  // Its version tells installJob whether the app has an older copy.
  fs.writeFileSync(
    path.join(stage, 'package.json'),
    JSON.stringify({ name: 'appservice-sqlite-backup-webjob', version, private: true, description: 'SQLite backup WebJob of the App Service SQLite tasks' }, null, 2) + '\n',
  );
  fs.mkdirSync(path.dirname(WEBJOB_ZIP), { recursive: true });
  await createZip({ root: stage, output: WEBJOB_ZIP });
  // installJob keeps these under a user's own settings when it upgrades the job.
  fs.copyFileSync(path.join(source, 'settings.job'), path.join(path.dirname(WEBJOB_ZIP), 'settings.job'));
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
