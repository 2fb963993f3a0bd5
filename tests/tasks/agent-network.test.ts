/**
 * The agent's proxy and certificates, as a self-hosted agent behind a company proxy sets them
 * (Agent.ProxyUrl, Agent.ProxyUsername, Agent.ProxyPassword as a secret variable,
 * Agent.ProxyBypassList, Agent.CAInfo, Agent.ClientCert/ClientCertKey/ClientCertPassword), for
 * every task that makes a request. A recording proxy (testkit/proxy) shows what went through it;
 * the Azure fake records each client's port, so a request that went around the proxy shows.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fingerprintFromBytes, formatFingerprint } from '../../lib/sqlite/fingerprint';
import { genericEndpoint, linesLeaking, runTask, type TaskRun } from '../../testkit/harness/agent';
import { createAppDatabase } from '../../testkit/harness/sqlite-app';
import { startAzureFake, TEST_CA_FILE, TLS, type AzureFake } from '../../testkit/azure-fake';
import { startKuduServer, type KuduServer } from '../../testkit/kudu-server';
import { startProxy, startTlsFront, type TestProxy, type TlsFront } from '../../testkit/proxy';

const PASSWORD = 'kudu-pw-behind-a-proxy';
const PROXY_PASSWORD = 'proxy-pw-that-must-not-leak';
const FIXTURES = path.dirname(TEST_CA_FILE);
const CLIENT_CERT = path.join(FIXTURES, 'agent-client.pem');
const CLIENT_KEY = path.join(FIXTURES, 'agent-client-key.pem');
const CLIENT_PASSPHRASE = 'agent-client-passphrase-7';

describe("the agent's proxy and certificates", function () {
  this.timeout(180_000);
  let home: string;
  let kudu: KuduServer;
  const closers: Array<() => Promise<void>> = [];

  beforeEach(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-network-'));
    const data = path.join(home, 'site', 'wwwroot', 'content', 'data');
    fs.mkdirSync(data, { recursive: true });
    fs.writeFileSync(path.join(data, 'notes.txt'), 'hello through the proxy');
    kudu = await startKuduServer({ home, auth: { basic: { username: '$blog', password: PASSWORD } } });
  });
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    await kudu.close();
    fs.rmSync(home, { recursive: true, force: true });
  });

  async function proxy(credentials?: { username: string; password: string }): Promise<TestProxy> {
    const p = await startProxy({ credentials });
    closers.push(() => p.close());
    return p;
  }

  function job(name: string, script: string): void {
    const dir = path.join(home, 'site', 'wwwroot', 'App_Data', 'jobs', 'triggered', name);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'run.js'), script);
  }

  /** The agent's variables for its proxy; the password as the agent passes it, a secret variable. */
  function proxyAgent(p: TestProxy, options: { username?: string; password?: string; bypass?: string[] } = {}): { variables: Record<string, string>; env: Record<string, string> } {
    const variables: Record<string, string> = { 'Agent.ProxyUrl': p.url };
    if (options.username) variables['Agent.ProxyUsername'] = options.username;
    if (options.bypass) variables['Agent.ProxyBypassList'] = JSON.stringify(options.bypass);
    const env: Record<string, string> = options.password ? { SECRET_AGENT_PROXYPASSWORD: options.password, VSTS_SECRET_VARIABLES: JSON.stringify(['Agent.ProxyPassword']) } : {};
    return { variables, env };
  }

  function generic(task: string, inputs: Record<string, string | number | boolean>, agent: { variables: Record<string, string>; env?: Record<string, string> }, url = kudu.url): Promise<TaskRun> {
    return runTask({
      task,
      inputs: { connectionType: 'Generic', kuduService: 'kudu', ...inputs },
      endpoints: { kudu: genericEndpoint(url, '$blog', PASSWORD) },
      variables: agent.variables,
      env: agent.env,
      timeoutMs: 90_000,
    });
  }

  it('Generic connection: every request of AppServiceWebJobRun, AppServiceDownload and AppServiceDatabaseGuard goes through the proxy', async () => {
    const p = await proxy();
    const agent = proxyAgent(p);
    job('backup', `console.log('ran behind the proxy');`);
    const db = path.join(home, 'site', 'wwwroot', 'content', 'data', 'ghost.db');
    createAppDatabase(db, { journal: 'delete', sizeMb: 1 });
    const fingerprint = formatFingerprint(fingerprintFromBytes({ header: fs.readFileSync(db).subarray(0, 100) }));
    const runs = [
      await generic('AppServiceWebJobRun', { jobName: 'backup', pollIntervalSeconds: 0.2, timeoutMinutes: 1 }, agent),
      await generic('AppServiceDownload', { remotePath: 'site/wwwroot/content/data/notes.txt', destination: 'notes.txt' }, agent),
      await generic('AppServiceDatabaseGuard', { remotePath: 'site/wwwroot/content/data/ghost.db', expectedFingerprint: fingerprint }, agent),
    ];
    for (const run of runs) {
      assert.equal(run.result, 'Succeeded', run.output);
      assert.ok(run.logLines.some((l) => l.includes(`Requests go through the agent's proxy ${p.url}`)), run.output);
    }
    assert.ok(runs[0].logLines.some((l) => l.includes('ran behind the proxy')));
    assert.ok(kudu.requests.length >= 10, `${kudu.requests.length} requests`);
    // http:// goes to the proxy with the absolute URL; each one Kudu saw, the proxy forwarded.
    const forwarded = p.requests.filter((r) => r.method !== 'CONNECT' && new URL(r.target).port === String(kudu.port));
    assert.equal(forwarded.length, kudu.requests.length, 'no request reached Kudu around the proxy');
  });

  describe('with an Azure Resource Manager connection (workload identity federation)', () => {
    let azure: AzureFake;

    beforeEach(async () => {
      azure = await startAzureFake();
      closers.push(() => azure.close());
      // Kudu behind the fake's SCM front end takes the fake's tokens.
      await kudu.close();
      kudu = await startKuduServer({ home, auth: { bearer: azure.kuduAccepts } });
    });

    async function federated(agent: { variables: Record<string, string>; env?: Record<string, string> }, caFromAgent = true): Promise<TaskRun> {
      await azure.addSite({ resourceGroup: 'blog-rg', name: 'blog', kudu });
      const who = azure.addPrincipal({ federatedConnectionId: 'arm-conn', roles: [{ scope: azure.subscriptionScope, role: 'Website Contributor' }] });
      job('backup', `console.log('ran through ARM behind the proxy');`);
      const { NODE_EXTRA_CA_CERTS: _notHere, ...env } = azure.taskEnv();
      return runTask({
        task: 'AppServiceWebJobRun',
        inputs: { connectionType: 'AzureRM', azureSubscription: 'arm-conn', appName: 'blog', resourceGroupName: 'blog-rg', jobName: 'backup', pollIntervalSeconds: 0.2, timeoutMinutes: 1 },
        endpoints: { 'arm-conn': azure.endpoint(who), SYSTEMVSSCONNECTION: azure.systemEndpoint() },
        // The test CA is trusted only through the agent's CA file, never through Node's own settings.
        variables: { ...azure.oidcVariables(), ...(caFromAgent ? { 'Agent.CAInfo': TEST_CA_FILE } : {}), ...agent.variables },
        env: { ...env, NODE_EXTRA_CA_CERTS: undefined, ...agent.env },
        timeoutMs: 90_000,
      });
    }

    function services(): Map<string, number[]> {
      const byService = new Map<string, number[]>();
      for (const r of azure.requests) byService.set(r.service, [...(byService.get(r.service) ?? []), r.remotePort ?? -1]);
      return byService;
    }

    it('Entra ID, the OIDC request, Resource Manager and Kudu all go through the proxy, with its credentials, trusting the agent CA file', async () => {
      const p = await proxy({ username: 'corp\\builder', password: PROXY_PASSWORD });
      const result = await federated(proxyAgent(p, { username: 'corp\\builder', password: PROXY_PASSWORD }));
      assert.equal(result.result, 'Succeeded', result.output);
      assert.ok(result.logLines.some((l) => l.includes('ran through ARM behind the proxy')), result.output);
      const seen = services();
      for (const service of ['entra', 'oidc', 'arm', 'scm']) {
        const ports = seen.get(service) ?? [];
        assert.ok(ports.length > 0, `no ${service} request`);
        assert.deepEqual(ports.filter((port) => !p.upstreamPorts.has(port)), [], `${service} requests that went around the proxy`);
      }
      assert.ok(p.requests.every((r) => r.method === 'CONNECT' && r.authorized && r.status === 200), JSON.stringify(p.requests));
      assert.ok(result.secrets.includes(PROXY_PASSWORD), 'the proxy password is registered as a secret');
      // task-lib prints every variable it reads in a debug line, secret ones included; the agent
      // masks those because it marked Agent.ProxyPassword secret itself. No other line may show it.
      const ours = { ...result, stdout: result.stdout.split('\n').filter((l) => !l.startsWith('##vso[task.debug]Agent.ProxyPassword=')).join('\n') };
      assert.deepEqual(linesLeaking(ours, [PROXY_PASSWORD, Buffer.from(`corp\\builder:${PROXY_PASSWORD}`).toString('base64')]), []);
    });

    it("sends the hosts on the agent's bypass list direct", async () => {
      const p = await proxy();
      const site = `127\\.0\\.0\\.1:${new URL(azure.url).port}/`;
      const result = await federated(proxyAgent(p, { bypass: [site] }));
      assert.equal(result.result, 'Succeeded', result.output);
      const seen = services();
      for (const service of ['entra', 'oidc', 'arm']) {
        assert.ok((seen.get(service) ?? []).every((port) => !p.upstreamPorts.has(port)), `${service} went through the proxy despite the bypass list`);
      }
      assert.ok((seen.get('scm') ?? []).every((port) => p.upstreamPorts.has(port)), 'Kudu is not on the bypass list');
    });

    it('fails with the reason when the proxy wants credentials the agent does not give, and when the CA file is missing', async () => {
      const p = await proxy({ username: 'corp', password: PROXY_PASSWORD });
      const refused = await federated(proxyAgent(p));
      assert.equal(refused.result, 'Failed', refused.output);
      assert.match(refused.resultMessage!, /proxy 127\.0\.0\.1:\d+ asks for credentials the agent did not give, or refused them.*agent's proxy settings/);

      const untrusted = await federated({ variables: {} }, false);
      assert.equal(untrusted.result, 'Failed', untrusted.output);
      assert.match(untrusted.resultMessage!, /certificate of 127\.0\.0\.1:\d+ is not trusted .*Agent\.CAInfo/);
    });
  });

  describe("a server whose certificate only the agent's CA file trusts, which wants the agent's client certificate", () => {
    let front: TlsFront;

    beforeEach(async () => {
      front = await startTlsFront(kudu.url, { ...TLS, clientCa: fs.readFileSync(CLIENT_CERT) });
      closers.push(() => front.close());
    });

    const certificates = {
      'Agent.CAInfo': TEST_CA_FILE,
      'Agent.ClientCert': CLIENT_CERT,
      'Agent.ClientCertKey': CLIENT_KEY,
    };

    it('presents the client certificate, with the passphrase registered as a secret', async () => {
      const result = await runTask({
        task: 'AppServiceDownload',
        inputs: { connectionType: 'Generic', kuduService: 'kudu', remotePath: 'site/wwwroot/content/data/notes.txt', destination: 'notes.txt' },
        endpoints: { kudu: genericEndpoint(front.url, '$blog', PASSWORD) },
        variables: certificates,
        env: { NODE_EXTRA_CA_CERTS: undefined, SECRET_AGENT_CLIENTCERTPASSWORD: CLIENT_PASSPHRASE, VSTS_SECRET_VARIABLES: JSON.stringify(['Agent.ClientCertPassword']) },
      });
      assert.equal(result.result, 'Succeeded', result.output);
      assert.equal(fs.readFileSync(path.join(result.workDir, 'notes.txt'), 'utf8'), 'hello through the proxy');
      assert.ok(front.clientCertificates.includes('pipeline-agent-client-test'), JSON.stringify(front.clientCertificates));
      assert.ok(result.secrets.includes(CLIENT_PASSPHRASE));
      const ours = { ...result, stdout: result.stdout.split('\n').filter((l) => !l.startsWith('##vso[task.debug]Agent.ClientCertPassword=')).join('\n') };
      assert.deepEqual(linesLeaking(ours, [CLIENT_PASSPHRASE]), []);
    });

    it('is refused without the client certificate', async () => {
      const result = await runTask({
        task: 'AppServiceDownload',
        inputs: { connectionType: 'Generic', kuduService: 'kudu', remotePath: 'site/wwwroot/content/data/notes.txt', destination: 'notes.txt', retries: 0 },
        endpoints: { kudu: genericEndpoint(front.url, '$blog', PASSWORD) },
        variables: { 'Agent.CAInfo': TEST_CA_FILE },
        env: { NODE_EXTRA_CA_CERTS: undefined },
      });
      assert.equal(result.result, 'Failed', result.output);
      assert.match(result.resultMessage!, /Could not reach Kudu/);
      assert.equal(kudu.requests.length, 0);
    });
  });
});
