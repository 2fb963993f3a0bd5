/**
 * Why an archive operation failed, as a stable code callers can branch on
 * (the message is for people and may change).
 */
export type ArchiveErrorCode =
  | 'ROOT_MISSING'
  | 'ROOT_NOT_A_FOLDER'
  | 'NOTHING_TO_ARCHIVE'
  | 'BAD_EXCLUDE'
  | 'UNREADABLE'
  | 'LINK_OUTSIDE_ROOT'
  | 'BROKEN_LINK'
  | 'LINK_LOOP'
  | 'UNSUPPORTED_NAME'
  | 'WRITE_FAILED'
  | 'ZIP_MISSING'
  | 'CORRUPT_ARCHIVE'
  | 'UNSAFE_ENTRY'
  | 'UNSUPPORTED_ENTRY'
  | 'DESTINATION_NOT_EMPTY'
  | 'EXTRACT_FAILED';

/** Every error thrown by lib/archive is one of these; `cause` keeps the underlying error when there is one. */
export class ArchiveError extends Error {
  override readonly name = 'ArchiveError';
  constructor(
    readonly code: ArchiveErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Short text for an underlying error, e.g. "EACCES: permission denied". */
export function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const msg = err.message.replace(/, (open|read|stat|lstat|scandir|opendir|mkdir|realpath) '.*'$/, '');
    return code && !msg.startsWith(code) ? `${code}: ${msg}` : msg;
  }
  return String(err);
}

export function errnoCode(err: unknown): string | undefined {
  return err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
}
