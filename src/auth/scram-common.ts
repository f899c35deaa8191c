// SCRAM-SHA-256 building blocks shared by the pooler's server side (facing clients) and client side (facing PostgreSQL).
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
export const SCRAM_SHA_256_PLUS = 'SCRAM-SHA-256-PLUS';
export const SCRAM_KEY_LEN = 32;
// Same defaults PostgreSQL uses when it hashes a password, so secrets we mint look like its own.
export const SCRAM_DEFAULT_ITERATIONS = 4096;
export const SCRAM_DEFAULT_SALT_LEN = 16;
const NONCE_RAW_LEN = 18;

/** The peer sent something that is not valid SCRAM as PostgreSQL speaks it (maps to SQLSTATE 08P01). */
export class ScramProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScramProtocolError';
  }
}

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

export function hmacSha256(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

export function xorBuffers(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** 18 random bytes as base64, like PostgreSQL and libpq: printable and comma-free as RFC 5802 requires. */
export function generateNonce(): string {
  return randomBytes(NONCE_RAW_LEN).toString('base64');
}

/**
 * The password bytes SCRAM hashes. PostgreSQL runs SASLprep but falls back to the raw bytes when that fails;
 * for pure ASCII it returns the input unchanged, which is what we do. Non-ASCII passwords are used as raw UTF-8
 * without normalisation: this matches PostgreSQL whenever the password is already in NFKC form and contains no
 * characters SASLprep maps away (soft hyphen, zero-width space, non-ASCII spaces ...). Passwords outside that
 * case would fail to authenticate rather than be accepted wrongly.
 */
export function saslprepPassword(password: string): Buffer {
  return Buffer.from(password, 'utf8');
}

export type SaslAttribute = { name: string; value: string };

/** Splits `k=v,k=v`; values never contain a raw comma in SCRAM (saslname escapes it as =2C). */
export function parseSaslAttributes(message: string): SaslAttribute[] {
  if (message === '') throw new ScramProtocolError('malformed SCRAM message (empty)');
  return message.split(',').map((part) => {
    if (part.length < 2 || part[1] !== '=' || !/^[A-Za-z]$/.test(part[0]!)) {
      throw new ScramProtocolError(`malformed SCRAM message (attribute "${part.slice(0, 20)}" is not of the form k=value)`);
    }
    return { name: part[0]!, value: part.slice(2) };
  });
}

/** Strict base64 decode: Buffer.from ignores junk, which would let a corrupt proof reach the comparison. */
export function decodeBase64Strict(text: string, what: string): Buffer {
  if (text.length === 0 || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(text)) {
    throw new ScramProtocolError(`malformed SCRAM message (invalid base64 in ${what})`);
  }
  return Buffer.from(text, 'base64');
}

/** RFC 5802 printable: 0x21-0x7E except ','. */
export function isValidNonce(nonce: string): boolean {
  return /^[\x21-\x2b\x2d-\x7e]+$/.test(nonce);
}

export function parseIterations(text: string): number {
  const n = /^[1-9][0-9]{0,9}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 0x7fffffff)) throw new ScramProtocolError(`malformed SCRAM message (invalid iteration count "${text}")`);
  return n;
}
