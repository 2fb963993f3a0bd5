import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import { Transform } from 'node:stream';
import { promisify } from 'node:util';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { isAlreadyCompressed } from './compressible';
import { ArchiveError, describe, errnoCode } from './errors';
import { centralHeader, dataDescriptor, endOfCentralDirectory, localHeader, MAX_32, METHOD_DEFLATED, METHOD_STORED, type EntryRecord } from './format';
import { Ring } from './ring';
import { walk, type WalkEntry } from './walk';

export interface CreateZipOptions {
  /** Folder to archive; entry names are relative to it, with forward slashes. */
  root: string;
  /** Zip to write. Written to a temp file beside it and renamed into place only when complete. */
  output: string;
  /** Globs relative to root, e.g. ['node_modules/**', '.git/**']; an excluded folder is not descended into. */
  exclude?: string[];
  /** Called as files are written, at most about ten times a second, and once at the end. */
  onProgress?: (p: { files: number; bytesIn: number }) => void;
  /**
   * Sees what will be archived before anything is written; throwing stops the run with nothing
   * written (SitePackage checks the SQLite databases it is about to package here).
   */
  check?: (files: ReadonlyArray<{ name: string; absolute: string; size: number }>) => void | Promise<void>;
}

export interface CreateZipResult {
  /** Absolute path of the archive. */
  output: string;
  /** Files plus folders in the archive. */
  entries: number;
  files: number;
  /** Bytes of file content read. */
  bytesIn: number;
  /** Size of the archive. */
  bytesOut: number;
  /** SHA-256 of the archive, hex. */
  sha256: string;
  /** Paths the exclude globs removed, top-most only, relative to root. */
  excluded: string[];
}

// How it is fast with bounded memory: entries are written strictly in order, but the files after
// the one being written are already being read and deflated, each on its own libuv thread-pool
// job, within a window of WINDOW bytes of file content. A file leaves the window once written.
// Files too large to buffer whole are streamed (read, CRC-32, deflate, write) when their turn
// comes, while the files after them are prepared meanwhile. CRC-32 is zlib's native one.
// (yazl writes one entry at a time and computes CRC-32 in JavaScript, which left this 1.8x
// faster than `zip -r`; its addBuffer() deflates in parallel but keeps every buffer alive until
// the archive ends, so memory grew with the archive.)

/** Files up to this size are read whole and deflated ahead; larger ones are streamed in their turn. */
const BUFFER_LIMIT = 4 << 20;
/** Bytes of file content read ahead and not yet written (the ring's size). */
const WINDOW = 32 << 20;
/** Entries prepared ahead at most. */
const READ_AHEAD = 32;
const DEFLATE_LEVEL = 6;
/** A streamed file this big might pass 4 GiB once deflated, so its local header gets a Zip64 field. */
const STREAM_ZIP64_FROM = 0xf0000000;

/** For tests only: write every Zip64 structure even for a small archive. */
export const testing = { forceZip64: false };

/**
 * Streams a folder into a zip file with bounded memory, whatever the size.
 *
 * Already-compressed formats (see isAlreadyCompressed) are stored, the rest deflated at level 6.
 * Modification times and modes are kept; every folder gets its own "dir/" entry, so empty folders
 * survive. A symbolic link inside root is archived as what it points to; one that points outside
 * root, is broken or loops fails the run (exclude it if it should not be packaged). Zip64 is used
 * when the archive needs it (over 4 GiB, or 65,535 entries). On any error nothing is left at
 * `output`: a previous archive there is untouched and the temp file is removed.
 *
 * @example
 * const zip = await createZip({
 *   root: 'site',
 *   output: 'drop/site.zip',
 *   exclude: ['node_modules/**', '.git/**'],
 *   onProgress: (p) => console.log(`${p.files} files, ${p.bytesIn} bytes`),
 * });
 * console.log(zip.sha256, zip.bytesOut);
 */
