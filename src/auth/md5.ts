// PostgreSQL's legacy MD5 password challenge, for both checking clients and answering servers.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { UserSecret } from './userlist.ts';

const MD5_SECRET = /^md5[0-9a-f]{32}$/;

function md5Hex(data: string | Buffer): string {
  return createHash('md5').update(data).digest('hex');
}

/** The pg_authid form: 'md5' + hex(md5(password + user)). */
export function md5PasswordHash(password: string, user: string): string {
  return 'md5' + md5Hex(password + user);
}

/**
 * The PasswordMessage payload answering AuthenticationMD5Password.
 * A value already shaped like a stored md5 secret is used as the inner hash, as PgBouncer does, which means a
 * plaintext password that happens to look exactly like 'md5' + 32 lowercase hex digits cannot be used here.
 */
export function md5Response(passwordOrMd5Hash: string, user: string, salt4: Buffer): string {
  const inner = MD5_SECRET.test(passwordOrMd5Hash)
    ? passwordOrMd5Hash.slice(3)
    : md5PasswordHash(passwordOrMd5Hash, user).slice(3);
  return 'md5' + md5Hex(Buffer.concat([Buffer.from(inner, 'ascii'), salt4]));
}

/**
 * Checks a client's md5 answer. A SCRAM secret cannot be checked this way (the md5 inner hash is not derivable
 * from it), so it always fails here and the caller has to explain that to the user.
 */
export function md5Verify(secret: UserSecret, user: string, salt: Buffer, clientResponse: string): boolean {
  let expected: string;
  if (secret.kind === 'plain') expected = md5Response(md5PasswordHash(secret.password, user), user, salt);
  else if (secret.kind === 'md5') expected = md5Response(secret.hash, user, salt);
  else return false;
  const a = Buffer.from(expected, 'utf8');
  const b = Buffer.from(clientResponse, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}
