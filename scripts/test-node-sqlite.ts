/**
 * `npm run test:node-sqlite`: the SQLite engine's tests and the WebJob's, with Node's built-in
 * node:sqlite as the driver instead of better-sqlite3 (lib/sqlite/driver.ts), the way a 32-bit
 * Node on a Windows worker runs the backup. Run after `npm run build`.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './bundle';

const FOLDERS = [path.join('out', 'tests', 'lib'), path.join('out', 'tests', 'webjobs')];
const files = FOLDERS.flatMap((folder) =>
  fs
    .readdirSync(path.join(ROOT, folder))
    .filter((name) => name.endsWith('.test.js') && (folder.endsWith('webjobs') || name.startsWith('sqlite-')))
    .map((name) => path.join(folder, name)),
);
const mocha = path.join(ROOT, 'node_modules', 'mocha', 'bin', 'mocha.js');
const run = spawnSync(process.execPath, [mocha, '--no-config', '--require', 'out/tests/hooks.js', '--timeout', '120000', '--enable-source-maps', ...files], {
  cwd: ROOT,
  env: { ...process.env, SQLITE_BACKUP_DRIVER: 'node:sqlite' },
  stdio: 'inherit',
});
process.exitCode = run.status ?? 1;
