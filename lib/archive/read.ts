// Opening a zip and reading its central directory with yauzl, with yauzl's terse messages turned
// into errors that say which archive is broken and what to do about it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as yauzl from 'yauzl';
import { ArchiveError, describe, errnoCode } from './errors';

export interface ZipListing {
  name: string;
  size: number;
  compressedSize: number;
  isDirectory: boolean;
  mtime: Date;
}

/** A central-directory entry with its name decoded but not yet judged safe. */
export interface RawEntry {
  entry: yauzl.Entry;
  /** As stored (UTF-8 or CP437 decoded), backslashes kept, so validation sees what the archive says. */
  name: string;
}

export function corrupt(zipFile: string, detail: string, cause?: unknown): ArchiveError {
  return new ArchiveError(
    'CORRUPT_ARCHIVE',
    `${zipFile} is incomplete or corrupt (${detail}). If it was downloaded or copied, the transfer may have been cut off: run again to fetch it anew.`,
    { cause },
  );
}

/** Opens a zip for reading entries one at a time; the caller closes it. */
export async function openZip(zipFile: string): Promise<yauzl.ZipFile> {
  const file = path.resolve(zipFile);
  try {
    const stats = await fs.promises.stat(file);
    if (!stats.isFile()) throw new ArchiveError('ZIP_MISSING', `${file} is not a file; expected a zip archive.`);
  } catch (err) {
    if (err instanceof ArchiveError) throw err;
    if (errnoCode(err) === 'ENOENT') throw new ArchiveError('ZIP_MISSING', `Zip file ${file} does not exist. Check the path, and that the step that should produce it ran.`, { cause: err });
    throw new ArchiveError('ZIP_MISSING', `Cannot read zip file ${file} (${describe(err)}).`, { cause: err });
  }
  try {
    // decodeStrings: false, so that unsafe names reach our own checks (which name the entry and
    // say why) instead of failing inside yauzl with a bare message.
    return await yauzl.openPromise(file, { decodeStrings: false, validateEntrySizes: true, autoClose: false });
  } catch (err) {
    if (errnoCode(err)) throw new ArchiveError('ZIP_MISSING', `Cannot read zip file ${file} (${describe(err)}).`, { cause: err });
    throw corrupt(file, describe(err), err);
  }
}

/** Reads the whole central directory (entries only, no file data). */
export async function readEntries(zip: yauzl.ZipFile, zipFile: string): Promise<RawEntry[]> {
  const out: RawEntry[] = [];
  try {
    for await (const entry of zip.eachEntry()) {
      const raw = entry.fileName as unknown as Buffer;
      const name = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, raw, entry.extraFields, true);
      out.push({ entry, name });
    }
  } catch (err) {
    throw corrupt(path.resolve(zipFile), describe(err), err);
  }
  return out;
}

export function isDirectoryName(name: string): boolean {
  return name.endsWith('/') || name.endsWith('\\');
}

export function entryMtime(entry: yauzl.Entry): Date {
  return entry.getLastModDate();
}

/**
 * Lists a zip's entries without extracting anything.
 *
 * @example
 * for (const e of await listZip('drop/site.zip')) {
 *   if (!e.isDirectory) console.log(e.name, e.size, e.compressedSize, e.mtime.toISOString());
 * }
 */
export async function listZip(zipFile: string): Promise<ZipListing[]> {
  const zip = await openZip(zipFile);
  try {
    const entries = await readEntries(zip, zipFile);
    return entries.map(({ entry, name }) => ({
      name: name.replace(/\\/g, '/'),
      size: entry.uncompressedSize,
      compressedSize: entry.compressedSize,
      isDirectory: isDirectoryName(name),
      mtime: entryMtime(entry),
    }));
  } finally {
    zip.close();
  }
}
