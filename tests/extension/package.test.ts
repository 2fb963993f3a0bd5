/**
 * The .vsix as a user gets it: built with tfx-cli, unpacked into an empty folder outside the
 * repository, and every task run from there under Node 24 with nothing of this repository's
 * node_modules within reach. Each task gets one real scenario.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import Database from 'better-sqlite3';
import { fingerprintFromBytes, formatFingerprint } from '../../lib/sqlite/fingerprint';
import { packageExtension } from '../../scripts/package';
import { genericEndpoint, runTask, type TaskRun } from '../../testkit/harness/agent';
import { createSite, prepareDatabase, readDb } from '../../testkit/harness/ghost-site';
import { startKuduServer } from '../../testkit/kudu-server';
import { SERVICE_PRINCIPAL_PEM, startAzureFake } from '../../testkit/azure-fake';

/** How the agent runs the task: its Node24 handler by default; `{ handler: 'Node20_1', nodePath }` for an agent with Node 20 only. */
type Runtime = { handler?: 'Node24' | 'Node20_1'; nodePath?: string };
type Scenario = (taskRoot: string, runtime: Runtime) => Promise<void>;

/** Node 20 as agents carry it (externals/node20_1); the system Node here. NODE20 names another. */
const NODE20 = process.env.NODE20 ?? '/usr/bin/node';

const PREBUILDS = ['darwin-arm64', 'darwin-x64', 'linux-arm64', 'linux-x64', 'linuxmusl-arm64', 'linuxmusl-x64', 'win32-arm64', 'win32-x64'];

