/**
 * The token cache's timing rules, with a token source that counts its calls: when a token is
 * renewed, that concurrent callers share one request, that a failed renewal keeps a still-valid
 * token, and that a 401 gets one fresh token, not two.
 */
import * as assert from 'node:assert/strict';
import { renewalDue, TokenCache, tokenCredential, type AccessToken, type TokenSource } from '../../lib/azure/token-credential';

/** Tokens with `lifetimeMs` left, obtained `ageMs` ago. */
function source(lifetimeMs: number, ageMs = 0): TokenSource & { calls: number; fail: boolean } {
  const s = {
    description: 'a test identity',
    calls: 0,
    fail: false,
    async getToken(): Promise<AccessToken> {
      s.calls++;
      await new Promise((r) => setTimeout(r, 5));
      if (s.fail) throw new Error('Entra is down');
      const now = Date.now();
      return { token: `t${s.calls}`, obtainedAtMs: now - ageMs, expiresOnMs: now + lifetimeMs };
    },
  };
  return s;
}

describe('azure: token renewal', () => {
  it('renews 5 minutes before expiry, or halfway through a shorter life', () => {
    const hour = { token: 'x', obtainedAtMs: 0, expiresOnMs: 3_600_000 };
    assert.equal(renewalDue(hour, 3_600_000 - 300_001), false);
    assert.equal(renewalDue(hour, 3_600_000 - 300_000), true);
    const short = { token: 'x', obtainedAtMs: 0, expiresOnMs: 4000 };
    assert.equal(renewalDue(short, 1999), false);
    assert.equal(renewalDue(short, 2000), true);
  });

  it('shares one request among concurrent callers and reuses the token until it is due', async () => {
    const s = source(3_600_000);
    const cache = new TokenCache(s, 'scope/.default');
    const tokens = await Promise.all([cache.get(), cache.get(), cache.get()]);
    assert.deepEqual(tokens.map((t) => t.token), ['t1', 't1', 't1']);
    assert.equal((await cache.get()).token, 't1');
    assert.equal(s.calls, 1);
  });

  it('keeps a token that is due but still valid when renewing it fails', async () => {
    const s = source(60_000, 3_540_000); // an hour's token with a minute left: due, still valid
    const cache = new TokenCache(s, 'scope/.default');
    const first = await cache.get();
    s.fail = true;
    assert.equal((await cache.get()).token, first.token);
    assert.equal(s.calls, 2);
  });

  it('gets one fresh token after a 401, and says a second 401 is not about age', async () => {
    const s = source(3_600_000);
    const credential = tokenCredential(new TokenCache(s, 'scope/.default'), 'a test token');
    assert.equal(await credential.authorization(), 'Bearer t1');
    assert.equal(await credential.refresh!(), true);
    assert.equal(await credential.authorization(), 'Bearer t2');
    assert.equal(await credential.refresh!(), false);
    assert.equal(s.calls, 2);
  });
});
