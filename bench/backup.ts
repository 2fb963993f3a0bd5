/**
 * Backup benchmark: this engine against the ways people back up a live SQLite database (the seeds'
 * one-step backup API, BEGIN IMMEDIATE + file copy, the sqlite3 CLI's .backup and VACUUM INTO with
 * and without a busy timeout) and a plain file copy, on a database the app keeps using — a writer
 * process committing 100 transactions/s and a reader process doing 200 reads/s, each timing every
 * operation. Both journal modes: rollback (DELETE) and WAL.
 *
 *   npm run bench:backup                       # 1 GiB, three interleaved rounds
 *   node out/bench/backup.js --size-mb 256 --rounds 3 --bound-s 60
 *
 * Writes bench/results/backup.json and bench/results/backup.md; deletes its data afterwards.
 *
 * A stall is latency above the same load's baseline: for each run, the app operations that overlap
 * the method's run; max stall = their worst latency − the baseline median, p99 stall = their p99 −
 * the baseline p99. The baseline is every operation outside all runs (with a margin). Latency is
 * measured from when an operation was due, so operations queued behind a stalled one count too.
 * Each method runs in a process of its own, killed at the bound. A method that hits the bound is
 * not run again in later rounds. Medians over rounds.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { backupSqlite } from '../lib/sqlite/backup';
import { AppProcess, checkAppDatabase, createAppDatabase, killAllApps, ledgerSha256, type AppStats } from '../testkit/harness/sqlite-app';

const SQLITE3_CLI = '/usr/bin/sqlite3';
const RESULTS = path.resolve(__dirname, '..', '..', 'bench', 'results');
const WRITES_PER_S = 100;
const READS_PER_S = 200;
const APP_BUSY_TIMEOUT_MS = 10_000;
/**
 * The app's PRAGMA synchronous. OFF, so that the baseline is the app's locking and not this
 * shared VM's fsync latency: with NORMAL, 100 commits/s in DELETE mode already queue readers for
 * seconds here, before any backup runs, and every method's stall drowns in it.
 */
const APP_SYNCHRONOUS = 'OFF';

type Mode = 'delete' | 'wal';

interface Method {
  id: string;
  label: string;
  /** Where the method comes from. */
  origin: string;
  run: (source: string, dest: string, boundMs: number) => Promise<MethodOutcome>;
}

interface MethodOutcome {
  completed: boolean;
  ms: number;
  error?: string;
  /** The engine's own figure for the longest writer-blocking lock. */
  engineMaxLockMs?: number;
  /** The engine's own breakdown of its time. */
  enginePhaseMs?: Record<string, number>;
}

const METHODS: Method[] = [
  { id: 'engine', label: 'this engine (verify none)', origin: 'lib/sqlite/backup.ts', run: (s, d, b) => inChild('engine', s, d, b) },
  { id: 'engine-integrity', label: 'this engine (integrity_check)', origin: 'lib/sqlite/backup.ts', run: (s, d, b) => inChild('engine-integrity', s, d, b) },
  { id: 'backup-api', label: 'backup API, one step', origin: 'seed 000 (C# BackupDatabase(…, -1, …))', run: (s, d, b) => inChild('backup-api', s, d, b) },
  { id: 'immediate-copy', label: 'BEGIN IMMEDIATE + file copy', origin: 'seeds 001, 003', run: (s, d, b) => inChild('immediate-copy', s, d, b) },
  { id: 'cli-backup', label: 'sqlite3 .backup', origin: 'seed 004', run: (s, d, b) => cli(s, [`.backup '${d}'`], b) },
  { id: 'cli-backup-timeout', label: 'sqlite3 .timeout 10000; .backup', origin: 'seed 004', run: (s, d, b) => cli(s, ['.timeout 10000', `.backup '${d}'`], b) },
  { id: 'cli-vacuum', label: 'sqlite3 VACUUM INTO', origin: 'seed 004', run: (s, d, b) => cli(s, [`VACUUM INTO '${d}'`], b) },
  { id: 'cli-vacuum-timeout', label: 'sqlite3 .timeout 10000; VACUUM INTO', origin: 'seed 004', run: (s, d, b) => cli(s, ['.timeout 10000', `VACUUM INTO '${d}'`], b) },
  { id: 'plain-copy', label: 'plain file copy + fsync (the floor)', origin: 'cp', run: (s, d, b) => inChild('plain-copy', s, d, b) },
];

