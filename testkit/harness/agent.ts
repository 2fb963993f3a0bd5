/**
 * Runs a task the way the Azure Pipelines agent does: a child process on Node 24 with
 * `INPUT_*`, `ENDPOINT_*`, `SYSTEM_*`, `BUILD_*` and `AGENT_*` in its environment, input defaults
 * taken from task.json (with `$(Variable)` macros expanded), and the `##vso[...]` commands it
 * prints parsed into results, variables, artifacts and issues.
 *
 * task-lib's MockTestRunner is avoided on purpose: it downloads a Node binary unless pinned, and
 * it cannot run a task from an unpacked .vsix folder.
 *
 * @example
 *   const run = await runTask({
 *     task: 'AppServiceWebJobRun',
 *     inputs: { connectionType: 'Generic', kuduService: 'kudu', jobName: 'backup' },
 *     endpoints: { kudu: genericEndpoint(server.url, 'user', 'pass') },
 *   });
 *   assert.equal(run.result, 'Succeeded', run.output);
 *   assert.equal(run.variables.runStatus.value, 'Success');
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { commandFromString } from 'azure-pipelines-task-lib/taskcommand';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
/** Compiled tasks: `npm run build` copies task.json beside each compiled entry. */
export const BUILT_TASKS = path.join(REPO_ROOT, 'out', 'tasks');

export interface Endpoint {
  url: string;
  scheme: string;
  parameters: Record<string, string>;
  data?: Record<string, string>;
}

/** A Generic service connection as the agent hands it to a task. */
export function genericEndpoint(url: string, username: string, password: string): Endpoint {
  return { url, scheme: 'UsernamePassword', parameters: { username, password } };
}

export interface RunTaskOptions {
  /** Task folder name, e.g. `AppServiceWebJobRun`. */
  task: string;
  /** Folder holding task.json and the entry; default `out/tasks/<task>`. */
  taskRoot?: string;
  inputs?: Record<string, string | number | boolean | undefined>;
  /** Service connections by id; the id is what a connectedService input holds. */
  endpoints?: Record<string, Endpoint>;
  /** Pipeline variables, by their pipeline names (`System.Debug`, `Build.BuildId`). */
  variables?: Record<string, string>;
  /** Extra raw environment variables. */
  env?: Record<string, string | undefined>;
  /** System.DefaultWorkingDirectory and the process's cwd; a fresh temp folder by default. */
  workDir?: string;
  /** The task is killed after this long; default 120 s. */
  timeoutMs?: number;
  nodePath?: string;
  /** The task.json handler to run, as an agent that has only that Node would; default Node24. */
  handler?: 'Node24' | 'Node20_1';
  /** Record the task process's peak RSS in `maxRssBytes`. */
  measureMemory?: boolean;
  /** Called with each stdout line as it arrives (for live logs in tests or the demo). */
  onLine?: (line: string) => void;
}

export interface VsoCommand {
  command: string;
  properties: Record<string, string>;
  message: string;
}

export interface OutputVariable {
  value: string;
  isOutput: boolean;
  isSecret: boolean;
}

export interface TaskRun {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** stdout and stderr, for assertion messages. */
  output: string;
  /** stdout lines that are not ##vso commands: what a user reads in the pipeline log. */
  logLines: string[];
  commands: VsoCommand[];
  /** The most pessimistic `task.complete` result, as the agent applies it. */
  result: 'Succeeded' | 'SucceededWithIssues' | 'Failed' | 'Cancelled' | 'Skipped' | undefined;
  resultMessage: string | undefined;
  variables: Record<string, OutputVariable>;
  errors: string[];
  warnings: string[];
  artifacts: Array<{ artifactName: string; containerFolder: string; path: string }>;
  /** Files uploaded as summaries (`task.uploadsummary`, or `task.addattachment` of the summary type). */
  summaries: string[];
  /**
   * The summary sections as the run page shows them: the title (the attachment's name; for
   * `task.uploadsummary`, the file name without its extension) and the markdown, read when the
   * task ended, as the agent reads it.
   */
  summarySections: Array<{ title: string; markdown: string }>;
  secrets: string[];
  workDir: string;
  durationMs: number;
  /** Peak resident set size of the task process, with `measureMemory`. */
  maxRssBytes?: number;
}

const RESULT_RANK: Record<string, number> = { Succeeded: 0, SucceededWithIssues: 1, Skipped: 2, Cancelled: 3, Failed: 4 };

/** `System.DefaultWorkingDirectory` → `SYSTEM_DEFAULTWORKINGDIRECTORY`, as the agent maps variables. */
export function variableToEnvName(name: string): string {
  return name.replace(/[.\s]/g, '_').toUpperCase();
}

/** Expands `$(Name)` macros from variables, case-insensitively; unknown macros stay as they are. */
export function expandMacros(value: string, variables: Record<string, string>): string {
  const lower = new Map(Object.entries(variables).map(([k, v]) => [k.toLowerCase(), v]));
  return value.replace(/\$\(([^)]+)\)/g, (whole, name: string) => lower.get(name.toLowerCase()) ?? whole);
}

