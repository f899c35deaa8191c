// Server connections of one (database, user): idle stack, FIFO wait queue, pool/reserve/db limits,
// and the reset that makes a released server clean before anyone else gets it.

import { Fifo, type QueueEntry } from './queue.ts';
import { ServerConn, type ServerOwner } from '../server/server.ts';
import { connectServer, type ConnectTarget } from '../server/connect.ts';
import { ErrorCodes, PoolerError } from '../errors.ts';
import { TxStatus } from '../protocol/codes.ts';
import type { PoolMode } from '../config/types.ts';
import type { Logger } from '../log.ts';
import * as build from '../protocol/build.ts';
import { PROBE_NAME } from '../server/statements.ts';
import type { PoolGroup } from './group.ts';
import type { NodeState } from '../topology/node.ts';

export interface Waiter {
  /** The server is now the waiter's; it is in state 'active'. */
  grant(server: ServerConn): void;
  /** No server can be had (timeout, connect failure, pool closed). */
  fail(err: PoolerError): void;
}

/** Limits and timeouts a pool reads on every decision, so a reload takes effect at once. */
/** Closes the probe statement a client's Parse may have left (see ClientStatements.parse); never fails. */
const closeProbe = Buffer.concat([build.closeStatement(PROBE_NAME), build.syncMessage]);

/** Reset queries that make the server forget its prepared statements. */
const dropsStatements = /\b(discard\s+all|deallocate)\b/i;

export interface PoolSettings {
  mode: PoolMode;
  size: number;
  minSize: number;
  reserveSize: number;
  reserveTimeoutMs: number;
  queryWaitTimeoutMs: number;
  serverLifetimeMs: number;
  serverIdleTimeoutMs: number;
  serverCheckDelayMs: number;
  /** null: checks disabled; '' sends an empty query (PgBouncer's `<empty>`) */
  serverCheckQuery: string | null;
  resetQuery: string;
  resetQueryAlways: boolean;
  connectTimeoutMs: number;
}

/** Connection counts shared by pools (max_db_connections per database, max_user_connections per user). */
export class SharedLimit {
  count = 0;
  max: number;
  constructor(max: number) {
    this.max = max;
  }
  get full(): boolean {
    return this.max > 0 && this.count >= this.max;
  }
}

interface WaitEntry {
  waiter: Waiter;
  since: number;
  timer: NodeJS.Timeout | null;
  reserveTimer: NodeJS.Timeout | null;
}

export interface PoolDeps {
  log: Logger;
  /** Computed from the config; called again only after refreshSettings() (a reload). */
  settings(): PoolSettings;
  target(): ConnectTarget;
  dbLimit: SharedLimit;
  userLimit: SharedLimit;
  /** A pool of the same database may give up an idle server to make room under max_db_connections. */
  evictIdleElsewhere(pool: Pool): boolean;
  /** This pool parked an idle server while a shared limit is full: pools sharing the limit may want it. */
  slotIdle(pool: Pool): void;
  serverOpened(server: ServerConn, pool: Pool): void;
  serverClosed(server: ServerConn, pool: Pool, reason: string): void;
  /** a connect to this pool's node failed (the node may be down) */
  connectFailed(pool: Pool, err: PoolerError): void;
}

export class Pool implements ServerOwner {
  readonly database: string;
  readonly user: string;
  /** the PostgreSQL server this pool connects to */
  readonly node: NodeState;
  readonly group: PoolGroup;
  readonly deps: PoolDeps;
  readonly idle: ServerConn[] = [];
  readonly active = new Set<ServerConn>();
  /** servers running a reset or check: neither idle nor someone's */
  readonly busy = new Set<ServerConn>();
  private readonly waiters = new Fifo<WaitEntry>();
  private connecting = 0;
  /** idle servers running server_check_query: about to be available, so no reason to open more */
  private checking = 0;
  private reserveInUse = false;
  closed = false;
  paused = false;
  /** waits and connects, for SHOW POOLS / SHOW STATS and metrics */
  stats = { waitCount: 0, totalWaitMs: 0, maxWaitMs: 0, connects: 0, connectFailures: 0 };

  private cachedSettings: PoolSettings | null = null;

  constructor(group: PoolGroup, node: NodeState, deps: PoolDeps) {
    this.database = group.database;
    this.user = group.user;
    this.group = group;
    this.node = node;
    this.deps = deps;
  }

  /** Limits and timeouts in force, computed once per config so acquire/release stay allocation-free. */
  get settings(): PoolSettings {
    return (this.cachedSettings ??= this.deps.settings());
  }

  /** The config changed: recompute the settings at the next decision. */
  refreshSettings(): void {
    this.cachedSettings = null;
  }

  get total(): number {
    return this.idle.length + this.active.size + this.busy.size + this.connecting;
  }

  get waiting(): number {
    return this.waiters.size;
  }

