/**
 * The live blog in the demo: a process of its own (as Ghost is on App Service) that keeps
 * publishing posts and reading them from the live ghost.db, and times every operation, so the
 * demo can say how long the app waited while the backup ran.
 *
 * Run by demo/run.ts with `fork`; talks over IPC:
 *   → 'window' {from, to}  ← {ops, writes, maxMs, p99Ms, baselineP50Ms, errors}
 *   → 'write'              ← {id}   (one more post, on demand: the write the guard must catch)
 *   → 'stop'               ← exits
 */
import { randomBytes, randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';

interface Sample {
  at: number;
  ms: number;
  write: boolean;
}

export interface WindowStats {
  ops: number;
  writes: number;
  maxMs: number;
  p99Ms: number;
  baselineP50Ms: number;
  errors: string[];
}

function main(file: string): void {
  // Ghost's own connection: knex with better-sqlite3, one connection, a 5 s busy timeout.
  const db = new Database(file, { timeout: 5000 });
  const insert = db.prepare("INSERT INTO posts (id, uuid, title, slug, html, status, created_at) VALUES (?, ?, ?, ?, ?, 'published', datetime('now'))");
  const read = db.prepare('SELECT id, title, html FROM posts ORDER BY rowid DESC LIMIT 10');
  const samples: Sample[] = [];
  const errors: string[] = [];
  let n = 0;

  const write = (): string => {
    const id = randomBytes(12).toString('hex');
    insert.run(id, randomUUID(), `Post ${++n}`, `post-${n}-${id.slice(0, 6)}`, '<p>' + 'Lorem ipsum dolor sit amet. '.repeat(40) + '</p>');
    return id;
  };
  const timed = (what: () => unknown, isWrite: boolean) => {
    const started = performance.now();
    try {
      what();
    } catch (err) {
      errors.push(`${new Date().toISOString()} ${(err as Error).message}`);
    }
    samples.push({ at: Date.now(), ms: performance.now() - started, write: isWrite });
    if (samples.length > 200_000) samples.splice(0, 100_000);
  };

  // A busy small blog: 10 new posts and 40 page views a second.
  const writer = setInterval(() => timed(write, true), 100);
  const reader = setInterval(() => timed(() => read.all(), false), 25);

  process.on('message', (message: { kind: string; from?: number; to?: number }) => {
    if (message.kind === 'window') {
      const inside = samples.filter((s) => s.at >= message.from! && s.at <= message.to!);
      const before = samples.filter((s) => s.at < message.from!).map((s) => s.ms).sort((a, b) => a - b);
      const ms = inside.map((s) => s.ms).sort((a, b) => a - b);
      const stats: WindowStats = {
        ops: inside.length,
        writes: inside.filter((s) => s.write).length,
        maxMs: ms.length ? ms[ms.length - 1] : 0,
        p99Ms: ms.length ? ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.99))] : 0,
        baselineP50Ms: before.length ? before[Math.floor(before.length / 2)] : 0,
        errors: errors.filter((e) => Date.parse(e.slice(0, 24)) >= message.from! && Date.parse(e.slice(0, 24)) <= message.to!),
      };
      process.send!(stats);
    } else if (message.kind === 'write') {
      process.send!({ id: write() });
    } else if (message.kind === 'pause') {
      clearInterval(writer);
      process.send!({ paused: true });
    } else if (message.kind === 'stop') {
      clearInterval(writer);
      clearInterval(reader);
      db.close();
      process.exit(0);
    }
  });
  process.send!({ ready: true });
}

if (require.main === module) main(process.argv[2]);
