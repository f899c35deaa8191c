// Opens a connection to PostgreSQL and logs in (startup, md5 / SCRAM / cleartext auth) for a pool.

import net from 'node:net';
import { Auth, Backend } from '../protocol/codes.ts';
import * as build from '../protocol/build.ts';
import { Cursor, errorFields, errorSummary, parameterStatusOf } from '../protocol/read.ts';
import { ErrorCodes, PoolerError } from '../errors.ts';
import { md5Response } from '../auth/md5.ts';
import { ScramClient } from '../auth/scram.ts';
import { pooledOnRead } from './read-buffers.ts';

/** How pooler proves itself to PostgreSQL for one (database, user). */
export type ServerCredential =
  | { kind: 'none' }
  | { kind: 'password'; password: string }
  | { kind: 'md5'; hash: string }
  /** SCRAM pass-through: keys from the auth_file secret plus the ClientKey a client proved */
  | { kind: 'scram-keys'; clientKey: Buffer | null; serverKey: Buffer };

export interface ConnectTarget {
  host: string;
  port: number;
  user: string;
  database: string;
  startupParams: Record<string, string>;
  credential: ServerCredential;
  connectTimeoutMs: number;
}

export interface LoggedIn {
  socket: net.Socket;
  params: Map<string, string>;
  backendPid: number;
  backendKey: number;
  /** bytes received after the login's ReadyForQuery (normally none) */
  leftover: Buffer;
}

/** Connect a raw socket: TCP for a host name / IP, Unix socket for a directory path; reads go to pooled buffers. */
export function openSocket(host: string, port: number): net.Socket {
  const onread = pooledOnRead(() => socket);
  const socket = host.startsWith('/')
    ? net.connect({ path: `${host}/.s.PGSQL.${port}`, onread })
    : net.connect({ host, port, onread });
  socket.setNoDelay(true);
  return socket;
}

export function connectServer(t: ConnectTarget): Promise<LoggedIn> {
  return new Promise((resolve, reject) => {
    const socket = openSocket(t.host, t.port);
    const where = `${t.host}:${t.port}`;
    let buf: Buffer = Buffer.alloc(0);
    const params = new Map<string, string>();
    let backendPid = 0;
    let backendKey = 0;
    let scram: ScramClient | null = null;
    let done = false;

    const fail = (err: PoolerError) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new PoolerError(ErrorCodes.serverConnectFailed, `server_connect_timeout: no login from ${where} within ${t.connectTimeoutMs} ms`)),
      t.connectTimeoutMs,
    );

    socket.on('error', (e) => fail(new PoolerError(ErrorCodes.serverConnectFailed, `cannot connect to server ${where}: ${e.message}`)));
    socket.on('close', () => fail(new PoolerError(ErrorCodes.serverConnectFailed, `server ${where} closed the connection during login`)));
    socket.on('connect', () => {
      socket.write(build.startupMessage({ user: t.user, database: t.database, ...t.startupParams }));
    });

    const onAuth = (c: Cursor) => {
      const code = c.int32();
      const cred = t.credential;
      switch (code) {
        case Auth.Ok:
          return;
        case Auth.CleartextPassword:
          if (cred.kind !== 'password') return fail(noSecret('cleartext password'));
          socket.write(build.passwordMessage(cred.password));
          return;
        case Auth.MD5Password: {
          const salt = c.bytes(4);
          if (cred.kind === 'password') socket.write(build.passwordMessage(md5Response(cred.password, t.user, salt)));
          else if (cred.kind === 'md5') socket.write(build.passwordMessage(md5Response(cred.hash, t.user, salt)));
          else return fail(noSecret('md5'));
          return;
        }
        case Auth.SASL: {
          const mechs: string[] = [];
          for (let m = c.cstring(); m !== ''; m = c.cstring()) mechs.push(m);
          if (!mechs.includes('SCRAM-SHA-256')) return fail(noSecret(`SASL ${mechs.join(',')}`));
          if (cred.kind === 'password') scram = new ScramClient({ password: cred.password });
          else if (cred.kind === 'scram-keys' && cred.clientKey) scram = new ScramClient({ clientKey: cred.clientKey, serverKey: cred.serverKey });
          else return fail(noSecret('SCRAM-SHA-256'));
          socket.write(build.saslInitialResponse('SCRAM-SHA-256', scram.clientFirst()));
          return;
        }
        case Auth.SASLContinue:
          if (!scram) return fail(protocol('unexpected SASLContinue'));
          socket.write(build.saslResponse(scram.handleServerFirst(c.rest().toString('utf8'))));
          return;
        case Auth.SASLFinal:
          if (!scram || !scram.verifyServerFinal(c.rest().toString('utf8'))) {
            return fail(new PoolerError(ErrorCodes.serverLoginFailed, `server ${where} failed SCRAM verification`));
          }
          return;
        default:
          return fail(noSecret(`authentication method ${code}`));
      }
    };

    const noSecret = (method: string) =>
      new PoolerError(
        ErrorCodes.serverLoginFailed,
        `server ${where} asks for ${method} for user "${t.user}" and pooler has no usable secret for it (set password= on the [databases] line or a suitable auth_file entry)`,
      );
    const protocol = (what: string) => new PoolerError(ErrorCodes.serverLoginFailed, `server ${where}: ${what}`);

    socket.on('data', (chunk: Buffer) => {
      // Always a copy: the chunk's pooled buffer is reused once this event returns.
      buf = Buffer.concat([buf, chunk]);
      try {
        while (!done && buf.length >= 5) {
          const len = buf.readInt32BE(1);
          if (len < 4 || len > 1 << 24) return fail(protocol(`invalid message length ${len} during login`));
          if (buf.length < len + 1) return;
          const type = buf[0]!;
          const msg = buf.subarray(0, len + 1);
          buf = buf.subarray(len + 1);
          const c = new Cursor(msg, 5);
          switch (type) {
            case Backend.Authentication:
              onAuth(c);
              break;
            case Backend.ParameterStatus: {
              const [k, v] = parameterStatusOf(msg);
              params.set(k, v);
              break;
            }
            case Backend.BackendKeyData:
              backendPid = c.int32();
              backendKey = c.int32();
              break;
            case Backend.ErrorResponse: {
              const fields = errorFields(msg);
              const e = errorSummary(fields);
              // Relay the server's own SQLSTATE (e.g. 3D000, 28P01) so the client sees the real reason.
              return fail(new PoolerError({ code: 'server_login_failed', sqlstate: e.sqlstate, severity: 'FATAL' }, e.message, fields));
            }
            case Backend.NoticeResponse:
            case Backend.NegotiateProtocolVersion:
              break;
            case Backend.ReadyForQuery:
              done = true;
              clearTimeout(timer);
              socket.removeAllListeners('data');
              socket.removeAllListeners('error');
              socket.removeAllListeners('close');
              socket.removeAllListeners('connect');
              resolve({ socket, params, backendPid, backendKey, leftover: Buffer.from(buf) });
              return;
            default:
              return fail(protocol(`unexpected message ${String.fromCharCode(type)} during login`));
          }
        }
      } catch (e) {
        fail(protocol(`malformed login message: ${(e as Error).message}`));
      }
    });
  });
}

/** Fire-and-forget CancelRequest to a server backend. */
export function sendCancel(host: string, port: number, pid: number, key: number): void {
  const s = openSocket(host, port);
  s.on('error', () => s.destroy());
  s.on('connect', () => s.end(build.cancelRequest(pid, key)));
  s.setTimeout(5000, () => s.destroy());
}
