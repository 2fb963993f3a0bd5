// The byte layout of zip records (PKWARE APPNOTE 6.3.x), for the writer. Kept apart from the
// writer's flow control so each can be read on its own. Field comments give APPNOTE names.

/** Values above this do not fit a 32-bit field (0xffffffff itself means "see the Zip64 field"). */
export const MAX_32 = 0xfffffffe;
/** Entry counts at or above this need the Zip64 end record. */
export const MAX_16 = 0xffff;

const VERSION_MADE_BY = (3 << 8) | 63; // 3 = Unix (mode in the high 16 bits of external attributes), spec 6.3
const VERSION_NEEDED = 20; // deflate, folders
const VERSION_NEEDED_ZIP64 = 45;
const FLAG_DATA_DESCRIPTOR = 1 << 3; // sizes and CRC follow the data
const FLAG_UTF8 = 1 << 11;
const MSDOS_DIRECTORY = 0x10;

export const METHOD_STORED = 0;
export const METHOD_DEFLATED = 8;

export interface EntryRecord {
  /** Kept as a string: a small Buffer per entry would pin, for the whole run, the shared pool
   * slab it was cut from (64 KiB in Node 24), and with it the short-lived buffers cut from the
   * same slab; on a 2 GiB site that held 84 MB. */
  name: string;
  isDirectory: boolean;
  method: number;
  mtime: Date;
  mode: number;
  crc: number;
  compressedSize: number;
  size: number;
  /** Offset of the local header from the start of the archive. */
  offset: number;
  /** Sizes and CRC come in a data descriptor after the data (streamed entries). */
  streamed: boolean;
  /** The local header carries a Zip64 field, so the data descriptor has 8-byte sizes. */
  zip64Local: boolean;
}

// DOS dates are local time with two-second steps (the same convention as zip and yazl); the
// exact time, in UTC, is in the extended-timestamp field below.
const DOS_MIN = new Date(1980, 0, 1).getTime();
const DOS_MAX = new Date(2107, 11, 31, 23, 59, 58).getTime();

export function dosDateTime(mtime: Date): { date: number; time: number } {
  const d = new Date(Math.min(Math.max(mtime.getTime(), DOS_MIN), DOS_MAX));
  return {
    date: ((d.getFullYear() - 1980) << 9) | ((d.getMonth() + 1) << 5) | d.getDate(),
    time: (d.getHours() << 11) | (d.getMinutes() << 5) | Math.floor(d.getSeconds() / 2),
  };
}

/** Info-ZIP extended timestamp (0x5455): modification time in whole seconds, UTC. */
function extendedTimestamp(mtime: Date): Buffer {
  const b = Buffer.alloc(9);
  b.writeUInt16LE(0x5455, 0);
  b.writeUInt16LE(5, 2);
  b.writeUInt8(1, 4); // flags: mtime present
  const seconds = Math.floor(mtime.getTime() / 1000);
  b.writeInt32LE(Math.min(Math.max(seconds, -0x80000000), 0x7fffffff), 5);
  return b;
}

function zip64Field(values: number[]): Buffer {
  const b = Buffer.alloc(4 + 8 * values.length);
  b.writeUInt16LE(0x0001, 0);
  b.writeUInt16LE(8 * values.length, 2);
  values.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), 4 + 8 * i));
  return b;
}

function flags(r: EntryRecord): number {
  return FLAG_UTF8 | (r.streamed ? FLAG_DATA_DESCRIPTOR : 0);
}

export function localHeader(r: EntryRecord): Buffer {
  const name = Buffer.from(r.name, 'utf8');
  const { date, time } = dosDateTime(r.mtime);
  const extra = [extendedTimestamp(r.mtime)];
  // A streamed entry's sizes are unknown here (0, given in the descriptor); a Zip64 local field
  // announces that the descriptor will carry 8-byte sizes.
  if (r.zip64Local) extra.unshift(zip64Field(r.streamed ? [0, 0] : [r.size, r.compressedSize]));
  const extraBytes = Buffer.concat(extra);
  const h = Buffer.alloc(30);
  h.writeUInt32LE(0x04034b50, 0); // local file header signature
  h.writeUInt16LE(r.zip64Local ? VERSION_NEEDED_ZIP64 : VERSION_NEEDED, 4);
  h.writeUInt16LE(flags(r), 6);
  h.writeUInt16LE(r.method, 8);
  h.writeUInt16LE(time, 10);
  h.writeUInt16LE(date, 12);
  h.writeUInt32LE(r.streamed ? 0 : r.crc, 14);
  h.writeUInt32LE(r.zip64Local ? 0xffffffff : r.streamed ? 0 : r.compressedSize, 18);
  h.writeUInt32LE(r.zip64Local ? 0xffffffff : r.streamed ? 0 : r.size, 22);
  h.writeUInt16LE(name.length, 26);
  h.writeUInt16LE(extraBytes.length, 28);
  return Buffer.concat([h, name, extraBytes]);
}