// ---- the methods, each in a process of its own ----

/** Runs a method in `node backup.js --child <id>`, which times the operation itself (no process start-up). */
function inChild(id: string, source: string, dest: string, boundMs: number): Promise<MethodOutcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(process.execPath, [__filename, '--child', id, source, dest], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', (c: Buffer) => (err += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), boundMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal) return resolve({ completed: false, ms: performance.now() - started, error: `did not finish within ${boundMs / 1000} s` });
      try {
        resolve(JSON.parse(out) as MethodOutcome);
      } catch {
        resolve({ completed: false, ms: performance.now() - started, error: `exit ${code}: ${(err || out).trim().slice(0, 300)}` });
      }
    });
  });
}

function cli(source: string, commands: string[], boundMs: number): Promise<MethodOutcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(SQLITE3_CLI, ['-bail', source, ...commands], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c));
    child.stdout.on('data', () => undefined);
    const timer = setTimeout(() => child.kill('SIGKILL'), boundMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const ms = performance.now() - started;
      if (signal) resolve({ completed: false, ms, error: `did not finish within ${boundMs / 1000} s` });
      else if (code !== 0 || err.trim()) resolve({ completed: false, ms, error: err.trim().slice(0, 300) || `exit ${code}` });
      else resolve({ completed: true, ms });
    });
  });
}

async function childMain(id: string, source: string, dest: string): Promise<void> {
  const t = performance.now();
  const done = (extra: Partial<MethodOutcome> = {}) => process.stdout.write(JSON.stringify({ completed: true, ms: performance.now() - t, ...extra }));
  switch (id) {
    case 'engine':
    case 'engine-integrity': {
      const report = await backupSqlite(source, dest, { verify: id === 'engine' ? 'none' : 'integrity' });
      done({ engineMaxLockMs: report.maxLockMs, enginePhaseMs: report.phaseMs });
      return;
    }
    case 'backup-api': {
      // better-sqlite3 steps 0 pages first, then what the progress callback returns: everything.
      const db = new Database(source, { fileMustExist: true, timeout: 10_000 });
      await db.backup(dest, { progress: () => 0x7fffffff });
      db.close();
      done();
      return;
    }
    case 'immediate-copy': {
      const db = new Database(source, { fileMustExist: true, timeout: 10_000 });
      db.exec('BEGIN IMMEDIATE');
      try {
        fs.copyFileSync(source, dest);
      } finally {
        db.exec('ROLLBACK');
      }
      fsyncFile(dest);
      db.close();
      done();
      return;
    }
    case 'plain-copy':
      fs.copyFileSync(source, dest);
      fsyncFile(dest);
      done();
      return;
    default:
      throw new Error(`unknown method ${id}`);
  }
}

function fsyncFile(file: string): void {
  const fd = fs.openSync(file, 'r+');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
}

// ---- measuring ----

interface Window {
  from: number;
  to: number;
}

interface LatencySummary {
  n: number;
  max: number;
  p99: number;
  p50: number;
}

function summarize(values: number[]): LatencySummary {
  if (!values.length) return { n: 0, max: 0, p99: 0, p50: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { n: sorted.length, max: sorted[sorted.length - 1], p99: at(0.99), p50: at(0.5) };
}

/** Latencies of operations whose time in flight (from when they were due) overlaps the window. */
function during(stats: AppStats, w: Window): number[] {
  const out: number[] = [];
  for (let i = 0; i < stats.due.length; i++) if (stats.due[i] <= w.to && stats.due[i] + stats.latency[i] >= w.from) out.push(stats.latency[i]);
  return out;
}

function errorsDuring(stats: AppStats, w: Window): number {
  return stats.errorsAt.filter((t) => t >= w.from && t <= w.to + 100).length;
}

function outside(stats: AppStats, windows: Window[], from: number, marginMs: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < stats.due.length; i++) {
    const a = stats.due[i];
    const b = a + stats.latency[i];
    if (a < from) continue;
    if (!windows.some((w) => a <= w.to + marginMs && b >= w.from - marginMs)) out.push(stats.latency[i]);
  }
  return out;
}

