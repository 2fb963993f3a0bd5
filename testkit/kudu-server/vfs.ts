// `/api/vfs/{path}` (and `/vfs/{path}`): Kudu's VfsController over %HOME%.
import * as fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { httpDate, jsonDateTimeOffsetUtc, ticksFromUnixNs, vfsEtagFromTicks } from './dotnet';
import { requestOrigin, sendEmpty, sendHttpError, sendJson, streamTo } from './http';
import { mimeFor } from './mime';
import { displayPath, LocalPath, PathError, resolveHomePath } from './paths';

export interface VfsContext {
  home: string;
  supportsRange: boolean;
  /** Files another process holds open without sharing (see KuduServer.lockFile). */
  isLocked(localPath: string): boolean;
}

const MISSING_IF_MATCH = 'Updating an existing resource requires an If-Match header carrying a single, strong ETag.';
const ETAG_MISMATCH = 'ETag does not represent the latest state of the resource.';
const CANNOT_UPDATE_DIRECTORY = 'The resource represents a directory which can not be updated.';
const CANNOT_DELETE_DIRECTORY = 'Cannot delete directory. It is either not empty or access is not allowed.';

export async function statOrNull(p: string): Promise<fs.BigIntStats | null> {
  try {
    return await fs.promises.stat(p, { bigint: true });
  } catch {
    return null;
  }
}

export function etagOf(st: fs.BigIntStats): string {
  return vfsEtagFromTicks(ticksFromUnixNs(st.mtimeNs));
}

/** Resolve the path part or answer 400; shared with the zip controller. */
export function resolveOrReject(res: ServerResponse, home: string, rest: string): LocalPath | undefined {
  try {
    return resolveHomePath(home, rest);
  } catch (e) {
    if (!(e instanceof PathError)) throw e;
    sendHttpError(res, 400, e.message);
    return undefined;
  }
}

export function redirect(res: ServerResponse, location: string): void {
  sendEmpty(res, 307, { Location: location });
}

/** The same URL with its path given a trailing slash, or with it removed, query kept. */
export function slashRedirect(req: IncomingMessage, url: URL, wantSlash: boolean): string {
  const pathname = wantSlash ? url.pathname + '/' : url.pathname.replace(/\/+$/, '');
  return requestOrigin(req) + pathname + url.search;
}

export function notFound(res: ServerResponse, p: LocalPath): void {
  sendHttpError(res, 404, `'${displayPath(p)}' not found.`);
}

export async function handleVfs(req: IncomingMessage, res: ServerResponse, ctx: VfsContext, rest: string, url: URL): Promise<void> {
  const method = req.method ?? 'GET';
  if (!['GET', 'HEAD', 'PUT', 'DELETE'].includes(method)) {
    sendHttpError(res, 405, `The requested resource does not support http method '${method}'.`, { Allow: 'GET, HEAD, PUT, DELETE' });
    return;
  }
  const target = resolveOrReject(res, ctx.home, rest);
  if (!target) return;
  if (method === 'PUT') return putItem(req, res, ctx, target);
  if (method === 'DELETE') return deleteItem(req, res, ctx, target, url);

  const st = await statOrNull(target.local);
  if (!st) return notFound(res, target);
  if (st.isDirectory()) {
    if (!target.trailingSlash) return redirect(res, slashRedirect(req, url, true));
    return listDirectory(req, res, target.local, url);
  }
  if (target.trailingSlash) return redirect(res, slashRedirect(req, url, false));
  return serveFile(req, res, ctx, target.local, st);
}

type ByteRange = { start: number; end: number } | 'unsatisfiable' | undefined;

/**
 * One `bytes=` range. Multiple ranges (multipart/byteranges in Web API) and malformed headers
 * are ignored, which yields a plain 200 — clients here only ever ask for one range.
 */
export function parseRange(header: string, size: number): ByteRange {
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? Infinity : Number(m[2]);
  if (last < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(last, size - 1) };
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Entity tags of If-Match / If-None-Match, compared strongly (W/ tags never match). */
export function etagList(header: string | undefined): string[] {
  if (header === undefined) return [];
  return header.match(/\*|(?:W\/)?"[^"]*"/g) ?? [];
}

async function serveFile(req: IncomingMessage, res: ServerResponse, ctx: VfsContext, file: string, st: fs.BigIntStats): Promise<void> {
  const etag = etagOf(st);
  if (etagList(headerValue(req.headers['if-none-match'])).includes(etag)) {
    res.writeHead(304, { ETag: etag });
    res.end();
    return;
  }

  const size = Number(st.size);
  let range: ByteRange;
  const rangeHeader = headerValue(req.headers.range);
  if (ctx.supportsRange && rangeHeader !== undefined) {
    const ifRange = headerValue(req.headers['if-range']);
    // An If-Range that does not name the current ETag (a date, or an old ETag) means "send it all".
    if (ifRange === undefined || ifRange.trim() === etag) range = parseRange(rangeHeader, size);
  }
  if (range === 'unsatisfiable') {
    sendHttpError(res, 416, `None of the requested ranges (${rangeHeader!.trim()}) overlap with the current extent of the selected resource.`, {
      'Content-Range': `bytes */${size}`,
    });
    return;
  }

  // Kudu opens with FileShare.ReadWrite|Delete, so a file someone else holds open is still served.
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r');
  } catch (e) {
    sendHttpError(res, 404, (e as Error).message);
    return;
  }

  const headers: Record<string, string | number> = {
    'Content-Type': mimeFor(file),
    ETag: etag,
    'Last-Modified': httpDate(ticksFromUnixNs(st.mtimeNs)),
  };
  if (ctx.supportsRange) headers['Accept-Ranges'] = 'bytes';
  const start = range ? range.start : 0;
  const end = range ? range.end : size - 1;
  headers['Content-Length'] = Math.max(0, end - start + 1);
  if (range) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
  res.writeHead(range ? 206 : 200, headers);

  if (req.method === 'HEAD' || end < start) {
    await handle.close();
    res.end();
    return;
  }
  // Streamed in 64 KiB reads with backpressure: a 1 GiB file never sits in memory.
  streamTo(res, handle.createReadStream({ start, end, highWaterMark: 64 * 1024 }));
}

