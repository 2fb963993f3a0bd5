/**
 * A database fingerprint: what identifies the state of a live SQLite database without reading it
 * all — a few header bytes, readable from another process or through Kudu's VFS with a Range
 * request, without a lock. The backup records the fingerprint of the state it copied; right before
 * a slot swap, the live database's fingerprint tells whether anything was committed since, which
 * the swap would throw away.
 *
 * What it holds, and why that is enough:
 *
 * - Rollback journal (DELETE, TRUNCATE, PERSIST — Ghost's default): every commit that changes the
 *   file increments the header's file change counter (offset 24), so the counter alone tells
 *   "changed". Page count and page size come along for the message. Reading the header changes
 *   nothing, so the app's readers never move it. (An app in `locking_mode=EXCLUSIVE` increments it
 *   once per lock, not per commit — but such an app never lets the backup in either.)
 * - WAL: commits go to the -wal and reach the database file only at checkpoints, and the change
 *   counter moves only when a commit touches page 1 — most do not. So the fingerprint also holds:
 *   - the -wal's generation: its header's salt-1, salt-2 and checkpoint sequence, which change
 *     whenever the WAL restarts after a checkpoint (the next writer rewrites the header);
 *   - how many frames of that generation the backup holds (through its last commit). The -wal's
 *     *size* does not tell: after a restart SQLite overwrites old frames in place and the file
 *     does not grow, so the next commit could leave size and header as they were. What tells is
 *     the frame right after the backup's last one: if it carries this generation's salts, someone
 *     wrote after the backup (frames of older generations carry older salts);
 *   - when the database file was last written (100 ns units since the Unix epoch), for the one
 *     case the -wal cannot answer: when it is empty or gone (a TRUNCATE checkpoint, or the last
 *     connection closing). Everything committed is then in the database file, and it was written
 *     after the backup exactly when commits were checkpointed into it since.
 *   A checkpoint after the backup that moves only frames the backup already holds reads as
 *   "changed" when it also empties the -wal; that is the safe direction, and the guard says so.
 *
 * `PRAGMA data_version` would say "changed" exactly, but only to a connection that stays open
 * from the backup to the check, on the app's machine; nothing remote can ask it.
 *
 * The compact form travels through pipeline variables:
 *
 *   v1:rollback:cc=1234:pages=5678:ps=4096
 *   v1:wal:cc=1234:pages=5678:ps=4096:mt=17323309231234567:wal=0a1b2c3d.4e5f6a7b.3+120
 *   v1:wal:cc=1234:pages=5678:ps=4096:mt=17323309231234567:wal=none
 *
 * `+120` is the number of frames; a live fingerprint may say `+121+` ("frame 121 is there, and maybe
 * more": the check stops at the first new frame).
 *
 * @example
 *   const fp = fingerprintFromBytes({ header: first100Bytes });
 *   const text = formatFingerprint(fp);                     // 'v1:rollback:cc=7:pages=3:ps=4096'
 *   compareFingerprints(parseFingerprint(text), live);      // [] when unchanged
 */
import { HEADER_BYTES, parseHeader } from './header';

export const WAL_HEADER_BYTES = 32;
export const WAL_FRAME_HEADER_BYTES = 24;
/** The -wal's magic number; the low bit says which byte order its checksums use. */
const WAL_MAGIC = 0x377f0682;
const VERSION = 'v1';

export interface WalGeneration {
  salt1: number;
  salt2: number;
  /** The checkpoint sequence number (offset 12 of the -wal header). */
  checkpoint: number;
}

export interface WalFingerprint extends WalGeneration {
  /** Frames of this generation through the backup's last commit; live: the frames known to be there. */
  frames: number;
  /** Live only: frame `frames` was found, and more may follow it. */
  orMore?: boolean;
}

export interface DatabaseFingerprint {
  journal: 'rollback' | 'wal';
  /** The header's file change counter (offset 24). */
  changeCounter: number;
  /** The header's page count (offset 28), as stored. */
  pageCount: number;
  pageSize: number;
  /** WAL only: when the database file was last written, in 100 ns units since the Unix epoch; undefined when unknown. */
  modified?: bigint;
  /** WAL only: the -wal's generation and frames; null when it was empty or absent. */
  wal?: WalFingerprint | null;
}

