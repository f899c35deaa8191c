// Bounded memo of SCRAM key derivations: PBKDF2 costs milliseconds of CPU per login, so each password is stretched once.
import { createHash, pbkdf2Sync, randomBytes } from 'node:crypto';
import { hmacSha256, saslprepPassword, sha256, SCRAM_DEFAULT_ITERATIONS, SCRAM_DEFAULT_SALT_LEN, SCRAM_KEY_LEN } from './scram-common.ts';
import type { UserSecret } from './userlist.ts';

export type ScramKeys = {
  saltedPassword: Buffer;
  clientKey: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
};

const MAX_ENTRIES = 1024;
const cache = new Map<string, ScramKeys>();

/** Counters so tests and metrics can see whether PBKDF2 actually ran. */
export const scramKeyCacheStats = { derivations: 0, hits: 0 };

function cacheKey(password: string, salt: Buffer, iterations: number): string {
  // Hashing keeps plaintext passwords out of the key strings (and out of any heap dump of the Map's keys).
  const pw = createHash('sha256').update(password, 'utf8').digest('base64');
  return `${pw}:${salt.toString('base64')}:${iterations}`;
}

export function keysFromSaltedPassword(saltedPassword: Buffer): ScramKeys {
  const clientKey = hmacSha256(saltedPassword, 'Client Key');
  return {
    saltedPassword,
    clientKey,
    storedKey: sha256(clientKey),
    serverKey: hmacSha256(saltedPassword, 'Server Key'),
  };
}

/** Hi(password, salt, i) and the keys derived from it, memoised per (password, salt, iterations). */
export function deriveScramKeys(password: string, salt: Buffer, iterations: number): ScramKeys {
  const key = cacheKey(password, salt, iterations);
  const hit = cache.get(key);
  if (hit) {
    scramKeyCacheStats.hits++;
    // Re-insert so Map order approximates recency and eviction drops the least recently used entry.
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  scramKeyCacheStats.derivations++;
  const keys = keysFromSaltedPassword(pbkdf2Sync(saslprepPassword(password), salt, iterations, SCRAM_KEY_LEN, 'sha256'));
  cache.set(key, keys);
  if (cache.size > MAX_ENTRIES) cache.delete(cache.keys().next().value!);
  return keys;
}

export function clearScramKeyCache(): void {
  cache.clear();
  scramKeyCacheStats.derivations = 0;
  scramKeyCacheStats.hits = 0;
}

/** A SCRAM secret built from a password, as PostgreSQL would store it; used e.g. to mint auth_file entries. */
export function scramSecretFromPassword(
  password: string,
  salt: Buffer = randomBytes(SCRAM_DEFAULT_SALT_LEN),
  iterations: number = SCRAM_DEFAULT_ITERATIONS,
): Extract<UserSecret, { kind: 'scram' }> {
  const keys = deriveScramKeys(password, salt, iterations);
  return { kind: 'scram', iterations, salt, storedKey: keys.storedKey, serverKey: keys.serverKey };
}

/** The pg_authid / auth_file text form of a SCRAM secret. */
export function formatScramSecret(secret: Extract<UserSecret, { kind: 'scram' }>): string {
  return (
    `SCRAM-SHA-256$${secret.iterations}:${secret.salt.toString('base64')}` +
    `$${secret.storedKey.toString('base64')}:${secret.serverKey.toString('base64')}`
  );
}
