/**
 * `npm run demo`: the whole pipeline of a Ghost blog on App Service, on this machine, with nothing
 * to configure. A Kudu-compatible server serves an App Service home with a live blog that keeps
 * publishing and reading posts; the extension's tasks then run exactly as an agent runs them:
 *
 *   AppServiceWebJobRun (installJob: the built-in backup) → AppServiceDownload content/images/ →
 *   AppServiceDownload backup.db → GhostMigrate → SitePackage
 *
 * then the release's last check, AppServiceDatabaseGuard: it catches the posts the busy blog wrote
 * after the backup, passes once the blog is quiet and backed up again, and catches one more post
 * written on purpose. A short report says what each step did, how long the blog waited during the
 * backup, and what artifact came out. Any unexpected result names the step and exits non-zero.
 *
 *   node out/demo/run.js [--keep] [--verbose]
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { genericEndpoint, runTask, type TaskRun } from '../testkit/harness/agent';
import { startKuduServer, type KuduServer } from '../testkit/kudu-server';
import type { WindowStats } from './blog-app';
import { createWorld, type DemoWorld } from './site';

export interface StepReport {
  name: string;
  task: string;
  result: TaskRun['result'];
  seconds: number;
  detail: string;
  /** The step was expected to fail (the guard catching a write). */
  expectFailure?: boolean;
}

export interface DemoReport {
  ok: boolean;
  failedStep?: string;
  steps: StepReport[];
  backupStall?: WindowStats;
  artifact?: { path: string; bytes: number; sha256: string };
  migrationsApplied?: number;
  /** The demo's folder, when kept (`keep`). */
  folder?: string;
}

export interface DemoOptions {
  keep?: boolean;
  verbose?: boolean;
  /** Where to say things; default stdout. */
  print?: (line: string) => void;
  /** Each task run as it ends (the screenshots script draws the run page from these). */
  onStep?: (step: StepReport, run: TaskRun) => void;
}

const USER = '$ghost-blog';
const PASSWORD = crypto.randomBytes(12).toString('base64url');

