/**
 * The one owner of paths on the App Service: what a user writes in `remotePath` (relative to
 * Kudu's %HOME%, D:\home or /home) becomes checked segments, and only those are ever put into a
 * URL under `api/vfs/` or `api/zip/`. A path that could leave those endpoints (`..`, `.`, encoded or
 * with backslashes, an absolute URL, a drive letter, a query) is refused with what to write
 * instead; so are WebJob names that are not plain folder names.
 *
 * @example
 *   const p = parseRemotePath('site/wwwroot/content/images/');   // { segments: [...], folder: true }
 *   vfsUrlPath(p);    // 'api/vfs/site/wwwroot/content/images/'
 *   zipUrlPath(p);    // 'api/zip/site/wwwroot/content/images/'
 */
import { cleanText } from './text';

export interface RemotePath {
  /** Decoded names, none empty, `.` or `..`. */
  readonly segments: readonly string[];
  /** Written with a trailing slash (or the root): a folder. */
  readonly folder: boolean;
  /** Canonical text: segments joined with `/`, a trailing `/` for a folder. */
  readonly text: string;
}

export class RemotePathError extends Error {
  override readonly name = 'RemotePathError';
}

const EXAMPLE = 'site/wwwroot/content/data/ghost.db';

/**
 * Parses a path relative to %HOME%. Backslashes count as slashes and a leading slash is ignored
 * (Kudu's paths are all under %HOME%); `what` names the input in errors.
 */
export function parseRemotePath(input: string, what = 'remotePath'): RemotePath {
  const raw = input.trim();
  const refuse = (why: string) =>
    new RemotePathError(`${what} '${show(raw)}' ${why}. Write a path relative to the app's %HOME% folder, like ${EXAMPLE} (a folder ends with /).`);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) throw refuse('is a URL, not a path: the service connection already names the app');
  if (/^[a-z]:/i.test(raw)) throw refuse('starts with a drive letter');
  if (/[?#]/.test(raw)) throw refuse('contains ? or #');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(raw)) throw refuse('contains a control character');
  const slashed = raw.replace(/\\/g, '/');
  const segments = slashed.split('/').filter((s) => s !== '');
  for (const segment of segments) {
    const decoded = safeDecode(segment);
    if (decoded === undefined) throw refuse(`has a malformed %-escape in '${show(segment)}'`);
    if (/[/\\]/.test(decoded)) throw refuse(`has an encoded slash in '${show(segment)}'`);
    if (decoded.trim() === '.' || decoded.trim() === '..' || segment === '.' || segment === '..') {
      throw refuse("uses '.' or '..', which could reach Kudu endpoints outside the file system API");
    }
  }
  const folder = segments.length === 0 || /\/$/.test(slashed);
  const text = segments.join('/') + (folder && segments.length ? '/' : '');
  return { segments, folder, text };
}

/** The same path as a folder (for a file path that turned out to be a folder: Kudu's 307). */
export function asFolder(p: RemotePath): RemotePath {
  return { segments: p.segments, folder: true, text: p.segments.join('/') + (p.segments.length ? '/' : '') };
}

/** A child of a folder, by a name from a listing; the name is checked like any other segment. */
export function childOf(folder: RemotePath, name: string, isFolder: boolean): RemotePath {
  checkEntryName(name);
  const segments = [...folder.segments, name];
  return { segments, folder: isFolder, text: segments.join('/') + (isFolder ? '/' : '') };
}

/**
 * A name from the server (a listing's entry): a single path segment, nothing that climbs or
 * splits. Throws a RemotePathError otherwise.
 */
export function checkEntryName(name: string): string {
  // eslint-disable-next-line no-control-regex
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || /[/\\\u0000]/.test(name)) {
    throw new RemotePathError(`The server listed an entry named '${show(String(name))}', which is not a file name; refusing to follow it.`);
  }
  return name;
}

/** `api/vfs/<segments>` (a folder keeps its trailing slash, which Kudu needs for a listing). */
export function vfsUrlPath(p: RemotePath): string {
  return `api/vfs/${encodeSegments(p)}`;
}

/** `api/zip/<segments>/`: Kudu zips a folder. */
export function zipUrlPath(p: RemotePath): string {
  return `api/zip/${encodeSegments(asFolder(p))}`;
}

function encodeSegments(p: RemotePath): string {
  return p.segments.map(encodeURIComponent).join('/') + (p.folder && p.segments.length ? '/' : '');
}

/**
 * A WebJob's name as Kudu keeps it: a folder name under App_Data/jobs/triggered. Letters, digits,
 * `-`, `_` and `.` (not first), at most 128 characters.
 */
export function checkJobName(name: string, what = 'jobName'): string {
  const trimmed = name.trim();
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(trimmed) || /\.\.|\.$/.test(trimmed)) {
    throw new RemotePathError(
      `${what} '${show(trimmed)}' is not a WebJob name: use letters, digits, '-', '_' and '.', starting with a letter or digit (like sqlite-backup).`,
    );
  }
  return trimmed;
}

function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** Shown in an error: control characters and commands made harmless, long input cut. */
function show(text: string): string {
  return cleanText(text, 200);
}
