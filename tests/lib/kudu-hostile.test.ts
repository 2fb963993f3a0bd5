/**
 * The Kudu client against a site that is hostile or broken: paths and job names that would leave
 * the file system API are refused before any request; listings with names that are not names, that
 * loop, or that are deeper or larger than any site are refused; the 403s of App Service's front
 * end are told apart; a log line that never ends is handed over in pieces.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Deadline, DeadlineError } from '../../lib/deadline';
import { KuduClient, vfsFilePath, zipFolderPath } from '../../lib/kudu/client';
import { basicCredential } from '../../lib/kudu/credentials';
import { KuduError } from '../../lib/kudu/errors';
import { LogTail } from '../../lib/kudu/log-tail';
import { parseRemotePath } from '../../lib/remote-path';
import { FRONT_END_403, startKuduServer, type KuduServer } from '../../testkit/kudu-server';

describe('lib/kudu against a hostile site', function () {
  this.timeout(60_000);
  let home: string;
  let kudu: KuduServer;
  let client: KuduClient;
  const deadlines: Deadline[] = [];

  beforeEach(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'kudu-hostile-'));
    fs.mkdirSync(path.join(home, 'site', 'wwwroot', 'a'), { recursive: true });
    fs.writeFileSync(path.join(home, 'site', 'wwwroot', 'a', 'one.txt'), '1');
    kudu = await startKuduServer({ home });
    client = new KuduClient({ scmUrl: kudu.url, credential: basicCredential('user', 'pass'), userAgent: 'hostile-test', retry: { maxAttempts: 2, baseDelayMs: 10 } });
  });
  afterEach(async () => {
    client.close();
    for (const d of deadlines.splice(0)) d.dispose();
    await kudu.close();
    fs.rmSync(home, { recursive: true, force: true });
  });

  async function failure(work: () => unknown): Promise<Error> {
    try {
      await work();
    } catch (err) {
      return err as Error;
    }
    throw new Error('expected a failure');
  }

  it('refuses paths that would leave api/vfs/ and api/zip/, before any request', async () => {
    for (const bad of ['../settings', 'site/wwwroot/../../../../deployments', '..%2fsettings', 'site\\..\\..\\api', '%2e%2e/settings', 'https://evil.example/x']) {
      const err = await failure(() => client.readText(bad));
      assert.match(err.message, /Write a path relative to the app's %HOME% folder/, bad);
      assert.ok(!err.message.includes('\n'));
      await failure(() => client.readRange(bad, 0, 10));
      await failure(() => client.listDirectory(bad));
      await failure(() => client.listFilesRecursive(bad));
      await failure(() => client.readFrom(bad, 0));
      assert.throws(() => vfsFilePath(bad));
      assert.throws(() => zipFolderPath(bad));
    }
    for (const raw of ['api/settings', 'api/vfs/../settings', 'api/vfs/%2e%2e/settings', 'api/zip/site/..%2F..%2Fdeployments/', 'deployments']) {
      const err = await failure(() => client.openStream(raw));
      assert.ok(err.message.length > 0, raw);
    }
    assert.deepEqual(kudu.requests, [], 'nothing was sent');
  });

  it('checks job names and run ids wherever they enter a URL', async () => {
    for (const name of ['../../api/settings', 'a/b', '..', 'job?x=1', 'job%2f..']) {
      await failure(() => client.getTriggeredJob(name));
      await failure(() => client.runTriggeredJob(name, undefined, 'run/x'));
      await failure(() => client.getJobHistory(name));
    }
    await failure(() => client.getJobRun('backup', '../../settings'));
    assert.throws(() => KuduClient.jobLogPath('backup', '1/../../x'));
    assert.deepEqual(kudu.requests, [], 'nothing was sent');
  });

  it("refuses a listing entry named '.', '..' or with a separator, and does not list forever", async () => {
    for (const name of ['.', '..', 'x/../../y', 'x\\y']) {
      kudu.faults.clear();
      kudu.faults.add({ method: 'GET', path: /^\/api\/vfs\/site\/wwwroot\/a\/$/, status: 200, times: Infinity, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify([{ name, size: 0, mtime: '2026-01-01T00:00:00Z', mime: 'inode/directory', href: 'x', path: 'x' }]) });
      const before = kudu.requests.length;
      const err = await failure(() => client.listFilesRecursive('site/wwwroot/a'));
      assert.ok(err instanceof KuduError && err.kind === 'invalid', String(err));
      assert.match(err.message, /listed an entry named .*which is not a file name/);
      assert.ok(kudu.requests.length - before <= 2, `${kudu.requests.length - before} requests`);
    }
  });

  it('ends the walk with an error when a folder lists itself (an entry seen twice)', async () => {
    // Every folder under a/ answers with the same listing: a folder that contains itself.
    const self = JSON.stringify([{ name: 'loop', size: 0, mtime: '2026-01-01T00:00:00Z', mime: 'inode/directory', href: `${kudu.url}api/vfs/site/wwwroot/a/loop/`, path: '/home/site/wwwroot/a/loop' }]);
    kudu.faults.add({ method: 'GET', path: /^\/api\/vfs\/site\/wwwroot\/a\/(.*\/)?$/, status: 200, times: Infinity, headers: { 'Content-Type': 'application/json' }, body: self });
    const err = await failure(() => client.listFilesRecursive('site/wwwroot/a'));
    assert.ok(err instanceof KuduError && err.kind === 'invalid', String(err));
    assert.match(err.message, /repeats 'loop'.*Stopping the listing/);
    assert.ok(kudu.requests.length <= 4, `${kudu.requests.length} requests`);
  });

  it('caps the depth and the number of entries of a walk', async () => {
    fs.mkdirSync(path.join(home, 'site', 'wwwroot', 'deep', ...'abcdef'.split('')), { recursive: true });
    const deep = await failure(() => client.listFilesRecursive('site/wwwroot/deep', 4, { maxDepth: 4 }));
    assert.match(deep.message, /more than 4 folders deep/);
    for (let i = 0; i < 30; i++) fs.writeFileSync(path.join(home, 'site', 'wwwroot', 'a', `f${i}.txt`), '');
    const many = await failure(() => client.listFilesRecursive('site/wwwroot/a', 4, { maxEntries: 20 }));
    assert.match(many.message, /more than 20 files and folders/);
    assert.equal((await client.listFilesRecursive('site/wwwroot/a')).length, 31);
  });

  it("tells App Service's 403s apart: an access restriction, a stopped app, a missing role", async () => {
    const cases: Array<[string, string, RegExp]> = [
      [FRONT_END_403.ipForbidden, 'ip-restricted', /refused this agent's address .*Access restrictions/],
      [FRONT_END_403.blockedPage, 'ip-restricted', /has blocked your access.*allow the agent's outbound IP address/],
      [FRONT_END_403.stoppedPage, 'app-stopped', /The app is stopped.*Error 403 - This web app is stopped\..*Start it/],
      [JSON.stringify({ Message: "The principal does not have the permission Microsoft.Web/sites/publish/Action on the site." }), 'permission', /Website Contributor/],
    ];
    for (const [body, reason, message] of cases) {
      kudu.faults.add({ path: '/api/vfs/site/wwwroot/a/one.txt', status: 403, body });
      const err = await failure(() => client.readText('site/wwwroot/a/one.txt'));
      assert.ok(err instanceof KuduError && err.kind === 'forbidden', String(err));
      assert.equal(err.details.reason, reason);
      assert.match(err.message, message);
      assert.ok(!/<\/?[a-z]/i.test(err.message), 'no markup in the message');
    }
  });

  it('reads a parsed answer only up to its limit', async () => {
    fs.writeFileSync(path.join(home, 'site', 'wwwroot', 'big.json'), Buffer.alloc(2 * 1024 * 1024, 0x20));
    const err = await failure(() => client.readText('site/wwwroot/big.json'));
    assert.ok(err instanceof KuduError && err.kind === 'too-large', String(err));
    assert.equal((await client.readText('site/wwwroot/big.json', 3 * 1024 * 1024))?.length, 2 * 1024 * 1024);
  });

  it('ends a trickled answer at the deadline', async () => {
    const deadline = Deadline.after(700, 'timeoutMinutes (0.01)');
    deadlines.push(deadline);
    const bounded = new KuduClient({ scmUrl: kudu.url, credential: basicCredential('user', 'pass'), userAgent: 'hostile-test', deadline });
    kudu.faults.add({ path: /triggeredwebjobs/, status: 200, body: '{}'.padEnd(100), trickleMs: 1000, times: Infinity });
    try {
      const err = await failure(() => bounded.getTriggeredJob('backup'));
      assert.ok(err instanceof DeadlineError, String(err));
      assert.match(err.message, /timeoutMinutes \(0\.01\) ran out/);
    } finally {
      bounded.close();
    }
  });

  it('hands a log line that never ends over in pieces, each once', async () => {
    const log = path.join(home, 'data', 'jobs', 'triggered', 'j', '1', 'output_log.txt');
    fs.mkdirSync(path.dirname(log), { recursive: true });
    fs.writeFileSync(log, 'first\n' + 'z'.repeat(200 * 1024));
    const lines: string[] = [];
    const tail = new LogTail(client, parseRemotePath('data/jobs/triggered/j/1/output_log.txt'), (l) => lines.push(l));
    await tail.readToEnd(undefined);
    assert.equal(lines[0], 'first');
    assert.deepEqual(lines.slice(1).map((l) => l.length), [65536, 65536, 65536], 'whole pieces of 64 KiB; the rest waits for more');
    tail.flush();
    assert.equal(lines.slice(1).join('').length, 200 * 1024);
  });
});
