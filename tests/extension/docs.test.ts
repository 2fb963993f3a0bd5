/**
 * The YAML a user copies must work: every task step in the samples and in the YAML blocks of
 * overview.md, README.md and docs/ names a task of this extension (or a well-known Microsoft one), at a
 * version that exists, with inputs its task.json has — and no required input left out; and every
 * deployment of the package uses zip deploy (Run From Package makes wwwroot read-only).
 *
 * Every link a user can follow resolves: in task.json (help text, helpUrl), vss-extension.json,
 * overview.md, README.md, CHANGELOG.md, CONTRIBUTING.md and docs/, a link into this repository
 * (relative, or https://github.com/<repository>/blob|tree/main/…) names a file that exists and,
 * with `#anchor`, a heading in it.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { REPO_ROOT } from '../../testkit/harness/agent';

interface TaskInput {
  name: string;
  required?: boolean;
  visibleRule?: string;
  defaultValue?: unknown;
  aliases?: string[];
}

const TASKS = path.join(REPO_ROOT, 'tasks');
const ours = new Map<string, { major: number; inputs: TaskInput[] }>();
for (const dir of fs.readdirSync(TASKS)) {
  const file = path.join(TASKS, dir, 'task.json');
  if (!fs.existsSync(file)) continue;
  const json = JSON.parse(fs.readFileSync(file, 'utf8')) as { name: string; version: { Major: number }; inputs?: TaskInput[] };
  ours.set(json.name, { major: json.version.Major, inputs: json.inputs ?? [] });
}
/** Microsoft's tasks the samples use around ours; their inputs are not checked here. */
const MICROSOFT = new Set(['NodeTool', 'UseNode', 'Npm', 'AzureCLI', 'AzureAppServiceManage', 'AzureWebApp', 'AzureRmWebAppDeployment', 'DownloadPipelineArtifact', 'PublishPipelineArtifact']);

interface Step {
  task: string;
  inputs?: Record<string, unknown>;
}

function stepsIn(node: unknown, out: Step[] = []): Step[] {
  if (Array.isArray(node)) for (const n of node) stepsIn(n, out);
  else if (node && typeof node === 'object') {
    const obj = node as Record<string, unknown>;
    if (typeof obj.task === 'string') out.push(obj as unknown as Step);
    for (const value of Object.values(obj)) stepsIn(value, out);
  }
  return out;
}

/** A visibleRule like `connectionType = AzureRM`: is the input shown for these inputs? */
function visible(input: TaskInput, given: Record<string, unknown>, all: TaskInput[]): boolean {
  if (!input.visibleRule) return true;
  const valueOf = (name: string) => String(given[name] ?? all.find((i) => i.name === name)?.defaultValue ?? '');
  const clauses = input.visibleRule.split(/&&|\|\|/).map((c) => {
    const m = /^\s*(\w+)\s*(!?=)\s*(.*?)\s*$/.exec(c);
    if (!m) return true;
    return m[2] === '=' ? valueOf(m[1]) === m[3] : valueOf(m[1]) !== m[3];
  });
  return input.visibleRule.includes('||') ? clauses.some(Boolean) : clauses.every(Boolean);
}

