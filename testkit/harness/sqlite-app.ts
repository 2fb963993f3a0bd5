/**
 * A stand-in for an app that uses a SQLite database, run in processes of its own so that locks
 * are taken between processes as in production. Writers commit transactions whose rows make a
 * torn copy detectable; readers read; every operation's latency is recorded.
 *
 * Each writer commit moves money between two accounts (the sum never changes), appends a ledger
 * row with a running total, bumps two counters, and rewrites a random post (a random place in a
 * large file) stamping it with the ledger row's number. A copy that mixes two instants breaks one
 * of these equalities; `checkAppDatabase` checks them all.
 *
 * @example
 *   createAppDatabase(file, { journal: 'delete', sizeMb: 40 });
 *   const writer = await AppProcess.start({ file, role: 'writer', rate: 100 });
 *   ...
 *   const stats = await writer.stop();   // latencies, errors
 *   checkAppDatabase(copy);              // throws when the copy is torn
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';

/** The compiled backup CLI (lib/sqlite/cli.ts). */
export const BACKUP_CLI = path.resolve(__dirname, '..', '..', 'lib', 'sqlite', 'cli.js');

export const ACCOUNTS = 20;
export const INITIAL_BALANCE = 1000;
/** Bytes of a post's body: a 4 KiB page holds about three. */
const POST_BYTES = 1200;

export interface AppDatabaseOptions {
  journal: 'delete' | 'truncate' | 'persist' | 'wal';
  /** Approximate size, made of posts. */
  sizeMb: number;
}

/** Creates the app's schema and fills it with posts up to about `sizeMb`. */
export function createAppDatabase(file: string, options: AppDatabaseOptions): { posts: number } {
  for (const suffix of ['', '-wal', '-shm', '-journal']) fs.rmSync(file + suffix, { force: true });
  const db = new Database(file);
  try {
    db.pragma(`journal_mode = ${options.journal}`);
    db.pragma('synchronous = OFF'); // only while filling; the app processes use their own settings
    db.exec(`
      CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
      CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
      CREATE TABLE ledger (seq INTEGER PRIMARY KEY, post_id INTEGER NOT NULL, amount INTEGER NOT NULL, running INTEGER NOT NULL);
      CREATE TABLE posts (id INTEGER PRIMARY KEY, version INTEGER NOT NULL DEFAULT 0, slug TEXT NOT NULL, body BLOB NOT NULL);
      CREATE INDEX posts_slug ON posts (slug);
      INSERT INTO counters VALUES ('ops', 0), ('total', 0);
    `);
    const accounts = db.prepare('INSERT INTO accounts (id, balance) VALUES (?, ?)');
    for (let i = 1; i <= ACCOUNTS; i++) accounts.run(i, INITIAL_BALANCE);
    // About 1.17 × the body per post on disk (row header, slug, index entry, page slack): measured.
    const posts = Math.max(10, Math.round((options.sizeMb * 1024 * 1024) / (POST_BYTES * 1.17)));
    // Compressible bodies, like text: random hex with runs of spaces.
    db.exec(`
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${posts})
      INSERT INTO posts (id, slug, body)
      SELECT i, 'post-' || i || '-' || hex(randomblob(6)), CAST(substr(replace(hex(randomblob(${POST_BYTES / 2})), 'A', '    '), 1, ${POST_BYTES}) AS BLOB) FROM n;
    `);
    return { posts };
  } finally {
    db.close();
  }
}

export interface AppState {
  /** Commits in the database (the last ledger row). */
  ops: number;
  total: number;
  /** SHA-256 of the ledger, for comparing a copy with the source's ledger up to `ops`. */
  ledgerSha256: string;
}

/**
 * Checks that a database (a backup) is one instant of the app: integrity_check, the balances'
 * sum, counters against the ledger, the running total, and each post's stamp against the last
 * ledger row that touched it. Throws with what is wrong.
 */
