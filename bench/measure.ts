// What every benchmark here needs: run a command under /usr/bin/time -v (wall time measured
// here, peak RSS and CPU from time), medians, command-line numbers, machine facts.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const TIME = '/usr/bin/time';

export interface Timed {
  wallSeconds: number;
  peakRssMb: number;
  userSeconds: number;
  systemSeconds: number;
  cpuPercent: number;
  stdout: string;
}

/** Runs `cmd` under /usr/bin/time -v; throws with time's report when it fails. */
export async function timed(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Timed> {
  const report = path.join(os.tmpdir(), `bench-time-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.txt`);
  const started = process.hrtime.bigint();
  const child = spawn(TIME, ['-v', '-o', report, cmd, ...args], { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  const text = fs.readFileSync(report, 'utf8');
  fs.rmSync(report, { force: true });
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${stdout.slice(-4000)}\n${text}`);
  const field = (label: string) => {
    const m = text.match(new RegExp(`${label}: (.+)`));
    if (!m) throw new Error(`no "${label}" in /usr/bin/time output:\n${text}`);
    return m[1].trim();
  };
  return {
    wallSeconds,
    peakRssMb: Number(field('Maximum resident set size \\(kbytes\\)')) / 1024,
    userSeconds: Number(field('User time \\(seconds\\)')),
    systemSeconds: Number(field('System time \\(seconds\\)')),
    cpuPercent: Number(field('Percent of CPU this job got').replace('%', '')),
    stdout,
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** `--name N` from the command line, or the fallback. */
export function numberArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} needs a positive number, got ${process.argv[i + 1]}`);
  return v;
}

export function machine(): { cpus: number; cpuModel: string; memoryGiB: number; platform: string; node: string; loadAverage: number[] } {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 1073741824),
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
    loadAverage: os.loadavg().map((n) => Math.round(n * 100) / 100),
  };
}

export function fmt(n: number, digits = 2): string {
  return n.toFixed(digits);
}

export const RESULTS = path.resolve(__dirname, '..', '..', 'bench', 'results');
