/**
 * Ghost's pre-migration export. Before it migrates, Ghost's migrate hook exports the whole site
 * (posts, members, settings) as JSON into content/data/ (`<site>.ghost.<date>.json`, or
 * `ghost.<date>.json` without a title). The task keeps its own byte-identical copy of the
 * database, so that export is only a copy of everyone's data waiting to be packaged and deployed.
 * Ghost 5 and 6 skip it when told to (the environment below); for a Ghost that does not, the
 * files that appeared during the run are removed, and only those.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Ghost's settings that skip the export: 6's `disableMigrationBackups`, and `disableJSBackups` (5 and 6). */
export const SKIP_EXPORT_ENV = { disableMigrationBackups: 'true', disableJSBackups: 'true' } as const;

/** `<anything>.ghost.YYYY-MM-DD-HH-mm-ss.json` or `ghost.YYYY-MM-DD-HH-mm-ss.json` (exporter/export-filename.js). */
export const EXPORT_NAME = /^(?:.+\.)?ghost\.\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}\.json$/;

/** The exports in the folders Ghost may write them to, by path. */
export function listExports(dirs: string[]): Set<string> {
  const found = new Set<string>();
  for (const dir of new Set(dirs)) {
    let names: fs.Dirent[];
    try {
      names = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of names) if (e.isFile() && EXPORT_NAME.test(e.name)) found.add(path.join(dir, e.name));
  }
  return found;
}

export interface RemovedExport {
  file: string;
  bytes: number;
}

/** Removes the exports that are there now and were not in `before`. */
export function removeNewExports(before: Set<string>, dirs: string[]): RemovedExport[] {
  const removed: RemovedExport[] = [];
  for (const file of listExports(dirs)) {
    if (before.has(file)) continue;
    const bytes = fs.statSync(file).size;
    fs.rmSync(file, { force: true });
    removed.push({ file, bytes });
  }
  return removed;
}
