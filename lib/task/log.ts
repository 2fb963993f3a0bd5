/**
 * The pipeline's log: `Log` (lib/log.ts) written through task-lib to the agent.
 */
import * as tl from 'azure-pipelines-task-lib/task';
import type { Log } from '../log';
import { cleanLines, neutraliseCommands } from '../text';

export type { Log } from '../log';
export { lineLog, memoryLog } from '../log';

export const pipelineLog: Log = {
  info: (message) => console.log(neutraliseCommands(message)),
  warn: (message) => tl.warning(neutraliseCommands(message)),
  debug: (message) => tl.debug(neutraliseCommands(message)),
  external: (text) => console.log(cleanLines(text.replace(/\r?\n$/, ''))),
  group: (title) => console.log(`##[group]${neutraliseCommands(title).replace(/[\r\n]+/g, ' ')}`),
  endGroup: () => console.log('##[endgroup]'),
  progress: (percent, description) => tl.setProgress(Math.max(0, Math.min(100, Math.round(percent))), neutraliseCommands(description)),
};