export interface FingerprintChange {
  what: 'journal' | 'page-size' | 'change-counter' | 'page-count' | 'wal' | 'file-written';
  /** A sentence for the user. */
  message: string;
}

export class FingerprintError extends Error {
  override readonly name = 'FingerprintError';
}

export interface FingerprintBytes {
  /** The first 100 bytes of the database file. */
  header: Buffer;
  /** WAL mode: the first 32 bytes of the -wal (fewer, or none, when it is empty or absent). */
  walHeader?: Buffer;
  /** WAL mode: frames of the -wal's generation through the last commit. */
  walFrames?: number;
  /** WAL mode: when the database file was last written (100 ns units since the Unix epoch). */
  modified?: bigint;
}

/** The fingerprint of a database from its header bytes (and, in WAL mode, the -wal's). Throws when the header is not SQLite's. */
export function fingerprintFromBytes(bytes: FingerprintBytes): DatabaseFingerprint {
  const header = parseHeader(bytes.header.subarray(0, HEADER_BYTES));
  const base = { changeCounter: header.changeCounter, pageCount: bytes.header.readUInt32BE(28), pageSize: header.pageSize };
  if (header.journal === 'rollback') return { journal: 'rollback', ...base };
  const generation = bytes.walHeader ? parseWalHeader(bytes.walHeader) : undefined;
  return {
    journal: 'wal',
    ...base,
    modified: bytes.modified,
    wal: generation ? { salt1: generation.salt1, salt2: generation.salt2, checkpoint: generation.checkpoint, frames: bytes.walFrames ?? 0 } : null,
  };
}

/** The -wal header's generation and page size; undefined when the bytes are not a whole, valid -wal header (an empty -wal has none). */
export function parseWalHeader(bytes: Buffer): (WalGeneration & { pageSize: number }) | undefined {
  if (bytes.length < WAL_HEADER_BYTES) return undefined;
  if ((bytes.readUInt32BE(0) & 0xfffffffe) !== WAL_MAGIC) return undefined;
  const rawPageSize = bytes.readUInt32BE(8);
  const pageSize = rawPageSize === 1 ? 65536 : rawPageSize;
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) return undefined;
  return { pageSize, checkpoint: bytes.readUInt32BE(12), salt1: bytes.readUInt32BE(16), salt2: bytes.readUInt32BE(20) };
}

/** Where frame `frame` (1-based) of a -wal with this page size starts. */
export function walFrameOffset(pageSize: number, frame: number): number {
  return WAL_HEADER_BYTES + (frame - 1) * (WAL_FRAME_HEADER_BYTES + pageSize);
}

/**
 * Whether a frame header (its first 24 bytes) was written in this generation of the -wal: it
 * carries the generation's salts. Frames left over from before the last restart carry older ones.
 */
export function frameBelongsTo(frameHeader: Buffer, generation: WalGeneration): boolean {
  return (
    frameHeader.length >= WAL_FRAME_HEADER_BYTES &&
    frameHeader.readUInt32BE(8) === generation.salt1 &&
    frameHeader.readUInt32BE(12) === generation.salt2
  );
}

export function sameGeneration(a: WalGeneration, b: WalGeneration): boolean {
  return a.salt1 === b.salt1 && a.salt2 === b.salt2 && a.checkpoint === b.checkpoint;
}

export function formatFingerprint(fp: DatabaseFingerprint): string {
  const parts = [VERSION, fp.journal, `cc=${fp.changeCounter}`, `pages=${fp.pageCount}`, `ps=${fp.pageSize}`];
  if (fp.journal === 'wal') {
    if (fp.modified !== undefined) parts.push(`mt=${fp.modified}`);
    const w = fp.wal;
    parts.push(`wal=${w ? `${hex8(w.salt1)}.${hex8(w.salt2)}.${w.checkpoint}+${w.frames}${w.orMore ? '+' : ''}` : 'none'}`);
  }
  return parts.join(':');
}

const EXAMPLE = 'v1:rollback:cc=1234:pages=5678:ps=4096';

