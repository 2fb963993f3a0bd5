/**
 * The slot about to be swapped in must not run from a package. `WEBSITE_RUN_FROM_PACKAGE` mounts
 * the zip as a read-only `wwwroot`: Ghost, which writes `content/data/ghost.db` and
 * `content/images` there, could save nothing. `AzureWebApp@1` (deploymentMethod auto) and
 * `AzureRmWebAppDeployment@4/@5` set it on Windows apps unless told to zip-deploy, and it is an
 * ordinary app setting, not a slot setting: the swap carries it into production.
 */
import { cleanText } from '../../lib/text';

export const RUN_FROM_PACKAGE = 'WEBSITE_RUN_FROM_PACKAGE';

export interface RunFromPackageVerdict {
  /** The slot checked, as the user named it. */
  slot: string;
  /** How its settings were read: `Azure Resource Manager` or the slot's Kudu host. */
  readThrough: string;
  /** Set to anything but empty or 0: the slot runs from a package. */
  set: boolean;
  /** What the setting holds, safe to show: `1`, or a package URL without its query (a SAS token). */
  shown?: string;
  message: string;
}

/** What the value means, without the secret a package URL may carry in its query. */
export function describeRunFromPackage(value: string): string {
  const trimmed = value.trim();
  if (/^https?:\/\//i.test(trimmed)) {
    try {
      const url = new URL(trimmed);
      return `a package URL, ${cleanText(`${url.origin}${url.pathname}`)}${url.search ? ' (its query left out)' : ''}`;
    } catch {
      return 'a package URL';
    }
  }
  return cleanText(trimmed, 40);
}

/** The verdict on the slot's settings (names compared ignoring case, as App Service does). */
export function checkRunFromPackage(settings: Record<string, string>, slot: string, readThrough: string): RunFromPackageVerdict {
  const key = Object.keys(settings).find((k) => k.toUpperCase() === RUN_FROM_PACKAGE);
  const value = key ? settings[key] : undefined;
  const set = value !== undefined && value.trim() !== '' && value.trim() !== '0';
  if (!set) {
    return { slot, readThrough, set, message: `Slot '${slot}' does not run from a package (${RUN_FROM_PACKAGE} is ${value === undefined ? 'not set' : `'${cleanText(value.trim(), 40)}'`}): wwwroot stays writable after the swap.` };
  }
  const shown = describeRunFromPackage(value);
  return {
    slot,
    readThrough,
    set,
    shown,
    message:
      `Slot '${slot}' runs from a package: its app setting ${RUN_FROM_PACKAGE} is ${shown}. That makes wwwroot read-only, and the setting is not a slot setting, ` +
      `so the swap would carry it into production, where Ghost could then save no post, member or image (content/data and content/images are under wwwroot). ` +
      `Deploy the package with deploymentMethod: zipDeploy (AzureWebApp@1), which also removes the setting, or delete ${RUN_FROM_PACKAGE} from the slot's ` +
      `Configuration > Application settings; then deploy and run the release again.`,
  };
}
