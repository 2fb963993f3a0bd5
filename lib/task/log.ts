/**
 * The log the work modules write to. Tasks pass `pipelineLog` (task-lib underneath); library tests
 * can pass a collecting log. Keeping task-lib out of the work modules keeps them usable from the
 * WebJob, the CLI and the demo.
 */
import * as tl from 'azure-pipelines-task-lib/task';

export interface Log {
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
  /** Text from outside (a remote job's log, a child process): `##vso[` in it must not act as a command. */
  external(text: string): void;
}

export const pipelineLog: Log = {
  info: (message) => console.log(message),
  warn: (message) => tl.warning(message),
  debug: (message) => tl.debug(message),
  external: (text) => tl.writeExternalOutput(text.endsWith('\n') ? text : text + '\n', { source: 'remote' }),
};

/** A log that keeps everything, for tests and for code that reports later. */
export function memoryLog(): Log & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(m),
    warn: (m) => lines.push(`WARNING: ${m}`),
    debug: () => undefined,
    external: (t) => lines.push(t.replace(/\n$/, '')),
  };
}
