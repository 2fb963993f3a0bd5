/**
 * lib/sqlite/backup-args: the backup CLI and the WebJob take the same flags with the same number
 * rules and the same messages; the two front ends run as child processes, as a user runs them.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BackupUsageError, parseBackupArguments, type BackupFrontEnd } from '../../lib/sqlite/backup-args';
import { BACKUP_CLI } from '../../testkit/harness/sqlite-app';

const WEBJOB = path.resolve(__dirname, '..', '..', 'webjobs', 'sqlite-backup', 'run.js');

function messageOf(args: string[], frontEnd: BackupFrontEnd): string {
  try {
    parseBackupArguments(args, frontEnd);
  } catch (err) {
    assert.ok(err instanceof BackupUsageError, String(err));
    return err.message;
  }
  throw new Error(`no error for ${args.join(' ')}`);
}

describe('lib/sqlite backup arguments (CLI and WebJob)', () => {
  it('reads the same options for both front ends', () => {
    const flags = ['--verify', 'quick', '--gzip', '--skip-if-unchanged', '--keep-last', '7', '--busy-timeout', '2500', '--heartbeat-seconds', '0.5'];
    const cli = parseBackupArguments(['backup', 'a.db', 'b/', ...flags], 'cli');
    const job = parseBackupArguments(['--source', 'a.db', '--destination', 'b/', ...flags], 'webjob');
    assert.deepEqual(cli, job);
    assert.deepEqual(
      { source: cli.source, destination: cli.destination, verify: cli.verify, gzip: cli.gzip, skip: cli.skipIfUnchanged, keep: cli.keepLast, busy: cli.busyTimeoutMs, beat: cli.heartbeatSeconds },
      { source: 'a.db', destination: 'b/', verify: 'quick', gzip: true, skip: true, keep: 7, busy: 2500, beat: 0.5 },
    );
    assert.deepEqual(parseBackupArguments(['backup', '--source', 'a.db', '--destination', 'b/'], 'cli').source, 'a.db');
    const defaults = parseBackupArguments([], 'webjob');
    assert.deepEqual([defaults.source, defaults.verify, defaults.keepLast, defaults.busyTimeoutMs, defaults.heartbeatSeconds], [undefined, 'integrity', 0, 10000, 20]);
  });

  it('refuses the same bad values with the same messages', () => {
    const cases: Array<[string[], RegExp]> = [
      [['--keep-last', 'many'], /^--keep-last must be a whole number, 0 or more, not 'many'\.$/],
      [['--keep-last', '1.5'], /^--keep-last must be a whole number, 0 or more, not '1\.5'\.$/],
      [['--keep-last=-1'], /^--keep-last must be a whole number, 0 or more, not '-1'\.$/],
      [['--keep-last', '-1'], /^Option '--keep-last' argument is ambiguous/],
      [['--busy-timeout', '1e3'], /^--busy-timeout must be a whole number, 0 or more, not '1e3'\.$/],
      [['--busy-timeout', ''], /^--busy-timeout must be a whole number/],
      [['--heartbeat-seconds', '0'], /^--heartbeat-seconds must be a number above 0, not '0'\.$/],
      [['--verify', 'full'], /^--verify must be one of integrity, quick, none, not 'full'\.$/],
      [['--colour'], /Unknown option '--colour'/],
    ];
    for (const [flags, expected] of cases) {
      const cli = messageOf(['backup', 'a.db', 'b.db', ...flags], 'cli');
      const job = messageOf(flags, 'webjob');
      assert.match(cli, expected, flags.join(' '));
      assert.equal(job, cli, flags.join(' '));
    }
  });

  it("keeps each front end's own shape: the CLI's command and paths, the WebJob's flags only", () => {
    assert.match(messageOf(['restore', 'a.db', 'b.db'], 'cli'), /Unknown command 'restore'/);
    assert.match(messageOf(['backup', 'a.db'], 'cli'), /Expected: backup <source> <destination>/);
    assert.match(messageOf(['backup', 'a.db', 'b.db', '--source', 'c.db'], 'cli'), /not both/);
    assert.match(messageOf(['stray'], 'webjob'), /Unexpected argument 'stray': give paths as --source <path> and --destination <path>\./);
    assert.match(messageOf(['--json'], 'webjob'), /always prints its result as a BACKUP_RESULT line/);
  });

  it('prints the same message from both commands, and exits 2', () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'args-home-'));
    try {
      const cli = spawnSync(process.execPath, [BACKUP_CLI, 'backup', 'a.db', 'b.db', '--keep-last', '2x'], { encoding: 'utf8' });
      const job = spawnSync(process.execPath, [WEBJOB, '--keep-last', '2x'], { encoding: 'utf8', env: { ...process.env, HOME: home, WEBJOBS_COMMAND_ARGUMENTS: '' } });
      assert.equal(cli.status, 2);
      assert.equal(job.status, 2);
      const message = "--keep-last must be a whole number, 0 or more, not '2x'.";
      assert.ok(cli.stderr.startsWith(`${message}\n`), cli.stderr);
      assert.ok(job.stdout.startsWith(`Bad arguments: ${message}\n`), job.stdout);
      for (const usage of [cli.stderr, job.stdout]) assert.match(usage, /--heartbeat-seconds <s>  how often to print progress/);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