// ---- the run ----

interface RunRecord {
  mode: Mode;
  method: string;
  round: number;
  completed: boolean;
  seconds: number;
  error?: string;
  engineMaxLockMs?: number;
  enginePhaseMs?: Record<string, number>;
  window: Window;
  writes: LatencySummary;
  reads: LatencySummary;
  writeErrors: number;
  readErrors: number;
  /** Round 1 only: is the copy one instant of the app? */
  consistency?: string;
  /** Round 1 only: commits in the copy. */
  copyOps?: number;
}

interface MethodSummary {
  mode: Mode;
  method: string;
  label: string;
  origin: string;
  runs: number;
  completedRuns: number;
  seconds: number | null;
  writeMaxStallMs: number | null;
  writeP99StallMs: number | null;
  readMaxStallMs: number | null;
  readP99StallMs: number | null;
  appErrors: number;
  engineMaxLockMs?: number | null;
  /** Median of each phase of the engine's time. */
  enginePhaseMs?: Record<string, number | null>;
  consistency: string;
  errors: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function benchMode(mode: Mode, source: string, outDir: string, rounds: number, boundMs: number, log: (m: string) => void) {
  const writer = await AppProcess.start({ file: source, role: 'writer', rate: WRITES_PER_S, busyTimeoutMs: APP_BUSY_TIMEOUT_MS, synchronous: APP_SYNCHRONOUS });
  const reader = await AppProcess.start({ file: source, role: 'reader', rate: READS_PER_S, busyTimeoutMs: APP_BUSY_TIMEOUT_MS });
  const measureFrom = Date.now() + 2000; // warm-up
  await sleep(7000); // warm-up, then 5 s of baseline
  const records: Omit<RunRecord, 'writes' | 'reads' | 'writeErrors' | 'readErrors'>[] = [];
  const timedOut = new Set<string>();
  let writes: AppStats | undefined;
  let reads: AppStats | undefined;
  try {
    for (let round = 1; round <= rounds; round++) {
      // Interleaved: each round starts the list at a different method.
      const order = METHODS.map((_, i) => METHODS[(i + round - 1) % METHODS.length]);
      for (const method of order) {
        if (timedOut.has(method.id)) continue;
        const dest = path.join(outDir, `${method.id}.db`);
        fs.rmSync(dest, { force: true });
        execFileSync('sync'); // the previous run's writes must not be flushed during this one
        await sleep(1000);
        const from = Date.now();
        const outcome = await method.run(source, dest, boundMs);
        const to = Date.now();
        if (!outcome.completed && /did not finish/.test(outcome.error ?? '')) timedOut.add(method.id);
        let consistency: string | undefined;
        let copyOps: number | undefined;
        if (round === 1) ({ consistency, ops: copyOps } = outcome.completed ? consistencyOf(dest, source) : { consistency: 'no copy', ops: undefined });
        log(
          `${mode} ${method.id} round ${round}: ${outcome.completed ? `${(outcome.ms / 1000).toFixed(2)} s` : `FAILED (${outcome.error})`}` +
            `${consistency ? `; copy: ${consistency}` : ''}`,
        );
        records.push({ mode, method: method.id, round, completed: outcome.completed, seconds: outcome.ms / 1000, error: outcome.error, engineMaxLockMs: outcome.engineMaxLockMs, enginePhaseMs: outcome.enginePhaseMs, window: { from, to }, consistency, copyOps });
        for (const f of [dest, `${dest}-journal`, `${dest}-wal`, `${dest}-shm`]) fs.rmSync(f, { force: true });
        for (const f of fs.readdirSync(outDir)) if (f.includes('.partial-') || f.endsWith('.last-backup.json')) fs.rmSync(path.join(outDir, f), { force: true });
      }
    }
    await sleep(2000);
  } finally {
    writes = await writer.stop();
    reads = await reader.stop();
  }
  // A consistent copy can still be stale: a copy of the main file alone misses commits still in the -wal.
  for (const r of records) {
    if (r.copyOps === undefined || !r.consistency?.startsWith('consistent')) continue;
    const committedBefore = writes.due.filter((due, i) => due + writes!.latency[i] < r.window.from).length;
    if (r.copyOps < committedBefore - 2) r.consistency = `STALE: ${committedBefore - r.copyOps} of the ${committedBefore} commits made before it started are missing`;
  }
  const windows = records.map((r) => r.window);
  const baseline = { writes: summarize(outside(writes, windows, measureFrom, 500)), reads: summarize(outside(reads, windows, measureFrom, 500)) };
  const full: RunRecord[] = records.map((r) => ({
    ...r,
    writes: summarize(during(writes, r.window)),
    reads: summarize(during(reads, r.window)),
    writeErrors: errorsDuring(writes, r.window),
    readErrors: errorsDuring(reads, r.window),
  }));
  return { baseline, records: full, appTotals: { writes: writes.ops, reads: reads.ops, writeErrors: writes.errors, readErrors: reads.errors } };
}

/** Whether a copy is the app at one instant, and which one; checked while the app keeps running. */
function consistencyOf(copy: string, source: string): { consistency: string; ops?: number } {
  try {
    const state = checkAppDatabase(copy);
    return { consistency: ledgerSha256(source, state.ops) === state.ledgerSha256 ? `consistent (${state.ops} commits)` : 'ledger differs from the source', ops: state.ops };
  } catch (err) {
    return { consistency: `TORN: ${(err as Error).message.replace(copy, 'copy').slice(0, 160)}` };
  }
}

function summarizeMethod(mode: Mode, method: Method, records: RunRecord[], baseline: { writes: LatencySummary; reads: LatencySummary }): MethodSummary {
  const runs = records.filter((r) => r.mode === mode && r.method === method.id);
  const ok = runs.filter((r) => r.completed);
  // Stalls count in every run, finished or not: the app suffered them either way.
  const stall = (pick: (r: RunRecord) => number, base: number) => median(runs.map((r) => Math.max(0, pick(r) - base)));
  return {
    mode,
    method: method.id,
    label: method.label,
    origin: method.origin,
    runs: runs.length,
    completedRuns: ok.length,
    seconds: median(ok.map((r) => r.seconds)),
    writeMaxStallMs: stall((r) => r.writes.max, baseline.writes.p50),
    writeP99StallMs: stall((r) => r.writes.p99, baseline.writes.p99),
    readMaxStallMs: stall((r) => r.reads.max, baseline.reads.p50),
    readP99StallMs: stall((r) => r.reads.p99, baseline.reads.p99),
    appErrors: runs.reduce((n, r) => n + r.writeErrors + r.readErrors, 0),
    engineMaxLockMs: method.id.startsWith('engine') ? median(ok.map((r) => r.engineMaxLockMs ?? 0)) : undefined,
    enginePhaseMs: method.id.startsWith('engine')
      ? Object.fromEntries(['copy', 'verify', 'hash', 'compress', 'sync', 'commit'].map((k) => [k, median(ok.map((r) => r.enginePhaseMs?.[k] ?? 0))]))
      : undefined,
    consistency: runs.find((r) => r.round === 1)?.consistency ?? '',
    errors: [...new Set(runs.filter((r) => r.error).map((r) => r.error!))],
  };
}

interface Target {
  mode: Mode;
  text: string;
  value: string;
  met: boolean;
}

function targets(summaries: MethodSummary[]): Target[] {
  const get = (mode: Mode, id: string) => summaries.find((s) => s.mode === mode && s.method === id)!;
  const out: Target[] = [];
  const fmt = (x: number | null, unit = 'ms') => (x === null ? 'n/a' : `${x.toFixed(unit === 'ms' ? 0 : 2)} ${unit}`);
  const d = get('delete', 'engine');
  const dApi = get('delete', 'backup-api');
  const dCopy = get('delete', 'plain-copy');
  if (d) {
    out.push({
      mode: 'delete',
      text: "writers' max stall ≤ 0.2 × the one-step backup API's",
      value: `${fmt(d.writeMaxStallMs)} vs 0.2 × ${fmt(dApi.writeMaxStallMs)} = ${fmt(dApi.writeMaxStallMs === null ? null : 0.2 * dApi.writeMaxStallMs)}`,
      met: d.writeMaxStallMs !== null && dApi.writeMaxStallMs !== null && d.writeMaxStallMs <= 0.2 * dApi.writeMaxStallMs,
    });
    out.push({ mode: 'delete', text: "readers' max stall ≤ 100 ms", value: fmt(d.readMaxStallMs), met: d.readMaxStallMs !== null && d.readMaxStallMs <= 100 });
    out.push({ mode: 'delete', text: 'completes in every run', value: `${d.completedRuns}/${d.runs}`, met: d.runs > 0 && d.completedRuns === d.runs });
    out.push({
      mode: 'delete',
      text: "≤ 2 × the plain copy's time",
      value: `${fmt(d.seconds, 's')} vs 2 × ${fmt(dCopy.seconds, 's')} (ratio ${d.seconds && dCopy.seconds ? (d.seconds / dCopy.seconds).toFixed(2) : 'n/a'})`,
      met: d.seconds !== null && dCopy.seconds !== null && d.seconds <= 2 * dCopy.seconds,
    });
  }
  const w = get('wal', 'engine');
  const wVacuum = get('wal', 'cli-vacuum-timeout');
  if (w) {
    out.push({ mode: 'wal', text: "writers' max stall ≤ 50 ms", value: fmt(w.writeMaxStallMs), met: w.writeMaxStallMs !== null && w.writeMaxStallMs <= 50 });
    out.push({ mode: 'wal', text: "readers' max stall ≤ 50 ms", value: fmt(w.readMaxStallMs), met: w.readMaxStallMs !== null && w.readMaxStallMs <= 50 });
    out.push({
      mode: 'wal',
      text: "≤ 1.2 × VACUUM INTO's time (sqlite3 .timeout 10000; VACUUM INTO)",
      value: `${fmt(w.seconds, 's')} vs 1.2 × ${fmt(wVacuum.seconds, 's')} (ratio ${w.seconds && wVacuum.seconds ? (w.seconds / wVacuum.seconds).toFixed(2) : 'n/a'})`,
      met: w.seconds !== null && wVacuum.seconds !== null && w.seconds <= 1.2 * wVacuum.seconds,
    });
  }
  return out;
}

function machineInfo(dataDir: string) {
  const cpus = os.cpus();
  let disk = '';
  try {
    disk = execFileSync('df', ['-h', dataDir], { encoding: 'utf8' }).trim().split('\n').pop() ?? '';
  } catch {
    // not essential
  }
  const memDb = new Database(':memory:');
  const sqlite = memDb.prepare('SELECT sqlite_version()').pluck().get() as string;
  memDb.close();
  return {
    cpu: `${cpus[0]?.model ?? 'unknown'} × ${cpus.length}`,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    sqliteBetterSqlite3: sqlite,
    sqliteCli: execFileSync(SQLITE3_CLI, ['--version'], { encoding: 'utf8' }).trim().split(' ')[0],
    disk,
    loadAverageAtStart: os.loadavg().map((x) => x.toFixed(2)).join(' '),
  };
}

function markdown(result: {
  machine: ReturnType<typeof machineInfo> & { loadAverageAtEnd?: string };
  config: Record<string, unknown>;
  baselines: Record<string, unknown>;
  summaries: MethodSummary[];
  targets: Target[];
  databaseBytes: Record<string, number>;
}): string {
  const f = (x: number | null | undefined, digits = 0) => (x === null || x === undefined ? '—' : x.toFixed(digits));
  const lines: string[] = [];
  lines.push('# SQLite backup benchmark', '');
  lines.push(
    `Database: ${Object.entries(result.databaseBytes).map(([m, b]) => `${m} ${(b / 2 ** 30).toFixed(2)} GiB`).join(', ')}. ` +
      `App: one writer process at ${WRITES_PER_S} commits/s (BEGIN IMMEDIATE transactions touching random pages, synchronous=${APP_SYNCHRONOUS}), one reader process at ${READS_PER_S} reads/s, busy timeout ${APP_BUSY_TIMEOUT_MS} ms. ` +
      `${result.config.rounds} interleaved rounds, each method bounded at ${Number(result.config.boundMs) / 1000} s (a method that hit the bound is not run again). Medians over rounds.`,
    '',
  );
  lines.push(
    'Stall = app latency above the baseline (operations outside any backup): max stall = worst latency of the operations overlapping a run − baseline median; ' +
      'p99 stall = their p99 − baseline p99. Latency counts from when an operation was due. "Copy" is checked once (round 1) against the app\'s invariants and the source\'s ledger.',
    '',
  );
  for (const mode of ['delete', 'wal'] as const) {
    lines.push(`## ${mode === 'delete' ? 'Rollback journal (DELETE)' : 'WAL'}`, '');
    const base = result.baselines[mode] as { writes: LatencySummary; reads: LatencySummary };
    lines.push(`Baseline: writes p50 ${f(base.writes.p50, 2)} ms, p99 ${f(base.writes.p99, 1)} ms, max ${f(base.writes.max, 0)} ms; reads p50 ${f(base.reads.p50, 2)} ms, p99 ${f(base.reads.p99, 1)} ms, max ${f(base.reads.max, 0)} ms.`, '');
    lines.push('| method | from | completed | seconds | writers max stall ms | writers p99 stall ms | readers max stall ms | readers p99 stall ms | app errors | copy |');
    lines.push('|---|---|---|---|---|---|---|---|---|---|');
    for (const s of result.summaries.filter((x) => x.mode === mode)) {
      const note = s.errors.length ? ` (${s.errors[0].slice(0, 60)})` : '';
      lines.push(
        `| ${s.label} | ${s.origin} | ${s.completedRuns}/${s.runs}${note} | ${f(s.seconds, 2)} | ${f(s.writeMaxStallMs)} | ${f(s.writeP99StallMs)} | ${f(s.readMaxStallMs)} | ${f(s.readP99StallMs)} | ${s.appErrors} | ${s.consistency} |`,
      );
    }
    const engine = result.summaries.find((x) => x.mode === mode && x.method === 'engine');
    if (engine?.engineMaxLockMs !== undefined && engine.engineMaxLockMs !== null) lines.push('', `The engine's own report of its longest writer-blocking lock (median): ${engine.engineMaxLockMs.toFixed(0)} ms.`);
    for (const e of result.summaries.filter((x) => x.mode === mode && x.enginePhaseMs)) {
      lines.push('', `${e.label}, where the time went (median ms): ${Object.entries(e.enginePhaseMs!).filter(([, v]) => v).map(([k, v]) => `${k} ${f(v)}`).join(', ')}.`);
    }
    lines.push('');
  }
  lines.push('## Targets', '');
  lines.push('| mode | target | measured | met |', '|---|---|---|---|');
  for (const t of result.targets) lines.push(`| ${t.mode} | ${t.text} | ${t.value} | ${t.met ? 'yes' : '**no**'} |`);
  lines.push('', '## Machine', '');
  for (const [k, v] of Object.entries(result.machine)) lines.push(`- ${k}: ${v}`);
  lines.push('');
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'size-mb': { type: 'string', default: '1024' },
      rounds: { type: 'string', default: '3' },
      'bound-s': { type: 'string', default: '60' },
      'data-dir': { type: 'string', default: os.tmpdir() },
      'keep-data': { type: 'boolean', default: false },
      'results-dir': { type: 'string', default: RESULTS },
    },
  });
  const sizeMb = Number(values['size-mb']);
  const rounds = Number(values.rounds);
  const boundMs = Number(values['bound-s']) * 1000;
  const started = Date.now();
  const log = (m: string) => console.log(`${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s  ${m}`);
  const dataDir = fs.mkdtempSync(path.join(values['data-dir'], 'bench-backup-'));
  const machine = machineInfo(dataDir);
  process.on('SIGINT', () => {
    killAllApps();
    if (!values['keep-data']) fs.rmSync(dataDir, { recursive: true, force: true });
    process.exit(130);
  });
  try {
    log(`Creating a ${sizeMb} MiB database in ${dataDir}...`);
    const sources: Record<Mode, string> = { delete: path.join(dataDir, 'delete', 'app.db'), wal: path.join(dataDir, 'wal', 'app.db') };
    for (const d of Object.values(sources)) fs.mkdirSync(path.dirname(d), { recursive: true });
    createAppDatabase(sources.delete, { journal: 'delete', sizeMb });
    fs.copyFileSync(sources.delete, sources.wal);
    const wal = new Database(sources.wal);
    wal.pragma('journal_mode = WAL');
    wal.close();
    const databaseBytes = { delete: fs.statSync(sources.delete).size, wal: fs.statSync(sources.wal).size };
    log(`Databases ready: ${(databaseBytes.delete / 2 ** 30).toFixed(2)} GiB each.`);

    const baselines: Record<string, unknown> = {};
    const records: RunRecord[] = [];
    const appTotals: Record<string, unknown> = {};
    for (const mode of ['delete', 'wal'] as const) {
      const outDir = path.join(dataDir, mode, 'out');
      fs.mkdirSync(outDir, { recursive: true });
      const result = await benchMode(mode, sources[mode], outDir, rounds, boundMs, log);
      baselines[mode] = result.baseline;
      records.push(...result.records);
      appTotals[mode] = result.appTotals;
      fs.rmSync(outDir, { recursive: true, force: true });
    }
    const summaries = (['delete', 'wal'] as const).flatMap((mode) => METHODS.map((m) => summarizeMethod(mode, m, records, baselines[mode] as { writes: LatencySummary; reads: LatencySummary })));
    const met = targets(summaries);
    const result = {
      machine: { ...machine, loadAverageAtEnd: os.loadavg().map((x) => x.toFixed(2)).join(' ') },
      config: { sizeMb, rounds, boundMs, writesPerSecond: WRITES_PER_S, readsPerSecond: READS_PER_S, appBusyTimeoutMs: APP_BUSY_TIMEOUT_MS, appSynchronous: APP_SYNCHRONOUS, tookSeconds: Math.round((Date.now() - started) / 1000) },
      databaseBytes,
      baselines,
      appTotals,
      summaries,
      targets: met,
      runs: records,
    };
    fs.mkdirSync(values['results-dir'], { recursive: true });
    fs.writeFileSync(path.join(values['results-dir'], 'backup.json'), JSON.stringify(result, null, 2) + '\n');
    fs.writeFileSync(path.join(values['results-dir'], 'backup.md'), markdown(result));
    log(`Results in ${path.join(values['results-dir'], 'backup.md')}`);
    for (const t of met) log(`${t.met ? 'met   ' : 'MISSED'} ${t.mode}: ${t.text}: ${t.value}`);
  } finally {
    killAllApps();
    if (!values['keep-data']) fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  if (process.argv[2] === '--child') {
    childMain(process.argv[3], process.argv[4], process.argv[5]).catch((err: Error) => {
      process.stderr.write(err.message);
      process.exit(1);
    });
  } else {
    main().catch((err: Error) => {
      console.error(err.stack ?? err.message);
      process.exit(1);
    });
  }
}