function encodeHrefName(name: string): string {
  // Uri.EscapeUriString leaves '#' and '?' alone, which breaks such hrefs; escape them.
  return encodeURI(name).replace(/#/g, '%23').replace(/\?/g, '%3F');
}

async function listDirectory(req: IncomingMessage, res: ServerResponse, dir: string, url: URL): Promise<void> {
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch (e) {
    sendHttpError(res, 500, (e as Error).message);
    return;
  }
  // NTFS enumerates in case-insensitive name order; mimic it so listings are stable.
  names.sort((a, b) => a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0);
  const base = requestOrigin(req) + url.pathname;
  const entries = [];
  for (const name of names) {
    const full = path.join(dir, name);
    let st: fs.BigIntStats;
    try {
      st = await fs.promises.stat(full, { bigint: true });
    } catch {
      try {
        st = await fs.promises.lstat(full, { bigint: true });
      } catch {
        continue; // vanished while listing
      }
    }
    const isDir = st.isDirectory();
    const birth = st.birthtimeNs > 0n ? st.birthtimeNs : st.ctimeNs;
    entries.push({
      name,
      size: isDir ? 0 : Number(st.size),
      mtime: jsonDateTimeOffsetUtc(ticksFromUnixNs(st.mtimeNs)),
      crtime: jsonDateTimeOffsetUtc(ticksFromUnixNs(birth)),
      mime: isDir ? 'inode/directory' : mimeFor(name),
      href: base + encodeHrefName(name) + (isDir ? '/' : '') + url.search,
      path: full,
    });
  }
  sendJson(res, 200, entries);
}

/** null when the request may modify the file, otherwise the 412 message. */
function checkIfMatch(req: IncomingMessage, currentEtag: string): string | null {
  const header = headerValue(req.headers['if-match']);
  if (header === undefined) return MISSING_IF_MATCH;
  return etagList(header).some(tag => tag === '*' || tag === currentEtag) ? null : ETAG_MISMATCH;
}

async function putItem(req: IncomingMessage, res: ServerResponse, ctx: VfsContext, target: LocalPath): Promise<void> {
  const st = await statOrNull(target.local);
  if (st?.isDirectory() || target.trailingSlash) {
    req.resume();
    if (st) return sendHttpError(res, 409, CANNOT_UPDATE_DIRECTORY);
    try {
      await fs.promises.mkdir(target.local, { recursive: true });
    } catch (e) {
      return sendHttpError(res, 409, (e as Error).message);
    }
    return sendEmpty(res, 201);
  }

  if (st) {
    const problem = checkIfMatch(req, etagOf(st));
    if (problem) {
      req.resume();
      return sendHttpError(res, 412, problem, problem === ETAG_MISMATCH ? { ETag: etagOf(st) } : {});
    }
  }
  const writeConflict = (e: unknown): void =>
    sendHttpError(res, 409, `Could not write to local resource '${target.local}' due to error '${(e as Error).message}'.`);
  if (ctx.isLocked(target.local)) {
    req.resume();
    return writeConflict(new Error(`The process cannot access the file '${target.local}' because it is being used by another process.`));
  }
  try {
    if (!st) await fs.promises.mkdir(path.dirname(target.local), { recursive: true });
    // FileMode.Create, as Kudu: the file is truncated and written in place, not swapped in.
    await pipeline(req, fs.createWriteStream(target.local));
  } catch (e) {
    req.resume();
    if (!res.headersSent && !res.destroyed) writeConflict(e);
    return;
  }
  const written = await statOrNull(target.local);
  sendEmpty(res, st ? 204 : 201, written ? { ETag: etagOf(written) } : {});
}

async function deleteItem(req: IncomingMessage, res: ServerResponse, ctx: VfsContext, target: LocalPath, url: URL): Promise<void> {
  const st = await statOrNull(target.local);
  if (!st) return notFound(res, target);
  if (st.isDirectory()) {
    const recursive = (url.searchParams.get('recursive') ?? '').toLowerCase() === 'true';
    try {
      if (target.local === ctx.home) throw new Error('refusing to delete %HOME%');
      // A running job keeps writing its log into its run folder: a file created during the walk makes
      // one pass fail with ENOTEMPTY, which Windows' recursive delete would also retry.
      if (recursive) await fs.promises.rm(target.local, { recursive: true, maxRetries: 20, retryDelay: 25 });
      else await fs.promises.rmdir(target.local);
    } catch {
      return sendHttpError(res, 409, CANNOT_DELETE_DIRECTORY);
    }
    return sendEmpty(res, 200);
  }
  if (target.trailingSlash) return redirect(res, slashRedirect(req, url, false));
  const problem = checkIfMatch(req, etagOf(st));
  if (problem) return sendHttpError(res, 412, problem, problem === ETAG_MISMATCH ? { ETag: etagOf(st) } : {});
  // Kudu opens the file for delete first; a file locked without sharing fails that, and the
  // failure is reported as 404 with the exception text.
  if (ctx.isLocked(target.local)) {
    return sendHttpError(res, 404, `The process cannot access the file '${target.local}' because it is being used by another process.`);
  }
  try {
    await fs.promises.unlink(target.local);
  } catch (e) {
    return sendHttpError(res, 404, (e as Error).message);
  }
  sendEmpty(res, 200);
}
