import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isAlive } from '../../testkit/kudu-server/process-tree';
import {
  api, outputLog, runJob, startTestServer, stopTestServer, TestServer, uploadJob, waitFor, waitForRunEnd, zipBuffer,
} from './test-helpers';

const HELLO = `
console.log('line one');
console.error('an error line');
console.log('line two');
`;
const FAIL = `console.log('about to fail'); process.exit(1);`;
const REPORT = `
const env = {};
for (const k of ['HOME', 'WEBJOBS_RUN_ID', 'WEBJOBS_NAME', 'WEBJOBS_TYPE', 'WEBJOBS_DATA_PATH', 'WEBJOBS_PATH',
                 'WEBJOBS_COMMAND_ARGUMENTS', 'WEBSITE_SITE_NAME']) env[k] = process.env[k];
console.log(JSON.stringify({ argv: process.argv.slice(2), env, cwd: process.cwd() }));
`;
// Prints its pid and a child's pid, then waits (output keeps the default idle timeout away).
const SLEEPER = `
const { spawn } = require('child_process');
const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'], { stdio: 'ignore' });
console.log('pids ' + process.pid + ' ' + child.pid);
setTimeout(() => {}, 600000);
`;

const LOG_LINE = /^\[(\d\d)\/(\d\d)\/(\d{4}) (\d\d):(\d\d):(\d\d) > abc123: (SYS )?(INFO|WARN|ERR ?)\] (.*)$/;

function logLines(text: string): string[] {
  assert.ok(text.endsWith('\r\n'), 'log ends with CRLF');
  return text.slice(0, -2).split('\r\n');
}

function messages(text: string): string[] {
  return logLines(text).map(line => {
    const m = LOG_LINE.exec(line);
    assert.ok(m, `log line has Kudu's format: ${JSON.stringify(line)}`);
    return `${m[7] ?? ''}${m[8].trim()}: ${m[9]}`;
  });
}

async function pidsOf(t: TestServer, name: string, runId: string): Promise<number[]> {
  const line = await waitFor('the job to print its pids', 15_000, () =>
    outputLog(t.home, name, runId).split('\r\n').find(l => l.includes('] pids ')));
  return line.split('] pids ')[1].split(' ').map(Number);
}

