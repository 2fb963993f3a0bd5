/**
 * `npm run screenshots`: the listing's screenshots, drawn from a real run of the demo (the same
 * tasks, the same Kudu-compatible server, the same live blog as `npm run demo`). What each task
 * printed and the summary sections it attached become two pages in the look of the Azure DevOps
 * run page, rendered to PNG by headless Chromium:
 *
 * - images/screenshots/summaries.png: the build's Extensions tab, one section per step;
 * - images/screenshots/guard-failed.png: the release stopped by the guard, its log and its section.
 *
 * Needs Chromium (Debian: `apt-get install -y chromium`; or set CHROMIUM to a binary). Not part of
 * `npm test`: the PNGs are committed.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runDemo, type StepReport } from '../demo/run';
import type { TaskRun } from '../testkit/harness/agent';
import { ROOT } from './build';

const OUT = path.join(ROOT, 'images', 'screenshots');

interface TaskJson {
  friendlyName: string;
  description: string;
  author: string;
  version: { Major: number; Minor: number; Patch: number };
}

interface Step {
  step: StepReport;
  run: TaskRun;
}

async function main(): Promise<void> {
  const chromium = findChromium();
  const steps: Step[] = [];
  const report = await runDemo({ print: () => undefined, onStep: (step, run) => steps.push({ step, run }) });
  if (!report.ok) throw new Error(`The demo failed at: ${report.failedStep}. Run npm run demo to see why.`);
  const build = steps.filter((s) => s.step.task !== 'AppServiceDatabaseGuard').slice(0, 5);
  const caught = steps.find((s) => s.step.task === 'AppServiceDatabaseGuard' && s.step.expectFailure);
  if (!caught) throw new Error('The demo ran no guard that caught a change.');
  fs.mkdirSync(OUT, { recursive: true });
  const pages = [
    { name: 'summaries', html: summariesPage(build), size: [1280, 1720] },
    { name: 'guard-failed', html: guardPage(caught), size: [1280, 960] },
  ] as const;
  for (const page of pages) {
    const png = render(chromium, page.html, page.size, path.join(OUT, `${page.name}.png`));
    console.log(`${path.relative(ROOT, png)}: ${page.size.join('×')}, ${(fs.statSync(png).size / 1024).toFixed(0)} KiB`);
  }
}

function findChromium(): string {
  const candidates = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter((c): c is string => !!c);
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) throw new Error(`Chromium was not found (${candidates.join(', ')}). Install it (Debian: apt-get update && apt-get install -y chromium) or set CHROMIUM.`);
  return found;
}

/** One page to PNG with a fresh profile, nothing fetched from the network. */
function render(chromium: string, html: string, [width, height]: readonly [number, number], png: string): string {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'screenshots-'));
  try {
    const page = path.join(work, 'page.html');
    fs.writeFileSync(page, html);
    const profile = path.join(work, 'profile');
    fs.mkdirSync(profile);
    execFileSync(
      chromium,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--hide-scrollbars',
        `--user-data-dir=${profile}`,
        `--window-size=${width},${height}`,
        `--screenshot=${png}`,
        `file://${page}`,
      ],
      { stdio: 'pipe', timeout: 120_000 },
    );
    if (!fs.existsSync(png)) throw new Error(`Chromium wrote no ${png}`);
    return png;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

// ---- pages -------------------------------------------------------------------------------------

