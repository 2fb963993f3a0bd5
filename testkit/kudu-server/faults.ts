// Injected failures: what the App Service front end, the network or a recycling SCM site do to
// a client. A fault applies to one request and is used up; faults are tried in order of addition.
import type { ServerResponse } from 'node:http';

export interface FaultSpec {
  method?: string;
  /** A string equals the URL path (with or without the query); a RegExp is tested on path+query. */
  path: string | RegExp;
  /** How many requests it affects; default 1. Infinity is allowed. */
  times?: number;
  /** Answer with this status instead of the normal handling. */
  status?: number;
  /** Bytes as they are, or text sent as UTF-8. */
  body?: string | Buffer;
  headers?: Record<string, string>;
  /** Wait this long before answering (normal or faulty). */
  delayMs?: number;
  /** Destroy the socket (TCP RST where possible) once N body bytes were written. */
  resetAfterBytes?: number;
  /**
   * End the body after N bytes. A Content-Length response has its connection closed (the client
   * sees a short, broken body); a chunked response gets its terminating chunk, so HTTP sees a
   * complete but short body — the nasty case a client must catch by verifying content.
   */
  truncateAfterBytes?: number;
  /**
   * Handle the request normally (a POST /run starts the run) but never answer: the connection is
   * reset when the response would start. The client cannot tell whether the request took effect.
   */
  dropResponse?: boolean;
  /**
   * With `status`: send the headers at once, then the body one byte every `trickleMs`, as a server
   * that never goes quiet long enough for an idle timeout and never finishes.
   */
  trickleMs?: number;
}

/**
 * What App Service's front end answers before a request reaches Kudu, for `body` with status 403:
 * an access restriction that does not let the client in (the plain text older stamps send, and the
 * page newer ones send), and a stopped app.
 */
export const FRONT_END_403 = {
  ipForbidden: 'Ip Forbidden',
  blockedPage:
    '<!DOCTYPE html><html><head><title>Web App - Unavailable</title></head><body><div id="content">' +
    '<h1 id="unavailable">Error 403 - Forbidden</h1><p id="tryAgain">The web app you have attempted to reach has blocked your access.</p>' +
    '</div></body></html>',
  stoppedPage:
    '<!DOCTYPE html><html><head><title>Web App - Unavailable</title><style type="text/css">body { font-family: sans-serif; }</style></head><body><div id="content">' +
    '<h1 id="unavailable">Error 403 - This web app is stopped.</h1>' +
    '<p id="tryAgain">The web app you have attempted to reach is currently stopped and does not accept any requests. Please try to reload the page or visit it again soon.</p>' +
    '<p id="toAdmin">If you are the web app administrator, please find the common 403 error scenarios and resolution here. For further troubleshooting tools and recommendations, please visit Azure Portal.</p>' +
    '</div></body></html>',
} as const;

/** Writes `body` one byte every `everyMs` until it is sent or the response closes. */
export function trickle(res: ServerResponse, body: Buffer, everyMs: number): void {
  let sent = 0;
  const timer = setInterval(() => {
    if (sent >= body.length) {
      clearInterval(timer);
      res.end();
      return;
    }
    res.write(body.subarray(sent, sent + 1));
    sent += 1;
  }, everyMs);
  res.on('close', () => clearInterval(timer));
}

export interface FaultHandle {
  readonly spec: Readonly<FaultSpec>;
  /** Uses left. */
  readonly remaining: number;
  /** Requests it has affected so far. */
  readonly hits: number;
  remove(): void;
}

class Fault implements FaultHandle {
  remaining: number;
  hits = 0;
  constructor(readonly spec: Readonly<FaultSpec>, private readonly owner: Faults) {
    this.remaining = spec.times ?? 1;
  }
  remove(): void {
    this.owner.remove(this);
  }
}

export class Faults {
  private list: Fault[] = [];

  add(spec: FaultSpec): FaultHandle {
    if (spec.times !== undefined && !(spec.times >= 0)) throw new Error('fault times must be >= 0');
    const fault = new Fault({ ...spec }, this);
    this.list.push(fault);
    return fault;
  }

  clear(): void {
    this.list = [];
  }

  remove(fault: FaultHandle): void {
    this.list = this.list.filter(f => f !== fault);
  }

  /** The first live fault matching the request, with one use consumed. */
  take(method: string, pathWithQuery: string): FaultSpec | undefined {
    for (const fault of this.list) {
      if (fault.remaining > 0 && faultMatches(fault.spec, method, pathWithQuery)) {
        fault.remaining -= 1;
        fault.hits += 1;
        return fault.spec;
      }
    }
    return undefined;
  }
}

