/**
 * Where the live database lives, as far as the job can tell from inside App Service: on the
 * storage every instance of the app shares (`D:\home` on Windows, an SMB share; `/home` on Linux,
 * mounted over CIFS), where SQLite's WAL mode does not work and its locks between machines are not
 * dependable (https://sqlite.org/wal.html, https://sqlite.org/faq.html#q5).
 *
 * What the job cannot tell: how many instances the app runs on. Nothing in a WebJob's environment
 * says so (WEBSITE_INSTANCE_ID names only this one; the instance list is in Resource Manager,
 * which the job has no credentials for), so the README warns instead, and the job only notes it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** statfs f_type magic numbers of network file systems (Linux). */
const NETWORK_FILE_SYSTEMS: Record<number, string> = {
  0xff534d42: 'CIFS',
  0xfe534d42: 'SMB2',
  0x517b: 'SMB',
  0x6969: 'NFS',
  0x65735546: 'FUSE',
};

export interface SharedStorage {
  /** Why the job thinks so, for the message: "D:\home is App Service's shared storage ...". */
  reason: string;
}

export interface StorageProbe {
  env: NodeJS.ProcessEnv;
  platform: NodeJS.Platform;
  /** statfs f_type of a path; undefined when unknown. */
  fileSystemType?: (p: string) => number | undefined;
}

/** Whether `file` is on storage other machines share; undefined when it does not look so. */
export function sharedStorageOf(file: string, probe: StorageProbe): SharedStorage | undefined {
  const typeOf = probe.fileSystemType ?? statfsType;
  const type = probe.platform === 'win32' ? undefined : typeOf(path.dirname(file));
  if (type !== undefined && NETWORK_FILE_SYSTEMS[type]) {
    return { reason: `${path.dirname(file)} is on a network file system (${NETWORK_FILE_SYSTEMS[type]})` };
  }
  // Windows App Service: %HOME% is the app's content share; statfs cannot tell a share from a disk there.
  const home = probe.env.HOME;
  if (probe.platform === 'win32' && probe.env.WEBSITE_INSTANCE_ID && home && isInside(file, home)) {
    return { reason: `${home} is App Service's shared storage (an SMB share every instance of the app uses)` };
  }
  return undefined;
}

/** The warnings for a database on shared storage; `journal` is the database header's. */
export function storageWarnings(file: string, journal: 'rollback' | 'wal', shared: SharedStorage): { warn: string[]; info: string[] } {
  const warn: string[] = [];
  if (journal === 'wal') {
    warn.push(
      `${file} uses WAL, and ${shared.reason}. SQLite's documentation says WAL does not work over a network file system: ` +
        `its -shm index is shared memory that processes on other machines do not see. Switch the database back to a rollback journal ` +
        `(PRAGMA journal_mode=DELETE while the app is stopped; Ghost's default) while it lives on App Service's storage.`,
    );
  }
  const info = [
    `${shared.reason}: if the app runs on more than one instance, SQLite's locks between them are not dependable over the share. ` +
      `Keep a SQLite app on one instance (the job cannot see how many there are).`,
  ];
  return { warn, info };
}

function statfsType(p: string): number | undefined {
  try {
    return Number(fs.statfsSync(p).type);
  } catch {
    return undefined;
  }
}

function isInside(file: string, folder: string): boolean {
  const rel = path.win32.relative(folder, file);
  return rel !== '' && !rel.startsWith('..') && !path.win32.isAbsolute(rel);
}
