/**
 * Every task.json against Microsoft's schema (tests/fixtures/tasks.schema.json, from
 * microsoft/azure-pipelines-task-lib) and the stricter rules tfx-cli applies when packaging
 * (app/lib/jsonvalidate.ts), plus this project's own: Node24 (and Node20_1 where the task can
 * run on it), help on every input, the classic editor's pick lists bound as Microsoft's App
 * Service tasks bind them, and every task listed in vss-extension.json.
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
  inputs?: Array<{
    name: string;
    type: string;
    helpMarkDown?: string;
    visibleRule?: string;
    defaultValue?: unknown;
    options?: Record<string, string>;
    properties?: Record<string, string>;
    validation?: { expression: string; message: string };
    groupName?: string;
  }>;
  groups?: Array<{ name: string; displayName: string }>;
  dataSourceBindings?: Array<{ target: string; endpointId: string; dataSourceName: string; parameters?: Record<string, string>; resultTemplate?: string }>;
  outputVariables?: Array<{ name: string; description?: string }>;
  execution: Record<string, { target: string }>;
  minimumAgentVersion?: string;
}

function load(dir: string): TaskJson {
  return JSON.parse(fs.readFileSync(path.join(TASKS, dir, 'task.json'), 'utf8')) as TaskJson;
}

/**
 * The schema predates inputs' `validation` ({ expression, message }: the TaskInputValidation of
 * azure-devops-extension-api), which Microsoft's own tasks use (AzureAppConfigurationSnapshotV1's
 * `isInRange(value, 0, 90)`, SshV0's `isMatch(...)`): the rest of the file is held to the schema,
 * and `validation` is checked below.
 */
function withoutValidation(task: TaskJson): TaskJson {
  return { ...task, inputs: task.inputs?.map(({ validation: _, ...input }) => input) };
}