const CSS = `
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 "Segoe UI", "DejaVu Sans", "Liberation Sans", sans-serif; color: #201f1e; background: #f8f8f8; }
  header { background: #fff; border-bottom: 1px solid #e1e1e1; padding: 14px 32px 0; }
  .crumbs { color: #605e5c; font-size: 13px; }
  h1 { font-size: 22px; font-weight: 600; margin: 6px 0 10px; display: flex; align-items: center; gap: 10px; }
  .badge { display: inline-block; width: 22px; height: 22px; border-radius: 50%; color: #fff; font-size: 14px; text-align: center; line-height: 22px; }
  .ok { background: #107c10; } .bad { background: #cd4a45; } .skip { background: #a19f9d; }
  nav { display: flex; gap: 24px; }
  nav span { padding: 8px 0; color: #605e5c; }
  nav span.on { color: #201f1e; border-bottom: 2px solid #0078d4; font-weight: 600; }
  main { padding: 20px 32px; }
  .card { background: #fff; border: 1px solid #e8e8e8; border-radius: 4px; box-shadow: 0 1px 2px rgba(0,0,0,.06); margin-bottom: 16px; }
  .card > h2 { margin: 0; padding: 12px 20px; font-size: 16px; font-weight: 600; border-bottom: 1px solid #eee; }
  .card > .body { padding: 12px 20px 14px; }
  table { border-collapse: collapse; margin: 6px 0; }
  td, th { border: 1px solid #e1dfdd; padding: 4px 10px; text-align: left; vertical-align: top; }
  th { background: #faf9f8; font-weight: 600; }
  code { font: 12.5px "Cascadia Mono", "DejaVu Sans Mono", monospace; background: #f3f2f1; padding: 1px 4px; border-radius: 3px; }
  pre { font: 12.5px/1.5 "Cascadia Mono", "DejaVu Sans Mono", monospace; background: #f3f2f1; padding: 8px 12px; overflow: hidden; }
  h3 { font-size: 15px; margin: 8px 0; }
  ul { margin: 6px 0; padding-left: 22px; }
  p { margin: 6px 0; }
  .split { display: grid; grid-template-columns: 330px 1fr; gap: 16px; }
  .steps div { padding: 9px 14px; display: flex; gap: 10px; align-items: center; border-bottom: 1px solid #f0f0f0; }
  .steps div.sel { background: #deecf9; }
  .log { background: #1e1e1e; color: #d4d4d4; font: 12.5px/1.55 "Cascadia Mono", "DejaVu Sans Mono", monospace; padding: 10px 14px; white-space: pre-wrap; word-break: break-word; }
  .log .err { color: #f48771; } .log .sec { color: #6a9955; }
`;

function page(crumbs: string, title: string, ok: boolean, tabs: string[], selected: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><style>${CSS}</style></head><body>
<header><div class="crumbs">${esc(crumbs)}</div>
<h1><span class="badge ${ok ? 'ok' : 'bad'}">${ok ? '✓' : '✕'}</span>${esc(title)}</h1>
<nav>${tabs.map((t) => `<span class="${t === selected ? 'on' : ''}">${esc(t)}</span>`).join('')}</nav></header>
<main>${body}</main></body></html>`;
}

function card(title: string, markdown: string): string {
  return `<section class="card"><h2>${esc(title)}</h2><div class="body">${markdownToHtml(markdown)}</div></section>`;
}

function summariesPage(build: Step[]): string {
  const cards = build.flatMap((s) => s.run.summarySections.map((sec) => card(sec.title, sec.markdown)));
  return page('ghost-blog / Pipelines / ghost-blog-build', '#20261123.1 · Update Ghost to 6.2', true, ['Summary', 'Releases', 'Tests', 'Extensions'], 'Extensions', cards.join('\n'));
}

function guardPage({ run }: Step): string {
  // Only what ran: the guard failed, so the swap after it does not run.
  const steps = [
    ['bad', 'App Service: live database unchanged?'],
    ['skip', 'Azure App Service manage: Swap Slots (not run)'],
  ];
  const timeline = `<div class="card steps">${steps
    .map(([state, name]) => `<div class="${state === 'bad' ? 'sel' : ''}"><span class="badge ${state}">${state === 'ok' ? '✓' : state === 'bad' ? '✕' : '–'}</span>${esc(name)}</div>`)
    .join('')}</div>`;
  // The agent opens each task's log with these, from task.json.
  const task = JSON.parse(fs.readFileSync(path.join(ROOT, 'tasks', 'AppServiceDatabaseGuard', 'task.json'), 'utf8')) as TaskJson;
  const lines = [
    `<span class="sec">Task         : ${esc(task.friendlyName)}</span>`,
    `<span class="sec">Description  : ${esc(task.description)}</span>`,
    `<span class="sec">Version      : ${task.version.Major}.${task.version.Minor}.${task.version.Patch}</span>`,
    `<span class="sec">Author       : ${esc(task.author)}</span>`,
    ...run.logLines.filter((l) => l.trim() && !l.startsWith('##[')).map((l) => esc(l)),
    ...run.errors.map((e) => `<span class="err">##[error]${esc(e)}</span>`),
  ];
  const section = run.summarySections.map((s) => card(s.title, s.markdown)).join('');
  const body = `<div class="split">${timeline}<div><div class="card"><h2>App Service: live database unchanged?</h2><div class="log">${lines.join('\n')}</div></div>${section}</div></div>`;
  return page('ghost-blog / Releases / Production', 'Production: the guard stopped the swap', false, ['Pipeline', 'Logs', 'Tests', 'Extensions'], 'Logs', body);
}

