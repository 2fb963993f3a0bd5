/**
 * A live SQLite database that other processes read and write, and the one thing a backup needs
 * from it: a consistent copy (the database as it was at one instant) in a file of ours, taken
 * with the least locking its journal mode allows. The source's content and journal mode are never
 * changed: nothing is written to it, and a WAL database is opened read-only so that closing the
 * last connection does not checkpoint it.
 *
 * Rollback journal (DELETE, TRUNCATE, PERSIST): committed data is all in the database file, so a
 * byte copy taken while no write can commit is consistent. The copy is made in three steps:
 *   1. a bulk copy of the file with no lock at all (torn pages are expected here and fixed later);
 *   2. more lock-free passes that rewrite only the blocks that differ, while many commits land
 *      during a pass (on slow storage);
 *   3. a final pass under `BEGIN IMMEDIATE` (SQLite's RESERVED lock) that compares every block of
 *      the live file with the copy byte for byte, rewrites those that differ, sizes the copy to
 *      page_count × page_size, and ends with ROLLBACK (nothing was written).
 *   RESERVED keeps the app's readers running (it is not PENDING, which would stop new readers)
 *   and makes its writers wait in their busy handler — only for step 3, one read of the file.
 *   Caveat: a writer in a deferred transaction that has already read (`BEGIN; SELECT; UPDATE`)
 *   gets SQLITE_BUSY at once instead of waiting (SQLite's deadlock avoidance); autocommit writes
 *   and `BEGIN IMMEDIATE` transactions wait as usual. Step 3 compares bytes rather than checksums
 *   so that a changed block can never pass as unchanged; it costs one extra read of the copy,
 *   which measured no slower than a CRC-32 of the live block here.
 * Throughout: this process never opens and closes the database file while SQLite holds a lock on
 *   it, because on POSIX closing any descriptor of a file releases all of the process's locks on
 *   it — SQLite's RESERVED lock or WAL read lock with them (see bulkCopy and FinalPassHelper).
 * WAL: a read transaction is a snapshot, and readers never block writers. Inside one read
 *   transaction the database file and the -wal are copied as bytes; then SQLite opens the copy,
 *   recovers its WAL (stopping at the last whole commit) and checkpoints it into the copy. While
 *   we hold the read mark, checkpoints only write pages whose WAL frames the copy also has, and
 *   the WAL cannot restart, so the result is the database at the last commit the copy contains.
 *   This is the same read transaction the backup API and VACUUM INTO hold, at file-copy speed.
 *
 * @example
 *   const live = LiveDatabase.open('content/data/ghost.db', { busyTimeoutMs: 10_000, log });
 *   try {
 *     const copy = await live.copyTo('/backups/.ghost.db.partial');
 *     console.log(copy.lockMs, live.maxLockMs); // how long writers could have waited on us
 *   } finally {
 *     live.close();
 *   }
 */
import * as crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { formatBytes, formatMs } from '../format';
import type { Log } from '../log';
import { isBusyError, SqliteBackupError } from './backup-error';
import { openDatabase, type SqliteDatabase } from './driver';
import { FinalPassHelper, io } from './block-io';
import { fingerprintFromBytes, ticksFromNs, WAL_HEADER_BYTES, type DatabaseFingerprint } from './fingerprint';
import { HEADER_BYTES } from './header';
import { readHeader, SqliteFileError } from './verify';

/** Below this size the final pass runs on one thread: a helper thread would cost more than it saves. */
const PARALLEL_FROM = 64 << 20;
/** Below this size a copy under a lock goes through this process, not a child process (which takes tens of milliseconds to start). */
const CHILD_COPY_FROM = 64 << 20;
/** Another lock-free pass is worth it when more commits than this landed during the last one. */
const REFINE_ABOVE_COMMITS = 100;
const MAX_REFINE_PASSES = 3;
/**
 * WAL: how long the read transaction stays open after the database file's modification time is
 * read for the fingerprint. File systems stamp writes with a coarse clock (a few milliseconds on
 * Linux); waiting one tick or more means that a checkpoint after the transaction ends cannot get
 * the same stamp as the last write before it. Readers block nobody in WAL mode.
 */