function yamlDocuments(): Array<{ where: string; text: string }> {
  const docs: Array<{ where: string; text: string }> = [];
  for (const file of fs.readdirSync(path.join(REPO_ROOT, 'samples')).filter((f) => /\.ya?ml$/.test(f))) {
    docs.push({ where: `samples/${file}`, text: fs.readFileSync(path.join(REPO_ROOT, 'samples', file), 'utf8') });
  }
  const docsDir = path.join(REPO_ROOT, 'docs');
  const inDocs = fs.readdirSync(docsDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.md')).map((f) => `docs/${f.split(path.sep).join('/')}`);
  for (const md of ['overview.md', 'README.md', ...inDocs]) {
    const text = fs.readFileSync(path.join(REPO_ROOT, md), 'utf8');
    let n = 0;
    for (const m of text.matchAll(/```yaml\n([\s\S]*?)```/g)) docs.push({ where: `${md} yaml block ${++n}`, text: m[1] });
  }
  return docs;
}

describe('YAML in the samples and the docs', () => {
  const docs = yamlDocuments();

  it('finds the samples and the docs’ YAML', () => {
    assert.ok(docs.some((d) => d.where.startsWith('samples/')));
    assert.ok(docs.filter((d) => d.where.startsWith('docs/tasks/')).length >= 5);
  });

  for (const doc of docs) {
    it(`${doc.where} uses real tasks and inputs`, () => {
      const parsed = parse(doc.text) as unknown;
      const steps = stepsIn(parsed);
      assert.ok(steps.length > 0, 'has task steps');
      for (const step of steps) {
        const [name, version] = step.task.split('@');
        if (name === 'AzureWebApp' || name === 'AzureRmWebAppDeployment') assertZipDeploy(doc.where, name, step.inputs ?? {});
        if (MICROSOFT.has(name)) continue;
        const task = ours.get(name);
        assert.ok(task, `${doc.where}: no task named ${name}`);
        assert.equal(Number(version), task.major, `${doc.where}: ${step.task} — the task is at major version ${task.major}`);
        const given = step.inputs ?? {};
        for (const key of Object.keys(given)) {
          assert.ok(task.inputs.some((i) => i.name === key || i.aliases?.includes(key)), `${doc.where}: ${name} has no input '${key}'`);
        }
        for (const input of task.inputs) {
          if (!input.required || input.defaultValue !== undefined || !visible(input, given, task.inputs)) continue;
          assert.ok(input.name in given, `${doc.where}: ${name} needs '${input.name}'`);
        }
      }
    });
  }
});

/** Ghost writes to wwwroot: a package must never be deployed as Run From Package (read-only wwwroot). */
function assertZipDeploy(where: string, task: string, inputs: Record<string, unknown>): void {
  if (task === 'AzureWebApp') {
    assert.equal(inputs.deploymentMethod, 'zipDeploy', `${where}: AzureWebApp needs deploymentMethod: zipDeploy (auto means Run From Package on Windows)`);
  } else {
    assert.ok(inputs.enableCustomDeployment === true && inputs.DeploymentType === 'zipDeploy', `${where}: AzureRmWebAppDeployment needs enableCustomDeployment: true and DeploymentType: zipDeploy`);
  }
}

const REPOSITORY = 'https://github.com/appservice-sqlite/appservice-sqlite-tasks';

interface Link {
  /** Where it was found, for messages. */
  where: string;
  /** The file it was found in; relative links are taken from its folder (undefined: no relative links, as in task.json). */
  from?: string;
  url: string;
}

/** Headings of a markdown file as GitHub makes anchors of them (code blocks left out; repeats get -1, -2). */
export function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const line of markdown.replace(/^```[\s\S]*?^```/gm, '').split('\n')) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = m[1]
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/<[^>]+>/g, '')
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n ? `${base}-${n}` : base);
  }
  return anchors;
}

function linksInMarkdown(text: string): string[] {
  // Links in code are examples, not links.
  const prose = text.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]);
}

function allLinks(): Link[] {
  const links: Link[] = [];
  const docs = fs.readdirSync(path.join(REPO_ROOT, 'docs'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.md'));
  const markdown = ['overview.md', 'README.md', 'CHANGELOG.md', 'CONTRIBUTING.md', ...docs.map((f) => `docs/${f.split(path.sep).join('/')}`)];
  for (const rel of markdown) {
    const file = path.join(REPO_ROOT, rel);
    for (const url of linksInMarkdown(fs.readFileSync(file, 'utf8'))) links.push({ where: rel, from: file, url });
  }
  for (const dir of fs.readdirSync(TASKS)) {
    const file = path.join(TASKS, dir, 'task.json');
    if (!fs.existsSync(file)) continue;
    const json = JSON.parse(fs.readFileSync(file, 'utf8')) as { helpMarkDown?: string; helpUrl?: string; inputs?: Array<{ name: string; helpMarkDown?: string }> };
    for (const url of linksInMarkdown(json.helpMarkDown ?? '')) links.push({ where: `tasks/${dir}/task.json helpMarkDown`, url });
    if (json.helpUrl) links.push({ where: `tasks/${dir}/task.json helpUrl`, url: json.helpUrl });
    for (const input of json.inputs ?? []) for (const url of linksInMarkdown(input.helpMarkDown ?? '')) links.push({ where: `tasks/${dir}/task.json input ${input.name}`, url });
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'vss-extension.json'), 'utf8')) as {
    links?: Record<string, { uri: string }>;
    repository?: { uri: string };
    content?: Record<string, { path: string }>;
    screenshots?: Array<{ path: string }>;
    icons?: Record<string, string>;
  };
  for (const [name, link] of Object.entries(manifest.links ?? {})) links.push({ where: `vss-extension.json links.${name}`, url: link.uri });
  if (manifest.repository) links.push({ where: 'vss-extension.json repository', url: manifest.repository.uri });
  for (const [name, item] of Object.entries(manifest.content ?? {})) links.push({ where: `vss-extension.json content.${name}`, from: path.join(REPO_ROOT, 'vss-extension.json'), url: item.path });
  for (const shot of manifest.screenshots ?? []) links.push({ where: 'vss-extension.json screenshots', from: path.join(REPO_ROOT, 'vss-extension.json'), url: shot.path });
  for (const icon of Object.values(manifest.icons ?? {})) links.push({ where: 'vss-extension.json icons', from: path.join(REPO_ROOT, 'vss-extension.json'), url: icon });
  return links;
}

