// One client connection: startup and auth, then its messages go to whatever server the pool lends it,
// and ReadyForQuery decides when the server goes back.

import type net from 'node:net';
import { randomInt } from 'node:crypto';
import { Backend, Frontend, TxStatus } from '../protocol/codes.ts';
import { MessageScanner, typeSet, typeName, type ScanSink } from '../protocol/scanner.ts';
import * as build from '../protocol/build.ts';
import { ErrorCodes, PoolerError } from '../errors.ts';
import { ClientAuth, type AuthStep } from './auth.ts';
import { parseOptions, parseStartupPacket, startupPacketLength } from './startup.ts';
import type { ServerConn, ServerPeer } from '../server/server.ts';
import type { Pool, Waiter } from '../pool/pool.ts';
import type { QueueEntry } from '../pool/queue.ts';
import type { Logger } from '../log.ts';
import type { PoolMode, Settings } from '../config/types.ts';
import type { UserSecret } from '../auth/userlist.ts';
import { sendCancel } from '../server/connect.ts';
import { holdCurrent } from '../server/read-buffers.ts';
import { errorFields, errorSummary } from '../protocol/read.ts';
import { Expect, Replies, type ReplyHooks } from './replies.ts';
import { ClientStatements, type StatementOp } from './prepared.ts';
import { sessionEffects, type SessionEffects } from '../sql/session.ts';
import { SessionSettings } from './session-settings.ts';
import { ClientRouting, UNKNOWN_LSN, type StatementRoute } from './routing.ts';
import type { PoolGroup } from '../pool/group.ts';
import type { DatabaseTopology } from '../topology/database.ts';
import type { NodeState } from '../topology/node.ts';
import type { ClassCache } from '../routing/class-cache.ts';
import { poolerCommand, type PoolerCommand } from '../routing/hints.ts';
import { formatLsn, parseLsn } from '../topology/lsn.ts';
import type { ShapeCache, Shape } from '../sql/shapes.ts';
import type { Limiter } from '../limits/limiter.ts';
import { ADMIT, REJECT, WAIT, type Verdict } from '../limits/rule-state.ts';
import type { DigestStat, DigestStats, DigestTable } from '../stats/digest-stats.ts';
import { StatementShapes } from './statement-shapes.ts';
import { LimitGate } from './limit-gate.ts';
import type { LimitSlot } from './replies.ts';

export type ClientState = 'login' | 'idle' | 'waiting' | 'active' | 'closed';

export interface ResolvedPool {
  group: PoolGroup;
  mode: PoolMode;
  topology: DatabaseTopology;
  /** [databases] / [users] read_routing */
  readRouting: boolean;
}

/** What a client needs from the pooler that owns it. */
export interface ClientHost {
  readonly log: Logger;
  settings(): Settings;
  secretFor(user: string): UserSecret | undefined;
  resolvePool(database: string, user: string): ResolvedPool | PoolerError;
  /** the current nodes of a database (a reload may replace them) */
  topologyOf(database: string): DatabaseTopology | undefined;
  /** the group's pool for one node */
  poolFor(group: PoolGroup, node: NodeState): Pool;
  /** statement classes for read/write splitting, shared by all clients */
  readonly classCache: ClassCache;
  /** query shapes (digests), shared by the class cache, the rate limits and the statistics */
  readonly shapes: ShapeCache;
  readonly limiter: Limiter;
  readonly digestStats: DigestStats;
  /** a client proved a SCRAM secret: its ClientKey lets pooler log in to PostgreSQL as that user */
  rememberClientKey(group: PoolGroup, clientKey: Buffer): void;
  registerCancelKey(client: ClientConn): void;
  cancel(pid: number, key: number): void;
  clientClosed(client: ClientConn, reason: string): void;
}

/** Messages a client may send once logged in; anything else is a protocol violation. */
const validTypes = typeSet([
  Frontend.Bind, Frontend.Close, Frontend.CopyData, Frontend.CopyDone, Frontend.CopyFail, Frontend.Describe,
  Frontend.Execute, Frontend.Flush, Frontend.FunctionCall, Frontend.Parse, Frontend.Query, Frontend.Sync, Frontend.Terminate,
]);
/** Every type but CopyData is inspected: they are small, and invalid types must be caught whole. */
const inspectTypes = (() => {
  const t = new Uint8Array(256).fill(1);
  t[Frontend.CopyData] = 0;
  return t;
})();
/** Startup parameters that are not session settings. */
const notSettings = new Set(['user', 'database', 'options', 'replication']);
/** What a client may send behind a statement waiting for its rate-limit turn before reading pauses (backpressure). */
const GATED_READ_LIMIT = 256 * 1024;

type Outgoing = Buffer | StatementOp;

let nextId = 1;

export class ClientConn implements ScanSink<Outgoing>, ServerPeer {
  readonly id = nextId++;
  readonly socket: net.Socket;
  readonly host: ClientHost;
  readonly remote: string;
  readonly connectedAt = Date.now();
  state: ClientState = 'login';
  user = '';
  database = '';
  /** pooler's own BackendKeyData for this client */
  readonly cancelPid = randomInt(1, 0x7fffffff);
  readonly cancelKey = randomInt(0, 0x7fffffff);
  /** the pools of this client's (database, user) */
  group: PoolGroup | null = null;
  /** the pool of the node this client's server comes from (the one held or asked for) */
  pool: Pool | null = null;
  topology: DatabaseTopology | null = null;
  /** read/write splitting, in transaction and statement pooling of a database with replicas */
  routing: ClientRouting | null = null;
  mode: PoolMode = 'transaction';
  server: ServerConn | null = null;
  /** session settings: what the client asked for, applied to each server it gets */
  readonly session = new SessionSettings();
  lastActivity = Date.now();
  /** what the server owes for what the client has sent, request by request */
  private readonly replies = new Replies(
    (bytes) => this.socket.write(bytes),
    (stat, slot, ok, rows, startedAt) => this.statementDone(stat, slot, ok, rows, startedAt),
  );
  /** the digest of each prepared statement and portal, for the Executes that run them */
  private readonly shapesByName = new StatementShapes();
  /** this client's (database, user) digest statistics */
  private digestTable: DigestTable | null = null;
  /** statements waiting for a rate-limit turn (they sit in the queue, in order) */
  private gates = 0;
  /** bytes queued behind them: reading goes on (so a client that leaves is noticed) up to GATED_READ_LIMIT */
  private gatedBytes = 0;
  /**
   * Where the current extended-protocol batch starts in the queue while none of it has reached a server, else -1:
   * an Execute that must wait for its turn holds its whole batch back, so no server is taken while it waits.
   */
  private batchStart = -1;
  /**
   * The batch being read (with no server yet) prepares or binds a statement a rate-limit rule governs: no server
   * is asked for until its Execute has faced the rule (or a Sync or Flush ends the wait for one), so that a
   * statement that must wait for its turn is still wholly queued and can be held back with its batch.
   */
  private batchHeld = false;
  private readonly gateList = new Set<LimitGate>();
  /** the gate limitStatement() made for the statement being inspected */
  private pendingGate: LimitGate | null = null;
  /** why limitStatement() refused the statement being inspected */
  private rejectReason = '';
  /** named prepared statements, tracked in transaction and statement pooling (max_prepared_statements > 0) */
  private statements: ClientStatements | null = null;
  /** the session-only feature that ties this client to its server until it leaves */
  pinned: string | null = null;
  /** reading the server's settings back before giving it up: client messages wait in the queue */
  private holding = false;
  /** a DISCARD ALL / DEALLOCATE ALL is running: what follows waits in the queue until it is answered */
  private barrier = false;
  /** the chunk being scanned queued messages for a server this client does not hold yet */
  private wantServer = false;
  /** extended-protocol messages sent since the last Sync */
  private unsynced = false;
  /** everything since the last Sync was answered by pooler without a server: so can the Sync be */
  private localBatch = false;
  private readonly queue: Outgoing[] = [];
  private waitHandle: QueueEntry<unknown> | null = null;
  private startBuf: Buffer = Buffer.alloc(0);
  private auth: ClientAuth | null = null;
  private scanner: MessageScanner<Outgoing> | null = null;
  private terminated = false;
  private pausedForServer = false;
  private pausedForDrain = false;
  private loginTimer: NodeJS.Timeout | null = null;
  /** the held server is a replica and what was sent since needs another node: it waits in the queue */
  private rerouting = false;
  /** ReadyForQuery messages the held server still owes from before rerouting began */
  private heldOwed = 0;
  /** waiting for the topology to change: a replica to catch up, or a primary to appear */
  private routeWait: { unsubscribe: () => void; timer: NodeJS.Timeout | null; expired: boolean } | null = null;
  /** tries to get a server for the current batch (a node going down sends it elsewhere) */
  private acquireTries = 0;
  /** a replica to stay away from for this batch (its server just died under it) */
  private avoidNode: NodeState | null = null;
  /** a BEGIN pooler answered itself: it is sent with the statement that follows, to the node that one needs */
  private deferredBegin: Buffer | null = null;
  /** read_your_writes = user: the ReadyForQuery that ends a write waits until its commit position is known */
  private deferredReady: Buffer | null = null;

