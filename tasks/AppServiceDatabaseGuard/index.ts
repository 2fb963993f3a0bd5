/**
 * AppServiceDatabaseGuard@1: right before a slot swap, check that the live database has not
 * changed since the backup the release deploys, so that no post, comment or sign-up written in
 * between is thrown away by the swap; and, when told which slot is about to be swapped in, that
 * it does not run from a (read-only) package.
 */
import { formatFingerprint } from '../../lib/sqlite/fingerprint';
import { taskDeadline } from '../../lib/task/agent-settings';
import { getChoice, getRequired, setOutput } from '../../lib/task/inputs';
import { kuduFromServiceConnection } from '../../lib/task/kudu-connection';
import { pipelineLog } from '../../lib/task/log';
import { runTask } from '../../lib/task/run';
import { uploadSummary } from '../../lib/task/summary';
import { guardLiveDatabase } from './guard';
import { expectedFingerprint, swapSlotCheck } from './inputs';
import { checkRunFromPackage } from './run-from-package';
import { renderGuardSummary } from './summary';

runTask(async () => {
  const expected = expectedFingerprint();
  const onChange = getChoice('onChange', ['fail', 'warn'] as const, 'fail');
  const remotePath = getRequired('remotePath');
  // No timeoutMinutes input: the default deadline (DEFAULT_TASK_MINUTES) bounds every request and retry.
  const deadline = taskDeadline();
  const swap = swapSlotCheck(deadline);
  const kudu = await kuduFromServiceConnection({ taskName: 'AppServiceDatabaseGuard', log: pipelineLog, deadline });
  try {
    const verdict = await guardLiveDatabase(kudu, { remotePath, expected: expected.fingerprint, onChange }, pipelineLog);
    setOutput('databaseChanged', verdict.changed);
    setOutput('liveFingerprint', formatFingerprint(verdict.live));
    const slot = swap && checkRunFromPackage(await swap.read(), swap.slot, swap.through);
    if (slot && !slot.set) pipelineLog.info(slot.message);
    uploadSummary('Live database check', renderGuardSummary({ remotePath, host: kudu.host, expected: expected.fingerprint, expectedFrom: expected.from, verdict, slot, onChange }));
    const failures = [verdict.changed && onChange === 'fail' ? verdict.message : undefined, slot?.set ? slot.message : undefined].filter(Boolean);
    if (failures.length) throw new Error(failures.join(' — '));
    // SucceededWithIssues shows the message as the run's warning.
    return verdict.changed ? { withIssues: verdict.message } : verdict.message;
  } finally {
    kudu.close();
  }
});