export async function runDemo(options: DemoOptions = {}): Promise<DemoReport> {
  const print = options.print ?? ((line: string) => console.log(line));
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'appservice-sqlite-demo-'));
  const report: DemoReport = { ok: false, steps: [], folder: options.keep ? root : undefined };
  let world: DemoWorld | undefined;
  let kudu: KuduServer | undefined;
  let blog: BlogProcess | undefined;
  try {
    print('Setting up: an App Service home with a live Ghost 6.0 blog, and a build checkout of Ghost 6.2 ...');
    world = createWorld(root);
    kudu = await startKuduServer({ home: world.home, auth: { basic: { username: USER, password: PASSWORD } }, siteName: 'ghost-blog' });
    blog = await BlogProcess.start(world.liveDb);
    print(`Kudu-compatible server at ${kudu.url}; the blog publishes 10 posts/s and serves 40 reads/s.`);
    // Let the blog run a moment, so its normal latency is known before the backup.
    await sleep(1500);

    const endpoints = { 'scm-ghost-blog': genericEndpoint(kudu.url, USER, PASSWORD) };
    const connection = { connectionType: 'Generic', kuduService: 'scm-ghost-blog' };
    /**
     * Runs one task as the agent would. `expect: 'caught'` is for the guard's demonstration: the
     * task must fail because the live database changed, and that counts as the demo going right.
     */
    const step = async (
      name: string,
      task: string,
      inputs: Record<string, string | number | boolean>,
      describe: (run: TaskRun) => string,
      expect: 'success' | 'caught' = 'success',
    ): Promise<TaskRun> => {
      print(`\n▶ ${name} (${task})`);
      const run = await runTask({
        task,
        inputs,
        endpoints,
        workDir: world!.build,
        variables: { 'Build.BuildId': '20261123', 'System.DefaultWorkingDirectory': world!.build },
        timeoutMs: 10 * 60_000,
        onLine: options.verbose ? (line) => !line.startsWith('##vso[task.debug]') && print(`  ${line}`) : undefined,
      });
      const caught = expect === 'caught' && run.result === 'Failed' && run.variables.databaseChanged?.value === 'true';
      const entry: StepReport = {
        name,
        task,
        result: run.result,
        seconds: run.durationMs / 1000,
        detail: run.result === 'Succeeded' ? describe(run) : (run.resultMessage ?? '(no message)').split('\n')[0],
        expectFailure: expect === 'caught',
      };
      report.steps.push(entry);
      options.onStep?.(entry, run);
      const good = expect === 'caught' ? caught : run.result === 'Succeeded';
      print(`  ${run.result === 'Succeeded' ? '✔' : caught ? '✋ caught:' : '✘'} ${entry.detail} (${entry.seconds.toFixed(1)} s)`);
      if (!good) {
        if (!options.verbose) print(run.output.split('\n').filter((l) => !l.startsWith('##vso[task.debug]')).map((l) => `    ${l}`).join('\n'));
        throw new StepFailed(name);
      }
      return run;
    };

    const backupStarted = Date.now();
    const backup = await step('Back up the live database with the built-in WebJob', 'AppServiceWebJobRun', { ...connection, jobName: 'sqlite-backup', installJob: true, pollIntervalSeconds: 0.5 }, (run) => {
      const result = backupResult(run);
      return `run ${run.variables.runId?.value} ${run.variables.runStatus?.value}${jobStart(run)}: ${result ? `${result.bytes} bytes, longest lock ${result.maxLockMs} ms` : 'done'}`;
    });
    report.backupStall = await blog.window(backupStarted, backupStarted + backup.durationMs);

    await step('Download the images', 'AppServiceDownload', { ...connection, remotePath: 'site/wwwroot/content/images/', destination: 'content/images' }, (run) => `${run.variables.downloadedFiles.value} files, ${mib(Number(run.variables.downloadedBytes.value))}, complete`);
    const download = await step('Download the backup as the build\'s database', 'AppServiceDownload', { ...connection, remotePath: 'site/wwwroot/content/data/backup.db', destination: 'content/data/ghost.db' }, (run) => `${mib(Number(run.variables.downloadedBytes.value))}, integrity_check ok, fingerprint ${run.variables.databaseFingerprint?.value}`);
    const migrate = await step('Migrate the database for Ghost 6.2', 'GhostMigrate', { ghostRoot: world.build }, (run) => `${run.variables.migrationsApplied.value} migrations applied, now at ${run.variables.databaseVersion.value}`);
    report.migrationsApplied = Number(migrate.variables.migrationsApplied.value);
    const archive = path.join(root, 'artifacts', '20261123.zip');
    const pack = await step('Package the site for a slot deployment', 'SitePackage', { rootFolder: world.build, archiveFile: archive }, (run) => `${run.variables.archiveEntries.value} entries, ${mib(Number(run.variables.archiveBytes.value))}`);
    report.artifact = { path: pack.variables.archiveFile.value, bytes: Number(pack.variables.archiveBytes.value), sha256: pack.variables.archiveSha256.value };

    // The release: right before the swap, production's database must be as the backup saw it.
    print('\n— Release: the slot swap would replace production\'s database with the package\'s —');
    const guard = (name: string, fingerprint: string, expect: 'success' | 'caught') =>
      step(name, 'AppServiceDatabaseGuard', { ...connection, expectedFingerprint: fingerprint }, (run) => `unchanged since the backup (${run.variables.liveFingerprint.value})`, expect);
    await guard('Check production before the swap (the blog kept publishing)', download.variables.databaseFingerprint.value, 'caught');
    await blog.pauseWrites();
    print('\n  The blog is quiet now (writes paused, reads go on): back up and download again, then check.');
    await step('Back up again, the blog quiet', 'AppServiceWebJobRun', { ...connection, jobName: 'sqlite-backup', pollIntervalSeconds: 0.5 }, (run) => `run ${run.variables.runId?.value} ${run.variables.runStatus?.value}`);
    const again = await step('Download the new backup', 'AppServiceDownload', { ...connection, remotePath: 'site/wwwroot/content/data/backup.db', destination: 'content/data/ghost.db' }, (run) => `fingerprint ${run.variables.databaseFingerprint?.value}`);
    await guard('Check production before the swap', again.variables.databaseFingerprint.value, 'success');
    const post = await blog.writeOne();
    print(`\n  One more post on production, on purpose (${post}).`);
    await guard('Check production again after that post', again.variables.databaseFingerprint.value, 'caught');
    report.ok = true;
  } catch (err) {
    report.ok = false;
    if (err instanceof StepFailed) report.failedStep = err.step;
    else {
      report.failedStep = report.failedStep ?? 'setup';
      print(`✘ ${err instanceof Error ? err.stack : String(err)}`);
    }
  } finally {
    await blog?.stop();
    await kudu?.close();
    if (!options.keep && report.ok) world?.cleanup();
    else if (!options.keep) fs.rmSync(root, { recursive: true, force: true });
  }
  print('');
  print(renderReport(report, options.keep ? root : undefined));
  return report;
}

