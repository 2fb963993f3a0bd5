/**
 * Ghost's error log as a second source of the migrator's error. In production Ghost logs to
 * files only (content/logs/<url>_<env>.error.log, JSON lines from bunyan); the task asks it to log
 * to stdout for the run, but a command or a config can keep the files. So the sizes of the error
 * logs are remembered before the run, and only what was appended during it is read afterwards:
 * bounded, since the folder and its files belong to the site, and every line is outside text.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The error logs' sizes before the run, by file name. */
export interface ErrorLogMark {
  dir: string;
  sizes: Map<string, number>;
}

const MAX_FILES = 20;
/** Of each file's appended bytes, the last ones are read: the error is at the end. */
const MAX_BYTES = 256 * 1024;
const MAX_LINES = 40;

function errorLogs(dir: string): string[] {
  try {
    return fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.error.log'))
      .map((e) => e.name)
      .sort()
      .slice(0, MAX_FILES);
  } catch {
    return [];
  }
}

export function markErrorLogs(dir: string): ErrorLogMark {
  const sizes = new Map<string, number>();
  for (const name of errorLogs(dir)) sizes.set(name, fs.statSync(path.join(dir, name)).size);
  return { dir, sizes };
}

/** What the run appended to the error logs, as readable lines (the newest last). */
export function readAppendedErrors(mark: ErrorLogMark): string[] {
  const lines: string[] = [];
  for (const name of errorLogs(mark.dir)) {
    const file = path.join(mark.dir, name);
    const size = fs.statSync(file).size;
    // A file smaller than before was rotated: all of it is new.
    const from = Math.max(size >= (mark.sizes.get(name) ?? 0) ? (mark.sizes.get(name) ?? 0) : 0, size - MAX_BYTES);
    if (size <= from) continue;
    const buf = Buffer.alloc(size - from);
    const fd = fs.openSync(file, 'r');
    try {
      fs.readSync(fd, buf, 0, buf.length, from);
    } finally {
      fs.closeSync(fd);
    }
    for (const line of buf.toString('utf8').split(/\r?\n/)) lines.push(...readableEntry(line));
  }
  return lines.slice(-MAX_LINES);
}

interface BunyanEntry {
  msg?: unknown;
  err?: { message?: unknown; context?: unknown; help?: unknown; code?: unknown; name?: unknown };
}

/** A bunyan JSON line as Ghost's stdout would show it: the message, its context and help; no stack. */
function readableEntry(line: string): string[] {
  if (!line.trim()) return [];
  let entry: BunyanEntry;
  try {
    entry = JSON.parse(line) as BunyanEntry;
  } catch {
    return [line];
  }
  if (!entry || typeof entry !== 'object') return [];
  const text = (v: unknown) => (typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v));
  const err = entry.err && typeof entry.err === 'object' ? entry.err : undefined;
  const out = [`ERROR ${text(err?.message) || text(entry.msg)}`];
  if (err?.name || err?.code) out.push(`${text(err.name)}${err.code ? ` (${text(err.code)})` : ''}`);
  if (text(err?.context)) out.push(text(err?.context));
  if (text(err?.help)) out.push(text(err?.help));
  return out.filter((l) => l.trim());
}
