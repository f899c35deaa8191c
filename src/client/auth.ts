// Authenticates a client against auth_file secrets: trust, md5 (SCRAM when the secret is SCRAM), scram-sha-256.

import { randomBytes } from 'node:crypto';
import * as build from '../protocol/build.ts';
import { Cursor } from '../protocol/read.ts';
import { ErrorCodes, PoolerError } from '../errors.ts';
import type { UserSecret } from '../auth/userlist.ts';
import { md5Verify } from '../auth/md5.ts';
import { ScramServer, ScramProtocolError, scramSecretFromPassword } from '../auth/scram.ts';
import type { AuthType } from '../config/types.ts';

export type AuthStep =
  | { kind: 'send'; bytes: Buffer }
  | { kind: 'ok'; clientKey: Buffer | null; finalBytes: Buffer | null }
  | { kind: 'fail'; error: PoolerError };

/** A stand-in secret so an unknown user goes through the same exchange as a known one and fails at its end. */
let decoySecret: UserSecret | null = null;

export class ClientAuth {
  private readonly user: string;
  private readonly secret: UserSecret | undefined;
  private readonly method: 'trust' | 'md5' | 'scram' | 'plain';
  /** trust (unlike any) still admits only users listed in auth_file, as in PgBouncer */
  private readonly requireListed: boolean;
  private md5Salt: Buffer | null = null;
  private scram: ScramServer | null = null;
  private scramStage: 'first' | 'final' = 'first';

  constructor(authType: AuthType, user: string, secret: UserSecret | undefined) {
    this.user = user;
    this.secret = secret;
    this.requireListed = authType === 'trust';
    if (authType === 'trust' || authType === 'any') this.method = 'trust';
    else if (authType === 'plain') this.method = 'plain';
    else if (authType === 'scram-sha-256') this.method = 'scram';
    // md5 with a SCRAM secret uses SCRAM, as PgBouncer does: an md5 exchange cannot be checked against it.
    else if (authType === 'md5') this.method = secret?.kind === 'scram' ? 'scram' : 'md5';
    else this.method = 'md5';
  }

  /** The first message to send, or 'ok' at once for trust. */
  start(): AuthStep {
    switch (this.method) {
      case 'trust':
        if (this.requireListed && this.secret === undefined) return this.failed();
        return { kind: 'ok', clientKey: null, finalBytes: null };
      case 'plain':
        return { kind: 'send', bytes: build.authCleartext() };
      case 'md5':
        this.md5Salt = randomBytes(4);
        return { kind: 'send', bytes: build.authMD5(this.md5Salt) };
      case 'scram':
        return { kind: 'send', bytes: build.authSASL(['SCRAM-SHA-256']) };
    }
  }

  /** Handle one PasswordMessage / SASLInitialResponse / SASLResponse ('p') message. */
  onMessage(msg: Buffer): AuthStep {
    try {
      const c = new Cursor(msg, 5);
      if (this.method === 'plain') {
        const pw = c.cstring();
        const s = this.secret;
        const ok = s !== undefined && s.kind === 'plain' && s.password === pw;
        return ok ? { kind: 'ok', clientKey: null, finalBytes: null } : this.failed();
      }
      if (this.method === 'md5') {
        const response = c.cstring();
        const ok = this.secret !== undefined && md5Verify(this.secret, this.user, this.md5Salt!, response);
        return ok ? { kind: 'ok', clientKey: null, finalBytes: null } : this.failed();
      }
      if (this.scramStage === 'first') {
        const mech = c.cstring();
        const len = c.int32();
        if (mech !== 'SCRAM-SHA-256') {
          return { kind: 'fail', error: new PoolerError(ErrorCodes.protocolViolation, `client selected an invalid SASL authentication mechanism "${mech}"`) };
        }
        const data = len >= 0 ? c.bytes(len).toString('utf8') : '';
        this.scram = new ScramServer(this.scramSecret(), this.user);
        this.scramStage = 'final';
        return { kind: 'send', bytes: build.authSASLContinue(this.scram.handleClientFirst(data)) };
      }
      const result = this.scram!.handleClientFinal(c.rest().toString('utf8'));
      if (!result.ok) {
        return result.protocolViolation
          ? { kind: 'fail', error: new PoolerError(ErrorCodes.protocolViolation, `malformed SCRAM message: ${result.reason}`) }
          : this.failed();
      }
      if (this.secret === undefined) return this.failed();
      return { kind: 'ok', clientKey: result.clientKey, finalBytes: build.authSASLContinue(result.serverFinal, true) };
    } catch (e) {
      if (e instanceof ScramProtocolError) {
        return { kind: 'fail', error: new PoolerError(ErrorCodes.protocolViolation, `malformed SCRAM message: ${e.message}`) };
      }
      if (e instanceof RangeError) {
        return { kind: 'fail', error: new PoolerError(ErrorCodes.protocolViolation, `malformed authentication message: ${e.message}`) };
      }
      throw e;
    }
  }

  private scramSecret(): UserSecret {
    const s = this.secret;
    if (s && (s.kind === 'scram' || s.kind === 'plain')) return s;
    decoySecret ??= scramSecretFromPassword(randomBytes(16).toString('hex'));
    return decoySecret;
  }

  private failed(): AuthStep {
    return { kind: 'fail', error: new PoolerError(ErrorCodes.authFailed, `password authentication failed for user "${this.user}"`) };
  }
}
