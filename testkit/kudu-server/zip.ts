// `/api/zip/{path}/` (and `/zip/...`): Kudu's ZipController. GET streams a folder as a zip,
// PUT unpacks a zip over a folder. Also the zip reading used by WebJob uploads.
import * as fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as path from 'node:path';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as yauzl from 'yauzl';
import * as yazl from 'yazl';
import { sendEmpty, sendHttpError, streamTo } from './http';
import { notFound, redirect, resolveOrReject, slashRedirect, statOrNull, VfsContext } from './vfs';

export interface ZipContext extends VfsContext {
  /** Scratch space outside %HOME% (request bodies are spooled there). */
  tempDir: string;
}

export async function handleZip(req: IncomingMessage, res: ServerResponse, ctx: ZipContext, rest: string, url: URL): Promise<void> {
  const method = req.method ?? 'GET';
  if (!['GET', 'HEAD', 'PUT'].includes(method)) {
    sendHttpError(res, 405, `The requested resource does not support http method '${method}'.`, { Allow: 'GET, HEAD, PUT' });
    return;
  }
  const target = resolveOrReject(res, ctx.home, rest);
  if (!target) return;
  const st = await statOrNull(target.local);

  if (method === 'PUT') {
    // As VfsControllerBase.PutItem: an existing directory or a trailing slash means "unpack here";
    // a file path is not supported by the zip controller.
    if (!(st?.isDirectory() || target.trailingSlash)) {
      req.resume();
      return sendEmpty(res, 404);
    }
    return unpackRequest(req, res, ctx, target.local);
  }

  if (!st) return notFound(res, target);
  if (st.isDirectory()) {
    if (!target.trailingSlash) return redirect(res, slashRedirect(req, url, true));
    return sendFolderZip(req, res, ctx, target.local, url);
  }
  if (target.trailingSlash) return redirect(res, slashRedirect(req, url, false));
  // "We don't support getting a file from the zip controller": 404 with no body.
  return sendEmpty(res, 404);
}

/** ContentDispositionHeaderValue.FileName: bare token, quoted string, or MIME-encoded. */
function dispositionFileName(name: string): string {
  if (/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) return name;
  if (/^[\x20-\x7e]*$/.test(name)) return `"${name.replace(/(["\\])/g, '\\$1')}"`;
  return `"=?utf-8?B?${Buffer.from(name, 'utf8').toString('base64')}?="`;
}

function queryValueIgnoreCase(url: URL, key: string): string | undefined {
  for (const [k, v] of url.searchParams) if (k.toLowerCase() === key.toLowerCase()) return v;
  return undefined;
}

async function sortedNames(dir: string): Promise<string[]> {
  const names = await fs.promises.readdir(dir);
  return names.sort((a, b) => a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0);
}

/**
 * Feeds a folder into yazl one file at a time: a file is opened only when the previous one has
 * been fully compressed into the response, so memory and open descriptors stay bounded and
 * backpressure from the client reaches the disk reads.
 */
class FolderZipper {
  private stopped = false;
  private current: Readable | undefined;

  constructor(private readonly zip: yazl.ZipFile, private readonly ctx: ZipContext) {}

  stop(): void {
    this.stopped = true;
    this.current?.destroy();
  }

  /** Kudu's ZipController: the folder's own entries at the root, sub-folders via AddDirectory. */
  async addFolderContents(dir: string): Promise<void> {
    for (const name of await sortedNames(dir)) {
      if (this.stopped) return;
      const full = path.join(dir, name);
      const st = await statOrNull(full);
      if (!st) continue;
      if (st.isDirectory()) await this.addDirectory(full, name + '/');
      else if (st.isFile()) await this.addFile(full, name, st);
    }
  }

  /** ZipArchiveExtensions.InternalAddDirectory: recurse; an empty folder becomes a `dir/` entry. */
  private async addDirectory(dir: string, prefix: string): Promise<void> {
    let any = false;
    for (const name of await sortedNames(dir)) {
      if (this.stopped) return;
      // Set before trying the entry, as Kudu does: a folder whose only file is locked yields nothing.
      any = true;
      const full = path.join(dir, name);
      const st = await statOrNull(full);
      if (!st) continue;
      if (st.isDirectory()) await this.addDirectory(full, prefix + name + '/');
      else if (st.isFile()) await this.addFile(full, prefix + name, st);
    }
    if (!any && !this.stopped) this.zip.addEmptyDirectory(prefix, { forceDosTimestamp: true });
  }

