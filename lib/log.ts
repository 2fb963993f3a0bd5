/**
 * The one log path. The work modules write to a `Log`: tasks pass `pipelineLog`
 * (lib/task/log.ts, task-lib underneath), the WebJob and the CLI a `lineLog`, library tests a
 * `memoryLog`. Keeping task-lib out of this file keeps the work modules usable from the WebJob,
 * the CLI and the demo.
 *
 * Every line goes out with `##vso[` and `##[` neutralised (lib/text.ts): we never write a command
 * through a message, so any such marker in one came from outside (a file name, a manifest, a job's
 * log) and must not act. The agent's own commands have methods of their own: `group`,
 * `endGroup`, `progress`.
 */
import { cleanLines, neutraliseCommands } from './text';

export interface Log {
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
  /** Text from outside (a remote job's log, a child process), line by line, control characters shown as `?`. */
  external(text: string): void;
  /** A collapsible section on the run page (`##[group]`), closed by `endGroup`. */
  group(title: string): void;
  endGroup(): void;
  /** The task's progress on the run page (`task.setprogress`), 0–100. */
  progress(percent: number, description: string): void;
}

/**
 * A log that writes whole lines through `write` (the WebJob's stdout, the CLI's stderr), with the
 * same neutralising as the pipeline's; warnings are prefixed, groups become a heading line.
 */
export function lineLog(write: (line: string) => void, options: { debug?: boolean } = {}): Log {
  const line = (m: string) => write(neutraliseCommands(m));
  return {
    info: line,
    warn: (m) => line(`WARNING: ${m}`),
    debug: (m) => (options.debug ? line(`DEBUG: ${m}`) : undefined),
    external: (t) => write(cleanLines(t.replace(/\r?\n$/, ''))),
    group: (t) => line(`--- ${t}`),
    endGroup: () => undefined,
    progress: () => undefined,
  };
}

/** A log that keeps everything, for tests and for code that reports later. */
export function memoryLog(): Log & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(m),
    warn: (m) => lines.push(`WARNING: ${m}`),
    debug: () => undefined,
    external: (t) => lines.push(t.replace(/\n$/, '')),
    group: (t) => lines.push(`[group] ${t}`),
    endGroup: () => lines.push('[endgroup]'),
    progress: () => undefined,
  };
}
