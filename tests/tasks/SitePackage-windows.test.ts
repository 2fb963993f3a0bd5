/**
 * SitePackage for App Service on Windows, whatever the agent: names Windows cannot create are
 * refused before anything is written, long paths are warned about, exclude globs written with
 * backslashes work; and the backup's manifest travels beside the zip, never inside the site.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import { runTask, type TaskRun } from '../../testkit/harness/agent';
import { forbiddenSegment, windowsNameProblems } from '../../tasks/SitePackage/windows-names';
import { MANIFEST_FORMAT } from '../../lib/sqlite/manifest';

describe('SitePackage for Windows workers', function () {
  this.timeout(120_000);

  describe('names App Service on Windows cannot create', () => {
    it('knows the device names, the forbidden characters and trailing dots and spaces', () => {
      for (const name of ['CON', 'con.txt', 'Aux.js', 'nul', 'COM1', 'lpt9.log', 'prn.']) assert.match(forbiddenSegment(name) ?? '', /device name/, name);
      for (const name of ['what?.md', 'a:b', 'x|y', 'quote".txt', 'star*', '<tag>', 'tab\there']) assert.ok(forbiddenSegment(name), name);
      for (const name of ['trailing.', 'trailing ']) assert.match(forbiddenSegment(name) ?? '', /ends with a dot or a space/, name);
      for (const name of ['console.js', 'COM10', 'auxiliary.css', 'nul-ish.txt', 'index.html', '.gitkeep', 'ünïcode.md']) assert.equal(forbiddenSegment(name), undefined, name);
    });

    it('finds names equal but for case, folders included, and paths too long under D:\\home\\site\\wwwroot', () => {
      const long = `content/images/${'a'.repeat(120)}/${'b'.repeat(120)}.png`;
      const problems = windowsNameProblems(['Content/', 'content/images/Logo.png', 'content/images/logo.png', 'CON/x.txt', long, 'ok/fine.txt']);
      assert.deepEqual(problems.caseCollisions, [
        ['Content', 'content'],
        ['content/images/Logo.png', 'content/images/logo.png'],
      ]);
      assert.deepEqual(problems.forbidden, [{ name: 'CON', why: "'CON' is a device name on Windows" }]);
      // D:\home\site\wwwroot\ (21 characters) + the name with backslashes.
      assert.deepEqual(problems.tooLong, [{ name: long, length: 21 + long.length }]);
    });
  });

  describe('the task', () => {
    let work: string;
    let site: string;
    beforeEach(() => {
      work = fs.mkdtempSync(path.join(os.tmpdir(), 'sitepackage-win-'));
      site = path.join(work, 'site');
      write('index.js', 'module.exports = 1;\n');
      write('content/images/2026/cover.jpg', 'jpeg');
    });
    afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

    function write(rel: string, data: string): string {
      const file = path.join(site, ...rel.split('/'));
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, data);
      return file;
    }

    function run(inputs: Record<string, string | boolean> = {}): Promise<TaskRun> {
      return runTask({ task: 'SitePackage', inputs: { rootFolder: site, archiveFile: path.join(work, 'drop', 'site.zip'), ...inputs }, workDir: work });
    }

    it('refuses two files that differ only by case, and a device name, writing nothing', async () => {
      write('content/images/2026/Logo.png', 'upper');
      write('content/images/2026/logo.png', 'lower');
      write('assets/aux.js', 'x');
      const result = await run();
      assert.equal(result.result, 'Failed', result.output);
      assert.match(result.resultMessage!, /Not packaging: 2 name\(s\) App Service on Windows cannot create: "assets\/aux\.js": 'aux' is a device name on Windows, "content\/images\/2026\/Logo\.png" and "content\/images\/2026\/logo\.png" differ only by case/);
      assert.match(result.resultMessage!, /Rename them, or add them to exclude/);
      assert.ok(!fs.existsSync(path.join(work, 'drop', 'site.zip')));
      assert.deepEqual(fs.existsSync(path.join(work, 'drop')) ? fs.readdirSync(path.join(work, 'drop')) : [], [], 'no partial file either');
    });

    it('packages them once excluded, with the exclude written Windows-style', async () => {
      write('content/images/2026/Logo.png', 'upper');
      write('content/images/2026/logo.png', 'lower');
      const result = await run({ exclude: 'content\\images\\2026\\Logo.png' });
      assert.equal(result.result, 'Succeeded', result.output);
      const names = new AdmZip(result.variables.archiveFile.value).getEntries().map((e) => e.entryName);
      assert.ok(names.includes('content/images/2026/logo.png') && !names.includes('content/images/2026/Logo.png'), names.join(', '));
    });

    it('warns of paths over 259 characters on the worker and lists them in the summary', async () => {
      const deep = `content/images/${'x'.repeat(200)}/${'y'.repeat(50)}.jpg`;
      write(deep, 'deep');
      const result = await run();
      assert.equal(result.result, 'Succeeded', result.output);
      assert.ok(result.warnings.some((w) => /1 file\(s\) would have a path over 259 characters under D:\\home\\site\\wwwroot\\/.test(w) && w.includes(deep)), result.output);
      const summary = result.summarySections.find((s) => s.title === 'Site package drop');
      assert.ok(summary, result.summarySections.map((s) => s.title).join(', '));
      assert.ok(summary.markdown.includes(`\`${deep}\``));
    });

    describe('the backup manifest', () => {
      const manifest = (file = 'backup.db') => ({
        format: MANIFEST_FORMAT,
        file,
        fingerprint: 'v1:rollback:cc=7:pages=2:ps=4096',
        bytes: 8192,
        sha256: 'a'.repeat(64),
        databaseBytes: 8192,
        databaseSha256: 'a'.repeat(64),
        gzip: false,
        journal: 'rollback',
        pageSize: 4096,
        pageCount: 2,
        source: 'site/wwwroot/content/data/ghost.db',
        takenAt: '2026-11-23T03:00:00.000Z',
        maxLockMs: 3,
        extensionVersion: '1.0.0',
      });

      it('inside the site: left out of the zip, written beside it and published in the same artifact', async () => {
        const inSite = write('content/data/backup.db.json', JSON.stringify(manifest()));
        const result = await run({ backupManifest: inSite });
        assert.equal(result.result, 'Succeeded', result.output);
        const names = new AdmZip(result.variables.archiveFile.value).getEntries().map((e) => e.entryName);
        assert.ok(!names.some((n) => n.endsWith('.json')), names.join(', '));
        const beside = path.join(work, 'drop', 'backup.db.json');
        assert.equal(result.variables.backupManifestCopy.value, beside);
        assert.equal(fs.readFileSync(beside, 'utf8'), fs.readFileSync(inSite, 'utf8'));
        assert.deepEqual(result.artifacts.map((a) => path.basename(a.path)), ['site.zip', 'backup.db.json']);
        assert.match(result.summarySections[0].markdown, /Backup manifest \| `backup\.db\.json` beside the zip/);
      });

      it('without publishing: still beside the zip, and no artifact', async () => {
        const elsewhere = path.join(work, 'backup.db.json');
        fs.writeFileSync(elsewhere, JSON.stringify(manifest()));
        const result = await run({ backupManifest: elsewhere, publishArtifact: false });
        assert.equal(result.result, 'Succeeded', result.output);
        assert.ok(fs.existsSync(path.join(work, 'drop', 'backup.db.json')));
        assert.deepEqual(result.artifacts, []);
      });

      it('is not given when the classic editor’s file picker was left empty (the agent passes the repository root)', async () => {
        const result = await run({ backupManifest: work });
        assert.equal(result.result, 'Succeeded', result.output);
        assert.deepEqual(result.artifacts.map((a) => path.basename(a.path)), ['site.zip']);
        assert.equal(result.variables.backupManifestCopy, undefined);
      });

      it('refuses a file that is not a manifest, and a damaged one', async () => {
        const other = path.join(work, 'package.json');
        fs.writeFileSync(other, '{"name":"ghost"}');
        const notOne = await run({ backupManifest: other });
        assert.equal(notOne.result, 'Failed', notOne.output);
        assert.match(notOne.resultMessage!, /backupManifest .*package\.json is not a backup manifest/);
        const damaged = path.join(work, 'backup.db.json');
        fs.writeFileSync(damaged, JSON.stringify({ ...manifest(), fingerprint: 'v9:nonsense' }));
        const bad = await run({ backupManifest: damaged });
        assert.equal(bad.result, 'Failed', bad.output);
        assert.match(bad.resultMessage!, /backup\.db\.json is damaged/);
        assert.deepEqual(bad.artifacts, []);
        assert.ok(!fs.existsSync(path.join(work, 'drop')), 'checked before anything was written');
      });
    });
  });
});
