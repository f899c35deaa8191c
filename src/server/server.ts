// One pooled connection to PostgreSQL: forwards replies to its linked client, watches ReadyForQuery,
// and runs pooler's own queries (reset, rollback, parameter sync, health check).

import type net from 'node:net';
import { Backend, TxStatus } from '../protocol/codes.ts';
import { MessageScanner, typeSet, type ScanSink } from '../protocol/scanner.ts';
import { dataRowText, errorFields, errorSummary, parameterStatusOf } from '../protocol/read.ts';
import * as build from '../protocol/build.ts';
import { ErrorCodes, PoolerError } from '../errors.ts';
import type { LoggedIn } from './connect.ts';
import { ServerStatements } from './statements.ts';

export type ServerState = 'idle' | 'active' | 'internal' | 'closed';

/** What a server needs from the client it is linked to. */
export interface ServerPeer {
  /** Write server bytes to the client; returns false when the client's buffer is full. */
  deliver(bytes: Buffer, from: ServerConn): void;
  /**
   * A reply the client may be owed (ReadyForQuery, completions, errors): true to forward it, false to drop
   * it, or the bytes to send in its place.
   */
  reply(type: number, msg: Buffer): boolean | Buffer;
  /** At least one ReadyForQuery arrived in the last chunk (already delivered): time to decide on release. */
  serverReady(server: ServerConn): void;
  /** The server failed or closed while linked. */
  serverLost(server: ServerConn, err: PoolerError): void;
  /** A ParameterStatus the client's session should remember. */
  parameterChanged?(name: string, value: string): void;
}

export interface ServerOwner {
  serverClosed(server: ServerConn, reason: string): void;
}

interface Internal {
  expect: number;
  error: PoolerError | null;
  /** DataRows as text columns, when the caller wants rows */
  rows: (string | null)[][] | null;
  resolve: () => void;
  reject: (e: PoolerError) => void;
}

/** The replies that end a request, so the client side can tell which request a reply belongs to. */
const inspected = typeSet([
  Backend.ReadyForQuery, Backend.ParameterStatus, Backend.ErrorResponse, Backend.ParseComplete, Backend.BindComplete,
  Backend.CloseComplete, Backend.RowDescription, Backend.NoData, Backend.CommandComplete, Backend.EmptyQueryResponse,
  Backend.PortalSuspended,
]);
let nextId = 1;

export class ServerConn implements ScanSink<Buffer> {
  readonly id = nextId++;
  readonly socket: net.Socket;
  readonly host: string;
  readonly port: number;
  readonly backendPid: number;
  readonly backendKey: number;
  /** what pooler knows of the server's session parameters (lower-case name → value) */
  readonly params = new Map<string, string>();
  /** settings pooler or a client changed from the connection's startup values */
  readonly touched = new Set<string>();
  readonly createdAt = Date.now();
  lastUsedAt = Date.now();
  /** when bytes last came from the server: a hung node's connections fall silent */
  lastReadAt = Date.now();
  state: ServerState = 'idle';
  txStatus: number = TxStatus.Idle;
  peer: ServerPeer | null = null;
  /** close instead of pooling when released (lifetime reached, config changed) */
  retire = false;
  /** session state pooler cannot track (a pinned client's LISTEN, locks, temp tables): DISCARD ALL on release */
  needsDiscard = false;
  /** prepared statements this server holds under pooler's names */
  readonly statements = new ServerStatements();
  /** pooler's throwaway probe statement may exist here: closed before the server goes back to the pool */
  probeOpen = false;
  private readonly owner: ServerOwner;
  private readonly scanner: MessageScanner<Buffer>;
  private internal: Internal | null = null;
  private sawReady = false;

