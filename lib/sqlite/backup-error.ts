/**
 * The one error type of a failed backup, besides the SqliteFileError that names a bad source file
 * (missing, empty, not SQLite, unreadable, corrupt). Every message says what happened, that the
 * destination was left as it was, and what to do.
 */
export type BackupErrorKind =
  /** The database stayed locked longer than the busy timeout. */
  | 'busy'
  /** The destination folder or file cannot be created, written or replaced. */
  | 'destination'
  /** The copy failed its verification, so it did not replace anything. */
  | 'verify'
  /** The source changed in a way a backup cannot follow (journal mode switched, file shrank under a lock). */
  | 'source-changed'
  /** A bad option or argument. */
  | 'usage';

export class SqliteBackupError extends Error {
  override readonly name = 'SqliteBackupError';
  constructor(
    message: string,
    readonly kind: BackupErrorKind,
  ) {
    super(message);
  }
}

/** True for better-sqlite3's SQLITE_BUSY / SQLITE_LOCKED errors (extended codes included). */
export function isBusyError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && /^SQLITE_(BUSY|LOCKED)/.test(code);
}
