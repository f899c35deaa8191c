// Pooler-as-server half of SCRAM-SHA-256: verifies a connecting client and recovers its ClientKey for pass-through.
import { randomBytes } from 'node:crypto';
import {
  constantTimeEqual,
  decodeBase64Strict,
  generateNonce,
  hmacSha256,
  isValidNonce,
  parseSaslAttributes,
  ScramProtocolError,
  SCRAM_DEFAULT_ITERATIONS,
  SCRAM_DEFAULT_SALT_LEN,
  SCRAM_KEY_LEN,
  sha256,
  xorBuffers,
} from './scram-common.ts';
import { deriveScramKeys } from './secret-cache.ts';
import type { UserSecret } from './userlist.ts';

/** The user's secret cannot drive SCRAM at all (an md5 hash carries nothing SCRAM can use). */
export class ScramUnsupportedSecretError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScramUnsupportedSecretError';
  }
}

export type ScramServerResult =
  | { ok: true; serverFinal: string; clientKey: Buffer }
  // protocolViolation separates a malformed exchange (08P01) from a wrong password (28P01).
  | { ok: false; reason: string; protocolViolation: boolean };

/**
 * Salts for plaintext secrets are an HMAC of user and password under a per-process key: stable for the process
 * lifetime, so the derivation cache keeps hitting, yet unpredictable and different for users sharing a password
 * (a shared salt would let anyone compare two users' passwords by just starting handshakes).
 */
const plainSaltKey = randomBytes(32);
function plainSalt(user: string, password: string): Buffer {
  return hmacSha256(plainSaltKey, `${user}\0${password}`).subarray(0, SCRAM_DEFAULT_SALT_LEN);
}

type Verifier = { salt: Buffer; iterations: number; keys: () => { storedKey: Buffer; serverKey: Buffer } };

export class ScramServer {
  readonly #verifier: Verifier;
  #state: 'start' | 'sent-first' | 'done' = 'start';
  #gs2Header = '';
  #clientFirstBare = '';
  #serverFirst = '';
  #nonce = '';

  /** `user` is the startup-message user: PostgreSQL ignores the n= name in client-first, and so do we. */
  constructor(secret: UserSecret, user: string) {
    if (secret.kind === 'md5') {
      throw new ScramUnsupportedSecretError(
        `user "${user}" has an MD5 password secret, which cannot be used for SCRAM-SHA-256 authentication`,
      );
    }
    if (secret.kind === 'scram') {
      this.#verifier = { salt: secret.salt, iterations: secret.iterations, keys: () => secret };
    } else {
      const salt = plainSalt(user, secret.password);
      this.#verifier = {
        salt,
        iterations: SCRAM_DEFAULT_ITERATIONS,
        // Deferred to client-final so a client that never finishes the handshake costs no PBKDF2.
        keys: () => deriveScramKeys(secret.password, salt, SCRAM_DEFAULT_ITERATIONS),
      };
    }
  }

  /** Takes the SASLInitialResponse data; returns the server-first-message for AuthenticationSASLContinue. */
  handleClientFirst(message: string): string {
    if (this.#state !== 'start') throw new ScramProtocolError('unexpected SCRAM client-first-message');
    this.#state = 'done';

    const flag = message[0];
    if (flag === 'p') {
      throw new ScramProtocolError(
        'SCRAM channel binding (p=tls-server-end-point) is not supported: the pooler does not offer SCRAM-SHA-256-PLUS because it has no TLS',
      );
    }
    // 'y' means "client could bind but thinks the server cannot", which is true for us, so it is acceptable.
    if ((flag !== 'n' && flag !== 'y') || message[1] !== ',') {
      throw new ScramProtocolError('malformed SCRAM message (unexpected channel-binding flag in client-first-message)');
    }
    if (message.startsWith('a=', 2)) {
      throw new ScramProtocolError('client uses authorization identity, but it is not supported');
    }
    if (message[2] !== ',') throw new ScramProtocolError('malformed SCRAM message (expected "," after the GS2 header)');
    this.#gs2Header = message.slice(0, 3);
    this.#clientFirstBare = message.slice(3);

    const attrs = parseSaslAttributes(this.#clientFirstBare);
    if (attrs[0]?.name === 'm') throw new ScramProtocolError('client requires an unsupported SCRAM extension');
    if (attrs[0]?.name !== 'n') throw new ScramProtocolError('malformed SCRAM message (expected n= in client-first-message)');
    const clientNonce = attrs[1]?.name === 'r' ? attrs[1].value : undefined;
    if (clientNonce === undefined) throw new ScramProtocolError('malformed SCRAM message (expected r= in client-first-message)');
    if (!isValidNonce(clientNonce)) throw new ScramProtocolError('malformed SCRAM message (invalid client nonce)');

    this.#nonce = clientNonce + generateNonce();
    this.#serverFirst = `r=${this.#nonce},s=${this.#verifier.salt.toString('base64')},i=${this.#verifier.iterations}`;
    this.#state = 'sent-first';
    return this.#serverFirst;
  }

  /** Takes the SASLResponse data; on success returns the server-final-message for AuthenticationSASLFinal. */
  handleClientFinal(message: string): ScramServerResult {
    if (this.#state !== 'sent-first') return violation('unexpected SCRAM client-final-message');
    this.#state = 'done';
    try {
      return this.#verifyFinal(message);
    } catch (err) {
      if (err instanceof ScramProtocolError) return violation(err.message);
      throw err;
    }
  }

  #verifyFinal(message: string): ScramServerResult {
    const attrs = parseSaslAttributes(message);
    if (attrs[0]?.name !== 'c') return violation('malformed SCRAM message (expected c= in client-final-message)');
    if (attrs[0].value !== Buffer.from(this.#gs2Header).toString('base64')) {
      return violation('SCRAM channel binding check failed (c= does not match the client-first-message GS2 header)');
    }
    if (attrs[1]?.name !== 'r') return violation('malformed SCRAM message (expected r= in client-final-message)');
    if (attrs[1].value !== this.#nonce) return violation('SCRAM nonce in client-final-message does not match');
    const last = attrs[attrs.length - 1]!;
    if (attrs.length < 3 || last.name !== 'p') return violation('malformed SCRAM message (expected p= at the end of client-final-message)');
    const proof = decodeBase64Strict(last.value, 'client proof');
    if (proof.length !== SCRAM_KEY_LEN) return violation('malformed SCRAM message (client proof has the wrong length)');

    const withoutProof = message.slice(0, message.length - last.value.length - 3);
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    const { storedKey, serverKey } = this.#verifier.keys();
    const clientKey = xorBuffers(proof, hmacSha256(storedKey, authMessage));
    if (!constantTimeEqual(sha256(clientKey), storedKey)) {
      return { ok: false, reason: 'SCRAM client proof is invalid (wrong password)', protocolViolation: false };
    }
    return { ok: true, serverFinal: `v=${hmacSha256(serverKey, authMessage).toString('base64')}`, clientKey };
  }
}

function violation(reason: string): ScramServerResult {
  return { ok: false, reason, protocolViolation: true };
}
