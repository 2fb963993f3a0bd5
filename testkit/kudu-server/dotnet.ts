// How Kudu's .NET stack renders times, ETags and durations. Clients parse these strings,
// so the server reproduces the exact shapes rather than JavaScript's defaults.

/** .NET ticks (100 ns units since 0001-01-01T00:00:00Z) at the Unix epoch. */
export const UNIX_EPOCH_TICKS = 621355968000000000n;

/** `default(DateTime)` as Json.NET writes it: no fraction, no zone (Kind is Unspecified). */
export const DEFAULT_DATETIME_JSON = '0001-01-01T00:00:00';

export function ticksFromUnixMs(ms: number): bigint {
  const whole = Math.floor(ms);
  // Keep the sub-millisecond part: a double cannot hold ~6e17 ticks exactly.
  return BigInt(whole) * 10000n + BigInt(Math.floor((ms - whole) * 10000)) + UNIX_EPOCH_TICKS;
}

export function ticksFromUnixNs(ns: bigint): bigint {
  return ns / 100n + UNIX_EPOCH_TICKS;
}

/** DateTime.UtcNow with sub-millisecond precision, like .NET's 100 ns clock. */
export function nowTicks(): bigint {
  return ticksFromUnixMs(performance.timeOrigin + performance.now());
}

function pad(n: number | bigint, width: number): string {
  return n.toString().padStart(width, '0');
}

interface Parts { year: number; month: number; day: number; hour: number; minute: number; second: number; fraction7: bigint }

function split(ticks: bigint): Parts {
  const unixTicks = ticks - UNIX_EPOCH_TICKS;
  const ms = Number(unixTicks / 10000n);
  const d = new Date(ms);
  return {
    year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(),
    hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds(),
    fraction7: ((unixTicks % 10000000n) + 10000000n) % 10000000n,
  };
}

/** Json.NET's ISO format `yyyy-MM-ddTHH:mm:ss.FFFFFFF`: up to 7 digits, trailing zeros dropped. */
function isoBody(ticks: bigint): string {
  const p = split(ticks);
  let s = `${pad(p.year, 4)}-${pad(p.month, 2)}-${pad(p.day, 2)}T${pad(p.hour, 2)}:${pad(p.minute, 2)}:${pad(p.second, 2)}`;
  const fraction = pad(p.fraction7, 7).replace(/0+$/, '');
  if (fraction) s += '.' + fraction;
  return s;
}

/** A UTC DateTime as Json.NET serializes it, e.g. `2024-05-01T12:00:00.1234567Z`. */
export function jsonDateTimeUtc(ticks: bigint | undefined): string {
  return ticks === undefined ? DEFAULT_DATETIME_JSON : isoBody(ticks) + 'Z';
}

/** A UTC DateTimeOffset as Json.NET serializes it (VFS listings), e.g. `...+00:00`. */
export function jsonDateTimeOffsetUtc(ticks: bigint): string {
  return isoBody(ticks) + '+00:00';
}

/** Parse what jsonDateTimeUtc wrote (and plain ISO strings) back to ticks. */
export function parseJsonDateTime(text: string | undefined): bigint | undefined {
  if (!text) return undefined;
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,7}))?(Z|[+-]\d\d:\d\d)?$/.exec(text);
  if (!m) return undefined;
  if (m[1] === '0001' && m[2] === '01' && m[3] === '01' && !m[7]) return undefined;
  const ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
  const fraction = BigInt((m[7] ?? '').padEnd(7, '0') || '0');
  return BigInt(ms) * 10000n + fraction + UNIX_EPOCH_TICKS;
}

/** TimeSpan.ToString(): `[d.]hh:mm:ss[.fffffff]`. */
export function timeSpanText(ticks: bigint): string {
  const negative = ticks < 0n;
  let t = negative ? -ticks : ticks;
  const fraction = t % 10000000n; t /= 10000000n;
  const seconds = t % 60n; t /= 60n;
  const minutes = t % 60n; t /= 60n;
  const hours = t % 24n; const days = t / 24n;
  let s = `${negative ? '-' : ''}${days > 0n ? days + '.' : ''}${pad(hours, 2)}:${pad(minutes, 2)}:${pad(seconds, 2)}`;
  if (fraction > 0n) s += '.' + pad(fraction, 7);
  return s;
}

/** `{0}` of a DateTime under the invariant culture, as in Kudu's log lines: `MM/dd/yyyy HH:mm:ss`. */
export function logTimestamp(ticks: bigint): string {
  const p = split(ticks);
  return `${pad(p.month, 2)}/${pad(p.day, 2)}/${pad(p.year, 4)} ${pad(p.hour, 2)}:${pad(p.minute, 2)}:${pad(p.second, 2)}`;
}

/** `DateTime.UtcNow.ToString("yyyyMMddHHmmssffff")`: the triggered run id. */
export function runIdFromTicks(ticks: bigint): string {
  const p = split(ticks);
  return `${pad(p.year, 4)}${pad(p.month, 2)}${pad(p.day, 2)}${pad(p.hour, 2)}${pad(p.minute, 2)}${pad(p.second, 2)}${pad(p.fraction7 / 1000n, 4)}`;
}

/**
 * The VFS ETag: Kudu formats `BitConverter.GetBytes(LastWriteTimeUtc.Ticks)` byte by byte,
 * so the hex is the little-endian byte order of the ticks, not the number written in hex.
 */
export function vfsEtagFromTicks(ticks: bigint): string {
  const buf = Buffer.alloc(8);
  buf.writeBigInt64LE(ticks);
  return `"${buf.toString('hex')}"`;
}

/** RFC 1123 date for Last-Modified. */
export function httpDate(ticks: bigint): string {
  return new Date(Number((ticks - UNIX_EPOCH_TICKS) / 10000n)).toUTCString();
}

/** A stable 32-bit string hash (FNV-1a) standing in for .NET's GetHashCode in history ETags. */
export function hash32(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16);
}