describe('kudu-server: triggered WebJobs', function () {
  let t: TestServer | undefined;
  afterEach(async () => {
    await stopTestServer(t);
    t = undefined;
  });

  it('uploads a zipped job and describes it like Kudu', async () => {
    t = await startTestServer();
    const res = await uploadJob(t.kudu, 'nightly', { 'run.js': HELLO, 'lib/helper.js': '' });
    assert.equal(res.status, 200);
    const job = (await res.json()) as Record<string, unknown>;
    const base = t.kudu.url + 'api/triggeredwebjobs/nightly';
    assert.deepEqual(job, {
      latest_run: null,
      history_url: base + '/history',
      scheduler_logs_url: null,
      name: 'nightly',
      run_command: 'run.js',
      url: base,
      extra_info_url: t.kudu.url + 'azurejobs/#/jobs/triggered/nightly',
      type: 'triggered',
      error: null,
      using_sdk: false,
      settings: {},
    });
    assert.ok(fs.existsSync(path.join(t.home, 'site/wwwroot/App_Data/jobs/triggered/nightly/lib/helper.js')));
    assert.deepEqual(await (await api(t.kudu, 'api/triggeredwebjobs/nightly')).json(), job);
    const list = (await (await api(t.kudu, 'api/triggeredwebjobs')).json()) as Array<{ name: string }>;
    assert.deepEqual(list.map(j => j.name), ['nightly']);
    // The deprecated alias answers too.
    assert.equal((await api(t.kudu, 'api/triggeredjobs/nightly')).status, 200);

    const missing = await api(t.kudu, 'api/triggeredwebjobs/nope');
    assert.equal(missing.status, 404);
    assert.equal(await missing.text(), '');
  });

  it('needs a Content-Disposition file name to upload', async () => {
    t = await startTestServer();
    const res = await api(t.kudu, 'api/triggeredwebjobs/x', { method: 'PUT', headers: { 'content-type': 'application/zip' }, body: 'zz' });
    assert.equal(res.status, 400);
    assert.match(res.headers.get('content-type')!, /^text\/plain/);
    assert.equal(await res.text(), 'Missing Content-Disposition header.');
  });

  it('refuses a job with nothing runnable and removes it again', async () => {
    t = await startTestServer();
    const res = await uploadJob(t.kudu, 'docs', { 'readme.txt': 'no script here' });
    assert.equal(res.status, 400);
    assert.equal(await res.text(), 'No runnable script file was found.');
    assert.equal((await api(t.kudu, 'api/triggeredwebjobs/docs')).status, 404);
    assert.ok(!fs.existsSync(path.join(t.home, 'site/wwwroot/App_Data/jobs/triggered/docs')));
  });

  it('stores a single non-zip upload under its file name; any .js is runnable', async () => {
    t = await startTestServer();
    const res = await api(t.kudu, 'api/triggeredwebjobs/single', {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-disposition': 'attachment; filename="C:\\temp\\backup.js"' },
      body: HELLO,
    });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { run_command: string }).run_command, 'backup.js');
    const { runId } = await runJob(t.kudu, 'single');
    assert.equal((await waitForRunEnd(t.kudu, 'single', runId)).status, 'Success');
  });

  it('runs a job to Success and logs what Kudu logs', async () => {
    t = await startTestServer();
    await uploadJob(t.kudu, 'hello', { 'run.js': HELLO });
    const res = await api(t.kudu, 'api/triggeredwebjobs/hello/run', { method: 'POST', headers: { 'user-agent': 'kudu-test/1.0' } });
    assert.equal(res.status, 202);
    assert.equal(await res.text(), '');
    const location = res.headers.get('location')!;
    const runId = location.split('/').pop()!;
    assert.match(runId, /^\d{18}$/);
    assert.equal(location, `${t.kudu.url}api/triggeredwebjobs/hello/history/${runId}`);
    // The run is on disk before the 202, so the Location is readable at once.
    assert.ok(fs.existsSync(path.join(t.home, 'data/jobs/triggered/hello', runId, 'status')));
    const early = (await (await fetch(location, { headers: { authorization: 'Basic dXNlcjpwYXNz' } })).json()) as Record<string, unknown>;
    assert.ok(['Initializing', 'Running', 'Success'].includes(early.status as string), String(early.status));

    const run = await waitForRunEnd(t.kudu, 'hello', runId);
    assert.deepEqual(Object.keys(run), ['id', 'name', 'status', 'start_time', 'end_time', 'duration', 'output_url', 'error_url', 'url', 'job_name', 'trigger']);
    assert.equal(run.status, 'Success');
    assert.equal(run.id, runId);
    assert.equal(run.name, runId);
    assert.equal(run.job_name, 'hello');
    assert.equal(run.trigger, 'External - kudu-test/1.0');
    assert.equal(run.url, location);
    assert.equal(run.error_url, null);
    assert.match(run.start_time as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z$/);
    assert.match(run.end_time as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z$/);
    assert.match(run.duration as string, /^00:00:\d\d(\.\d{7})?$/);
    assert.equal(run.output_url, `${t.kudu.url}vfs/data/jobs/triggered/hello/${runId}/output_log.txt`);

    const logRes = await api(t.kudu, run.output_url as string);
    assert.equal(logRes.status, 200);
    const log = await logRes.text();
    const msgs = messages(log);
    assert.deepEqual(msgs.slice(0, 3), [
      'SYS INFO: Status changed to Initializing',
      "SYS INFO: Run script 'run.js' with script host - 'NodeScriptHost'",
      'SYS INFO: Status changed to Running',
    ]);
    assert.equal(msgs[msgs.length - 1], 'SYS INFO: Status changed to Success');
    // stdout and stderr are separate pipes: only the order within one stream is certain.
    const output = msgs.slice(3, -1);
    assert.deepEqual(output.filter(m => m.startsWith('INFO')), ['INFO: line one', 'INFO: line two']);
    assert.deepEqual(output.filter(m => m.startsWith('ERR')), ['ERR: an error line']);
    assert.ok(log.includes('> abc123: ERR ] an error line\r\n'), 'stderr level is padded to four characters');

    const status = fs.readFileSync(path.join(t.home, 'data/jobs/triggered/hello', runId, 'status'), 'utf8');
    assert.match(status, /^\{"Trigger":"External - kudu-test\/1.0","Status":"Success","StartTime":"[^"]+Z","EndTime":"[^"]+Z"\}$/);
  });

  it('marks a non-zero exit Failed with the exit code in the log', async () => {
    t = await startTestServer();
    await uploadJob(t.kudu, 'broken', { 'run.js': FAIL });
    const { runId } = await runJob(t.kudu, 'broken');
    assert.equal((await waitForRunEnd(t.kudu, 'broken', runId)).status, 'Failed');
    const msgs = messages(outputLog(t.home, 'broken', runId));
    assert.deepEqual(msgs.slice(-3), ['INFO: about to fail', 'SYS INFO: Status changed to Failed', 'SYS ERR: Job failed due to exit code 1']);
  });

  it('hands arguments and the WebJobs environment to the process', async () => {
    t = await startTestServer({ siteName: 'mysite' });
    await uploadJob(t.kudu, 'report', { 'run.js': REPORT });
    const args = '--db "my data.db" -v';
    const { runId } = await runJob(t.kudu, 'report', '?arguments=' + encodeURIComponent(args));
    await waitForRunEnd(t.kudu, 'report', runId);
    const line = outputLog(t.home, 'report', runId).split('\r\n').find(l => l.includes(': INFO] {'))!;
    const seen = JSON.parse(line.slice(line.indexOf('] ') + 2)) as { argv: string[]; env: Record<string, string>; cwd: string };
    assert.deepEqual(seen.argv, ['--db', 'my data.db', '-v']);
    const jobDir = path.join(t.home, 'site/wwwroot/App_Data/jobs/triggered/report');
    assert.deepEqual(seen.env, {
      HOME: t.home,
      WEBJOBS_RUN_ID: runId,
      WEBJOBS_NAME: 'report',
      WEBJOBS_TYPE: 'triggered',
      WEBJOBS_DATA_PATH: path.join(t.home, 'data/jobs/triggered/report'),
      // Node jobs run in place unless settings.job says is_in_place: false.
      WEBJOBS_PATH: jobDir,
      WEBJOBS_COMMAND_ARGUMENTS: args,
      WEBSITE_SITE_NAME: 'mysite',
    });
    assert.equal(fs.realpathSync(seen.cwd), fs.realpathSync(jobDir));
  });

  it('runs from a temporary copy when is_in_place is false, re-copying after a change', async () => {
    t = await startTestServer();
    await uploadJob(t.kudu, 'copied', { 'run.js': REPORT, 'settings.job': '{"is_in_place":false}' });
    const workingDir = async (): Promise<{ dir: string; runId: string }> => {
      const { runId } = await runJob(t!.kudu, 'copied');
      await waitForRunEnd(t!.kudu, 'copied', runId);
      const line = outputLog(t!.home, 'copied', runId).split('\r\n').find(l => l.includes(': INFO] {'))!;
      return { dir: (JSON.parse(line.slice(line.indexOf('] ') + 2)) as { env: Record<string, string> }).env.WEBJOBS_PATH, runId };
    };
    const first = await workingDir();
    assert.ok(!first.dir.startsWith(t.home), first.dir);
    assert.match(path.basename(first.dir), /^[a-z0-5]{8}\.[a-z0-5]{3}$/);
    assert.ok(fs.existsSync(path.join(first.dir, 'run.js')));
    assert.equal((await workingDir()).dir, first.dir, 'an unchanged job reuses its copy');

    const script = path.join(t.home, 'site/wwwroot/App_Data/jobs/triggered/copied/run.js');
    fs.utimesSync(script, new Date(), new Date(Date.now() + 5000));
    const third = await workingDir();
    assert.notEqual(third.dir, first.dir);
    assert.ok(messages(outputLog(t.home, 'copied', third.runId)).includes(
      "SYS INFO: Job directory change detected: Job file 'run.js' timestamp differs between source and working directories."));
  });

  it('runs run.sh with bash, from a temporary copy, before any run.js', async function () {
    if (process.platform === 'win32') this.skip();
    t = await startTestServer();
    await uploadJob(t.kudu, 'shell', { 'run.sh': 'echo "args=$1|$2 path=$WEBJOBS_PATH"\nexit 3\n', 'run.js': HELLO });
    const job = (await (await api(t.kudu, 'api/triggeredwebjobs/shell')).json()) as { run_command: string };
    assert.equal(job.run_command, 'run.sh');
    const { runId } = await runJob(t.kudu, 'shell', '?arguments=' + encodeURIComponent("'a b' c"));
    assert.equal((await waitForRunEnd(t.kudu, 'shell', runId)).status, 'Failed');
    const msgs = messages(outputLog(t.home, 'shell', runId));
    assert.equal(msgs[1], "SYS INFO: Run script 'run.sh' with script host - 'BashScriptHost'");
    const out = msgs.find(m => m.startsWith('INFO: args='))!;
    assert.match(out, /^INFO: args=a b\|c path=\S+$/);
    assert.ok(!out.includes(t.home), 'bash jobs run from a copy outside %HOME%');
    assert.equal(msgs[msgs.length - 1], 'SYS ERR: Job failed due to exit code 3');
  });

  it("picks the entry file in Kudu's order: run.cmd, run.bat, run.exe, run.ps1, run.sh, run.py, run.php, run.js, run.fsx", async function () {
    if (process.platform === 'win32') this.skip();
    t = await startTestServer();
    const command = async (files: string[]): Promise<string | undefined> => {
      await uploadJob(t!.kudu, 'order', Object.fromEntries(files.map(f => [f, f.endsWith('.js') ? HELLO : 'echo hi\n'])));
      const res = await api(t!.kudu, 'api/triggeredwebjobs/order');
      return res.status === 200 ? ((await res.json()) as { run_command: string }).run_command : undefined;
    };
    const all = ['run.fsx', 'run.js', 'run.php', 'run.py', 'run.sh', 'run.ps1', 'run.exe', 'run.bat', 'run.cmd'];
    // cmd.exe and PowerShell do not exist on this machine, so Kudu's order moves on to bash.
    assert.equal(await command(all), 'run.sh');
    // Python and PHP are not run here: Kudu skips a host without its interpreter.
    assert.equal(await command(all.filter(f => f !== 'run.sh')), 'run.js');
    // A run.* of a later host beats another file of an earlier one; without any run.*, the first of the first host.
    assert.equal(await command(['backup.sh', 'run.js']), 'run.js');
    assert.equal(await command(['backup.sh', 'job.js']), 'backup.sh');
    assert.equal(await command(['Run.SH', 'run.js']), 'Run.SH');
  });

  it('runs a run.sh job in place when settings.job says is_in_place: true, with the app settings in its environment', async function () {
    if (process.platform === 'win32') this.skip();
    t = await startTestServer({ settings: { SQLITE_BACKUP_NODE: '/opt/node' }, env: { ...process.env, SCM_ONLY: 'from the SCM process' } });
    const script = 'echo "path=$WEBJOBS_PATH cwd=$(pwd) setting=$SQLITE_BACKUP_NODE|$APPSETTING_SQLITE_BACKUP_NODE scm=$SCM_ONLY"\n';
    await uploadJob(t.kudu, 'inplace', { 'run.sh': script, 'settings.job': '{ "is_in_place": true }' });
    const { runId } = await runJob(t.kudu, 'inplace');
    assert.equal((await waitForRunEnd(t.kudu, 'inplace', runId)).status, 'Success');
    const jobDir = path.join(t.home, 'site/wwwroot/App_Data/jobs/triggered/inplace');
    const out = messages(outputLog(t.home, 'inplace', runId)).find(m => m.startsWith('INFO: path='))!;
    assert.equal(out, `INFO: path=${jobDir} cwd=${fs.realpathSync(jobDir)} setting=/opt/node|/opt/node scm=from the SCM process`);
  });

  it('answers 404 for an unknown job and 409 while a run is in progress', async () => {
    t = await startTestServer();
    const unknown = await api(t.kudu, 'api/triggeredwebjobs/ghost/run', { method: 'POST' });
    assert.equal(unknown.status, 404);
    assert.equal(await unknown.text(), '');

    await uploadJob(t.kudu, 'busy', { 'run.js': SLEEPER });
    const { runId } = await runJob(t.kudu, 'busy');
    await pidsOf(t, 'busy', runId);
    const again = await api(t.kudu, 'api/triggeredwebjobs/busy/run', { method: 'POST' });
    assert.equal(again.status, 409);
    assert.match(again.headers.get('content-type')!, /^text\/plain/);
    assert.equal(await again.text(), 'Cannot start a new run since job is already running.');
    await t.kudu.jobs.abort('busy');
  });

  it('refuses runs while WEBJOBS_STOPPED is set', async () => {
    t = await startTestServer({ settings: { WEBJOBS_STOPPED: '1' } });
    await uploadJob(t.kudu, 'quiet', { 'run.js': HELLO });
    const res = await api(t.kudu, 'api/triggeredwebjobs/quiet/run', { method: 'POST' });
    assert.equal(res.status, 409);
    assert.equal(await res.text(), 'WebJobs are currently in "stopped" state.');
    t.kudu.setSetting('WEBJOBS_STOPPED', 'TRUE');
    assert.equal((await api(t.kudu, 'api/triggeredwebjobs/quiet/run', { method: 'POST' })).status, 409);
    t.kudu.setSetting('WEBJOBS_STOPPED', undefined);
    const { runId } = await runJob(t.kudu, 'quiet');
    assert.equal((await waitForRunEnd(t.kudu, 'quiet', runId)).status, 'Success');
  });

  it('kills a job idle past WEBJOBS_IDLE_TIMEOUT, tree included, and marks it Failed', async function () {
    this.timeout(30_000);
    t = await startTestServer({ settings: { WEBJOBS_IDLE_TIMEOUT: '1.5' } });
    await uploadJob(t.kudu, 'idle', { 'run.js': SLEEPER });
    const { runId } = await runJob(t.kudu, 'idle');
    const pids = await pidsOf(t, 'idle', runId);
    const run = await waitForRunEnd(t.kudu, 'idle', runId, 20_000);
    assert.equal(run.status, 'Failed');
    const log = outputLog(t.home, 'idle', runId);
    assert.match(log, /SYS INFO\] Status changed to Failed\r\n\[[^\]]+ SYS ERR \] Kudu\.Core\.Infrastructure\.CommandLineException: Command 'node run\.js' was aborted due to no output nor CPU activity for \d+ seconds\. You can increase the SCM_COMMAND_IDLE_TIMEOUT app setting \(or WEBJOBS_IDLE_TIMEOUT if this is a WebJob\) if needed\.\r\n/);
    await waitFor('the job tree to die', 5_000, () => (pids.some(isAlive) ? undefined : true));
  });

  it('does not count a job busy on the CPU as idle', async function () {
    if (process.platform !== 'linux') this.skip(); // CPU time is read from /proc
    this.timeout(30_000);
    t = await startTestServer({ settings: { WEBJOBS_IDLE_TIMEOUT: '1' } });
    await uploadJob(t.kudu, 'busy', { 'run.js': 'const end = Date.now() + 4500; while (Date.now() < end) {} console.log("done");' });
    const { runId } = await runJob(t.kudu, 'busy');
    assert.equal((await waitForRunEnd(t.kudu, 'busy', runId)).status, 'Success');
  });

  it('reads an aborted run (crash, no status update) as Aborted and lets a new run start', async () => {
    t = await startTestServer();
    await uploadJob(t.kudu, 'crash', { 'run.js': SLEEPER });
    const { runId } = await runJob(t.kudu, 'crash');
    const pids = await pidsOf(t, 'crash', runId);
    await t.kudu.jobs.abort('crash');
    const statusFile = JSON.parse(fs.readFileSync(path.join(t.home, 'data/jobs/triggered/crash', runId, 'status'), 'utf8'));
    assert.equal(statusFile.Status, 'Running');
    assert.equal(statusFile.EndTime, undefined);
    const run = (await (await api(t.kudu, `api/triggeredwebjobs/crash/history/${runId}`)).json()) as Record<string, unknown>;
    assert.equal(run.status, 'Aborted');
    assert.equal(run.end_time, '0001-01-01T00:00:00');
    await waitFor('the job tree to die', 5_000, () => (pids.some(isAlive) ? undefined : true));
    const second = await runJob(t.kudu, 'crash');
    assert.notEqual(second.runId, runId);
    await t.kudu.jobs.stop('crash');
  });

  it('stops a run the way Kudu does on refresh', async () => {
    t = await startTestServer();
    await uploadJob(t.kudu, 'stopme', { 'run.js': SLEEPER });
    const { runId } = await runJob(t.kudu, 'stopme');
    const pids = await pidsOf(t, 'stopme', runId);
    await t.kudu.jobs.stop('stopme');
    const run = (await (await api(t.kudu, `api/triggeredwebjobs/stopme/history/${runId}`)).json()) as Record<string, unknown>;
    assert.equal(run.status, 'Stopped');
    assert.notEqual(run.end_time, '0001-01-01T00:00:00');
    assert.deepEqual(messages(outputLog(t.home, 'stopme', runId)).slice(-2), ['SYS INFO: WebJob process was aborted', 'SYS INFO: Status changed to Stopped']);
    assert.ok(!pids.some(isAlive));
  });

  it('lists history newest first with an ETag, 304 on If-None-Match, 404 before any run', async () => {
    t = await startTestServer();
    await uploadJob(t.kudu, 'hist', { 'run.js': HELLO });
    assert.equal((await api(t.kudu, 'api/triggeredwebjobs/hist/history')).status, 404);

    const first = await runJob(t.kudu, 'hist');
    await waitForRunEnd(t.kudu, 'hist', first.runId);
    const second = await runJob(t.kudu, 'hist');
    await waitForRunEnd(t.kudu, 'hist', second.runId);

    const res = await api(t.kudu, 'api/triggeredwebjobs/hist/history');
    assert.equal(res.status, 200);
    const etag = res.headers.get('etag')!;
    assert.match(etag, /^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$/);
    const body = (await res.json()) as { runs: Array<{ id: string }> };
    assert.deepEqual(body.runs.map(r => r.id), [second.runId, first.runId]);

    const cached = await api(t.kudu, 'api/triggeredwebjobs/hist/history', { headers: { 'if-none-match': etag } });
    assert.equal(cached.status, 304);
    assert.equal(cached.headers.get('etag'), etag);

    const job = (await (await api(t.kudu, 'api/triggeredwebjobs/hist')).json()) as { latest_run: { id: string } };
    assert.equal(job.latest_run.id, second.runId);

    const third = await runJob(t.kudu, 'hist');
    await waitForRunEnd(t.kudu, 'hist', third.runId);
    const changed = await api(t.kudu, 'api/triggeredwebjobs/hist/history', { headers: { 'if-none-match': etag } });
    assert.equal(changed.status, 200);
    assert.notEqual(changed.headers.get('etag'), etag);
    assert.equal((await api(t.kudu, 'api/triggeredwebjobs/hist/history/19990101000000000')).status, 404);
  });

  it('gives the job list an ETag that ignores run progress, as Kudu does', async () => {
    t = await startTestServer();
    await uploadJob(t.kudu, 'listed', { 'run.js': HELLO });
    const first = await api(t.kudu, 'api/triggeredwebjobs');
    const etag = first.headers.get('etag')!;
    assert.ok(etag);
    const { runId } = await runJob(t.kudu, 'listed');
    await waitForRunEnd(t.kudu, 'listed', runId);
    assert.equal((await api(t.kudu, 'api/triggeredwebjobs', { headers: { 'if-none-match': etag } })).status, 304);
    const all = (await (await api(t.kudu, 'api/webjobs')).json()) as Array<{ name: string; latest_run: { id: string } }>;
    assert.deepEqual(all.map(j => [j.name, j.latest_run.id]), [['listed', runId]]);
    assert.equal((await api(t.kudu, 'api/triggeredwebjobs/listed/run')).status, 405);
  });

  it('keeps at most WEBJOBS_HISTORY_SIZE runs', async () => {
    t = await startTestServer({ settings: { WEBJOBS_HISTORY_SIZE: '2' } });
    await uploadJob(t.kudu, 'short', { 'run.js': HELLO });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { runId } = await runJob(t.kudu, 'short');
      await waitForRunEnd(t.kudu, 'short', runId);
      ids.push(runId);
    }
    const body = (await (await api(t.kudu, 'api/triggeredwebjobs/short/history')).json()) as { runs: Array<{ id: string }> };
    assert.deepEqual(body.runs.map(r => r.id), [ids[2], ids[1]]);
  });

  it('reads and writes settings.job, and deletes jobs with their history', async () => {
    t = await startTestServer();
    await uploadJob(t.kudu, 'cfg', { 'run.js': HELLO });
    assert.deepEqual(await (await api(t.kudu, 'api/triggeredwebjobs/cfg/settings')).json(), {});
    const put = await api(t.kudu, 'api/triggeredwebjobs/cfg/settings', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"stopping_wait_time":60}' });
    assert.equal(put.status, 200);
    assert.deepEqual(await (await api(t.kudu, 'api/triggeredwebjobs/cfg/settings')).json(), { stopping_wait_time: 60 });
    assert.deepEqual(((await (await api(t.kudu, 'api/triggeredwebjobs/cfg')).json()) as { settings: unknown }).settings, { stopping_wait_time: 60 });
    assert.equal((await api(t.kudu, 'api/triggeredwebjobs/none/settings')).status, 404);

    const { runId } = await runJob(t.kudu, 'cfg');
    await waitForRunEnd(t.kudu, 'cfg', runId);
    assert.equal((await api(t.kudu, 'api/triggeredwebjobs/cfg', { method: 'DELETE' })).status, 200);
    assert.equal((await api(t.kudu, 'api/triggeredwebjobs/cfg')).status, 404);
    assert.ok(!fs.existsSync(path.join(t.home, 'data/jobs/triggered/cfg')));
    assert.equal((await api(t.kudu, 'api/triggeredwebjobs/cfg', { method: 'DELETE' })).status, 200);
  });

  it('leaves no job process behind after close()', async () => {
    t = await startTestServer();
    await uploadJob(t.kudu, 'linger', { 'run.js': SLEEPER });
    const { runId } = await runJob(t.kudu, 'linger');
    const pids = await pidsOf(t, 'linger', runId);
    assert.equal(pids.length, 2);
    assert.ok(pids.every(isAlive));
    assert.deepEqual(t.kudu.jobs.running().map(r => [r.name, r.runId, r.pid]), [['linger', runId, pids[0]]]);
    await assert.rejects(t.kudu.jobs.waitForIdle(200), /still running/);
    await t.kudu.close();
    await waitFor('the job tree to die', 5_000, () => (pids.some(isAlive) ? undefined : true));
    assert.deepEqual(t.kudu.jobs.running(), []);
  });

  it('survives its run folder being deleted under a running job', async () => {
    t = await startTestServer();
    const chatty = 'let n = 0; const i = setInterval(() => { console.log("tick " + n++); if (n === 10) clearInterval(i); }, 50);';
    await uploadJob(t.kudu, 'chatty', { 'run.js': chatty });
    const { runId } = await runJob(t.kudu, 'chatty');
    await waitFor('output', 5_000, () => (outputLog(t!.home, 'chatty', runId).includes('tick 1') ? true : undefined));
    const del = await api(t.kudu, 'api/vfs/data/jobs/triggered/chatty/?recursive=true', { method: 'DELETE' });
    assert.equal(del.status, 200);
    await t.kudu.jobs.waitForIdle(10_000);
    assert.equal((await api(t.kudu, 'api/triggeredwebjobs/chatty')).status, 200);
  });

  it('waitForIdle resolves once runs are over', async () => {
    t = await startTestServer();
    await uploadJob(t.kudu, 'quick', { 'run.js': HELLO });
    const { runId } = await runJob(t.kudu, 'quick');
    await t.kudu.jobs.waitForIdle(15_000);
    const run = (await (await api(t.kudu, `api/triggeredwebjobs/quick/history/${runId}`)).json()) as { status: string };
    assert.equal(run.status, 'Success');
  });

  it('unpacks a zip with a single top folder and finds the script inside', async () => {
    t = await startTestServer();
    const res = await api(t.kudu, 'api/triggeredwebjobs/nested', {
      method: 'PUT',
      headers: { 'content-type': 'application/zip', 'content-disposition': 'attachment; filename=nested.zip' },
      body: await zipBuffer({ 'app/run.js': HELLO }),
    });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { run_command: string }).run_command, path.join('app', 'run.js'));
    const { runId } = await runJob(t.kudu, 'nested');
    assert.equal((await waitForRunEnd(t.kudu, 'nested', runId)).status, 'Success');
  });
});
