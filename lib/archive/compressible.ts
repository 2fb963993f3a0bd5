// Formats that are already compressed: deflating them again costs CPU (deflate runs at about
// 30 MB/s on such data) and saves nothing, so they are STORED. Everything else is deflated.
export const STORED_EXTENSIONS: ReadonlySet<string> = new Set([
  // images
  'jpg', 'jpeg', 'png', 'gif', 'webp', 'avif', 'heic',
  // video
  'mp4', 'webm', 'mov', 'm4v',
  // audio
  'mp3', 'm4a', 'ogg',
  // fonts
  'woff', 'woff2',
  // archives
  'zip', 'gz', 'tgz', 'bz2', 'xz', '7z', 'rar', 'zst',
  // documents
  'pdf',
]);

/**
 * True when a file of this name should be stored rather than deflated.
 *
 * @example
 * isAlreadyCompressed('content/images/2024/01/cover.JPG'); // true
 * isAlreadyCompressed('assets/built/screen.css');          // false
 */
export function isAlreadyCompressed(name: string): boolean {
  const slash = Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\'));
  const dot = name.lastIndexOf('.');
  if (dot <= slash + 1) return false; // no extension, or a dotfile such as ".gz"
  return STORED_EXTENSIONS.has(name.slice(dot + 1).toLowerCase());
}
