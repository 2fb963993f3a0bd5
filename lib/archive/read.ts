// Opening a zip and reading its central directory with yauzl, with yauzl's terse messages turned
// into errors that say which archive is broken and what to do about it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
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

// Reads for yauzl. yauzl's own file reader sends every read through the thread pool; reading a
// central directory record then costs two round trips, which on 20,000 entries was 1.5 s of
// futex and eventfd traffic. Small reads (records, local headers, small entries) come from a
// cached block read synchronously; entry data is streamed from the file as usual.
const BLOCK = 64 << 10;

export class FileReader extends yauzl.RandomAccessReader {
  private readonly block = Buffer.allocUnsafe(BLOCK);
  private blockStart = 0;
  private blockLength = 0;

  constructor(
    readonly fd: number,
    readonly size: number,
  ) {
    super();
  }

  override _readStreamForRange(start: number, end: number): Readable {
    // Not fs.createReadStream({ fd }): destroying it closes the fd even with autoClose: false,
    // and yauzl destroys each entry's stream when it is done.
    const fd = this.fd;
    let position = start;
    return new Readable({
      highWaterMark: 1 << 20,
      read(size) {
        const length = Math.min(Math.max(size, 64 << 10), end - position);
        if (length <= 0) {
          this.push(null);
          return;
        }
        const chunk = Buffer.allocUnsafe(length);
        fs.read(fd, chunk, 0, length, position, (err, bytesRead) => {
          if (err) return this.destroy(err);
          if (bytesRead === 0) return this.push(null); // yauzl reports the missing bytes
          position += bytesRead;
          this.push(bytesRead === length ? chunk : chunk.subarray(0, bytesRead));
        });
      },
    });
  }

  override read(buffer: Buffer, offset: number, length: number, position: number, callback: (err: Error | null, bytesRead?: number) => void): void {
    let n: number;
    try {
      n = this.readSync(buffer, offset, length, position);
    } catch (err) {
      process.nextTick(callback, err as Error);
      return;
    }
    process.nextTick(callback, null, n);
  }

  /** Like fs.readSync; returns fewer bytes only at the end of the file. */
  readSync(buffer: Buffer, offset: number, length: number, position: number): number {
    if (length > BLOCK / 4) return fs.readSync(this.fd, buffer, offset, length, position);
    const inBlock = position >= this.blockStart && position + length <= this.blockStart + this.blockLength;
    if (!inBlock) {
      this.blockStart = position;
      this.blockLength = fs.readSync(this.fd, this.block, 0, BLOCK, position);
    }
    const from = position - this.blockStart;
    const n = Math.max(0, Math.min(length, this.blockLength - from));
    this.block.copy(buffer, offset, from, from + n);
    return n;
  }

  override close(callback: (err: Error | null) => void): void {
    fs.close(this.fd, (err) => callback(err ?? null));
  }
}

export interface OpenZip {
  zip: yauzl.ZipFile;
  reader: FileReader;
}

/** Opens a zip for reading entries one at a time; the caller closes `zip`. */
export async function openZip(zipFile: string): Promise<OpenZip> {
  const file = path.resolve(zipFile);
  let fd: number;
  let size: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new ArchiveError('ZIP_MISSING', `Zip file ${file} does not exist. Check the path, and that the step that should produce it ran.`, { cause: err });
    throw new ArchiveError('ZIP_MISSING', `Cannot read zip file ${file} (${describe(err)}).`, { cause: err });
  }
  try {
    const stats = fs.fstatSync(fd);
    if (!stats.isFile()) throw new ArchiveError('ZIP_MISSING', `${file} is not a file; expected a zip archive.`);
    size = stats.size;
  } catch (err) {
    fs.closeSync(fd);
    if (err instanceof ArchiveError) throw err;
    throw new ArchiveError('ZIP_MISSING', `Cannot read zip file ${file} (${describe(err)}).`, { cause: err });
  }
  const reader = new FileReader(fd, size);
  try {
    // decodeStrings: false, so that unsafe names reach our own checks (which name the entry and
    // say why) instead of failing inside yauzl with a bare message.
    const zip = await yauzl.fromRandomAccessReaderPromise(reader, size, { decodeStrings: false, validateEntrySizes: true, autoClose: false });
    return { zip, reader };
  } catch (err) {
    fs.closeSync(fd);
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
  const { zip } = await openZip(zipFile);
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