  constructor(socket: net.Socket, host: ClientHost) {
    this.socket = socket;
    this.host = host;
    this.remote = `${socket.remoteAddress ?? 'unix'}:${socket.remotePort ?? 0}`;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e) => this.close(`client socket error: ${e.message}`));
    socket.on('close', () => this.close('client closed the connection'));
    socket.on('drain', () => this.onDrain());
    const timeout = host.settings().client_login_timeout;
    if (timeout > 0) {
      this.loginTimer = setTimeout(() => this.fail(new PoolerError(ErrorCodes.loginTimeout, 'client_login_timeout')), timeout);
    }
  }

  get inspectAll(): boolean {
    return false;
  }

  /** The server owes this client replies: a query is running (not merely a transaction open). */
  get queryRunning(): boolean {
    return this.replies.length > 0 || this.unsynced;
  }

  private onData(chunk: Buffer): void {
    this.lastActivity = Date.now();
    if (this.state === 'login') {
      this.onLoginData(chunk);
      return;
    }
    if (this.state === 'closed') return;
    // A chunk with a rewritten message reaches the server in several pieces: one write for all of them.
    const server = this.server;
    if (server === null) {
      this.scanner!.push(chunk);
      if (this.wantServer && !this.batchHeld) {
        this.wantServer = false;
        if (this.state === 'idle' && !this.gatedAtHead()) this.requestServer();
      }
    } else {
      server.socket.cork();
      this.scanner!.push(chunk);
      server.socket.uncork();
    }
    if (this.terminated) this.close('client sent Terminate');
  }

  // ---- login -------------------------------------------------------------------------------------------

  private onLoginData(chunk: Buffer): void {
    this.startBuf = this.startBuf.length === 0 ? chunk : Buffer.concat([this.startBuf, chunk]);
    try {
      while (this.state === 'login') {
        if (this.auth) {
          // Typed messages during authentication.
          if (this.startBuf.length < 5) return;
          const type = this.startBuf[0]!;
          const len = this.startBuf.readInt32BE(1);
          if (type !== Frontend.Password) {
            throw new PoolerError(ErrorCodes.protocolViolation, `expected password response, got message type ${typeName(type)}`);
          }
          if (len < 4 || len > 65536) throw new PoolerError(ErrorCodes.protocolViolation, `invalid authentication message length ${len}`);
          if (this.startBuf.length < len + 1) return;
          const msg = this.startBuf.subarray(0, len + 1);
          this.startBuf = this.startBuf.subarray(len + 1);
          this.onAuthStep(this.auth.onMessage(msg));
          continue;
        }
        if (this.pendingLogin) return; // waiting for the pool; extra bytes wait in startBuf
        const len = startupPacketLength(this.startBuf);
        if (len < 0) return;
        const packet = this.startBuf.subarray(0, len);
        this.startBuf = this.startBuf.subarray(len);
        const p = parseStartupPacket(packet);
        if (p.kind === 'ssl' || p.kind === 'gssenc') {
          // Bytes sent after an encryption request, before our answer, could be injected in the clear.
          if (this.startBuf.length > 0) throw new PoolerError(ErrorCodes.protocolViolation, 'received unencrypted data after encryption request');
          this.socket.write(build.sslRefused);
          continue;
        }
        if (p.kind === 'cancel') {
          this.host.cancel(p.pid, p.key);
          this.close('cancel request', true);
          return;
        }
        if (p.minor > 0 || p.unsupportedOptions.length > 0) {
          this.socket.write(build.negotiateProtocolVersion(0, p.unsupportedOptions));
        }
        this.onStartup(p.params);
      }
    } catch (e) {
      if (e instanceof PoolerError) this.fail(e);
      else this.fail(new PoolerError(ErrorCodes.protocolViolation, `malformed startup: ${(e as Error).message}`));
    }
  }

  private pendingLogin = false;
  private resolved: ResolvedPool | null = null;

  private onStartup(params: Map<string, string>): void {
    const user = params.get('user');
    if (!user) throw new PoolerError(ErrorCodes.noUser, 'no PostgreSQL user name specified in startup packet');
    const repl = params.get('replication');
    if (repl !== undefined && !['false', 'off', 'no', '0'].includes(repl.toLowerCase())) {
      throw new PoolerError(ErrorCodes.replicationUnsupported, 'replication connections are not supported by pooler');
    }
    this.user = user;
    this.database = params.get('database') || user;
    const ignored = new Set(this.host.settings().ignore_startup_parameters.map((s) => s.toLowerCase()));
    for (const [k, v] of params) {
      if (!notSettings.has(k) && !ignored.has(k.toLowerCase())) this.session.values.set(k.toLowerCase(), v);
    }
    const options = params.get('options');
    if (options) for (const [k, v] of parseOptions(options)) if (!ignored.has(k.toLowerCase())) this.session.values.set(k.toLowerCase(), v);
    this.session.startupDone();
    const resolved = this.host.resolvePool(this.database, this.user);
    if (resolved instanceof PoolerError) {
      this.host.log.info({ client: this.id, remote: this.remote, db: this.database, user }, `login failed: ${resolved.message}`);
      throw resolved;
    }
    this.resolved = resolved;
    this.auth = new ClientAuth(this.host.settings().auth_type, user, this.host.secretFor(user));
    this.onAuthStep(this.auth.start());
  }

  private onAuthStep(step: AuthStep): void {
    if (step.kind === 'send') {
      this.socket.write(step.bytes);
      return;
    }
    if (step.kind === 'fail') {
      this.host.log.warn({ client: this.id, remote: this.remote, db: this.database, user: this.user, sqlstate: step.error.sqlstate }, `login failed: ${step.error.message}`);
      throw step.error;
    }
    this.auth = null;
    const r = this.resolved!;
    if (step.clientKey) this.host.rememberClientKey(r.group, step.clientKey);
    if (step.finalBytes) this.socket.write(step.finalBytes);
    this.group = r.group;
    this.topology = r.topology;
    this.mode = r.mode;
    if (r.mode !== 'session' && r.topology.hasReplicas) {
      this.routing = new ClientRouting(this.host.classCache, r.group, r.readRouting);
    }
    this.pendingLogin = true;
    if (r.group.serverParams) this.finishLogin();
    else {
      // Like PgBouncer, learn the server's parameters (and that we can log in) before the client is told "ok".
      this.state = 'login';
      this.requestServer();
    }
  }

  private finishLogin(): void {
    if (this.state === 'closed') return;
    if (this.loginTimer) clearTimeout(this.loginTimer);
    this.loginTimer = null;
    this.pendingLogin = false;
    this.pausedForServer = false;
    this.updateReading();
    const out: Buffer[] = [build.authOk];
    const sent = new Set<string>();
    for (const [k, v] of this.group!.serverParams!) {
      const mine = this.session.values.get(k.toLowerCase());
      out.push(build.parameterStatus(k, mine ?? v));
      sent.add(k.toLowerCase());
    }
    const app = this.session.values.get('application_name');
    if (!sent.has('application_name') && app !== undefined) {
      out.push(build.parameterStatus('application_name', app));
    }
    out.push(build.backendKeyData(this.cancelPid, this.cancelKey), build.readyForQuery.I);
    this.socket.write(Buffer.concat(out));
    this.host.registerCancelKey(this);
    this.scanner = new MessageScanner<Outgoing>(inspectTypes, this.host.settings().max_packet_size, this);
    const maxPrepared = this.host.settings().max_prepared_statements;
    if (this.mode !== 'session' && maxPrepared > 0) {
      this.statements = new ClientStatements(
        this.replies,
        () => this.host.settings().max_prepared_statements || maxPrepared,
        this.group!.knownStatements,
        () => (this.session.dirty = true),
      );
    }
    this.state = this.server ? 'active' : 'idle';
    if (this.host.settings().log_connections) {
      this.host.log.info({ client: this.id, remote: this.remote, db: this.database, user: this.user }, 'login');
    }
    const rest = this.startBuf;
    this.startBuf = Buffer.alloc(0);
    if (rest.length > 0) this.onData(rest);
  }

  // ---- messages from the client ------------------------------------------------------------------------

  inspect(type: number, msg: Buffer): boolean | Outgoing {
    if (validTypes[type] === 0) {
      this.fail(new PoolerError(ErrorCodes.protocolViolation, `invalid frontend message type ${typeName(type)}`));
      this.scanner!.stop();
      return false;
    }
    if ((type === Frontend.Flush || type === Frontend.Sync) && msg.length !== 5) {
      // PostgreSQL fails a Flush with a body and then skips to the next Sync, which pooler would not know it owes.
      this.fail(new PoolerError(ErrorCodes.protocolViolation, `invalid message length ${msg.length - 1} for message type ${typeName(type)}`));
      this.scanner!.stop();
      return false;
    }
    const local = this.localBatch;
    this.localBatch = false;
    const r = this.routing;
    if (r !== null && this.deferredBegin !== null && type !== Frontend.Flush && type !== Frontend.Terminate) this.resumeBegin(r);
    if (type === Frontend.Flush) this.batchHeld = false;
    if (!this.unsynced && type !== Frontend.Query && type !== Frontend.Sync && type !== Frontend.Terminate) {
      this.batchStart = this.server === null ? this.queue.length : -1;
    }
    switch (type) {
      case Frontend.Query: {
        const track = this.tracking();
        if (r === null && !track) return this.onQuery(msg);
        const sql = msg.toString('utf8', 5, msg.length - 1);
        const shape = track ? this.host.shapes.shapeOf(sql) : null;
        let sr: StatementRoute | null = null;
        if (r !== null) {
          const cmd = poolerCommand(sql);
          if (cmd !== null) return this.runPoolerCommand(cmd, r);
          sr = shape !== null ? r.classifyShape(shape, sql) : r.classify(sql);
          if (this.canDeferBegin(r, sr, sql)) return this.deferBegin(msg);
        }
        const v = shape !== null ? this.limitStatement(shape) : ADMIT;
        if (v === REJECT) return this.rejectQuery(this.rejectReason);
        if (r !== null) this.noteStatement(r, sr!, this.unsynced);
        const res = this.onQuery(msg, sql);
        if (v === WAIT) return this.holdForTurn(res, msg, (m) => build.query(build.raiseSql(ErrorCodes.rateLimited.sqlstate, m)));
        this.replies.settleNext(true);
        return res;
      }
      case Frontend.FunctionCall:
        if (r !== null) this.noteStatement(r, FUNCTION_CALL, this.unsynced);
        this.replies.push(Expect.Query);
        return true;
      case Frontend.Sync:
        this.unsynced = false;
        this.batchHeld = false;
        this.statements?.synced();
        if (local && this.server === null && this.queue.length === 0) {
          // No server, so no transaction: idle.
          this.replies.push(Expect.Answered, { answer: build.readyForQuery.I });
          return false;
        }
        this.replies.push(Expect.Sync);
        return true;
      case Frontend.Terminate:
        this.terminated = true;
        this.scanner!.stop();
        return false;
      case Frontend.Parse:
        if (this.tracking()) this.holdIfLimited(this.shapeParse(msg));
        if (r !== null) this.routeParse(r, msg, this.unsynced);
        this.unsynced = true;
        return this.onParse(msg);
      case Frontend.Bind:
        this.holdIfLimited(this.shapesByName.bound(msg));
        if (r !== null) this.noteStatement(r, r.bound(cstring(msg, msg.indexOf(0, 5) + 1)), this.unsynced);
        this.unsynced = true;
        if (this.statements) return this.statements.bind(msg);
        this.replies.push(Expect.Bind);
        return true;
      case Frontend.Describe:
        this.unsynced = true;
        if (this.statements) return this.statements.describe(msg);
        this.replies.push(Expect.Describe);
        return true;
      case Frontend.Execute: {
        this.unsynced = true;
        this.batchHeld = false;
        const shape = this.shapesByName.executing(msg);
        const v = shape !== null ? this.limitStatement(shape) : ADMIT;
        if (v === REJECT) {
          // The server refuses it in the Execute's place (and skips to Sync, aborting a transaction) as for its own error.
          this.replies.push(Expect.Execute, null, 2);
          return build.raiseExtended(ErrorCodes.rateLimited.sqlstate, this.rejectReason);
        }
        const seq = this.replies.push(Expect.Execute);
        if (v === WAIT) {
          return this.holdForTurn(true, msg, (m) => {
            this.replies.patch(seq, Expect.Execute, null, 2);
            return build.raiseExtended(ErrorCodes.rateLimited.sqlstate, m);
          });
        }
        return true;
      }
      case Frontend.Close:
        if (msg.length >= 7) this.shapesByName.closed(msg);
        if (r !== null && msg[5] === 0x53 /* S */) r.closed(cstring(msg, 6));
        this.unsynced = true;
        if (this.statements) return this.statements.close(msg);
        this.replies.push(Expect.Close);
        return true;
      default:
        return true; // Flush and COPY data: no reply of their own
    }
  }

  // ---- digests and rate limits --------------------------------------------------------------------------

  /** Whether statements need their digest: for statistics or for rate-limit rules. */
  private tracking(): boolean {
    return this.host.digestStats.enabled || this.host.limiter.active;
  }

  /** A Parse: the statement's shape is kept under its name for the Executes that run it. */
  private shapeParse(msg: Buffer): Shape | null {
    const nameEnd = msg.indexOf(0, 5);
    const qEnd = nameEnd < 0 ? -1 : msg.indexOf(0, nameEnd + 1);
    if (qEnd < 0) return null; // malformed: the server will say so
    const shape = this.host.shapes.shapeOf(msg.toString('utf8', nameEnd + 1, qEnd));
    this.shapesByName.parsed(msg, shape);
    return shape;
  }

  /** See batchHeld. One map lookup, and only while no server is attached. */
  private holdIfLimited(shape: Shape | null): void {
    if (shape === null || this.server !== null || !this.host.limiter.active) return;
    if (this.host.limiter.find(shape.id, this.database, this.user) !== null) this.batchHeld = true;
  }

  private statOf(shape: Shape): DigestStat | null {
    const ds = this.host.digestStats;
    if (!ds.enabled) return null;
    this.digestTable ??= ds.tableFor(this.database, this.user);
    return ds.entry(this.digestTable, shape.id, shape.text, this.database, this.user);
  }

  /**
   * The statement about to go out gets its statistics entry and faces its rate-limit rule. ADMIT: the reply
   * that ends it settles both (Replies.nextStat / nextSlot). REJECT: rejectReason says why. WAIT: pendingGate
   * holds it until the rule gives it a turn. Without a rule: one map miss, no allocation.
   */
  private limitStatement(shape: Shape): Verdict {
    const stat = this.statOf(shape);
    const limiter = this.host.limiter;
    const rule = limiter.active ? limiter.find(shape.id, this.database, this.user) : null;
    if (rule === null) {
      this.replies.nextStat = stat;
      return ADMIT;
    }
    const v = rule.check(performance.now());
    if (v === ADMIT) {
      this.replies.nextStat = stat;
      this.replies.nextSlot = rule;
    } else if (v === REJECT) {
      if (stat !== null) {
        if (rule.rule.block) stat.blocked++;
        else stat.limited++;
      }
      this.rejectReason = rule.reason;
      if (this.host.log.isLevelEnabled('debug')) this.host.log.debug({ client: this.id, digest: shape.id, rule: rule.rule.name }, rule.reason);
    } else {
      const gate = new LimitGate(rule, (g) => queueMicrotask(() => this.gateSettled(g)));
      gate.stat = stat;
      this.pendingGate = gate;
      this.replies.nextStat = stat;
      this.replies.nextSlot = gate;
    }
    return v;
  }

  /** A statement's reply ended it: its statistics, and its rate-limit turn back. */
  private statementDone(stat: DigestStat | null, slot: LimitSlot | null, ok: boolean, rows: number, startedAt: number): void {
    if (slot !== null) {
      slot.release();
      // A wait that ran out was refused, not run: it counts as limited (counted when it ran out), not as a call.
      if (slot instanceof LimitGate && slot.refused) return;
    }
    if (stat !== null) stat.record(performance.now() - startedAt, rows, ok, this.routing?.node?.role === 'replica');
  }

  /** A simple Query refused by a rate-limit rule: answered by pooler when no server is involved, else by the server. */
  private rejectQuery(message: string): false | Buffer {
    const sqlstate = ErrorCodes.rateLimited.sqlstate;
    if (this.server === null && this.queue.length === 0 && this.replies.length === 0 && !this.unsynced && this.gates === 0) {
      // No server, so no transaction: the session is idle and stays so.
      this.replies.push(Expect.Answered, { answer: Buffer.concat([build.errorResponse('ERROR', sqlstate, message), build.readyForQuery.I]) });
      return false;
    }
    // Inside a transaction (or behind other requests): the server itself raises it, so its transaction is
    // aborted exactly as the client is told.
    this.replies.push(Expect.Query);
    return build.query(build.raiseSql(sqlstate, message));
  }

  /**
   * action = wait: what the statement sends waits in the queue behind its gate. Reading from the client goes
   * on, so a client that leaves gives up its place at once, until GATED_READ_LIMIT bytes are queued behind it. `refuse` builds what replaces it if its wait runs out.
   */
  private holdForTurn(res: boolean | Outgoing, msg: Buffer, refuse: (message: string) => Buffer): boolean | Outgoing {
    const gate = this.pendingGate!;
    this.pendingGate = null;
    if (res === false) {
      // pooler answered it itself: nothing to hold back
      this.replies.settleNext(true);
      return false;
    }
    gate.item = res === true ? msg : res;
    gate.holdsBatch = msg[0] === Frontend.Execute;
    // A rewritten statement (SQL PREPARE/EXECUTE, DISCARD) expects its own replies: past max_wait_ms it runs anyway.
    gate.replacement = Buffer.isBuffer(gate.item) ? refuse : null;
    this.gates++;
    this.gateList.add(gate);
    gate.rule.enqueue(gate);
    return gate;
  }

  /**
   * A waiting Execute takes the messages of its batch queued before it (Parse, Bind, Describe) into its gate,
   * so they reach a server with it: otherwise a server would be taken, and its backend show the statement as
   * active, for the whole wait. Not when part of the batch went out already, or another gate is among them.
   */
  private holdBatch(gate: LimitGate): void {
    const start = this.batchStart;
    if (this.server !== null || start < 0 || start >= this.queue.length) return;
    for (let i = start; i < this.queue.length; i++) if (this.queue[i] instanceof LimitGate) return;
    gate.before = this.queue.splice(start);
  }

  /** A gate got its turn or ran out of time: what waited behind it may go. */
  private gateSettled(gate: LimitGate): void {
    if (!this.gateList.delete(gate)) return;
    this.gates--;
    if (gate.refused && gate.stat !== null) gate.stat.limited++;
    if (this.state === 'closed') return;
    if (this.gates === 0) {
      this.gatedBytes = 0;
      this.updateReading();
    }
    const server = this.server;
    if (server !== null) {
      if (this.state === 'active' && !this.holding && !this.barrier && !this.rerouting && this.queue.length > 0) this.flushQueue();
    } else if (this.state === 'idle' && this.queue.length > 0 && !this.gatedAtHead()) {
      this.requestServer();
    }
  }

  /** The first thing queued is a statement still waiting for its turn: no server is needed yet. */
  private gatedAtHead(): boolean {
    const q = this.queue[0];
    return q instanceof LimitGate && !q.settled;
  }

  /** The client is gone or its batch failed: its waits are given up. */
  private dropGates(): void {
    const had = this.gates > 0;
    for (const g of this.gateList) g.rule.cancel(g);
    this.gateList.clear();
    this.gates = 0;
    this.gatedBytes = 0;
    this.pendingGate = null;
    if (had) this.updateReading();
  }

  /** A simple Query: in transaction and statement pooling, look for what outlives the transaction. */
  private onQuery(msg: Buffer, text?: string): boolean | Outgoing {
    if (this.mode === 'session') {
      this.replies.push(Expect.Query);
      return true;
    }
    // A Query is a batch of its own (for the statements' in-flight bookkeeping).
    this.statements?.synced();
    const sql = text ?? msg.toString('utf8', 5, msg.length - 1);
    const fx = sessionEffects(sql);
    if (fx === null) {
      this.replies.push(Expect.Query);
      return true;
    }
    const feature = this.sessionFeature(sql, fx) ?? (fx.preparedInMulti && this.statements ? 'PREPARE or EXECUTE in a multi-statement query' : null);
    if (feature !== null && this.host.settings().session_features === 'reject') {
      this.replies.push(Expect.Query);
      return build.query(build.raiseSql(ErrorCodes.sessionFeatureRejected.sqlstate, rejectMessage(feature)));
    }
    if (feature !== null) this.pin(feature);
    const st = this.statements;
    if (st !== null) {
      const p = fx.prepared;
      if (p?.kind === 'prepare') return st.sqlPrepare(sql, p, fx.changesSettings);
      if (p?.kind === 'execute') return st.sqlExecute(sql, p, this.unsynced);
      if (fx.discardAll || fx.deallocateAll) return this.barrierQuery(msg, st.forgetAllHooks(() => this.server));
      if (p?.kind === 'deallocate') return st.sqlDeallocate(p, () => this.server);
    }
    this.replies.push(Expect.Query);
    return true;
  }

  // ---- read/write splitting ----------------------------------------------------------------------------

  /** A Parse: its class is kept with the statement, for the Binds that run it. */
  private routeParse(r: ClientRouting, msg: Buffer, unsynced: boolean): void {
    const nameEnd = msg.indexOf(0, 5);
    const qEnd = nameEnd < 0 ? -1 : msg.indexOf(0, nameEnd + 1);
    if (qEnd < 0) return; // malformed: the server will say so
    const sr = r.classify(msg.toString('utf8', nameEnd + 1, qEnd));
    r.parsed(nameEnd === 5 ? '' : msg.toString('utf8', 5, nameEnd), sr);
    this.noteStatement(r, sr, unsynced);
  }

  /**
   * A statement on its way: it joins what waits for a server, or goes to the server held, unless that is a
   * replica it cannot run on; then it and what follows wait until the replica has answered what it was sent,
   * and go to the node they need. Only at a batch boundary: inside an extended-protocol batch or a
   * transaction, the server cannot change (a write there fails on the replica with 25006, as it would in a
   * READ ONLY transaction).
   */
  private noteStatement(r: ClientRouting, sr: StatementRoute, unsynced: boolean): void {
    const server = this.server;
    if (server === null || this.rerouting) {
      r.addToBatch(sr);
      return;
    }
    if (!unsynced && !r.txSeen && !this.holding && this.pinned === null && server.txStatus === TxStatus.Idle && r.needsOtherNode(sr)) {
      this.rerouting = true;
      this.heldOwed = this.replies.readyOwed;
      r.resetBatch();
      r.addToBatch(sr);
      return;
    }
    r.retryMsg = null; // more than one request in flight: no retry
    if (sr.c.cls === 'transaction') r.txSeen = true;
    if (sr.c.cls === 'write') r.wrote = true;
  }

  /**
   * A plain BEGIN does not say whether the transaction will write; the statement after it may (SET TRANSACTION
   * READ ONLY). pooler answers the BEGIN itself and sends it, hidden, ahead of that statement to the node the
   * statement decides. BEGIN cannot fail on an idle session, so answering it early changes nothing the client sees.
   */
  private canDeferBegin(r: ClientRouting, sr: StatementRoute, sql: string): boolean {
    return (
      sr.c.cls === 'transaction' && sr.c.readOnly === undefined && sr.hint === null && this.mode === 'transaction' &&
      this.server === null && this.queue.length === 0 && this.replies.length === 0 && !this.unsynced && this.pinned === null &&
      r.readRouting && r.sessionRoute === 'auto' && !this.defaultReadOnly() && PLAIN_BEGIN.test(sql) && !/serializable/i.test(sql)
    );
  }

  private deferBegin(msg: Buffer): false {
    this.deferredBegin = msg;
    this.replies.push(Expect.Answered, { answer: Buffer.concat([build.commandComplete('BEGIN'), build.readyForQuery.T]) });
    return false;
  }

  /** The statement after a deferred BEGIN: the BEGIN goes first, its replies hidden. */
  private resumeBegin(r: ClientRouting): void {
    const begin = this.deferredBegin!;
    this.deferredBegin = null;
    r.addToBatch(BEGIN);
    this.replies.push(Expect.Hidden);
    this.queue.push(begin);
    if (this.state === 'idle') this.wantServer = true;
  }

  /** SET / SHOW of pooler's own settings: answered by pooler, or by a stand-in query when a server is in the way. */
  private runPoolerCommand(cmd: PoolerCommand, r: ClientRouting): boolean | Outgoing {
    const local = this.server === null && this.queue.length === 0 && !this.unsynced;
    const name = `pooler.${cmd.name}`;
    // Read when the answer is built: a SHOW queued behind the capture of a write's position must see it.
    let value: (() => string) | null = null;
    let error: { sqlstate: string; message: string } | null = null;
    if (cmd.kind === 'set') {
      error = cmd.local ? null : applyPoolerSetting(r, cmd.name, cmd.value);
    } else if (cmd.name === 'route') {
      value = () => r.sessionRoute;
    } else if (cmd.name === 'min_lsn') {
      value = () => formatLsn(r.minLsn);
    } else if (cmd.name === 'last_write_lsn') {
      value = () => formatLsn(this.host.settings().read_your_writes === 'user' ? r.group.lastWriteLsn : r.lastWriteLsn);
    } else {
      error = { sqlstate: '42704', message: `unrecognized configuration parameter "${name}"` };
    }
    if (error !== null) {
      if (local) {
        this.replies.push(Expect.Answered, { answer: Buffer.concat([build.errorResponse('ERROR', error.sqlstate, error.message), build.readyForQuery.I]) });
        return false;
      }
      this.replies.push(Expect.Query);
      return build.query(build.raiseSql(error.sqlstate, error.message));
    }
    if (local) {
      const answer =
        value === null
          ? [build.commandComplete('SET'), build.readyForQuery.I]
          : [build.rowDescriptionText([name]), build.dataRowText([value()]), build.commandComplete('SHOW'), build.readyForQuery.I];
      this.replies.push(Expect.Answered, { answer: Buffer.concat(answer) });
      return false;
    }
    if (value === null) {
      this.replies.push(Expect.Query, { completeAs: build.commandComplete('SET') });
      return build.query(build.noOpSql);
    }
    this.replies.push(Expect.Query);
    const show = value;
    return { run: (_server, out) => out.push(build.query(`SELECT '${show()}'::text AS "${name}"`)) };
  }

  /** Parse: the statement text is checked like a Query's; named statements are tracked. */
  private onParse(msg: Buffer): boolean | Outgoing {
    let changesSettings = false;
    if (this.mode !== 'session') {
      const qStart = msg.indexOf(0, 5) + 1;
      const qEnd = qStart > 0 ? msg.indexOf(0, qStart) : -1;
      if (qEnd > 0) {
        const sql = msg.toString('utf8', qStart, qEnd);
        const fx = sessionEffects(sql);
        if (fx !== null) {
          changesSettings = fx.changesSettings;
          const feature = this.sessionFeature(sql, fx) ?? (fx.prepared || fx.preparedInMulti ? 'SQL PREPARE or EXECUTE in the extended protocol' : null);
          if (feature !== null && this.host.settings().session_features === 'reject') {
            // Answered in the Parse's place by the server itself, which then skips to Sync as for its own error.
            this.replies.push(Expect.Parse, null, 2);
            return build.raiseExtended(ErrorCodes.sessionFeatureRejected.sqlstate, rejectMessage(feature));
          }
          if (feature !== null) this.pin(feature);
        }
      }
    }
    if (this.statements) {
      const r = this.statements.parse(msg, this.server === null && this.queue.length === 0 && this.replies.length === 0, changesSettings);
      if (r === false) this.localBatch = true;
      return r;
    }
    this.replies.push(Expect.Parse);
    return true;
  }

  /** The session-only feature a statement uses (or null); notes settings changes on the way. */
  private sessionFeature(sql: string, fx: SessionEffects): string | null {
    return (fx.changesSettings ? this.session.noteChange(sql) : null) ?? fx.feature;
  }

  /** Keep this client's server until it disconnects: the server holds state only this session can use. */
  private pin(feature: string): void {
    if (this.pinned !== null) return;
    this.pinned = feature;
    if (this.server) this.server.needsDiscard = true;
    if (this.group) this.group.pinnedClients++;
    this.host.log.info({ client: this.id, db: this.database, user: this.user, feature }, 'client pinned to its server');
  }

  /**
   * DISCARD ALL / DEALLOCATE ALL: the server's statements are gone once it is answered, so what follows (which
   * may need them re-prepared) waits for that answer.
   */
  private barrierQuery(msg: Buffer, hooks: ReplyHooks): StatementOp {
    const bytes = Buffer.from(msg);
    let settled = false;
    const done = (): void => {
      settled = true;
      this.barrier = false;
      // Not from inside the server's reply: the queue goes out once that chunk is through.
      queueMicrotask(() => {
        if (this.server && this.state === 'active' && !this.holding && !this.barrier && !this.rerouting && this.queue.length > 0) this.flushQueue();
      });
    };
    this.replies.push(Expect.Query, {
      ok: () => {
        hooks.ok?.();
        done();
      },
      failed: () => {
        hooks.failed?.();
        done();
      },
    });
    return {
      run: (_server, out) => {
        out.push(bytes);
        // Skipped by PostgreSQL (after an extended-protocol error): nothing to wait for.
        if (!settled) this.barrier = true;
      },
    };
  }

  forward(bytes: Buffer): void {
    const server = this.server;
    if (server && this.state === 'active' && this.queue.length === 0 && !this.holding && !this.barrier && !this.rerouting && this.gates === 0) {
      if (!server.write(bytes)) this.pauseForDrain(server);
      return;
    }
    this.queue.push(bytes);
    if (this.gates > 0) this.gatedBytes += bytes.length;
    // Asked for once the whole chunk is scanned, so that all of it goes to the server in one write.
    if (this.state === 'idle') this.wantServer = true;
  }

  /** A message rewritten for the server it reaches (or replaced by pooler), in its place in the stream. */
  replace(r: Outgoing): void {
    if (Buffer.isBuffer(r)) {
      this.forward(r);
      return;
    }
    const server = this.server;
    if (server && this.state === 'active' && this.queue.length === 0 && !this.holding && !this.barrier && !this.rerouting && this.gates === 0) {
      const out: Buffer[] = [];
      r.run(server, out);
      if (out.length > 0 && !server.write(out.length === 1 ? out[0]! : Buffer.concat(out))) this.pauseForDrain(server);
      return;
    }
    // The scanner queues the batch's messages before the Execute (one slice) just before handing over its gate.
    if (r instanceof LimitGate && r.holdsBatch) this.holdBatch(r);
    this.queue.push(r);
    if (this.state === 'idle') this.wantServer = true;
  }

  malformed(err: PoolerError): void {
    this.fail(err);
  }

  // ---- getting and giving back a server ----------------------------------------------------------------

  /** One waiter per client, reused for every acquire: the pool answers through it. */
  private readonly waiter: Waiter = {
    grant: (server) => this.onServerGranted(server),
    fail: (err) => {
      this.waitHandle = null;
      if (this.routing !== null && !this.pendingLogin && this.state !== 'closed' && rerouteOn.has(err.code)) {
        // The node is down (a connect failed, or the monitor banned it): another one may serve the batch.
        if (++this.acquireTries < 3) this.requestServer();
        else this.failBatch(err);
        return;
      }
      this.fail(err);
    },
  };

  private requestServer(): void {
    if (this.state === 'idle') this.state = 'waiting';
    const pool = this.choosePool();
    if (pool === null) {
      // Waiting for the topology to change; unless the batch was answered with an error (back to idle).
      if (this.state === 'waiting') this.pauseForServer();
      return;
    }
    this.pool = pool;
    this.waitHandle = pool.acquire(this.waiter) as QueueEntry<unknown> | null;
    // Most acquires are answered at once; pausing reads (a readStop/readStart pair) is only worth it when queued.
    if (this.waitHandle !== null) this.pauseForServer();
  }

  private pauseForServer(): void {
    if (this.pausedForServer) return;
    this.pausedForServer = true;
    this.updateReading();
  }

  /**
   * The pool of the node what is queued should run on; null when it must wait for the topology to change
   * (requestServer is called again then) or has been answered with an error.
   */
  private choosePool(): Pool | null {
    let topo = this.topology!;
    const r = this.routing;
    if (topo.stopped) {
      topo = this.host.topologyOf(this.database) ?? topo;
      this.topology = topo;
    }
    if (r === null || this.pendingLogin) return this.poolOf(topo.primary ?? topo.nodes[0]!);
    const s = this.host.settings();
    const expired = this.routeWait?.expired === true;
    const route = r.decide(topo, s, this.defaultReadOnly(), this.pinned !== null, expired ? 'primary' : s.all_replicas_lagging, this.avoidNode);
    let node: NodeState | undefined;
    switch (route.kind) {
      case 'primary':
        node = topo.primary ?? undefined;
        break;
      case 'replica':
        node = topo.node(route.id);
        break;
      case 'wait':
        this.waitForTopology(s.replica_wait_timeout);
        return null;
      case 'error':
        if (topo.primary === null) {
          if (!expired && s.primary_wait_timeout > 0) {
            this.waitForTopology(s.primary_wait_timeout);
            return null;
          }
          this.failBatch(new PoolerError(ErrorCodes.noPrimary, `no primary server is available for database "${this.database}" (${route.reason})`));
          return null;
        }
        this.failBatch(new PoolerError(ErrorCodes.noReplica, `no replica may serve this read (${route.reason})`));
        return null;
    }
    if (node === undefined) {
      this.failBatch(new PoolerError(ErrorCodes.noPrimary, `no server is available for database "${this.database}" (${route.reason})`));
      return null;
    }
    this.clearRouteWait();
    if (this.host.log.isLevelEnabled('debug')) this.host.log.debug({ client: this.id, node: node.id, reason: route.reason }, 'route');
    return this.poolOf(node);
  }

  /** The node's pool: the last one used when it is the same (the common case: one node, or the same one again). */
  private poolOf(node: NodeState): Pool {
    const p = this.pool;
    return p !== null && p.node === node && !p.closed ? p : this.host.poolFor(this.group!, node);
  }

  /** default_transaction_read_only of this session: a plain BEGIN then starts a READ ONLY transaction. */
  private defaultReadOnly(): boolean {
    const v = this.session.values.get('default_transaction_read_only');
    return v !== undefined && /^(on|true|yes|1)$/i.test(v);
  }

  /** Ask again on every topology change until one routes the batch, or until `timeoutMs`; then once more. */
  private waitForTopology(timeoutMs: number): void {
    if (this.routeWait !== null) return;
    const retry = (): void => {
      if (this.state === 'waiting' && this.server === null && this.waitHandle === null) this.requestServer();
    };
    const w: { unsubscribe: () => void; timer: NodeJS.Timeout | null; expired: boolean } = {
      unsubscribe: this.topology!.onChange(retry),
      timer: null,
      expired: false,
    };
    w.timer = setTimeout(() => {
      w.timer = null;
      w.expired = true;
      retry();
    }, timeoutMs);
    this.routeWait = w;
  }

  private clearRouteWait(): void {
    const w = this.routeWait;
    if (w === null) return;
    this.routeWait = null;
    w.unsubscribe();
    if (w.timer !== null) clearTimeout(w.timer);
  }

  /** What waited for a server cannot run: it fails as if a server had refused it, and the session goes on. */
  private failBatch(err: PoolerError): void {
    this.clearRouteWait();
    this.acquireTries = 0;
    this.avoidNode = null;
    this.routing?.resetBatch();
    this.host.log.info({ client: this.id, db: this.database, user: this.user, sqlstate: err.sqlstate, code: err.code }, `statement failed: ${err.message}`);
    this.failOwed(err);
    this.state = 'idle';
    if (this.pausedForServer) {
      this.pausedForServer = false;
      this.updateReading();
    }
  }

  /**
   * Answer everything the client is owed with the error, as a server would have: each Query and each
   * extended-protocol batch gets it once, followed by ReadyForQuery. What is queued is dropped.
   */
  private failOwed(err: PoolerError): void {
    this.queue.length = 0;
    this.batchStart = -1;
    this.batchHeld = false;
    this.dropGates();
    this.wantServer = false;
    this.rerouting = false;
    this.holding = false;
    this.barrier = false;
    const error = build.errorResponse('ERROR', err.sqlstate, err.message);
    const out: Buffer[] = [];
    const feed = (type: number, msg: Buffer): void => {
      const r = this.replies.onServerMessage(type, msg);
      if (r === true) out.push(msg);
      else if (r !== false) out.push(r);
    };
    while (this.replies.length > 0) {
      feed(Backend.ErrorResponse, error);
      // An extended-protocol batch without its Sync yet: PostgreSQL would now skip to that Sync.
      if (this.replies.length > 0) feed(Backend.ReadyForQuery, build.readyForQuery.I);
    }
    if (out.length > 0 && !this.socket.destroyed) this.socket.write(Buffer.concat(out));
  }

  /** Give the server back: the client is between transactions. */
  private releaseServer(server: ServerConn): void {
    this.server = null;
    this.state = 'idle';
    this.routing?.released();
    if (this.routing !== null) this.routing.retried = false;
    this.pool!.release(server);
  }

  /**
   * Read the commit position of the write this client just made before the server goes back, so its next
   * reads go only where that write has been replayed. pg_current_wal_insert_lsn() is at or past the commit
   * record even with synchronous_commit = off, where the flushed position may not be yet.
   */
  private captureLsn(server: ServerConn): void {
    const r = this.routing!;
    this.holding = true;
    server.queryRows('SELECT pg_current_wal_insert_lsn()').then(
      (rows) => {
        this.holding = false;
        let lsn = UNKNOWN_LSN;
        try {
          lsn = parseLsn(rows[0]?.[0] ?? '');
        } catch {
          // keep UNKNOWN_LSN: reads go to the primary until the next write's position is known
        }
        r.noteWrite(lsn);
        this.sendDeferredReady();
        if (this.server !== server) return;
        if (this.queue.length > 0) this.flushQueue();
        else this.serverReady(server);
      },
      (e: PoolerError) => {
        this.holding = false;
        r.noteWrite(UNKNOWN_LSN);
        this.sendDeferredReady();
        if (this.server === server) this.serverLost(server, e);
      },
    );
  }

  private sendDeferredReady(): void {
    const ready = this.deferredReady;
    if (ready === null) return;
    this.deferredReady = null;
    if (!this.socket.destroyed) this.socket.write(ready);
  }

  private onServerGranted(server: ServerConn): void {
    this.waitHandle = null;
    if (this.state === 'closed') {
      this.pool!.release(server);
      return;
    }
    if (this.pendingLogin) {
      // Login probe: the pool now knows the server's parameters; give the server straight back.
      this.pool!.release(server);
      this.finishLogin();
      return;
    }
    this.server = server;
    server.peer = this;
    this.state = 'active';
    if (this.pinned !== null) server.needsDiscard = true;
    const r = this.routing;
    if (r !== null) {
      this.acquireTries = 0;
      this.avoidNode = null;
      this.clearRouteWait();
      const only = this.queue.length === 1 ? this.queue[0]! : null;
      r.granted(this.pool!.node, Buffer.isBuffer(only) && only[0] === Frontend.Query ? only : null);
    }
    this.syncThenFlush(server);
  }

  /** Bring the server to this client's session settings, then send what the client has queued. */
  private syncThenFlush(server: ServerConn): void {
    const sync = this.session.syncFor(server);
    if (sync === null) {
      this.flushQueue();
      return;
    }
    // A RESET value is unknown until the server reports it (reported settings) or forever (the rest).
    for (const s of sync) if (s.value === null) server.params.delete(s.name);
    this.holding = true;
    server.runInternal([sync.map((s) => s.sql).join('; ')]).then(
      () => {
        this.holding = false;
        // Remember the client's spelling ('utf8') rather than the server's ('UTF8') so the next link matches.
        for (const s of sync) if (s.value !== null) server.params.set(s.name, s.value);
        if (this.server === server) this.flushQueue();
      },
      (e: PoolerError) => {
        this.holding = false;
        if (this.server !== server) return;
        // The failed setting is recorded in server.touched; pooled, the server would fail the next client's RESET.
        this.server = null;
        server.peer = null;
        server.close(`cannot apply a client's session settings: ${e.message}`);
        this.fail(new PoolerError({ code: 'session_setting_failed', sqlstate: e.sqlstate, severity: 'FATAL' }, `cannot apply the session's settings on the server: ${e.message}`));
      },
    );
  }

  private flushQueue(): void {
    const server = this.server!;
    const wasPaused = this.pausedForServer;
    this.pausedForServer = false;
    if (this.queue.length > 0) {
      const out: Buffer[] = [];
      let n = 0;
      while (n < this.queue.length && !this.barrier) {
        const item = this.queue[n]!;
        if (item instanceof LimitGate && !item.settled) break; // it and what follows wait for its turn
        n++;
        if (Buffer.isBuffer(item)) out.push(item);
        else item.run(server, out);
      }
      this.queue.splice(0, n);
      if (n > 0) this.batchStart = -1;
      if (out.length > 0 && !server.write(out.length === 1 ? out[0]! : Buffer.concat(out))) this.pauseForDrain(server);
    }
    if (wasPaused) this.updateReading();
    // Nothing queued means nothing owed: e.g. a Flush-only batch; give it back if the pool mode allows.
    this.serverReady(server);
  }

  /** Server bytes for this client, with backpressure: a slow reader pauses the server. */
  deliver(bytes: Buffer, from: ServerConn): void {
    if (this.socket.destroyed) return;
    if (this.routing !== null) this.routing.delivered = true;
    // The bytes are a view of a pooled read buffer: hold it until the write is done.
    if (!this.socket.write(bytes, holdCurrent())) from.socket.pause();
  }

  private onDrain(): void {
    this.server?.socket.resume();
  }

  private pauseForDrain(server: ServerConn): void {
    if (this.pausedForDrain) return;
    this.pausedForDrain = true;
    this.updateReading();
    server.socket.once('drain', () => {
      this.pausedForDrain = false;
      this.updateReading();
    });
  }

  private updateReading(): void {
    if (this.state === 'closed') return;
    if (this.pausedForServer || this.pausedForDrain || (this.gates > 0 && this.gatedBytes > GATED_READ_LIMIT)) this.socket.pause();
    else this.socket.resume();
  }

  parameterChanged(name: string, value: string): void {
    this.session.reported(name, value, this.server, this.mode !== 'session');
  }

  reply(type: number, msg: Buffer): boolean | Buffer {
    if (this.routing === null) return this.replies.onServerMessage(type, msg);
    if (type === Backend.ErrorResponse && isFatal(msg)) {
      // The server is about to close (its postmaster died, an admin terminated it): a driver would take the FATAL
      // as the end of its own session. It is the server's end only; serverLost answers the client when it closes.
      this.host.log.info({ client: this.id, node: this.routing.node?.id, err: errorSummary(errorFields(msg)).message }, 'server sent FATAL');
      return false;
    }
    const owed = this.replies.readyOwed;
    const out = this.replies.onServerMessage(type, msg);
    if (this.rerouting) this.heldOwed -= owed - this.replies.readyOwed;
    else if (type === Backend.ReadyForQuery && out !== false && this.replies.length === 0 && this.deferReady(msg)) {
      // read_your_writes = user: the client learns of its commit only once the position is known, so no other
      // connection of the application can be told of the write and read before it
      this.deferredReady = Buffer.from(out === true ? msg : out);
      return false;
    }
    return out;
  }

  private deferReady(msg: Buffer): boolean {
    const r = this.routing!;
    // Only when serverReady will capture the position right after this chunk (it sends the deferred bytes).
    return (
      r.wrote && msg[5] === TxStatus.Idle && r.node?.role === 'primary' && this.host.settings().read_your_writes === 'user' &&
      this.queue.length === 0 && !this.holding && !this.unsynced && this.mode !== 'session' && (this.scanner === null || this.scanner.atBoundary)
    );
  }

  serverReady(server: ServerConn): void {
    this.lastActivity = Date.now();
    if (this.rerouting && this.server === server) {
      if (this.heldOwed > 0 || this.holding) return;
      this.rerouting = false;
      if (server.txStatus !== TxStatus.Idle) {
        this.flushQueue(); // a transaction began after all: what waits must run in it
        return;
      }
      // The replica answered all it was sent; what waits needs another node.
      this.releaseServer(server);
      this.requestServer();
      return;
    }
    if (this.server !== server || this.replies.length > 0 || this.unsynced || this.queue.length > 0 || this.holding) return;
    if (this.scanner && !this.scanner.atBoundary) return;
    if (this.mode === 'session') return;
    if (server.txStatus === TxStatus.Idle) {
      const r = this.routing;
      if (r !== null && r.wrote) {
        r.wrote = false;
        if (r.node?.role === 'primary' && this.host.settings().read_your_writes !== 'off') {
          this.captureLsn(server);
          return;
        }
      }
      if (this.pinned !== null) return; // keeps its server, but statement mode still refuses transaction blocks
      if (this.session.dirty) {
        this.captureSettings(server);
        return;
      }
      this.releaseServer(server);
      return;
    }
    if (this.mode === 'statement') {
      this.fail(new PoolerError(ErrorCodes.statementModeTransaction, 'transaction blocks not allowed in statement pooling mode'));
    }
  }

  /**
   * The client may have changed its session settings (SET, RESET, set_config, DISCARD): read the server's
   * back so they follow the client to its next server. Client messages wait until this is done.
   */
  private captureSettings(server: ServerConn): void {
    this.holding = true;
    // Cleared now, not when the rows arrive: a SET the client sends meanwhile must mark it again.
    this.session.dirty = false;
    server.queryRows(this.session.captureSql()).then(
      (rows) => {
        this.holding = false;
        if (this.server !== server) return;
        this.session.captured(server, rows);
        // RESET may have brought back startup values this server does not hold: sync before the next request.
        if (this.queue.length > 0) this.syncThenFlush(server);
        else this.serverReady(server);
      },
      (e: PoolerError) => {
        this.holding = false;
        if (this.server === server) this.serverLost(server, e);
      },
    );
  }

  serverLost(server: ServerConn, err: PoolerError): void {
    if (this.server !== server) return;
    this.server = null;
    if (this.pausedForDrain) {
      // A dead socket never drains: reading from the client would stay paused for good.
      this.pausedForDrain = false;
      this.updateReading();
    }
    const r = this.routing;
    // Inside a transaction the client must learn that it is gone; so must a session holding session state.
    if (r === null || r.txSeen || server.txStatus !== TxStatus.Idle || this.pinned !== null || this.state === 'closed') {
      this.fail(err);
      return;
    }
    const node = r.node;
    const retry = r.retryMsg !== null && !r.delivered && !r.retried && this.replies.length === 1 && !this.rerouting ? r.retryMsg : null;
    r.released();
    this.state = 'idle';
    if (retry !== null) {
      // A read that no byte of an answer came from yet: run it once more, elsewhere.
      r.retried = true;
      this.avoidNode = node;
      this.queue.unshift(retry);
      r.addToBatch(READ);
      this.host.log.info({ client: this.id, node: node?.id, reason: err.message }, 'retrying a read on another node');
      this.requestServer();
      return;
    }
    r.retried = false;
    const lost = new PoolerError(ErrorCodes.statementLost, `${err.message}; the statement may or may not have run`);
    this.host.log.warn({ client: this.id, node: node?.id, db: this.database, user: this.user }, `statement failed: ${lost.message}`);
    this.failOwed(lost);
  }

  // ---- the end -----------------------------------------------------------------------------------------

  /** Send the client an error and close it. */
  fail(err: PoolerError): void {
    if (this.state === 'closed') return;
    if (!this.socket.destroyed && this.socket.writable) {
      this.socket.write(build.errorResponse(err.severity, err.sqlstate, err.message, err.fields));
    }
    this.close(err.message, false, err);
  }

  close(reason: string, quiet = false, err?: PoolerError): void {
    if (this.state === 'closed') return;
    const wasLoggedIn = this.scanner !== null;
    this.state = 'closed';
    this.clearRouteWait();
    this.dropGates();
    if (this.pinned !== null && this.group) this.group.pinnedClients--;
    this.scanner?.stop();
    if (this.loginTimer) clearTimeout(this.loginTimer);
    if (this.waitHandle) {
      this.pool?.cancelWait(this.waitHandle as never);
      this.waitHandle = null;
    }
    this.disposeServer(reason);
    if (!this.socket.destroyed) {
      this.socket.end();
      this.socket.destroySoon();
    }
    if (!quiet) {
      const settings = this.host.settings();
      if (err || settings.log_disconnections) {
        const fields = { client: this.id, remote: this.remote, db: this.database, user: this.user, sqlstate: err?.sqlstate, code: err?.code };
        if (err && wasLoggedIn) this.host.log.warn(fields, `closing because: ${reason}`);
        else this.host.log.info(fields, `closing because: ${reason}`);
      }
    }
    this.host.clientClosed(this, reason);
  }

  /** The client is gone: a server it held goes back only if it can be made clean, otherwise it is closed. */
  private disposeServer(reason: string): void {
    const server = this.server;
    if (!server) return;
    this.server = null;
    this.routing?.released();
    server.peer = null;
    server.socket.resume();
    const clean =
      this.replies.length === 0 && !this.unsynced && (this.scanner === null || this.scanner.atBoundary) && server.state === 'active' &&
      !server.inspectAll; // the settings sync for this client is still running: its replies are still to come
    // Settings changed and never read back (e.g. SET then BEGIN in one go): only DISCARD ALL makes it clean.
    if (this.session.dirty) server.needsDiscard = true;
    if (clean) {
      // Idle or idle-in-transaction: the pool rolls back (and resets) before anyone else gets it.
      this.pool!.release(server);
      return;
    }
    // Mid-query: cancel it so locks and work stop now, then drop the connection.
    sendCancel(server.host, server.port, server.backendPid, server.backendKey);
    server.close(`client left mid-query (${reason})`);
  }

  /** CancelRequest from this client's key: reaches only the server running this client's query. */
  cancelRunningQuery(): boolean {
    const s = this.server;
    if (!s || this.replies.length === 0) return false;
    sendCancel(s.host, s.port, s.backendPid, s.backendKey);
    return true;
  }
}

