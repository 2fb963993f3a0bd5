/**
 * Every task.json against Microsoft's schema (tests/fixtures/tasks.schema.json, from
 * microsoft/azure-pipelines-task-lib) and the stricter rules tfx-cli applies when packaging
 * (app/lib/jsonvalidate.ts), plus this project's own: Node24, help on every input, and every task
 * listed in vss-extension.json.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv from 'ajv-draft-04';
import { REPO_ROOT } from '../../testkit/harness/agent';

const TASKS = path.join(REPO_ROOT, 'tasks');
const taskDirs = fs.readdirSync(TASKS).filter((d) => fs.existsSync(path.join(TASKS, d, 'task.json')));
const DEPRECATED_HANDLERS = ['Node', 'Node6', 'Node10', 'Node16'];

interface TaskJson {
  id: string;
  name: string;
  friendlyName: string;
  instanceNameFormat?: string;
  version: { Major: number; Minor: number; Patch: number };
  inputs?: Array<{ name: string; type: string; helpMarkDown?: string; visibleRule?: string; defaultValue?: unknown; options?: Record<string, string> }>;
  outputVariables?: Array<{ name: string; description?: string }>;
  execution: Record<string, { target: string }>;
  minimumAgentVersion?: string;
}

function load(dir: string): TaskJson {
  return JSON.parse(fs.readFileSync(path.join(TASKS, dir, 'task.json'), 'utf8')) as TaskJson;
}

describe('task.json of every task', () => {
  const schema = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'tests', 'fixtures', 'tasks.schema.json'), 'utf8'));
  const ajv = new Ajv({ allErrors: true, strict: false, unicodeRegExp: false /* the schema's patterns escape ':' */ });
  const validate = ajv.compile(schema);

  it('finds the tasks', () => {
    assert.ok(taskDirs.includes('AppServiceWebJobRun'), `tasks found: ${taskDirs.join(', ')}`);
  });

  for (const dir of taskDirs) {
    describe(dir, () => {
      const task = load(dir);

      it("validates against Microsoft's schema", () => {
        const ok = validate(task);
        assert.ok(ok, ajv.errorsText(validate.errors, { separator: '\n' }));
      });

      it("passes tfx-cli's checks", () => {
        assert.match(task.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'id must be a GUID');
        assert.match(task.name, /^[A-Za-z0-9-]+$/);
        assert.ok(task.friendlyName.length >= 1 && task.friendlyName.length <= 40, `friendlyName is ${task.friendlyName.length} characters`);
        assert.ok(task.instanceNameFormat, 'instanceNameFormat is required');
        const handlers = Object.keys(task.execution);
        assert.ok(handlers.some((h) => !DEPRECATED_HANDLERS.includes(h)), `only deprecated handlers: ${handlers}`);
        for (const handler of Object.values(task.execution)) {
          const target = path.join(REPO_ROOT, 'out', 'tasks', dir, handler.target.replace('$(currentDirectory)', '.'));
          assert.ok(fs.existsSync(target), `execution target ${handler.target} does not exist after the build (${target})`);
        }
      });

      it('runs on the Node24 handler, with an agent that has it', () => {
        assert.ok(task.execution.Node24, 'Node24 handler');
        const [maj, min, pat] = (task.minimumAgentVersion ?? '0.0.0').split('.').map(Number);
        assert.ok(maj * 1e6 + min * 1e3 + (pat ?? 0) >= 4_265_001, `minimumAgentVersion ${task.minimumAgentVersion} is older than 4.265.1 (first agent with Node24)`);
      });

      it('has the folder name as its name, and help text on every input and output', () => {
        assert.equal(task.name, dir);
        for (const input of task.inputs ?? []) {
          assert.ok((input.helpMarkDown ?? '').length > 20, `input '${input.name}' needs helpMarkDown`);
          if (input.type === 'pickList' || input.type === 'radio') {
            assert.ok(input.options && Object.keys(input.options).length > 0, `input '${input.name}' lists its options`);
            if (input.defaultValue !== undefined) assert.ok(String(input.defaultValue) in input.options!, `default of '${input.name}' is one of its options`);
          }
          if (input.visibleRule) {
            assert.ok(!(input.visibleRule.includes('&&') && input.visibleRule.includes('||')), `visibleRule of '${input.name}' mixes && and ||, which the editor cannot evaluate`);
            for (const ref of input.visibleRule.split(/&&|\|\|/).map((r) => r.trim().split(/\s/)[0])) {
              assert.ok((task.inputs ?? []).some((i) => i.name === ref), `visibleRule of '${input.name}' refers to unknown input '${ref}'`);
            }
          }
        }
        for (const output of task.outputVariables ?? []) assert.ok((output.description ?? '').length > 10, `output '${output.name}' needs a description`);
      });
    });
  }

  it('offers both connection types in every task that talks to Kudu (kudu-connection.ts reads these inputs)', () => {
    for (const dir of taskDirs) {
      const inputs = load(dir).inputs ?? [];
      if (!inputs.some((i) => i.name === 'kuduService')) continue;
      const byName = new Map(inputs.map((i) => [i.name, i]));
      assert.equal(byName.get('kuduService')?.visibleRule, 'connectionType = Generic', `${dir}: kuduService shows for Generic only`);
      assert.equal(byName.get('connectionType')?.defaultValue, 'Generic', `${dir}: connectionType defaults to Generic`);
      assert.deepEqual(Object.keys(byName.get('connectionType')?.options ?? {}), ['Generic', 'AzureRM'], `${dir}: connectionType options`);
      assert.equal(byName.get('azureSubscription')?.type, 'connectedService:AzureRM', `${dir}: azureSubscription`);
      for (const name of ['azureSubscription', 'appName', 'resourceGroupName', 'slotName']) {
        assert.equal(byName.get(name)?.visibleRule, 'connectionType = AzureRM', `${dir}: ${name} shows for AzureRM only`);
      }
    }
  });

  it('gives every task its own id', () => {
    const ids = taskDirs.map((d) => load(d).id.toLowerCase());
    assert.equal(new Set(ids).size, ids.length);
  });

  it('lists every task, and only those, in vss-extension.json', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'vss-extension.json'), 'utf8')) as {
      files: Array<{ path: string }>;
      contributions: Array<{ id: string; type: string; properties: { name: string } }>;
    };
    const contributed = manifest.contributions.filter((c) => c.type === 'ms.vss-distributed-task.task').map((c) => c.properties.name).sort();
    assert.deepEqual(contributed, taskDirs.map((d) => `tasks/${d}`).sort());
    for (const name of contributed) assert.ok(manifest.files.some((f) => f.path === name), `${name} is in files`);
    for (const dir of taskDirs) assert.ok(fs.existsSync(path.join(TASKS, dir, 'icon.png')), `${dir}/icon.png`);
  });
});