/** Parses the compact form; throws FingerprintError saying what is wrong and where a good one comes from. */
export function parseFingerprint(text: string): DatabaseFingerprint {
  const trimmed = text.trim();
  const fail: (why: string) => never = (why) => {
    throw new FingerprintError(
      `'${trimmed}' is not a database fingerprint (${why}). A fingerprint looks like ${EXAMPLE}; use the databaseFingerprint output of ` +
        `AppServiceDownload (which reads it from the backup's manifest) or SqliteBackup, e.g. $(download.databaseFingerprint).`,
    );
  };
  if (/^\$\(.*\)$/.test(trimmed)) {
    throw new FingerprintError(
      `The fingerprint is the unexpanded macro '${trimmed}': that variable is not set in this run. Set it from the build's ` +
        `AppServiceDownload output (give that step a name, e.g. 'download', and pass $(download.databaseFingerprint) on as a variable or artifact), ` +
        `and check that the download found the backup's manifest (backup.db.json, written by the built-in backup job).`,
    );
  }
  const [version, journal, ...pairs] = trimmed.split(':');
  if (version !== VERSION) {
    fail(version && /^v\d+$/.test(version) ? `version ${version} is not known to this version of the extension: update the extension` : 'it does not start with v1:');
  }
  if (journal !== 'rollback' && journal !== 'wal') fail(`the journal is '${journal ?? ''}', not rollback or wal`);
  const values = new Map<string, string>();
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    const key = at < 0 ? pair : pair.slice(0, at);
    if (at < 0 || !['cc', 'pages', 'ps', 'mt', 'wal'].includes(key)) fail(`unknown part '${pair}'`);
    if (values.has(key)) fail(`'${key}' appears twice`);
    values.set(key, pair.slice(at + 1));
  }
  const uint32 = (key: string): number => {
    const raw = values.get(key);
    if (raw === undefined) return fail(`'${key}=' is missing`);
    if (!/^\d{1,10}$/.test(raw) || Number(raw) > 0xffffffff) return fail(`'${key}=${raw}' is not a whole number below 2^32`);
    return Number(raw);
  };
  const pageSize = uint32('ps');
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) fail(`page size ${pageSize} is not a power of two from 512 to 65536`);
  const base = { changeCounter: uint32('cc'), pageCount: uint32('pages'), pageSize };
  if (journal === 'rollback') {
    if (values.has('wal') || values.has('mt')) fail('a rollback-journal fingerprint has no wal= or mt=');
    return { journal, ...base };
  }
  const mt = values.get('mt');
  if (mt !== undefined && !/^\d{1,20}$/.test(mt)) fail(`'mt=${mt}' is not a time in 100 ns units`);
  const walText = values.get('wal');
  if (walText === undefined) fail(`a WAL fingerprint needs 'wal=' (none, or <salt-1>.<salt-2>.<checkpoint>+<frames>)`);
  let wal: WalFingerprint | null = null;
  if (walText !== 'none') {
    const m = /^([0-9a-f]{8})\.([0-9a-f]{8})\.(\d{1,10})\+(\d{1,10})(\+?)$/.exec(walText!);
    if (!m || Number(m[3]) > 0xffffffff) return fail(`'wal=${walText}' is not none or <salt-1>.<salt-2>.<checkpoint>+<frames>`);
    wal = { salt1: parseInt(m[1], 16), salt2: parseInt(m[2], 16), checkpoint: Number(m[3]), frames: Number(m[4]) };
    if (m[5]) wal.orMore = true;
  }
  return { journal, ...base, modified: mt === undefined ? undefined : BigInt(mt), wal };
}

/**
 * What changed between the backup's fingerprint and the live one, in words; empty when nothing
 * did. `live` is what the guard read now (its -wal frames known up to the first new one).
 */