export function checkAppDatabase(file: string): AppState {
  const db = new Database(file, { fileMustExist: true });
  try {
    const integrity = db.pragma('integrity_check', { simple: true });
    if (integrity !== 'ok') throw new Error(`${file}: integrity_check says ${integrity}`);
    const sum = db.prepare('SELECT sum(balance) FROM accounts').pluck().get() as number;
    if (sum !== ACCOUNTS * INITIAL_BALANCE) throw new Error(`${file}: balances sum to ${sum}, not ${ACCOUNTS * INITIAL_BALANCE}`);
    const counter = (name: string) => db.prepare('SELECT value FROM counters WHERE name = ?').pluck().get(name) as number;
    const ops = counter('ops');
    const total = counter('total');
    const ledger = db.prepare('SELECT count(*) AS n, coalesce(max(seq), 0) AS last, coalesce(sum(amount), 0) AS total FROM ledger').get() as { n: number; last: number; total: number };
    if (ledger.n !== ops || ledger.last !== ops) throw new Error(`${file}: counter ops=${ops} but the ledger has ${ledger.n} rows ending at ${ledger.last}`);
    if (ledger.total !== total) throw new Error(`${file}: counter total=${total} but the ledger sums to ${ledger.total}`);
    const running = (db.prepare('SELECT running FROM ledger WHERE seq = ?').pluck().get(ops) as number | undefined) ?? 0;
    if (running !== total) throw new Error(`${file}: the last ledger row's running total is ${running}, the counter ${total}`);
    const badPost = db
      .prepare(
        `SELECT p.id, p.version, coalesce(m.last, 0) AS expected FROM posts p
         LEFT JOIN (SELECT post_id, max(seq) AS last FROM ledger GROUP BY post_id) m ON m.post_id = p.id
         WHERE p.version != coalesce(m.last, 0) LIMIT 1`,
      )
      .get() as { id: number; version: number; expected: number } | undefined;
    if (badPost) throw new Error(`${file}: post ${badPost.id} has version ${badPost.version}, but the ledger says ${badPost.expected}`);
    return { ops, total, ledgerSha256: ledgerHash(db, ops) };
  } finally {
    db.close();
  }
}

/** SHA-256 of the ledger's first `upTo` rows: equal in a copy and its source when the copy is the source at one instant. */
export function ledgerSha256(file: string, upTo: number): string {
  const db = new Database(file, { fileMustExist: true, readonly: true });
  try {
    return ledgerHash(db, upTo);
  } finally {
    db.close();
  }
}

function ledgerHash(db: Database.Database, upTo: number): string {
  const hash = crypto.createHash('sha256');
  for (const row of db.prepare('SELECT seq, post_id, amount, running FROM ledger WHERE seq <= ? ORDER BY seq').raw().iterate(upTo)) hash.update((row as number[]).join(',') + ';');
  return hash.digest('hex');
}

export type AppRole = 'writer' | 'reader';

export interface AppOptions {
  file: string;
  role: AppRole;
  /** Operations per second; 0 = back to back. */
  rate: number;
  /** The app's busy timeout. Default 10 000 ms. */
  busyTimeoutMs?: number;
  /** Writers: `BEGIN IMMEDIATE` (default) or a deferred transaction that reads first. */
  transaction?: 'immediate' | 'deferred';
  /** Writers: PRAGMA wal_autocheckpoint (pages), to make checkpoints frequent. */
  walAutocheckpoint?: number;
  /** Writers: PRAGMA synchronous. Default NORMAL. */
  synchronous?: 'OFF' | 'NORMAL' | 'FULL';
}

export interface AppStats {
  role: AppRole;
  ops: number;
  errors: Record<string, number>;
  /** When each failed operation failed (epoch ms). */
  errorsAt: number[];
  /** Per operation: when it was due (epoch ms) and its latency from then (ms), so waiting behind a stalled operation counts. */
  due: number[];
  latency: number[];
}

const running = new Set<ChildProcess>();

