// Kudu accepts Basic (publishing credentials) and Bearer (Entra ID) on every route.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendEmpty } from './http';

export interface AuthOptions {
  basic?: { username: string; password: string };
  bearer?: (token: string) => boolean;
}

export const DEFAULT_AUTH: AuthOptions = { basic: { username: 'user', password: 'pass' } };

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

export function isAuthorized(req: IncomingMessage, auth: AuthOptions): boolean {
  const header = req.headers.authorization ?? '';
  const space = header.indexOf(' ');
  if (space < 0) return false;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'basic' && auth.basic) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    // Evaluate both so a wrong user name costs the same as a wrong password.
    const userOk = sameText(decoded.slice(0, colon), auth.basic.username);
    const passOk = sameText(decoded.slice(colon + 1), auth.basic.password);
    return userOk && passOk;
  }
  if (scheme === 'bearer' && auth.bearer) {
    try {
      return auth.bearer(value) === true;
    } catch {
      return false;
    }
  }
  return false;
}

/**
 * The SCM front end challenges with Basic even when basic auth is disabled for the site;
 * the realm is what App Service sends. The body is left empty.
 */
export function sendUnauthorized(res: ServerResponse): void {
  sendEmpty(res, 401, { 'WWW-Authenticate': 'Basic realm="site"' });
}
