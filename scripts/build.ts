/**
 * After `tsc`: make each compiled task folder under out/tasks runnable the way the agent runs it,
 * by putting its task.json (and icon) beside the compiled entry. Tests and the demo run tasks
 * from there; `npm run package` bundles them into the .vsix.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const TASKS_SRC = path.join(ROOT, 'tasks');
export const TASKS_OUT = path.join(ROOT, 'out', 'tasks');

/** Files of a task folder that ship as they are (everything else is TypeScript source). */
export const TASK_ASSETS = ['task.json', 'icon.png'];

export function taskNames(): string[] {
  return fs
    .readdirSync(TASKS_SRC, { withFileTypes: true })
    .filter((d) => d.isDirectory() && fs.existsSync(path.join(TASKS_SRC, d.name, 'task.json')))
    .map((d) => d.name)
    .sort();
}

function main(): void {
  for (const task of taskNames()) {
    const out = path.join(TASKS_OUT, task);
    fs.mkdirSync(out, { recursive: true });
    for (const asset of TASK_ASSETS) {
      const src = path.join(TASKS_SRC, task, asset);
      if (fs.existsSync(src)) fs.copyFileSync(src, path.join(out, asset));
    }
  }
}

if (require.main === module) main();
