/**
 * AppServiceWebJobRun and AppServiceDownload through an Azure Resource Manager service connection,
 * end to end over real HTTPS: the tasks get Microsoft Entra tokens from the Azure fake (secret,
 * certificate, workload identity federation, managed identity), find the app through its ARM, and
 * reach a Kudu-compatible server that accepts only the tokens the fake issued.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { linesLeaking, runTask, type TaskRun } from '../../testkit/harness/agent';
import { startKuduServer, type KuduServer } from '../../testkit/kudu-server';
import { APP_SERVICE_AUDIENCE, SERVICE_PRINCIPAL_PEM, startAzureFake, type AzureFake, type AzureFakeOptions, type FakePrincipal, type Role } from '../../testkit/azure-fake';

const SECRET = 'sp-secret-value-that-must-not-leak';
const CONNECTION = 'arm-conn';
const PEM = fs.readFileSync(SERVICE_PRINCIPAL_PEM, 'utf8');
const PEM_KEY_LINES = /-----BEGIN PRIVATE KEY-----([\s\S]+?)-----END/.exec(PEM)![1].split('\n').filter((l) => l.trim().length >= 16);

describe('Azure Resource Manager connections', function () {
  this.timeout(120_000);
  let azure: AzureFake;
  const homes: string[] = [];
  const kudus: KuduServer[] = [];

  afterEach(async () => {
    await Promise.all(kudus.splice(0).map((k) => k.close()));
    await azure?.close();
    for (const home of homes.splice(0)) fs.rmSync(home, { recursive: true, force: true });
  });

  /** The fake, and one app 'blog' in 'blog-rg' served by a Kudu server. */
  async function start(options: AzureFakeOptions = {}, site: { basicAuth?: { allow: boolean; username: string; password: string }; slot?: string } = {}) {
    azure = await startAzureFake(options);
    return addSite('blog-rg', 'blog', site);
  }

  async function addSite(resourceGroup: string, name: string, extra: { basicAuth?: { allow: boolean; username: string; password: string }; slot?: string } = {}) {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), `azurerm-${name}-`));
    homes.push(home);
    const basic = extra.basicAuth?.allow ? { username: extra.basicAuth.username, password: extra.basicAuth.password } : undefined;
    const kudu = await startKuduServer({ home, auth: { bearer: azure.kuduAccepts, basic } });
    kudus.push(kudu);
    const site = await azure.addSite({ resourceGroup, name, slot: extra.slot, kudu, basicAuth: extra.basicAuth });
    return { home, kudu, site };
  }

  function principal(kind: 'secret' | 'certificate' | 'federated' | 'system-mi' | 'user-mi' = 'secret', role: Role | 'none' = 'Website Contributor', scope?: string): FakePrincipal {
    const roles = role === 'none' ? [] : [{ scope: scope ?? azure.subscriptionScope, role }];
    switch (kind) {
      case 'secret':
        return azure.addPrincipal({ secret: SECRET, roles });
      case 'certificate':
        return azure.addPrincipal({ certificatePem: PEM, roles });
      case 'federated':
        return azure.addPrincipal({ federatedConnectionId: CONNECTION, roles });
      case 'system-mi':
        return azure.addPrincipal({ managedIdentity: 'system', roles });
      case 'user-mi':
        return azure.addPrincipal({ managedIdentity: 'user', roles });
    }
  }

  function job(home: string, name: string, script: string): void {
    const dir = path.join(home, 'site', 'wwwroot', 'App_Data', 'jobs', 'triggered', name);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'run.js'), script);
  }

  function put(home: string, rel: string, content: string): void {
    const file = path.join(home, ...rel.split('/'));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
  }

  function run(task: 'AppServiceWebJobRun' | 'AppServiceDownload', who: FakePrincipal, inputs: Record<string, string | number | boolean>, workDir?: string): Promise<TaskRun> {
    return runTask({
      task,
      inputs: { connectionType: 'AzureRM', azureSubscription: CONNECTION, appName: 'blog', ...(task === 'AppServiceWebJobRun' ? { pollIntervalSeconds: 0.2, timeoutMinutes: 1 } : {}), ...inputs },
      endpoints: { [CONNECTION]: azure.endpoint(who), SYSTEMVSSCONNECTION: azure.systemEndpoint() },
      variables: azure.oidcVariables(),
      env: azure.taskEnv(),
      workDir,
    });
  }

  /** Every secret the run could have seen: the client secret, the key, every token. */
  function secrets(): string[] {
    return [SECRET, ...PEM_KEY_LINES, azure.systemAccessToken, ...azure.tokens.map((t) => t.token), ...azure.oidcTokens.keys()];
  }

  function assertNoLeaks(result: TaskRun): void {
    assert.deepEqual(linesLeaking(result, secrets()), []);
  }

  function kuduAudiences(): string[] {
    return [...new Set(azure.requests.filter((r) => r.service === 'scm').map((r) => r.audience ?? '(none)'))];
  }

  const appService = APP_SERVICE_AUDIENCE;

  it('runs a WebJob with a service principal secret, sending Kudu an App Service token', async () => {
    const { home } = await start();
    job(home, 'backup', `console.log('backing up'); setTimeout(() => process.exit(0), 200);`);
    const result = await run('AppServiceWebJobRun', principal('secret'), { jobName: 'backup', resourceGroupName: 'blog-rg' });
    assert.equal(result.result, 'Succeeded', result.output);
    assert.equal(result.variables.runStatus.value, 'Success');
    assert.ok(result.logLines.some((l) => l.includes('backing up')), result.output);
    assert.deepEqual(kuduAudiences(), [appService]);
    assert.ok(!azure.requests.some((r) => r.service === 'arm' && r.path.includes('/resources?')), 'no resource-group search when it is given');
    for (const token of azure.tokens) assert.ok(result.secrets.includes(token.token), 'every token is registered as a secret');
    assertNoLeaks(result);
  });

  it('downloads a file with a certificate, finding the resource group from the app name', async () => {
    const { home } = await start();
    put(home, 'site/wwwroot/content/data/notes.txt', 'hello from the app');
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'azurerm-work-'));
    homes.push(work);
    const result = await run('AppServiceDownload', principal('certificate'), { remotePath: 'site/wwwroot/content/data/notes.txt', destination: 'notes.txt' }, work);
    assert.equal(result.result, 'Succeeded', result.output);
    assert.equal(fs.readFileSync(path.join(work, 'notes.txt'), 'utf8'), 'hello from the app');
    assert.ok(result.logLines.some((l) => l.includes("Found app 'blog' in resource group 'blog-rg'")), result.output);
    assert.deepEqual(kuduAudiences(), [appService]);
    assertNoLeaks(result);
  });

  it('runs a WebJob with workload identity federation (the pipeline OIDC token as the assertion)', async () => {
    const { home } = await start();
    job(home, 'backup', `console.log('wif ok');`);
    const result = await run('AppServiceWebJobRun', principal('federated'), { jobName: 'backup', resourceGroupName: 'blog-rg' });
    assert.equal(result.result, 'Succeeded', result.output);
    assert.ok(azure.requests.some((r) => r.service === 'oidc' && r.status === 200), 'asked Azure DevOps for the OIDC token');
    assert.ok(azure.oidcTokens.size >= 1);
    assert.deepEqual(kuduAudiences(), [appService]);
    assertNoLeaks(result);
  });

  it('explains a refused OIDC request and a federated credential that does not match', async () => {
    await start();
    const wrongSystemToken = await runTask({
      task: 'AppServiceWebJobRun',
      inputs: { connectionType: 'AzureRM', azureSubscription: CONNECTION, appName: 'blog', jobName: 'backup' },
      endpoints: { [CONNECTION]: azure.endpoint(principal('federated')), SYSTEMVSSCONNECTION: { ...azure.systemEndpoint(), parameters: { AccessToken: 'not-the-job-token-123' } } },
      variables: azure.oidcVariables(),
      env: azure.taskEnv(),
    });
    assert.equal(wrongSystemToken.result, 'Failed', wrongSystemToken.output);
    assert.match(wrongSystemToken.resultMessage!, /Azure DevOps refused to issue the pipeline's OIDC token .*401/);
    assert.deepEqual(linesLeaking(wrongSystemToken, ['not-the-job-token-123']), []);

    const other = azure.addPrincipal({ federatedConnectionId: 'another-connection', roles: [] });
    const mismatch = await run('AppServiceWebJobRun', other, { jobName: 'backup' });
    assert.equal(mismatch.result, 'Failed', mismatch.output);
    assert.match(mismatch.resultMessage!, /AADSTS70021/);
    assert.match(mismatch.resultMessage!, /issuer and subject/);
    assertNoLeaks(mismatch);
  });

  it('downloads with a managed identity, system-assigned and user-assigned, through IMDS', async () => {
    const { home } = await start();
    put(home, 'site/wwwroot/a.txt', 'AAA');
    for (const kind of ['system-mi', 'user-mi'] as const) {
      const work = fs.mkdtempSync(path.join(os.tmpdir(), 'azurerm-work-'));
      homes.push(work);
      const result = await run('AppServiceDownload', principal(kind), { remotePath: 'site/wwwroot/a.txt', destination: 'a.txt', resourceGroupName: 'blog-rg' }, work);
      assert.equal(result.result, 'Succeeded', `${kind}: ${result.output}`);
      assert.equal(fs.readFileSync(path.join(work, 'a.txt'), 'utf8'), 'AAA');
      assertNoLeaks(result);
    }
    assert.ok(azure.requests.filter((r) => r.service === 'imds' && r.status === 200).length >= 4, 'two tokens per run from IMDS');
    assert.deepEqual(kuduAudiences(), [appService]);
  });

  it('works on a slot: the slot\'s own SCM site, not production\'s', async () => {
    const production = await start();
    const staging = await addSite('blog-rg', 'blog', { slot: 'staging' });
    job(production.home, 'backup', `console.log('ran on production')`);
    job(staging.home, 'backup', `console.log('ran on staging')`);
    const result = await run('AppServiceWebJobRun', principal('secret'), { jobName: 'backup', slotName: 'staging' });
    assert.equal(result.result, 'Succeeded', result.output);
    assert.ok(result.logLines.some((l) => l.includes('ran on staging')), result.output);
    assert.ok(!result.logLines.some((l) => l.includes('ran on production')), result.output);
    assert.equal(production.kudu.requests.length, 0, 'production was not touched');
    assert.ok(result.logLines.some((l) => l.includes("slot 'staging' of app 'blog'")), result.output);
  });

  it('renews tokens before they expire during a long WebJob wait (3-second tokens, an 8-second run)', async () => {
    const { home } = await start({ tokenLifetimeSeconds: 3 });
    job(home, 'slow', `let i = 0; const t = setInterval(() => { console.log('tick ' + ++i); if (i === 16) { clearInterval(t); } }, 500);`);
    const result = await run('AppServiceWebJobRun', principal('secret'), { jobName: 'slow', resourceGroupName: 'blog-rg' });
    assert.equal(result.result, 'Succeeded', result.output);
    assert.ok(result.logLines.some((l) => l.includes('tick 16')), result.output);
    const appTokens = azure.tokens.filter((t) => t.audience === appService);
    assert.ok(appTokens.length >= 3, `${appTokens.length} App Service tokens for an 8-second run of 3-second tokens`);
    const refused = azure.requests.filter((r) => r.service === 'scm' && r.status === 401);
    assert.equal(refused.length, 0, 'no request went out with an expired token');
    assertNoLeaks(result);
  });

  it('gets a new token once after a 401 (tokens revoked mid-run) and carries on', async () => {
    const { home } = await start();
    job(home, 'slow', `console.log('started'); setTimeout(() => console.log('done'), 2500);`);
    const task = run('AppServiceWebJobRun', principal('secret'), { jobName: 'slow', resourceGroupName: 'blog-rg' });
    const deadline = Date.now() + 20_000;
    while (!azure.requests.some((r) => r.service === 'scm' && r.path.includes('/history/')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    azure.revokeAll();
    const result = await task;
    assert.equal(result.result, 'Succeeded', result.output);
    assert.ok(azure.requests.some((r) => r.service === 'scm' && r.status === 401), 'Kudu refused the revoked token');
    assert.ok(result.logLines.some((l) => l.includes('done')), result.output);
    assertNoLeaks(result);
  });

  it('names the missing role when Kudu forbids the principal (403), and when ARM does', async () => {
    const { home } = await start();
    job(home, 'backup', `console.log('should not run')`);
    const reader = await run('AppServiceWebJobRun', principal('secret', 'Reader'), { jobName: 'backup', resourceGroupName: 'blog-rg' });
    assert.equal(reader.result, 'Failed', reader.output);
    assert.match(reader.resultMessage!, /403/);
    assert.match(reader.resultMessage!, /Website Contributor/);
    assert.match(reader.resultMessage!, /Microsoft\.Web\/sites\/publish\/Action/);

    const nobody = await run('AppServiceWebJobRun', principal('secret', 'none'), { jobName: 'backup', resourceGroupName: 'blog-rg' });
    assert.equal(nobody.result, 'Failed', nobody.output);
    assert.match(nobody.resultMessage!, /403 AuthorizationFailed/);
    assert.match(nobody.resultMessage!, /Website Contributor/);
    assertNoLeaks(reader);
    assertNoLeaks(nobody);
  });

  it('says which subscription and resource group were searched when the app is not there', async () => {
    await start();
    const who = principal('secret');
    const inGroup = await run('AppServiceWebJobRun', who, { jobName: 'backup', appName: 'no-such-app', resourceGroupName: 'blog-rg' });
    assert.equal(inGroup.result, 'Failed', inGroup.output);
    assert.match(inGroup.resultMessage!, /App 'no-such-app' was not found in resource group 'blog-rg' of subscription 'Blog production'/);
    assert.ok(inGroup.resultMessage!.includes(azure.subscriptionId));

    const anywhere = await run('AppServiceWebJobRun', who, { jobName: 'backup', appName: 'no-such-app' });
    assert.equal(anywhere.result, 'Failed', anywhere.output);
    assert.match(anywhere.resultMessage!, /No App Service app named 'no-such-app' in subscription 'Blog production'/);
  });

  it('asks for resourceGroupName when the identity cannot list the subscription, and when two apps share the name', async () => {
    const { home } = await start();
    job(home, 'backup', `console.log('ok')`);
    const groupOnly = principal('secret', 'Website Contributor', `/subscriptions/${azure.subscriptionId}/resourceGroups/blog-rg`);
    const denied = await run('AppServiceWebJobRun', groupOnly, { jobName: 'backup' });
    assert.equal(denied.result, 'Failed', denied.output);
    assert.match(denied.resultMessage!, /may not list the resources of subscription/);
    assert.match(denied.resultMessage!, /resourceGroupName/);
    const given = await run('AppServiceWebJobRun', groupOnly, { jobName: 'backup', resourceGroupName: 'blog-rg' });
    assert.equal(given.result, 'Succeeded', given.output);

    await addSite('other-rg', 'blog');
    const ambiguous = await run('AppServiceWebJobRun', principal('secret'), { jobName: 'backup' });
    assert.equal(ambiguous.result, 'Failed', ambiguous.output);
    assert.match(ambiguous.resultMessage!, /More than one app is named 'blog'.*'blog-rg', 'other-rg'/);
  });

  it("shows Entra's error when it refuses the token request, never the secret", async () => {
    await start();
    const who = azure.addPrincipal({ secret: 'the-real-secret', roles: [] });
    const endpoint = azure.endpoint(who);
    endpoint.parameters.serviceprincipalkey = SECRET; // the wrong one
    const result = await runTask({
      task: 'AppServiceWebJobRun',
      inputs: { connectionType: 'AzureRM', azureSubscription: CONNECTION, appName: 'blog', jobName: 'backup' },
      endpoints: { [CONNECTION]: endpoint },
      env: azure.taskEnv(),
    });
    assert.equal(result.result, 'Failed', result.output);
    assert.match(result.resultMessage!, /Microsoft Entra ID refused a token/);
    assert.match(result.resultMessage!, /invalid_client \(AADSTS7000215\)/);
    assert.match(result.resultMessage!, /client secret in the service connection is wrong/);
    assertNoLeaks(result);
    assert.deepEqual(linesLeaking(result, ['the-real-secret']), []);
  });

  it('uses the ARM token for Kudu when Entra has no App Service audience in the tenant', async () => {
    // Kudu takes ARM tokens too, as today's App Service does.
    const { home } = await start({ refuseAppServiceAudience: true, kuduAudiences: [APP_SERVICE_AUDIENCE, 'arm'] });
    job(home, 'backup', `console.log('ok')`);
    const result = await run('AppServiceWebJobRun', principal('secret'), { jobName: 'backup', resourceGroupName: 'blog-rg' });
    assert.equal(result.result, 'Succeeded', result.output);
    assert.ok(result.logLines.some((l) => l.includes('no token for the App Service audience')), result.output);
    assert.deepEqual(kuduAudiences(), [azure.armAudience]);
  });

  it('falls back to the ARM token when Kudu refuses the App Service one, then to basic auth where allowed', async () => {
    const { home } = await start({ kuduAudiences: [] }, { basicAuth: { allow: true, username: '$blog', password: 'publishing-password-1234' } });
    job(home, 'backup', `console.log('ok')`);
    // Kudu here takes no Entra token at all; the app allows SCM basic auth.
    const result = await run('AppServiceWebJobRun', principal('secret'), { jobName: 'backup', resourceGroupName: 'blog-rg' });
    assert.equal(result.result, 'Succeeded', result.output);
    assert.ok(result.warnings.some((w) => w.includes('using the Azure Resource Manager token instead')), result.output);
    assert.ok(result.warnings.some((w) => w.includes('publishing credentials are used')), result.output);
    assert.deepEqual(linesLeaking(result, [...secrets(), 'publishing-password-1234', Buffer.from('$blog:publishing-password-1234').toString('base64')]), []);
  });

  it('fails with the 401 explained when Kudu takes no token and the app does not allow basic auth', async () => {
    const { home } = await start({ kuduAudiences: [] });
    job(home, 'backup', `console.log('ok')`);
    const result = await run('AppServiceWebJobRun', principal('secret'), { jobName: 'backup', resourceGroupName: 'blog-rg' });
    assert.equal(result.result, 'Failed', result.output);
    assert.match(result.resultMessage!, /401 Unauthorized/);
    assert.match(result.resultMessage!, /Azure Resource Manager audience/);
    assertNoLeaks(result);
  });
});
