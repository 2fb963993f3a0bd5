// Shared helpers for the archive tests: temp folders, file trees, zip inspection with yauzl
// (independent of our reader), and hand-crafted malicious archives.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as yauzl from 'yauzl';
import * as yazl from 'yazl';

export async function tempDir(prefix: string): Promise<string> {
  return fs.promises.mkdtemp(path.join(os.tmpdir(), `archive-${prefix}-`));
}

export async function removeAll(dirs: string[]): Promise<void> {
  for (const d of dirs.splice(0)) await fs.promises.rm(d, { recursive: true, force: true });
}

/** Writes files (relative path → content); a name ending in "/" makes an empty folder. */
export async function makeTree(root: string, files: Record<string, string | Buffer>, mtime?: Date): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(root, rel);
    if (rel.endsWith('/')) {
      await fs.promises.mkdir(p, { recursive: true });
    } else {
      await fs.promises.mkdir(path.dirname(p), { recursive: true });
      await fs.promises.writeFile(p, content);
    }
  }
  if (mtime) {
    // Deepest first, so setting a file's time is not undone by writing its siblings.
    const all = await listTree(root);
    for (const rel of all.reverse()) await fs.promises.utimes(path.join(root, rel), mtime, mtime);
  }
}

/** Every file and folder under root, relative, forward slashes, folders with a trailing "/". */
export async function listTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (dir: string, rel: string) => {
    for (const d of (await fs.promises.readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) {
        out.push(r + '/');
        await visit(path.join(dir, d.name), r);
      } else {
        out.push(r);
      }
    }
  };
  await visit(root, '');
  return out;
}

export interface RawListing {
  name: string;
  compressionMethod: number;
  size: number;
  externalFileAttributes: number;
  mtime: Date;
}

/** Lists a zip with yauzl directly, not through the module under test. */
export async function rawList(zipFile: string): Promise<RawListing[]> {
  const zip = await yauzl.openPromise(zipFile, { decodeStrings: true });
  const out: RawListing[] = [];
  try {
    for await (const e of zip.eachEntry()) {
      out.push({ name: e.fileName, compressionMethod: e.compressionMethod, size: e.uncompressedSize, externalFileAttributes: e.externalFileAttributes, mtime: e.getLastModDate() });
    }
  } finally {
    zip.close();
  }
  return out;
}

export function unzipTest(zipFile: string): string {
  return execFileSync('/usr/bin/unzip', ['-t', zipFile], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

export function exists(p: string): boolean {
  return fs.existsSync(p);
}

/** Asserts a promise rejects with an ArchiveError of this code whose message matches every pattern. */
export async function rejectsWith(promise: Promise<unknown>, code: string, ...patterns: RegExp[]): Promise<Error> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof Error, `expected a rejection with ${code}, got success`);
  assert.equal((caught as Error & { code?: string }).code, code, `wrong code; message: ${(caught as Error).message}`);
  for (const p of patterns) assert.match((caught as Error).message, p);
  return caught as Error;
}

export interface CraftEntry {
  /** The name to end up in the archive, which yazl itself would refuse. */
  name: string;
  data?: Buffer | string;
  /** Unix mode (e.g. 0o120777 for a symbolic link). */
  mode?: number;
  compress?: boolean;
}

/**
 * Builds a zip whose names yazl would refuse: each entry is written under a placeholder name of
 * the same byte length, then the placeholder is patched to the real name in both the local header
 * and the central directory.
 */
export async function craftZip(file: string, entries: CraftEntry[]): Promise<void> {
  const zip = new yazl.ZipFile();
  const placeholders: Array<[Buffer, Buffer]> = [];
  entries.forEach((e, i) => {
    const real = Buffer.from(e.name, 'utf8');
    // One capital letter per entry, repeated, so placeholders are unique; folders keep their slash.
    assert.ok(i < 26, 'craftZip supports up to 26 entries');
    const isDir = e.name.endsWith('/');
    const placeholder = Buffer.from(String.fromCharCode(65 + i).repeat(real.length - (isDir ? 1 : 0)) + (isDir ? '/' : ''), 'utf8');
    assert.equal(placeholder.length, real.length);
    placeholders.push([placeholder, real]);
    const opts = { mode: e.mode, compress: e.compress ?? false, mtime: new Date('2022-02-02T02:02:02Z') };
    if (isDir) zip.addEmptyDirectory(placeholder.toString('utf8'), { mode: e.mode, mtime: opts.mtime });
    else zip.addBuffer(Buffer.from(e.data ?? 'payload'), placeholder.toString('utf8'), opts);
  });
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream) chunks.push(c as Buffer);
  const bytes = Buffer.concat(chunks);
  for (const [placeholder, real] of placeholders) {
    let count = 0;
    for (let at = bytes.indexOf(placeholder); at >= 0; at = bytes.indexOf(placeholder, at + 1)) {
      real.copy(bytes, at);
      count++;
    }
    assert.equal(count, 2, `placeholder for ${JSON.stringify(real.toString())} should be in the local header and the central directory`);
  }
  await fs.promises.writeFile(file, bytes);
}
