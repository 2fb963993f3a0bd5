/**
 * The one way a task puts a section on the run page (the Extensions tab of a build, the summary
 * of a release): a markdown file in the agent's temp folder, attached as a summary under a title
 * people can read.
 *
 * `##vso[task.uploadsummary]` titles the section with the file's name, so a unique file name
 * shows as `SitePackage-1796319058207`; `task.addattachment` of the summary type takes the title
 * separately (the agent's TaskCommandExtension.cs: uploadsummary is addattachment with the file
 * name). The agent refuses a title with a character no file name may have, on Windows the
 * strictest list, so those are replaced.
 *
 * @example
 *   uploadSummary('Site package (drop)', [markdownTable([['Archive', code(file)], ['Files', '1,234']])]);
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tl from 'azure-pipelines-task-lib/task';

/** The attachment type the run page shows as a summary section (the agent's CoreAttachmentType.Summary). */
export const SUMMARY_ATTACHMENT = 'Distributedtask.Core.Summary';

const MAX_TITLE = 80;

/** A title the agent accepts: no characters Windows forbids in file names, one line, not too long. */
export function summaryTitle(title: string): string {
  const clean = title
    .replace(/[\x00-\x1f\x7f"<>|:*?\\/]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  const cut = clean.length > MAX_TITLE ? clean.slice(0, MAX_TITLE - 1).trimEnd() + '…' : clean;
  return cut || 'Summary';
}

/**
 * Writes the section's markdown (blocks joined by blank lines) and attaches it. The file stays
 * in the agent's temp folder: the agent uploads it after the task has ended. Returns its path.
 */
export function uploadSummary(title: string, blocks: string[]): string {
  const folder = tl.getVariable('Agent.TempDirectory') || os.tmpdir();
  const file = path.join(folder, `summary-${randomUUID()}.md`);
  fs.writeFileSync(file, blocks.filter((b) => b !== '').join('\n\n') + '\n');
  tl.addAttachment(SUMMARY_ATTACHMENT, summaryTitle(title), file);
  return file;
}

/** A two-column table of label and value (values already markdown); rows without a value are left out. */
export function markdownTable(rows: Array<[string, string | undefined]>, header: [string, string] = ['', '']): string {
  const cell = (text: string) => text.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');
  const lines = [`| ${header[0]} | ${header[1]} |`, '|---|---|'];
  for (const [label, value] of rows) if (value !== undefined) lines.push(`| ${cell(label)} | ${cell(value)} |`);
  return lines.join('\n');
}

/** A bulleted list, at most `max` items and a line saying how many more. */
export function markdownList(items: string[], max = 50): string {
  const shown = items.slice(0, max).map((i) => `- ${i.replace(/\r?\n/g, ' ')}`);
  if (items.length > max) shown.push(`- … and ${items.length - max} more`);
  return shown.join('\n');
}

/**
 * A value as inline code, whatever it holds: names from the site can carry backticks, pipes or
 * markup, and inside a code span none of it renders.
 */
export function code(value: string | number): string {
  const text = String(value).replace(/\r?\n/g, ' ');
  const ticks = '`'.repeat(Math.max(0, ...Array.from(text.matchAll(/`+/g), (m) => m[0].length)) + 1);
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${ticks}${pad}${text}${pad}${ticks}`;
}