const MTIME_SETTLE_MS = 20;

export type JournalKind = 'rollback' | 'wal';

export type BackupPhase = 'copy' | 'refine' | 'final' | 'fold' | 'verify' | 'compress' | 'commit';

/** Progress of a long phase. `final` is reported while writers are held: keep listeners short. */
export interface BackupProgress {
  phase: BackupPhase;
  done: number;
  total: number;
}

export type ProgressListener = (progress: BackupProgress) => void;

/** A span during which the app's writers could have been waiting for a lock we held. */
export interface LockSpan {
  what: string;
  /** When the lock was taken (epoch ms). */
  at: number;
  ms: number;
}

export interface LiveDatabaseOptions {
  busyTimeoutMs: number;
  log: Log;
  onProgress?: ProgressListener;
}

export interface CopyOutcome {
  journal: JournalKind;
  /** Bytes read from the source (all passes). */
  bytesRead: number;
  /** Lock-free passes after the bulk copy (rollback journal). */
  refinePasses: number;
  /** Bytes rewritten under the lock because they changed after they were copied. */
  rewrittenUnderLock: number;
  /** The writer-blocking lock of the final pass (rollback journal); 0 in WAL mode. */
  lockMs: number;
  /** How long the final pass waited for that lock (the app was mid-transaction; nothing held meanwhile). */
  lockWaitMs: number;
  /** How long the WAL read transaction was held (checkpoints cannot pass it meanwhile). */
  readTransactionMs: number;
  /** Bytes of -wal copied and checkpointed into the copy (WAL mode). */
  walBytes: number;
  /** The source's fingerprint for the state the copy holds (see copyRollback and copyWal for the instant). */
  fingerprint: DatabaseFingerprint;
}

/** State of a rollback-journal database read under a brief read lock, for "has it changed?". */
export interface LiveState {
  bytes: number;
  changeCounter: number;
  firstPageSha256: string;
  /** The fingerprint at the same instant (under the same read lock). */
  fingerprint: DatabaseFingerprint;
}

export class LiveDatabase {
  readonly lockSpans: LockSpan[] = [];

  private constructor(
    readonly file: string,
    readonly journal: JournalKind,
    readonly pageSize: number,
    private readonly db: SqliteDatabase,
    private readonly fd: number,
    /** No write access: the final pass takes a read lock (SHARED), which also stops new readers while a writer waits. */
    readonly readOnly: boolean,
    private readonly options: LiveDatabaseOptions,
  ) {}

