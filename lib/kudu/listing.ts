/**
 * Walking a folder tree through Kudu's one-level listings, with limits a hostile or broken server
 * cannot talk its way around: entry names are checked by the client before they get here (no
 * separators, `.` or `..`), an entry the server lists twice (a folder that contains itself, a
 * server that answers every folder with the same listing) ends the walk with an error, and depth
 * and entry count are capped far above what any real site has.
 */
import { childOf, type RemotePath } from '../remote-path';
import { cleanText } from '../text';
import type { VfsEntry } from './client';
import { KuduError } from './errors';

export interface ListingLimits {
  /** Folders below the root. */
  maxDepth: number;
  /** Files and folders in all. */
  maxEntries: number;
}

/** A Ghost site with its node_modules has about 50,000 entries and 20 levels. */
export const LISTING_LIMITS: ListingLimits = { maxDepth: 100, maxEntries: 500_000 };

export interface ListedFile {
  /** Relative to the walked folder, forward slashes. */
  path: string;
  size: number;
  mtime: string;
}

interface Pending {
  folder: RemotePath;
  rel: string;
  depth: number;
}

export async function walkFolder(
  root: RemotePath,
  list: (folder: RemotePath) => Promise<VfsEntry[]>,
  options: { concurrency: number; limits?: Partial<ListingLimits>; host: string },
): Promise<ListedFile[]> {
  const limits = { ...LISTING_LIMITS, ...options.limits };
  const files: ListedFile[] = [];
  const queue: Pending[] = [{ folder: root, rel: '', depth: 0 }];
  // The server's own identity of each entry (its local path, else its URL): unique in any real tree.
  const seen = new Set<string>();
  let entries = 0;
  let stopped = false;
  const visit = (at: Pending, entry: VfsEntry) => {
    const identity = entry.path || entry.href;
    if (identity) {
      if (seen.has(identity)) throw loop(root, at, entry, options.host);
      seen.add(identity);
    }
    if (++entries > limits.maxEntries) {
      throw new KuduError(`${root.text || '%HOME%'} on ${options.host} has more than ${limits.maxEntries} files and folders, more than any site this task is for; stopping the listing.`, 'too-large');
    }
    const rel = at.rel ? `${at.rel}/${entry.name}` : entry.name;
    if (entry.mime !== 'inode/directory') return files.push({ path: rel, size: entry.size, mtime: entry.mtime });
    if (at.depth + 1 > limits.maxDepth) {
      throw new KuduError(`${root.text}${cleanText(rel)}/ on ${options.host} is more than ${limits.maxDepth} folders deep, deeper than any real site; stopping the listing.`, 'too-large');
    }
    queue.push({ folder: childOf(at.folder, entry.name, true), rel, depth: at.depth + 1 });
  };
  const worker = async () => {
    for (let at = queue.shift(); at !== undefined && !stopped; at = queue.shift()) {
      for (const entry of await list(at.folder)) visit(at, entry);
    }
  };
  try {
    // Workers drain the shared queue; one that finds it empty while others still list may stop
    // early, so rounds start until nothing is left.
    while (queue.length) await Promise.all(Array.from({ length: Math.min(options.concurrency, queue.length) }, worker));
  } finally {
    stopped = true;
  }
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

function loop(root: RemotePath, at: Pending, entry: VfsEntry, host: string): KuduError {
  const where = `${root.text}${at.rel ? `${cleanText(at.rel)}/` : ''}`;
  return new KuduError(
    `Kudu's listing of ${where || '%HOME%'} on ${host} repeats '${cleanText(entry.name)}' (${cleanText(entry.path || entry.href, 200)}), which an earlier listing already had: ` +
      `the folder contains itself (a link to a folder above it) or the server answers every folder alike. Stopping the listing.`,
    'invalid',
  );
}
