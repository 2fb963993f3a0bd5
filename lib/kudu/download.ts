/**
 * Downloads from Kudu to a local file, streamed: a file through the VFS (resumed with Range and
 * If-Range after a break, restarted when the file changed on the server meanwhile), or a folder
 * as a zip (Kudu streams it without a Content-Length, so a break means starting over). The target
 * is always a temporary file the caller names; the caller verifies and renames it into place.
 *
 * @example
 *   const got = await downloadFile(kudu, 'site/wwwroot/content/data/backup.db', tmp, { attempts: 5 });
 *   got.sha256; got.bytes; got.etag;
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { vfsFilePath, zipFolderPath, type KuduClient } from './client';
import { KuduError } from './errors';
import { headerText, numericHeader, totalFromContentRange } from '../http';

export interface DownloadOptions {
  /** Tries in all for the body (the first included); each request also has the client's retries. */
  attempts: number;
  onProgress?: (bytes: number, total: number | undefined) => void;
  /** A break or restart happened; for the log. */
  onInterruption?: (message: string) => void;
}

export interface FileDownload {
  bytes: number;
  sha256: string;
  etag: string | undefined;
  lastModified: string | undefined;
  /** How many times the body was resumed with Range, and restarted from zero. */
  resumes: number;
  restarts: number;
}

/** Folder-ish answers: the caller asked for a file but the path is a folder (Kudu answers 307). */
export class IsFolderError extends Error {
  constructor(readonly remotePath: string) {
    super(`${remotePath} is a folder on the server, not a file.`);
  }
}

export async function downloadFile(kudu: KuduClient, remotePath: string, target: string, options: DownloadOptions): Promise<FileDownload> {
  let hash = createHash('sha256');
  let written = 0;
  let etag: string | undefined;
  let lastModified: string | undefined;
  let total: number | undefined;
  let resumes = 0;
  let restarts = 0;
  let lastError: unknown;
  fs.writeFileSync(target, '');

  for (let attempt = 1; attempt <= options.attempts; attempt++) {
    const resuming = written > 0 && etag !== undefined;
    const headers: Record<string, string> = resuming ? { Range: `bytes=${written}-`, 'If-Range': etag! } : {};
    // Opening is retried by the client itself; what this loop retries is a body that breaks.
    const res = await kudu.openStream(vfsFilePath(remotePath), headers, [307, 404, 416]);
    if (res.status === 404) {
      res.stream.resume();
      throw new KuduError(`${remotePath} does not exist on ${kudu.host} (404). Check remotePath: it is relative to %HOME%, like site/wwwroot/content/data/ghost.db.`, 'not-found', { status: 404 });
    }
    if (res.status === 307) {
      res.stream.resume();
      throw new IsFolderError(remotePath);
    }
    if (res.status === 416) {
      // We asked past the end: the file shrank, so it changed. Start over.
      res.stream.resume();
      ({ hash, written } = restart(target));
      restarts++;
      options.onInterruption?.(`${remotePath} changed on the server during the download; starting over`);
      continue;
    }
    if (resuming && res.status === 200) {
      // If-Range did not match: the server sends the whole, newer file.
      ({ hash, written } = restart(target));
      restarts++;
      options.onInterruption?.(`${remotePath} changed on the server during the download; starting over`);
    } else if (resuming) {
      resumes++;
    }
    const responseEtag = headerText(res.headers.etag);
    if (!resuming || res.status === 200) {
      etag = responseEtag;
      lastModified = headerText(res.headers['last-modified']);
      total = contentLength(res.status, res.headers);
    }
    try {
      written = await appendBody(res.stream, target, written, hash, (n) => options.onProgress?.(n, total));
    } catch (err) {
      if (!(err instanceof KuduError) || !err.retriable) throw err;
      lastError = err;
      // Keep what arrived; the next try resumes from it when the server gave an ETag.
      written = fs.statSync(target).size;
      if (etag === undefined) ({ hash, written } = restart(target));
      options.onInterruption?.(`the download of ${remotePath} broke after ${written} bytes (${err.message}); ${etag ? 'resuming' : 'starting over'}`);
      continue;
    }
    if (total !== undefined && written !== total) {
      lastError = new KuduError(`${remotePath}: got ${written} bytes, the server announced ${total}`, 'network', { code: 'KUDU_TRUNCATED', retriable: true });
      options.onInterruption?.(`the download of ${remotePath} ended after ${written} of ${total} bytes; resuming`);
      continue;
    }
    return { bytes: written, sha256: hash.digest('hex'), etag, lastModified, resumes, restarts };
  }
  const reason = lastError instanceof Error ? lastError.message : 'the body kept breaking';
  throw new KuduError(
    `Could not download ${remotePath} from ${kudu.host} in ${options.attempts} tries: ${reason}. Raise 'retries', or check the app's health.`,
    'network',
    { retriable: false },
  );
}