export async function createZip(options: CreateZipOptions): Promise<CreateZipResult> {
  const root = path.resolve(options.root);
  const output = path.resolve(options.output);
  const outputDir = path.dirname(output);
  const base = path.basename(output);

  let rootStats: fs.Stats;
  try {
    rootStats = await fs.promises.stat(root);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      throw new ArchiveError('ROOT_MISSING', `Cannot create ${output}: the folder to archive, ${root}, does not exist. Check the path (relative paths are resolved against ${process.cwd()}).`, { cause: err });
    }
    throw new ArchiveError('UNREADABLE', `Cannot create ${output}: cannot read the folder to archive, ${root} (${describe(err)}).`, { cause: err });
  }
  if (!rootStats.isDirectory()) {
    throw new ArchiveError('ROOT_NOT_A_FOLDER', `Cannot create ${output}: ${root} is a file, not a folder. Give the folder that contains it as root.`);
  }

  // The archive may live inside root; it and its temp files must never be archived. Comparing
  // device and inode also catches the archive reached through a link.
  const previous = await fs.promises.stat(output).catch(() => null);
  const outputDirReal = await fs.promises.realpath(outputDir).catch(() => null);
  const tempPattern = new RegExp(`^\\.${escapeRegExp(base)}\\.[0-9a-f]+\\.tmp$`);
  const isOwnOutput = (absolute: string, stats: fs.Stats): boolean => {
    if (previous && stats.dev === previous.dev && stats.ino === previous.ino) return true;
    if (!tempPattern.test(path.basename(absolute))) return false;
    return path.dirname(absolute) === outputDir || path.dirname(absolute) === outputDirReal;
  };

  const { entries, files, excluded } = walk({ root, exclude: options.exclude ?? [], isOwnOutput });
  if (files === 0) {
    const why = excluded.length > 0 ? ` after excluding ${excluded.slice(0, 5).join(', ')}${excluded.length > 5 ? ', …' : ''}` : '';
    throw new ArchiveError('NOTHING_TO_ARCHIVE', `Cannot create ${output}: there are no files to archive in ${root}${why}. Check root and the exclude patterns.`);
  }

  await options.check?.(entries.filter((e) => !e.isDirectory));

  try {
    await fs.promises.mkdir(outputDir, { recursive: true });
  } catch (err) {
    throw new ArchiveError('WRITE_FAILED', `Cannot create the folder for ${output} (${describe(err)}).`, { cause: err });
  }

  const temp = path.join(outputDir, `.${base}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  try {
    const written = await writeArchive(entries, temp, root, options.onProgress);
    await fs.promises.rename(temp, output);
    return { output, entries: entries.length, files, excluded, ...written };
  } catch (err) {
    await fs.promises.rm(temp, { force: true }).catch(() => undefined);
    if (err instanceof ArchiveError) throw err;
    throw new ArchiveError('WRITE_FAILED', `Cannot write ${output} (${describe(err)}). Check there is free space in ${outputDir} and that it is writable.`, { cause: err });
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The archive file, with SHA-256 and size computed on the bytes as they go to disk. */
class Output {
  private readonly file: fs.WriteStream;
  private readonly hash = crypto.createHash('sha256');
  private failure: Error | null = null;
  bytes = 0;

  constructor(file: string) {
    // flush: fsync before close, so "renamed into place" also means "on disk".
    this.file = fs.createWriteStream(file, { flags: 'wx', flush: true, highWaterMark: 1 << 20 });
    this.file.on('error', (err) => (this.failure ??= err));
  }

  /** onWritten: called once the chunk is on its way to disk and its memory may be reused. */
  async write(chunk: Buffer, onWritten?: () => void): Promise<void> {
    if (this.failure) throw this.failure;
    this.hash.update(chunk);
    this.bytes += chunk.length;
    if (!this.file.write(chunk, onWritten)) await once(this.file, 'drain'); // rejects on 'error'
  }

  async finish(): Promise<string> {
    if (this.failure) throw this.failure;
    const closed = once(this.file, 'close');
    this.file.end();
    await closed;
    if (this.failure) throw this.failure;
    return this.hash.digest('hex');
  }

  async abandon(): Promise<void> {
    if (this.file.closed) return;
    const closed = once(this.file, 'close').catch(() => undefined);
    this.file.destroy();
    await closed;
  }
}

interface Prepared {
  data: Buffer;
  crc: number;
  size: number;
  method: number;
  /** The raw bytes sit in the ring; free it once `data` is written. */
  inRing: boolean;
}

/** Files up to this size are deflated on the main thread: a thread-pool round trip costs more. */
const SYNC_DEFLATE_LIMIT = 8 << 10;

function deflateOptions(size: number): zlib.ZlibOptions {
  return {
    level: DEFLATE_LEVEL,
    // Output chunks sized to the input: zlib's 16 KiB default means many thread-pool round trips
    // for large files, and a large fixed size means a large allocation for every small one.
    chunkSize: Math.min(Math.max(size + 64, 1024), 256 << 10),
    // A window just big enough for the input finds the same matches and is much cheaper to set
    // up, which is most of the cost for small files.
    windowBits: Math.min(Math.max(Math.ceil(Math.log2(size + 262)), 9), 15),
  };
}

function deflate(data: Buffer): Promise<Buffer> {
  if (data.length <= SYNC_DEFLATE_LIMIT) return Promise.resolve(zlib.deflateRawSync(data, deflateOptions(data.length)));
  return new Promise((resolve, reject) => zlib.deflateRaw(data, deflateOptions(data.length), (err, out) => (err ? reject(err) : resolve(out))));
}

/** Files up to this size are read synchronously: for a file in the page cache that costs less
 * main-thread time than dispatching open, fstat, read and close to the thread pool. */
const SYNC_READ_LIMIT = 64 << 10;

const openAsync = promisify(fs.open);
const fstatAsync = promisify(fs.fstat);
const readAsync = promisify(fs.read);
const closeAsync = promisify(fs.close);

/**
 * Reads a whole file into `region`, which is sized from the listing. If the file has changed size
 * since, its current content is read into a buffer of its own instead (and returned).
 */
async function readInto(file: string, region: Buffer): Promise<Buffer> {
  const size = region.length;
  if (size <= SYNC_READ_LIMIT) {
    const fd = fs.openSync(file, 'r');
    try {
      if (fs.fstatSync(fd).size !== size) return fs.readFileSync(fd);
      for (let at = 0; at < size; ) {
        const n = fs.readSync(fd, region, at, size - at, at);
        if (n === 0) return fs.readFileSync(fd);
        at += n;
      }
      return region;
    } finally {
      fs.closeSync(fd);
    }
  }
  const fd = await openAsync(file, 'r');
  try {
    if ((await fstatAsync(fd)).size !== size) return await fs.promises.readFile(file);
    for (let at = 0; at < size; ) {
      const { bytesRead } = await readAsync(fd, region, at, size - at, at);
      if (bytesRead === 0) return await fs.promises.readFile(file);
      at += bytesRead;
    }
    return region;
  } finally {
    await closeAsync(fd);
  }
}

async function writeArchive(
  entries: readonly WalkEntry[],
  temp: string,
  root: string,
  onProgress: CreateZipOptions['onProgress'],
): Promise<{ bytesIn: number; bytesOut: number; sha256: string }> {
  const forceZip64 = testing.forceZip64;
  const out = new Output(temp);
  const records: EntryRecord[] = [];
  let offset = 0;
  let bytesIn = 0;
  let files = 0;

  let lastReport = 0;
  const progress = (force = false) => {
    if (!onProgress) return;
    const now = Date.now();
    if (!force && now - lastReport < 100) return;
    lastReport = now;
    try {
      onProgress({ files, bytesIn });
    } catch (err) {
      throw new ArchiveError('WRITE_FAILED', `The onProgress callback threw (${describe(err)}), so the archive was abandoned.`, { cause: err });
    }
  };
  const unreadable = (e: WalkEntry, err: unknown) =>
    new ArchiveError('UNREADABLE', `Cannot read "${e.name}" in ${root} (${describe(err)}). Fix its permissions or add it to exclude.`, { cause: err });
  const write = async (chunk: Buffer, onWritten?: () => void) => {
    offset += chunk.length;
    await out.write(chunk, onWritten);
  };

  // Read-and-deflate jobs for the small files ahead of the one being written, their raw bytes in
  // the ring (which therefore bounds the read-ahead) and freed in order once written.
  const ring = new Ring(WINDOW);
  const jobs = new Map<number, Promise<Prepared>>();
  let cursor = 0;
  let freed: (() => void) | null = null;
  const release = () => {
    ring.free();
    freed?.();
  };
  const buffered = (e: WalkEntry) => !e.isDirectory && e.size <= BUFFER_LIMIT;
  const prepareAhead = (current: number) => {
    while (cursor < entries.length && cursor - current < READ_AHEAD) {
      const e = entries[cursor];
      if (buffered(e)) {
        const region = e.size > 0 ? ring.alloc(e.size) : Buffer.alloc(0);
        if (region === null) return; // resumes when written files free the ring
        const method = isAlreadyCompressed(e.name) ? METHOD_STORED : METHOD_DEFLATED;
        const job = readInto(e.absolute, region).then(
          async (raw): Promise<Prepared> => ({
            crc: zlib.crc32(raw),
            size: raw.length,
            method,
            data: method === METHOD_DEFLATED ? await deflate(raw) : raw,
            inRing: e.size > 0,
          }),
          (err) => {
            throw unreadable(e, err);
          },
        );
        job.catch(() => undefined); // reported when its turn comes
        jobs.set(cursor, job);
      }
      cursor++;
    }
  };

  const streamFile = async (e: WalkEntry, record: EntryRecord) => {
    let crc = 0;
    const source = fs.createReadStream(e.absolute, { highWaterMark: 1 << 20 });
    let readFailed: unknown = null;
    source.once('error', (err) => (readFailed = err));
    const check = new Transform({
      transform(chunk: Buffer, _enc, done) {
        crc = zlib.crc32(chunk, crc);
        record.size += chunk.length;
        done(null, chunk);
      },
    });
    const sink = async (chunks: AsyncIterable<Buffer>) => {
      for await (const chunk of chunks) {
        record.compressedSize += chunk.length;
        await write(chunk);
      }
    };
    try {
      if (record.method === METHOD_DEFLATED) {
        await pipeline(source, check, zlib.createDeflateRaw({ level: DEFLATE_LEVEL, chunkSize: 256 << 10 }), sink);
      } else {
        await pipeline(source, check, sink);
      }
    } catch (err) {
      throw readFailed ? unreadable(e, readFailed) : err;
    }
    record.crc = crc;
    bytesIn += record.size;
    if (!record.zip64Local && (record.size > MAX_32 || record.compressedSize > MAX_32)) {
      throw new ArchiveError('UNREADABLE', `"${e.name}" in ${root} grew past 4 GiB while it was being archived. Stop whatever writes to it, then run again.`);
    }
  };

  try {
    for (let i = 0; i < entries.length; i++) {
      prepareAhead(i);
      const e = entries[i];
      while (buffered(e) && !jobs.has(i)) {
        await new Promise<void>((resolve) => (freed = resolve));
        freed = null;
        prepareAhead(i);
      }
      const record: EntryRecord = {
        name: e.name, isDirectory: e.isDirectory, method: METHOD_STORED, mtime: e.mtime, mode: e.mode,
        crc: 0, compressedSize: 0, size: 0, offset, streamed: false, zip64Local: forceZip64,
      };
      const job = jobs.get(i);
      if (e.isDirectory) {
        await write(localHeader(record));
      } else if (job) {
        const p = await job;
        jobs.delete(i);
        Object.assign(record, { method: p.method, crc: p.crc, size: p.size, compressedSize: p.data.length });
        await write(localHeader(record));
        await write(p.data, p.inRing ? release : undefined);
        bytesIn += p.size;
      } else {
        record.method = isAlreadyCompressed(e.name) ? METHOD_STORED : METHOD_DEFLATED;
        record.streamed = true;
        record.zip64Local ||= e.size >= STREAM_ZIP64_FROM;
        await write(localHeader(record));
        await streamFile(e, record);
        await write(dataDescriptor(record));
      }
      records.push(record);
      if (!e.isDirectory) {
        files++;
        progress();
      }
    }

    // The central directory goes out in 1 MiB pieces rather than a small write per entry.
    const cdOffset = offset;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    for (const r of records) {
      const h = centralHeader(r, forceZip64);
      pending.push(h);
      pendingBytes += h.length;
      if (pendingBytes >= 1 << 20) {
        await write(Buffer.concat(pending, pendingBytes));
        pending = [];
        pendingBytes = 0;
      }
    }
    if (pendingBytes > 0) await write(Buffer.concat(pending, pendingBytes));
    await write(endOfCentralDirectory(records.length, cdOffset, offset - cdOffset, forceZip64));
    const sha256 = await out.finish();
    progress(true);
    return { bytesIn, bytesOut: out.bytes, sha256 };
  } catch (err) {
    await out.abandon();
    throw err;
  }
}
