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
    const releaseFile = () => path.join(home, 'release-backup');

    /** Another pipeline's run, which goes on until the test releases it (later runs of the job end at once). */
    async function busy(): Promise<string> {
      const file = JSON.stringify(releaseFile());
      job('backup', `console.log('run ' + process.env.WEBJOBS_RUN_ID); setInterval(() => { if (require('fs').existsSync(${file})) process.exit(0); }, 50);`);
      const res = await fetch(new URL('api/triggeredwebjobs/backup/run', kudu.url), {
        method: 'POST',
        headers: { authorization: 'Basic ' + Buffer.from(`$blog:${PASSWORD}`).toString('base64'), 'user-agent': 'schedule-test' },
      });
      assert.equal(res.status, 202);
      return String(res.headers.get('location')).split('/').pop()!;
    }

    /** Runs the task; the other run ends once the task has printed `when`, however slowly the task started. */
    function runReleasing(inputs: Record<string, string>, when?: string): Promise<TaskRun> {
      return runTask({
        task: 'AppServiceWebJobRun',
        inputs: { connectionType: 'Generic', kuduService: 'kudu-conn', pollIntervalSeconds: 0.2, timeoutMinutes: 1, jobName: 'backup', ...inputs },
        endpoints: { 'kudu-conn': genericEndpoint(kudu.url, '$blog', PASSWORD) },
        onLine: (line) => {
          if (when && line.includes(when)) fs.writeFileSync(releaseFile(), '');
        },
      });
    }

    it("queue: waits for it, then starts and reports a fresh run", async () => {
      const other = await busy();
      const result = await runReleasing({ whenAlreadyRunning: 'queue' }, 'Waiting for it to end');
      assert.equal(result.result, 'Succeeded', result.output);
      assert.notEqual(result.variables.runId.value, other);
      assert.ok(result.logLines.some((l) => l.includes('already running')), result.output);
    });

    it('attach: follows that run and reports its result', async () => {
      const other = await busy();
      const result = await runReleasing({ whenAlreadyRunning: 'attach' }, 'Attaching to it');
      assert.equal(result.result, 'Succeeded', result.output);
      assert.equal(result.variables.runId.value, other);
    });

    it('fail: fails at once and names the run in progress', async () => {
      const other = await busy();
      const result = await runReleasing({ whenAlreadyRunning: 'fail' });
      fs.writeFileSync(releaseFile(), '');
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

  it('folds the streamed log into a group on the run page', async () => {
    job('backup', PRINT_AND_EXIT(0));
    const result = await run({ jobName: 'backup' });
    assert.equal(result.result, 'Succeeded', result.output);
    const lines = result.logLines;
    const open = lines.findIndex((l) => /^##\[group\]Log of run \d+ of WebJob 'backup'$/.test(l));
    const close = lines.indexOf('##[endgroup]');
    const step = lines.findIndex((l) => l.includes('step 3 of 5'));
    assert.ok(open >= 0 && open < step && step < close, result.output);
    assert.equal(lines.filter((l) => l.startsWith('##[group]')).length, 1);
  });

  describe('deadlines', () => {
    async function othersRun(name: string, script: string): Promise<string> {
      job(name, script);
      const res = await fetch(new URL(`api/triggeredwebjobs/${name}/run`, kudu.url), {
        method: 'POST',
        headers: { authorization: 'Basic ' + Buffer.from(`$blog:${PASSWORD}`).toString('base64'), 'user-agent': 'another-pipeline' },
      });
      assert.equal(res.status, 202);
      return String(res.headers.get('location')).split('/').pop()!;
    }

    function runUntil(inputs: Record<string, string | number | boolean>): Promise<TaskRun> {
      return runTask({
        task: 'AppServiceWebJobRun',
        inputs: { connectionType: 'Generic', kuduService: 'kudu-conn', pollIntervalSeconds: 0.2, ...inputs },
        endpoints: { 'kudu-conn': genericEndpoint(kudu.url, '$blog', PASSWORD) },
        // Far beyond the task's own deadline: a task that ignores its deadline is killed here and fails the test.
        timeoutMs: 60_000,
      });
    }

    it('queue: stops at its deadline when the run in progress never ends, and posts no run', async () => {
      const other = await othersRun('forever', `console.log('busy'); setInterval(() => console.log('still busy'), 300);`);
      const result = await runUntil({ jobName: 'forever', whenAlreadyRunning: 'queue', timeoutMinutes: 0.05 });
      assert.equal(result.timedOut, false, 'the task ended by itself');
      assert.equal(result.result, 'Failed', result.output);
      assert.match(result.resultMessage!, new RegExp(`still running run ${other} .*timeoutMinutes \\(0\\.05\\) ran out, so no new run was started`));
      assert.equal(kudu.requests.filter((r) => r.method === 'POST').length, 1, 'only the other pipeline posted');
      // 3 s of polling every 0.2 s: a few dozen requests, not the tens of thousands of a loop without pause.
      assert.ok(kudu.requests.length < 100, `${kudu.requests.length} requests`);
    });

    it('queue: does not start a run after its deadline when the other run ends just after it', async () => {
      const release = path.join(home, 'release-slowjob');
      await othersRun('slowjob', `console.log('busy'); setInterval(() => { if (require('fs').existsSync(${JSON.stringify(release)})) process.exit(0); }, 50);`);
      // The other run ends half a second after the task's 2.4-second deadline, counted from when
      // the task says it waits (its deadline started earlier): a task still looping then would post.
      let released: Promise<void> | undefined;
      const result = await runTask({
        task: 'AppServiceWebJobRun',
        inputs: { connectionType: 'Generic', kuduService: 'kudu-conn', pollIntervalSeconds: 0.2, jobName: 'slowjob', whenAlreadyRunning: 'queue', timeoutMinutes: 0.04 },
        endpoints: { 'kudu-conn': genericEndpoint(kudu.url, '$blog', PASSWORD) },
        timeoutMs: 60_000,
        onLine: (line) => {
          if (!released && line.includes('Waiting for it to end')) released = new Promise((r) => setTimeout(() => r(fs.writeFileSync(release, '')), 2900));
        },
      });
      assert.equal(result.result, 'Failed', result.output);
      assert.match(result.resultMessage!, /no new run was started/);
      await released;
      await kudu.jobs.waitForIdle(20_000);
      const runs = fs.readdirSync(path.join(home, 'data', 'jobs', 'triggered', 'slowjob')).filter((d) => /^\d+$/.test(d));
      assert.equal(runs.length, 1, `runs: ${runs}`);
      assert.equal(kudu.requests.filter((r) => r.method === 'POST').length, 1);
    });

    it('ends at its deadline while the server trickles its answer one byte a second', async () => {
      job('backup', PRINT_AND_EXIT(0));
      kudu.faults.add({ method: 'GET', path: '/api/triggeredwebjobs/backup', status: 200, body: JSON.stringify({ name: 'backup' }).padEnd(60), trickleMs: 1000, times: Infinity });
      const result = await runUntil({ jobName: 'backup', timeoutMinutes: 0.01 });
      assert.equal(result.result, 'Failed', result.output);
      assert.match(result.resultMessage!, /GET \/api\/triggeredwebjobs\/backup .*the time allowed by timeoutMinutes \(0\.01\) ran out\. Raise timeoutMinutes/);
      assert.ok(result.durationMs < 20_000, `the task ran ${result.durationMs} ms against a 0.6-second deadline`);
    });
  });

  describe('a Generic connection URL with user-info (https://$app:PW@host/)', () => {
    function withUserInfo(password: string): TaskRun | Promise<TaskRun> {
      const url = kudu.url.replace('http://', `http://$blog:${password}@`);
      return runTask({
        task: 'AppServiceWebJobRun',
        inputs: { connectionType: 'Generic', kuduService: 'kudu-conn', pollIntervalSeconds: 0.2, timeoutMinutes: 1, jobName: 'backup' },
        endpoints: { 'kudu-conn': { url, scheme: 'UsernamePassword', parameters: {} } },
        variables: { 'System.Debug': 'true' },
      });
    }

    it('uses the credentials in the URL, registers the password first and never prints it, even with System.Debug', async () => {
      job('backup', PRINT_AND_EXIT(0));
      const result = await withUserInfo(PASSWORD);
      assert.equal(result.result, 'Succeeded', result.output);
      assert.ok(result.secrets.includes(PASSWORD), 'the password is registered');
      const firstSecret = result.stdout.indexOf('##vso[task.setsecret]');
      const firstUrl = result.stdout.indexOf(new URL(kudu.url).host);
      assert.ok(firstSecret >= 0 && (firstUrl < 0 || firstSecret < firstUrl), 'registered before the URL is printed anywhere');
      assert.deepEqual(linesLeaking(result, [PASSWORD, `$blog:${PASSWORD}`]), []);
    });

    it('keeps the password out of the messages when Kudu refuses it', async () => {
      job('backup', PRINT_AND_EXIT(0));
      const wrong = 'wr0ng-pa55-in-the-url';
      const result = await withUserInfo(wrong);
      assert.equal(result.result, 'Failed', result.output);
      assert.match(result.resultMessage!, /401 Unauthorized/);
      assert.deepEqual(linesLeaking(result, [wrong]), []);
    });
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
