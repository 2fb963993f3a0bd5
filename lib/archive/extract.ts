import * as fs from 'node:fs';
import * as path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import type * as yauzl from 'yauzl';
import { ArchiveError, describe, errnoCode } from './errors';
import { corrupt, entryMtime, isDirectoryName, openZip, readEntries, type OpenZip, type RawEntry } from './read';

export interface ExtractZipOptions {
  zipFile: string;
  /** Created if missing; must be empty or missing (stage into a fresh folder, then move it into place). */
  destination: string;
  /** Called before each file is written. */
  onEntry?: (e: { name: string; size: number }) => void;
}

export interface ExtractZipResult {
  files: number;
  directories: number;
  /** Bytes of file content written. */
  bytes: number;
  /** Relative names of the files written, forward slashes, in archive order. */
  entries: string[];
}

interface SafeEntry {
  entry: yauzl.Entry;
  /** Forward slashes, no trailing slash. */
  name: string;
  segments: string[];
  isDirectory: boolean;
}

// Large files written at once: enough to overlap their I/O, few enough to keep memory small.
const CONCURRENCY = 4;
// Entries up to this size (compressed and not) are read, inflated and written synchronously:
// through streams and the thread pool each small file cost about ten round trips, and
// extracting 20,000 small files took 8.7 s, most of it futex and eventfd system calls.
const SMALL_ENTRY = 1 << 20;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const WINDOWS_FORBIDDEN = /[<>:"|?*\x01-\x1f]/;

/**
 * Why an entry name is unsafe to extract, or null when it is safe. Backslashes count as
 * separators (archives made on Windows use them), so "..\\x" is caught like "../x".
 *
 * @example
 * unsafeNameReason('../evil');       // 'it climbs out of the destination with ".."'
 * unsafeNameReason('content/a.png'); // null
 */
export function unsafeNameReason(name: string, platform: NodeJS.Platform = process.platform): string | null {
  if (name.length === 0) return 'it is empty';
  if (name.includes('\0')) return 'it contains a NUL byte';
  if (/^[\\/]{2}/.test(name)) return 'it is a UNC (network) path';
  if (/^[\\/]/.test(name)) return 'it is an absolute path';
  if (/^[a-zA-Z]:/.test(name)) return 'it starts with a drive letter';
  const segments = name.split(/[\\/]+/).filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) return 'it climbs out of the destination with ".."';
  if (segments.length === 0) return 'it names no file';
  if (platform === 'win32' && segments.some((s) => WINDOWS_FORBIDDEN.test(s))) return 'it contains a character Windows does not allow in file names (such as ":", which would write an alternate data stream)';
  return null;
}

function isSymlink(entry: yauzl.Entry): boolean {
  const mode = entry.externalFileAttributes >>> 16;
  return (mode & S_IFMT) === S_IFLNK;
}

/** Checks every name in the central directory before anything is written. */
function vet(raw: RawEntry[], zipFile: string): SafeEntry[] {
  const seen = new Map<string, string>();
  const out: SafeEntry[] = [];
  for (const { entry, name } of raw) {
    const unsafe = (why: string, advice: string) =>
      new ArchiveError('UNSAFE_ENTRY', `Refusing to extract ${zipFile}: entry ${JSON.stringify(name)} is unsafe (${why}). Nothing was extracted. ${advice}`);
    const reason = unsafeNameReason(name);
    if (reason) throw unsafe(reason, 'Such a name could write outside the destination folder; re-create the archive from a plain folder, and do not trust where this one came from.');
    // Symbolic links are refused outright: a link inside the destination can be followed by a
    // later entry to write anywhere, and a site package has no need for them.
    if (isSymlink(entry)) throw unsafe('it is a symbolic link, and symbolic links are not extracted', 'Re-create the archive with the files the links point to (zip without -y, or createZip).');
    if (entry.isEncrypted()) {
      throw new ArchiveError('UNSUPPORTED_ENTRY', `Cannot extract ${zipFile}: entry "${name}" is encrypted. Use an archive made without a password.`);
    }
    const isDirectory = isDirectoryName(name);
    if (!isDirectory && entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
      throw new ArchiveError('UNSUPPORTED_ENTRY', `Cannot extract ${zipFile}: entry "${name}" uses compression method ${entry.compressionMethod}; only stored (0) and deflated (8) entries are supported. Re-create the archive with standard zip settings.`);
    }
    const segments = name.split(/[\\/]+/).filter((s) => s !== '' && s !== '.');
    const clean = segments.join('/');
    // Two names that differ only by case are one file on Windows and macOS: the second would
    // silently replace the first, so the archive is refused instead.
    const key = clean.normalize('NFC').toLowerCase() + (isDirectory ? '/' : '');
    const other = seen.get(key);
    if (other !== undefined) {
      const what = other === name ? 'appears twice' : `differs only by letter case from "${other}"`;
      throw unsafe(`it ${what}, so one would overwrite the other`, 'Rename or remove one of them so the archive extracts the same on every file system.');
    }
    seen.set(key, name);
    out.push({ entry, name: clean, segments, isDirectory });
  }
  return out;
}

