/**
 * The guard as a release uses it, against the Kudu-compatible server (and the Azure fake for
 * Azure Resource Manager connections):
 *
 * - a classic release, which cannot read the build's output variables: SqliteBackup writes the
 *   backup's manifest, SitePackage publishes it beside the zip, and the guard takes the
 *   fingerprint from that file (`expectedFingerprintFile`);
 * - the slot about to be swapped in must not run from a package (`swapSlot`): read through the
 *   slot's own Kudu (`api/settings`) for a Generic connection, through Resource Manager's
 *   `config/appsettings/list` for an Azure Resource Manager one;
 * - the run page's summary: its title, the fingerprints compared, what was read, the verdict.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { genericEndpoint, linesLeaking, runTask, type TaskRun } from '../../testkit/harness/agent';
import { fingerprintFromBytes, formatFingerprint } from '../../lib/sqlite/fingerprint';
import { ConnectionProcess, createAppDatabase, killAllApps } from '../../testkit/harness/sqlite-app';
import { startKuduServer, type KuduServer } from '../../testkit/kudu-server';
import { startAzureFake, type AzureFake, type FakePrincipal } from '../../testkit/azure-fake';

const DATA = 'site/wwwroot/content/data';
const PROD = { username: '$blog', password: 'pw-production-0123' };
const SLOT = { username: '$blog__staging', password: 'pw-staging-4567' };
const SAS = 'sig=Secret%2BSasSignature0123456789';

describe('AppServiceDatabaseGuard in a release', function () {
  this.timeout(120_000);
  const cleanup: Array<() => unknown> = [];
  let home: string;
  let work: string;
  let kudu: KuduServer;
  const live = () => path.join(home, ...DATA.split('/'), 'ghost.db');

  beforeEach(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'guard-release-home-'));
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'guard-release-work-'));
    fs.mkdirSync(path.dirname(live()), { recursive: true });
    createAppDatabase(live(), { journal: 'delete', sizeMb: 1 });
    kudu = await startKuduServer({ home, auth: { basic: PROD } });
    cleanup.push(() => kudu.close(), () => fs.rmSync(home, { recursive: true, force: true }), () => fs.rmSync(work, { recursive: true, force: true }));
  });
  afterEach(async () => {
    killAllApps();
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  /** The staging slot: a Kudu site of its own, with its own publishing credentials and app settings. */
  async function stagingSlot(settings: Record<string, string>): Promise<KuduServer> {
    const slotHome = fs.mkdtempSync(path.join(os.tmpdir(), 'guard-release-slot-'));
    const slot = await startKuduServer({ home: slotHome, auth: { basic: SLOT }, settings });
    cleanup.push(() => slot.close(), () => fs.rmSync(slotHome, { recursive: true, force: true }));
    return slot;
  }

  function guard(inputs: Record<string, string>, endpoints: Record<string, ReturnType<typeof genericEndpoint>> = {}): Promise<TaskRun> {
    return runTask({
      task: 'AppServiceDatabaseGuard',
      inputs: { connectionType: 'Generic', kuduService: 'prod', ...inputs },
      endpoints: { prod: genericEndpoint(kudu.url, PROD.username, PROD.password), ...endpoints },
      workDir: work,
    });
  }

  /** The build of a classic pipeline: SqliteBackup's manifest, published by SitePackage beside the zip. */
  async function buildWithManifest(): Promise<{ manifestInArtifact: string; fingerprint: string }> {
    const backup = await runTask({ task: 'SqliteBackup', inputs: { databasePath: live(), backupPath: path.join(work, 'backups', 'backup.db'), verify: 'quick' }, workDir: work });
    assert.equal(backup.result, 'Succeeded', backup.output);
    const manifest = backup.variables.backupManifest.value;
    assert.equal(manifest, path.join(work, 'backups', 'backup.db.json'));
    const site = path.join(work, 'site');
    fs.mkdirSync(path.join(site, 'content', 'data'), { recursive: true });
    fs.copyFileSync(path.join(work, 'backups', 'backup.db'), path.join(site, 'content', 'data', 'ghost.db'));
    const drop = path.join(work, 'drop');
    const pack = await runTask({ task: 'SitePackage', inputs: { rootFolder: site, archiveFile: path.join(drop, 'site.zip'), backupManifest: manifest }, workDir: work });
    assert.equal(pack.result, 'Succeeded', pack.output);
    const besideZip = path.join(drop, 'backup.db.json');
    assert.equal(pack.variables.backupManifestCopy.value, besideZip);
    assert.deepEqual(
      pack.artifacts.map((a) => [a.artifactName, a.containerFolder, path.basename(a.path)]),
      [
        ['drop', 'drop', 'site.zip'],
        ['drop', 'drop', 'backup.db.json'],
      ],
      'the manifest is published in the same artifact, beside the zip',
    );
    return { manifestInArtifact: besideZip, fingerprint: backup.variables.databaseFingerprint.value };
  }

  describe('classic release: the fingerprint from the manifest in the artifact', () => {
    it('passes while production is as the backup saw it, and fails after a commit', async () => {
      const { manifestInArtifact, fingerprint } = await buildWithManifest();
      const quiet = await guard({ expectedFingerprintFile: manifestInArtifact });
      assert.equal(quiet.result, 'Succeeded', quiet.output);
      assert.equal(quiet.variables.databaseChanged.value, 'false');
      assert.equal(quiet.variables.liveFingerprint.value, fingerprint);

      await writeOnePost();
      const after = await guard({ expectedFingerprintFile: manifestInArtifact });
      assert.equal(after.result, 'Failed', after.output);
      assert.equal(after.variables.databaseChanged.value, 'true');
      assert.match(after.resultMessage!, /has changed since the backup: its change counter went from \d+ to \d+: 1 commit/);
    });

    it('end to end: the built-in job’s manifest, through the download and SitePackage, to the guard', async () => {
      // One job's temp folder for the build's steps, as the agent keeps it for a whole job.
      const jobTemp = fs.mkdtempSync(path.join(os.tmpdir(), 'guard-release-job-'));
      cleanup.push(() => fs.rmSync(jobTemp, { recursive: true, force: true }));
      const endpoints = { prod: genericEndpoint(kudu.url, PROD.username, PROD.password) };
      const step = (task: string, inputs: Record<string, string | number | boolean>) =>
        runTask({ task, inputs, endpoints, workDir: work, variables: { 'Agent.TempDirectory': jobTemp }, timeoutMs: 120_000 });
      const connection = { connectionType: 'Generic', kuduService: 'prod' };
      const backup = await step('AppServiceWebJobRun', { ...connection, jobName: 'sqlite-backup', installJob: true, pollIntervalSeconds: 0.5, timeoutMinutes: 2 });
      assert.equal(backup.result, 'Succeeded', backup.output);
      const download = await step('AppServiceDownload', { ...connection, remotePath: `${DATA}/backup.db`, destination: 'site/content/data/ghost.db' });
      assert.equal(download.result, 'Succeeded', download.output);
      // Each step's section on the run page has a title people can read.
      assert.deepEqual(backup.summarySections.map((s) => s.title), ['WebJob sqlite-backup']);
      assert.match(backup.summarySections[0].markdown, /\| Status \| ✔ Success \|/);
      assert.deepEqual(download.summarySections.map((s) => s.title), ['Download of backup.db']);
      assert.ok(download.summarySections[0].markdown.includes(`\`${download.variables.databaseFingerprint.value}\``));
      const kept = download.variables.backupManifest.value;
      assert.equal(path.basename(kept), 'backup.db.json');
      assert.ok(kept.startsWith(jobTemp), `${kept} is in the job's temp folder, not in the site`);
      assert.equal(JSON.parse(fs.readFileSync(kept, 'utf8')).fingerprint, download.variables.databaseFingerprint.value);
      const pack = await step('SitePackage', { rootFolder: 'site', archiveFile: 'drop/site.zip', backupManifest: kept });
      assert.equal(pack.result, 'Succeeded', pack.output);
      assert.deepEqual(pack.summarySections.map((s) => s.title), ['Site package drop']);

      // The release: the artifact downloaded to $(System.DefaultWorkingDirectory)/_build/drop.
      const release = path.join(work, '_build', 'drop');
      fs.mkdirSync(release, { recursive: true });
      for (const a of pack.artifacts) fs.copyFileSync(a.path, path.join(release, path.basename(a.path)));
      const quiet = await guard({ expectedFingerprintFile: '_build/drop/backup.db.json' });
      assert.equal(quiet.result, 'Succeeded', quiet.output);
      await writeOnePost();
      const after = await guard({ expectedFingerprintFile: '_build/drop/backup.db.json' });
      assert.equal(after.result, 'Failed', after.output);
      assert.equal(after.variables.databaseChanged.value, 'true');
    });

    it('takes a relative manifest path from the working directory, as $(System.DefaultWorkingDirectory)/_build/drop/backup.db.json is', async () => {
      const { manifestInArtifact } = await buildWithManifest();
      const run = await guard({ expectedFingerprintFile: path.relative(work, manifestInArtifact) });
      assert.equal(run.result, 'Succeeded', run.output);
    });

    it("takes an empty file picker of the classic editor, which the agent passes as the repository root, for no file", async () => {
      const run = await guard({ expectedFingerprint: currentFingerprint(), expectedFingerprintFile: work });
      assert.equal(run.result, 'Succeeded', run.output);
    });

    it('refuses a file that is not a manifest, a damaged one, a missing one, and both inputs at once, before asking the server anything', async () => {
      const { manifestInArtifact, fingerprint } = await buildWithManifest();
      const other = path.join(work, 'other.json');
      fs.writeFileSync(other, '{"name":"ghost","version":"6.2.0"}');
      const damaged = path.join(work, 'damaged.json');
      const manifest = JSON.parse(fs.readFileSync(manifestInArtifact, 'utf8')) as Record<string, unknown>;
      fs.writeFileSync(damaged, JSON.stringify({ ...manifest, sha256: 'not-a-hash' }));
      const before = kudu.requests.length;

      const cases: Array<[Record<string, string>, RegExp]> = [
        [{ expectedFingerprintFile: other }, /other\.json is not a backup manifest/],
        [{ expectedFingerprintFile: damaged }, /damaged\.json is damaged: 'sha256' should be a SHA-256 in hex/],
        [{ expectedFingerprintFile: path.join(work, 'missing', 'backup.db.json') }, /cannot be read \(ENOENT\)\. In a classic release it is .*backup\.db\.json, published by SitePackage/],
        [{ expectedFingerprintFile: manifestInArtifact, expectedFingerprint: fingerprint }, /either expectedFingerprint or expectedFingerprintFile, not both/],
        [{}, /Give the backup's fingerprint: expectedFingerprint .* or, in a classic release, expectedFingerprintFile/],
      ];
      for (const [inputs, message] of cases) {
        const run = await guard(inputs);
        assert.equal(run.result, 'Failed', run.output);
        assert.match(run.resultMessage!, message);
      }
      assert.equal(kudu.requests.length, before, 'nothing was asked of the server');
    });
  });

  describe('the slot to be swapped in must not run from a package (Generic connection)', () => {
    async function withSlot(settings: Record<string, string>, extra: Record<string, string> = {}): Promise<TaskRun> {
      const slot = await stagingSlot(settings);
      const run = await guard(
        { expectedFingerprint: currentFingerprint(), swapSlot: 'staging', swapSlotKuduService: 'staging', ...extra },
        { staging: genericEndpoint(slot.url, SLOT.username, SLOT.password) },
      );
      assert.ok(slot.requests.some((r) => r.path === '/api/settings' && r.status === 200), 'the slot’s settings were read from its own Kudu');
      return run;
    }

    it('fails when WEBSITE_RUN_FROM_PACKAGE is 1, saying why and how to fix it', async () => {
      const run = await withSlot({ WEBSITE_RUN_FROM_PACKAGE: '1', WEBJOBS_STOPPED: '1' });
      assert.equal(run.result, 'Failed', run.output);
      assert.equal(run.variables.databaseChanged.value, 'false', 'the database check ran and passed');
      assert.match(run.resultMessage!, /Slot 'staging' runs from a package: its app setting WEBSITE_RUN_FROM_PACKAGE is 1\. That makes wwwroot read-only, and the setting is not a slot setting, so the swap would carry it into production/);
      assert.match(run.resultMessage!, /deploymentMethod: zipDeploy/);
      const summary = run.summarySections.find((s) => s.title === 'Live database check');
      assert.ok(summary, run.output);
      assert.match(summary.markdown, /Slot `staging` runs from a package: the swap was stopped/);
    });

    it('names a package URL without its query, which holds the SAS token', async () => {
      const run = await withSlot({ WEBSITE_RUN_FROM_PACKAGE: `https://store.blob.core.windows.net/packages/site.zip?sv=2024&${SAS}` });
      assert.equal(run.result, 'Failed', run.output);
      assert.match(run.resultMessage!, /is a package URL, https:\/\/store\.blob\.core\.windows\.net\/packages\/site\.zip \(its query left out\)/);
      assert.deepEqual(linesLeaking(run, [SAS, 'Secret%2BSas']), []);
      assert.ok(!run.summarySections.some((s) => s.markdown.includes('SasSignature')));
    });

    it('passes when the setting is absent, empty or 0 (names compared ignoring case)', async () => {
      for (const settings of [{}, { WEBSITE_RUN_FROM_PACKAGE: '' }, { website_run_from_package: '0' }] as Array<Record<string, string>>) {
        const run = await withSlot(settings);
        assert.equal(run.result, 'Succeeded', run.output);
        assert.ok(run.logLines.some((l) => l.includes("Slot 'staging' does not run from a package")), run.output);
      }
    });

    it('fails on a database change and the package setting together, naming both', async () => {
      const expected = currentFingerprint();
      await writeOnePost();
      const run = await withSlot({ WEBSITE_RUN_FROM_PACKAGE: '1' }, { expectedFingerprint: expected });
      assert.equal(run.result, 'Failed', run.output);
      assert.match(run.resultMessage!, /has changed since the backup.* — Slot 'staging' runs from a package/);
    });

    it("asks for the slot's own connection when only the slot's name is given, before reading anything", async () => {
      const run = await guard({ expectedFingerprint: currentFingerprint(), swapSlot: 'staging' });
      assert.equal(run.result, 'Failed', run.output);
      assert.match(run.resultMessage!, /also give swapSlotKuduService, a Generic service connection to https:\/\/<app>-staging\.scm\.azurewebsites\.net\/ with the slot's publishing credentials \(user \$<app>__staging\)/);
      assert.equal(kudu.requests.length, 0);
    });

    it("fails clearly when production's credentials are used on the slot (each slot has its own)", async () => {
      const slot = await stagingSlot({ WEBSITE_RUN_FROM_PACKAGE: '1' });
      const run = await guard(
        { expectedFingerprint: currentFingerprint(), swapSlot: 'staging', swapSlotKuduService: 'staging' },
        { staging: genericEndpoint(slot.url, PROD.username, PROD.password) },
      );
      assert.equal(run.result, 'Failed', run.output);
      assert.match(run.resultMessage!, /401/);
      assert.deepEqual(linesLeaking(run, [PROD.password]), []);
    });
  });

  describe('the slot to be swapped in must not run from a package (Azure Resource Manager)', () => {
    let azure: AzureFake;
    beforeEach(async () => {
      azure = await startAzureFake();
      cleanup.push(() => azure.close());
    });

    async function armSites(slotSettings: Record<string, string>): Promise<void> {
      const prod = await startKuduServer({ home, auth: { bearer: azure.kuduAccepts } });
      cleanup.push(() => prod.close());
      await azure.addSite({ resourceGroup: 'blog-rg', name: 'blog', kudu: prod });
      const slotHome = fs.mkdtempSync(path.join(os.tmpdir(), 'guard-release-armslot-'));
      const slot = await startKuduServer({ home: slotHome, auth: { bearer: azure.kuduAccepts }, settings: slotSettings });
      cleanup.push(() => slot.close(), () => fs.rmSync(slotHome, { recursive: true, force: true }));
      await azure.addSite({ resourceGroup: 'blog-rg', name: 'blog', slot: 'staging', kudu: slot });
    }

    function armGuard(who: FakePrincipal, inputs: Record<string, string>): Promise<TaskRun> {
      return runTask({
        task: 'AppServiceDatabaseGuard',
        inputs: { azureSubscription: 'arm', appName: 'blog', expectedFingerprint: currentFingerprint(), swapSlot: 'staging', ...inputs },
        endpoints: { arm: azure.endpoint(who), SYSTEMVSSCONNECTION: azure.systemEndpoint() },
        env: azure.taskEnv(),
        workDir: work,
      });
    }

    const listed = () => azure.requests.filter((r) => r.service === 'arm' && /\/slots\/staging\/config\/appsettings\/list$/.test(r.path.split('?')[0]));

    it('reads the slot’s settings through config/appsettings/list, with Azure Resource Manager as the default connection', async () => {
      await armSites({ WEBSITE_RUN_FROM_PACKAGE: '1' });
      const who = azure.addPrincipal({ secret: 'sp-secret-0123456789', roles: [{ scope: azure.subscriptionScope, role: 'Website Contributor' }] });
      const set = await armGuard(who, {});
      assert.equal(set.result, 'Failed', set.output);
      assert.match(set.resultMessage!, /Slot 'staging' runs from a package: its app setting WEBSITE_RUN_FROM_PACKAGE is 1/);
      assert.deepEqual(listed().map((r) => r.status), [200]);
      assert.match(set.summarySections[0].markdown, /read through Azure Resource Manager \(config\/appsettings\/list\)/);
    });

    it('passes when the slot does not run from a package', async () => {
      await armSites({ WEBJOBS_STOPPED: '1' });
      const who = azure.addPrincipal({ secret: 'sp-secret-0123456789', roles: [{ scope: azure.subscriptionScope, role: 'Website Contributor' }] });
      const run = await armGuard(who, { resourceGroupName: 'blog-rg' });
      assert.equal(run.result, 'Succeeded', run.output);
      assert.equal(listed().length, 1);
    });

    it('says which permission is missing when the identity may reach Kudu but not list settings', async () => {
      await armSites({ WEBSITE_RUN_FROM_PACKAGE: '1' });
      // The least the Kudu tasks need (read and publish) reads the live database, but not the slot's settings.
      const publisher = azure.addPrincipal({ secret: 'sp-secret-0123456789', roles: [{ scope: azure.subscriptionScope, role: 'Site Publisher' }] });
      const run = await armGuard(publisher, { resourceGroupName: 'blog-rg' });
      assert.equal(run.result, 'Failed', run.output);
      assert.match(run.resultMessage!, /may not list the app settings of slot 'staging' of app 'blog' \(403: it needs Microsoft\.Web\/sites\/config\/list\/Action, which Reader lacks\)/);
    });
  });

  describe('the summary on the run page', () => {
    it('titles the section, and shows the verdict, both fingerprints and what was read', async () => {
      const expected = currentFingerprint();
      const pass = await guard({ expectedFingerprint: expected });
      assert.equal(pass.result, 'Succeeded', pass.output);
      assert.deepEqual(pass.summarySections.map((s) => s.title), ['Live database check']);
      const md = pass.summarySections[0].markdown;
      assert.match(md, /Unchanged since the backup/);
      assert.ok(md.includes(`\`${expected}\``), md);
      assert.match(md, /\d+ bytes in 1 Range requests/);
      assert.match(md, /not checked \(swapSlot not set\)/);

      await writeOnePost();
      const fail = await guard({ expectedFingerprint: expected });
      assert.equal(fail.result, 'Failed', fail.output);
      const failed = fail.summarySections[0].markdown;
      assert.match(failed, /Changed since the backup: the swap was stopped/);
      assert.ok(failed.includes(`\`${fail.variables.liveFingerprint.value}\``), failed);
      assert.match(failed, /What changed:\n\n- its change counter went from/);
    });
  });

  /** The live database's fingerprint now, as a backup taken now would record it. */
  function currentFingerprint(): string {
    const fd = fs.openSync(live(), 'r');
    try {
      const header = Buffer.alloc(100);
      fs.readSync(fd, header, 0, 100, 0);
      return formatFingerprint(fingerprintFromBytes({ header }));
    } finally {
      fs.closeSync(fd);
    }
  }

  /** One commit from another process, as the blog makes it. */
  async function writeOnePost(): Promise<void> {
    const connection = await ConnectionProcess.open(live(), ["UPDATE counters SET value = value + 1 WHERE name = 'ops'"]);
    await connection.close();
  }
});
