// Parses PgBouncer's auth_file (userlist.txt) into per-user secrets so existing PgBouncer deployments drop in unchanged.
import { readFile } from 'node:fs/promises';

export type UserSecret =
  | { kind: 'plain'; password: string }
  | { kind: 'md5'; hash: string }
  | { kind: 'scram'; iterations: number; salt: Buffer; storedKey: Buffer; serverKey: Buffer };

// PostgreSQL itself only recognises lowercase hex here; anything else is a plaintext password to it, so to us too.
const MD5_SECRET = /^md5[0-9a-f]{32}$/;
const SCRAM_PREFIX = 'SCRAM-SHA-256$';
const SCRAM_SECRET = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2}):([A-Za-z0-9+/]+={0,2})$/;
const SCRAM_KEY_LEN = 32;

/**
 * Classifies a secret the way PostgreSQL classifies pg_authid.rolpassword.
 * Returns an error message instead of throwing so callers can attach their own location.
 */
export function classifySecret(secret: string): UserSecret | string {
  if (MD5_SECRET.test(secret)) return { kind: 'md5', hash: secret };
  if (!secret.startsWith(SCRAM_PREFIX)) return { kind: 'plain', password: secret };
  // A half-valid SCRAM secret is almost certainly a paste error; treating it as a plaintext password would hide that.
  const m = SCRAM_SECRET.exec(secret);
  if (!m) return 'malformed SCRAM-SHA-256 secret (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)';
  const iterations = Number(m[1]);
  if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > 0x7fffffff) {
    return `SCRAM-SHA-256 secret has invalid iteration count ${m[1]}`;
  }
  const salt = decodeBase64(m[2]!);
  const storedKey = decodeBase64(m[3]!);
  const serverKey = decodeBase64(m[4]!);
  if (!salt || salt.length === 0) return 'SCRAM-SHA-256 secret has an invalid salt';
  if (!storedKey || storedKey.length !== SCRAM_KEY_LEN) return 'SCRAM-SHA-256 secret has an invalid StoredKey';
  if (!serverKey || serverKey.length !== SCRAM_KEY_LEN) return 'SCRAM-SHA-256 secret has an invalid ServerKey';
  return { kind: 'scram', iterations, salt, storedKey, serverKey };
}

function decodeBase64(text: string): Buffer | undefined {
  // Buffer.from silently skips garbage, so length is checked to catch truncated values.
  if (text.length % 4 !== 0) return undefined;
  return Buffer.from(text, 'base64');
}

/** Reads one `"..."` field starting at `pos` (which must be a quote); `""` inside stands for one quote. */
function readQuoted(line: string, pos: number): { value: string; end: number } | undefined {
  let value = '';
  let i = pos + 1;
  for (;;) {
    const q = line.indexOf('"', i);
    if (q < 0) return undefined;
    value += line.slice(i, q);
    if (line[q + 1] === '"') {
      value += '"';
      i = q + 2;
      continue;
    }
    return { value, end: q + 1 };
  }
}

function skipSpace(line: string, pos: number): number {
  while (pos < line.length && (line[pos] === ' ' || line[pos] === '\t')) pos++;
  return pos;
}

/**
 * Text after the second field is ignored, as PgBouncer does (old pg_auth files carried extra columns),
 * but it must be separated by whitespace so that a stray character after a closing quote is still reported.
 */
export function parseUserlist(text: string, file: string): Map<string, UserSecret> {
  const users = new Map<string, UserSecret>();
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.replace(/\r$/, '');
    const where = `${file}:${n + 1}`;
    let pos = skipSpace(line, 0);
    if (pos === line.length || line[pos] === ';' || line[pos] === '#') continue;

    if (line[pos] !== '"') throw new Error(`${where}: expected "username" "secret"`);
    const user = readQuoted(line, pos);
    if (!user) throw new Error(`${where}: unterminated quoted username`);
    if (user.value === '') throw new Error(`${where}: empty username`);

    pos = skipSpace(line, user.end);
    if (pos === user.end || line[pos] !== '"') throw new Error(`${where}: expected a quoted secret after the username`);
    const secret = readQuoted(line, pos);
    if (!secret) throw new Error(`${where}: unterminated quoted secret`);
    if (secret.end < line.length && line[secret.end] !== ' ' && line[secret.end] !== '\t') {
      throw new Error(`${where}: unexpected text after the closing quote of the secret`);
    }

    const parsed = classifySecret(secret.value);
    if (typeof parsed === 'string') throw new Error(`${where}: ${parsed}`);
    users.set(user.value, parsed);
  }
  return users;
}

export async function loadUserlist(path: string): Promise<Map<string, UserSecret>> {
  return parseUserlist(await readFile(path, 'utf8'), path);
}
