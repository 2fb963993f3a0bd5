/**
 * The YAML a user copies must work: every task step in the samples and in the YAML blocks of
 * overview.md, README.md and docs/ names a task of this extension (or a well-known Microsoft one), at a
 * version that exists, with inputs its task.json has — and no required input left out.
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