  /** Ask for a server; the waiter is answered now or later, first come first served. */
  acquire(waiter: Waiter): QueueEntry<WaitEntry> | null {
    if (this.closed) {
      waiter.fail(new PoolerError(ErrorCodes.unknownDatabase, `database "${this.database}" was removed`));
      return null;
    }
    if (this.waiters.size === 0 && !this.paused) {
      const s = this.takeIdle();
      if (s) {
        this.grant(s, waiter, 0);
        return null;
      }
    }
    const st = this.settings;
    const entry: WaitEntry = { waiter, since: Date.now(), timer: null, reserveTimer: null };
    const handle = this.waiters.push(entry);
    if (st.queryWaitTimeoutMs > 0) {
      entry.timer = setTimeout(() => {
        this.cancelWait(handle);
        waiter.fail(new PoolerError(ErrorCodes.queryWaitTimeout, 'query_wait_timeout'));
      }, st.queryWaitTimeoutMs);
    }
    if (st.reserveSize > 0 && st.reserveTimeoutMs > 0) {
      entry.reserveTimer = setTimeout(() => {
        entry.reserveTimer = null;
        this.reserveInUse = true;
        this.fill();
      }, st.reserveTimeoutMs);
    }
    this.fill();
    return handle;
  }

  cancelWait(handle: QueueEntry<WaitEntry>): void {
    if (!handle.queued) return;
    this.waiters.remove(handle);
    clearWaitTimers(handle.value);
  }

  /**
   * Give a server back at a message boundary with no replies owed. A server left inside a transaction is
   * rolled back first; anything not at such a point must be closed by the caller instead.
   */
  release(server: ServerConn): void {
    this.active.delete(server);
    server.peer = null;
    server.lastUsedAt = Date.now();
    server.socket.resume();
    if (server.closed) return;
    const st = this.settings;
    if (server.retire || this.closed) {
      server.close(this.closed ? 'database removed' : 'server retired');
      return;
    }
    if (st.serverLifetimeMs > 0 && Date.now() - server.createdAt >= st.serverLifetimeMs) {
      server.close('server_lifetime');
      return;
    }
    const reset: string[] = [];
    if (server.txStatus !== TxStatus.Idle) reset.push('ROLLBACK');
    const resetQuery = server.needsDiscard ? 'DISCARD ALL' : st.resetQuery && (st.mode === 'session' || st.resetQueryAlways) ? st.resetQuery : '';
    if (resetQuery) {
      reset.push(resetQuery);
      server.needsDiscard = false;
      // After DISCARD ALL / RESET ALL the settings pooler applied are gone; forget them so they are re-applied.
      for (const k of server.touched) server.params.delete(k);
      server.touched.clear();
      if (dropsStatements.test(resetQuery)) server.statements.clear();
    }
    const prefix = server.probeOpen ? closeProbe : undefined;
    server.probeOpen = false;
    if (reset.length === 0 && prefix === undefined) {
      this.makeAvailable(server);
      return;
    }
    server.state = 'internal';
    this.busy.add(server);
    server.runInternal(reset, prefix).then(
      () => {
        this.busy.delete(server);
        if (server.txStatus !== TxStatus.Idle) server.close('reset left the server in a transaction');
        else this.makeAvailable(server);
      },
      (e: PoolerError) => {
        this.busy.delete(server);
        server.close(`reset failed: ${e.message}`);
      },
    );
  }

  /** Put a clean idle server to use: the first waiter gets it, else it goes on the idle stack. */
  private makeAvailable(server: ServerConn): void {
    const entry = this.paused ? undefined : this.waiters.shift();
    if (entry) {
      clearWaitTimers(entry);
      this.grant(server, entry.waiter, Date.now() - entry.since);
    } else {
      server.state = 'idle';
      this.idle.push(server);
      if (this.waiters.size === 0) this.reserveInUse = false;
      // Under a shared limit, another pool's waiter may be stuck behind this idle server: let it take the slot.
      if (this.deps.dbLimit.full || this.deps.userLimit.full) this.deps.slotIdle(this);
    }
  }

  private grant(server: ServerConn, waiter: Waiter, waitedMs: number): void {
    if (waitedMs > 0) {
      this.stats.waitCount++;
      this.stats.totalWaitMs += waitedMs;
      if (waitedMs > this.stats.maxWaitMs) this.stats.maxWaitMs = waitedMs;
    }
    server.state = 'active';
    server.lastUsedAt = Date.now();
    this.active.add(server);
    waiter.grant(server);
  }

  /** Most recently used idle server (warm caches), checked first if it sat idle past server_check_delay. */
  private takeIdle(): ServerConn | undefined {
    const st = this.settings;
    while (this.idle.length > 0) {
      const s = this.idle.pop()!;
      if (s.closed) continue;
      if (st.serverCheckQuery !== null && Date.now() - s.lastUsedAt > st.serverCheckDelayMs) {
        this.check(s, st.serverCheckQuery);
        continue;
      }
      return s;
    }
    return undefined;
  }

