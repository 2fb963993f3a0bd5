import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as yauzl from 'yauzl';
import { createZip, extractZip, listZip, unsafeNameReason } from '../../lib/archive';
import { craftZip, exists, listTree, makeTree, rejectsWith, removeAll, tempDir } from './archive-helpers';

const TEXT = Array.from({ length: 3000 }, (_, i) => `line ${i}: the ${['quick', 'slow', 'red', 'blue'][i % 4]} fox ${i * 7919 % 1000}`).join('\n');

describe('archive: extractZip', function () {
  const dirs: string[] = [];
  afterEach(() => removeAll(dirs));

  async function work(): Promise<string> {
    const w = await tempDir('extract');
    dirs.push(w);
    return w;
  }

  async function goodZip(w: string, files: Record<string, string | Buffer> = { 'a.txt': TEXT, 'img/b.png': crypto.randomBytes(3000) }): Promise<string> {
    const root = path.join(w, 'src');
    await makeTree(root, files, new Date('2020-01-02T03:04:05Z'));
    const output = path.join(w, 'good.zip');
    await createZip({ root, output });
    return output;
  }

  describe('refuses malicious archives before writing anything', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['parent segment', '../evil', /climbs out/],
      ['parent segment after a folder', 'a/../../x', /climbs out/],
      ['backslash parent segment', '..\\evil', /climbs out/],
      ['absolute path', '/abs-archive-test-target', /absolute path/],
      ['backslash absolute path', '\\abs', /absolute path/],
      ['drive letter with backslash', 'C:\\x', /drive letter/],
      ['drive letter, relative', 'C:x', /drive letter/],
      ['UNC path', '\\\\server\\share\\x', /UNC/],
      ['forward-slash UNC path', '//server/share/x', /UNC/],
      ['NUL byte', 'ok.txt\0.jpg', /NUL byte/],
    ];
    for (const [label, name, why] of cases) {
      it(`${label}: ${JSON.stringify(name)}`, async () => {
        const w = await work();
        const zipFile = path.join(w, 'evil.zip');
        // A harmless entry first: it must not be written either.
        await craftZip(zipFile, [{ name: 'first.txt', data: 'first' }, { name, data: 'pwned' }]);
        const dest = path.join(w, 'out', 'dest');
        await rejectsWith(extractZip({ zipFile, destination: dest }), 'UNSAFE_ENTRY', new RegExp(escape(JSON.stringify(name))), why, /Nothing was extracted/, /outside the destination/);
        assert.ok(!exists(dest), 'destination should not be created');
        assert.deepEqual(await listTree(w), ['evil.zip'], 'nothing written anywhere in the work folder');
        assert.ok(!exists('/abs-archive-test-target'));
      });
    }

    it('a symbolic link entry', async () => {
      const w = await work();
      const zipFile = path.join(w, 'link.zip');
      await craftZip(zipFile, [{ name: 'ok.txt', data: 'ok' }, { name: 'etc-link', data: '/etc', mode: 0o120777 }, { name: 'etc-link/passwd', data: 'x' }]);
      const dest = path.join(w, 'dest');
      await rejectsWith(extractZip({ zipFile, destination: dest }), 'UNSAFE_ENTRY', /"etc-link"/, /symbolic link/);
      assert.ok(!exists(dest));
    });

    it('names that differ only by case, and exact duplicates', async () => {
      const w = await work();
      const zipFile = path.join(w, 'case.zip');
      await craftZip(zipFile, [{ name: 'README.md', data: 'a' }, { name: 'readme.md', data: 'b' }]);
      await rejectsWith(extractZip({ zipFile, destination: path.join(w, 'd1') }), 'UNSAFE_ENTRY', /"readme\.md"/, /differs only by letter case from "README\.md"/);
      const dup = path.join(w, 'dup.zip');
      await craftZip(dup, [{ name: 'same.txt', data: 'a' }, { name: 'same.txt', data: 'b' }]);
      await rejectsWith(extractZip({ zipFile: dup, destination: path.join(w, 'd2') }), 'UNSAFE_ENTRY', /"same\.txt"/, /appears twice/);
      assert.ok(!exists(path.join(w, 'd1')) && !exists(path.join(w, 'd2')));
    });

    it('unsafeNameReason accepts ordinary names and refuses Windows-only hazards on Windows', () => {
      for (const ok of ['a.txt', 'content/images/2024/01/x.jpg', 'dir/', 'a..b/c', '...', 'x/./y']) assert.equal(unsafeNameReason(ok), null, ok);
      assert.match(unsafeNameReason('file.txt:stream', 'win32')!, /Windows/);
      assert.equal(unsafeNameReason('file.txt:stream', 'linux'), null);
    });
  });

  it('round-trips with modification times on files and folders; reports entries', async () => {
    const w = await work();
    const zipFile = await goodZip(w, { 'a.txt': TEXT, 'sub/deeper/b.txt': 'b', 'empty/': '' });
    const dest = path.join(w, 'dest');
    const seen: string[] = [];
    const result = await extractZip({ zipFile, destination: dest, onEntry: (e) => seen.push(`${e.name}:${e.size}`) });
    assert.equal(result.files, 2);
    assert.equal(result.directories, 3);
    assert.equal(result.bytes, Buffer.byteLength(TEXT) + 1);
    assert.deepEqual(result.entries, ['a.txt', 'sub/deeper/b.txt']);
    assert.deepEqual(seen.sort(), [`a.txt:${Buffer.byteLength(TEXT)}`, 'sub/deeper/b.txt:1']);
    const want = new Date('2020-01-02T03:04:05Z').getTime();
    for (const rel of ['a.txt', 'sub/', 'sub/deeper/', 'sub/deeper/b.txt', 'empty/']) {
      assert.equal((await fs.promises.stat(path.join(dest, rel))).mtimeMs, want, rel);
    }
  });

  it('extracts an archive made by Info-ZIP zip, and refuses its stored symbolic links (zip -y)', async function () {
    if (!exists('/usr/bin/zip')) this.skip();
    const w = await work();
    const src = path.join(w, 'src');
    await makeTree(src, { 'a.txt': TEXT, 'img/b.png': crypto.randomBytes(3000), 'empty/': '' }, new Date('2020-01-02T03:04:05Z'));
    execFileSync('/usr/bin/zip', ['-r', '-q', path.join(w, 'info.zip'), '.'], { cwd: src });
    const dest = path.join(w, 'dest');
    const result = await extractZip({ zipFile: path.join(w, 'info.zip'), destination: dest });
    assert.deepEqual(result.entries.sort(), ['a.txt', 'img/b.png']);
    assert.equal(await fs.promises.readFile(path.join(dest, 'a.txt'), 'utf8'), TEXT);
    assert.equal((await fs.promises.stat(path.join(dest, 'a.txt'))).mtimeMs, new Date('2020-01-02T03:04:05Z').getTime());
    assert.ok(exists(path.join(dest, 'empty')));

    await fs.promises.symlink('/etc/hostname', path.join(src, 'host'));
    execFileSync('/usr/bin/zip', ['-r', '-q', '-y', path.join(w, 'links.zip'), '.'], { cwd: src });
    await rejectsWith(extractZip({ zipFile: path.join(w, 'links.zip'), destination: path.join(w, 'dest2') }), 'UNSAFE_ENTRY', /"host"/, /symbolic link/);
    assert.ok(!exists(path.join(w, 'dest2')));
  });

  it('accepts an empty existing destination and refuses a non-empty one', async () => {
    const w = await work();
    const zipFile = await goodZip(w);
    const dest = path.join(w, 'dest');
    await fs.promises.mkdir(dest);
    await extractZip({ zipFile, destination: dest });
    await rejectsWith(extractZip({ zipFile, destination: dest }), 'DESTINATION_NOT_EMPTY', /not empty/, /new folder/);
    await rejectsWith(extractZip({ zipFile, destination: path.join(dest, 'a.txt') }), 'DESTINATION_NOT_EMPTY', /is a file/);
  });

  it('a missing zip file is reported as missing', async () => {
    const w = await work();
    await rejectsWith(extractZip({ zipFile: path.join(w, 'nope.zip'), destination: path.join(w, 'd') }), 'ZIP_MISSING', /nope\.zip does not exist/);
    assert.ok(!exists(path.join(w, 'd')));
  });

  it('a truncated zip fails clearly, in extractZip and listZip', async () => {
    const w = await work();
    const zipFile = await goodZip(w);
    const bytes = await fs.promises.readFile(zipFile);
    for (const cut of [Math.floor(bytes.length / 2), bytes.length - 10]) {
      const partial = path.join(w, `cut-${cut}.zip`);
      await fs.promises.writeFile(partial, bytes.subarray(0, cut));
      const dest = path.join(w, `dest-${cut}`);
      await rejectsWith(extractZip({ zipFile: partial, destination: dest }), 'CORRUPT_ARCHIVE', /incomplete or corrupt/, /cut off/, /run again/);
      assert.ok(!exists(dest));
      await rejectsWith(listZip(partial), 'CORRUPT_ARCHIVE', /incomplete or corrupt/);
    }
  });

  describe('corrupt data in a deflated entry', () => {
    async function locate(zipFile: string, name: string): Promise<{ start: number; length: number }> {
      const zip = await yauzl.openPromise(zipFile);
      try {
        for await (const e of zip.eachEntry()) {
          if (e.fileName !== name) continue;
          assert.equal(e.compressionMethod, 8);
          const h = await zip.readLocalFileHeaderPromise(e, { minimal: true });
          return { start: h.fileDataStart, length: e.compressedSize };
        }
      } finally {
        zip.close();
      }
      throw new Error(`${name} not in ${zipFile}`);
    }

    // Finds a byte whose flip still inflates to the right length, so only the CRC can tell
    // (or, with wantInflateError, one whose flip breaks the deflate stream).
    function findFlip(data: Buffer, size: number, wantInflateError: boolean): number {
      for (let i = Math.floor(data.length / 2); i < data.length - 4; i++) {
        const copy = Buffer.from(data);
        copy[i] ^= 0x55;
        let ok: boolean;
        try {
          ok = zlib.inflateRawSync(copy).length === size;
        } catch {
          ok = false;
          if (wantInflateError) return i;
        }
        if (ok && !wantInflateError) return i;
      }
      throw new Error('no suitable byte found');
    }

    for (const inflateError of [false, true]) {
      it(inflateError ? 'fails as corrupt when the deflate stream breaks' : 'fails its CRC-32 check when the data decodes wrongly', async () => {
        const w = await work();
        const zipFile = await goodZip(w, { 'a.txt': TEXT, 'z.txt': 'after' });
        const { start, length } = await locate(zipFile, 'a.txt');
        const bytes = await fs.promises.readFile(zipFile);
        const at = findFlip(bytes.subarray(start, start + length), Buffer.byteLength(TEXT), inflateError);
        bytes[start + at] ^= 0x55;
        await fs.promises.writeFile(zipFile, bytes);
        const dest = path.join(w, 'dest');
        const err = await rejectsWith(extractZip({ zipFile, destination: dest }), 'CORRUPT_ARCHIVE', /"a\.txt"/, /incomplete or corrupt/);
        if (!inflateError) assert.match(err.message, /CRC-32/);
        assert.ok(!exists(dest), 'a failed extraction removes what it wrote');
      });
    }
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