/** An app process; `stop()` ends it and returns what it measured. */
export class AppProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly options: AppOptions,
  ) {}

  static async start(options: AppOptions): Promise<AppProcess> {
    const child = fork(__filename, [JSON.stringify(options)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    running.add(child);
    child.once('exit', () => running.delete(child));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${options.role} did not start within 10 s`)), 10_000);
      child.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${options.role} exited with ${code} before it was ready`));
      });
    });
    return new AppProcess(child, options);
  }

  /** Stops the app and returns its measurements (bounded: 10 s, then it is killed). */
  async stop(): Promise<AppStats> {
    const stats = new Promise<AppStats>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.kill();
        reject(new Error(`${this.options.role} did not stop within 10 s`));
      }, 10_000);
      this.child.once('message', (m) => {
        clearTimeout(timer);
        resolve(m as AppStats);
      });
    });
    this.child.send('stop');
    return stats;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/** Kills every app process still running (for afterEach). */
export function killAllApps(): void {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  running.clear();
}

/**
 * A connection in a process of its own that runs some SQL and keeps what it holds (an open
 * transaction's locks, a -wal, a TRUNCATE-mode journal) until closed. The backup must not share
 * a process with a connection to the same database (see lib/sqlite/backup.ts), so tests that need
 * "the app has it open" use this.
 */
export class ConnectionProcess {
  private constructor(private readonly child: ChildProcess) {}

  static async open(file: string, statements: string[]): Promise<ConnectionProcess> {
    const child = fork(__filename, [JSON.stringify({ file, hold: statements })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    running.add(child);
    child.once('exit', () => running.delete(child));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the connection process did not start within 10 s')), 10_000);
      child.once('message', (m) => {
        clearTimeout(timer);
        if (m === 'ready') resolve();
        else reject(new Error(String(m)));
      });
    });
    return new ConnectionProcess(child);
  }

