/**
 * The 100-byte header at the start of every SQLite database file
 * (https://www.sqlite.org/fileformat2.html#the_database_header). Reading it needs no lock and no
 * SQLite library, which is what lets a remote file be checked with a few bytes of a Range request.
 *
 * @example
 *   const header = parseHeader(fs.readFileSync('ghost.db').subarray(0, 100));
 *   header.pageSize;       // 4096
 *   header.changeCounter;  // grows with every commit in rollback-journal mode
 */
export const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');
export const HEADER_BYTES = 100;

export interface SqliteHeader {
  pageSize: number;
  /** 1 = rollback journal ("legacy"), 2 = WAL. */
  writeVersion: number;
  readVersion: number;
  journal: 'rollback' | 'wal';
  /** Incremented by every commit that changes the file in rollback-journal mode. */
  changeCounter: number;
  /** The size in pages, when the header's own record of it is valid (see versionValidFor). */
  pageCount: number | undefined;
  freelistPages: number;
  schemaCookie: number;
  userVersion: number;
  applicationId: number;
  /** The change counter value when the in-header page count was last written. */
  versionValidFor: number;
  sqliteVersion: number;
}

export function hasSqliteMagic(bytes: Buffer): boolean {
  return bytes.length >= SQLITE_MAGIC.length && bytes.subarray(0, SQLITE_MAGIC.length).equals(SQLITE_MAGIC);
}

/** Parses the header; throws when the bytes are not the start of a SQLite database. */
export function parseHeader(bytes: Buffer): SqliteHeader {
  if (bytes.length < HEADER_BYTES) throw new Error(`a SQLite header is ${HEADER_BYTES} bytes; got ${bytes.length}`);
  if (!hasSqliteMagic(bytes)) throw new Error('the bytes do not start with "SQLite format 3"');
  const rawPageSize = bytes.readUInt16BE(16);
  const pageSize = rawPageSize === 1 ? 65536 : rawPageSize;
  const writeVersion = bytes[18];
  const readVersion = bytes[19];
  const changeCounter = bytes.readUInt32BE(24);
  const inHeaderPages = bytes.readUInt32BE(28);
  const versionValidFor = bytes.readUInt32BE(92);
  return {
    pageSize,
    writeVersion,
    readVersion,
    journal: writeVersion === 2 || readVersion === 2 ? 'wal' : 'rollback',
    changeCounter,
    pageCount: inHeaderPages > 0 && versionValidFor === changeCounter ? inHeaderPages : undefined,
    freelistPages: bytes.readUInt32BE(36),
    schemaCookie: bytes.readUInt32BE(40),
    userVersion: bytes.readUInt32BE(60),
    applicationId: bytes.readUInt32BE(68),
    versionValidFor,
    sqliteVersion: bytes.readUInt32BE(96),
  };
}
