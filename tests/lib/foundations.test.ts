/**
 * The small shared pieces every task goes through: neutralising outside text, the remote-path
 * parser, the deadline, and the file helpers.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Deadline, DeadlineError } from '../../lib/deadline';
import { resolveKeepingSlash, tempPathBeside, writeFileAtomic } from '../../lib/fs';
import { memoryLog } from '../../lib/log';
import { checkEntryName, checkJobName, parseRemotePath, RemotePathError, vfsUrlPath, zipUrlPath } from '../../lib/remote-path';
import { cleanLines, cleanText, neutraliseCommands } from '../../lib/text';

describe('lib/text', function () {
  it('neutralises ##vso[ and ##[ in any case, so the agent neither runs nor formats them', function () {
    assert.equal(neutraliseCommands('a ##vso[task.setvariable variable=X]1'), 'a ##_vso[task.setvariable variable=X]1');
    assert.equal(neutraliseCommands('##VSO[task.prependpath]x ##[group]y ##[error]z'), '##_VSO[task.prependpath]x ##_[group]y ##_[error]z');
    assert.doesNotMatch(neutraliseCommands('####vso[vso[##[##vso['), /##vso\[|##\[/i);
  });

  it('cleans control characters, bidi overrides and lone surrogates out of a value, and cuts it', function () {
    assert.equal(cleanText('a\nb\r\u0007c\u202ed\ud800'), 'a?b??c?d?');
    assert.equal(cleanText('tab\tkept'), 'tab\tkept');
    assert.equal(cleanText('x'.repeat(10), 4), 'xxxx…');
    assert.equal(cleanText('\n##vso[task.setvariable variable=X]1'), '?##_vso[task.setvariable variable=X]1');
    assert.equal(cleanLines('one\r\n##vso[a]b\ntwo\u0000'), 'one\n##_vso[a]b\ntwo?');
  });
});

describe('lib/remote-path', function () {
  it('accepts paths relative to %HOME%, with backslashes, a leading slash and encoded names', function () {
    assert.deepEqual(parseRemotePath('site/wwwroot/content/data/ghost.db').segments, ['site', 'wwwroot', 'content', 'data', 'ghost.db']);
    assert.equal(parseRemotePath('/site\\wwwroot\\content\\images\\').text, 'site/wwwroot/content/images/');
    assert.equal(parseRemotePath('').folder, true);
    assert.equal(vfsUrlPath(parseRemotePath('site/a b/c#?.db'.replace('#?', ''))), 'api/vfs/site/a%20b/c.db');
    assert.equal(zipUrlPath(parseRemotePath('site/wwwroot')), 'api/zip/site/wwwroot/');
  });

  it('refuses anything that could leave the file system API', function () {
    for (const bad of ['../settings', 'site/wwwroot/../../../../deployments', 'site/./x', 'site\\..\\x', 'site/%2e%2e/x', 'site/%2E%2e/x', 'site/.%2e/x', 'a/%2f/b', 'a/..%5c/b', 'https://evil.example/x', 'C:\\home\\site', 'site/x?y', 'site/x#y', 'site/\u0000x', 'site/%zz']) {
      assert.throws(() => parseRemotePath(bad), RemotePathError, bad);
    }
    assert.throws(() => parseRemotePath('../settings'), /relative to the app's %HOME% folder, like site\/wwwroot/);
  });

  it('refuses listed names that are not one path segment, and job names that are not folder names', function () {
    for (const bad of ['', '.', '..', 'a/b', 'a\\b', 'a\u0000b']) assert.throws(() => checkEntryName(bad), RemotePathError);
    assert.equal(checkEntryName('ok name.db'), 'ok name.db');
    assert.equal(checkJobName(' sqlite-backup '), 'sqlite-backup');
    for (const bad of ['../x', 'a/b', '.hidden', 'a..b', 'x.', '', 'a b', 'x'.repeat(129)]) assert.throws(() => checkJobName(bad), RemotePathError, bad);
  });
});

describe('lib/deadline', function () {
  it('bounds sleeps and aborts its signal when it passes', async function () {
    const deadline = Deadline.after(200, 'a test (0.2 s)');
    const started = Date.now();
    await deadline.sleep(60_000);
    assert.ok(Date.now() - started < 5000);
    assert.ok(deadline.expired());
    assert.ok(deadline.signal.aborted);
    assert.throws(() => deadline.check('polling'), (err: unknown) => err instanceof DeadlineError && /Stopped polling: the time allowed by a test \(0\.2 s\) ran out/.test(err.message));
  });

  it('takes the earlier of two limits', function () {
    const long = Deadline.after(60_000, 'long');
    assert.equal(long.within(10, 'short').source, 'short');
    assert.equal(long.within(120_000, 'longer').source, 'long');
    assert.equal(Deadline.never().remainingMs(), Infinity);
    long.dispose();
  });
});

describe('lib/fs and lib/log', function () {
  it('uses short, fixed-length temporary names, so a name at the length limit still works', function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fs-'));
    try {
      const target = path.join(dir, 'n'.repeat(255));
      assert.equal(path.basename(tempPathBeside(target)).length, path.basename(tempPathBeside(path.join(dir, 'x'))).length);
      writeFileAtomic(target, 'data');
      assert.equal(fs.readFileSync(target, 'utf8'), 'data');
      assert.deepEqual(fs.readdirSync(dir), ['n'.repeat(255)]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('resolves a destination keeping a trailing slash, with either path flavour', function () {
    assert.equal(resolveKeepingSlash('/work', 'out/'), '/work/out/');
    assert.equal(resolveKeepingSlash('/work', 'out'), '/work/out');
    assert.equal(resolveKeepingSlash('C:\\agent\\w', 'drop\\', path.win32), 'C:\\agent\\w\\drop\\');
    assert.equal(resolveKeepingSlash('C:\\agent\\w', 'D:/x/', path.win32), 'D:\\x\\');
  });

  it('keeps lines in a memory log', function () {
    const log = memoryLog();
    log.info('a');
    log.warn('b');
    log.group('g');
    log.endGroup();
    assert.deepEqual(log.lines, ['a', 'WARNING: b', '[group] g', '[endgroup]']);
  });
});
