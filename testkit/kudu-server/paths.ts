// Mapping `/api/vfs/<path>` and `/api/zip/<path>` onto %HOME%.
import * as path from 'node:path';

export interface LocalPath {
  /** Absolute local path inside home, without a trailing separator. */
  local: string;
  /** The request asked for a directory (`.../`). */
  trailingSlash: boolean;
}

export class PathError extends Error {}

/**
 * `rest` is the raw (still percent-encoded) part of the URL path after the route prefix,
 * including its leading slash: '' is `/api/vfs`, '/' is `/api/vfs/`.
 * Kudu does `Path.GetFullPath(Path.Combine(home, path))`, which on Windows treats `\` as a
 * separator and would happily resolve `..` above %HOME%. This server treats `\` the same way
 * but refuses any `..` segment (also percent-encoded), so nothing outside home is reachable
 * by path (symbolic links inside home are followed, as on a real file system).
 */
export function resolveHomePath(home: string, rest: string): LocalPath {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    throw new PathError(`The path '${rest}' is not valid.`);
  }
  if (decoded.includes('\0')) throw new PathError(`The path '${rest}' is not valid.`);
  const trailingSlash = decoded.endsWith('/') || decoded.endsWith('\\');
  const segments = decoded.split(/[\\/]+/).filter(s => s !== '' && s !== '.');
  if (segments.some(s => s === '..')) throw new PathError(`The path '${decoded}' is outside of the home directory.`);
  if (segments.some(s => /^[A-Za-z]:$/.test(s) && process.platform === 'win32')) throw new PathError(`The path '${decoded}' is not valid.`);
  const local = path.join(home, ...segments);
  const rel = path.relative(home, local);
  if (rel === '..' || rel.startsWith('..' + path.sep) || path.isAbsolute(rel)) throw new PathError(`The path '${decoded}' is outside of the home directory.`);
  return { local, trailingSlash };
}

/** `DirectoryInfo.FullName` keeps a trailing separator when the request had one. */
export function displayPath(p: LocalPath): string {
  return p.trailingSlash && !p.local.endsWith(path.sep) ? p.local + path.sep : p.local;
}