// ---- the markdown the tasks write: headings, tables, lists, code, bold, inline code, <br> -------

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function inline(text: string): string {
  const parts: string[] = [];
  // Code spans first (any number of backticks), so nothing inside them is formatted.
  let rest = text;
  for (let m = /(`+)(.+?)\1/.exec(rest); m; m = /(`+)(.+?)\1/.exec(rest)) {
    parts.push(prose(rest.slice(0, m.index)), `<code>${esc(m[2].trim())}</code>`);
    rest = rest.slice(m.index + m[0].length);
  }
  parts.push(prose(rest));
  return parts.join('');
}

function prose(text: string): string {
  return esc(text)
    .replace(/&lt;br&gt;/g, '<br>')
    .replace(/\*\*(.+?)\*\*/g, '<strong>$1</strong>')
    .replace(/\[([^\]]+)\]\([^)]+\)/g, '<u>$1</u>');
}

function cells(row: string): string[] {
  return row
    .trim()
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim().replace(/\\\|/g, '|'));
}

export function markdownToHtml(markdown: string): string {
  const lines = markdown.replace(/\r\n/g, '\n').split('\n');
  const html: string[] = [];
  for (let i = 0; i < lines.length; ) {
    const line = lines[i];
    if (line.startsWith('```')) {
      const end = lines.indexOf('```', i + 1);
      const stop = end < 0 ? lines.length : end;
      html.push(`<pre>${esc(lines.slice(i + 1, stop).join('\n'))}</pre>`);
      i = stop + 1;
    } else if (/^#{1,6} /.test(line)) {
      html.push(`<h3>${inline(line.replace(/^#+ /, ''))}</h3>`);
      i++;
    } else if (line.startsWith('|')) {
      const rows: string[] = [];
      while (i < lines.length && lines[i].startsWith('|')) rows.push(lines[i++]);
      const [head, , ...body] = rows;
      const th = cells(head);
      const headHtml = th.some((c) => c) ? `<tr>${th.map((c) => `<th>${inline(c)}</th>`).join('')}</tr>` : '';
      html.push(`<table>${headHtml}${body.map((r) => `<tr>${cells(r).map((c, n) => (n === 0 ? `<th>${inline(c)}</th>` : `<td>${inline(c)}</td>`)).join('')}</tr>`).join('')}</table>`);
    } else if (line.startsWith('- ')) {
      const items: string[] = [];
      while (i < lines.length && lines[i].startsWith('- ')) items.push(lines[i++].slice(2));
      html.push(`<ul>${items.map((it) => `<li>${inline(it)}</li>`).join('')}</ul>`);
    } else if (line.trim() === '') {
      i++;
    } else {
      const para: string[] = [];
      while (i < lines.length && lines[i].trim() !== '' && !/^(\||- |#|```)/.test(lines[i])) para.push(lines[i++]);
      html.push(`<p>${inline(para.join(' '))}</p>`);
    }
  }
  return html.join('\n');
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