function faultMatches(spec: FaultSpec, method: string, pathWithQuery: string): boolean {
  if (spec.method && spec.method.toUpperCase() !== method.toUpperCase()) return false;
  if (spec.path instanceof RegExp) {
    spec.path.lastIndex = 0;
    return spec.path.test(pathWithQuery);
  }
  const pathname = pathWithQuery.split('?')[0];
  if (spec.path === pathname || spec.path === pathWithQuery) return true;
  try {
    return spec.path === decodeURIComponent(pathname);
  } catch {
    return false;
  }
}

type WriteCallback = (error?: Error | null) => void;

function toBuffer(chunk: unknown, encoding?: BufferEncoding): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, encoding ?? 'utf8');
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return Buffer.alloc(0);
}

/**
 * Count body bytes as the handler writes them (buffered or streamed alike) and break the
 * response once `limit` bytes have gone out. Bodies of `limit` bytes or fewer pass untouched.
 */
export function limitResponseBody(res: ServerResponse, limit: number, mode: 'reset' | 'truncate'): void {
  const originalWrite = res.write.bind(res) as (chunk: Buffer, cb?: WriteCallback) => boolean;
  const originalEnd = res.end.bind(res) as (chunk?: Buffer | WriteCallback, cb?: WriteCallback) => ServerResponse;
  let sent = 0;
  let cut = false;

  const breakResponse = (lastPart: Buffer): void => {
    cut = true;
    const socket = res.socket;
    const afterFlush = (): void => {
      if (mode === 'reset') {
        // A short pause lets the last bytes reach the client before the RST discards the send buffer.
        setTimeout(() => {
          if (!socket || socket.destroyed) return;
          if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
          else socket.destroy();
        }, 20);
      } else if (res.getHeader('content-length') !== undefined) {
        socket?.end();
        setTimeout(() => socket?.destroy(), 200).unref();
      } else {
        originalEnd();
      }
    };
    if (!res.headersSent) res.flushHeaders();
    if (lastPart.length > 0) originalWrite(lastPart, () => afterFlush());
    else afterFlush();
  };

  // Returns [bytes to pass on, whether the limit is crossed].
  const admit = (buf: Buffer): [Buffer, boolean] => {
    if (sent + buf.length <= limit) {
      sent += buf.length;
      return [buf, false];
    }
    const part = buf.subarray(0, limit - sent);
    sent = limit;
    return [part, true];
  };

  const patched = res as unknown as {
    write: (chunk: unknown, encodingOrCb?: unknown, cb?: unknown) => boolean;
    end: (chunk?: unknown, encodingOrCb?: unknown, cb?: unknown) => ServerResponse;
  };

  patched.write = (chunk, encodingOrCb, cb) => {
    const callback = (typeof encodingOrCb === 'function' ? encodingOrCb : cb) as WriteCallback | undefined;
    const encoding = typeof encodingOrCb === 'string' ? (encodingOrCb as BufferEncoding) : undefined;
    if (cut) {
      if (callback) process.nextTick(callback);
      return false; // never 'drain': the source stays paused until the response closes
    }
    const [part, crossed] = admit(toBuffer(chunk, encoding));
    if (!crossed) return originalWrite(part, callback);
    breakResponse(part);
    if (callback) process.nextTick(callback);
    return false;
  };

  patched.end = (chunk, encodingOrCb, cb) => {
    let callback = (typeof encodingOrCb === 'function' ? encodingOrCb : cb) as WriteCallback | undefined;
    if (typeof chunk === 'function') {
      callback = chunk as WriteCallback;
      chunk = undefined;
    }
    const encoding = typeof encodingOrCb === 'string' ? (encodingOrCb as BufferEncoding) : undefined;
    if (cut) {
      if (callback) process.nextTick(callback);
      return res;
    }
    const [part, crossed] = admit(toBuffer(chunk, encoding));
    if (!crossed) return part.length > 0 ? originalEnd(part, callback) : originalEnd(callback);
    breakResponse(part);
    if (callback) process.nextTick(callback);
    return res;
  };
}

/** Lets the handler do its work, then resets the connection instead of sending its answer. */
export function dropResponse(res: ServerResponse): void {
  const drop = (): boolean => {
    const socket = res.socket;
    if (socket && !socket.destroyed) {
      if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
      else socket.destroy();
    }
    return false;
  };
  const patched = res as unknown as Record<'writeHead' | 'flushHeaders' | 'write' | 'end', (...args: unknown[]) => unknown>;
  patched.writeHead = () => (drop(), res);
  patched.flushHeaders = () => drop();
  patched.write = () => drop();
  patched.end = () => (drop(), res);
}