  /** Files that cannot be opened (in use, no permission) are skipped without a trace in the zip. */
  private async addFile(full: string, entryName: string, st: fs.BigIntStats): Promise<void> {
    if (this.ctx.isLocked(full)) return;
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(full, 'r');
    } catch {
      return;
    }
    const stream = handle.createReadStream({ highWaterMark: 64 * 1024 });
    this.current = stream;
    const closed = once(stream, 'close').catch(() => undefined);
    // CompressionLevel.Fastest; a DOS timestamp only, as .NET's ZipArchive writes (2 s resolution, local time).
    this.zip.addReadStream(stream, entryName, { mtime: new Date(Number(st.mtimeMs)), compressionLevel: 1, forceDosTimestamp: true });
    await closed;
    this.current = undefined;
  }
}

async function sendFolderZip(req: IncomingMessage, res: ServerResponse, ctx: ZipContext, dir: string, url: URL): Promise<void> {
  const fileName = queryValueIgnoreCase(url, 'fileName') ?? path.basename(dir) + '.zip';
  // No Content-Length: Kudu pushes the archive as it is built (chunked transfer).
  res.writeHead(200, {
    'Content-Type': 'application/zip',
    'Content-Disposition': `attachment; filename=${dispositionFileName(fileName)}`,
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }

  const zip = new yazl.ZipFile();
  const zipper = new FolderZipper(zip, ctx);
  const output = zip.outputStream as unknown as Readable;
  res.on('close', () => zipper.stop());
  zip.on('error', () => {
    // A file failed half-way (it shrank, an I/O error): the archive cannot be finished.
    zipper.stop();
    res.destroy();
  });
  streamTo(res, output);
  try {
    await zipper.addFolderContents(dir);
  } catch {
    zipper.stop();
    res.destroy();
    return;
  }
  if (!res.destroyed) zip.end();
}

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) =>
    yauzl.open(file, { lazyEntries: true, autoClose: false }, (err, zip) => (err ? reject(err) : resolve(zip!))));
}

function openEntry(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<Readable> {
  return new Promise((resolve, reject) => zip.openReadStream(entry, (err, stream) => (err ? reject(err) : resolve(stream!))));
}

/**
 * ZipArchiveExtensions.Extract: every entry written under `dest` (over existing files, nothing
 * deleted), `name/` entries as folders, entry times kept. yauzl refuses `..` and absolute names.
 */
export async function extractZip(zipFile: string, dest: string): Promise<void> {
  const zip = await openZip(zipFile);
  try {
    await new Promise<void>((resolve, reject) => {
      zip.on('error', reject);
      zip.on('end', () => resolve());
      zip.on('entry', (entry: yauzl.Entry) => {
        const out = path.join(dest, ...entry.fileName.split(/[\\/]/).filter(Boolean));
        const work = async (): Promise<void> => {
          if (/[\\/]$/.test(entry.fileName)) {
            await fs.promises.mkdir(out, { recursive: true });
            return;
          }
          await fs.promises.mkdir(path.dirname(out), { recursive: true });
          await pipeline(await openEntry(zip, entry), fs.createWriteStream(out));
          const mtime = entry.getLastModDate();
          await fs.promises.utimes(out, mtime, mtime);
        };
        work().then(() => zip.readEntry(), reject);
      });
      zip.readEntry();
    });
  } finally {
    zip.close();
  }
}

/** Spool a request body to a temporary file (yauzl needs random access) and hand it over. */
export async function withSpooledBody<T>(req: IncomingMessage, tempDir: string, use: (file: string) => Promise<T>): Promise<T> {
  await fs.promises.mkdir(tempDir, { recursive: true });
  const file = path.join(tempDir, `upload-${process.pid}-${Date.now()}-${Math.random().toString(16).slice(2)}.zip`);
  try {
    await pipeline(req, fs.createWriteStream(file));
    return await use(file);
  } finally {
    await fs.promises.rm(file, { force: true });
  }
}

async function unpackRequest(req: IncomingMessage, res: ServerResponse, ctx: ZipContext, dest: string): Promise<void> {
  try {
    await withSpooledBody(req, ctx.tempDir, file => extractZip(file, dest));
  } catch (e) {
    req.resume();
    return sendHttpError(res, 400, (e as Error).message);
  }
  sendEmpty(res, 200);
}