interface TaskJson {
  id: string;
  name: string;
  inputs?: Array<{ name: string; defaultValue?: string | boolean | number; type: string }>;
  execution: Record<string, { target: string }>;
}

export function readTaskJson(taskRoot: string): TaskJson {
  return JSON.parse(fs.readFileSync(path.join(taskRoot, 'task.json'), 'utf8')) as TaskJson;
}

/** The entry the agent would run: the handler's target. */
function entryOf(taskRoot: string, taskJson: TaskJson, name: 'Node24' | 'Node20_1' = 'Node24'): string {
  const handler = taskJson.execution[name];
  if (!handler) throw new Error(`${taskJson.name}: task.json has no ${name} handler`);
  return path.join(taskRoot, handler.target.replace('$(currentDirectory)', '.'));
}

/** Working folders the harness made itself; removed after each test (tests/hooks.ts). */
const madeWorkDirs: string[] = [];

export function removeMadeWorkDirs(): void {
  for (const dir of madeWorkDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

export async function runTask(options: RunTaskOptions): Promise<TaskRun> {
  const taskRoot = options.taskRoot ?? path.join(BUILT_TASKS, options.task);
  const taskJson = readTaskJson(taskRoot);
  let workDir = options.workDir;
  if (!workDir) {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), `agent-${options.task}-`));
    madeWorkDirs.push(workDir);
  }
  const agentTemp = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-temp-'));
  const staging = path.join(agentTemp, 'a');
  fs.mkdirSync(staging, { recursive: true });

  const variables: Record<string, string> = {
    'System.DefaultWorkingDirectory': workDir,
    'Build.SourcesDirectory': workDir,
    'Build.ArtifactStagingDirectory': staging,
    'Build.StagingDirectory': staging,
    'Build.BuildId': '1234',
    'Build.BuildNumber': '20261123.1',
    'Build.DefinitionName': 'ghost-blog',
    'Agent.TempDirectory': agentTemp,
    'Agent.WorkFolder': agentTemp,
    'Agent.Version': '4.265.1',
    'Agent.OS': os.platform() === 'win32' ? 'Windows_NT' : os.platform() === 'darwin' ? 'Darwin' : 'Linux',
    'Agent.Name': 'test-agent',
    'Agent.JobName': 'Job',
    'System.HostType': 'build',
    'System.TeamFoundationCollectionUri': 'https://dev.azure.com/example/',
    'System.TeamProject': 'blog',
    'System.Culture': 'en-US',
    ...options.variables,
  };

  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    // Nothing from the test process may leak in as a task input or connection.
    if (v !== undefined && !/^(INPUT_|ENDPOINT_|SECRET_|VSTS_TASKVARIABLE_)/.test(k)) env[k] = v;
  }
  for (const [k, v] of Object.entries(variables)) env[variableToEnvName(k)] = v;
  env.TF_BUILD = 'True';

  const given = options.inputs ?? {};
  for (const input of taskJson.inputs ?? []) {
    const raw = Object.prototype.hasOwnProperty.call(given, input.name) ? given[input.name] : input.defaultValue;
    if (raw === undefined || raw === '') continue;
    env[`INPUT_${variableToEnvName(input.name)}`] = expandMacros(String(raw), variables);
  }
  for (const name of Object.keys(given)) {
    if (!(taskJson.inputs ?? []).some((i) => i.name === name)) {
      throw new Error(`${taskJson.name} has no input named '${name}' (check task.json)`);
    }
  }
  for (const [id, endpoint] of Object.entries(options.endpoints ?? {})) {
    env[`ENDPOINT_URL_${id}`] = endpoint.url;
    env[`ENDPOINT_AUTH_${id}`] = JSON.stringify({ parameters: endpoint.parameters, scheme: endpoint.scheme });
    env[`ENDPOINT_AUTH_SCHEME_${id}`] = endpoint.scheme;
    for (const [k, v] of Object.entries(endpoint.parameters)) env[`ENDPOINT_AUTH_PARAMETER_${id}_${k.toUpperCase()}`] = v;
    for (const [k, v] of Object.entries(endpoint.data ?? {})) env[`ENDPOINT_DATA_${id}_${k.toUpperCase()}`] = v;
  }
  for (const [k, v] of Object.entries(options.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }

  const rssFile = options.measureMemory ? path.join(agentTemp, 'max-rss') : undefined;
  const nodeArgs = rssFile ? ['--require', path.join(__dirname, 'report-rss.js')] : [];
  if (rssFile) env.HARNESS_RSS_FILE = rssFile;

  const started = Date.now();
  const child = spawn(options.nodePath ?? process.execPath, [...nodeArgs, entryOf(taskRoot, taskJson, options.handler)], {
    cwd: workDir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group, so a timeout kills whatever the task started as well.
    detached: process.platform !== 'win32',
  });
  let stdout = '';
  let stderr = '';
  let pending = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    stdout += chunk;
    if (!options.onLine) return;
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) options.onLine(line.replace(/\r$/, ''));
  });
  child.stderr.on('data', (chunk: string) => (stderr += chunk));

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid);
  }, options.timeoutMs ?? 120_000);
  const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on('close', (code, sig) => resolve([code, sig])),
  );
  clearTimeout(timer);
  // A task must not leave children behind; the group is gone with it in the normal case.
  killGroup(child.pid);
  if (options.onLine && pending) options.onLine(pending);
  const maxRssBytes = rssFile && fs.existsSync(rssFile) ? Number(fs.readFileSync(rssFile, 'utf8')) : undefined;
  // Parsed before the temp folder goes: the agent reads summary files after the task ends.
  const run = parseRun({ exitCode, signal, timedOut, stdout, stderr, workDir, durationMs: Date.now() - started });
  fs.rmSync(agentTemp, { recursive: true, force: true });
  return { ...run, maxRssBytes };
}

