/**
 * Text from outside the extension (the site's file names, listings, manifests, logs, error bodies,
 * database rows; a child process's output) made safe to print and to pass on. The agent executes
 * any `##vso[...]` it finds in a line a task prints, and renders `##[...]` as log formatting; text
 * we did not write must do neither. Every line our logs print goes through `neutraliseCommands`
 * (lib/task/log.ts); values from the site also go through `cleanText` before they reach a message
 * or an output variable.
 *
 * @example
 *   log.info(`Backup taken from ${cleanText(manifest.source)}`);
 *   // '##vso[task.setvariable variable=X]1' is printed as '##_vso[task.setvariable variable=X]1'
 */

/** `##vso[` and `##[` (any case, as the agent matches them) → `##_vso[`, `##_[`: shown, never run. */
export function neutraliseCommands(text: string): string {
  return text.replace(/##(vso)?\[/gi, (m) => `##_${m.slice(2)}`);
}

/**
 * A value from the site, for a message or an output variable: control characters but tab (line
 * breaks included, which could start a line of their own), bidirectional overrides and lone surrogates
 * become `?`; commands are neutralised; at most `max` characters are kept.
 */
export function cleanText(value: unknown, max = 500): string {
  const text = String(value ?? '');
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '?');
  const cut = clean.length > max ? `${clean.slice(0, max)}…` : clean;
  return neutraliseCommands(cut);
}

/** Several lines of outside text (a job's log), each cleaned of control characters and neutralised; line breaks kept. */
export function cleanLines(text: string): string {
  return text
    .split(/\r?\n/)
    .map((line) => cleanText(line.replace(/\r/g, ''), Infinity))
    .join('\n');
}
