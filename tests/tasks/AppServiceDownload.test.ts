/**
 * AppServiceDownload against the Kudu-compatible server: real files, real zips, faults.
 */
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { fingerprintFromBytes, formatFingerprint } from '../../lib/sqlite/fingerprint';
import { MANIFEST_FORMAT, writeManifest, type BackupManifest } from '../../lib/sqlite/manifest';
import { genericEndpoint, runTask, type TaskRun } from '../../testkit/harness/agent';
import { startKuduServer, type KuduServer } from '../../testkit/kudu-server';
import { craftZip } from '../lib/archive-helpers';

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const DATA = 'site/wwwroot/content/data';
const IMAGES = 'site/wwwroot/content/images';

describe('AppServiceDownload', function () {
  this.timeout(180_000);
  let home: string;
  let work: string;
  let kudu: KuduServer;

  beforeEach(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'download-home-'));
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'download-work-'));
    kudu = await startKuduServer({ home, auth: { basic: { username: '$blog', password: 'secret-pw-1' } } });
  });
  afterEach(async () => {
    await kudu.close();
    fs.rmSync(home, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });

  function run(inputs: Record<string, string | number | boolean>, options: { measureMemory?: boolean } = {}): Promise<TaskRun> {
    return runTask({
      task: 'AppServiceDownload',
      inputs: { connectionType: 'Generic', kuduService: 'kudu', ...inputs },
      endpoints: { kudu: genericEndpoint(kudu.url, '$blog', 'secret-pw-1') },
      workDir: work,
      measureMemory: options.measureMemory,
    });
  }

  function remote(rel: string): string {
    return path.join(home, ...rel.split('/'));
  }

  function put(rel: string, content: string | Buffer, mtime?: Date): string {
    const file = remote(rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
    if (mtime) fs.utimesSync(file, mtime, mtime);
    return file;
  }

  function makeDb(rel: string, rows = 200): string {
    const file = remote(rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const db = new Database(file);
    db.exec('CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT, html TEXT)');
    const insert = db.prepare('INSERT INTO posts (title, html) VALUES (?, ?)');
    for (let i = 0; i < rows; i++) insert.run(`post ${i}`, 'x'.repeat(1000));
    db.close();
    return file;
  }

  function images(): Record<string, Buffer> {
    const files: Record<string, Buffer> = {};
    for (const month of ['2026/10', '2026/11']) {
      for (let i = 0; i < 5; i++) files[`${month}/photo-${i}.jpg`] = crypto.randomBytes(20_000 + i);
    }
    files['size/w600/2026/11/photo-0.jpg'] = crypto.randomBytes(5000);
    for (const [rel, data] of Object.entries(files)) put(`${IMAGES}/${rel}`, data, new Date('2026-11-01T10:00:00Z'));
    return files;
  }

  describe('a file', () => {
    it('downloads a database, checks it and sets the outputs', async () => {
      const source = makeDb(`${DATA}/backup.db`);
      const result = await run({ remotePath: `${DATA}/backup.db`, destination: 'content/data/ghost.db' });
      assert.equal(result.result, 'Succeeded', result.output);
      const local = path.join(work, 'content', 'data', 'ghost.db');
      assert.equal(sha256(local), sha256(source));
      assert.equal(result.variables.downloadedPath.value, local);
      assert.equal(result.variables.downloadedFiles.value, '1');
      assert.equal(result.variables.downloadedBytes.value, String(fs.statSync(source).size));
      assert.equal(result.variables.downloadedSha256.value, sha256(source));
      assert.ok(result.logLines.some((l) => l.includes('SQLite check passed: 1 tables')), result.output);
      assert.deepEqual(fs.readdirSync(path.dirname(local)), ['ghost.db'], 'no temporary file left');
      assert.equal(result.variables.databaseFingerprint, undefined, 'no manifest, no fingerprint');
    });

    describe('with the backup manifest beside it', () => {
      function manifestFor(file: string, changes: Partial<BackupManifest> = {}): BackupManifest {
        const bytes = fs.statSync(file).size;
        return {
          format: MANIFEST_FORMAT,
          file: path.basename(file),
          fingerprint: formatFingerprint(fingerprintFromBytes({ header: fs.readFileSync(file).subarray(0, 100) })),
          bytes,
          sha256: sha256(file),
          databaseBytes: bytes,
          databaseSha256: sha256(file),
          gzip: false,
          journal: 'rollback',
          pageSize: 4096,
          pageCount: bytes / 4096,
          source: '/home/site/wwwroot/content/data/ghost.db',
          takenAt: '2026-11-23T01:02:03.456Z',
          maxLockMs: 12,
          extensionVersion: '1.0.0',
          ...changes,
        };
      }

      it('outputs the fingerprint and the facts of the backup it describes', async () => {
        const source = makeDb(`${DATA}/backup.db`);
        const manifest = manifestFor(source);
        writeManifest(source, manifest);
        const result = await run({ remotePath: `${DATA}/backup.db`, destination: 'content/data/ghost.db' });
        assert.equal(result.result, 'Succeeded', result.output);
        assert.equal(result.variables.databaseFingerprint.value, manifest.fingerprint);
        assert.equal(result.variables.databaseFingerprint.isOutput, true);
        assert.equal(result.variables.backupTakenAt.value, manifest.takenAt);
        assert.equal(result.variables.backupSourcePath.value, manifest.source);
        assert.ok(result.logLines.some((l) => l.includes(`fingerprint ${manifest.fingerprint}`)), result.output);
        assert.deepEqual(fs.readdirSync(path.join(work, 'content', 'data')), ['ghost.db'], 'the manifest is not put beside the download');
      });

      it('fails, leaving the destination alone, when the manifest describes another file', async () => {
        const source = makeDb(`${DATA}/backup.db`);
        writeManifest(source, manifestFor(source, { sha256: 'ab'.repeat(32) }));
        const result = await run({ remotePath: `${DATA}/backup.db`, destination: 'content/data/ghost.db' });
        assert.equal(result.result, 'Failed', result.output);
        assert.match(result.resultMessage!, /backup and its manifest disagree: .*backup\.db\.json describes a file with sha256 abab.*run the download again/);
        assert.equal(result.variables.databaseFingerprint, undefined);
        assert.ok(!fs.existsSync(path.join(work, 'content', 'data', 'ghost.db')));
      });

      it('fails on a manifest that is damaged, and ignores a .json that is no manifest', async () => {
        const source = makeDb(`${DATA}/backup.db`);
        put(`${DATA}/backup.db.json`, JSON.stringify({ ...manifestFor(source), fingerprint: 'v1:nonsense' }));
        const damaged = await run({ remotePath: `${DATA}/backup.db`, destination: 'a.db' });
        assert.equal(damaged.result, 'Failed', damaged.output);
        assert.match(damaged.resultMessage!, /manifest .*backup\.db\.json is damaged/);

        put(`${DATA}/backup.db.json`, JSON.stringify({ theme: 'casper' }));
        const foreign = await run({ remotePath: `${DATA}/backup.db`, destination: 'b.db' });
        assert.equal(foreign.result, 'Succeeded', foreign.output);
        assert.equal(foreign.variables.databaseFingerprint, undefined);
        assert.ok(foreign.logLines.some((l) => l.includes('is not a backup manifest; ignoring it')), foreign.output);
      });
    });

    it('resumes a broken download with Range and If-Range; the result is identical', async () => {
      const source = put(`${DATA}/big.bin`, crypto.randomBytes(12 * 1024 * 1024));
      const fault = kudu.faults.add({ method: 'GET', path: `/api/vfs/${DATA}/big.bin`, resetAfterBytes: 5 * 1024 * 1024 });
      const result = await run({ remotePath: `${DATA}/big.bin`, destination: 'big.bin' });
      assert.equal(result.result, 'Succeeded', result.output);
      assert.equal(fault.hits, 1);
      assert.equal(sha256(path.join(work, 'big.bin')), sha256(source));
      assert.equal(result.variables.downloadedSha256.value, sha256(source));
      const ranged = kudu.requests.filter((r) => r.range);
      assert.equal(ranged.length, 1, JSON.stringify(kudu.requests));
      assert.match(ranged[0].range!, /^bytes=[1-9]\d*-$/);
      assert.match(result.output, /resumed 1×/);
    });

    it('starts over when the file changed on the server during the download', async () => {
      put(`${DATA}/big.bin`, crypto.randomBytes(8 * 1024 * 1024));
      kudu.faults.add({ method: 'GET', path: `/api/vfs/${DATA}/big.bin`, resetAfterBytes: 3 * 1024 * 1024 });
      kudu.faults.add({ method: 'GET', path: `/api/vfs/${DATA}/big.bin`, delayMs: 1500 });
      const pending = run({ remotePath: `${DATA}/big.bin`, destination: 'big.bin' });
      // While the resume waits, the app writes a new version of the file.
      const deadline = Date.now() + 30_000;
      while (!kudu.requests.some((r) => r.range) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const changed = put(`${DATA}/big.bin`, crypto.randomBytes(7 * 1024 * 1024), new Date(Date.now() + 60_000));
      const result = await pending;
      assert.equal(result.result, 'Succeeded', result.output);
      assert.equal(sha256(path.join(work, 'big.bin')), sha256(changed));
      assert.match(result.output, /changed on the server during the download; starting over/);
    });

    it('fails clearly when retries run out, and leaves the destination untouched', async () => {
      put(`${DATA}/backup.db`, 'whatever');
      const previous = path.join(work, 'backup.db');
      fs.writeFileSync(previous, 'the previous good copy');
      kudu.faults.add({ method: 'GET', path: `/api/vfs/${DATA}/backup.db`, status: 503, headers: { 'Retry-After': '0' }, times: Infinity });
      const result = await run({ remotePath: `${DATA}/backup.db`, destination: 'backup.db', retries: 2 });
      assert.equal(result.result, 'Failed', result.output);
      assert.match(result.resultMessage!, /503/);
      assert.match(result.resultMessage!, /gave up after 3 tries/);
      assert.equal(fs.readFileSync(previous, 'utf8'), 'the previous good copy');
      assert.deepEqual(fs.readdirSync(work), ['backup.db']);
    });

    it('refuses a 0-byte database and explains the locked-file problem', async () => {
      put(`${DATA}/ghost.db`, '');
      const result = await run({ remotePath: `${DATA}/ghost.db`, destination: 'ghost.db' });
      assert.equal(result.result, 'Failed', result.output);
      assert.match(result.resultMessage!, /empty \(0 bytes\)/);
      assert.match(result.resultMessage!, /locked/);
      assert.match(result.resultMessage!, /AppServiceWebJobRun with installJob: true/);
      assert.deepEqual(fs.readdirSync(work), []);
    });

    it('refuses a corrupt database and a .db that is not SQLite', async () => {
      const source = makeDb(`${DATA}/backup.db`, 400);
      const bytes = fs.readFileSync(source);
      bytes.fill(0xee, 4096 * 2, 4096 * 2 + 100);
      fs.writeFileSync(source, bytes);
      const corrupt = await run({ remotePath: `${DATA}/backup.db`, destination: 'ghost.db' });
      assert.equal(corrupt.result, 'Failed', corrupt.output);
      assert.match(corrupt.resultMessage!, /not a healthy SQLite database/);
      assert.match(corrupt.resultMessage!, new RegExp(`${DATA}/backup.db`));

      put(`${DATA}/notes.db`, 'just some text, not a database');
      const text = await run({ remotePath: `${DATA}/notes.db`, destination: 'notes.db' });
      assert.equal(text.result, 'Failed', text.output);
      assert.match(text.resultMessage!, /not a SQLite database/);
      assert.deepEqual(fs.readdirSync(work), []);
    });

    it('checks a file by its content with verifySqlite always, and never checks with never', async () => {
      put(`${DATA}/data.bin`, 'plain bytes');
      const always = await run({ remotePath: `${DATA}/data.bin`, destination: 'data.bin', verifySqlite: 'always' });
      assert.equal(always.result, 'Failed', always.output);
      put(`${DATA}/ghost.db`, '');
      const never = await run({ remotePath: `${DATA}/ghost.db`, destination: 'ghost.db', verifySqlite: 'never' });
      assert.equal(never.result, 'Succeeded', never.output);
    });

    it('names the remote path on 404, and keeps an existing file when overwrite is false', async () => {
      const missing = await run({ remotePath: `${DATA}/nope.db`, destination: 'nope.db' });
      assert.equal(missing.result, 'Failed', missing.output);
      assert.match(missing.resultMessage!, new RegExp(`${DATA}/nope.db does not exist`));

      makeDb(`${DATA}/backup.db`);
      fs.writeFileSync(path.join(work, 'ghost.db'), 'mine');
      const kept = await run({ remotePath: `${DATA}/backup.db`, destination: 'ghost.db', overwrite: false });
      assert.equal(kept.result, 'Failed', kept.output);
      assert.match(kept.resultMessage!, /already exists/);
      assert.equal(fs.readFileSync(path.join(work, 'ghost.db'), 'utf8'), 'mine');
    });

    it('downloads a 1 GiB file with bounded memory', async function () {
      const file = remote(`${DATA}/huge.bin`);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const fd = fs.openSync(file, 'w');
      // A few real blocks spread over a sparse file: cheap to make, still 1 GiB on the wire.
      for (let i = 0; i < 16; i++) fs.writeSync(fd, crypto.randomBytes(65536), 0, 65536, i * 64 * 1024 * 1024);
      fs.ftruncateSync(fd, 1024 * 1024 * 1024);
      fs.closeSync(fd);
      const result = await run({ remotePath: `${DATA}/huge.bin`, destination: 'huge.bin' }, { measureMemory: true });
      assert.equal(result.result, 'Succeeded', result.output);
      assert.equal(fs.statSync(path.join(work, 'huge.bin')).size, 1024 * 1024 * 1024);
      // Bounded, not a target: a streamed 1 GiB stays a small fraction of it whatever the GC's timing
      // on a busy machine. The 150 MB target is measured by `npm run bench:download`.
      assert.ok(result.maxRssBytes! < 256 * 1024 * 1024, `peak RSS ${(result.maxRssBytes! / 1048576).toFixed(0)} MiB`);
    });
  });

  describe('a folder', () => {
    it('extracts it with modification times, into a folder that keeps its other files', async () => {
      const files = images();
      fs.mkdirSync(remote(`${IMAGES}/empty`), { recursive: true });
      fs.mkdirSync(path.join(work, 'content', 'images'), { recursive: true });
      fs.writeFileSync(path.join(work, 'content', 'images', 'from-git.png'), 'tracked in git');
      const result = await run({ remotePath: `${IMAGES}/`, destination: 'content/images' });
      assert.equal(result.result, 'Succeeded', result.output);
      const local = path.join(work, 'content', 'images');
      for (const [rel, data] of Object.entries(files)) {
        const file = path.join(local, ...rel.split('/'));
        assert.ok(fs.readFileSync(file).equals(data), rel);
        // Zip keeps DOS times (2 s, local time): compare to the second.
        assert.ok(Math.abs(fs.statSync(file).mtimeMs - Date.parse('2026-11-01T10:00:00Z')) <= 2000, `${rel} mtime ${fs.statSync(file).mtime.toISOString()}`);
      }
      assert.equal(fs.readFileSync(path.join(local, 'from-git.png'), 'utf8'), 'tracked in git');
      assert.ok(fs.statSync(path.join(local, 'empty')).isDirectory());
      assert.equal(result.variables.downloadedFiles.value, String(Object.keys(files).length));
      assert.equal(result.variables.downloadedBytes.value, String(Object.values(files).reduce((n, b) => n + b.length, 0)));
      assert.deepEqual(fs.readdirSync(path.join(work, 'content')), ['images'], 'no staging folder or zip left');
    });

    it('handles a folder path given without the trailing slash (Kudu answers 307)', async () => {
      images();
      const result = await run({ remotePath: IMAGES, destination: 'images' });
      assert.equal(result.result, 'Succeeded', result.output);
      assert.ok(fs.existsSync(path.join(work, 'images', '2026', '11', 'photo-4.jpg')));
    });

    it('keeps the zip when extract is false', async () => {
      const files = images();
      const result = await run({ remotePath: `${IMAGES}/`, destination: 'drop', extract: false });
      assert.equal(result.result, 'Succeeded', result.output);
      const zip = path.join(work, 'drop', 'images.zip');
      assert.equal(result.variables.downloadedPath.value, zip);
      assert.equal(result.variables.downloadedSha256.value, sha256(zip));
      assert.equal(result.variables.downloadedFiles.value, String(Object.keys(files).length));
    });

    it('detects a file the zip endpoint skipped because it was locked', async () => {
      images();
      kudu.lockFile(`${IMAGES}/2026/11/photo-3.jpg`);
      const strict = await run({ remotePath: `${IMAGES}/`, destination: 'images' });
      assert.equal(strict.result, 'Failed', strict.output);
      assert.match(strict.resultMessage!, /1 file\(s\) .* missing from Kudu's zip: 2026\/11\/photo-3\.jpg/);
      assert.ok(!fs.existsSync(path.join(work, 'images')), 'nothing extracted into place');

      const lenient = await run({ remotePath: `${IMAGES}/`, destination: 'images', requireComplete: false });
      assert.equal(lenient.result, 'Succeeded', lenient.output);
      assert.ok(lenient.warnings.some((w) => w.includes('2026/11/photo-3.jpg')), lenient.output);
    });

    it('downloads again when the zip arrives truncated, and fails cleanly when it always does', async () => {
      images();
      kudu.faults.add({ method: 'GET', path: /^\/api\/zip\//, truncateAfterBytes: 30_000 });
      const recovered = await run({ remotePath: `${IMAGES}/`, destination: 'images' });
      assert.equal(recovered.result, 'Succeeded', recovered.output);
      assert.ok(recovered.warnings.some((w) => /incomplete or corrupt/.test(w)), recovered.output);

      kudu.faults.add({ method: 'GET', path: /^\/api\/zip\//, truncateAfterBytes: 30_000, times: Infinity });
      const failed = await run({ remotePath: `${IMAGES}/`, destination: 'again', retries: 1 });
      assert.equal(failed.result, 'Failed', failed.output);
      assert.match(failed.resultMessage!, /incomplete or corrupt in 2 tries/);
      assert.ok(!fs.existsSync(path.join(work, 'again')));
    });

    for (const [label, name] of [
      ['a ../ entry', '../../escaped.txt'],
      ['an absolute path', '/tmp/escaped-abs.txt'],
    ]) {
      it(`rejects a zip with ${label} and writes nothing outside the destination`, async () => {
        const evil = path.join(work, 'evil.zip');
        await craftZip(evil, [
          { name: 'ok.txt', data: 'fine' },
          { name, data: 'pwned' },
        ]);
        kudu.faults.add({ method: 'GET', path: /^\/api\/zip\//, status: 200, body: fs.readFileSync(evil), headers: { 'Content-Type': 'application/zip' } });
        fs.mkdirSync(remote(`${IMAGES}`), { recursive: true });
        const result = await run({ remotePath: `${IMAGES}/`, destination: 'nested/images' });
        assert.equal(result.result, 'Failed', result.output);
        assert.ok(!fs.existsSync(path.join(work, 'escaped.txt')) && !fs.existsSync(path.join(work, 'nested', 'escaped.txt')));
        assert.ok(!fs.existsSync('/tmp/escaped-abs.txt'));
        assert.ok(!fs.existsSync(path.join(work, 'nested', 'images')));
        assert.deepEqual(fs.readdirSync(path.join(work, 'nested')), [], 'no staging left');
      });
    }

    it('refuses to replace files when overwrite is false, changing nothing', async () => {
      images();
      const local = path.join(work, 'images', '2026', '10');
      fs.mkdirSync(local, { recursive: true });
      fs.writeFileSync(path.join(local, 'photo-1.jpg'), 'mine');
      const result = await run({ remotePath: `${IMAGES}/`, destination: 'images', overwrite: false });
      assert.equal(result.result, 'Failed', result.output);
      assert.match(result.resultMessage!, /overwrite is false/);
      assert.deepEqual(fs.readdirSync(local), ['photo-1.jpg']);
    });
  });
});
