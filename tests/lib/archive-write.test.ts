import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import { createZip, extractZip, listZip } from '../../lib/archive';
import { centralHeader, endOfCentralDirectory } from '../../lib/archive/format';
import { testing } from '../../lib/archive/write';
import { exists, listTree, makeTree, rawList, rejectsWith, removeAll, tempDir, unzipTest } from './archive-helpers';

const TEXT = Array.from({ length: 400 }, (_, i) => `const value${i} = require('./module-${i % 17}'); // line ${i}`).join('\n');
// An odd second, so a DOS-time (two-second) round trip would show.
const MTIME = new Date('2021-05-06T07:08:09Z');

describe('archive: createZip', function () {
  const dirs: string[] = [];
  afterEach(() => removeAll(dirs));

  async function site(files: Record<string, string | Buffer>, mtime: Date | undefined = MTIME): Promise<{ root: string; work: string }> {
    const work = await tempDir('write');
    dirs.push(work);
    const root = path.join(work, 'site');
    await fs.promises.mkdir(root);
    await makeTree(root, files, mtime);
    return { root, work };
  }

  it('round-trips every file byte for byte, with modification times, empty folders and unusual names', async () => {
    const binary = crypto.randomBytes(200_000);
    const { root, work } = await site({
      'index.js': TEXT,
      'content/images/2024/01/cover.jpg': binary,
      'content/data/ghost.db': Buffer.concat([Buffer.alloc(50_000), binary.subarray(0, 1000)]),
      'content/logs/': '',
      'empty.txt': '',
      'café/naïve notes.md': '# Ünïcödé\n' + TEXT,
      'deep/a/b/c/d/e.css': '.a{color:red}\n'.repeat(500),
    });
    // A file big enough to take the streaming path.
    await fs.promises.writeFile(path.join(root, 'big.bin'), Buffer.concat([crypto.randomBytes(3 << 20), Buffer.alloc(3 << 20, 'x')]));
    await fs.promises.utimes(path.join(root, 'big.bin'), MTIME, MTIME);
    await fs.promises.utimes(root, MTIME, MTIME);

    const output = path.join(work, 'out', 'site.zip');
    const progress: Array<{ files: number; bytesIn: number }> = [];
    const result = await createZip({ root, output, onProgress: (p) => progress.push(p) });

    const sourceEntries = await listTree(root);
    const sourceFiles = sourceEntries.filter((n) => !n.endsWith('/'));
    assert.equal(result.output, output);
    assert.equal(result.files, sourceFiles.length);
    assert.equal(result.entries, sourceEntries.length);
    let totalBytes = 0;
    for (const f of sourceFiles) totalBytes += (await fs.promises.stat(path.join(root, f))).size;
    assert.equal(result.bytesIn, totalBytes);
    assert.equal(result.bytesOut, (await fs.promises.stat(output)).size);
    assert.equal(result.sha256, crypto.createHash('sha256').update(await fs.promises.readFile(output)).digest('hex'));
    assert.deepEqual(result.excluded, []);
    assert.deepEqual(progress.at(-1), { files: sourceFiles.length, bytesIn: totalBytes });

    const dest = path.join(work, 'extracted');
    const extracted = await extractZip({ zipFile: output, destination: dest });
    assert.equal(extracted.files, sourceFiles.length);
    assert.deepEqual([...extracted.entries].sort(), [...sourceFiles].sort());
    assert.deepEqual(await listTree(dest), sourceEntries);
    for (const rel of sourceEntries) {
      const a = await fs.promises.stat(path.join(root, rel));
      const b = await fs.promises.stat(path.join(dest, rel));
      // Zip keeps whole seconds.
      assert.equal(Math.floor(b.mtimeMs / 1000), Math.floor(a.mtimeMs / 1000), `mtime of ${rel}`);
      if (!rel.endsWith('/')) {
        assert.ok((await fs.promises.readFile(path.join(dest, rel))).equals(await fs.promises.readFile(path.join(root, rel))), `content of ${rel}`);
      }
    }
  });

  it('stores already-compressed formats and deflates the rest', async () => {
    const noise = crypto.randomBytes(4096);
    const stored = ['a.jpg', 'b.JPEG', 'c.png', 'd.gif', 'e.webp', 'f.avif', 'g.heic', 'h.mp4', 'i.webm', 'j.mov', 'k.m4v', 'l.mp3', 'm.m4a', 'n.ogg', 'o.woff', 'p.woff2', 'q.zip', 'r.gz', 's.tgz', 't.bz2', 'u.xz', 'v.7z', 'w.rar', 'x.zst', 'y.pdf'];
    const deflated = ['a.js', 'b.css', 'c.html', 'd.json', 'e.md', 'f.svg', 'g.txt', 'README', 'h.db', '.gz'];
    const files: Record<string, Buffer | string> = {};
    for (const n of stored) files[`media/${n}`] = noise;
    for (const n of deflated) files[`text/${n}`] = TEXT;
    const { root, work } = await site(files);
    const output = path.join(work, 'site.zip');
    await createZip({ root, output });
    const methods = new Map((await rawList(output)).map((e) => [e.name, e.compressionMethod]));
    for (const n of stored) assert.equal(methods.get(`media/${n}`), 0, `${n} should be stored`);
    for (const n of deflated) assert.equal(methods.get(`text/${n}`), 8, `${n} should be deflated`);
  });

  it('names entries relative to root with forward slashes, folders with a trailing slash', async () => {
    const { root, work } = await site({ 'a/b/c.txt': 'c', 'a/d.txt': 'd', 'e/': '' });
    const output = path.join(work, 'site.zip');
    await createZip({ root: root + path.sep, output });
    const names = (await rawList(output)).map((e) => e.name);
    assert.deepEqual(names, ['a/', 'a/b/', 'a/b/c.txt', 'a/d.txt', 'e/']);
    const listed = await listZip(output);
    assert.deepEqual(listed.map((e) => [e.name, e.isDirectory]), [['a/', true], ['a/b/', true], ['a/b/c.txt', false], ['a/d.txt', false], ['e/', true]]);
    assert.equal(listed[2].mtime.getTime(), MTIME.getTime());
    assert.equal(listed[2].size, 1);
  });

  it('never archives itself, its temp file or a previous archive when output is inside root', async () => {
    const { root } = await site({ 'index.js': TEXT, 'drop/readme.txt': 'x' });
    for (const output of [path.join(root, 'site.zip'), path.join(root, 'drop', 'site.zip')]) {
      // A temp file left by a run that crashed, which must not be archived either.
      const stale = path.join(path.dirname(output), `.site.zip.0123456789ab.tmp`);
      await fs.promises.writeFile(stale, 'partial');
      for (let run = 0; run < 2; run++) {
        const result = await createZip({ root, output });
        const names = (await rawList(output)).map((e) => e.name);
        assert.ok(!names.some((n) => n.endsWith('site.zip') || n.endsWith('.tmp')), `run ${run}: ${names.join(', ')}`);
        assert.equal(result.files, 2);
      }
      await fs.promises.rm(stale);
      await fs.promises.rm(output);
    }
  });

  it('excludes node_modules, .git and nested patterns without descending, reporting top-most paths', async () => {
    const { root, work } = await site({
      'index.js': TEXT,
      'node_modules/express/index.js': TEXT,
      'node_modules/.bin/x': 'x',
      '.git/HEAD': 'ref: refs/heads/main',
      '.git/objects/ab/cdef': 'blob',
      'content/logs/ghost.log': 'log',
      'content/logs/old/1.log': 'log',
      'content/images/a.jpg': 'img',
      'content/themes/casper/node_modules/gscan/index.js': TEXT,
      'content/themes/casper/package.json': '{}',
      'debug.log': 'x',
      'content/data/trace.log': 'x',
    });
    // A dangling link inside node_modules would fail the run if the walk went in there.
    await fs.promises.symlink('nowhere', path.join(root, 'node_modules/express/dangling'));
    const output = path.join(work, 'site.zip');
    const result = await createZip({ root, output, exclude: ['node_modules/**', '.git/**', 'content/logs/**', '**/*.log'] });
    const names = (await rawList(output)).map((e) => e.name);
    assert.deepEqual(names, [
      'content/', 'content/data/', 'content/images/', 'content/images/a.jpg',
      'content/themes/', 'content/themes/casper/', 'content/themes/casper/node_modules/', 'content/themes/casper/node_modules/gscan/',
      'content/themes/casper/node_modules/gscan/index.js', 'content/themes/casper/package.json', 'index.js',
    ]);
    assert.deepEqual([...result.excluded].sort(), ['.git', 'content/data/trace.log', 'content/logs', 'debug.log', 'node_modules']);

    // "**/node_modules/**" reaches nested ones too.
    const nested = await createZip({ root, output, exclude: ['**/node_modules/**', '.git/**'] });
    assert.deepEqual(nested.excluded.filter((n) => n.includes('node_modules')).sort(), ['content/themes/casper/node_modules', 'node_modules']);
    assert.ok(nested.excluded.includes('content/themes/casper/node_modules'));
    assert.ok(!(await rawList(output)).some((e) => e.name.includes('node_modules')));
  });

  it('opens with adm-zip and passes unzip -t', async () => {
    const { root, work } = await site({ 'index.js': TEXT, 'a.png': crypto.randomBytes(10_000), 'dir/': '', 'x/y.css': TEXT });
    const output = path.join(work, 'site.zip');
    await createZip({ root, output });
    const adm = new AdmZip(output);
    const byName = new Map(adm.getEntries().map((e) => [e.entryName, e]));
    assert.deepEqual([...byName.keys()].sort(), ['a.png', 'dir/', 'index.js', 'x/', 'x/y.css']);
    assert.equal(byName.get('index.js')!.getData().toString('utf8'), TEXT);
    assert.match(unzipTest(output), /No errors detected/);
  });

  it('writes Zip64 records that yauzl, unzip and extractZip read (forced on a small archive)', async () => {
    const { root, work } = await site({ 'index.js': TEXT, 'a.png': crypto.randomBytes(5000), 'dir/': '' });
    await fs.promises.writeFile(path.join(root, 'big.txt'), TEXT.repeat(400)); // streamed (over 4 MiB)
    const output = path.join(work, 'site.zip');
    testing.forceZip64 = true;
    try {
      await createZip({ root, output });
    } finally {
      testing.forceZip64 = false;
    }
    const bytes = await fs.promises.readFile(output);
    assert.ok(bytes.includes(Buffer.from([0x50, 0x4b, 0x06, 0x06])), 'has a Zip64 end of central directory record');
    assert.match(unzipTest(output), /No errors detected/);
    assert.equal((await rawList(output)).length, 4);
    const dest = path.join(work, 'x');
    await extractZip({ zipFile: output, destination: dest });
    assert.equal(await fs.promises.readFile(path.join(dest, 'big.txt'), 'utf8'), TEXT.repeat(400));
  });

  it('switches to Zip64 by itself past 65,535 entries', async function () {
    this.timeout(180_000);
    const work = await tempDir('many');
    dirs.push(work);
    const root = path.join(work, 'site');
    // 200 folders of 328 one-byte files: 65,800 entries.
    for (let d = 0; d < 200; d++) {
      const dir = path.join(root, `d${d}`);
      await fs.promises.mkdir(dir, { recursive: true });
      await Promise.all(Array.from({ length: 328 }, (_, f) => fs.promises.writeFile(path.join(dir, `${f}.txt`), String(f % 10))));
    }
    const output = path.join(work, 'many.zip');
    const result = await createZip({ root, output });
    assert.equal(result.entries, 65_800);
    const bytes = await fs.promises.readFile(output);
    assert.ok(bytes.includes(Buffer.from([0x50, 0x4b, 0x06, 0x06])), 'has a Zip64 end of central directory record');
    assert.equal((await listZip(output)).length, 65_800);
    assert.match(unzipTest(output), /No errors detected/);
    // (Extracting 65,600 files would double the time; Zip64 extraction is covered above.)
  });

  it('keeps memory flat as the archive grows (no per-entry buffers kept alive)', async function () {
    this.timeout(120_000);
    const work = await tempDir('memory');
    dirs.push(work);
    const root = path.join(work, 'site');
    // 4,000 files of about 20 KB: zlib's output buffers for them are cut from Node's shared
    // buffer pool, as is any small buffer the writer might keep per entry.
    for (let d = 0; d < 20; d++) {
      await fs.promises.mkdir(path.join(root, `d${d}`), { recursive: true });
      await Promise.all(Array.from({ length: 200 }, (_, f) => fs.promises.writeFile(path.join(root, `d${d}`, `${f}.js`), `// ${d}/${f}\n` + TEXT.slice(0, 18_000 + f * 10))));
    }
    // In a child with --expose-gc: live buffer memory after a full collection, at every progress
    // report while the writer runs. Buffers in flight (read-ahead, zlib, output not yet on disk)
    // come and go with timing and load, so each window's lowest sample is compared: only what is
    // kept raises the floor.
    const script = `
      const { createZip } = require(${JSON.stringify(path.resolve(__dirname, '../../lib/archive'))});
      const live = () => { global.gc(); return process.memoryUsage().arrayBuffers; };
      const early = [], late = [];
      createZip({ root: ${JSON.stringify(root)}, output: ${JSON.stringify(path.join(work, 'm.zip'))},
        onProgress: (p) => {
          if (p.files <= 1500) early.push(live());
          if (p.files >= 3000) late.push(live());
        } })
        .then(() => console.log(JSON.stringify({ early: Math.min(...early), late: Math.min(...late), samples: [early.length, late.length] })));`;
    const child = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    const { early, late, samples } = JSON.parse(child.stdout);
    assert.ok(samples[0] >= 1 && samples[1] >= 1, `progress was reported early and late (${samples})`);
    // Keeping one small buffer per entry (its name) made this grow by about 49 MB over 2,700 entries.
    assert.ok(late - early < 16 << 20, `buffer memory grew by ${((late - early) / 2 ** 20).toFixed(1)} MB over 1,500 to 2,500 entries`);
  });

  it('uses Zip64 fields exactly when values overflow', () => {
    const record = {
      name: 'a.bin', isDirectory: false, method: 0, mtime: MTIME, mode: 0o100644,
      crc: 0, compressedSize: 10, size: 10, offset: 0, streamed: false, zip64Local: false,
    };
    const ZIP64_EOCD = Buffer.from([0x50, 0x4b, 0x06, 0x06]);
    const ZIP64_FIELD = Buffer.from([0x01, 0x00]);
    assert.ok(!endOfCentralDirectory(65_534, 100, 100).includes(ZIP64_EOCD));
    assert.ok(endOfCentralDirectory(65_535, 100, 100).includes(ZIP64_EOCD));
    assert.ok(endOfCentralDirectory(10, 0xffffffff, 100).includes(ZIP64_EOCD));
    assert.ok(!endOfCentralDirectory(10, 0xfffffffe, 0).includes(ZIP64_EOCD));
    const small = centralHeader(record);
    assert.equal(small.readUInt32LE(24), 10);
    assert.ok(!small.subarray(46 + 5).includes(ZIP64_FIELD));
    const big = centralHeader({ ...record, size: 5_000_000_000, compressedSize: 5_000_000_000, offset: 6_000_000_000 });
    assert.equal(big.readUInt32LE(20), 0xffffffff);
    assert.equal(big.readUInt32LE(24), 0xffffffff);
    assert.equal(big.readUInt32LE(42), 0xffffffff);
    const extra = big.subarray(46 + 5);
    assert.equal(extra.readUInt16LE(0), 1);
    assert.equal(extra.readUInt16LE(2), 24);
    assert.equal(extra.readBigUInt64LE(4), 5_000_000_000n);
    assert.equal(extra.readBigUInt64LE(12), 5_000_000_000n);
    assert.equal(extra.readBigUInt64LE(20), 6_000_000_000n);
    // Only the offset overflows: the Zip64 field holds just the offset.
    const offsetOnly = centralHeader({ ...record, offset: 5_000_000_000 });
    assert.equal(offsetOnly.readUInt32LE(24), 10);
    assert.equal(offsetOnly.subarray(46 + 5).readUInt16LE(2), 8);
  });

  it('archives a file behind a symbolic link inside root as its content; refuses links leaving root, broken links and loops', async () => {
    const { root, work } = await site({ 'real/data.txt': 'data', 'index.js': TEXT });
    await fs.promises.symlink('real/data.txt', path.join(root, 'link.txt'));
    await fs.promises.symlink(path.join(root, 'real'), path.join(root, 'linked-dir'));
    const output = path.join(work, 'site.zip');
    await createZip({ root, output });
    const dest = path.join(work, 'x');
    await extractZip({ zipFile: output, destination: dest });
    assert.equal(await fs.promises.readFile(path.join(dest, 'link.txt'), 'utf8'), 'data');
    assert.equal(await fs.promises.readFile(path.join(dest, 'linked-dir/data.txt'), 'utf8'), 'data');
    assert.ok(!(await fs.promises.lstat(path.join(dest, 'link.txt'))).isSymbolicLink());

    const secret = path.join(work, 'secret.txt');
    await fs.promises.writeFile(secret, 'outside');
    await fs.promises.symlink(secret, path.join(root, 'leak.txt'));
    await rejectsWith(createZip({ root, output: path.join(work, 'a.zip') }), 'LINK_OUTSIDE_ROOT', /"leak\.txt"/, /outside the folder being archived/, /exclude/);
    assert.ok(!exists(path.join(work, 'a.zip')));
    // Excluded, it is not looked at.
    await createZip({ root, output: path.join(work, 'b.zip'), exclude: ['leak.txt'] });
    await fs.promises.rm(path.join(root, 'leak.txt'));

    await fs.promises.symlink('missing.txt', path.join(root, 'dangling'));
    await rejectsWith(createZip({ root, output: path.join(work, 'c.zip') }), 'BROKEN_LINK', /"dangling"/, /does not exist/);
    await fs.promises.rm(path.join(root, 'dangling'));

    await fs.promises.symlink('..', path.join(root, 'real', 'up'));
    await rejectsWith(createZip({ root, output: path.join(work, 'd.zip') }), 'LINK_LOOP', /"(real|linked-dir)\/up"/, /contains it/);
    assert.ok(!exists(path.join(work, 'd.zip')));
  });

  it('creates a missing output folder', async () => {
    const { root, work } = await site({ 'a.txt': 'a' });
    const output = path.join(work, 'new', 'deeper', 'site.zip');
    await createZip({ root, output });
    assert.match(unzipTest(output), /No errors detected/);
  });

  describe('errors leave nothing at output and keep a previous archive', () => {
    async function withPrevious(work: string): Promise<{ output: string; before: Buffer }> {
      const output = path.join(work, 'drop', 'site.zip');
      const prevRoot = path.join(work, 'prev');
      await makeTree(prevRoot, { 'old.txt': 'previous good archive' });
      await createZip({ root: prevRoot, output });
      return { output, before: await fs.promises.readFile(output) };
    }
    async function assertUntouched(output: string, before: Buffer | null) {
      if (before) assert.ok((await fs.promises.readFile(output)).equals(before), 'previous archive changed');
      else assert.ok(!exists(output), 'output exists');
      const dir = path.dirname(output);
      if (exists(dir)) assert.deepEqual((await fs.promises.readdir(dir)).filter((n) => n.endsWith('.tmp')), [], 'temp file left');
    }

    it('missing root', async () => {
      const work = await tempDir('err');
      dirs.push(work);
      const output = path.join(work, 'site.zip');
      await rejectsWith(createZip({ root: path.join(work, 'nope'), output }), 'ROOT_MISSING', /nope/, /does not exist/);
      await assertUntouched(output, null);
    });

    it('root is a file', async () => {
      const { root, work } = await site({ 'a.txt': 'a' });
      const { output, before } = await withPrevious(work);
      await rejectsWith(createZip({ root: path.join(root, 'a.txt'), output }), 'ROOT_NOT_A_FOLDER', /a\.txt is a file, not a folder/);
      await assertUntouched(output, before);
    });

    it('no files to archive, or none left after excludes', async () => {
      const { root, work } = await site({ 'empty/': '', 'node_modules/x.js': 'x' });
      const { output, before } = await withPrevious(work);
      await rejectsWith(createZip({ root, output, exclude: ['node_modules/**'] }), 'NOTHING_TO_ARCHIVE', /no files to archive/, /after excluding node_modules/);
      await assertUntouched(output, before);
      const bare = path.join(work, 'bare');
      await fs.promises.mkdir(bare);
      await rejectsWith(createZip({ root: bare, output: path.join(work, 'bare.zip') }), 'NOTHING_TO_ARCHIVE', /no files to archive in .*bare\./);
      await assertUntouched(path.join(work, 'bare.zip'), null);
    });

    it('a file that vanishes while the archive is being written is named; the previous archive survives', async () => {
      const files: Record<string, string | Buffer> = { 'a-big.bin': crypto.randomBytes(5 << 20) };
      for (let i = 0; i < 80; i++) files[`f/${String(i).padStart(3, '0')}.txt`] = TEXT;
      const { root, work } = await site(files);
      const { output, before } = await withPrevious(work);
      let removed = false;
      const run = createZip({
        root,
        output,
        onProgress: () => {
          // Far enough ahead that its read has not started yet.
          if (!removed) fs.rmSync(path.join(root, 'f/070.txt'));
          removed = true;
        },
      });
      await rejectsWith(run, 'UNREADABLE', /"f\/070\.txt"/, /ENOENT/);
      await assertUntouched(output, before);
    });

    it('an unreadable file is named; the previous archive survives', async function () {
      const { root, work } = await site({ 'ok.txt': 'fine', 'secret/key.pem': 'KEY' });
      const { output, before } = await withPrevious(work);
      await fs.promises.chmod(path.join(root, 'secret/key.pem'), 0o000);
      const call = { root, output };
      let result: { code?: string; message?: string };
      if (process.getuid?.() === 0) {
        // root reads anything; run the call as "nobody" so the permission bit counts.
        for (const p of [work, path.dirname(output)]) await fs.promises.chmod(p, 0o777);
        for (const p of await listTree(root)) if (!p.endsWith('key.pem')) await fs.promises.chmod(path.join(root, p), p.endsWith('/') ? 0o755 : 0o644);
        await fs.promises.chmod(root, 0o755);
        await fs.promises.chmod(output, 0o666);
        const script = `require(${JSON.stringify(path.resolve(__dirname, '../../lib/archive'))}).createZip(${JSON.stringify(call)}).then(() => console.log('{}'), (e) => console.log(JSON.stringify({ code: e.code, message: e.message })))`;
        const child = spawnSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
        assert.equal(child.status, 0, child.stderr);
        result = JSON.parse(child.stdout);
      } else {
        result = await createZip(call).then(() => ({}), (e: { code: string; message: string }) => ({ code: e.code, message: e.message }));
      }
      assert.equal(result.code, 'UNREADABLE');
      assert.match(result.message!, /"secret\/key\.pem"/);
      assert.match(result.message!, /EACCES/);
      await assertUntouched(output, before);
    });
  });
});
