import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';

describe('kudu-server: command line', function () {
  it('prints its URL, serves, and exits cleanly on SIGTERM', async function () {
    if (process.platform === 'win32') this.skip();
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kudu-cli-'));
    const child = spawn(process.execPath, [path.join(__dirname, '..', '..', 'testkit', 'kudu-server', 'cli.js'), '--home', home, '--user', 'u', '--password', 'p'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error('no URL within 10 s: ' + out)), 10_000);
        child.stdout!.on('data', (c: Buffer) => {
          out += c.toString();
          const line = out.split('\n')[0];
          if (out.includes('\n')) {
            clearTimeout(timer);
            resolve(line);
          }
        });
        child.on('exit', code => reject(new Error(`exited early with ${code}`)));
      });
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      const res = await fetch(url + 'api/vfs/', { headers: { authorization: 'Basic ' + Buffer.from('u:p').toString('base64') } });
      assert.equal(res.status, 200);
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = (await Promise.race([exited, new Promise((_, reject) => setTimeout(() => reject(new Error('no exit')), 10_000))])) as [number];
      assert.equal(code, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