/** FunctionCall runs a function by OID: pooler cannot tell what it does, so the primary. */
const READ: StatementRoute = { c: { cls: 'read' }, hint: null };
const BEGIN: StatementRoute = { c: { cls: 'transaction' }, hint: null };
/** BEGIN / START TRANSACTION alone, with or without an isolation level or DEFERRABLE, not READ ONLY/WRITE. */
const PLAIN_BEGIN = /^\s*(?:begin|start\s+transaction)\b[^;]*;?\s*$/i;
/** Pool errors after which the batch may go to another node. */
const rerouteOn = new Set<string>([ErrorCodes.serverConnectFailed.code, ErrorCodes.nodeDown.code]);
const FUNCTION_CALL: StatementRoute = { c: { cls: 'write', reason: 'FunctionCall' }, hint: null };

/** The NUL-terminated string at `start`. */
function cstring(msg: Buffer, start: number): string {
  const end = msg.indexOf(0, start);
  return end < 0 ? '' : msg.toString('utf8', start, end);
}

/** Applies SET/RESET pooler.<name>; returns the error to report, or null. */
function applyPoolerSetting(r: ClientRouting, name: string, value: string | null): { sqlstate: string; message: string } | null {
  switch (name) {
    case 'route': {
      const v = (value ?? 'auto').toLowerCase();
      if (v !== 'primary' && v !== 'replica' && v !== 'auto') {
        return { sqlstate: '22023', message: `invalid value for parameter "pooler.route": "${value}" (allowed: primary, replica, auto)` };
      }
      r.sessionRoute = v;
      return null;
    }
    case 'min_lsn':
      try {
        r.minLsn = value === null ? 0n : parseLsn(value);
        return null;
      } catch {
        return { sqlstate: '22P02', message: `invalid input syntax for type pg_lsn: "${value}"` };
      }
    case 'last_write_lsn':
      return { sqlstate: '55P02', message: 'parameter "pooler.last_write_lsn" cannot be changed' };
    default:
      return { sqlstate: '42704', message: `unrecognized configuration parameter "pooler.${name}"` };
  }
}

/** An ErrorResponse whose severity ends the server's session. */
function isFatal(msg: Buffer): boolean {
  const severity = errorSummary(errorFields(msg)).severity;
  return severity === 'FATAL' || severity === 'PANIC';
}

function rejectMessage(feature: string): string {
  return `${feature} needs the same server for the whole session, which transaction pooling does not give; refused because session_features = reject`;
}
