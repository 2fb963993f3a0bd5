/**
 * Follows a file that grows on the server (a WebJob's output_log.txt) with Range requests, and
 * hands each complete line over exactly once, however often it is polled and whatever breaks in
 * between: the offset only moves past bytes that arrived whole. Each poll reads at most a chunk,
 * a line that never ends is handed over in pieces, and `readToEnd` stops at the deadline: a log
 * that grows without end costs neither memory nor time beyond the task's.
 *
 * @example
 *   const tail = new LogTail(kudu, KuduClient.jobLogPath('backup', runId), (line) => log.external(line));
 *   while (!done) { await tail.poll(); await deadline.sleep(5000); }
 *   await tail.readToEnd(deadline); tail.flush();
 */
import type { Deadline } from '../deadline';
import type { RemotePath } from '../remote-path';
import type { KuduClient } from './client';

/** A line longer than this is handed over in pieces of this size. */
const MAX_LINE_BYTES = 64 * 1024;
/** Lines kept for an error message are cut to this many characters. */
const KEPT_LINE_CHARS = 2000;

export class LogTail {
  private offset = 0;
  private partial = Buffer.alloc(0);
  private readonly recent: string[] = [];

  constructor(
    private readonly kudu: KuduClient,
    private readonly file: RemotePath,
    private readonly onLine: (line: string) => void,
    private readonly keep = 30,
  ) {}

  /** Bytes of the log read so far. */
  get bytesRead(): number {
    return this.offset;
  }

  /** Reads what is new (one chunk at most) and emits the complete lines; returns the bytes read. Throws on failure; nothing is lost. */
  async poll(): Promise<number> {
    const { data } = await this.kudu.readFrom(this.file, this.offset);
    if (data.length === 0) return 0;
    this.offset += data.length;
    let text = Buffer.concat([this.partial, data]);
    const lastNewline = text.lastIndexOf(0x0a);
    if (lastNewline >= 0) {
      for (const line of text.subarray(0, lastNewline).toString('utf8').split('\n')) this.emit(line.replace(/\r$/, ''));
      text = text.subarray(lastNewline + 1);
    }
    while (text.length > MAX_LINE_BYTES) {
      this.emit(text.subarray(0, MAX_LINE_BYTES).toString('utf8'));
      text = text.subarray(MAX_LINE_BYTES);
    }
    this.partial = Buffer.from(text);
    return data.length;
  }

  /** Polls until nothing new arrives, or the deadline passes (then the rest is left unread). */
  async readToEnd(deadline: Deadline | undefined): Promise<void> {
    while (!deadline?.expired() && (await this.poll()) > 0);
  }

  /** Emits a last line that never got its newline. */
  flush(): void {
    if (this.partial.length > 0) this.emit(this.partial.toString('utf8').replace(/\r$/, ''));
    this.partial = Buffer.alloc(0);
  }

  /** The last lines seen, for an error message. */
  lastLines(count = 10): string[] {
    return this.recent.slice(-count);
  }

  private emit(line: string): void {
    this.recent.push(line.length > KEPT_LINE_CHARS ? `${line.slice(0, KEPT_LINE_CHARS)}…` : line);
    if (this.recent.length > this.keep) this.recent.shift();
    this.onLine(line);
  }
}
