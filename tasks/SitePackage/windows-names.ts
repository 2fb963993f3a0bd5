/**
 * Names in a package that App Service on Windows cannot deploy, whichever agent built it: a
 * Linux agent happily zips `Logo.png` beside `logo.png`, `aux.js` or `what?.md`, and the deploy
 * on Windows then fails halfway or silently keeps one file of two. Checked on the entry names
 * (forward slashes), so the same rules hold on every agent.
 *
 * - names Windows forbids: `CON PRN AUX NUL COM1-9 LPT1-9` with or without an extension, the
 *   characters `< > : " | ? *` and control characters, a trailing dot or space;
 * - two entries whose names differ only by case (NTFS keeps one of them);
 * - paths over 259 characters below `D:\home\site\wwwroot\` (Windows' MAX_PATH without the
 *   terminating NUL), which tools on the worker that do not use long paths cannot open.
 */
import * as path from 'node:path';

/** Where App Service on Windows puts the package. */
export const WWWROOT = 'D:\\home\\site\\wwwroot\\';
const MAX_PATH = 259;
const RESERVED = /^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$/i;
// eslint-disable-next-line no-control-regex
const FORBIDDEN_CHARS = /[<>:"|?*\x00-\x1f]/;

export interface WindowsNameProblems {
  /** A name Windows will not create, and why. */
  forbidden: Array<{ name: string; why: string }>;
  /** Names equal but for case, in pairs (the first seen, the next). */
  caseCollisions: Array<[string, string]>;
  /** Names whose path on the worker is longer than MAX_PATH. */
  tooLong: Array<{ name: string; length: number }>;
}

/** Why Windows refuses this one path segment, or undefined. */
export function forbiddenSegment(segment: string): string | undefined {
  if (RESERVED.test(segment)) return `'${segment.split('.')[0]}' is a device name on Windows`;
  const bad = FORBIDDEN_CHARS.exec(segment);
  if (bad) return bad[0] < ' ' ? 'it holds a control character' : `it holds '${bad[0]}'`;
  if (/[. ]$/.test(segment)) return 'it ends with a dot or a space, which Windows drops';
  return undefined;
}

/** What App Service on Windows would make of these entry names (files, and folders ending in '/'). */
export function windowsNameProblems(names: readonly string[], root = WWWROOT): WindowsNameProblems {
  const problems: WindowsNameProblems = { forbidden: [], caseCollisions: [], tooLong: [] };
  const seen = new Map<string, string>();
  const checkedSegments = new Set<string>();
  for (const entry of names) {
    const name = entry.replace(/\/+$/, '');
    // A folder's name is checked once, at its first entry (it is a prefix of every later one).
    const segments = name.split('/');
    for (let i = 0; i < segments.length; i++) {
      const prefix = segments.slice(0, i + 1).join('/');
      if (checkedSegments.has(prefix)) continue;
      checkedSegments.add(prefix);
      const why = forbiddenSegment(segments[i]);
      if (why) problems.forbidden.push({ name: prefix, why });
      // Windows compares names by upper-casing them.
      const key = prefix.toUpperCase();
      const other = seen.get(key);
      if (other === undefined) seen.set(key, prefix);
      else if (other !== prefix) problems.caseCollisions.push([other, prefix]);
    }
    const onWorker = path.win32.join(root, ...segments).length;
    if (onWorker > MAX_PATH) problems.tooLong.push({ name, length: onWorker });
  }
  return problems;
}