/** The first agents with each handler (azure-pipelines-tasks docs/migrateNode20.md and migrateNode24.md). */
const FIRST_AGENT: Record<string, number> = { Node20_1: 4_248_000, Node24: 4_265_001 };
const agentVersion = (v: string | undefined) => {
  const [maj, min, pat] = (v ?? '0.0.0').split('.').map(Number);
  return maj * 1e6 + min * 1e3 + (pat ?? 0);
};

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
        const ok = validate(withoutValidation(task));
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

      it('runs on the Node24 handler (and Node20_1 where declared), with an agent that has one of them', () => {
        assert.ok(task.execution.Node24, 'Node24 handler');
        assert.deepEqual(Object.keys(task.execution).filter((h) => !(h in FIRST_AGENT)), [], 'only Node20_1 and Node24');
        // An agent older than every listed handler cannot run the task: minimumAgentVersion makes it upgrade.
        const oldest = Math.min(...Object.keys(task.execution).map((h) => FIRST_AGENT[h]));
        assert.ok(agentVersion(task.minimumAgentVersion) >= oldest, `minimumAgentVersion ${task.minimumAgentVersion} is older than the first agent with any of ${Object.keys(task.execution)}`);
        for (const handler of Object.values(task.execution)) assert.equal(handler.target, task.execution.Node24.target, 'every handler runs the same entry');
      });

      it('checks numbers in the classic editor as the task checks them at run time', () => {
        for (const input of task.inputs ?? []) {
          if (!input.validation) continue;
          assert.ok(input.validation.message.length > 10, `${input.name}: validation message`);
          const accepts = (value: string) => evaluateValidation(input.validation!.expression, value);
          if (input.defaultValue !== undefined && input.defaultValue !== '') assert.ok(accepts(String(input.defaultValue)), `${input.name}: its default ${input.defaultValue} passes`);
          for (const bad of ['abc', '-1', '1e9']) assert.ok(!accepts(bad), `${input.name}: '${bad}' is refused`);
        }
      });

      it('has the folder name as its name, and help text on every input and output', () => {
        assert.equal(task.name, dir);
        for (const input of task.inputs ?? []) {
          assert.ok((input.helpMarkDown ?? '').length > 20, `input '${input.name}' needs helpMarkDown`);
          if (input.type === 'pickList' || input.type === 'radio') {
            const bound = (task.dataSourceBindings ?? []).some((b) => b.target === input.name);
            assert.ok(bound || (input.options && Object.keys(input.options).length > 0), `input '${input.name}' lists its options or is filled by a dataSourceBinding`);
            if (bound) assert.equal(input.properties?.EditableOptions, 'True', `${input.name}: a bound pick list stays editable (variables, YAML values)`);
            if (input.defaultValue !== undefined && !bound) assert.ok(String(input.defaultValue) in input.options!, `default of '${input.name}' is one of its options`);
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
      assert.equal(byName.get('connectionType')?.defaultValue, 'AzureRM', `${dir}: connectionType defaults to Azure Resource Manager, as AzureRmWebAppDeployment@5 does`);
      assert.deepEqual(Object.keys(byName.get('connectionType')?.options ?? {}), ['AzureRM', 'Generic'], `${dir}: connectionType options, Azure Resource Manager first`);
      assert.equal(byName.get('azureSubscription')?.type, 'connectedService:AzureRM', `${dir}: azureSubscription`);
      const names = inputs.map((i) => i.name);
      assert.ok(names.indexOf('azureSubscription') < names.indexOf('kuduService'), `${dir}: the Azure Resource Manager inputs come first`);
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

/**
 * The classic editor's pick lists, bound as Microsoft's AzureAppServiceManage@0 and
 * AzureRmWebAppDeployment@5 bind theirs (their task.json in microsoft/azure-pipelines-tasks): the
 * apps of the chosen subscription, the chosen app's resource group, and the slots of the app in
 * that resource group. YAML is not affected: the inputs stay free text there.
 */
describe('pick lists in the classic editor', () => {
  const SLOTS_TEMPLATE = '{"Value":"{{{ #extractResource slots}}}","DisplayValue":"{{{ #extractResource slots}}}"}';
  const kuduTasks = taskDirs.filter((d) => (load(d).inputs ?? []).some((i) => i.name === 'kuduService'));

  it('are on every task that talks to Kudu', () => {
    assert.deepEqual(kuduTasks.sort(), ['AppServiceDatabaseGuard', 'AppServiceDownload', 'AppServiceWebJobRun']);
  });

  for (const dir of kuduTasks) {
    it(`${dir}: app, resource group and slot come from the Azure subscription, the slot list from the app and resource group`, () => {
      const task = load(dir);
      const inputs = new Map((task.inputs ?? []).map((i) => [i.name, i]));
      const bindings = task.dataSourceBindings ?? [];
      const bindingOf = (target: string) => bindings.find((b) => b.target === target);
      assert.deepEqual(bindingOf('appName'), { target: 'appName', endpointId: '$(azureSubscription)', dataSourceName: 'AzureRMWebAppNames' });
      assert.deepEqual(bindingOf('resourceGroupName'), {
        target: 'resourceGroupName',
        endpointId: '$(azureSubscription)',
        dataSourceName: 'AzureRMWebAppResourceGroup',
        parameters: { WebAppName: '$(appName)' },
      });
      const slotTargets = bindings.filter((b) => b.dataSourceName === 'AzureRMWebAppSlotsId').map((b) => b.target);
      assert.ok(slotTargets.includes('slotName'), 'slotName is bound');
      for (const target of slotTargets) {
        assert.deepEqual(bindingOf(target), {
          target,
          endpointId: '$(azureSubscription)',
          dataSourceName: 'AzureRMWebAppSlotsId',
          parameters: { WebAppName: '$(appName)', ResourceGroupName: '$(resourceGroupName)' },
          resultTemplate: SLOTS_TEMPLATE,
        });
      }
      for (const b of bindings) {
        const input = inputs.get(b.target);
        assert.ok(input, `binding targets an input: ${b.target}`);
        assert.equal(input.type, 'pickList', `${b.target} is a pick list`);
        assert.equal(input.properties?.EditableOptions, 'True', `${b.target} can be typed (a variable, a name the list lacks)`);
        for (const ref of [b.endpointId, ...Object.values(b.parameters ?? {})]) {
          const name = /^\$\((\w+)\)$/.exec(ref)?.[1];
          assert.ok(name && inputs.has(name), `${b.target}: ${ref} names an input`);
        }
        assert.equal(inputs.get('azureSubscription')?.type, 'connectedService:AzureRM');
      }
      assert.equal(inputs.get('azureSubscription')?.properties?.EndpointFilterRule, 'ScopeLevel != ManagementGroup', 'only connections scoped to a subscription are offered');
      for (const name of ['appName', 'resourceGroupName', 'slotName']) assert.equal(inputs.get(name)?.type, 'pickList', `${name} is a pick list`);
    });
  }

  it('groups inputs under groups that exist, named as Microsoft names theirs', () => {
    for (const dir of taskDirs) {
      const task = load(dir);
      const groups = new Set((task.groups ?? []).map((g) => g.name));
      for (const input of task.inputs ?? []) if (input.groupName) assert.ok(groups.has(input.groupName), `${dir}: ${input.name} is in group ${input.groupName}`);
      for (const g of task.groups ?? []) {
        assert.match(g.displayName, /^[A-Z][a-z]+( [a-z]+)*$/, `${dir}: group '${g.displayName}' is a short phrase in sentence case`);
        assert.ok((task.inputs ?? []).some((i) => i.groupName === g.name), `${dir}: group ${g.name} holds inputs`);
      }
    }
  });
});

/**
 * The editor's validation expressions (azure-pipelines-tasks docs/taskinputvalidation.md):
 * function calls over `value`, numbers and quoted strings: and, or, not, isInRange, isMatch.
 */
function evaluateValidation(expression: string, value: string): boolean {
  let at = 0;
  const skip = () => {
    while (/\s/.test(expression[at] ?? '')) at++;
  };
  const parse = (): unknown => {
    skip();
    if (expression[at] === "'") {
      const end = expression.indexOf("'", at + 1);
      const text = expression.slice(at + 1, end);
      at = end + 1;
      return text;
    }
    const name = /^[\w.-]+/.exec(expression.slice(at))![0];
    at += name.length;
    skip();
    if (expression[at] !== '(') return name === 'value' ? value : Number(name);
    at++;
    const args: unknown[] = [];
    for (skip(); expression[at] !== ')'; skip()) {
      args.push(parse());
      skip();
      if (expression[at] === ',') at++;
    }
    at++;
    return call(name, args);
  };
  const call = (name: string, args: unknown[]): boolean => {
    const number = (v: unknown) => (typeof v === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : typeof v === 'number' ? v : NaN);
    switch (name) {
      case 'and':
        return args.every(Boolean);
      case 'or':
        return args.some(Boolean);
      case 'not':
        return !args[0];
      case 'isInRange': {
        const n = number(args[0]);
        return n >= (args[1] as number) && n <= (args[2] as number);
      }
      case 'isMatch': {
        const flags = String(args[2] ?? '');
        return new RegExp(String(args[1]), (flags.includes('IgnoreCase') ? 'i' : '') + (flags.includes('Multiline') ? 'm' : '')).test(String(args[0]));
      }
      default:
        throw new Error(`validation uses ${name}(), which this test does not know: add it`);
    }
  };
  return Boolean(parse());
}
