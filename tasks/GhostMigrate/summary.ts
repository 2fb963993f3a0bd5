/**
 * The markdown summary attached to the run (Extensions tab of the build): what was migrated, by
 * version and name, or why it failed and what became of the database.
 */
import * as path from 'node:path';
import type { MigrationReport } from './migrate';

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
const code = (s: string) => '`' + s.replace(/`/g, "'") + '`';

export function renderSummary(report: MigrationReport): string {
  const out: string[] = [];
  const db = code(path.basename(report.database));
  switch (report.status) {
    case 'migrated':
      out.push(`### Ghost migrations: ${report.applied.length} applied to ${db}`, '', `Database version ${report.versionBefore ?? '(none)'} → **${report.databaseVersion ?? '(none)'}**.`);
      break;
    case 'up-to-date':
      out.push(`### Ghost migrations: ${db} is up to date`, '', `No migration was pending; database version **${report.databaseVersion ?? '(none)'}**.`);
      break;
    case 'initialised':
      out.push(
        `### Ghost migrations: ${db} initialised`,
        '',
        `A new database was created; ${report.applied.length} migration(s) recorded (knex-migrator's init runs the init scripts and records later versions as done). Database version **${report.databaseVersion ?? '(none)'}**.`,
      );
      break;
    case 'failed': {
      const f = report.failure!;
      const fate = f.database === 'restored' ? (report.existedBefore ? 'database restored' : 'new database removed') : f.database === 'kept' ? 'database left as is' : 'RESTORE FAILED';
      out.push(`### Ghost migrations failed: ${fate}`, '');
      for (const p of f.problems) out.push(`- ${cell(p.message)}`);
      if (f.errorLines.length) out.push('', '```', ...f.errorLines.map((l) => l.replace(/```/g, "'''")), '```');
      if (f.database === 'restored' && report.existedBefore) out.push('', `${db} is byte-identical to before the run (sha256 ${code(f.sha256 ?? '')}).`);
      if (f.backup) out.push('', `The copy taken before the run: ${code(f.backup)}.`);
      break;
    }
  }
  if (report.applied.length && report.status !== 'failed') {
    out.push('', '| Version | Migration |', '|---|---|', ...report.applied.map((r) => `| ${cell(r.version)} | ${cell(r.name)} |`));
  } else if (report.applied.length) {
    out.push('', `Left in the database: ${report.applied.length} migration(s) recorded by the failed run.`);
  }
  const facts = [
    `Database: ${code(report.database)}`,
    `Ghost ${report.ghostVersion ?? '(unknown)'}${report.currentVersion ? ` (currentVersion ${report.currentVersion})` : ''}, knex-migrator ${report.knexMigratorVersion ?? '(unknown)'}, Node.js ${report.nodeVersion ?? '(unknown)'}`,
    report.ran ? `Ran: ${code(report.ran)}${report.durationMs !== undefined ? ` in ${(report.durationMs / 1000).toFixed(1)} s` : ''}` : undefined,
    report.pendingBefore ? `Pending before the run: ${report.pendingBefore}` : 'Pending before the run: none',
    report.removedExports.length
      ? `Removed Ghost's pre-migration JSON export${report.removedExports.length > 1 ? 's' : ''} of the site (the task keeps its own copy of the database): ${report.removedExports.map(code).join(', ')}`
      : undefined,
    report.lockReleasedFrom !== undefined ? `A stale migration lock${report.lockReleasedFrom ? ` (acquired ${report.lockReleasedFrom})` : ''} was released first` : undefined,
  ].filter((x): x is string => !!x);
  out.push('', ...facts.map((f) => `- ${cell(f)}`));
  if (report.warnings.length) out.push('', '**Warnings**', '', ...report.warnings.map((w) => `- ${cell(w)}`));
  return out.join('\n') + '\n';
}
