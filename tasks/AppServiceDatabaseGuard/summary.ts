/**
 * The guard's section on the release's (or build's) run page: the verdict first, then the two
 * fingerprints compared, what was read to get the live one, and the slot's Run From Package check.
 */
import { describeFingerprint, formatFingerprint, type DatabaseFingerprint } from '../../lib/sqlite/fingerprint';
import { code, markdownList, markdownTable } from '../../lib/task/summary';
import type { GuardVerdict } from './guard';
import type { RunFromPackageVerdict } from './run-from-package';

export interface GuardReport {
  remotePath: string;
  host: string;
  expected: DatabaseFingerprint;
  /** Where the expected fingerprint came from. */
  expectedFrom: string;
  verdict: GuardVerdict;
  slot?: RunFromPackageVerdict;
  onChange: 'fail' | 'warn';
}

export function renderGuardSummary(r: GuardReport): string[] {
  const { verdict, slot } = r;
  const headline = verdict.changed
    ? `**✘ Changed since the backup: ${r.onChange === 'fail' ? 'the swap was stopped' : 'continuing (onChange: warn), the writes since the backup will be lost'}.**`
    : '**✔ Unchanged since the backup: nothing written to production would be lost by the swap.**';
  const blocks = [headline];
  if (slot) blocks.push(slot.set ? `**✘ Slot ${code(slot.slot)} runs from a package: the swap was stopped.**` : `✔ Slot ${code(slot.slot)} does not run from a package.`);
  blocks.push(
    markdownTable(
      [
        ['Live database', `${code(r.remotePath)} on ${code(r.host)}`],
        ['Backup (expected)', `${code(formatFingerprint(r.expected))}<br>${describeFingerprint(r.expected)}<br>from ${r.expectedFrom}`],
        ['Live now', `${code(formatFingerprint(verdict.live))}<br>${describeFingerprint(verdict.live)}`],
        ['Read', `${verdict.bytesReceived} bytes in ${verdict.requests} Range requests (headers only: no lock, no download)`],
        ['Slot to be swapped in', slot ? `${code(slot.slot)}, read through ${slot.readThrough}: WEBSITE_RUN_FROM_PACKAGE ${slot.set ? `is ${slot.shown}` : 'not set'}` : 'not checked (swapSlot not set)'],
      ],
    ),
  );
  if (verdict.changes.length) blocks.push('What changed:', markdownList(verdict.changes.map((c) => c.message)));
  blocks.push(verdict.changed ? verdict.message : 'Writes after this check are not covered: swap right after it.');
  if (slot?.set) blocks.push(slot.message);
  return blocks;
}
