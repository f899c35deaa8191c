// Pooler-as-client half of SCRAM-SHA-256: logs in to PostgreSQL with a password or with a client's recovered ClientKey.
import {
  constantTimeEqual,
  decodeBase64Strict,
  generateNonce,
  hmacSha256,
  parseIterations,
  parseSaslAttributes,
  ScramProtocolError,
  sha256,
  SCRAM_KEY_LEN,
  xorBuffers,
} from './scram-common.ts';
import { deriveScramKeys } from './secret-cache.ts';

/**
 * Pass-through keys work only if they belong to the very secret the server holds: ClientKey and ServerKey depend on
 * the salt and iteration count, so the auth_file entry must be a copy of the server's own pg_authid.rolpassword.
 * With any other secret the server rejects the proof (and our check of its signature would fail too).
 */
export type ScramClientCredentials = { password: string } | { clientKey: Buffer; serverKey: Buffer };

/** The server ended the exchange with an `e=` server-error attribute instead of a signature. */
export class ScramServerError extends Error {
  readonly serverError: string;
  constructor(serverError: string) {
    super(`server rejected SCRAM authentication: ${serverError}`);
    this.name = 'ScramServerError';
    this.serverError = serverError;
  }
}

export class ScramClient {
  readonly #credentials: ScramClientCredentials;
  readonly #clientNonce = generateNonce();
  #state: 'start' | 'sent-first' | 'sent-final' | 'done' = 'start';
  #expectedServerSignature: Buffer | undefined;
  #salt: Buffer | undefined;
  #iterations: number | undefined;

  constructor(credentials: ScramClientCredentials) {
    if ('clientKey' in credentials && (credentials.clientKey.length !== SCRAM_KEY_LEN || credentials.serverKey.length !== SCRAM_KEY_LEN)) {
      throw new TypeError(`SCRAM pass-through keys must be ${SCRAM_KEY_LEN} bytes`);
    }
    this.#credentials = credentials;
  }

  /** Salt the server announced, so pass-through callers can log a mismatch against their auth_file secret. */
  get serverSalt(): Buffer | undefined {
    return this.#salt;
  }

  get serverIterations(): number | undefined {
    return this.#iterations;
  }

  /** SASLInitialResponse data. Like libpq, the user name is left empty: PostgreSQL takes it from the startup packet. */
  clientFirst(): string {
    if (this.#state !== 'start') throw new ScramProtocolError('SCRAM client-first-message already sent');
    this.#state = 'sent-first';
    return `n,,${this.#bare()}`;
  }

  #bare(): string {
    return `n=,r=${this.#clientNonce}`;
  }

  /** Takes AuthenticationSASLContinue data; returns the client-final-message for SASLResponse. */
  handleServerFirst(message: string): string {
    if (this.#state !== 'sent-first') throw new ScramProtocolError('unexpected SCRAM server-first-message');
    this.#state = 'done';

    const attrs = parseSaslAttributes(message);
    if (attrs[0]?.name === 'm') throw new ScramProtocolError('server requires an unsupported SCRAM extension');
    if (attrs[0]?.name !== 'r' || attrs[1]?.name !== 's' || attrs[2]?.name !== 'i') {
      throw new ScramProtocolError('malformed SCRAM server-first-message (expected r=, s=, i=)');
    }
    const nonce = attrs[0].value;
    // A server that does not extend our nonce could be replaying an old exchange.
    if (!nonce.startsWith(this.#clientNonce) || nonce.length === this.#clientNonce.length) {
      throw new ScramProtocolError('invalid SCRAM server nonce: it does not extend the client nonce');
    }
    const salt = decodeBase64Strict(attrs[1].value, 'salt');
    const iterations = parseIterations(attrs[2].value);
    this.#salt = salt;
    this.#iterations = iterations;

    let clientKey: Buffer;
    let serverKey: Buffer;
    if ('password' in this.#credentials) {
      ({ clientKey, serverKey } = deriveScramKeys(this.#credentials.password, salt, iterations));
    } else {
      ({ clientKey, serverKey } = this.#credentials);
    }

    // No TLS yet, so never channel binding: c= is base64("n,,").
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.#bare()},${message},${withoutProof}`;
    const proof = xorBuffers(clientKey, hmacSha256(sha256(clientKey), authMessage));
    this.#expectedServerSignature = hmacSha256(serverKey, authMessage);
    this.#state = 'sent-final';
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /**
   * Takes AuthenticationSASLFinal data. False means the server could not prove it knows the secret, which must be
   * treated as a failed login (it may be an impostor). An `e=` answer throws ScramServerError.
   */
  verifyServerFinal(message: string): boolean {
    if (this.#state !== 'sent-final') throw new ScramProtocolError('unexpected SCRAM server-final-message');
    this.#state = 'done';
    const attrs = parseSaslAttributes(message);
    const first = attrs[0]!;
    if (first.name === 'e') throw new ScramServerError(first.value);
    if (first.name !== 'v') throw new ScramProtocolError('malformed SCRAM server-final-message (expected v=)');
    const signature = decodeBase64Strict(first.value, 'server signature');
    return constantTimeEqual(signature, this.#expectedServerSignature!);
  }
}
