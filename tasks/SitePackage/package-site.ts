/**
 * The work of SitePackage: zip the site for a slot deployment, leaving out what does not belong
 * (node_modules, .git), and refuse to package a SQLite database that would not open cleanly on
 * the other side: one that fails integrity_check, or has a -journal or -wal beside it (a copy
 * taken mid-write, whose committed state is not all in the main file).
 */
import { createZip, type CreateZipResult } from '../../lib/archive';
import { SqliteFileError, startsLikeSqlite, verifySqliteFile, type SqliteFileReport } from '../../lib/sqlite/verify';
import type { Log } from '../../lib/log';

export interface PackageRequest {
  rootFolder: string;
  exclude: string[];
  archiveFile: string;
  verifySqlite: boolean;
}

export interface PackageResult extends CreateZipResult {
  databases: Array<SqliteFileReport & { name: string }>;
  seconds: number;
}

export async function packageSite(request: PackageRequest, log: Log): Promise<PackageResult> {
  const started = Date.now();
  const databases: PackageResult['databases'] = [];
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
  return { ...zip, databases, seconds: (Date.now() - started) / 1000 };
}

/** The markdown summary attached to the run. */
export function renderSummary(result: PackageResult, artifactName: string | undefined): string {
  const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  const lines = [
    '### Site package',
    '',
    '| | |',
    '|---|---|',
    `| Archive | \`${result.output}\` |`,
    `| Files | ${result.files} (${result.entries} entries with folders) |`,
    `| Bytes in | ${mib(result.bytesIn)} |`,
    `| Bytes out | ${mib(result.bytesOut)} |`,
    `| SHA-256 | \`${result.sha256}\` |`,
    `| Time | ${result.seconds.toFixed(1)} s |`,
    `| Published as | ${artifactName ? `artifact \`${artifactName}\`` : 'not published'} |`,
    '',
  ];
  if (result.excluded.length) {
    lines.push('Excluded:', '', ...result.excluded.slice(0, 50).map((e) => `- \`${e}\``));
    if (result.excluded.length > 50) lines.push(`- … and ${result.excluded.length - 50} more`);
    lines.push('');
  }
  if (result.databases.length) {
    lines.push('SQLite databases (integrity_check ok):', '', ...result.databases.map((d) => `- \`${d.name}\`: ${d.tables} tables, ${mib(d.bytes)}, ${d.journal} journal`), '');
  }
  return lines.join('\n');
}
