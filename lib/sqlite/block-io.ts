/**
 * Byte-level copy and compare of a live database file: whole reads and writes, SQLite's lock
 * bytes read as zeros, and the compare-and-rewrite of one chunk that the backup's refining and
 * final passes are made of. It is one self-contained function (it uses nothing but its argument)
 * so that the final pass can run the same code in a worker thread, from its source text: the
 * tasks are bundled into one file, where a worker script of its own would not exist.
 *
 * @example
 *   const rewritten = io.refreshRange(liveFd, copyFd, 0, size);   // bytes that differed, now rewritten
 *   const helper = await FinalPassHelper.start();        // a worker, started before taking a lock
 *   const [mine, theirs] = await Promise.all([..., helper.refreshRange(src, copy, half, size)]);
 *   helper.stop();
 */
import * as fs from 'node:fs';
import { Worker } from 'node:worker_threads';

export function blockIo(fsm: typeof fs) {
  /** I/O size of the copy loops. */
  const CHUNK = 4 << 20;
  /** Granularity of the rewrite when a chunk differs: a few changed pages cost a few blocks. */
  const BLOCK = 64 << 10;
  /**
   * SQLite's lock bytes (PENDING, RESERVED and the SHARED range) at 1 GiB. On Windows they are
   * mandatory byte-range locks, so reading them fails while anyone holds a lock; SQLite never
   * stores data on the page that holds them, so zeros are a faithful copy.
   */
  const PENDING_BYTE = 0x4000_0000;
  const LOCK_END = PENDING_BYTE + 512;

  /** Reads `length` bytes at `position`; what lies beyond the end of the file reads as zeros. */
  function readFully(fd: number, buf: Buffer, length: number, position: number): void {
    let done = 0;
    while (done < length) {
      const n = fsm.readSync(fd, buf, done, length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    buf.fill(0, done, length);
  }

  /** readFully, with SQLite's lock bytes read as zeros. */
  function readLive(fd: number, buf: Buffer, length: number, position: number): void {
    const end = position + length;
    if (end <= PENDING_BYTE || position >= LOCK_END) return readFully(fd, buf, length, position);
    const before = Math.max(0, PENDING_BYTE - position);
    if (before) readFully(fd, buf, before, position);
    const after = Math.max(0, end - LOCK_END);
    buf.fill(0, before, length - after);
    if (after) readFully(fd, buf.subarray(length - after), after, LOCK_END);
  }

  function writeFully(fd: number, buf: Buffer, length: number, position: number): void {
    let done = 0;
    while (done < length) done += fsm.writeSync(fd, buf, done, length - done, position + done);
  }

  /** Compares one chunk of the live file with the copy and rewrites the blocks that differ; returns bytes rewritten. */
  function refreshChunk(from: number, to: number, live: Buffer, copy: Buffer, length: number, position: number): number {
    readLive(from, live, length, position);
    readFully(to, copy, length, position);
    // Bytes, not checksums: a changed block can never pass as unchanged.
    if (live.subarray(0, length).equals(copy.subarray(0, length))) return 0;
    let rewritten = 0;
    for (let b = 0; b < length; b += BLOCK) {
      const e = Math.min(length, b + BLOCK);
      if (!live.subarray(b, e).equals(copy.subarray(b, e))) {
        writeFully(to, live.subarray(b, e), e - b, position + b);
        rewritten += e - b;
      }
    }
    return rewritten;
  }

  /**
   * refreshChunk over [start, end) of two open descriptors (positional reads and writes, so two
   * threads can share them). It never opens or closes the live file: see FinalPassHelper.
   */
  function refreshRange(from: number, to: number, start: number, end: number): number {
    const live = Buffer.allocUnsafe(CHUNK);
    const copy = Buffer.allocUnsafe(CHUNK);
    let rewritten = 0;
    for (let pos = start; pos < end; pos += CHUNK) rewritten += refreshChunk(from, to, live, copy, Math.min(CHUNK, end - pos), pos);
    return rewritten;
  }

  return { CHUNK, LOCK_START: PENDING_BYTE, readFully, readLive, writeFully, refreshChunk, refreshRange };
}

export const io = blockIo(fs);

const HELPER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const io = (${blockIo.toString()})(require('node:fs'));
parentPort.postMessage({ ready: true });
parentPort.on('message', (m) => {
  try {
    parentPort.postMessage({ rewritten: io.refreshRange(m.from, m.to, m.start, m.end) });
  } catch (err) {
    parentPort.postMessage({ error: String((err && err.message) || err) });
  }
});
`;

/**
 * A second thread for the final pass, which reads the whole file while the app's writers wait:
 * two threads halve that wait on a machine with a spare core. Start it before taking the lock
 * (a worker takes tens of milliseconds to start).
 *
 * It works on the caller's descriptors and never opens or closes the database file itself: on
 * POSIX, closing any descriptor of a file releases every lock the process holds on it, SQLite's
 * RESERVED lock included, and the app's writers would commit in the middle of the final pass.
 */
export class FinalPassHelper {
  private constructor(private readonly worker: Worker) {}

  /** Resolves once the thread is running and ready to take work. */
  static start(): Promise<FinalPassHelper> {
    const worker = new Worker(HELPER_SOURCE, { eval: true });
    worker.unref();
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', () => {
        worker.off('error', reject);
        resolve(new FinalPassHelper(worker));
      });
    });
  }

  refreshRange(from: number, to: number, start: number, end: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number) => reject(new Error(`the final-pass helper thread stopped (exit code ${code})`));
      this.worker.once('exit', onExit);
      this.worker.once('error', reject);
      this.worker.once('message', (m: { rewritten?: number; error?: string }) => {
        this.worker.off('exit', onExit);
        this.worker.off('error', reject);
        if (m.error !== undefined) reject(new Error(`comparing the database with its copy failed: ${m.error}`));
        else resolve(m.rewritten ?? 0);
      });
      this.worker.postMessage({ from, to, start, end });
    });
  }

  stop(): void {
    void this.worker.terminate();
  }
}