export function dataDescriptor(r: EntryRecord): Buffer {
  const b = Buffer.alloc(r.zip64Local ? 24 : 16);
  b.writeUInt32LE(0x08074b50, 0); // optional signature; macOS Archive Utility wants it
  b.writeUInt32LE(r.crc, 4);
  if (r.zip64Local) {
    b.writeBigUInt64LE(BigInt(r.compressedSize), 8);
    b.writeBigUInt64LE(BigInt(r.size), 16);
  } else {
    b.writeUInt32LE(r.compressedSize, 8);
    b.writeUInt32LE(r.size, 12);
  }
  return b;
}

export function centralHeader(r: EntryRecord, forceZip64 = false): Buffer {
  const name = Buffer.from(r.name, 'utf8');
  const { date, time } = dosDateTime(r.mtime);
  // Only the fields that overflow go to the Zip64 field, in the APPNOTE's order.
  const big = (v: number) => forceZip64 || v > MAX_32;
  const wide: number[] = [];
  if (big(r.size)) wide.push(r.size);
  if (big(r.compressedSize)) wide.push(r.compressedSize);
  if (big(r.offset)) wide.push(r.offset);
  const extra = Buffer.concat([...(wide.length > 0 ? [zip64Field(wide)] : []), extendedTimestamp(r.mtime)]);
  const h = Buffer.alloc(46);
  h.writeUInt32LE(0x02014b50, 0); // central file header signature
  h.writeUInt16LE(VERSION_MADE_BY, 4);
  h.writeUInt16LE(wide.length > 0 || r.zip64Local ? VERSION_NEEDED_ZIP64 : VERSION_NEEDED, 6);
  h.writeUInt16LE(flags(r), 8);
  h.writeUInt16LE(r.method, 10);
  h.writeUInt16LE(time, 12);
  h.writeUInt16LE(date, 14);
  h.writeUInt32LE(r.crc, 16);
  h.writeUInt32LE(big(r.compressedSize) ? 0xffffffff : r.compressedSize, 20);
  h.writeUInt32LE(big(r.size) ? 0xffffffff : r.size, 24);
  h.writeUInt16LE(name.length, 28);
  h.writeUInt16LE(extra.length, 30);
  h.writeUInt16LE(0, 32); // comment length
  h.writeUInt16LE(0, 34); // disk number start
  h.writeUInt16LE(0, 36); // internal attributes
  h.writeUInt32LE((((r.mode & 0xffff) << 16) | (r.isDirectory ? MSDOS_DIRECTORY : 0)) >>> 0, 38);
  h.writeUInt32LE(big(r.offset) ? 0xffffffff : r.offset, 42);
  return Buffer.concat([h, name, extra]);
}

/** End of central directory, preceded by the Zip64 end record and locator when needed. */
export function endOfCentralDirectory(count: number, cdOffset: number, cdSize: number, forceZip64 = false): Buffer {
  const zip64 = forceZip64 || count >= MAX_16 || cdOffset > MAX_32 || cdSize > MAX_32;
  const parts: Buffer[] = [];
  if (zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0); // zip64 end of central directory signature
    rec.writeBigUInt64LE(BigInt(56 - 12), 4); // size of the rest of this record
    rec.writeUInt16LE(VERSION_MADE_BY, 12);
    rec.writeUInt16LE(VERSION_NEEDED_ZIP64, 14);
    rec.writeUInt32LE(0, 16); // this disk
    rec.writeUInt32LE(0, 20); // disk with the central directory
    rec.writeBigUInt64LE(BigInt(count), 24);
    rec.writeBigUInt64LE(BigInt(count), 32);
    rec.writeBigUInt64LE(BigInt(cdSize), 40);
    rec.writeBigUInt64LE(BigInt(cdOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0); // zip64 end of central directory locator signature
    loc.writeUInt32LE(0, 4);
    loc.writeBigUInt64LE(BigInt(cdOffset + cdSize), 8); // where the zip64 record starts
    loc.writeUInt32LE(1, 16); // total disks
    parts.push(rec, loc);
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(0, 4);
  end.writeUInt16LE(0, 6);
  end.writeUInt16LE(zip64 ? 0xffff : count, 8);
  end.writeUInt16LE(zip64 ? 0xffff : count, 10);
  end.writeUInt32LE(zip64 ? 0xffffffff : cdSize, 12);
  end.writeUInt32LE(zip64 ? 0xffffffff : cdOffset, 16);
  end.writeUInt16LE(0, 20); // comment length
  parts.push(end);
  return Buffer.concat(parts);
}