  /** Closes the connection (an open transaction rolls back) and waits for the process to end. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    this.child.send('close');
    await exited;
    clearTimeout(timer);
  }
}

export interface WriteProbe {
  deferredReadThenWrite: { outcome: string; ms: number };
  autocommitWrite: { outcome: string; ms: number };
  immediateTransaction: { outcome: string; ms: number };
  read: { outcome: string; ms: number };
}

/** Tries each kind of write once from another process, with the given busy timeout; synchronous, for use while a lock is held. */
export function probeWrites(file: string, busyTimeoutMs: number): WriteProbe {
  const result = spawnSync(process.execPath, [__filename, JSON.stringify({ file, probe: true, busyTimeoutMs })], { encoding: 'utf8', timeout: 30_000 });
  if (result.status !== 0) throw new Error(`write probe failed: ${result.stderr || result.error}`);
  return JSON.parse(result.stdout) as WriteProbe;
}

// ---- the child process ----

function childMain(options: AppOptions & { probe?: boolean; hold?: string[] }): void {
  const db = new Database(options.file, { fileMustExist: true, timeout: options.busyTimeoutMs ?? 10_000 });
  if (options.hold) {
    try {
      for (const sql of options.hold) db.exec(sql);
    } catch (err) {
      process.send!(`could not run the statements: ${(err as Error).message}`);
      process.exit(1);
    }
    process.on('message', () => {
      db.close();
      process.exit(0);
    });
    process.on('disconnect', () => process.exit(0));
    process.send!('ready');
    return;
  }
  if (options.probe) {
    process.stdout.write(JSON.stringify(runProbe(db)));
    db.close();
    return;
  }
  db.pragma(`synchronous = ${options.synchronous ?? 'NORMAL'}`);
  if (options.walAutocheckpoint !== undefined) db.pragma(`wal_autocheckpoint = ${options.walAutocheckpoint}`);
  const posts = db.prepare('SELECT max(id) FROM posts').pluck().get() as number;
  const op = options.role === 'writer' ? writerOp(db, posts, options.transaction ?? 'immediate') : readerOp(db, posts);
  const stats: AppStats = { role: options.role, ops: 0, errors: {}, errorsAt: [], due: [], latency: [] };
  const interval = options.rate > 0 ? 1000 / options.rate : 0;
  const start = now();
  let stopping = false;
  process.on('message', () => (stopping = true));
  process.on('disconnect', () => process.exit(0));
  const tick = (i: number) => {
    if (stopping) {
      db.close();
      process.send!(stats, () => process.exit(0));
      return;
    }
    const due = interval ? start + i * interval : now();
    try {
      op();
      stats.ops++;
    } catch (err) {
      const code = (err as { code?: string }).code ?? (err as Error).message;
      stats.errors[code] = (stats.errors[code] ?? 0) + 1;
      stats.errorsAt.push(now());
    }
    stats.due.push(due);
    stats.latency.push(now() - due);
    const next = interval ? start + (i + 1) * interval - now() : 0;
    if (next > 0) setTimeout(() => tick(i + 1), next);
    else setImmediate(() => tick(i + 1));
  };
  process.send!('ready');
  tick(0);
}

function writerOp(db: Database.Database, posts: number, style: 'immediate' | 'deferred'): () => void {
  const random = (n: number) => 1 + Math.floor(Math.random() * n);
  const debit = db.prepare('UPDATE accounts SET balance = balance - ? WHERE id = ?');
  const credit = db.prepare('UPDATE accounts SET balance = balance + ? WHERE id = ?');
  const total = db.prepare("SELECT value FROM counters WHERE name = 'total'").pluck();
  const append = db.prepare('INSERT INTO ledger (post_id, amount, running) VALUES (?, ?, ?)');
  const bump = db.prepare('UPDATE counters SET value = value + ? WHERE name = ?');
  const stamp = db.prepare(`UPDATE posts SET version = ?, body = CAST(substr(replace(hex(randomblob(${POST_BYTES / 2})), 'A', '    '), 1, ${POST_BYTES}) AS BLOB) WHERE id = ?`);
  const commit = db.transaction(() => {
    const amount = random(100);
    const post = random(posts);
    const running = (total.get() as number) + amount;
    debit.run(amount, random(ACCOUNTS));
    credit.run(amount, random(ACCOUNTS));
    const seq = append.run(post, amount, running).lastInsertRowid;
    bump.run(1, 'ops');
    bump.run(amount, 'total');
    stamp.run(seq, post);
  });
  // A deferred transaction reads (total.get) before its first write: the style the caveat is about.
  return style === 'immediate' ? () => commit.immediate() : () => commit.deferred();
}

function readerOp(db: Database.Database, posts: number): () => void {
  const counter = db.prepare("SELECT value FROM counters WHERE name = 'ops'").pluck();
  const post = db.prepare('SELECT version, length(body) FROM posts WHERE id = ?');
  return () => {
    counter.get();
    post.get(1 + Math.floor(Math.random() * posts));
  };
}

function runProbe(db: Database.Database): WriteProbe {
  const attempt = (fn: () => void) => {
    const t = now();
    try {
      fn();
      return { outcome: 'ok', ms: now() - t };
    } catch (err) {
      if (db.inTransaction) db.exec('ROLLBACK');
      return { outcome: (err as { code?: string }).code ?? (err as Error).message, ms: now() - t };
    }
  };
  return {
    deferredReadThenWrite: attempt(() => {
      db.exec('BEGIN');
      db.prepare("SELECT value FROM counters WHERE name = 'ops'").get();
      db.prepare("UPDATE counters SET value = value WHERE name = 'ops'").run();
      db.exec('COMMIT');
    }),
    autocommitWrite: attempt(() => db.prepare("UPDATE counters SET value = value WHERE name = 'ops'").run()),
    immediateTransaction: attempt(() => {
      db.exec('BEGIN IMMEDIATE');
      db.prepare("UPDATE counters SET value = value WHERE name = 'ops'").run();
      db.exec('COMMIT');
    }),
    read: attempt(() => db.prepare("SELECT value FROM counters WHERE name = 'ops'").get()),
  };
}

function now(): number {
  return performance.timeOrigin + performance.now();
}

if (require.main === module) childMain(JSON.parse(process.argv[2]) as AppOptions & { probe?: boolean; hold?: string[] });
