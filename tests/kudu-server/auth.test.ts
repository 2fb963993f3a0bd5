import { strict as assert } from 'node:assert';
import { startTestServer, stopTestServer, TestServer } from './test-helpers';

const basic = (user: string, pass: string): string => 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');

describe('kudu-server: auth', function () {
  let t: TestServer | undefined;
  afterEach(async () => {
    await stopTestServer(t);
    t = undefined;
  });

  it('wants Basic user/pass by default and challenges everything else with 401', async () => {
    t = await startTestServer();
    for (const authorization of [undefined, basic('user', 'wrong'), basic('other', 'pass'), 'Bearer token', 'Basic !!!']) {
      const res = await fetch(t.kudu.url + 'api/vfs/', { headers: authorization ? { authorization } : {} });
      assert.equal(res.status, 401, String(authorization));
      assert.equal(res.headers.get('www-authenticate'), 'Basic realm="site"');
    }
    assert.equal((await fetch(t.kudu.url + 'api/vfs/', { headers: { authorization: basic('user', 'pass') } })).status, 200);
    // Every route is protected, known or not.
    assert.equal((await fetch(t.kudu.url + 'api/triggeredwebjobs')).status, 401);
    assert.equal((await fetch(t.kudu.url + 'nothing/here')).status, 401);
  });

  it('accepts configured Basic credentials and Bearer tokens', async () => {
    t = await startTestServer({ auth: { basic: { username: '$site', password: 's3cret:with:colons' }, bearer: token => token === 'good-token' } });
    const get = (authorization: string): Promise<Response> => fetch(t!.kudu.url + 'api/vfs/', { headers: { authorization } });
    assert.equal((await get(basic('$site', 's3cret:with:colons'))).status, 200);
    assert.equal((await get(basic('user', 'pass'))).status, 401);
    assert.equal((await get('Bearer good-token')).status, 200);
    assert.equal((await get('bearer good-token')).status, 200);
    assert.equal((await get('Bearer bad-token')).status, 401);
  });

  it('can be Bearer-only (SCM basic auth disabled)', async () => {
    t = await startTestServer({ auth: { bearer: () => true } });
    assert.equal((await fetch(t.kudu.url + 'api/vfs/', { headers: { authorization: basic('user', 'pass') } })).status, 401);
    assert.equal((await fetch(t.kudu.url + 'api/vfs/', { headers: { authorization: 'Bearer x' } })).status, 200);
  });
});
