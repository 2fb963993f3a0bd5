/**
 * Reading response bodies with a limit, and the header helpers (Range, Content-Range,
 * Content-Length, Retry-After) every caller of the transport needs.
 */
import type { Readable } from 'node:stream';

/** The most a body is read into memory when the request names no limit: 16 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;

/** A body longer than the limit; the transport turns it into an HttpError of kind `too-large`. */
export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
  constructor(readonly limitBytes: number) {
    super(`the body is longer than ${limitBytes} bytes`);
  }
}

/** The whole body, or a BodyTooLargeError as soon as it passes `limit` bytes (the rest is not read). */
export async function readAll(stream: Readable, limit = Infinity): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      stream.destroy();
      throw new BodyTooLargeError(limit);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Reads a body until `wanted` bytes are in, then drops the rest of it (and with it the
 * connection): the head of a file a server sent whole, without downloading the rest.
 */
export async function readHead(stream: Readable, wanted: number): Promise<{ data: Buffer; received: number }> {
  const chunks: Buffer[] = [];
  let received = 0;
  try {
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
      received += (chunk as Buffer).length;
      if (received >= wanted) break;
    }
  } finally {
    // Leaving the loop early destroys the stream; a body that ended by itself is left alone.
    if (!stream.readableEnded) stream.destroy();
  }
  return { data: Buffer.concat(chunks).subarray(0, wanted), received };
}

/** `bytes=<offset>-<offset+length-1>`, or `bytes=<offset>-` without a length. */
export function rangeHeader(offset: number, length?: number): string {
  return length === undefined ? `bytes=${offset}-` : `bytes=${offset}-${offset + Math.max(1, length) - 1}`;
}

/** A header's value as one string (Node gives arrays for repeated headers). */
export function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The total of a Content-Range (`bytes 0-99/12345`, or `bytes` star `/12345` with a 416): 12345. */
export function totalFromContentRange(value: string | string[] | undefined): number | undefined {
  const m = /\/(\d+)\s*$/.exec(headerText(value) ?? '');
  return m ? Number(m[1]) : undefined;
}

/** A numeric header (Content-Length), or undefined when absent or not a number. */
export function numericHeader(value: string | string[] | undefined): number | undefined {
  const text = headerText(value);
  return text !== undefined && /^\d+$/.test(text.trim()) ? Number(text) : undefined;
}

/** Retry-After in seconds or as an HTTP date, in milliseconds from now. */
export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const text = headerText(value);
  if (!text) return undefined;
  if (/^\d+(\.\d+)?$/.test(text.trim())) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
