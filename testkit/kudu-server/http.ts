// Response helpers shaped like ASP.NET Web API, which is what Kudu runs on.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';

export type Headers = Record<string, string | number>;

/** `scheme://authority` of the request, which Kudu uses to build every absolute URL it returns. */
export function requestOrigin(req: IncomingMessage): string {
  return `http://${req.headers.host ?? '127.0.0.1'}`;
}

// Every buffered body carries an explicit Content-Length (as Web API does), so the fault
// wrapper can tell a Content-Length response from a chunked one.
function sendBody(res: ServerResponse, status: number, body: Buffer, headers: Headers): void {
  res.writeHead(status, { ...headers, 'Content-Length': body.length });
  res.end(body);
}

export function sendEmpty(res: ServerResponse, status: number, headers: Headers = {}): void {
  sendBody(res, status, Buffer.alloc(0), headers);
}

/** `new StringContent(text)`: text/plain; charset=utf-8. */
export function sendText(res: ServerResponse, status: number, text: string, headers: Headers = {}): void {
  sendBody(res, status, Buffer.from(text, 'utf8'), { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Headers = {}): void {
  sendBody(res, status, Buffer.from(JSON.stringify(value), 'utf8'), { 'Content-Type': 'application/json; charset=utf-8', ...headers });
}

/** `Request.CreateErrorResponse(status, message)`: Web API's HttpError `{"Message": ...}`. */
export function sendHttpError(res: ServerResponse, status: number, message: string, headers: Headers = {}): void {
  sendJson(res, status, { Message: message }, headers);
}

/** Pipe with backpressure; if the response ends early (client gone, fault), stop reading the source. */
export function streamTo(res: ServerResponse, source: Readable): void {
  res.on('close', () => source.destroy());
  source.on('error', () => res.destroy());
  source.pipe(res);
}

export async function readBody(req: IncomingMessage, limit = 64 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error(`request body larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