  /** Opens the source for a backup; throws SqliteFileError for a file that is not a usable database. */
  static open(file: string, options: LiveDatabaseOptions): LiveDatabase {
    const { header } = readHeader(file);
    const journal: JournalKind = header.journal;
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      throw new SqliteFileError(`${file} cannot be read (${(err as NodeJS.ErrnoException).code}): check its permissions.`, 'unreadable', file);
    }
    // WAL: a read-only connection never checkpoints on close, so the source's files stay as they
    // are even when no app is running. Rollback: BEGIN IMMEDIATE needs a read-write connection.
    const readOnly = journal === 'wal' || !canWrite(file);
    if (readOnly && journal === 'rollback') {
      options.log.warn(
        `${file} is not writable by this process, so the final pass holds a read lock instead of BEGIN IMMEDIATE: ` +
          `while a writer waits for it, new readers wait too. Run the backup as a user that can write the database to keep readers going.`,
      );
    }
    const journalFile = `${file}-journal`;
    const hotCandidate = journal === 'rollback' && journalHeaderIsLive(journalFile);
    let db: SqliteDatabase | undefined;
    const started = performance.now();
    const startedAt = Date.now();
    try {
      db = openDatabase(file, { readonly: readOnly, fileMustExist: true, timeout: options.busyTimeoutMs });
      // The first read takes a SHARED lock for an instant; if a crashed writer left a hot journal,
      // SQLite rolls it back here, as the app's own next read would.
      db.prepare('SELECT count(*) FROM sqlite_schema').get();
      const mode = String(db.pragma('journal_mode', { simple: true }));
      if ((mode === 'wal') !== (journal === 'wal')) {
        throw new SqliteBackupError(`${file} switched journal mode while the backup was starting (header said ${journal}, SQLite says ${mode}). Run the backup again.`, 'source-changed');
      }
    } catch (err) {
      db?.close();
      fs.closeSync(fd);
      throw describeOpenError(err, file, options.busyTimeoutMs);
    }
    const live = new LiveDatabase(file, journal, header.pageSize, db, fd, readOnly, options);
    live.lockSpans.push({ what: 'open and first read', at: startedAt, ms: performance.now() - started });
    if (hotCandidate && !journalHeaderIsLive(journalFile)) {
      // Either a write finished meanwhile or SQLite rolled back a crash's hot journal on our first read.
      options.log.info(`${journalFile} held a journal when the backup started (a write in progress, or a hot journal left by a crash, which SQLite has now rolled back as the app would on its next read).`);
    }
    return live;
  }

  /** The longest span writers could have waited on a lock this backup held. */
  get maxLockMs(): number {
    return Math.max(0, ...this.lockSpans.map((s) => s.ms));
  }

  /** Size, change counter and first page, read under a read lock held for an instant (rollback journal only). */
  probe(): LiveState {
    if (this.journal !== 'rollback') throw new Error('probe() reads the header of a rollback-journal database; a WAL database keeps its latest pages in the -wal');
    return this.underReadLock('read the header', () => {
      const first = Buffer.alloc(this.pageSize);
      io.readFully(this.fd, first, this.pageSize, 0);
      return {
        bytes: fs.fstatSync(this.fd).size,
        changeCounter: first.readUInt32BE(24),
        firstPageSha256: crypto.createHash('sha256').update(first).digest('hex'),
        fingerprint: fingerprintFromBytes({ header: first.subarray(0, HEADER_BYTES) }),
      };
    });
  }

  /** Writes a consistent copy of the database to `target` (created or overwritten; not synced). */
  async copyTo(target: string): Promise<CopyOutcome> {
    return this.journal === 'wal' ? this.copyWal(target) : this.copyRollback(target);
  }

  close(): void {
    try {
      this.db.close();
    } finally {
      fs.closeSync(this.fd);
    }
  }

  private async copyRollback(target: string): Promise<CopyOutcome> {
    const { log } = this.options;
    let size = fs.fstatSync(this.fd).size;
    let counter = this.rawChangeCounter();
    const started = performance.now();
    // No lock is held between transactions in rollback-journal mode, so this process may copy the file itself.
    await bulkCopy(this.file, this.fd, target, size, new Pacer('copy', size, this.options.onProgress), false);
    const out = fs.openSync(target, 'r+');
    const outcome: Omit<CopyOutcome, 'fingerprint'> = { journal: 'rollback', bytesRead: 0, refinePasses: 0, rewrittenUnderLock: 0, lockMs: 0, lockWaitMs: 0, readTransactionMs: 0, walBytes: 0 };
    try {
      outcome.bytesRead += size;
      log.info(`Copied ${formatBytes(size)} without a lock in ${formatMs(performance.now() - started)}.`);

      for (let pass = 1; pass <= MAX_REFINE_PASSES; pass++) {
        const now = this.rawChangeCounter();
        const commits = (now - counter + 2 ** 32) % 2 ** 32;
        if (commits <= REFINE_ABOVE_COMMITS) break;
        counter = now;
        size = fs.fstatSync(this.fd).size;
        const passStarted = performance.now();
        const rewritten = await refreshBytes(this.fd, out, size, new Pacer('refine', size, this.options.onProgress));
        outcome.bytesRead += size;
        outcome.refinePasses = pass;
        log.info(`${commits} commits landed during the last pass; lock-free pass ${pass} rewrote ${formatBytes(rewritten)} in ${formatMs(performance.now() - passStarted)}.`);
      }

      // The helper thread is up and running before the lock is taken: starting one takes tens of milliseconds.
      const helper = size >= PARALLEL_FROM ? await FinalPassHelper.start() : undefined;
      let final: { result: { rewritten: number; expected: number; fingerprint: DatabaseFingerprint }; ms: number; waitMs: number };
      try {
        final = await this.underWriterLock(async () => {
          const pageSize = this.db.pragma('page_size', { simple: true }) as number;
          const pageCount = this.db.pragma('page_count', { simple: true }) as number;
          const expected = pageSize * pageCount;
          const actual = fs.fstatSync(this.fd).size;
          if (actual < expected) {
            throw new SqliteFileError(
              `${this.file} is ${actual} bytes but SQLite counts ${pageCount} pages of ${pageSize} bytes (${expected}): the file is damaged. Check it with PRAGMA integrity_check.`,
              'corrupt',
              this.file,
            );
          }
          this.options.onProgress?.({ phase: 'final', done: 0, total: expected });
          // Two halves, one per thread; nothing else runs on this thread until both are done.
          const split = helper ? Math.floor(expected / 2 / io.CHUNK) * io.CHUNK : expected;
          const theirs = helper && split < expected ? helper.refreshRange(this.fd, out, split, expected) : Promise.resolve(0);
          const mine = refreshNow(this.fd, out, split);
          const rewritten = mine + (await theirs);
          fs.ftruncateSync(out, expected);
          // Still under the lock: the copy is now the database at this instant, and so is the
          // fingerprint. No commit can land while the lock is held (a writer needs EXCLUSIVE to
          // write the file), so the header read here is exactly the copy's state.
          const head = Buffer.alloc(HEADER_BYTES);
          io.readFully(this.fd, head, HEADER_BYTES, 0);
          this.options.onProgress?.({ phase: 'final', done: expected, total: expected });
          return { rewritten, expected, fingerprint: fingerprintFromBytes({ header: head }) };
        });
      } finally {
        helper?.stop();
      }
      outcome.bytesRead += final.result.expected;
      outcome.rewrittenUnderLock = final.result.rewritten;
      outcome.lockMs = final.ms;
      outcome.lockWaitMs = final.waitMs;
      log.info(
        `Final pass under ${this.readOnly ? 'a read lock' : 'BEGIN IMMEDIATE'} (got it in ${formatMs(final.waitMs)}): compared ${formatBytes(final.result.expected)}, ` +
          `rewrote ${formatBytes(final.result.rewritten)}; writers could wait ${formatMs(final.ms)}.`,
      );
      return { ...outcome, fingerprint: final.result.fingerprint };
    } finally {
      fs.closeSync(out);
    }
  }

  /**
   * The fingerprint's instant in WAL mode: the copy holds the database file as copied plus the
   * copied -wal up to its last whole commit (see foldWal), so the fingerprint records the copied
   * -wal's generation and the number of frames SQLite recovers from it — exactly what the backup
   * holds, whatever was committed while the files were copied. The database file's header and
   * modification time are read at the end of the read transaction: while it is open, checkpoints
   * write only frames the copied -wal also holds, so every write before that read is in the
   * backup, and any later one shows as "changed" (a false alarm at worst, never a missed change).
   */
  private async copyWal(target: string): Promise<CopyOutcome> {
    const { log } = this.options;
    const outcome: Omit<CopyOutcome, 'fingerprint'> = { journal: 'wal', bytesRead: 0, refinePasses: 0, rewrittenUnderLock: 0, lockMs: 0, lockWaitMs: 0, readTransactionMs: 0, walBytes: 0 };
    const walSource = `${this.file}-wal`;
    const walTarget = `${target}-wal`;
    const header = Buffer.alloc(HEADER_BYTES);
    let modified: bigint;
    const started = performance.now();
    this.db.exec('BEGIN');
    try {
      // The first read fixes the snapshot and takes a WAL read mark until COMMIT.
      try {
        this.db.prepare('SELECT count(*) FROM sqlite_schema').get();
      } catch (err) {
        throw describeOpenError(err, this.file, this.options.busyTimeoutMs);
      }
      const size = fs.fstatSync(this.fd).size;
      await bulkCopy(this.file, this.fd, target, size, new Pacer('copy', size, this.options.onProgress), true);
      outcome.bytesRead += size;
      fs.rmSync(walTarget, { force: true });
      let walSize = 0;
      try {
        walSize = fs.statSync(walSource).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      if (walSize) {
        // The -wal has no lock bytes, and what it holds beyond its last whole commit is ignored by the recovery.
        await fs.promises.copyFile(walSource, walTarget);
        outcome.walBytes = fs.statSync(walTarget).size;
        outcome.bytesRead += outcome.walBytes;
      }
      // Through the descriptor already open: this process must not open and close the database file now.
      io.readFully(this.fd, header, HEADER_BYTES, 0);
      modified = ticksFromNs(fs.fstatSync(this.fd, { bigint: true }).mtimeNs);
      await new Promise((resolve) => setTimeout(resolve, MTIME_SETTLE_MS));
    } finally {
      this.db.exec('COMMIT');
      outcome.readTransactionMs = performance.now() - started;
    }
    log.info(
      `Copied ${formatBytes(outcome.bytesRead - outcome.walBytes)} and ${formatBytes(outcome.walBytes)} of -wal inside one read transaction ` +
        `(${formatMs(outcome.readTransactionMs)}; WAL readers do not block writers).`,
    );
    const walHeader = outcome.walBytes ? readStart(walTarget, WAL_HEADER_BYTES) : undefined;
    this.options.onProgress?.({ phase: 'fold', done: 0, total: outcome.walBytes });
    const walFrames = foldWal(target);
    return { ...outcome, fingerprint: fingerprintFromBytes({ header, walHeader, walFrames, modified }) };
  }

  /**
   * Runs `work` inside BEGIN IMMEDIATE, always ending with ROLLBACK (we never write). A read-only
   * source gets a read lock instead. Waiting for the lock holds nothing: SQLite releases its
   * SHARED lock between the busy handler's tries.
   */
  private async underWriterLock<T>(work: () => Promise<T>): Promise<{ result: T; ms: number; waitMs: number }> {
    const waitStarted = performance.now();
    try {
      if (this.readOnly) {
        this.db.exec('BEGIN');
        this.db.prepare('SELECT count(*) FROM sqlite_schema').get();
      } else {
        await this.beginImmediate();
      }
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw describeOpenError(err, this.file, this.options.busyTimeoutMs);
    }
    const locked = performance.now();
    const lockedAt = Date.now();
    try {
      const result = await work();
      return { result, ms: performance.now() - locked, waitMs: locked - waitStarted };
    } finally {
      this.db.exec('ROLLBACK');
      this.lockSpans.push({ what: this.readOnly ? 'final pass (read lock)' : 'final pass (BEGIN IMMEDIATE)', at: lockedAt, ms: performance.now() - locked });
    }
  }

  /**
   * BEGIN IMMEDIATE, tried every few hundred microseconds until the busy timeout. SQLite's own
   * busy handler backs off to 100 ms between tries, while an app committing back to back takes the
   * lock again microseconds after releasing it: we would lose every race and time out. Trying
   * often, at random moments, lands in the gaps between its commits. The app is not slowed: a
   * failed try holds nothing.
   */
  private async beginImmediate(): Promise<void> {
    const deadline = performance.now() + this.options.busyTimeoutMs;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    this.db.pragma('busy_timeout = 0');
    try {
      for (;;) {
        const batchEnd = performance.now() + 20;
        while (performance.now() < batchEnd) {
          try {
            this.db.exec('BEGIN IMMEDIATE');
            return;
          } catch (err) {
            if (this.db.inTransaction) this.db.exec('ROLLBACK');
            if (!isBusyError(err) || performance.now() > deadline) throw err;
          }
          Atomics.wait(pause, 0, 0, 0.1 + Math.random() * 0.2);
        }
        // Let timers and I/O run between batches (progress lines, a heartbeat).
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.db.pragma(`busy_timeout = ${this.options.busyTimeoutMs}`);
    }
  }

  /** Runs `work` inside a read transaction (SHARED lock in rollback mode), held only as long as `work` runs. */
  private underReadLock<T>(what: string, work: () => T): T {
    this.db.exec('BEGIN');
    const started = performance.now();
    const startedAt = Date.now();
    try {
      try {
        this.db.prepare('SELECT count(*) FROM sqlite_schema').get();
      } catch (err) {
        throw describeOpenError(err, this.file, this.options.busyTimeoutMs);
      }
      return work();
    } finally {
      this.db.exec('COMMIT');
      this.lockSpans.push({ what, at: startedAt, ms: performance.now() - started });
    }
  }

  /** The header's change counter, read without a lock: a hint of how many commits landed, nothing more. */
  private rawChangeCounter(): number {
    const b = Buffer.alloc(4);
    io.readFully(this.fd, b, 4, 24);
    return b.readUInt32BE(0);
  }
}

/**
 * Makes a copied WAL database one file: SQLite recovers the copied -wal (up to its last whole
 * commit) and checkpoints it into the copy; closing the only connection removes -wal and -shm.
 * Returns the frames the recovery found: a PASSIVE checkpoint reports them (a TRUNCATE one reports
 * the emptied log), and with no other connection it copies them all.
 */
function foldWal(target: string): number {
  const db = openDatabase(target, { fileMustExist: true });
  try {
    const [passive] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number; log: number; checkpointed: number }>;
    const [result] = db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number; checkpointed: number }>;
    if (passive.busy || result.busy) throw new Error(`could not checkpoint the copied WAL into ${target} (busy): is another process opening the backup's temporary file?`);
    return Math.max(0, passive.log);
  } finally {
    db.close();
  }
}

