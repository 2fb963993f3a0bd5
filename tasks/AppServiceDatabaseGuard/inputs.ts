/**
 * The guard's inputs beyond the connection: where the backup's fingerprint comes from (the value,
 * or the manifest file a classic release gets in the build's artifact), and how to read the app
 * settings of the slot about to be swapped in (through Azure Resource Manager, or through the
 * slot's own Kudu site for a Generic connection, whose credentials are per slot).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tl from 'azure-pipelines-task-lib/task';
import { readAppSettings } from '../../lib/azure/app-settings';
import type { Deadline } from '../../lib/deadline';
import type { HttpContext } from '../../lib/http';
import { parseFingerprint, type DatabaseFingerprint } from '../../lib/sqlite/fingerprint';
import { parseManifest } from '../../lib/sqlite/manifest';
import { agentNetwork } from '../../lib/task/agent-settings';
import { azureRmConnection } from '../../lib/task/azurerm-connection';
import { getChoice, getFilePath, getRequired, getString } from '../../lib/task/inputs';
import { kuduFromServiceConnection, userAgent } from '../../lib/task/kudu-connection';
import { pipelineLog } from '../../lib/task/log';

const TASK = 'AppServiceDatabaseGuard';

export interface ExpectedFingerprint {
  fingerprint: DatabaseFingerprint;
  /** Where it came from, for the log and the summary. */
  from: string;
}

/** The backup's fingerprint: `expectedFingerprint`, or the manifest in `expectedFingerprintFile`. */
export function expectedFingerprint(): ExpectedFingerprint {
  const value = getString('expectedFingerprint');
  const file = getFilePath('expectedFingerprintFile');
  if (value && file) throw new Error("Give either expectedFingerprint or expectedFingerprintFile, not both: they could disagree.");
  if (file) return fromManifest(path.resolve(tl.getVariable('System.DefaultWorkingDirectory') ?? process.cwd(), file));
  if (!value) {
    throw new Error(
      'Give the backup\'s fingerprint: expectedFingerprint (e.g. $(download.databaseFingerprint) from the build), or, in a classic release, ' +
        "expectedFingerprintFile: the backup.db.json that SitePackage published beside the zip (its backupManifest input).",
    );
  }
  try {
    return { fingerprint: parseFingerprint(value), from: 'expectedFingerprint' };
  } catch (err) {
    throw new Error(`Input 'expectedFingerprint': ${(err as Error).message}`, { cause: err });
  }
}

function fromManifest(file: string): ExpectedFingerprint {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(
      `expectedFingerprintFile ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). In a classic release it is ` +
        `$(System.DefaultWorkingDirectory)/<artifact alias>/<artifact name>/backup.db.json, published by SitePackage when its backupManifest input is set in the build.`,
      { cause: err },
    );
  }
  const manifest = parseManifest(text, file);
  if (!manifest) throw new Error(`expectedFingerprintFile ${file} is not a backup manifest (the backup.db.json the backup job writes beside backup.db).`);
  pipelineLog.info(`Backup manifest ${file}: backup of ${manifest.source} taken ${manifest.takenAt}, fingerprint ${manifest.fingerprint}.`);
  return { fingerprint: parseFingerprint(manifest.fingerprint), from: `${path.basename(file)} (backup taken ${manifest.takenAt})` };
}

export interface SwapSlotCheck {
  slot: string;
  /** How the settings are read, for messages. */
  through: string;
  read(): Promise<Record<string, string>>;
}

/** How to read the settings of the slot to be swapped in; undefined when no slot was named. */
export function swapSlotCheck(deadline: Deadline): SwapSlotCheck | undefined {
  const slot = getString('swapSlot');
  const slotService = getString('swapSlotKuduService');
  const type = getChoice('connectionType', ['AzureRM', 'Generic'] as const, 'AzureRM');
  if (type === 'Generic') {
    if (!slotService) {
      if (slot) {
        throw new Error(
          `swapSlot '${slot}' is set, but a Generic connection reaches one SCM site with that site's own publishing credentials: ` +
            `also give swapSlotKuduService, a Generic service connection to https://<app>-${slot}.scm.azurewebsites.net/ with the slot's publishing credentials (user $<app>__${slot}).`,
        );
      }
      return undefined;
    }
    const name = slot ?? 'to be swapped in';
    return {
      slot: name,
      through: "the slot's Kudu (api/settings)",
      read: async () => {
        const kudu = await kuduFromServiceConnection({ input: 'swapSlotKuduService', taskName: TASK, log: pipelineLog, deadline });
        try {
          return await kudu.appSettings();
        } finally {
          kudu.close();
        }
      },
    };
  }
  if (!slot) return undefined;
  const http: HttpContext = { userAgent: userAgent(TASK), deadline, network: agentNetwork(pipelineLog), debug: pipelineLog.debug };
  return {
    slot,
    through: 'Azure Resource Manager (config/appsettings/list)',
    read: () => {
      const id = getRequired('azureSubscription');
      const connection = azureRmConnection(id, { input: 'azureSubscription', http, debug: pipelineLog.debug });
      const target = { appName: getRequired('appName'), resourceGroup: getString('resourceGroupName'), slot };
      return readAppSettings(connection, target, { http, log: pipelineLog });
    },
  };
}
