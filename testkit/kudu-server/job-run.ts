// One triggered run: its status file and output_log.txt (TriggeredJobRunLogger), and its process
// watched the way Kudu's IdleManager watches it.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { constants as osConstants } from 'node:os';
import { jsonDateTimeUtc, logTimestamp, nowTicks } from './dotnet';
import { killTree, treeCpuTicks } from './process-tree';

/** The run's `status` file: compact JSON, default values omitted (DefaultValueHandling.Ignore). */
export interface RunStatusFile {
  Trigger?: string;
  Status?: string;
  StartTime?: string;
  EndTime?: string;
}

export function readRunStatus(runDir: string): RunStatusFile | undefined {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(path.join(runDir, 'status'), 'utf8').trim());
    return parsed && typeof parsed === 'object' ? (parsed as RunStatusFile) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Writes happen synchronously and in call order, so output_log.txt always reads in the order
 * things happened and a concurrent VFS GET sees whole lines only. Like Kudu's SafeLogToFile,
 * a failed write (someone deleted the run folder) is dropped, except when creating the run.
 */
export class RunLog {
  readonly outputFile: string;
  private readonly statusFile: string;

  constructor(readonly runDir: string, private readonly instanceId: string) {
    this.outputFile = path.join(runDir, 'output_log.txt');
    this.statusFile = path.join(runDir, 'status');
  }

  /** LogNewRun: the status file says Initializing before POST /run answers. */
  create(trigger: string): void {
    fs.mkdirSync(this.runDir, { recursive: true });
    this.writeStatus({ Trigger: trigger, Status: 'Initializing', StartTime: jsonDateTimeUtc(nowTicks()) }, false);
    this.info('Status changed to Initializing');
  }

  reportStatus(status: string): void {
    this.writeStatus({ ...readRunStatus(this.runDir), Status: status });
    this.info('Status changed to ' + status);
  }

  /** TriggeredJobRunLogger.LogError: status Failed (logged) first, then the error as `SYS ERR `. */
  logError(message: string): void {
    this.reportStatus('Failed');
    this.append('ERR', message, true);
  }

  /** ReportEndRun: end time only, nothing logged. */
  reportEndRun(): void {
    this.writeStatus({ ...readRunStatus(this.runDir), EndTime: jsonDateTimeUtc(nowTicks()) });
  }

  info(message: string): void {
    this.append('INFO', message, true);
  }

  warn(message: string): void {
    this.append('WARN', message, true);
  }

  stdout(line: string): void {
    this.append('INFO', line, false);
  }

  stderr(line: string): void {
    this.append('ERR', line, false);
  }

  private writeStatus(status: RunStatusFile, safe = true): void {
    const ordered: RunStatusFile = {};
    for (const key of ['Trigger', 'Status', 'StartTime', 'EndTime'] as const) {
      if (status[key] !== undefined && status[key] !== null) ordered[key] = status[key];
    }
    try {
      fs.writeFileSync(this.statusFile, JSON.stringify(ordered));
    } catch (e) {
      if (!safe) throw e;
    }
  }

  /** JobLogger.GetFormattedMessage: `[{UtcNow} > {instance}: {SYS }{LEVEL,-4}] {message}\r\n`. */
  private append(level: 'INFO' | 'WARN' | 'ERR', message: string, isSystem: boolean): void {
    const line = `[${logTimestamp(nowTicks())} > ${this.instanceId}: ${isSystem ? 'SYS ' : ''}${level.padEnd(4)}] ${message}\r\n`;
    try {
      fs.appendFileSync(this.outputFile, line);
    } catch {
      // dropped, as SafeLogToFile does
    }
  }
}

/**
 * Splits a byte stream into lines the way .NET's BeginOutputReadLine does: on \n, \r or \r\n,
 * a line is delivered only once complete, and a trailing partial line only at end of stream.
 */
export class LineSplitter {
  private decoder = new StringDecoder('utf8');
  private pending = '';

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer): void {
    this.pending += this.decoder.write(chunk);
    this.drain(false);
  }

  end(): void {
    this.pending += this.decoder.end();
    this.drain(true);
  }

  private drain(atEnd: boolean): void {
    for (;;) {
      const i = this.pending.search(/[\r\n]/);
      if (i < 0) break;
      // A \r at the very end may be the first half of \r\n still in flight.
      if (this.pending[i] === '\r' && i === this.pending.length - 1 && !atEnd) break;
      const line = this.pending.slice(0, i);
      const skip = this.pending[i] === '\r' && this.pending[i + 1] === '\n' ? 2 : 1;
      this.pending = this.pending.slice(i + skip);
      this.onLine(line);
    }
    if (atEnd && this.pending !== '') {
      const rest = this.pending;
      this.pending = '';
      this.onLine(rest);
    }
  }
}

/**
 * Split `?arguments=` the way a POSIX shell would (quotes group, backslash escapes), since
 * Kudu hands the string to the interpreter's command line.
 */
