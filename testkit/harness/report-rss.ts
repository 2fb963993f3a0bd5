/**
 * Preloaded into a task process (`node --require`) when a test measures memory: writes the
 * process's peak resident set size, in bytes, to the file named by HARNESS_RSS_FILE at exit.
 *
 * On Linux it reads VmHWM from /proc/self/status, the peak of this program's own memory. Not
 * getrusage's maxrss: Linux carries that over exec from the forked parent, so a task started
 * by a big test process (or a benchmark serving a 1 GiB zip) would "peak" at its parent's size.
 */
import * as fs from 'node:fs';

function peakRssBytes(): number {
  try {
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    if (m) return Number(m[1]) * 1024;
  } catch {
    // Not Linux.
  }
  // resourceUsage().maxRSS is in kilobytes.
  return process.resourceUsage().maxRSS * 1024;
}

const target = process.env.HARNESS_RSS_FILE;
if (target) {
  process.on('exit', () => {
    fs.writeFileSync(target, String(peakRssBytes()));
  });
}