/**
 * Extracts a zip safely into a folder, streaming each entry to disk (bounded memory).
 *
 * Every name is checked before anything is written: absolute paths, drive letters, UNC paths,
 * ".." segments (either slash), NUL bytes, symbolic links and names that differ only by case fail
 * the whole extraction with an error naming the entry. Sizes and CRC-32 are verified; a corrupt
 * or truncated archive fails with an error saying so. File and folder modification times are
 * kept. On failure whatever was extracted is removed, leaving the destination as it was.
 *
 * @example
 * const { files, bytes } = await extractZip({
 *   zipFile: 'download/site.zip',
 *   destination: 'staging/site',   // new or empty
 *   onEntry: (e) => console.log(e.name, e.size),
 * });
 */
export async function extractZip(options: ExtractZipOptions): Promise<ExtractZipResult> {
  const zipFile = path.resolve(options.zipFile);
  const destination = path.resolve(options.destination);

  const opened = await openZip(zipFile);
  const { zip } = opened;
  let created = false;
  try {
    const entries = vet(await readEntries(zip, zipFile), zipFile);
    created = await prepareDestination(destination, zipFile);
    const destReal = await fs.promises.realpath(destination);
    try {
      return await extractAll(opened, zipFile, entries, destReal, options.onEntry);
    } catch (err) {
      await undo(destination, created);
      throw err;
    }
  } finally {
    zip.close();
  }
}

/** Makes sure destination exists and is empty; says whether it had to be created. */
async function prepareDestination(destination: string, zipFile: string): Promise<boolean> {
  try {
    const names = await fs.promises.readdir(destination);
    if (names.length > 0) {
      throw new ArchiveError('DESTINATION_NOT_EMPTY', `Cannot extract ${zipFile} into ${destination}: the folder is not empty (it has ${names.length} item(s), e.g. "${names[0]}"). Extract into a new folder and move it into place.`);
    }
    return false;
  } catch (err) {
    if (err instanceof ArchiveError) throw err;
    if (errnoCode(err) === 'ENOTDIR') {
      throw new ArchiveError('DESTINATION_NOT_EMPTY', `Cannot extract ${zipFile} into ${destination}: it is a file, not a folder. Give a new or empty folder.`, { cause: err });
    }
    if (errnoCode(err) !== 'ENOENT') {
      throw new ArchiveError('EXTRACT_FAILED', `Cannot extract ${zipFile} into ${destination} (${describe(err)}).`, { cause: err });
    }
  }
  try {
    await fs.promises.mkdir(destination, { recursive: true });
  } catch (err) {
    throw new ArchiveError('EXTRACT_FAILED', `Cannot create ${destination} to extract ${zipFile} into (${describe(err)}).`, { cause: err });
  }
  return true;
}

/** Removes what a failed extraction wrote; destination was empty or missing when it started. */
async function undo(destination: string, created: boolean): Promise<void> {
  try {
    if (created) {
      await fs.promises.rm(destination, { recursive: true, force: true });
    } else {
      for (const name of await fs.promises.readdir(destination)) {
        await fs.promises.rm(path.join(destination, name), { recursive: true, force: true });
      }
    }
  } catch {
    // Best effort: the original error matters more than a failed clean-up.
  }
}

