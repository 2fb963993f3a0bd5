/**
 * Where the Authorization header for Kudu comes from. A Generic service connection gives a
 * username and password (the site's publishing credentials) or, with an empty username, a bearer
 * token; an Azure Resource Manager connection gives Entra ID tokens that expire and refresh.
 *
 * @example
 *   const credential = basicCredential('$my-blog', process.env.PUBLISH_PASSWORD!);
 *   const client = new KuduClient({ scmUrl: 'https://my-blog.scm.azurewebsites.net/', credential, userAgent });
 */
import type { Authorizer } from '../http';

export { MAX_REFRESHES } from '../http';

/**
 * The transport's Authorizer (`authorization`, and `refresh` after a 401: a token source may
 * fetch a new token, or move on to another kind of credential), with what messages need.
 */
export interface KuduCredential extends Authorizer {
  readonly kind: 'basic' | 'bearer';
  /** Says what was sent, for error messages; never contains the secret. */
  readonly description: string;
  /** Values that must never appear in a log: the caller registers them as secrets. */
  readonly secrets: string[];
}

export function basicCredential(username: string, password: string): KuduCredential {
  const header = 'Basic ' + Buffer.from(`${username}:${password}`, 'utf8').toString('base64');
  return {
    kind: 'basic',
    description: `publishing credentials of user '${username}'`,
    authorization: async () => header,
    secrets: [password, header.slice('Basic '.length)],
  };
}

export function bearerCredential(token: string, description = 'a bearer token'): KuduCredential {
  return {
    kind: 'bearer',
    description,
    authorization: async () => `Bearer ${token}`,
    secrets: [token],
  };
}
