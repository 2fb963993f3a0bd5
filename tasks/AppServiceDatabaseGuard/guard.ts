/**
 * The work of AppServiceDatabaseGuard: read the live database's fingerprint through Kudu's VFS —
 * a few header bytes with Range requests, no lock, nothing the app notices — and compare it with
 * the backup's. Every read is bounded: a server that ignores Range has its answer cut off once
 * the bytes needed are in.
 *
 * Rollback journal: one read of the 100-byte header. WAL: the header, the -wal's header, the
 * frame after the backup's last one, the -wal's header again (a restart between the two would
 * put a newer frame where an old one was), and the database header once more, last: when the
 * -wal turns out empty, the database file's modification time must be read after it, so that a
 * checkpoint that emptied it cannot slip between the two reads.
 */
import * as path from 'node:path';
import { lastWriteFromVfsEtag, parseVfsTime, type KuduClient, type RangeRead } from '../../lib/kudu/client';
import {
  compareFingerprints,
  describeFingerprint,
  fingerprintFromBytes,
  frameBelongsTo,
  parseWalHeader,
  sameGeneration,
  WAL_FRAME_HEADER_BYTES,
  WAL_HEADER_BYTES,
  walFrameOffset,
  type DatabaseFingerprint,
  type FingerprintChange,
  type WalGeneration,
} from '../../lib/sqlite/fingerprint';
import { HEADER_BYTES, hasSqliteMagic, parseHeader } from '../../lib/sqlite/header';
import type { Log } from '../../lib/log';

export interface GuardRequest {
  /** The live database, relative to %HOME%. */
  remotePath: string;
  /** The backup's fingerprint. */
  expected: DatabaseFingerprint;
  /** What the task does when it changed: the message's advice depends on it. */
  onChange: 'fail' | 'warn';
}

export interface GuardVerdict {
  changed: boolean;
  live: DatabaseFingerprint;
  changes: FingerprintChange[];
  /** What to tell the user: what changed and what to do, or that nothing did. */
  message: string;
  requests: number;
  bytesReceived: number;
}

/** Tries to read the -wal while it stands still before concluding "it is being written". */
const WAL_READ_TRIES = 3;

export async function guardLiveDatabase(kudu: KuduClient, request: GuardRequest, log: Log): Promise<GuardVerdict> {
  const remote = request.remotePath.replace(/\\/g, '/').replace(/^\/+/, '');
  if (!remote || remote.endsWith('/')) {
    throw new Error(`remotePath '${request.remotePath}' is not a file: give the live database's path relative to %HOME%, like site/wwwroot/content/data/ghost.db.`);
  }
  const reader = new TallyReader(kudu);
  log.info(`Expected (the backup): ${describeFingerprint(request.expected)}.`);
  const { live, extra } = await readLiveFingerprint(reader, remote, request.expected);
  const changes = [...compareFingerprints(request.expected, live), ...extra];
  log.info(`Live ${remote}: ${describeFingerprint(live)} (read ${reader.bytesReceived} bytes in ${reader.requests} requests).`);
  const what = `The live database ${remote} on ${kudu.host} has changed since the backup: ${changes.map((c) => c.message).join('; ')}.`;
  const message = !changes.length
    ? `The live database ${remote} has not changed since the backup. Writes after this check are not covered: swap right after it.`
    : request.onChange === 'fail'
      ? `${what} Swapping now would replace it with the backup's data and throw away what was written since. ` +
        `Run the build again so that its backup includes the new writes, and release that build (right after it, or when the site is quiet); ` +
        `or, to deploy anyway and lose those writes deliberately, set onChange: warn.`
      : `${what} Continuing because onChange is warn: the swap will throw away what was written since the backup.`;
  return { changed: changes.length > 0, live, changes, message, requests: reader.requests, bytesReceived: reader.bytesReceived };
}