/** The first bytes of a file of ours (never the live database: see bulkCopy). */
function readStart(file: string, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    return buf.subarray(0, fs.readSync(fd, buf, 0, length, 0));
  } finally {
    fs.closeSync(fd);
  }
}

function canWrite(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** A journal whose first 8 bytes are the magic number is one a writer still needs (or a hot one). */
function journalHeaderIsLive(journal: string): boolean {
  try {
    const fd = fs.openSync(journal, 'r');
    try {
      const b = Buffer.alloc(8);
      return fs.readSync(fd, b, 0, 8, 0) === 8 && b.equals(Buffer.from([0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7]));
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}

function describeOpenError(err: unknown, file: string, busyTimeoutMs: number): Error {
  if (err instanceof SqliteFileError || err instanceof SqliteBackupError) return err;
  const code = String((err as { code?: unknown }).code ?? '');
  const message = (err as Error).message;
  if (isBusyError(err)) {
    return new SqliteBackupError(
      `${file} stayed locked for the whole busy timeout (${busyTimeoutMs} ms): another process holds a write lock — a long write transaction, ` +
        `a hot journal being recovered, or a connection in locking_mode=EXCLUSIVE. Nothing was written. Run the backup again later, or raise the busy timeout.`,
      'busy',
    );
  }
  if (code === 'SQLITE_CANTOPEN' || code === 'SQLITE_PERM' || code === 'SQLITE_AUTH') {
    return new SqliteFileError(`${file} cannot be opened by SQLite (${message}): check the permissions of the file and its folder.`, 'unreadable', file);
  }
  if (code.startsWith('SQLITE_READONLY')) {
    return new SqliteFileError(
      `${file} needs recovery (a hot journal or WAL left by a crash) but this process cannot write it (${message}). Run the backup as a user that can write the database, or let the app open it first.`,
      'unreadable',
      file,
    );
  }
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
    return new SqliteFileError(`${file} is damaged: SQLite says "${message}". Check it with PRAGMA integrity_check.`, 'corrupt', file);
  }
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * The bulk copy: the operating system's file copy (copy_file_range on Linux, or a clone where the
 * file system can), which costs a fraction of the CPU of copying through this process, and runs
 * off the main thread, reporting progress from the copy's size.
 *
 * On POSIX, closing any descriptor of a file releases every lock this process holds on it,
 * SQLite's included. So while SQLite holds a lock on the database (`sqliteHoldsLocks`: the WAL
 * read transaction), the file is copied by a child process, which has locks of its own; with no
 * lock held (before the rollback-journal final pass), by this process. On Windows locks belong to
 * a handle, but a file past 1 GiB holds SQLite's lock bytes, which a plain copy cannot read while
 * the app holds a lock: it is copied here through the already open descriptor, those bytes as zeros.
 */
async function bulkCopy(sourceFile: string, sourceFd: number, target: string, size: number, pacer: Pacer, sqliteHoldsLocks: boolean): Promise<void> {
  await pacer.step(0);
  const windows = process.platform === 'win32';
  if (windows && size > io.LOCK_START) return copyThroughDescriptor(sourceFd, target, size, pacer);
  if (!windows && sqliteHoldsLocks && size < CHILD_COPY_FROM) return copyThroughDescriptor(sourceFd, target, size, pacer);
  const poll = setInterval(() => {
    fs.stat(target, (err, st) => {
      if (!err) void pacer.step(st.size);
    });
  }, 1000);
  try {
    if (!windows && sqliteHoldsLocks) await copyInChildProcess(sourceFile, target);
    else await fs.promises.copyFile(sourceFile, target, fs.constants.COPYFILE_FICLONE);
  } finally {
    clearInterval(poll);
  }
}

/** Copies a file in a child process (see bulkCopy for why). */
function copyInChildProcess(sourceFile: string, target: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const code = "const fs = require('node:fs'); fs.copyFileSync(process.argv[1], process.argv[2], fs.constants.COPYFILE_FICLONE);";
    const child = spawn(process.execPath, ['-e', code, sourceFile, target], { stdio: ['ignore', 'ignore', 'pipe'], windowsHide: true });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.once('error', reject);
    child.once('exit', (exitCode, signal) => {
      if (exitCode === 0) resolve();
      else reject(new Error(`copying ${sourceFile} to ${target} in a child process failed (${signal ?? `exit code ${exitCode}`}): ${stderr.trim().split('\n').pop()}`));
    });
  });
}