class StepFailed extends Error {
  constructor(readonly step: string) {
    super(`step failed: ${step}`);
  }
}

/** The live blog, a process of its own (demo/blog-app.ts). */
class BlogProcess {
  private constructor(private readonly child: ChildProcess) {}

  static async start(db: string): Promise<BlogProcess> {
    const child = fork(path.join(__dirname, 'blog-app.js'), [db], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const blog = new BlogProcess(child);
    await blog.ask(undefined, (m) => 'ready' in m);
    return blog;
  }

  async pauseWrites(): Promise<void> {
    await this.ask({ kind: 'pause' }, (m) => 'paused' in m);
  }

  async writeOne(): Promise<string> {
    return String((await this.ask({ kind: 'write' }, (m) => 'id' in m)).id);
  }

  window(from: number, to: number): Promise<WindowStats> {
    return this.ask({ kind: 'window', from, to }, (m) => 'ops' in m) as unknown as Promise<WindowStats>;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.send({ kind: 'stop' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  private ask(message: object | undefined, match: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the demo blog did not answer within 10 s')), 10_000);
      const onMessage = (m: Record<string, unknown>) => {
        if (!match(m)) return;
        clearTimeout(timer);
        this.child.off('message', onMessage);
        resolve(m);
      };
      this.child.on('message', onMessage);
      this.child.once('exit', (code) => reject(new Error(`the demo blog exited (${code})`)));
      if (message) this.child.send(message);
    });
  }
}

/** How Kudu started the job: its entry file, and the Node and SQLite driver the launcher chose. */
function jobStart(run: TaskRun): string {
  const entry = run.logLines.map((l) => /Run script '([^']+)' with script host/.exec(l)?.[1]).find(Boolean);
  const node = run.logLines.map((l) => /Running the backup with Node (v[\d.]+) \((\w+), ([\w:-]+)\)/.exec(l)).find(Boolean);
  return entry && node ? ` (${entry} → Node ${node[1]} ${node[2]}, ${node[3]})` : '';
}

function backupResult(run: TaskRun): { bytes: number; maxLockMs: number } | undefined {
  const line = run.logLines.find((l) => l.includes('BACKUP_RESULT '));
  if (!line) return undefined;
  try {
    return JSON.parse(line.slice(line.indexOf('BACKUP_RESULT ') + 'BACKUP_RESULT '.length)) as { bytes: number; maxLockMs: number };
  } catch {
    return undefined;
  }
}

export function renderReport(report: DemoReport, keptAt?: string): string {
  const lines = ['Report', '======', ''];
  const width = Math.max(...report.steps.map((s) => s.name.length), 10);
  for (const s of report.steps) {
    const mark = s.result === 'Succeeded' ? 'ok  ' : s.expectFailure ? 'caught' : 'FAIL';
    // The first sentence says it; the full message was printed with the step.
    const detail = s.detail.split('\n')[0].replace(/\. [A-Z].*$/, '.');
    lines.push(`${mark.padEnd(6)} ${s.name.padEnd(width)}  ${s.seconds.toFixed(1).padStart(5)} s  ${detail}`);
  }
  if (report.backupStall) {
    const st = report.backupStall;
    lines.push(
      '',
      `The blog during the backup: ${st.ops} operations (${st.writes} posts published), longest wait ${st.maxMs.toFixed(1)} ms, ` +
        `p99 ${st.p99Ms.toFixed(1)} ms (usually ${st.baselineP50Ms.toFixed(1)} ms), ${st.errors.length ? `${st.errors.length} errors: ${st.errors[0]}` : 'no errors'}.`,
    );
  }
  if (report.migrationsApplied !== undefined) lines.push(`Migrations applied in the build: ${report.migrationsApplied}.`);
  if (report.artifact) lines.push(`Artifact: ${report.artifact.path} (${mib(report.artifact.bytes)}, sha256 ${report.artifact.sha256})${keptAt ? '' : ' — removed with the demo folder; use --keep to keep it'}.`);
  if (keptAt) lines.push(`Demo folder kept: ${keptAt}`);
  lines.push('', report.ok ? 'The pipeline succeeded.' : `The demo failed at: ${report.failedStep}.`);
  return lines.join('\n');
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

if (require.main === module) {
  runDemo({ keep: process.argv.includes('--keep'), verbose: process.argv.includes('--verbose') }).then(
    (report) => process.exit(report.ok ? 0 : 1),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
