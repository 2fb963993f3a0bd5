/**
 * Path handling as a Windows agent runs it, proved here on Linux with path.win32 and the
 * platform passed in: where a task resolves its destinations (lib/fs resolveKeepingSlash), and
 * how SitePackage's exclude globs match (lib/archive compileExclude).
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { compileExclude } from '../../lib/archive/walk';
import { resolveKeepingSlash } from '../../lib/fs';

describe('paths on Windows agents', () => {
  describe('resolveKeepingSlash with path.win32', () => {
    const base = 'D:\\a\\1\\s';
    const cases: Array<[string, string]> = [
      ['content/data/ghost.db', 'D:\\a\\1\\s\\content\\data\\ghost.db'],
      ['content\\data\\ghost.db', 'D:\\a\\1\\s\\content\\data\\ghost.db'],
      ['content/data/', 'D:\\a\\1\\s\\content\\data\\'],
      ['content\\data\\', 'D:\\a\\1\\s\\content\\data\\'],
      ['..\\drop\\', 'D:\\a\\1\\drop\\'],
      ['C:\\backups\\ghost.db', 'C:\\backups\\ghost.db'],
      ['c:/backups/', 'c:\\backups\\'],
      ['\\\\fileserver\\share\\backups\\', '\\\\fileserver\\share\\backups\\'],
      ['E:\\', 'E:\\'],
      ['\\backups\\', 'D:\\backups\\'],
    ];
    for (const [given, expected] of cases) {
      it(`${given} → ${expected}`, () => {
        assert.equal(resolveKeepingSlash(base, given, path.win32), expected);
      });
    }

    it('keeps paths over 260 characters whole (Node opens them; tools without long-path support may not)', () => {
      const deep = Array.from({ length: 30 }, (_, i) => `folder-${i}`).join('\\') + '\\';
      const resolved = resolveKeepingSlash(base, deep, path.win32);
      assert.ok(resolved.length > 260, `${resolved.length}`);
      assert.ok(resolved.startsWith('D:\\a\\1\\s\\folder-0\\') && resolved.endsWith('folder-29\\'));
    });

    it('on Linux, a trailing backslash still means a folder (a pipeline shared with Windows agents)', () => {
      assert.equal(resolveKeepingSlash('/w', 'out\\', path.posix), '/w/out/');
      assert.equal(resolveKeepingSlash('/w', 'backups\\daily\\', path.posix), '/w/backups\\daily/', 'inner backslashes stay: on Linux they belong to the name');
    });
  });

  describe('exclude globs', () => {
    const on = (platform: NodeJS.Platform, patterns: string[]) => compileExclude('site', patterns, platform);

    it('take backslashes as folder separators, as Windows users write them', () => {
      for (const platform of ['win32', 'linux'] as const) {
        const excluded = on(platform, ['content\\logs\\**', '.\\node_modules\\**']);
        assert.ok(excluded('content/logs/ghost.log', false), platform);
        assert.ok(excluded('content/logs', true), `${platform}: the folder itself, so it is not descended into`);
        assert.ok(excluded('node_modules/knex/index.js', false), platform);
        assert.ok(!excluded('content/images/logs.png', false), platform);
      }
    });

    it('ignore case on Windows, where the file system does, and not on Linux', () => {
      assert.ok(on('win32', ['node_modules/**'])('Node_Modules/knex/index.js', false));
      assert.ok(on('win32', ['**/*.LOG'])('content/logs/ghost.log', false));
      assert.ok(!on('linux', ['node_modules/**'])('Node_Modules/knex/index.js', false));
    });

    it('refuse absolute patterns of either kind on every agent', () => {
      for (const platform of ['win32', 'linux'] as const) {
        for (const pattern of ['C:\\site\\logs\\**', 'c:/site/**', '\\\\server\\share\\**', '/var/www/**', '\\logs\\**']) {
          assert.throws(() => on(platform, [pattern]), /is absolute; exclude patterns are relative to site/, `${platform}: ${pattern}`);
        }
      }
    });
  });
});
