/**
 * Follows a file that grows on the server (a WebJob's output_log.txt) with Range requests, and
 * hands each complete line over exactly once, however often it is polled and whatever breaks in
 * between: the offset only moves past bytes that arrived whole.
 *
 * @example
 *   const tail = new LogTail(kudu, 'vfs/data/jobs/triggered/backup/2026.../output_log.txt', console.log);
 *   while (!done) { await tail.poll(); await sleep(5000); }
 *   await tail.poll(); tail.flush();
 */
import type { KuduClient } from './client';

export class LogTail {
  private offset = 0;
  private partial = Buffer.alloc(0);
  private readonly recent: string[] = [];

  constructor(
    private readonly kudu: KuduClient,
    private readonly vfsPath: string,
    private readonly onLine: (line: string) => void,
    private readonly keep = 30,
  ) {}

  /** Bytes of the log read so far. */
  get bytesRead(): number {
    return this.offset;
  }

  /** Reads what is new and emits the complete lines. Throws KuduError on failure; nothing is lost. */
  async poll(): Promise<void> {
    const { data } = await this.kudu.readFrom(this.vfsPath, this.offset);
    if (data.length === 0) return;
    this.offset += data.length;
    const text = Buffer.concat([this.partial, data]);
    const lastNewline = text.lastIndexOf(0x0a);
    if (lastNewline < 0) {
      this.partial = text;
      return;
    }
    this.partial = text.subarray(lastNewline + 1);
    for (const line of text.subarray(0, lastNewline).toString('utf8').split('\n')) this.emit(line.replace(/\r$/, ''));
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
    this.recent.push(line);
    if (this.recent.length > this.keep) this.recent.shift();
    this.onLine(line);
  }
}