export function compareFingerprints(expected: DatabaseFingerprint, live: DatabaseFingerprint): FingerprintChange[] {
  if (expected.wal?.orMore) {
    throw new FingerprintError(`The expected fingerprint ${formatFingerprint(expected)} was read from a live database ('+' after its frames): compare against the fingerprint of a backup.`);
  }
  const journalName = (j: string) => (j === 'wal' ? 'WAL' : 'the rollback journal');
  if (expected.journal !== live.journal) {
    return [{ what: 'journal', message: `the database switched from ${journalName(expected.journal)} to ${journalName(live.journal)} since the backup` }];
  }
  const changes: FingerprintChange[] = [];
  if (expected.pageSize !== live.pageSize) {
    changes.push({ what: 'page-size', message: `its page size changed from ${expected.pageSize} to ${live.pageSize} bytes (the database was rebuilt, e.g. by VACUUM)` });
  }
  if (expected.changeCounter !== live.changeCounter) {
    const commits = (live.changeCounter - expected.changeCounter + 2 ** 32) % 2 ** 32;
    changes.push({
      what: 'change-counter',
      message:
        live.journal === 'rollback'
          ? `its change counter went from ${expected.changeCounter} to ${live.changeCounter}: ${commits} commit${commits === 1 ? '' : 's'} since the backup`
          : `the database file's header changed (change counter ${expected.changeCounter} → ${live.changeCounter}): a checkpoint copied new pages into it after the backup`,
    });
  }
  if (expected.pageCount !== live.pageCount) {
    changes.push({ what: 'page-count', message: `it ${live.pageCount > expected.pageCount ? 'grew' : 'shrank'} from ${expected.pageCount} to ${live.pageCount} pages` });
  }
  if (live.journal === 'wal') changes.push(...compareWal(expected, live));
  return changes;
}

function compareWal(expected: DatabaseFingerprint, live: DatabaseFingerprint): FingerprintChange[] {
  const was = expected.wal ?? null;
  const now = live.wal ?? null;
  if (now) {
    if (!was) return [{ what: 'wal', message: 'its -wal holds transactions written after the backup (the backup saw it empty)' }];
    if (!sameGeneration(was, now)) {
      return [
        {
          what: 'wal',
          message: `its -wal was restarted after a checkpoint (checkpoint sequence ${was.checkpoint} → ${now.checkpoint}, new salts): the app wrote to the database after the backup`,
        },
      ];
    }
    if (now.frames > was.frames || now.orMore) {
      return [{ what: 'wal', message: `its -wal has frames after the backup's last commit (frame ${was.frames}): the app committed after the backup, or is writing now` }];
    }
    // Same generation, no frame after ours: nothing was written since. A checkpoint may have moved
    // frames the backup holds into the database file; that changes nothing.
    return [];
  }
  // The -wal is empty or gone, so everything committed is in the database file: it is unchanged
  // exactly when that file was not written after the backup.
  if (expected.modified === undefined || live.modified === undefined) {
    return [
      {
        what: 'file-written',
        message: `its -wal ${was ? 'was checkpointed and emptied' : 'is empty'}, and without the database file's modification time ${expected.modified === undefined ? 'in the backup\'s fingerprint' : 'from the server'} the guard cannot tell whether commits were checkpointed into it after the backup`,
      },
    ];
  }
  if (expected.modified !== live.modified) {
    return [
      {
        what: 'file-written',
        message:
          `its -wal ${was ? 'was checkpointed into the database file and emptied' : 'is empty'}, and the database file was written at ${formatTicks(live.modified)}, ` +
          `after the backup saw it at ${formatTicks(expected.modified)}: transactions were checkpointed into it since` +
          (was ? ' (possibly only ones the backup holds: without reading the whole file the guard cannot tell)' : ''),
      },
    ];
  }
  return [];
}

/** One line for logs: what the fingerprint says. */
export function describeFingerprint(fp: DatabaseFingerprint): string {
  const base = `${fp.journal === 'wal' ? 'WAL' : 'rollback journal'}, change counter ${fp.changeCounter}, ${fp.pageCount} pages of ${fp.pageSize} bytes`;
  if (fp.journal === 'rollback') return base;
  const wal = fp.wal ? `-wal generation ${fp.wal.checkpoint} with ${fp.wal.frames}${fp.wal.orMore ? ' or more' : ''} frames` : '-wal empty';
  return `${base}, ${wal}${fp.modified !== undefined ? `, file written ${formatTicks(fp.modified)}` : ''}`;
}

/** 100 ns units since the Unix epoch from a file's mtime in nanoseconds (fs.stat with bigint). */
export function ticksFromNs(mtimeNs: bigint): bigint {
  return mtimeNs / 100n;
}

/** ISO 8601 with all seven decimals (100 ns units since the Unix epoch). */
export function formatTicks(ticks: bigint): string {
  const ms = ticks / 10_000n;
  const rest = ticks % 10_000_000n;
  return new Date(Number(ms)).toISOString().replace(/\.\d{3}Z$/, `.${rest.toString().padStart(7, '0')}Z`);
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}
