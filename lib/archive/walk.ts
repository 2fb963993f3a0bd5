// Lists what goes into an archive: every file and folder under root, in a stable order, minus
// the excluded ones and the archive itself. Symbolic links are resolved here so the writer only
// ever sees regular files and folders.
import * as fs from 'node:fs';
import * as path from 'node:path';
import picomatch from 'picomatch';
import { ArchiveError, describe, errnoCode } from './errors';

export interface WalkEntry {
  /** Name in the archive: relative to root, forward slashes, folders end with "/". */
  name: string;
  /** Path to read (for a link, the link itself: opening it reads the target). */
  absolute: string;
  isDirectory: boolean;
  size: number;
  mtime: Date;
  mode: number;
}

export interface WalkResult {
  entries: WalkEntry[];
  files: number;
  /** Excluded paths, top-most only (an excluded folder is not descended into). */
  excluded: string[];
}

export interface WalkOptions {
  root: string;
  exclude: readonly string[];
  /** Skips files that are the archive being written or one of its temp files. */
  isOwnOutput: (absolute: string, stats: fs.Stats) => boolean;
}

// Enough stat calls in flight to hide their latency, few enough not to starve the thread pool.
const STAT_CONCURRENCY = 32;

export function compileExclude(root: string, patterns: readonly string[]): (rel: string, isDirectory: boolean) => boolean {
  const cleaned = patterns.map((p) => {
    if (typeof p !== 'string' || p.trim() === '') {
      throw new ArchiveError('BAD_EXCLUDE', `Exclude pattern ${JSON.stringify(p)} is empty; remove it from the exclude list.`);
    }
    if (path.isAbsolute(p) || /^[a-zA-Z]:/.test(p)) {
      throw new ArchiveError('BAD_EXCLUDE', `Exclude pattern "${p}" is absolute; exclude patterns are relative to ${root}, e.g. "node_modules/**".`);
    }
    return p.replace(/^(\.\/)+/, '');
  });
  if (cleaned.length === 0) return () => false;
  const isMatch = picomatch(cleaned, { dot: true });
  // "logs/" in a pattern means the folder; test folders both with and without the slash.
  return (rel, isDirectory) => isMatch(rel) || (isDirectory && isMatch(rel + '/'));
}

function inside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

export async function walk(options: WalkOptions): Promise<WalkResult> {
  const root = options.root;
  const isExcluded = compileExclude(root, options.exclude);
  const rootReal = await fs.promises.realpath(root);
  const entries: WalkEntry[] = [];
  const excluded: string[] = [];
  let files = 0;

  const show = (rel: string) => (rel === '' ? root : `"${rel}" in ${root}`);

  async function inspect(dirAbs: string, rel: string, dirent: fs.Dirent): Promise<{ stats: fs.Stats; real: string | null } | null> {
    const abs = path.join(dirAbs, dirent.name);
    if (dirent.isSymbolicLink()) {
      const target = await fs.promises.readlink(abs).catch(() => '?');
      let real: string;
      try {
        real = await fs.promises.realpath(abs);
      } catch (err) {
        if (errnoCode(err) === 'ELOOP') {
          throw new ArchiveError('LINK_LOOP', `Cannot archive ${show(rel)}: it is a symbolic link that loops back on itself (-> ${target}). Remove it or add it to exclude.`, { cause: err });
        }
        throw new ArchiveError('BROKEN_LINK', `Cannot archive ${show(rel)}: it is a symbolic link to "${target}", which does not exist. Remove the link or add it to exclude.`, { cause: err });
      }
      // A link leaving root would put files from elsewhere on the machine into the package
      // (and it would dangle once deployed), so it is refused rather than followed.
      if (!inside(rootReal, real)) {
        throw new ArchiveError('LINK_OUTSIDE_ROOT', `Cannot archive ${show(rel)}: it is a symbolic link to "${real}", outside the folder being archived. Copy what it points to into ${root}, or add the link to exclude.`);
      }
      const stats = await statOrThrow(abs, rel);
      return { stats, real };
    }
    if (!dirent.isFile() && !dirent.isDirectory()) return null; // sockets, FIFOs, devices: not site content
    return { stats: await statOrThrow(abs, rel), real: null };
  }

  async function statOrThrow(abs: string, rel: string): Promise<fs.Stats> {
    try {
      return await fs.promises.stat(abs);
    } catch (err) {
      throw new ArchiveError('UNREADABLE', `Cannot read ${show(rel)} (${describe(err)}). Fix its permissions or add it to exclude.`, { cause: err });
    }
  }

  // ancestors: real paths of the folders being descended, to stop a linked folder that contains itself.
  async function visit(dirAbs: string, dirRel: string, dirReal: string, ancestors: Set<string>): Promise<void> {
    let dirents: fs.Dirent[];
    try {
      dirents = await fs.promises.readdir(dirAbs, { withFileTypes: true });
    } catch (err) {
      throw new ArchiveError('UNREADABLE', `Cannot list folder ${show(dirRel)} (${describe(err)}). Fix its permissions or add it to exclude.`, { cause: err });
    }
    // Code-unit order, not locale order: the same tree gives the same archive on every machine.
    dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

    const kept: Array<{ dirent: fs.Dirent; rel: string }> = [];
    for (const dirent of dirents) {
      const rel = dirRel === '' ? dirent.name : `${dirRel}/${dirent.name}`;
      if (isExcluded(rel, dirent.isDirectory())) excluded.push(rel);
      else kept.push({ dirent, rel });
    }

    const inspected: Array<{ stats: fs.Stats; real: string | null } | null> = new Array(kept.length);
    for (let i = 0; i < kept.length; i += STAT_CONCURRENCY) {
      const batch = kept.slice(i, i + STAT_CONCURRENCY);
      const results = await Promise.all(batch.map((k) => inspect(dirAbs, k.rel, k.dirent)));
      results.forEach((r, j) => (inspected[i + j] = r));
    }

    for (let i = 0; i < kept.length; i++) {
      const info = inspected[i];
      if (!info) continue;
      const { rel, dirent } = kept[i];
      const abs = path.join(dirAbs, dirent.name);
      const { stats } = info;
      if (options.isOwnOutput(abs, stats)) continue;
      if (dirent.name.includes('\\')) {
        // Legal on Linux, but Windows and most unzip tools read it as a folder separator.
        throw new ArchiveError('UNSUPPORTED_NAME', `Cannot archive ${show(rel)}: its name contains a backslash, which unzip tools and Windows read as a folder separator. Rename it or add it to exclude.`);
      }
      if (stats.isDirectory()) {
        // A link to a folder is only known to be one after stat, so excludes get a second look.
        if (info.real !== null && isExcluded(rel, true)) {
          excluded.push(rel);
          continue;
        }
        const real = info.real ?? path.join(dirReal, dirent.name);
        if (ancestors.has(real)) {
          throw new ArchiveError('LINK_LOOP', `Cannot archive ${show(rel)}: it is a symbolic link to "${real}", a folder that contains it, so the archive would never end. Add it to exclude.`);
        }
        entries.push({ name: rel + '/', absolute: abs, isDirectory: true, size: 0, mtime: stats.mtime, mode: stats.mode });
        ancestors.add(real);
        await visit(abs, rel, real, ancestors);
        ancestors.delete(real);
      } else if (stats.isFile()) {
        entries.push({ name: rel, absolute: abs, isDirectory: false, size: stats.size, mtime: stats.mtime, mode: stats.mode });
        files++;
      }
    }
  }

  await visit(root, '', rootReal, new Set([rootReal]));
  return { entries, files, excluded };
}