function killGroup(pid: number | undefined): void {
  if (!pid) return;
  try {
    if (process.platform === 'win32') process.kill(pid);
    else process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

export function parseRun(raw: {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  workDir: string;
  durationMs: number;
}): TaskRun {
  const run: TaskRun = {
    ...raw,
    output: raw.stdout + (raw.stderr ? `\n--- stderr ---\n${raw.stderr}` : ''),
    logLines: [],
    commands: [],
    result: undefined,
    resultMessage: undefined,
    variables: {},
    errors: [],
    warnings: [],
    artifacts: [],
    summaries: [],
    summarySections: [],
    secrets: [],
  };
  for (const rawLine of raw.stdout.split('\n')) {
    const line = rawLine.replace(/\r$/, '');
    const at = line.indexOf('##vso[');
    if (at < 0) {
      run.logLines.push(line);
      continue;
    }
    const parsed = commandFromString(line.slice(at));
    const cmd: VsoCommand = { command: parsed.command, properties: parsed.properties ?? {}, message: parsed.message ?? '' };
    run.commands.push(cmd);
    const p = cmd.properties;
    switch (cmd.command) {
      case 'task.complete': {
        const result = p.result as TaskRun['result'];
        if (result && (run.result === undefined || RESULT_RANK[result] >= RESULT_RANK[run.result])) {
          run.result = result;
          run.resultMessage = cmd.message;
        }
        break;
      }
      case 'task.setvariable':
        run.variables[p.variable] = {
          value: cmd.message,
          isOutput: p.isOutput === 'true' || p.isoutput === 'true',
          isSecret: p.issecret === 'true',
        };
        break;
      case 'task.issue':
        (p.type === 'error' ? run.errors : run.warnings).push(cmd.message);
        break;
      case 'task.logissue':
        (p.type === 'error' ? run.errors : run.warnings).push(cmd.message);
        break;
      case 'artifact.upload':
        run.artifacts.push({ artifactName: p.artifactname, containerFolder: p.containerfolder, path: cmd.message });
        break;
      case 'task.uploadsummary':
        addSummary(run, path.basename(cmd.message).replace(/\.[^.]*$/, ''), cmd.message);
        break;
      case 'task.addattachment':
        if (p.type === SUMMARY_ATTACHMENT) addSummary(run, p.name ?? '', cmd.message);
        else run.logLines.push(line);
        break;
      case 'task.setsecret':
        run.secrets.push(cmd.message);
        break;
      default:
        if (cmd.command !== 'task.debug') run.logLines.push(line);
    }
  }
  return run;
}

/** The attachment type the run page shows as a summary section (the agent's CoreAttachmentType.Summary). */
export const SUMMARY_ATTACHMENT = 'Distributedtask.Core.Summary';

/**
 * What the agent does with a summary: it refuses a missing file, or a name with characters no
 * file name may have (checked against Windows' list, the strictest agent; TaskCommandExtension.cs),
 * and otherwise uploads the file under that name.
 */
function addSummary(run: TaskRun, title: string, file: string): void {
  if (!title || /[\x00-\x1f"<>|:*?\\/]/.test(title)) {
    run.warnings.push(`Unable to process command: a summary named ${JSON.stringify(title)} (empty, or a character no file name may have).`);
    return;
  }
  if (!file || !fs.existsSync(file)) {
    run.warnings.push(`Unable to process command: the summary '${title}' has no file at ${file} when the task ends.`);
    return;
  }
  run.summaries.push(file);
  run.summarySections.push({ title, markdown: fs.readFileSync(file, 'utf8') });
}

/** Lines (other than the agent's own `task.setsecret` commands) that contain any of the values. */
export function linesLeaking(run: TaskRun, values: string[]): string[] {
  const all = (run.stdout + '\n' + run.stderr).split('\n');
  return all.filter((line) => !line.includes('##vso[task.setsecret]') && values.some((v) => v && line.includes(v)));
}
