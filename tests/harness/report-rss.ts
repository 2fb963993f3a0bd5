/**
 * Preloaded into a task process (`node --require`) when a test measures memory: writes the
 * process's peak resident set size, in bytes, to the file named by HARNESS_RSS_FILE at exit.
 */
import * as fs from 'node:fs';

const target = process.env.HARNESS_RSS_FILE;
if (target) {
  process.on('exit', () => {
    // resourceUsage().maxRSS is in kilobytes.
    fs.writeFileSync(target, String(process.resourceUsage().maxRSS * 1024));
  });
}
