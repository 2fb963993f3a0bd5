/**
 * installJob: the extension's own backup WebJob, uploaded by AppServiceWebJobRun to the
 * Kudu-compatible server and run there for real against a live database that another process
 * keeps writing; the backup then comes down with AppServiceDownload and must be the source at
 * one instant.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { version } from '../../package.json';
import { genericEndpoint, runTask, type TaskRun } from '../../testkit/harness/agent';
import { AppProcess, checkAppDatabase, createAppDatabase, killAllApps, ledgerSha256 } from '../../testkit/harness/sqlite-app';
import { startKuduServer, type KuduServer } from '../../testkit/kudu-server';

const JOBS = 'site/wwwroot/App_Data/jobs/triggered';

describe('AppServiceWebJobRun with installJob (the built-in backup job)', function () {
  this.timeout(180_000);
  let home: string;
  let work: string;
  let kudu: KuduServer;
  const endpoints = () => ({ kudu: genericEndpoint(kudu.url, '$blog', 'pw-0123456789') });

  beforeEach(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'install-home-'));
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'install-work-'));
    fs.mkdirSync(path.join(home, 'site', 'wwwroot', 'content', 'data'), { recursive: true });
    kudu = await startKuduServer({ home, auth: { basic: { username: '$blog', password: 'pw-0123456789' } } });
  });
  afterEach(async () => {
    killAllApps();
    await kudu.close();
    fs.rmSync(home, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });

  function runJob(inputs: Record<string, string | number | boolean> = {}): Promise<TaskRun> {
    return runTask({
      task: 'AppServiceWebJobRun',
      inputs: { connectionType: 'Generic', kuduService: 'kudu', jobName: 'sqlite-backup', installJob: true, pollIntervalSeconds: 0.5, timeoutMinutes: 2, ...inputs },
      endpoints: endpoints(),
    });
  }

  const live = () => path.join(home, 'site', 'wwwroot', 'content', 'data', 'ghost.db');

  for (const journal of ['delete', 'wal'] as const) {
    it(`installs the job, backs up a live ${journal === 'wal' ? 'WAL' : 'rollback-journal'} database while the app writes, and the download is one instant of it`, async () => {
      createAppDatabase(live(), { journal, sizeMb: 24 });
      const writer = await AppProcess.start({ file: live(), role: 'writer', rate: 100 });
      const reader = await AppProcess.start({ file: live(), role: 'reader', rate: 100 });
      let result: TaskRun;
      try {
        // Let the app commit for a while first, so the backup meets a busy database.
        await new Promise((r) => setTimeout(r, 500));
        result = await runJob();
      } finally {
        const stats = await writer.stop();
        await reader.stop();
        assert.deepEqual(stats.errors, {}, 'the app saw no errors during the backup');
      }
      assert.equal(result.result, 'Succeeded', result.output);
      assert.ok(result.logLines.some((l) => l.includes(`Installing the built-in SQLite backup job ${version} as 'sqlite-backup'`)), result.output);
      assert.ok(result.logLines.some((l) => /BACKUP_RESULT /.test(l)), result.output);
      for (const entry of ['run.cmd', 'run.sh', 'run.js', 'sqlite-backup.js']) assert.ok(fs.existsSync(path.join(home, ...JOBS.split('/'), 'sqlite-backup', entry)), entry);
      // Kudu starts the job through run.sh here (run.cmd on Windows), and the launcher picks the Node.
      assert.ok(result.logLines.some((l) => /Running the backup with Node v\d+\.\d+\.\d+ \(\w+, better-sqlite3\)/.test(l)), result.output);

      const download = await runTask({
        task: 'AppServiceDownload',
        inputs: { connectionType: 'Generic', kuduService: 'kudu', remotePath: 'site/wwwroot/content/data/backup.db', destination: 'content/data/ghost.db' },
        endpoints: endpoints(),
        workDir: work,
      });
      assert.equal(download.result, 'Succeeded', download.output);
      const copy = path.join(work, 'content', 'data', 'ghost.db');
      const state = checkAppDatabase(copy);
      assert.ok(state.ops > 0, 'the backup holds commits');
      // The source kept growing after the backup; its first `ops` ledger rows must be the copy's.
      assert.equal(ledgerSha256(live(), state.ops), state.ledgerSha256);
    });
  }

  it('leaves a current copy alone, upgrades an older one and keeps its schedule', async () => {
    createAppDatabase(live(), { journal: 'delete', sizeMb: 1 });
    const first = await runJob();
    assert.equal(first.result, 'Succeeded', first.output);
    const putsAfterFirst = kudu.requests.filter((r) => r.method === 'PUT').length;

    const second = await runJob();
    assert.equal(second.result, 'Succeeded', second.output);
    assert.ok(second.logLines.some((l) => l.includes(`is the built-in backup job ${version}; nothing to install`)), second.output);
    assert.equal(kudu.requests.filter((r) => r.method === 'PUT').length, putsAfterFirst, 'nothing uploaded');

    const jobDir = path.join(home, ...JOBS.split('/'), 'sqlite-backup');
    const manifest = JSON.parse(fs.readFileSync(path.join(jobDir, 'package.json'), 'utf8'));
    manifest.version = '0.9.0';
    fs.writeFileSync(path.join(jobDir, 'package.json'), JSON.stringify(manifest));
    fs.writeFileSync(path.join(jobDir, 'settings.job'), JSON.stringify({ schedule: '0 0 3 * * *' }));
    const third = await runJob();
    assert.equal(third.result, 'Succeeded', third.output);
    assert.ok(third.logLines.some((l) => l.includes(`Upgrading 'sqlite-backup' from the built-in backup job 0.9.0 to ${version}`)), third.output);
    assert.equal(JSON.parse(fs.readFileSync(path.join(jobDir, 'package.json'), 'utf8')).version, version);
    // The schedule stays, and the new job still runs in place (its launcher finds Node from there).
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(jobDir, 'settings.job'), 'utf8')), { is_in_place: true, schedule: '0 0 3 * * *' });
  });

  it('never replaces a different job that has the same name', async () => {
    const dir = path.join(home, ...JOBS.split('/'), 'sqlite-backup');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'run.js'), "console.log('my own job')");
    const result = await runJob();
    assert.equal(result.result, 'Failed', result.output);
    assert.match(result.resultMessage!, /not this extension's backup job/);
    assert.equal(fs.readFileSync(path.join(dir, 'run.js'), 'utf8'), "console.log('my own job')");
  });

  it('fails the run, with the job\'s own error, when the database is missing', async () => {
    const result = await runJob();
    assert.equal(result.result, 'Failed', result.output);
    assert.equal(result.variables.runStatus.value, 'Failed');
    assert.match(result.resultMessage!, /ghost\.db/);
    assert.match(result.resultMessage!, /does not exist/);
  });
});