describe('the packaged extension (.vsix)', function () {
  this.timeout(300_000);
  let vsix: string;
  let unpacked: string;

  before(async () => {
    vsix = await packageExtension();
    unpacked = fs.mkdtempSync(path.join(os.tmpdir(), 'vsix-'));
    new AdmZip(vsix).extractAllTo(unpacked);
  });
  after(() => fs.rmSync(unpacked, { recursive: true, force: true }));

  const taskRoot = (task: string) => path.join(unpacked, 'tasks', task);

  it('is well under the Marketplace size limit', () => {
    const mib = fs.statSync(vsix).size / 1048576;
    assert.ok(mib < 50, `${mib.toFixed(1)} MiB`);
  });

  it('carries a finished listing: Preview flag, repository and links, license, branding, screenshots, the overview', () => {
    const manifest = fs.readFileSync(path.join(unpacked, 'extension.vsixmanifest'), 'utf8');
    assert.match(manifest, /<GalleryFlags>Preview<\/GalleryFlags>/);
    for (const link of ['GitHub', 'Getstarted', 'Support', 'License']) {
      assert.match(manifest, new RegExp(`Id="Microsoft\\.VisualStudio\\.Services\\.Links\\.${link}" Value="https://github\\.com/appservice-sqlite/appservice-sqlite-tasks`), link);
    }
    assert.match(manifest, /Id="Microsoft\.VisualStudio\.Services\.Branding\.Color" Value="#[0-9a-f]{6}"/i);
    assert.match(manifest, /<License>LICENSE<\/License>/);
    const shots = [...manifest.matchAll(/Type="Microsoft\.VisualStudio\.Services\.Screenshots\.\d+" d:Source="File" Path="([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(shots, ['images/screenshots/guard-failed.png', 'images/screenshots/summaries.png']);
    for (const shot of shots) {
      const png = fs.readFileSync(path.join(unpacked, shot));
      assert.ok(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) && png.length > 20_000, `${shot} is a real PNG`);
    }
    assert.ok(fs.existsSync(path.join(unpacked, 'LICENSE')) && fs.existsSync(path.join(unpacked, 'overview.md')));
  });

  it('cannot reach this repository’s node_modules from where it is unpacked', () => {
    for (let dir = unpacked; dir !== path.dirname(dir); dir = path.dirname(dir)) {
      assert.ok(!fs.existsSync(path.join(path.dirname(dir), 'node_modules')), `${path.dirname(dir)}/node_modules exists`);
    }
  });

  it('carries each task with task.json, one bundled entry and its icon', () => {
    const tasks = fs.readdirSync(path.join(unpacked, 'tasks'));
    assert.deepEqual(tasks.sort(), Object.keys(SCENARIOS).sort(), 'every packaged task has a scenario below, and every scenario a task');
    for (const task of tasks) {
      for (const file of ['task.json', 'index.js', 'icon.png']) assert.ok(fs.existsSync(path.join(taskRoot(task), file)), `${task}/${file}`);
    }
  });

  it('ships better-sqlite3 with its prebuilt binary for every agent OS to the tasks that use SQLite', () => {
    for (const task of fs.readdirSync(path.join(unpacked, 'tasks'))) {
      const module = path.join(taskRoot(task), 'node_modules', 'better-sqlite3');
      if (!fs.existsSync(module)) continue;
      for (const target of PREBUILDS) assert.ok(fs.existsSync(path.join(module, 'prebuilds', `${target}.node`)), `${task}: ${target}`);
      assert.ok(!fs.existsSync(path.join(module, 'deps')), `${task}: the SQLite sources are left out`);
    }
    assert.ok(fs.existsSync(path.join(taskRoot('GhostMigrate'), 'node_modules', 'better-sqlite3')));
  });

  const SCENARIOS: Record<string, Scenario> = {
    async AppServiceWebJobRun(root, runtime) {
      // The built-in backup job travels inside the task: install it from the package and run it.
      const home = fs.mkdtempSync(path.join(os.tmpdir(), 'vsix-home-'));
      const kudu = await startKuduServer({ home, auth: { basic: { username: '$app', password: 'pw-123456' } } });
      try {
        const data = path.join(home, 'site', 'wwwroot', 'content', 'data');
        fs.mkdirSync(data, { recursive: true });
        const db = new Database(path.join(data, 'ghost.db'));
        db.exec("CREATE TABLE posts (title TEXT); INSERT INTO posts VALUES ('hello')");
        db.close();
        const run = await runTask({
          task: 'AppServiceWebJobRun',
          taskRoot: root,
          ...runtime,
          inputs: { connectionType: 'Generic', kuduService: 'k', jobName: 'sqlite-backup', installJob: true, pollIntervalSeconds: 0.2 },
          endpoints: { k: genericEndpoint(kudu.url, '$app', 'pw-123456') },
        });
        assertRan(run);
        assert.equal(run.variables.runStatus.value, 'Success');
        assert.ok(run.logLines.some((l) => l.includes('BACKUP_RESULT')), run.output);
        assert.ok(fs.readFileSync(path.join(data, 'backup.db')).equals(fs.readFileSync(path.join(data, 'ghost.db'))));
      } finally {
        await kudu.close();
        fs.rmSync(home, { recursive: true, force: true });
      }
    },

    async SqliteBackup(root, runtime) {
      const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vsix-backup-'));
      try {
        const db = new Database(path.join(work, 'app.db'));
        db.exec("CREATE TABLE posts (title TEXT); INSERT INTO posts VALUES ('hello')");
        db.close();
        const run = await runTask({ task: 'SqliteBackup', taskRoot: root, ...runtime, inputs: { databasePath: 'app.db', backupPath: 'backups/', compress: 'gzip' }, workDir: work });
        assertRan(run);
        assert.match(run.variables.backupFile.value, /backups[/\\]app-\d{8}-\d{6}\.db\.gz$/);
        assert.ok(fs.existsSync(run.variables.backupFile.value));
      } finally {
        fs.rmSync(work, { recursive: true, force: true });
      }
    },

    async AppServiceDownload(root, runtime) {
      const home = fs.mkdtempSync(path.join(os.tmpdir(), 'vsix-home-'));
      const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vsix-work-'));
      const azure = await startAzureFake();
      const kudu = await startKuduServer({ home, auth: { basic: { username: '$app', password: 'pw-123456' }, bearer: azure.kuduAccepts } });
      try {
        const data = path.join(home, 'site', 'wwwroot', 'content', 'data');
        fs.mkdirSync(data, { recursive: true });
        const db = new Database(path.join(data, 'backup.db'));
        db.exec("CREATE TABLE posts (title TEXT); INSERT INTO posts VALUES ('hello')");
        db.close();
        const run = await runTask({
          task: 'AppServiceDownload',
          taskRoot: root,
          ...runtime,
          inputs: { connectionType: 'Generic', kuduService: 'k', remotePath: 'site/wwwroot/content/data/backup.db', destination: 'ghost.db' },
          endpoints: { k: genericEndpoint(kudu.url, '$app', 'pw-123456') },
          workDir: work,
        });
        assertRan(run);
        assert.ok(run.logLines.some((l) => l.includes('SQLite check passed')), run.output);
        assert.ok(fs.readFileSync(path.join(work, 'ghost.db')).equals(fs.readFileSync(path.join(data, 'backup.db'))));

        // Again through an Azure Resource Manager connection (certificate): MSAL, the signed client
        // assertion and the ARM calls, all from the bundle.
        await azure.addSite({ resourceGroup: 'rg', name: 'app', kudu });
        const sp = azure.addPrincipal({ certificatePem: fs.readFileSync(SERVICE_PRINCIPAL_PEM, 'utf8'), roles: [{ scope: azure.subscriptionScope, role: 'Website Contributor' }] });
        const viaArm = await runTask({
          task: 'AppServiceDownload',
          taskRoot: root,
          ...runtime,
          inputs: { connectionType: 'AzureRM', azureSubscription: 'arm', appName: 'app', remotePath: 'site/wwwroot/content/data/backup.db', destination: 'arm.db' },
          endpoints: { arm: azure.endpoint(sp) },
          env: azure.taskEnv(),
          workDir: work,
        });
        assertRan(viaArm);
        assert.ok(fs.readFileSync(path.join(work, 'arm.db')).equals(fs.readFileSync(path.join(data, 'backup.db'))));
        assert.ok(azure.requests.some((r) => r.service === 'scm' && r.audience === 'https://appservice.azure.com' && r.status === 200), viaArm.output);
      } finally {
        await kudu.close();
        await azure.close();
        fs.rmSync(home, { recursive: true, force: true });
        fs.rmSync(work, { recursive: true, force: true });
      }
    },

    async AppServiceDatabaseGuard(root, runtime) {
      const home = fs.mkdtempSync(path.join(os.tmpdir(), 'vsix-home-'));
      const kudu = await startKuduServer({ home, auth: { basic: { username: '$app', password: 'pw-123456' } } });
      try {
        const data = path.join(home, 'site', 'wwwroot', 'content', 'data');
        fs.mkdirSync(data, { recursive: true });
        const file = path.join(data, 'ghost.db');
        let db = new Database(file);
        db.exec("CREATE TABLE posts (title TEXT); INSERT INTO posts VALUES ('hello')");
        db.close();
        // The fingerprint a backup of it now would record (rollback journal: its header).
        const expected = formatFingerprint(fingerprintFromBytes({ header: fs.readFileSync(file).subarray(0, 100) }));
        const guard = () =>
          runTask({
            task: 'AppServiceDatabaseGuard',
            taskRoot: root,
          ...runtime,
            inputs: { connectionType: 'Generic', kuduService: 'k', expectedFingerprint: expected },
            endpoints: { k: genericEndpoint(kudu.url, '$app', 'pw-123456') },
          });
        const unchanged = await guard();
        assertRan(unchanged);
        assert.equal(unchanged.variables.databaseChanged.value, 'false');
        // A post written after the backup: the guard stops the release.
        db = new Database(file);
        db.exec("INSERT INTO posts VALUES ('written after the backup')");
        db.close();
        const changed = await guard();
        assert.equal(changed.result, 'Failed', changed.output);
        assert.match(changed.resultMessage!, /1 commit since the backup/);
      } finally {
        await kudu.close();
        fs.rmSync(home, { recursive: true, force: true });
      }
    },

    async GhostMigrate(root, runtime) {
      const site = createSite();
      try {
        prepareDatabase(site, '6.0');
        const run = await runTask({ task: 'GhostMigrate', taskRoot: root, ...runtime, inputs: { ghostRoot: site.root }, workDir: site.dir });
        assertRan(run);
        assert.ok(Number(run.variables.migrationsApplied.value) > 0, run.output);
        assert.ok(readDb(site.db).migrations.some((m) => m.version === '6.2'));
      } finally {
        site.cleanup();
      }
    },

    async SitePackage(root, runtime) {
      const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vsix-site-'));
      try {
        fs.mkdirSync(path.join(work, 'site', 'content', 'data'), { recursive: true });
        fs.writeFileSync(path.join(work, 'site', 'index.js'), 'console.log("ghost")');
        const db = new Database(path.join(work, 'site', 'content', 'data', 'ghost.db'));
        db.exec("CREATE TABLE posts (title TEXT); INSERT INTO posts VALUES ('hello')");
        db.close();
        const run = await runTask({ task: 'SitePackage', taskRoot: root, ...runtime, inputs: { rootFolder: 'site', archiveFile: 'out/site.zip' }, workDir: work });
        assertRan(run);
        assert.deepEqual(new AdmZip(path.join(work, 'out', 'site.zip')).getEntries().map((e) => e.entryName).sort(), ['content/', 'content/data/', 'content/data/ghost.db', 'index.js']);
      } finally {
        fs.rmSync(work, { recursive: true, force: true });
      }
    },
  };

  for (const [task, scenario] of Object.entries(SCENARIOS)) {
    it(`runs ${task} from the unpacked package`, () => scenario(taskRoot(task), {}));
  }

  /**
   * Agents that have Node 20 and not Node 24 (older agents, container jobs whose image cannot run
   * Node 24) run the Node20_1 handler. The tasks that declare it are exactly those that do not
   * load better-sqlite3 (13.x needs Node 22 or later), and they run on Node 20 from the package.
   */
  describe('on Node 20, through the Node20_1 handler', () => {
    const handlersOf = (task: string) => Object.keys((JSON.parse(fs.readFileSync(path.join(taskRoot(task), 'task.json'), 'utf8')) as { execution: object }).execution);

    it('is declared by exactly the tasks that do not ship better-sqlite3', () => {
      for (const task of fs.readdirSync(path.join(unpacked, 'tasks'))) {
        const sqlite = fs.existsSync(path.join(taskRoot(task), 'node_modules', 'better-sqlite3'));
        assert.equal(handlersOf(task).includes('Node20_1'), !sqlite, `${task}: ${sqlite ? 'loads better-sqlite3, so Node24 only' : 'no native module, so Node20_1 too'}`);
      }
      assert.ok(handlersOf('AppServiceWebJobRun').includes('Node20_1') && handlersOf('AppServiceDatabaseGuard').includes('Node20_1'));
    });

    for (const task of ['AppServiceWebJobRun', 'AppServiceDatabaseGuard']) {
      it(`runs ${task} from the unpacked package on Node 20`, async () => {
        const version = spawnSync(NODE20, ['--version'], { encoding: 'utf8' }).stdout?.trim() ?? '';
        assert.match(version, /^v20\./, `${NODE20} is not Node 20 (${version || 'not found'}): install Node 20 there, or set NODE20 to one`);
        await SCENARIOS[task](taskRoot(task), { handler: 'Node20_1', nodePath: NODE20 });
      });
    }

    it('runs AppServiceDatabaseGuard on Node 20 through an Azure Resource Manager connection (MSAL, ARM, the slot check)', async () => {
      assert.match(spawnSync(NODE20, ['--version'], { encoding: 'utf8' }).stdout?.trim() ?? '', /^v20\./, `${NODE20} is not Node 20`);
      const home = fs.mkdtempSync(path.join(os.tmpdir(), 'vsix-home-'));
      const azure = await startAzureFake();
      const kudu = await startKuduServer({ home, auth: { bearer: azure.kuduAccepts } });
      const slotHome = fs.mkdtempSync(path.join(os.tmpdir(), 'vsix-slot-'));
      const slot = await startKuduServer({ home: slotHome, auth: { bearer: azure.kuduAccepts }, settings: { WEBSITE_RUN_FROM_PACKAGE: '1' } });
      try {
        const file = path.join(home, 'site', 'wwwroot', 'content', 'data', 'ghost.db');
        fs.mkdirSync(path.dirname(file), { recursive: true });
        const db = new Database(file);
        db.exec("CREATE TABLE posts (title TEXT); INSERT INTO posts VALUES ('hello')");
        db.close();
        await azure.addSite({ resourceGroup: 'rg', name: 'app', kudu });
        await azure.addSite({ resourceGroup: 'rg', name: 'app', slot: 'staging', kudu: slot });
        const sp = azure.addPrincipal({ secret: 'sp-secret-0123456789', roles: [{ scope: azure.subscriptionScope, role: 'Website Contributor' }] });
        const run = await runTask({
          task: 'AppServiceDatabaseGuard',
          taskRoot: taskRoot('AppServiceDatabaseGuard'),
          handler: 'Node20_1',
          nodePath: NODE20,
          inputs: { azureSubscription: 'arm', appName: 'app', swapSlot: 'staging', expectedFingerprint: formatFingerprint(fingerprintFromBytes({ header: fs.readFileSync(file).subarray(0, 100) })) },
          endpoints: { arm: azure.endpoint(sp) },
          env: azure.taskEnv(),
        });
        assert.equal(run.result, 'Failed', run.output);
        assert.equal(run.variables.databaseChanged?.value, 'false', run.output);
        assert.match(run.resultMessage!, /Slot 'staging' runs from a package/);
        // The User-Agent names the Node that ran the task.
        assert.ok(slot.requests.concat(kudu.requests).some((r) => r.userAgent.includes('node v20.')), 'ran on Node 20');
      } finally {
        await kudu.close();
        await slot.close();
        await azure.close();
        fs.rmSync(home, { recursive: true, force: true });
        fs.rmSync(slotHome, { recursive: true, force: true });
      }
    });
  });
});

function assertRan(run: TaskRun): void {
  assert.equal(run.result, 'Succeeded', run.output);
  assert.equal(run.exitCode, 0, run.output);
}