async function readLiveFingerprint(reader: TallyReader, remote: string, expected: DatabaseFingerprint): Promise<{ live: DatabaseFingerprint; extra: FingerprintChange[] }> {
  const first = await readDatabaseHeader(reader, remote);
  if (parseHeader(first.data).journal === 'rollback') return { live: fingerprintFromBytes({ header: first.data }), extra: [] };

  const walPath = `${remote}-wal`;
  for (let attempt = 1; ; attempt++) {
    const wal = await readWal(reader, walPath, expected);
    const last = await readDatabaseHeader(reader, remote);
    const modified = lastWriteFromVfsEtag(last.etag) ?? (await modifiedFromListing(reader.kudu, remote));
    if (!wal.stable && attempt < WAL_READ_TRIES) continue;
    const fp = fingerprintFromBytes({ header: last.data, modified });
    if (fp.journal === 'wal' && wal.generation) fp.wal = { ...wal.generation, frames: wal.frames, ...(wal.orMore || !wal.stable ? { orMore: true } : {}) };
    if (wal.stable) return { live: fp, extra: [] };
    return { live: fp, extra: [{ what: 'wal', message: `its -wal changed every time the guard read it (${WAL_READ_TRIES} tries): the app is writing to the database right now` }] };
  }
}

interface WalRead {
  /** The -wal's generation; undefined when it is empty or absent. */
  generation?: WalGeneration;
  /** Frames of the generation known to be there (see WalFingerprint). */
  frames: number;
  orMore: boolean;
  /** The -wal did not change between the first and the last read. */
  stable: boolean;
}

/**
 * The -wal's generation, and whether a frame of it follows the backup's last one (or, for
 * another generation than the backup's, whether it has a first frame).
 */
async function readWal(reader: TallyReader, walPath: string, expected: DatabaseFingerprint): Promise<WalRead> {
  const head = await reader.read(walPath, 0, WAL_HEADER_BYTES);
  const generation = head.exists ? parseWalHeader(head.data) : undefined;
  if (!generation) {
    // Empty or absent: everything committed is in the database file, whose header and time are read next.
    return { frames: 0, orMore: false, stable: true };
  }
  const known = expected.journal === 'wal' && expected.wal && sameGeneration(expected.wal, generation) ? expected.wal.frames : 0;
  const probe = await reader.read(walPath, walFrameOffset(generation.pageSize, known + 1), WAL_FRAME_HEADER_BYTES);
  const found = probe.exists && frameBelongsTo(probe.data, generation);
  const again = await reader.read(walPath, 0, WAL_HEADER_BYTES);
  const generationAgain = again.exists ? parseWalHeader(again.data) : undefined;
  const stable = generationAgain !== undefined && sameGeneration(generation, generationAgain);
  const { salt1, salt2, checkpoint } = generation;
  return { generation: { salt1, salt2, checkpoint }, frames: found ? known + 1 : known, orMore: found, stable };
}

/** The first 100 bytes of the live database, checked to be SQLite's header. */
async function readDatabaseHeader(reader: TallyReader, remote: string): Promise<RangeRead> {
  const head = await reader.read(remote, 0, HEADER_BYTES);
  const where = `${remote} on ${reader.kudu.host}`;
  if (!head.exists) {
    throw new Error(
      `${where} does not exist (404). The guard reads the live database: set remotePath to its path relative to %HOME% ` +
        `(Ghost: site/wwwroot/content/data/ghost.db), and check that the connection points at the app (and slot) that serves production.`,
    );
  }
  if (head.data.length === 0) throw new Error(`${where} is empty (0 bytes): it is not a SQLite database in use. Check remotePath.`);
  if (!hasSqliteMagic(head.data)) throw new Error(`${where} is not a SQLite database (it does not start with "SQLite format 3"). Check remotePath.`);
  if (head.data.length < HEADER_BYTES) throw new Error(`${where} is cut off: ${head.data.length} bytes, less than a SQLite header.`);
  return head;
}

/** For a server whose ETags are not Kudu's: the time from the folder's listing. */
async function modifiedFromListing(kudu: KuduClient, remote: string): Promise<bigint | undefined> {
  const entries = await kudu.listDirectory(path.posix.dirname(remote));
  return parseVfsTime(entries?.find((e) => e.name === path.posix.basename(remote))?.mtime);
}

/** Range reads through the client, counted for the log. */
class TallyReader {
  requests = 0;
  bytesReceived = 0;
  constructor(readonly kudu: KuduClient) {}

  async read(remotePath: string, offset: number, length: number): Promise<RangeRead> {
    this.requests++;
    const got = await this.kudu.readRange(remotePath, offset, length);
    this.bytesReceived += got.bytesReceived ?? got.data.length;
    return got;
  }
}
