/**
 * The work of SitePackage: zip the site for a slot deployment, leaving out what does not belong
 * (node_modules, .git), and refuse to package a SQLite database that would not open cleanly on
 * the other side: one that fails integrity_check, or has a -journal or -wal beside it (a copy
 * taken mid-write, whose committed state is not all in the main file).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createZip, type CreateZipResult } from '../../lib/archive';
import { writeFileAtomic } from '../../lib/fs';
import { formatBytes, listSome } from '../../lib/format';
import { MANIFEST_FORMAT, parseManifest } from '../../lib/sqlite/manifest';
import { SqliteFileError, startsLikeSqlite, verifySqliteFile, type SqliteFileReport } from '../../lib/sqlite/verify';
import type { Log } from '../../lib/log';
import { code, markdownList, markdownTable } from '../../lib/task/summary';
import { windowsNameProblems, WWWROOT } from './windows-names';

export interface PackageRequest {
  rootFolder: string;
  exclude: string[];
  archiveFile: string;
  verifySqlite: boolean;
}

export interface PackageResult extends CreateZipResult {
  databases: Array<SqliteFileReport & { name: string }>;
  seconds: number;
  /** Entries whose path on a Windows worker is over MAX_PATH (a warning, not a failure). */
  longPaths: string[];
}

export async function packageSite(request: PackageRequest, log: Log): Promise<PackageResult> {
  const started = Date.now();
  const databases: PackageResult['databases'] = [];
  const longPaths: string[] = [];
  let lastProgress = Date.now();
  const zip = await createZip({
    root: request.rootFolder,
    output: request.archiveFile,
    exclude: request.exclude,
    onProgress: ({ files, bytesIn }) => {
      if (Date.now() - lastProgress < 10_000) return;
      lastProgress = Date.now();
      log.info(`  ${files} files, ${(bytesIn / 1048576).toFixed(0)} MiB so far`);
    },
    check: (files) => {
      longPaths.push(...checkWindowsNames(files.map((f) => f.name), request.archiveFile, log));
      if (!request.verifySqlite) return;
      for (const file of files) {
        if (file.size < 16 || !startsLikeSqlite(file.absolute)) continue;
        try {
          databases.push({ name: file.name, ...verifySqliteFile(file.absolute) });
        } catch (err) {
          if (err instanceof SqliteFileError) {
            throw new Error(`Not packaging ${file.name}: ${err.message} Nothing was written to ${request.archiveFile}.`);
          }
          throw err;
        }
        log.info(`SQLite database ${file.name}: integrity_check ok, ${databases[databases.length - 1].tables} tables.`);
      }
    },
  });
  return { ...zip, databases, longPaths, seconds: (Date.now() - started) / 1000 };
}

/**
 * Refuses names App Service on Windows cannot deploy (before anything is written), and warns of
 * paths too long for tools there that do not use long paths. Returns those.
 */
function checkWindowsNames(names: string[], archiveFile: string, log: Log): string[] {
  const { forbidden, caseCollisions, tooLong } = windowsNameProblems(names);
  const refused = [
    ...forbidden.map((f) => `"${f.name}": ${f.why}`),
    ...caseCollisions.map(([a, b]) => `"${a}" and "${b}" differ only by case, and Windows keeps one of them`),
  ];
  if (refused.length) {
    throw new Error(
      `Not packaging: ${refused.length} name(s) App Service on Windows cannot create: ${listSome(refused, 5)}. ` +
        `Rename them, or add them to exclude (on App Service on Linux they would work). Nothing was written to ${archiveFile}.`,
    );
  }
  if (tooLong.length) {
    const longest = tooLong.reduce((a, b) => (b.length > a.length ? b : a));
    log.warn(
      `${tooLong.length} file(s) would have a path over 259 characters under ${WWWROOT}, such as "${longest.name}" (${longest.length}): ` +
        `Windows tools on the worker that do not use long paths cannot open them. Shorten the names or folders if the deployment fails.`,
    );
  }
  return tooLong.map((t) => t.name);
}

/** The section on the run page: what went in, what came out, what was left out. */
export function renderSummary(result: PackageResult, published: { artifactName?: string; manifest?: string }): string[] {
  const table = markdownTable([
    ['Archive', code(result.output)],
    ['Files', `${result.files} (${result.entries} entries with folders)`],
    ['Bytes in', formatBytes(result.bytesIn)],
    ['Bytes out', formatBytes(result.bytesOut)],
    ['SHA-256', code(result.sha256)],
    ['Time', `${result.seconds.toFixed(1)} s`],
    ['Published as', published.artifactName ? `artifact ${code(published.artifactName)}` : 'not published'],
    ['Backup manifest', published.manifest ? `${code(published.manifest)} beside the zip` : undefined],
  ]);
  const blocks = [table];
  if (result.databases.length) {
    blocks.push('SQLite databases (integrity_check ok):', markdownList(result.databases.map((d) => `${code(d.name)}: ${d.tables} tables, ${formatBytes(d.bytes)}, ${d.journal} journal`)));
  }
  if (result.excluded.length) blocks.push('Excluded:', markdownList(result.excluded.map((e) => code(e))));
  if (result.longPaths.length) blocks.push('Paths over 259 characters on a Windows worker:', markdownList(result.longPaths.map((e) => code(e)), 10));
  return blocks;
}

/** The backup's manifest, checked before anything is packaged: its text, to go beside the zip. */
export function readBackupManifest(manifestFile: string): string {
  let text: string;
  try {
    text = fs.readFileSync(manifestFile, 'utf8');
  } catch (err) {
    throw new Error(
      `backupManifest ${manifestFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Give the manifest of the backup this package carries, such as $(download.backupManifest).`,
      { cause: err },
    );
  }
  if (!parseManifest(text, manifestFile)) {
    throw new Error(`backupManifest ${manifestFile} is not a backup manifest (the JSON the backup job writes beside backup.db, with "format": "${MANIFEST_FORMAT}").`);
  }
  return text;
}

/**
 * Writes the manifest beside the zip under its own name (`backup.db.json`), so that it travels
 * in the artifact without being deployed into the site. Returns that copy.
 */
export function placeBesideArchive(manifestFile: string, text: string, archiveFile: string): string {
  const copy = path.join(path.dirname(archiveFile), path.basename(manifestFile));
  if (path.resolve(copy) !== path.resolve(manifestFile)) writeFileAtomic(copy, text);
  return copy;
}
