/**
 * AppServiceDatabaseGuard@1: right before a slot swap, check that the live database has not
 * changed since the backup the release deploys, so that no post, comment or sign-up written in
 * between is thrown away by the swap.
 */
import { formatFingerprint, parseFingerprint } from '../../lib/sqlite/fingerprint';
import { taskDeadline } from '../../lib/task/agent-settings';
import { getChoice, getRequired, setOutput } from '../../lib/task/inputs';
import { kuduFromServiceConnection } from '../../lib/task/kudu-connection';
import { pipelineLog } from '../../lib/task/log';
import { runTask } from '../../lib/task/run';
import { guardLiveDatabase } from './guard';

runTask(async () => {
  let expected;
  try {
    expected = parseFingerprint(getRequired('expectedFingerprint'));
  } catch (err) {
    throw new Error(`Input 'expectedFingerprint': ${(err as Error).message}`);
  }
  const onChange = getChoice('onChange', ['fail', 'warn'] as const, 'fail');
  const remotePath = getRequired('remotePath');
  // No timeoutMinutes input: the default deadline (DEFAULT_TASK_MINUTES) bounds every request and retry.
  const kudu = await kuduFromServiceConnection({ taskName: 'AppServiceDatabaseGuard', log: pipelineLog, deadline: taskDeadline() });
  try {
    const verdict = await guardLiveDatabase(kudu, { remotePath, expected, onChange }, pipelineLog);
    setOutput('databaseChanged', verdict.changed);
    setOutput('liveFingerprint', formatFingerprint(verdict.live));
    if (!verdict.changed) return verdict.message;
    if (onChange === 'fail') throw new Error(verdict.message);
    // SucceededWithIssues shows the message as the run's warning.
    return { withIssues: verdict.message };
  } finally {
    kudu.close();
  }
});