  constructor(login: LoggedIn, host: string, port: number, owner: ServerOwner) {
    this.socket = login.socket;
    this.host = host;
    this.port = port;
    this.backendPid = login.backendPid;
    this.backendKey = login.backendKey;
    for (const [k, v] of login.params) this.params.set(k.toLowerCase(), v);
    this.owner = owner;
    this.scanner = new MessageScanner(inspected, Number.MAX_SAFE_INTEGER, this);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (e) => this.close(`server error: ${e.message}`));
    this.socket.on('close', () => this.close('server closed the connection'));
    if (login.leftover.length > 0) this.onData(login.leftover);
  }

  get inspectAll(): boolean {
    return this.internal !== null;
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  private onData(chunk: Buffer): void {
    this.lastReadAt = Date.now();
    this.scanner.push(chunk);
    if (this.sawReady) {
      this.sawReady = false;
      if (this.peer && this.internal === null) this.peer.serverReady(this);
    }
  }

  inspect(type: number, msg: Buffer): boolean | Buffer {
    if (type === Backend.ParameterStatus) {
      const [k, v] = parameterStatusOf(msg);
      this.params.set(k.toLowerCase(), v);
      if (this.internal === null) this.peer?.parameterChanged?.(k, v);
      return this.internal === null;
    }
    if (this.internal !== null) {
      const job = this.internal;
      if (type === Backend.DataRow && job.rows !== null) {
        job.rows.push(dataRowText(msg));
      } else if (type === Backend.ErrorResponse && job.error === null) {
        const e = errorSummary(errorFields(msg));
        job.error = new PoolerError({ code: 'server_query_failed', sqlstate: e.sqlstate }, e.message);
      } else if (type === Backend.ReadyForQuery) {
        this.txStatus = msg[5]!;
        if (--job.expect === 0) {
          this.internal = null;
          if (job.error) job.reject(job.error);
          else job.resolve();
        }
      }
      return false;
    }
    if (type === Backend.ReadyForQuery) {
      this.txStatus = msg[5]!;
      this.sawReady = true;
    }
    return this.peer !== null && this.peer.reply(type, msg);
  }

  forward(bytes: Buffer): void {
    if (this.peer) this.peer.deliver(bytes, this);
    // Bytes with no client (a notice to an idle server) are dropped: nobody asked for them.
  }

  replace(bytes: Buffer): void {
    this.forward(bytes);
  }

  malformed(err: PoolerError): void {
    this.close(`malformed server stream: ${err.message}`);
  }

  /** Write client bytes to the server. */
  write(bytes: Buffer): boolean {
    return this.socket.write(bytes);
  }

  /**
   * Run pooler's own simple-protocol statements, each as its own Query so that commands such as
   * DISCARD ALL that refuse to run in a transaction block still work; replies are swallowed.
   * Rejects with the first error; the caller decides whether the server is still usable.
   */
  runInternal(statements: string[], prefix?: Buffer): Promise<void> {
    return this.startInternal(statements, null, prefix);
  }

  /** Run one of pooler's own queries and return its rows as text columns. */
  async queryRows(sql: string): Promise<(string | null)[][]> {
    const rows: (string | null)[][] = [];
    await this.startInternal([sql], rows);
    return rows;
  }

  /** `prefix`: extended-protocol messages ending in a Sync, sent first (their ReadyForQuery counts too). */
  private startInternal(statements: string[], rows: (string | null)[][] | null, prefix?: Buffer): Promise<void> {
    if (this.closed) return Promise.reject(new PoolerError(ErrorCodes.serverLost, 'server connection is closed'));
    // One job at a time: a second would take the first one's replies as its own.
    if (this.internal !== null) return Promise.reject(new PoolerError(ErrorCodes.serverLost, 'server is already running an internal query'));
    return new Promise<void>((resolve, reject) => {
      this.internal = { expect: statements.length + (prefix ? 1 : 0), error: null, rows, resolve, reject };
      this.socket.resume();
      const queries = statements.map((s) => build.query(s));
      this.socket.write(Buffer.concat(prefix ? [prefix, ...queries] : queries));
    });
  }

  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.scanner.stop();
    if (!this.socket.destroyed) {
      if (this.socket.writable) this.socket.end(build.terminate);
      this.socket.destroySoon();
    }
    const job = this.internal;
    this.internal = null;
    job?.reject(new PoolerError(ErrorCodes.serverLost, reason));
    const peer = this.peer;
    this.peer = null;
    peer?.serverLost(this, new PoolerError(ErrorCodes.serverLost, `server connection lost: ${reason}`));
    this.owner.serverClosed(this, reason);
  }
}