/** Copies through an open descriptor, chunk by chunk, SQLite's lock bytes as zeros; never closes the source. */
async function copyThroughDescriptor(sourceFd: number, target: string, size: number, pacer: Pacer): Promise<void> {
  const out = fs.openSync(target, 'w+');
  try {
    const buf = Buffer.allocUnsafe(io.CHUNK);
    for (let pos = 0; pos < size; pos += io.CHUNK) {
      const len = Math.min(io.CHUNK, size - pos);
      io.readLive(sourceFd, buf, len, pos);
      io.writeFully(out, buf, len, pos);
      await pacer.step(pos + len);
    }
  } finally {
    fs.closeSync(out);
  }
}

/** Rewrites the blocks of the copy that differ from the live file, yielding now and then; returns bytes rewritten. */
async function refreshBytes(from: number, to: number, size: number, pacer: Pacer): Promise<number> {
  const live = Buffer.allocUnsafe(io.CHUNK);
  const copy = Buffer.allocUnsafe(io.CHUNK);
  let rewritten = 0;
  for (let pos = 0; pos < size; pos += io.CHUNK) {
    rewritten += io.refreshChunk(from, to, live, copy, Math.min(io.CHUNK, size - pos), pos);
    await pacer.step(pos + io.CHUNK);
  }
  return rewritten;
}

/** refreshBytes of [0, size) without yielding: the final pass holds a lock and must not wait for anything else. */
function refreshNow(from: number, to: number, size: number): number {
  const live = Buffer.allocUnsafe(io.CHUNK);
  const copy = Buffer.allocUnsafe(io.CHUNK);
  let rewritten = 0;
  for (let pos = 0; pos < size; pos += io.CHUNK) rewritten += io.refreshChunk(from, to, live, copy, Math.min(io.CHUNK, size - pos), pos);
  return rewritten;
}

/** Yields to the event loop every ~50 ms of work and reports progress about once a second. */
class Pacer {
  private lastYield = performance.now();
  private lastReport = -Infinity;
  constructor(
    private readonly phase: BackupPhase,
    private readonly total: number,
    private readonly onProgress?: ProgressListener,
  ) {}

  async step(done: number): Promise<void> {
    const now = performance.now();
    if (this.onProgress && now - this.lastReport >= 1000) {
      this.lastReport = now;
      this.onProgress({ phase: this.phase, done: Math.min(done, this.total), total: this.total });
    }
    if (now - this.lastYield >= 50) {
      await new Promise((resolve) => setImmediate(resolve));
      this.lastYield = performance.now();
    }
  }
}