export interface ZipDownload {
  bytes: number;
  /** Unless `hash: false` was asked (an archive that is extracted and thrown away needs none). */
  sha256?: string;
}

/** The folder as Kudu zips it, into `target`. A break restarts the whole download. */
export async function downloadZip(
  kudu: KuduClient,
  remoteFolder: string,
  target: string,
  options: DownloadOptions & { hash?: boolean },
): Promise<ZipDownload> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= options.attempts; attempt++) {
    const res = await kudu.openStream(zipFolderPath(remoteFolder), {}, [404]);
    if (res.status === 404) {
      res.stream.resume();
      throw new KuduError(
        `The folder ${remoteFolder} does not exist on ${kudu.host} (404). Check remotePath: it is relative to %HOME%, like site/wwwroot/content/images/.`,
        'not-found',
        { status: 404 },
      );
    }
    const hash = options.hash === false ? undefined : createHash('sha256');
    fs.writeFileSync(target, '');
    try {
      const bytes = await appendBody(res.stream, target, 0, hash, (n) => options.onProgress?.(n, undefined));
      return { bytes, sha256: hash?.digest('hex') };
    } catch (err) {
      if (!(err instanceof KuduError) || !err.retriable) throw err;
      lastError = err;
      options.onInterruption?.(`the zip download of ${remoteFolder} broke (${err.message}); starting over`);
    }
  }
  const reason = lastError instanceof Error ? lastError.message : 'the body kept breaking';
  throw new KuduError(`Could not download the folder ${remoteFolder} from ${kudu.host} in ${options.attempts} tries: ${reason}. Raise 'retries'.`, 'network', {
    retriable: false,
  });
}

/**
 * Appends the body to the file from `offset`, hashing each chunk once it is on disk; returns the
 * new length. On failure the file holds exactly the bytes counted and hashed, so a resume can
 * continue both.
 */
async function appendBody(
  body: Readable,
  target: string,
  offset: number,
  hash: ReturnType<typeof createHash> | undefined,
  onProgress: (bytes: number) => void,
): Promise<number> {
  let written = offset;
  let lastReport = 0;
  let inFlight: Promise<void> = Promise.resolve();
  const fd = await fs.promises.open(target, 'r+');
  // Chunks that arrive while a write is on disk are batched into one writev: an HTTP body comes
  // in pieces of a few KiB, and a thread-pool hop per piece costs more CPU than the copy itself.
  const land = (chunks: Buffer[], done: (err?: Error | null) => void) => {
    const bytes = chunks.reduce((n, c) => n + c.length, 0);
    inFlight = writeAll(fd, chunks, written).then(
      () => {
        for (const c of chunks) hash?.update(c);
        written += bytes;
        if (written - lastReport >= 8 * 1024 * 1024) {
          lastReport = written;
          onProgress(written);
        }
        done();
      },
      (err: Error) => done(err),
    );
  };
  const sink = new Writable({
    highWaterMark: 1024 * 1024,
    write: (chunk: Buffer, _encoding, done) => land([chunk], done),
    writev: (chunks, done) => land(chunks.map((c) => c.chunk as Buffer), done),
  });
  try {
    await pipeline(body, sink);
  } finally {
    // A write may still be landing after the source broke; count it before anyone reads `written`.
    await inFlight.catch(() => undefined);
    await fd.close();
  }
  return written;
}

async function writeAll(fd: fs.promises.FileHandle, chunks: Buffer[], position: number): Promise<void> {
  let buffers = chunks.slice();
  while (buffers.length) {
    const { bytesWritten } = await fd.writev(buffers, position);
    position += bytesWritten;
    // A short write (rare on regular files) leaves the rest for another round.
    let skip = bytesWritten;
    while (buffers.length && skip >= buffers[0].length) skip -= buffers.shift()!.length;
    if (skip > 0) buffers = [buffers[0].subarray(skip), ...buffers.slice(1)];
  }
}

function restart(target: string): { hash: ReturnType<typeof createHash>; written: number } {
  fs.truncateSync(target, 0);
  return { hash: createHash('sha256'), written: 0 };
}

/** The file's full size: from Content-Range on a 206, from Content-Length otherwise. */
function contentLength(status: number, headers: Record<string, string | string[] | undefined>): number | undefined {
  return (status === 206 ? totalFromContentRange(headers['content-range']) : undefined) ?? numericHeader(headers['content-length']);
}
