/**
 * SitePackage run as the agent runs it, on real folders; the archives checked with unzip -t,
 * adm-zip and yauzl.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import Database from 'better-sqlite3';
import { runTask, type TaskRun } from '../../testkit/harness/agent';
import { rawList } from '../lib/archive-helpers';

const MTIME = new Date('2026-11-20T08:30:00Z');
const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

describe('SitePackage', function () {
  this.timeout(120_000);
  let work: string;
  let site: string;

  beforeEach(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'sitepackage-'));
    site = path.join(work, 'site');
    const files: Record<string, string | Buffer> = {
      'package.json': '{"name":"ghost","version":"6.2.0"}',
      'index.js': 'require("./core/server");\n'.repeat(50),
      'core/server/index.js': 'module.exports = () => {};\n'.repeat(200),
      'content/images/2026/11/cover.jpg': crypto.randomBytes(40_000),
      'content/images/2026/11/logo.png': crypto.randomBytes(10_000),
      'content/themes/casper/default.hbs': '<html>{{body}}</html>\n'.repeat(100),
      'node_modules/knex/index.js': 'module.exports = {};',
      '.git/HEAD': 'ref: refs/heads/main',
    };
    for (const [rel, data] of Object.entries(files)) {
      const file = path.join(site, ...rel.split('/'));
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, data);
      fs.utimesSync(file, MTIME, MTIME);
    }
    fs.mkdirSync(path.join(site, 'content', 'logs'));
    fs.mkdirSync(path.join(site, 'content', 'data'));
    const db = new Database(path.join(site, 'content', 'data', 'ghost.db'));
    db.exec("CREATE TABLE posts (title TEXT); INSERT INTO posts VALUES ('hello')");
    db.close();
  });
  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  function run(inputs: Record<string, string | boolean> = {}): Promise<TaskRun> {
    return runTask({ task: 'SitePackage', inputs, workDir: site, variables: { 'Build.BuildId': '4711' } });
  }

  it('packages the site without node_modules and .git, publishes it and reports it', async () => {
    const result = await run();
    assert.equal(result.result, 'Succeeded', result.output);
    const zip = result.variables.archiveFile.value;
    assert.equal(path.basename(zip), '4711.zip');
    assert.ok(zip.startsWith(path.join(os.tmpdir(), 'agent-temp-')), `${zip} is in the artifact staging directory`);
    // The agent's temp folder is gone after the run; the artifact command is what matters.
    assert.deepEqual(result.artifacts, [{ artifactName: 'drop', containerFolder: 'drop', path: zip }]);
    assert.equal(result.summaries.length, 1);
    assert.match(result.variables.archiveSha256.value, /^[0-9a-f]{64}$/);
    assert.ok(Number(result.variables.archiveBytes.value) > 50_000);
    assert.ok(result.logLines.some((l) => /Excluded: .*node_modules/.test(l) && l.includes('.git')), result.output);
    assert.ok(result.logLines.some((l) => l.includes('SQLite database content/data/ghost.db: integrity_check ok')), result.output);
  });

  it('writes a zip that unzip -t and adm-zip accept: relative names, stored images, deflated text, times kept', async () => {
    const archive = path.join(work, 'out', 'site.zip');
    const result = await run({ archiveFile: archive });
    assert.equal(result.result, 'Succeeded', result.output);
    assert.equal(sha256(archive), result.variables.archiveSha256.value);
    assert.equal(fs.statSync(archive).size, Number(result.variables.archiveBytes.value));
    const test = spawnSync('unzip', ['-t', archive], { encoding: 'utf8' });
    assert.equal(test.status, 0, test.stdout + test.stderr);

    const names = new AdmZip(archive).getEntries().map((e) => e.entryName).sort();
    assert.equal(names.length, Number(result.variables.archiveEntries.value));
    assert.ok(names.includes('content/images/2026/11/cover.jpg'));
    assert.ok(names.includes('content/logs/'), 'empty folders are kept');
    assert.ok(!names.some((n) => n.startsWith('node_modules/') || n.startsWith('.git/')), names.join(', '));
    assert.ok(!names.some((n) => n.includes('\\') || n.startsWith('/') || n.startsWith('site/')), names.join(', '));

    const entries = await rawList(archive);
    const method = (name: string) => entries.find((e) => e.name === name)!.compressionMethod;
    assert.equal(method('content/images/2026/11/cover.jpg'), 0, 'a JPEG is stored');
    assert.equal(method('content/images/2026/11/logo.png'), 0, 'a PNG is stored');
    assert.equal(method('core/server/index.js'), 8, 'JavaScript is deflated');
    const extracted = path.join(work, 'check');
    new AdmZip(archive).extractAllTo(extracted);
    const mtime = fs.statSync(path.join(extracted, 'content', 'themes', 'casper', 'default.hbs')).mtimeMs;
    assert.ok(Math.abs(mtime - MTIME.getTime()) <= 2000, new Date(mtime).toISOString());
  });

  it('never includes the archive itself when it is written inside the site', async () => {
    const inside = path.join(site, 'drop', 'site.zip');
    fs.mkdirSync(path.dirname(inside));
    fs.writeFileSync(inside, 'an older archive');
    const result = await run({ archiveFile: inside, publishArtifact: false });
    assert.equal(result.result, 'Succeeded', result.output);
    const names = new AdmZip(inside).getEntries().map((e) => e.entryName);
    assert.ok(!names.some((n) => n.endsWith('.zip') || n.includes('.tmp')), names.join(', '));
    assert.deepEqual(result.artifacts, []);
  });

  it('refuses a database with a leftover journal, or a corrupt one, and writes nothing', async () => {
    const archive = path.join(work, 'out', 'site.zip');
    fs.writeFileSync(path.join(site, 'content', 'data', 'ghost.db-journal'), 'half a transaction');
    const journal = await run({ archiveFile: archive });
    assert.equal(journal.result, 'Failed', journal.output);
    assert.match(journal.resultMessage!, /Not packaging content\/data\/ghost\.db: .*-journal beside it/);
    assert.ok(!fs.existsSync(path.join(work, 'out')), 'nothing written');
    fs.rmSync(path.join(site, 'content', 'data', 'ghost.db-journal'));

    const db = path.join(site, 'content', 'data', 'ghost.db');
    fs.truncateSync(db, fs.statSync(db).size - 100);
    const corrupt = await run({ archiveFile: archive });
    assert.equal(corrupt.result, 'Failed', corrupt.output);
    assert.match(corrupt.resultMessage!, /Not packaging content\/data\/ghost\.db/);
    assert.ok(!fs.existsSync(archive));

    const unchecked = await run({ archiveFile: archive, verifySqlite: false });
    assert.equal(unchecked.result, 'Succeeded', unchecked.output);
  });

  it('does not take a Thumbs.db (not SQLite) for a database', async () => {
    fs.writeFileSync(path.join(site, 'content', 'images', 'Thumbs.db'), crypto.randomBytes(2048));
    const result = await run({ archiveFile: path.join(work, 'a.zip') });
    assert.equal(result.result, 'Succeeded', result.output);
  });

  it('fails clearly on a missing folder, and on a folder with nothing left to package', async () => {
    const missing = await runTask({ task: 'SitePackage', inputs: { rootFolder: path.join(work, 'nope'), archiveFile: path.join(work, 'a.zip') } });
    assert.equal(missing.result, 'Failed', missing.output);
    assert.match(missing.resultMessage!, /does not exist/);

    const empty = await run({ exclude: '**', archiveFile: path.join(work, 'a.zip') });
    assert.equal(empty.result, 'Failed', empty.output);
    assert.match(empty.resultMessage!, /no files to archive/);
    assert.ok(!fs.existsSync(path.join(work, 'a.zip')));
  });
});
