/**
 * The Kudu tasks against inputs that would leave Kudu's file system API and against the answers
 * App Service's front end gives before Kudu: run as the agent runs them, with the requests the
 * Kudu-compatible server saw as the evidence.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { genericEndpoint, runTask, type TaskRun } from '../../testkit/harness/agent';
import { FRONT_END_403, startKuduServer, type KuduServer } from '../../testkit/kudu-server';

const AUTH = { basic: { username: '$blog', password: 'pw-hostile-0123' } };

describe('Kudu tasks against escaping paths and front-end refusals', function () {
  this.timeout(120_000);
  let home: string;
  let kudu: KuduServer;

  beforeEach(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'hostile-site-'));
    fs.mkdirSync(path.join(home, 'site', 'wwwroot', 'content', 'data'), { recursive: true });
    fs.writeFileSync(path.join(home, 'site', 'wwwroot', 'content', 'data', 'notes.txt'), 'notes');
    kudu = await startKuduServer({ home, auth: AUTH });
  });
  afterEach(async () => {
    await kudu.close();
    fs.rmSync(home, { recursive: true, force: true });
  });

  function task(name: 'AppServiceDownload' | 'AppServiceDatabaseGuard' | 'AppServiceWebJobRun', inputs: Record<string, string | number | boolean>): Promise<TaskRun> {
    return runTask({ task: name, inputs: { connectionType: 'Generic', kuduService: 'kudu', ...inputs }, endpoints: { kudu: genericEndpoint(kudu.url, AUTH.basic.username, AUTH.basic.password) } });
  }

  it("AppServiceDownload: remotePath '../settings' never requests /api/settings, and says what to write", async () => {
    for (const remotePath of ['../settings', 'site/wwwroot/../../../../deployments', '%2e%2e/settings', 'site\\..\\..\\api\\settings', 'site/wwwroot/../../../../deployments/']) {
      const result = await task('AppServiceDownload', { remotePath, destination: 'out/x' });
      assert.equal(result.result, 'Failed', result.output);
      assert.match(result.resultMessage!, /uses '\.' or '\.\.'.*Write a path relative to the app's %HOME% folder, like site\/wwwroot/, remotePath);
      assert.ok(!fs.existsSync(path.join(result.workDir, 'out', 'x')), 'nothing at the destination');
    }
    const outside = kudu.requests.filter((r) => !/^\/api\/(vfs|zip)\//.test(r.path));
    assert.deepEqual(outside, [], 'no request left the file system API');
    assert.ok(!kudu.requests.some((r) => /settings|deployments/.test(r.path)), kudu.requests.map((r) => r.path).join('\n'));
  });

  it("AppServiceDownload: a folder listing with an entry named '.' ends the completeness check instead of listing forever", async () => {
    fs.mkdirSync(path.join(home, 'site', 'wwwroot', 'content', 'images'), { recursive: true });
    fs.writeFileSync(path.join(home, 'site', 'wwwroot', 'content', 'images', 'a.png'), 'png');
    const dot = { name: '.', size: 0, mtime: '2026-01-01T00:00:00Z', mime: 'inode/directory', href: 'x', path: 'x' };
    kudu.faults.add({ method: 'GET', path: /^\/api\/vfs\/site\/wwwroot\/content\/images\/$/, status: 200, times: Infinity, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify([dot]) });
    const result = await runTask({
      task: 'AppServiceDownload',
      inputs: { connectionType: 'Generic', kuduService: 'kudu', remotePath: 'site/wwwroot/content/images/', destination: 'images' },
      endpoints: { kudu: genericEndpoint(kudu.url, AUTH.basic.username, AUTH.basic.password) },
      timeoutMs: 60_000,
    });
    assert.equal(result.timedOut, false);
    assert.equal(result.result, 'Failed', result.output);
    assert.match(result.resultMessage!, /listed an entry named '\.'.*not a file name/);
    assert.ok(kudu.requests.length < 20, `${kudu.requests.length} requests`);
  });

  it('AppServiceWebJobRun: a jobName that is not a name is refused before any request', async () => {
    const result = await task('AppServiceWebJobRun', { jobName: '../../api/settings' });
    assert.equal(result.result, 'Failed', result.output);
    assert.match(result.resultMessage!, /jobName '\.\.\/\.\.\/api\/settings' is not a WebJob name/);
    assert.deepEqual(kudu.requests, []);
  });

  it("tells a stopped app and an access restriction from a missing role, with what to do", async () => {
    const cases: Array<[string, RegExp]> = [
      [FRONT_END_403.stoppedPage, /The app is stopped, so its SCM site takes no requests.*Start it/],
      [FRONT_END_403.ipForbidden, /refused this agent's address.*Access restrictions > Advanced tool site/],
      [FRONT_END_403.blockedPage, /refused this agent's address.*has blocked your access/],
    ];
    for (const [body, expected] of cases) {
      kudu.faults.clear();
      kudu.faults.add({ path: /./, status: 403, body, times: Infinity });
      const guard = await task('AppServiceDatabaseGuard', { remotePath: 'site/wwwroot/content/data/ghost.db', expectedFingerprint: 'v1:rollback:cc=1:pages=1:ps=4096' });
      assert.equal(guard.result, 'Failed', guard.output);
      assert.match(guard.resultMessage!, expected);
      assert.doesNotMatch(guard.resultMessage!, /Website Contributor/);
      const download = await task('AppServiceDownload', { remotePath: 'site/wwwroot/content/data/notes.txt', destination: 'notes.txt' });
      assert.equal(download.result, 'Failed', download.output);
      assert.match(download.resultMessage!, expected);
    }
  });
});