export function splitArguments(text: string): string[] {
  const out: string[] = [];
  let current = '';
  let inToken = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote === "'") {
      if (c === "'") quote = null;
      else current += c;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\' || text[i + 1] === '$' || text[i + 1] === '`')) current += text[++i];
      else current += c;
      continue;
    }
    if (/\s/.test(c)) {
      if (inToken) out.push(current);
      current = '';
      inToken = false;
      continue;
    }
    inToken = true;
    if (c === '"' || c === "'") quote = c;
    else if (c === '\\' && i + 1 < text.length) current += text[++i];
    else current += c;
  }
  if (inToken) out.push(current);
  return out;
}

export type ExecResult =
  | { kind: 'exit'; code: number }
  | { kind: 'idle'; message: string }
  | { kind: 'spawn-error'; error: Error };

export interface ExecOptions {
  file: string;
  argv: string[];
  verbatim?: boolean;
  cwd: string;
  env: NodeJS.ProcessEnv;
  idleTimeoutMs: number;
  /** `process.Name + " " + process.Arguments` as Kudu would see them, for the idle message. */
  processName: string;
  processArguments: string;
  onStdout(line: string): void;
  onStderr(line: string): void;
}

/** IdleManager's polling period: WaitForExit(TimeSpan.FromSeconds(1)). */
const IDLE_POLL_MS = 1000;

/** Kudu.Core Resources.Error_ProcessAborted, thrown as a CommandLineException and logged via ToString(). */
export function idleAbortText(processName: string, processArguments: string, idleMs: number): string {
  let args = processArguments.trim();
  if (args.length > 15) args = args.slice(0, 15) + ' ...';
  const message =
    `Command '${processName} ${args}' was aborted due to no output nor CPU activity for ${Math.round(idleMs / 1000)} seconds. ` +
    'You can increase the SCM_COMMAND_IDLE_TIMEOUT app setting (or WEBJOBS_IDLE_TIMEOUT if this is a WebJob) if needed.';
  // Exception.ToString(): type, message (CommandLineException appends the command), first stack frame.
  return `Kudu.Core.Infrastructure.CommandLineException: ${message}\r\n${processName} ${processArguments}\r\n` +
    '   at Kudu.Core.Infrastructure.IdleManager.WaitForExit(IProcess process)';
}

/** A job process in its own process group, its output split into lines, idle-killed like Kudu. */
export class JobProcess {
  readonly pid: number | undefined;
  readonly done: Promise<ExecResult>;
  private idleMessage: string | undefined;

  constructor(opts: ExecOptions) {
    const child = spawn(opts.file, opts.argv, {
      cwd: opts.cwd,
      env: opts.env,
      // Own process group (POSIX): the whole tree can be signalled at once.
      detached: process.platform !== 'win32',
      stdio: ['ignore', 'pipe', 'pipe'],
      windowsHide: true,
      windowsVerbatimArguments: opts.verbatim,
    });
    this.pid = child.pid;

    let lastActivity = Date.now();
    const touch = (): void => {
      lastActivity = Date.now();
    };
    const out = new LineSplitter(line => {
      touch();
      opts.onStdout(line);
    });
    const err = new LineSplitter(line => {
      touch();
      opts.onStderr(line);
    });
    child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr!.on('data', (chunk: Buffer) => err.push(chunk));

    // IdleManager.WaitForExit, step for step. Note the first CPU sample is compared with -1, so
    // it always counts as activity: an idle job dies after about twice the timeout.
    let seenActivity = lastActivity;
    let lastCpuActivity = lastActivity;
    let previousCpu: number | undefined = -1;
    const timer = this.pid === undefined ? undefined : setInterval(() => {
      const now = Date.now();
      if (seenActivity !== lastActivity) {
        previousCpu = -1;
        seenActivity = lastActivity;
        return;
      }
      if (now - seenActivity < opts.idleTimeoutMs) return;
      const cpuIdle = now - lastCpuActivity;
      if (cpuIdle < opts.idleTimeoutMs) return;
      const cpu = treeCpuTicks(this.pid!);
      if (cpu !== previousCpu) {
        lastCpuActivity = now;
        previousCpu = cpu;
        return;
      }
      this.idleMessage = idleAbortText(opts.processName, opts.processArguments, cpuIdle);
      clearInterval(timer);
      killTree(this.pid!);
    }, IDLE_POLL_MS);

    this.done = new Promise<ExecResult>(resolve => {
      let spawned = false;
      child.on('spawn', () => {
        spawned = true;
      });
      child.on('error', error => {
        if (timer) clearInterval(timer);
        if (!spawned) resolve({ kind: 'spawn-error', error });
      });
      // 'close' waits for the pipes too (Kudu's WaitUntilEOF): a grandchild holding stdout keeps the run open.
      child.on('close', (code, signal) => {
        if (timer) clearInterval(timer);
        out.end();
        err.end();
        if (!spawned) return;
        if (this.idleMessage) resolve({ kind: 'idle', message: this.idleMessage });
        else resolve({ kind: 'exit', code: code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0) });
      });
    });
  }

  kill(): void {
    if (this.pid !== undefined) killTree(this.pid);
  }
}
