/**
 * The frame of every task entry: run the work, report one result, and make sure a failure is a
 * message a user can act on (never a stack trace alone, never a secret).
 *
 * @example
 *   // tasks/Foo/index.ts
 *   runTask(async () => {
 *     const result = await doTheWork(readInputs());
 *     tl.setVariable('fooCount', String(result.count), false, true);
 *     return `Did ${result.count} things.`;
 *   });
 */
import * as tl from 'azure-pipelines-task-lib/task';
import { neutraliseCommands } from '../text';

/** What the work returns: the Succeeded message, or `{ withIssues }` for SucceededWithIssues. */
export type TaskOutcome = string | void | { withIssues: string };

/** Runs `work`; its returned text becomes the Succeeded message. Throwing fails the task. */
export function runTask(work: () => Promise<TaskOutcome>): void {
  work().then(
    (outcome) => {
      if (typeof outcome === 'object') tl.setResult(tl.TaskResult.SucceededWithIssues, neutraliseCommands(outcome.withIssues));
      else tl.setResult(tl.TaskResult.Succeeded, neutraliseCommands(outcome || ''));
    },
    (err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof Error && err.stack) tl.debug(neutraliseCommands(err.stack));
      // Library errors keep what they were made from; the debug log shows the chain.
      let cause = err instanceof Error ? err.cause : undefined;
      for (let depth = 0; cause !== undefined && depth < 5; depth++, cause = cause instanceof Error ? cause.cause : undefined) {
        tl.debug(neutraliseCommands(`caused by: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}`));
      }
      tl.setResult(tl.TaskResult.Failed, neutraliseCommands(message));
      process.exitCode = 1;
    },
  );
}
