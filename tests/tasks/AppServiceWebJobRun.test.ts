/**
 * AppServiceWebJobRun against the Kudu-compatible server: real job processes, real HTTP, faults.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { genericEndpoint, linesLeaking, runTask, type TaskRun } from '../../testkit/harness/agent';
import { startKuduServer, type KuduServer } from '../../testkit/kudu-server';

const PASSWORD = 'pa55-w0rd-that-must-not-leak';

describe('AppServiceWebJobRun', function () {
  this.timeout(120_000);
  let home: string;
  let kudu: KuduServer;

  beforeEach(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'webjobrun-'));
    kudu = await startKuduServer({ home, auth: { basic: { username: '$blog', password: PASSWORD } } });
  });
  afterEach(async () => {
    await kudu.close();
    fs.rmSync(home, { recursive: true, force: true });
  });

  /** Writes a triggered job's run.js straight into the site, as a portal upload would leave it. */
  function job(name: string, script: string): void {
    const dir = path.join(home, 'site', 'wwwroot', 'App_Data', 'jobs', 'triggered', name);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'run.js'), script);
  }

  function run(inputs: Record<string, string | number | boolean>, password = PASSWORD, username = '$blog'): Promise<TaskRun> {
    return runTask({
      task: 'AppServiceWebJobRun',
      inputs: { connectionType: 'Generic', kuduService: 'kudu-conn', pollIntervalSeconds: 0.2, timeoutMinutes: 1, ...inputs },
      endpoints: { 'kudu-conn': genericEndpoint(kudu.url, username, password) },
    });
  }

  const PRINT_AND_EXIT = (code: number) => `
    for (let i = 1; i <= 5; i++) console.log('step ' + i + ' of 5');
    console.error('a warning on stderr');
    setTimeout(() => process.exit(${code}), 300);
  `;

  it('runs a job to Success, streams each log line once and sets the output variables', async () => {
    job('backup', PRINT_AND_EXIT(0));
    const result = await run({ jobName: 'backup' });
    assert.equal(result.result, 'Succeeded', result.output);
    for (let i = 1; i <= 5; i++) {
      const hits = result.logLines.filter((l) => l.includes(`step ${i} of 5`));
      assert.equal(hits.length, 1, `'step ${i}' appears ${hits.length} times:\n${result.output}`);
    }
    assert.ok(result.logLines.some((l) => l.includes('a warning on stderr')));
    const vars = result.variables;
    assert.match(vars.runId.value, /^\d{18}$/);
    assert.equal(vars.runStatus.value, 'Success');
    assert.ok(vars.runId.isOutput);
    assert.ok(Number(vars.runDurationSeconds.value) >= 0.2, vars.runDurationSeconds.value);
    assert.match(vars.runLogUrl.value, new RegExp(`/vfs/data/jobs/triggered/backup/${vars.runId.value}/output_log.txt$`));
    assert.deepEqual(linesLeaking(result, [PASSWORD, Buffer.from(`$blog:${PASSWORD}`).toString('base64')]), []);
    // Kudu records the User-Agent as the run's trigger.
    const status = JSON.parse(fs.readFileSync(path.join(home, 'data', 'jobs', 'triggered', 'backup', vars.runId.value, 'status'), 'utf8'));
    assert.match(JSON.stringify(status), /AppServiceSqliteTasks\/\d+\.\d+\.\d+ \(AppServiceWebJobRun/);
  });

  it('passes the arguments to the job', async () => {
    job('echo', `console.log('argv=' + JSON.stringify(process.argv.slice(2))); console.log('env=' + process.env.WEBJOBS_COMMAND_ARGUMENTS);`);
    const result = await run({ jobName: 'echo', arguments: '--source "content/data/my blog.db" --verify quick' });
    assert.equal(result.result, 'Succeeded', result.output);
    assert.ok(result.logLines.some((l) => l.includes('argv=["--source","content/data/my blog.db","--verify","quick"]')), result.output);
    assert.ok(result.logLines.some((l) => l.includes('env=--source "content/data/my blog.db" --verify quick')), result.output);
  });

  it('fails with the status and the last lines of the log when the job fails', async () => {
    job('broken', `console.log('opening ghost.db'); console.error('Error: SQLITE_CANTOPEN'); process.exit(3);`);
    const result = await run({ jobName: 'broken' });
    assert.equal(result.result, 'Failed', result.output);
    assert.equal(result.variables.runStatus.value, 'Failed');
    assert.match(result.resultMessage!, /ended with status Failed/);
    assert.match(result.resultMessage!, /SQLITE_CANTOPEN/);
    assert.match(result.resultMessage!, /exit code 3/);
    assert.equal(result.exitCode, 1);
  });

  it('fails and explains a job that is killed (Aborted) and one that is stopped (Stopped)', async () => {
    job('long', `console.log('started'); setInterval(() => console.log('working'), 200);`);
    const aborted = run({ jobName: 'long' });
    await waitForLog('long', 'started');
    kudu.jobs.abort('long');
    const a = await aborted;
    assert.equal(a.result, 'Failed', a.output);
    assert.equal(a.variables.runStatus.value, 'Aborted');
    assert.match(a.resultMessage!, /restarted/);

    const stopped = run({ jobName: 'long' });
    await waitForLog('long', 'started', 2);
    kudu.jobs.stop('long');
    const s = await stopped;
    assert.equal(s.result, 'Failed', s.output);
    assert.equal(s.variables.runStatus.value, 'Stopped');
    assert.match(s.resultMessage!, /WEBJOBS_STOPPED/);
  });

  it("explains Kudu's idle timeout when a job prints nothing for too long", async () => {
    kudu.setSetting('WEBJOBS_IDLE_TIMEOUT', '1.5');
    job('silent', `console.log('about to go quiet'); setTimeout(() => {}, 60000);`);
    const result = await run({ jobName: 'silent' });
    assert.equal(result.result, 'Failed', result.output);
    assert.match(result.resultMessage!, /idle timeout/);
    assert.match(result.resultMessage!, /WEBJOBS_IDLE_TIMEOUT/);
  });

  it('fails on timeout and says the run may still be going', async () => {
    job('slow', `setInterval(() => console.log('still busy'), 200);`);
    const result = await run({ jobName: 'slow', timeoutMinutes: 0.03 });
    assert.equal(result.result, 'Failed', result.output);
    assert.match(result.resultMessage!, /did not finish within 0\.03 minute/);
    assert.match(result.resultMessage!, /may still be running/);
    assert.ok(result.variables.runId, 'runId is set even on timeout');
  });

  it('passes once the run is accepted when not waiting', async () => {
    job('slow', `setInterval(() => console.log('still busy'), 200);`);
    const result = await run({ jobName: 'slow', waitForCompletion: false });
    assert.equal(result.result, 'Succeeded', result.output);
    assert.match(result.variables.runId.value, /^\d{18}$/);
    assert.equal(result.variables.runStatus.value, 'Initializing');
  });

  describe('when a run is already in progress', () => {
    async function busy(): Promise<string> {
      job('backup', `console.log('run ' + process.env.WEBJOBS_RUN_ID); setTimeout(() => process.exit(0), 1500);`);
      const res = await fetch(new URL('api/triggeredwebjobs/backup/run', kudu.url), {
        method: 'POST',
        headers: { authorization: 'Basic ' + Buffer.from(`$blog:${PASSWORD}`).toString('base64'), 'user-agent': 'schedule-test' },
      });
      assert.equal(res.status, 202);
      return String(res.headers.get('location')).split('/').pop()!;
    }

    it("queue: waits for it, then starts and reports a fresh run", async () => {
      const other = await busy();
      const result = await run({ jobName: 'backup', whenAlreadyRunning: 'queue' });
      assert.equal(result.result, 'Succeeded', result.output);
      assert.notEqual(result.variables.runId.value, other);
      assert.ok(result.logLines.some((l) => l.includes('already running')), result.output);
    });

    it('attach: follows that run and reports its result', async () => {
      const other = await busy();
      const result = await run({ jobName: 'backup', whenAlreadyRunning: 'attach' });
      assert.equal(result.result, 'Succeeded', result.output);
      assert.equal(result.variables.runId.value, other);
    });

    it('fail: fails at once and names the run in progress', async () => {
      const other = await busy();
      const result = await run({ jobName: 'backup', whenAlreadyRunning: 'fail' });
      assert.equal(result.result, 'Failed', result.output);
      assert.match(result.resultMessage!, new RegExp(`already running \\(run ${other}`));
      await kudu.jobs.waitForIdle(10_000);
    });
  });

  it('reports wrong credentials without showing them', async () => {
    job('backup', PRINT_AND_EXIT(0));
    const wrong = 'not-the-password-123';
    const result = await run({ jobName: 'backup' }, wrong);
    assert.equal(result.result, 'Failed', result.output);
    assert.match(result.resultMessage!, /401 Unauthorized/);
    assert.match(result.resultMessage!, /SCM Basic Auth Publishing Credentials/);
    assert.deepEqual(linesLeaking(result, [wrong, Buffer.from(`$blog:${wrong}`).toString('base64')]), []);
  });

  it('sends the password as a bearer token when the user name is empty', async () => {
    await kudu.close();
    kudu = await startKuduServer({ home, auth: { bearer: (token) => token === 'tok-123456' } });
    job('backup', PRINT_AND_EXIT(0));
    const result = await run({ jobName: 'backup' }, 'tok-123456', '');
    assert.equal(result.result, 'Succeeded', result.output);
    assert.deepEqual(linesLeaking(result, ['tok-123456']), []);
  });

  it('names an unknown job and lists the jobs that exist', async () => {
    job('backup', PRINT_AND_EXIT(0));
    job('cleanup', PRINT_AND_EXIT(0));
    const result = await run({ jobName: 'Backup' });
    assert.equal(result.result, 'Failed', result.output);
    assert.match(result.resultMessage!, /'Backup' does not exist/);
    assert.match(result.resultMessage!, /'backup', 'cleanup'/);
  });

  it('explains WebJobs stopped by the WEBJOBS_STOPPED setting', async () => {
    job('backup', PRINT_AND_EXIT(0));
    kudu.setSetting('WEBJOBS_STOPPED', '1');
    const result = await run({ jobName: 'backup' });
    assert.equal(result.result, 'Failed', result.output);
    assert.match(result.resultMessage!, /WEBJOBS_STOPPED/);
  });

  it('rides out 503s and connection resets while polling, and a reset while reading the log', async () => {
    job('backup', `for (let i = 1; i <= 20; i++) console.log('line ' + i); setTimeout(() => {}, 1500);`);
    const faults = [
      kudu.faults.add({ method: 'GET', path: /\/history\/\d+$/, status: 503, headers: { 'Retry-After': '0' }, times: 3 }),
      kudu.faults.add({ method: 'GET', path: /\/history\/\d+$/, resetAfterBytes: 5, times: 2 }),
      kudu.faults.add({ method: 'GET', path: /output_log\.txt$/, resetAfterBytes: 100, times: 2 }),
    ];
    const result = await run({ jobName: 'backup' });
    assert.equal(result.result, 'Succeeded', result.output);
    assert.deepEqual(faults.map((f) => f.hits), [3, 2, 2], 'every fault was met');
    for (let i = 1; i <= 20; i++) {
      assert.equal(result.logLines.filter((l) => l.endsWith(`] line ${i}`)).length, 1, `line ${i}:\n${result.output}`);
    }
  });

  it('does not post the run twice when the answer to the POST is lost', async () => {
    job('backup', PRINT_AND_EXIT(0));
    kudu.faults.add({ method: 'POST', path: /\/run$/, dropResponse: true });
    const result = await run({ jobName: 'backup' });
    assert.equal(result.result, 'Succeeded', result.output);
    assert.ok(result.warnings.some((w) => w.includes("looking at the job's history")), result.output);
    const posts = kudu.requests.filter((r) => r.method === 'POST');
    assert.equal(posts.length, 1);
    const runs = fs.readdirSync(path.join(home, 'data', 'jobs', 'triggered', 'backup')).filter((d) => /^\d+$/.test(d));
    assert.equal(runs.length, 1, `runs: ${runs}; posts: ${posts.length}`);
  });

  it('posts again when the POST failed before Kudu started anything (503)', async () => {
    job('backup', PRINT_AND_EXIT(0));
    kudu.faults.add({ method: 'POST', path: /\/run$/, status: 503 });
    const result = await run({ jobName: 'backup' });
    assert.equal(result.result, 'Succeeded', result.output);
    assert.equal(kudu.requests.filter((r) => r.method === 'POST').length, 2);
  });

  async function waitForLog(jobName: string, text: string, runs = 1): Promise<void> {
    const dir = path.join(home, 'data', 'jobs', 'triggered', jobName);
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const ids = fs.existsSync(dir) ? fs.readdirSync(dir).filter((d) => /^\d+$/.test(d)).sort() : [];
      if (ids.length >= runs) {
        const log = path.join(dir, ids[ids.length - 1], 'output_log.txt');
        if (fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes(text)) return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`'${text}' never appeared in the log of ${jobName}`);
  }
});
