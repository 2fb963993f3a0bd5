/**
 * installJob: puts the extension's own SQLite backup WebJob on the app under the chosen name when
 * the app does not have it, or has an older copy. The job's package.json carries its version and
 * its name says it is ours; a different job under that name is never replaced. A schedule the
 * user set in settings.job survives an upgrade.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ACTIVE_STATUSES, type KuduClient } from '../../lib/kudu/client';
import { KuduError } from '../../lib/kudu/errors';
import type { Log } from '../../lib/log';

/** The name in the bundled job's package.json. */
export const BUNDLED_JOB_PACKAGE = 'appservice-sqlite-backup-webjob';

export interface BundledJob {
  zip: string;
  version: string;
  /** The zip's settings.job (`is_in_place`): kept under the user's own settings on an upgrade. */
  settings: Record<string, unknown>;
}

/** The job zip the build puts beside the compiled task (and the .vsix carries), and a copy of its settings.job. */
export function bundledJob(version: string): BundledJob {
  const zip = path.join(__dirname, 'webjob', 'sqlite-backup.zip');
  const settingsFile = path.join(__dirname, 'webjob', 'settings.job');
  if (!fs.existsSync(zip) || !fs.existsSync(settingsFile)) {
    throw new Error(`The built-in backup job is missing from the task (${zip}): the extension's package is incomplete. Reinstall the extension.`);
  }
  return { zip, version, settings: JSON.parse(fs.readFileSync(settingsFile, 'utf8')) as Record<string, unknown> };
}

export type InstallOutcome = 'installed' | 'upgraded' | 'current' | 'busy';

export async function installBundledJob(kudu: KuduClient, jobName: string, bundled: BundledJob, log: Log): Promise<InstallOutcome> {
  let existing;
  try {
    existing = await kudu.getTriggeredJob(jobName);
  } catch (err) {
    if (!(err instanceof KuduError) || err.kind !== 'not-found') throw err;
  }
  if (!existing) {
    log.info(`Installing the built-in SQLite backup job ${bundled.version} as '${jobName}'.`);
    await kudu.putTriggeredJob(jobName, bundled.zip);
    return 'installed';
  }

  const manifest = await kudu.readText(`site/wwwroot/App_Data/jobs/triggered/${jobName}/package.json`);
  const installed = parseManifest(manifest);
  if (!installed || installed.name !== BUNDLED_JOB_PACKAGE) {
    throw new Error(
      `installJob is true, but the app already has a triggered WebJob named '${jobName}' that is not this extension's backup job. ` +
        `It is left as it is. Choose another jobName for the built-in job (e.g. sqlite-backup), or set installJob: false to run '${jobName}'.`,
    );
  }
  if (compareVersions(installed.version, bundled.version) >= 0) {
    log.info(`'${jobName}' is the built-in backup job ${installed.version}; nothing to install.`);
    return 'current';
  }
  if (existing.latest_run && ACTIVE_STATUSES.has(existing.latest_run.status)) {
    // Replacing a job's files under a running backup would cut it short.
    log.warn(`'${jobName}' is the built-in backup job ${installed.version}, older than ${bundled.version}, but a run is in progress; upgrading it next time.`);
    return 'busy';
  }
  log.info(`Upgrading '${jobName}' from the built-in backup job ${installed.version} to ${bundled.version}.`);
  // The user's settings (a schedule) win, over the new job's own (is_in_place) where they overlap.
  const settings = existing.settings ?? {};
  await kudu.putTriggeredJob(jobName, bundled.zip);
  if (Object.keys(settings).length > 0) await kudu.putJobSettings(jobName, { ...bundled.settings, ...settings });
  return 'upgraded';
}

function parseManifest(text: string | undefined): { name: string; version: string } | undefined {
  if (!text) return undefined;
  try {
    const json = JSON.parse(text) as { name?: unknown; version?: unknown };
    return typeof json.name === 'string' && typeof json.version === 'string' ? { name: json.name, version: json.version } : undefined;
  } catch {
    return undefined;
  }
}

/** Dotted numeric versions (`1.2.10` > `1.2.9`); a pre-release suffix counts as older. */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [core, pre] = v.split('-', 2);
    return { parts: core.split('.').map((n) => Number(n) || 0), pre: pre !== undefined };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < Math.max(x.parts.length, y.parts.length); i++) {
    const d = (x.parts[i] ?? 0) - (y.parts[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return x.pre === y.pre ? 0 : x.pre ? -1 : 1;
}
