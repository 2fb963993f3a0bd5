// Kudu's MediaTypeMap: System.Web's MimeMapping plus three overrides (.js, .json, .md).
// Only the common part of MimeMapping's table is reproduced; anything else is octet-stream,
// which is also what MimeMapping answers for unknown extensions.
import * as path from 'node:path';

const OVERRIDES: Record<string, string> = {
  '.js': 'application/javascript',
  '.json': 'application/json',
  '.md': 'text/plain',
};

const MIME_MAPPING: Record<string, string> = {
  '.txt': 'text/plain',
  '.log': 'text/plain',
  '.htm': 'text/html',
  '.html': 'text/html',
  '.css': 'text/css',
  '.xml': 'text/xml',
  '.config': 'application/xml',
  '.zip': 'application/x-zip-compressed',
  '.gz': 'application/x-gzip',
  '.tar': 'application/x-tar',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.pdf': 'application/pdf',
  '.sh': 'application/x-sh',
  '.mp4': 'video/mp4',
};

export function mimeFor(fileName: string): string {
  const ext = path.extname(fileName).toLowerCase();
  return OVERRIDES[ext] ?? MIME_MAPPING[ext] ?? 'application/octet-stream';
}