/** The local file (and anchor) a link into this repository names; undefined for a link elsewhere. */
function target(link: Link): { file: string; anchor?: string } | undefined {
  const [address, anchor] = link.url.split('#') as [string, string | undefined];
  if (link.url.startsWith(REPOSITORY)) {
    const m = /^\/(?:blob|tree)\/main\/(.*)$/.exec(address.slice(REPOSITORY.length));
    if (!m) return address === REPOSITORY || /^\/issues\/?$/.test(address.slice(REPOSITORY.length)) ? undefined : { file: '(not a path on main) ' + link.url };
    return { file: path.join(REPO_ROOT, decodeURIComponent(m[1])), anchor };
  }
  if (/^[a-z]+:/i.test(link.url)) return undefined;
  assert.ok(link.from, `${link.where}: ${link.url} is relative, but the task catalog shows help text outside this repository: use ${REPOSITORY}/blob/main/…`);
  const file = address === '' ? link.from : path.resolve(path.dirname(link.from), decodeURIComponent(address));
  return { file, anchor };
}

describe('links', () => {
  const links = allLinks();

  it('finds the links of the task catalog, the listing and the docs', () => {
    for (const where of ['overview.md', 'README.md', 'docs/release.md', 'tasks/AppServiceWebJobRun/task.json helpUrl', 'vss-extension.json links.getstarted']) {
      assert.ok(links.some((l) => l.where === where), `no link found in ${where}`);
    }
  });

  it('into this repository name files and headings that exist', () => {
    const problems: string[] = [];
    for (const link of links) {
      const t = target(link);
      if (!t) {
        if (!/^(https|mailto):/.test(link.url)) problems.push(`${link.where}: ${link.url} is not https`);
        continue;
      }
      if (!fs.existsSync(t.file)) {
        problems.push(`${link.where}: ${link.url} → ${path.relative(REPO_ROOT, t.file)} does not exist`);
        continue;
      }
      if (t.anchor && !anchorsOf(fs.readFileSync(t.file, 'utf8')).has(t.anchor)) {
        problems.push(`${link.where}: ${link.url} → no heading '#${t.anchor}' in ${path.relative(REPO_ROOT, t.file)}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it('from every task lead to its own page in docs/tasks/', () => {
    for (const dir of fs.readdirSync(TASKS).filter((d) => fs.existsSync(path.join(TASKS, d, 'task.json')))) {
      const page = `${REPOSITORY}/blob/main/docs/tasks/${dir}.md`;
      const help = links.filter((l) => l.where.startsWith(`tasks/${dir}/task.json help`));
      assert.ok(help.some((l) => l.where.endsWith('helpUrl') && l.url === page), `${dir}: helpUrl is ${page}`);
      assert.ok(help.some((l) => l.where.endsWith('helpMarkDown') && l.url === page), `${dir}: More information links to ${page}`);
    }
  });

  it('make GitHub anchors the way GitHub does', () => {
    assert.deepEqual([...anchorsOf('# A `code` title: yes!\n## 1. Deploy with `deploymentMethod: zipDeploy`\n## Twice\n## Twice\n```\n# not a heading\n```')], [
      'a-code-title-yes',
      '1-deploy-with-deploymentmethod-zipdeploy',
      'twice',
      'twice-1',
    ]);
  });
});
