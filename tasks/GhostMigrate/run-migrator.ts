/**
 * Runs the migrator (knex-migrator's bin, or the user's command through the shell) as a process
 * tree that the task owns: its output streamed into the pipeline log as it comes (pipeline
 * commands in it neutralised), a deadline after which the whole tree is killed, and nothing left
 * running afterwards, since a straggler could still be writing to the database being checked or
 * restored. On Linux and macOS the tree is a process group; on Windows tree-kill walks it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import treeKill from 'tree-kill';
import type { Log } from '../../lib/log';
import { stripAnsi } from './ghost-root';

export interface MigratorSpec {
  cwd: string;
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  /** A program and its arguments (knex-migrator), or `shell`: a command line (the user's). */
  program?: { file: string; args: string[] };
  shell?: string;
}

export interface OutputLine {
  stream: 'stdout' | 'stderr';
  /** Without ANSI colours. */
  text: string;
}

export interface MigratorRun {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** The agent asked the task to stop (job cancelled). */
  cancelled: boolean;
  /** Processes of the tree were still alive after the migrator exited (they were killed). */
  leftovers: boolean;
  durationMs: number;
  /** The last MAX_LINES lines of output. */
  lines: OutputLine[];
}

const MAX_LINES = 5000;
/** How long a killed tree gets to go away, and exited output to drain, before the task moves on. */
const KILL_WAIT_MS = 15_000;
const DRAIN_WAIT_MS = 5_000;

const POSIX = process.platform !== 'win32';

function killTree(pid: number): void {
  if (!POSIX) {
    treeKill(pid, 'SIGKILL', () => undefined);
    return;
  }
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // The group is already gone.
  }
}

/** True while any process of the group is alive (POSIX only; Windows has no groups to ask). */
function groupAlive(pid: number): boolean {
  if (!POSIX) return false;
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits for `promise`, but no longer than `ms`; the timer does not outlive the wait. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

export async function runMigrator(spec: MigratorSpec, log: Log): Promise<MigratorRun> {
  const started = Date.now();
  const options = { cwd: spec.cwd, env: spec.env, stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'], detached: POSIX, windowsHide: true };
  const child = spec.shell !== undefined ? spawn(spec.shell, { ...options, shell: true }) : spawn(spec.program!.file, spec.program!.args, options);
  const lines: OutputLine[] = [];
  const drained = Promise.all([pumpLines(child.stdout!, 'stdout', lines, log), pumpLines(child.stderr!, 'stderr', lines, log)]);
  const guard = guardRun(child, spec, log);
  try {
    const exit = await guard.exited;
    if ('error' in exit) {
      const code = (exit.error as NodeJS.ErrnoException).code;
      const what = spec.shell !== undefined ? `the shell for command '${spec.shell}'` : `'${spec.program!.file}'`;
      throw new Error(`Could not start ${what} (${code ?? exit.error.message}).`, { cause: exit.error });
    }
    let leftovers = false;
    if (child.pid && groupAlive(child.pid)) {
      leftovers = !guard.timedOut && !guard.cancelled;
      killTree(child.pid);
    }
    // Output still in the pipes arrives after 'exit'; a surviving grandchild could hold them open forever.
    await within(drained, DRAIN_WAIT_MS);
    child.stdout?.destroy();
    child.stderr?.destroy();
    return { exitCode: exit.code, signal: exit.signal, timedOut: guard.timedOut, cancelled: guard.cancelled, leftovers, durationMs: Date.now() - started, lines };
  } finally {
    guard.dispose();
  }
}

/** Streams one pipe into the log line by line, colours stripped, keeping the last MAX_LINES. */
function pumpLines(stream: NodeJS.ReadableStream, name: OutputLine['stream'], lines: OutputLine[], log: Log): Promise<void> {
  let partial = '';
  const emit = (line: string) => {
    // Ghost colours its log levels; the run page would show the escapes as '?'.
    const text = stripAnsi(line);
    log.external(text);
    lines.push({ stream: name, text });
    if (lines.length > MAX_LINES) lines.shift();
  };
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (partial + chunk).split(/\r?\n/);
    partial = parts.pop() ?? '';
    parts.forEach(emit);
  });
  return new Promise<void>((resolve) =>
    stream.on('close', () => {
      if (partial) emit(partial);
      resolve();
    }),
  );
}

type Exit = { code: number | null; signal: NodeJS.Signals | null } | { error: Error };

/**
 * The deadline and the agent's cancel signals over a running tree: either kills the whole tree.
 * `exited` settles when the child exits, fails to start, or its tree would not die in time.
 */
function guardRun(child: ChildProcess, spec: MigratorSpec, log: Log) {
  const state = { timedOut: false, cancelled: false };
  let giveUp: (() => void) | undefined;
  const stop = () => {
    if (child.pid) killTree(child.pid);
    // A tree that does not die (Windows, a process stuck in the kernel) must not hang the task.
    setTimeout(() => giveUp?.(), KILL_WAIT_MS).unref();
  };
  const timer = setTimeout(() => {
    state.timedOut = true;
    log.warn(`The migrator did not finish within ${formatMinutes(spec.timeoutMs)}: stopping it and every process it started.`);
    stop();
  }, spec.timeoutMs);
  const onSignal = (signal: NodeJS.Signals) => {
    state.cancelled = true;
    log.warn(`The task received ${signal} (the job is being cancelled): stopping the migrator and every process it started.`);
    stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const exited = new Promise<Exit>((resolve) => {
    giveUp = () => resolve({ code: null, signal: null });
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => resolve({ error }));
  });
  return {
    exited,
    get timedOut() {
      return state.timedOut;
    },
    get cancelled() {
      return state.cancelled;
    },
    dispose() {
      clearTimeout(timer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

export function formatMinutes(ms: number): string {
  const minutes = ms / 60_000;
  return minutes >= 1 ? `${+minutes.toFixed(2)} minute(s)` : `${+(ms / 1000).toFixed(1)} s`;
}

/**
 * The lines that explain a failure: knex-migrator's "Rolling back" notes, then its logged ERROR
 * block (the message, the migration it came from, its help), without stack frames; failing that,
 * what went to stderr; failing that, the last lines.
 */
export function errorLines(lines: OutputLine[], max = 20): string[] {
  const texts = lines.map((l) => l.text);
  const notes = texts.filter((t) => /Rolling back:|Rollback (was successful|failed)/i.test(t));
  const first = texts.findIndex((t) => /(^|\]\s*)ERROR\s/.test(t));
  const block = first >= 0 ? texts.slice(first) : lines.filter((l) => l.stream === 'stderr').map((l) => l.text);
  const kept: string[] = [];
  for (let i = 0; i < block.length; i++) {
    const t = block[i].trimEnd();
    if (/^\s*Error ID:\s*$/.test(t)) {
      i++; // and the id on the next line
      continue;
    }
    if (!t.trim() || /^\s+at\s/.test(t) || /^\s*-{10,}\s*$/.test(t) || /^\s*\^+\s*$/.test(t)) continue;
    // The logger prints the message in its header line and again below it.
    if (kept.some((k) => k.trim().endsWith(t.trim()))) continue;
    kept.push(t);
  }
  const result = [...notes.filter((n) => !kept.includes(n)), ...kept];
  if (result.length) return result.slice(0, max);
  return texts.filter((t) => t.trim() && !/^\s+at\s/.test(t)).slice(-15);
}
