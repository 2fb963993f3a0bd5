/**
 * `npm run demo` as a test: the whole pipeline against a live blog, every step as the agent runs
 * it, and the artifact it leaves.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import AdmZip from 'adm-zip';
import Database from 'better-sqlite3';
import { runDemo } from '../demo/run';

describe('the demo (npm run demo)', function () {
  this.timeout(300_000);

  it('runs the pipeline end to end against a live blog and reports it', async () => {
    const lines: string[] = [];
    const report = await runDemo({ keep: true, print: (l) => lines.push(l) });
    const root = report.folder!;
    try {
      assert.ok(report.ok, lines.join('\n'));
      assert.deepEqual(
        report.steps.map((s) => [s.task, s.result]),
        [
          ['AppServiceWebJobRun', 'Succeeded'],
          ['AppServiceDownload', 'Succeeded'],
          ['AppServiceDownload', 'Succeeded'],
          ['GhostMigrate', 'Succeeded'],
          ['SitePackage', 'Succeeded'],
          // The release's guard: catches the posts written after the backup, passes once the blog
          // is quiet and backed up again, and catches one more post written on purpose.
          ['AppServiceDatabaseGuard', 'Failed'],
          ['AppServiceWebJobRun', 'Succeeded'],
          ['AppServiceDownload', 'Succeeded'],
          ['AppServiceDatabaseGuard', 'Succeeded'],
          ['AppServiceDatabaseGuard', 'Failed'],
        ],
      );
      // Kudu starts the job through its shell entry, and the launcher picks the Node and the driver.
      assert.match(report.steps[0].detail, /\(run\.sh → Node v\d+\.\d+\.\d+ \w+, better-sqlite3\)/);
      assert.match(report.steps[5].detail, /has changed since the backup: its change counter went from \d+ to \d+: \d+ commits? since the backup/);
      assert.match(report.steps[9].detail, /1 commit since the backup/);
      assert.equal(report.migrationsApplied, 4);
      assert.ok(report.backupStall!.writes > 0, 'the blog kept publishing during the backup');
      assert.deepEqual(report.backupStall!.errors, [], 'and saw no errors');
      assert.match(lines.join('\n'), /The pipeline succeeded\./);

      const zip = new AdmZip(report.artifact!.path);
      const names = zip.getEntries().map((e) => e.entryName);
      assert.ok(names.includes('content/data/ghost.db'));
      assert.ok(names.includes('content/images/2026/11/photo-1.jpg'));
      assert.ok(!names.some((n) => n.startsWith('node_modules/')));
      // The packaged database is the migrated one.
      const extracted = path.join(root, 'check');
      zip.extractEntryTo('content/data/ghost.db', extracted, false, true);
      const db = new Database(path.join(extracted, 'ghost.db'), { readonly: true });
      try {
        assert.ok((db.prepare("SELECT count(*) FROM migrations WHERE version = '6.2'").pluck().get() as number) > 0);
        assert.ok((db.prepare('SELECT count(*) FROM posts').pluck().get() as number) > 1000);
      } finally {
        db.close();
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