  private check(server: ServerConn, sql: string): void {
    server.state = 'internal';
    this.busy.add(server);
    this.checking++;
    server.runInternal([sql]).then(
      () => {
        this.checking--;
        this.busy.delete(server);
        server.lastUsedAt = Date.now();
        if (server.txStatus !== TxStatus.Idle) server.close('server_check_query left a transaction open');
        else this.makeAvailable(server);
      },
      (e: PoolerError) => {
        this.checking--;
        this.busy.delete(server);
        server.close(`server_check_query failed: ${e.message}`);
        this.fill();
      },
    );
  }

  /** Open connections while clients wait and the limits allow. */
  fill(): void {
    if (this.closed || this.paused) return;
    const st = this.settings;
    while (this.waiters.size > this.connecting + this.checking) {
      const limit = st.size + (this.reserveInUse ? st.reserveSize : 0);
      if (this.total >= limit) break;
      if (this.deps.dbLimit.full && !this.deps.evictIdleElsewhere(this)) break;
      if (this.deps.userLimit.full) break;
      this.openOne();
    }
  }

  /** Keep min_pool_size servers open (called by the janitor). */
  ensureMin(): void {
    if (this.closed || this.paused) return;
    const st = this.settings;
    while (this.total < Math.min(st.minSize, st.size) && !this.deps.dbLimit.full && !this.deps.userLimit.full) this.openOne();
  }

  openOne(): void {
    this.connecting++;
    this.deps.dbLimit.count++;
    this.deps.userLimit.count++;
    this.stats.connects++;
    const target = this.deps.target();
    connectServer(target).then(
      (login) => {
        this.connecting--;
        const server = new ServerConn(login, target.host, target.port, this);
        if (this.group.serverParams === null) this.group.serverParams = new Map(login.params);
        this.deps.serverOpened(server, this);
        if (this.closed) server.close('database removed');
        else this.makeAvailable(server);
      },
      (err: PoolerError) => {
        this.connecting--;
        this.deps.dbLimit.count--;
        this.deps.userLimit.count--;
        this.stats.connectFailures++;
        this.deps.log.warn({ db: this.database, user: this.user, node: this.node.id, err: err.message, sqlstate: err.sqlstate }, 'server connect failed');
        this.deps.connectFailed(this, err);
        // With no server at all nobody queued here can be served soon: tell them why now.
        if (this.total === 0) this.failWaiters(err);
      },
    );
  }

  serverClosed(server: ServerConn, reason: string): void {
    const i = this.idle.indexOf(server);
    if (i >= 0) this.idle.splice(i, 1);
    this.active.delete(server);
    this.busy.delete(server);
    this.deps.dbLimit.count--;
    this.deps.userLimit.count--;
    this.deps.serverClosed(server, this, reason);
    this.fill();
  }

  /** Close idle servers past server_idle_timeout / server_lifetime, keeping min_pool_size. */
  closeExpiredIdle(now: number): void {
    const st = this.settings;
    for (let i = 0; i < this.idle.length; ) {
      const s = this.idle[i]!;
      const idleTooLong = st.serverIdleTimeoutMs > 0 && now - s.lastUsedAt > st.serverIdleTimeoutMs && this.total > st.minSize;
      const tooOld = st.serverLifetimeMs > 0 && now - s.createdAt > st.serverLifetimeMs;
      if (idleTooLong || tooOld) s.close(idleTooLong ? 'server_idle_timeout' : 'server_lifetime');
      else i++;
    }
  }

  /** The node is down: waiters are told now (they may go to another node) and idle servers are closed. */
  nodeDown(err: PoolerError): void {
    this.failWaiters(err);
    for (const s of [...this.idle]) s.close(err.message);
  }

  private failWaiters(err: PoolerError): void {
    for (let e = this.waiters.shift(); e; e = this.waiters.shift()) {
      clearWaitTimers(e);
      e.waiter.fail(err);
    }
  }

  /** Give up one idle server (another pool of the database needs the slot). */
  evictOneIdle(): boolean {
    const s = this.idle.shift();
    if (!s) return false;
    s.close('evicted for another pool under max_db_connections');
    return true;
  }

  closeAll(reason: string): void {
    this.closed = true;
    this.failWaiters(new PoolerError(ErrorCodes.shuttingDown, reason));
    for (const s of [...this.idle, ...this.busy]) s.close(reason);
    for (const s of this.active) s.retire = true;
  }
}

function clearWaitTimers(e: WaitEntry): void {
  if (e.timer) clearTimeout(e.timer);
  if (e.reserveTimer) clearTimeout(e.reserveTimer);
  e.timer = e.reserveTimer = null;
}
