/**
 * Numbers and lists as the logs show them.
 *
 * @example
 *   formatBytes(1536);           // '1.50 KiB'
 *   formatMs(2500);              // '2.50 s'
 *   listSome(['a', 'b', 'c'], 2) // 'a, b, and 1 more'
 */

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** Seconds since `startedAt` (epoch ms), one decimal: '3.2'. */
export function secondsSince(startedAt: number): string {
  return ((Date.now() - startedAt) / 1000).toFixed(1);
}

/** The first `max` items, comma-separated, and how many more there are. */
export function listSome(items: readonly string[], max = 20): string {
  return items.slice(0, max).join(', ') + (items.length > max ? `, and ${items.length - max} more` : '');
}