async function extractAll(
  { zip, reader }: OpenZip,
  zipFile: string,
  entries: SafeEntry[],
  destReal: string,
  onEntry: ExtractZipOptions['onEntry'],
): Promise<ExtractZipResult> {
  const result: ExtractZipResult = { files: 0, directories: 0, bytes: 0, entries: [] };
  const made = new Set<string>([destReal]);
  const directories: Array<{ target: string; mtime: Date }> = [];

  const prefix = destReal.endsWith(path.sep) ? destReal : destReal + path.sep;
  const target = (e: SafeEntry): string => {
    const t = path.join(destReal, ...e.segments);
    // vet() already refused anything that could leave destination; this guards against a gap in it.
    if (!t.startsWith(prefix)) {
      throw new ArchiveError('UNSAFE_ENTRY', `Refusing to extract ${zipFile}: entry "${e.name}" would be written outside ${destReal}.`);
    }
    return t;
  };
  const mkdirp = async (dir: string, e: SafeEntry) => {
    if (made.has(dir)) return;
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (err) {
      const hint = errnoCode(err) === 'EEXIST' || errnoCode(err) === 'ENOTDIR' ? ' (a file in the archive has the same name as this folder)' : '';
      throw new ArchiveError('EXTRACT_FAILED', `Cannot extract "${e.name}" from ${zipFile}: cannot create folder ${dir}${hint} (${describe(err)}).`, { cause: err });
    }
    for (let d = dir; d.length > destReal.length && !made.has(d); d = path.dirname(d)) made.add(d);
  };

  const modeOf = (e: SafeEntry) => {
    const unixMode = e.entry.externalFileAttributes >>> 16;
    return (unixMode & S_IFMT) === 0o100000 ? (unixMode & 0o777) | 0o600 : 0o644;
  };
  const writeFailed = (e: SafeEntry, file: string, err: unknown) =>
    new ArchiveError('EXTRACT_FAILED', `Cannot extract "${e.name}" from ${zipFile} to ${file} (${describe(err)}). Check free space and permissions.`, { cause: err });
  const checkCrc = (e: SafeEntry, crc: number) => {
    if (crc !== e.entry.crc32) {
      throw corrupt(zipFile, `entry "${e.name}" fails its CRC-32 check: expected ${hex(e.entry.crc32)}, got ${hex(crc)}`);
    }
  };

  /** Small entries: the whole entry in memory, no streams, no thread pool. */
  const extractSmall = async (e: SafeEntry, file: string) => {
    const { entry } = e;
    let data: Buffer;
    try {
      // yauzl finds the data (and checks it lies within the file); the read itself is ours.
      const { fileDataStart } = await zip.readLocalFileHeaderPromise(entry, { minimal: true });
      const raw = Buffer.allocUnsafe(entry.compressedSize);
      if (reader.readSync(raw, 0, raw.length, fileDataStart) !== raw.length) throw new Error('unexpected end of file');
      // maxOutputLength stops a "small" entry that inflates to far more than it declares.
      data = entry.compressionMethod === 0 ? raw : zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
    } catch (err) {
      throw corrupt(zipFile, `entry "${e.name}": ${describe(err)}`, err);
    }
    if (data.length !== entry.uncompressedSize) {
      throw corrupt(zipFile, `entry "${e.name}" holds ${data.length} bytes, but the archive says ${entry.uncompressedSize}`);
    }
    checkCrc(e, zlib.crc32(data));
    try {
      // 'wx': never open something that already exists (such as a link planted by a racing process).
      fs.writeFileSync(file, data, { flag: 'wx', mode: modeOf(e) });
    } catch (err) {
      throw writeFailed(e, file, err);
    }
    return data.length;
  };

  const extractLarge = async (e: SafeEntry, file: string) => {
    let crc = 0;
    let bytes = 0;
    const check = new Transform({
      transform(chunk: Buffer, _enc, done) {
        crc = zlib.crc32(chunk, crc);
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    // Whether a failure came from the archive (corrupt) or from the disk we write to.
    let fromArchive = true;
    try {
      const input = await zip.openReadStreamPromise(e.entry);
      fromArchive = false;
      input.once('error', () => (fromArchive = true));
      await pipeline(input, check, fs.createWriteStream(file, { flags: 'wx', mode: modeOf(e) }));
    } catch (err) {
      if (fromArchive) throw corrupt(zipFile, `entry "${e.name}": ${describe(err)}`, err);
      throw writeFailed(e, file, err);
    }
    checkCrc(e, crc);
    return bytes;
  };

  const extractFile = async (e: SafeEntry) => {
    const file = target(e);
    await mkdirp(path.dirname(file), e);
    onEntry?.({ name: e.name, size: e.entry.uncompressedSize });
    const small = e.entry.compressedSize <= SMALL_ENTRY && e.entry.uncompressedSize <= SMALL_ENTRY;
    const bytes = small ? await extractSmall(e, file) : await extractLarge(e, file);
    const mtime = entryMtime(e.entry);
    fs.utimesSync(file, mtime, mtime);
    result.files++;
    result.bytes += bytes;
  };

  // Files are written a few at a time; results are kept in archive order.
  const names: Array<string | undefined> = new Array(entries.length);
  let next = 0;
  let failed: unknown = null;
  const worker = async () => {
    while (failed === null && next < entries.length) {
      const i = next++;
      const e = entries[i];
      try {
        if (e.isDirectory) {
          const dir = target(e);
          await mkdirp(dir, e);
          directories.push({ target: dir, mtime: entryMtime(e.entry) });
          result.directories++;
        } else {
          await extractFile(e);
          names[i] = e.name;
        }
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  if (failed !== null) throw failed;

  // After the files: writing a file into a folder changes the folder's time.
  for (const d of directories) await fs.promises.utimes(d.target, d.mtime, d.mtime);
  result.entries = names.filter((n): n is string => n !== undefined);
  return result;
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}
