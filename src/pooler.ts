// Wires the parts: owns the listener, the clients, the pools and the config they read; reload and shutdown.

import net from 'node:net';
import { readFileSync } from 'node:fs';
import { ClientConn, type ClientHost, type ResolvedPool } from './client/client.ts';
import { PoolRegistry } from './pool/registry.ts';
import type { Pool, PoolSettings } from './pool/pool.ts';
import type { PoolGroup } from './pool/group.ts';
import { ClassCache } from './routing/class-cache.ts';
import { ShapeCache } from './sql/shapes.ts';
import { Limiter } from './limits/limiter.ts';
import { DigestStats } from './stats/digest-stats.ts';
import { MetricsServer } from './metrics/http.ts';
import { registerDigestMetrics } from './metrics/digests.ts';
import { DatabaseTopology, topologySignature } from './topology/database.ts';
import { TopologyMonitor } from './topology/monitor.ts';
import type { NodeState } from './topology/node.ts';
import type { ConnectTarget, ServerCredential } from './server/connect.ts';
import type { ServerConn } from './server/server.ts';
import { parseUserlist, type UserSecret } from './auth/userlist.ts';
import { ErrorCodes, PoolerError } from './errors.ts';
import * as build from './protocol/build.ts';
import { TxStatus } from './protocol/codes.ts';
import type { Config, DatabaseEntry, Settings } from './config/types.ts';
import type { Logger } from './log.ts';

const JANITOR_INTERVAL_MS = 250;

export class Pooler implements ClientHost {
  config: Config;
  readonly log: Logger;
  readonly clients = new Set<ClientConn>();
  readonly servers = new Set<ServerConn>();
  readonly pools: PoolRegistry;
  private userlist = new Map<string, UserSecret>();
  private readonly cancelKeys = new Map<string, ClientConn>();
  /** ClientKeys proved by SCRAM clients, per (database, user), for SCRAM pass-through logins to PostgreSQL */
  private readonly clientKeys = new WeakMap<PoolGroup, Buffer>();
  private readonly groupDatabase = new WeakMap<PoolGroup, { entry: DatabaseEntry; dbname: string }>();
  /** nodes of each database clients asked for (by the name they used), with their monitors */
  readonly topologies = new Map<string, DatabaseTopology>();
  readonly shapes = new ShapeCache();
  readonly classCache = new ClassCache(this.shapes);
  readonly limiter: Limiter;
  readonly digestStats: DigestStats;
  private server: net.Server | null = null;
  private metrics: MetricsServer | null = null;
  private janitor: NodeJS.Timeout | null = null;
  private shuttingDown = false;

  constructor(config: Config, log: Logger) {
    this.config = config;
    this.log = log;
    this.userlist = readUserlist(config);
    this.classCache.setWriteFunctions(config.settings.write_functions);
    this.limiter = new Limiter(config.rateLimits);
    this.digestStats = new DigestStats(config.settings.max_digests);
    this.pools = new PoolRegistry({
      log,
      settingsFor: (p) => this.poolSettings(p),
      targetFor: (p) => this.connectTarget(p.group, p.node, p.settings.connectTimeoutMs),
      dbMaxConnections: (db) => this.findDatabase(db)?.maxDbConnections ?? this.config.settings.max_db_connections,
      userMaxConnections: (u) => this.config.users.get(u)?.maxUserConnections ?? this.config.settings.max_user_connections,
      serverOpened: (s, p) => {
        this.servers.add(s);
        this.log.info({ server: s.id, db: p.database, user: p.user, backendPid: s.backendPid, addr: `${s.host}:${s.port}` }, 'new server connection');
        this.startMonitor(p);
      },
      connectFailed: (p, err) => {
        if (err.code === ErrorCodes.serverConnectFailed.code) this.topologies.get(p.database)?.monitor?.reportFailure(p.node, err.message);
      },
      serverClosed: (s, p, reason) => {
        this.servers.delete(s);
        this.log.info({ server: s.id, db: p.database, user: p.user, backendPid: s.backendPid }, `closing server connection because: ${reason}`);
      },
    });
  }

  settings(): Settings {
    return this.config.settings;
  }

  /** The client listener, and the metrics endpoint when metrics_port is set. */
  async listen(): Promise<net.AddressInfo> {
    const addr = await this.listenClients();
    const s = this.config.settings;
    if (s.metrics_port > 0) {
      const m = new MetricsServer(this.log);
      registerDigestMetrics(m.registry, { digestStats: this.digestStats, limiter: this.limiter, topDigests: () => this.config.settings.metrics_top_digests });
      this.metrics = m;
      await m.listen(s.metrics_addr, s.metrics_port).catch((e: Error) => {
        throw new Error(`metrics endpoint ${s.metrics_addr}:${s.metrics_port}: ${e.message}`);
      });
    }
    return addr;
  }

  private listenClients(): Promise<net.AddressInfo> {
    const s = this.config.settings;
    const server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.server = server;
    this.janitor = setInterval(() => this.sweep(), JANITOR_INTERVAL_MS);
    this.janitor.unref();
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: s.listen_addr === '*' ? undefined : s.listen_addr, port: s.listen_port, backlog: s.listen_backlog || undefined }, () => {
        server.off('error', reject);
        server.on('error', (e) => this.log.error({ err: e.message }, 'listener error'));
        const addr = server.address() as net.AddressInfo;
        this.log.info({ addr: addr.address, port: addr.port }, 'listening');
        resolve(addr);
      });
    });
  }

  private accept(socket: net.Socket): void {
    if (this.shuttingDown) {
      refuse(socket, build.errorResponse('FATAL', '57P01', 'pooler is shutting down'));
      return;
    }
    const max = this.config.settings.max_client_conn;
    if (max > 0 && this.clients.size >= max) {
      this.log.warn({ remote: socket.remoteAddress, max }, 'closing because: no more connections allowed (max_client_conn)');
      refuse(socket, build.errorResponse('FATAL', ErrorCodes.tooManyClients.sqlstate, 'no more connections allowed (max_client_conn)'));
      return;
    }
    const c = new ClientConn(socket, this);
    this.clients.add(c);
  }

  // ---- ClientHost --------------------------------------------------------------------------------------

  secretFor(user: string): UserSecret | undefined {
    return this.userlist.get(user);
  }

  findDatabase(name: string): DatabaseEntry | undefined {
    return this.config.databases.get(name) ?? this.config.databases.get('*');
  }

  resolvePool(database: string, user: string): ResolvedPool | PoolerError {
    const entry = this.findDatabase(database);
    if (!entry) return new PoolerError(ErrorCodes.unknownDatabase, `no such database: ${database}`);
    const serverUser = entry.user ?? user;
    const group = this.pools.group(database, serverUser);
    this.groupDatabase.set(group, { entry, dbname: entry.dbname ?? database });
    const userEntry = this.config.users.get(user);
    const mode = userEntry?.poolMode ?? entry.poolMode ?? this.config.settings.pool_mode;
    const readRouting = (entry.readRouting ?? true) && (userEntry?.readRouting ?? true);
    return { group, mode, topology: this.topologyFor(database, entry), readRouting };
  }

  topologyOf(database: string): DatabaseTopology | undefined {
    return this.topologies.get(database);
  }

  poolFor(group: PoolGroup, node: NodeState): Pool {
    return this.pools.pool(group, node);
  }

  rememberClientKey(group: PoolGroup, clientKey: Buffer): void {
    this.clientKeys.set(group, clientKey);
  }

  // ---- topology ----------------------------------------------------------------------------------------

  private topologyFor(database: string, entry: DatabaseEntry): DatabaseTopology {
    let topo = this.topologies.get(database);
    if (topo === undefined) {
      topo = new DatabaseTopology(database, entry);
      this.topologies.set(database, topo);
    }
    return topo;
  }

  /**
   * Start checking a database's nodes once one of its servers has logged in: the monitor logs in the same
   * way, so its credentials are known to work (with SCRAM pass-through they exist only after a client login).
   */
  private startMonitor(pool: Pool): void {
    const topo = this.topologies.get(pool.database);
    if (topo === undefined || !topo.hasReplicas || topo.monitor !== null || this.shuttingDown) return;
    const group = pool.group;
    const monitor = new TopologyMonitor({
      database: pool.database,
      nodes: topo.nodes,
      target: (node) => ({ ...this.connectTarget(group, node), startupParams: { application_name: 'pooler monitor' } }),
      settings: () => ({ intervalMs: this.config.settings.lag_check_interval, timeoutMs: this.config.settings.lag_check_timeout }),
      log: this.log,
    });
    topo.attach(monitor, (node, reason) => this.nodeDown(topo, node, reason));
  }

  /**
   * A node failed a check or a connect: clients waiting for its servers go elsewhere, idle servers close, and
   * on a replica so do servers silent for longer than a check may take (a hung node never answers them; their
   * clients get their read retried or an error, and keep their session). A long query on a replica that was
   * banned wrongly (a check timed out on a busy machine) is cut too: the price of never waiting on a hung one.
   */
  private nodeDown(topo: DatabaseTopology, node: NodeState, reason: string): void {
    const err = new PoolerError(ErrorCodes.nodeDown, `server ${node.id} is down: ${reason}`);
    const s = this.config.settings;
    const stuckMs = s.lag_check_timeout > 0 ? s.lag_check_timeout : s.lag_check_interval;
    const now = Date.now();
    for (const pool of this.pools.pools.values()) {
      if (pool.node !== node || pool.database !== topo.name) continue;
      pool.nodeDown(err);
      if (node.role !== 'replica') continue;
      for (const server of [...pool.active]) {
        if (now - Math.max(server.lastUsedAt, server.lastReadAt) > stuckMs) server.close(err.message);
      }
    }
  }

  registerCancelKey(client: ClientConn): void {
    this.cancelKeys.set(`${client.cancelPid}:${client.cancelKey}`, client);
  }

  cancel(pid: number, key: number): void {
    const client = this.cancelKeys.get(`${pid}:${key}`);
    // A cancel for an unknown key, or for a client with nothing running, is dropped: it must not hit someone else's query.
    const sent = client?.cancelRunningQuery() ?? false;
    this.log.debug({ client: client?.id, forwarded: sent }, 'cancel request');
  }

  clientClosed(client: ClientConn): void {
    this.clients.delete(client);
    this.cancelKeys.delete(`${client.cancelPid}:${client.cancelKey}`);
  }

  // ---- pool wiring -------------------------------------------------------------------------------------

  private poolSettings(pool: Pool): PoolSettings {
    const s = this.config.settings;
    const db = this.groupDatabase.get(pool.group)?.entry;
    const u = this.config.users.get(pool.user);
    return {
      mode: u?.poolMode ?? db?.poolMode ?? s.pool_mode,
      size: db?.poolSize ?? u?.poolSize ?? s.default_pool_size,
      minSize: db?.minPoolSize ?? s.min_pool_size,
      reserveSize: db?.reservePool ?? u?.reservePoolSize ?? s.reserve_pool_size,
      reserveTimeoutMs: s.reserve_pool_timeout,
      queryWaitTimeoutMs: u?.queryWaitTimeout ?? db?.queryWaitTimeout ?? s.query_wait_timeout,
      serverLifetimeMs: db?.serverLifetime ?? s.server_lifetime,
      serverIdleTimeoutMs: s.server_idle_timeout,
      serverCheckDelayMs: s.server_check_delay,
      serverCheckQuery: s.server_check_query === '' ? null : s.server_check_query === '<empty>' ? '' : s.server_check_query,
      resetQuery: s.server_reset_query,
      resetQueryAlways: s.server_reset_query_always,
      connectTimeoutMs: s.server_connect_timeout > 0 ? s.server_connect_timeout : 15000,
    };
  }

  private connectTarget(group: PoolGroup, node: NodeState, connectTimeoutMs = 15000): ConnectTarget {
    const where = this.groupDatabase.get(group);
    if (!where) throw new Error(`pool ${group.database}/${group.user} has no database entry`);
    const { entry, dbname } = where;
    return {
      host: node.host,
      port: node.port,
      user: group.user,
      database: dbname,
      startupParams: entry.startupParams,
      credential: this.credentialFor(entry, group),
      connectTimeoutMs,
    };
  }

  private credentialFor(entry: DatabaseEntry, group: PoolGroup): ServerCredential {
    if (entry.password !== undefined) return { kind: 'password', password: entry.password };
    const secret = this.userlist.get(group.user);
    if (!secret) return { kind: 'none' };
    if (secret.kind === 'plain') return { kind: 'password', password: secret.password };
    if (secret.kind === 'md5') return { kind: 'md5', hash: secret.hash };
    return { kind: 'scram-keys', clientKey: this.clientKeys.get(group) ?? null, serverKey: secret.serverKey };
  }

  // ---- timers ------------------------------------------------------------------------------------------

  /** The janitor: idle and lifetime limits on servers, idle limits on clients, min_pool_size. */
  private sweep(): void {
    const now = Date.now();
    const s = this.config.settings;
    for (const pool of this.pools.pools.values()) {
      pool.closeExpiredIdle(now);
      pool.ensureMin();
      // A waiter blocked by a shared limit (max_db_connections / max_user_connections) gets its chance here too.
      pool.fill();
    }
    if (s.client_idle_timeout > 0 || s.idle_transaction_timeout > 0) {
      for (const c of this.clients) {
        if (c.state === 'idle' && s.client_idle_timeout > 0 && now - c.lastActivity > s.client_idle_timeout) {
          c.fail(new PoolerError(ErrorCodes.clientIdleTimeout, 'client_idle_timeout'));
        } else if (
          c.state === 'active' && s.idle_transaction_timeout > 0 && c.server !== null && c.server.txStatus !== TxStatus.Idle &&
          !c.queryRunning && now - c.lastActivity > s.idle_transaction_timeout
        ) {
          c.fail(new PoolerError(ErrorCodes.idleTransactionTimeout, 'idle transaction timeout'));
        }
      }
    }
  }

  // ---- reload and shutdown -----------------------------------------------------------------------------

  /** Swap in a validated config: settings, databases, users and the auth file take effect for the next decision. */
  reload(next: Config): void {
    const userlist = readUserlist(next);
    this.config = next;
    this.userlist = userlist;
    this.classCache.setWriteFunctions(next.settings.write_functions);
    this.limiter.apply(next.rateLimits);
    this.digestStats.resize(next.settings.max_digests);
    this.pools.refreshLimits();
    for (const [name, topo] of this.topologies) {
      const entry = this.findDatabase(name);
      if (entry && topologySignature(entry) === topo.signature) {
        topo.updateWeights(entry);
        continue;
      }
      // The nodes changed: new clients' batches go to the new ones; the old nodes' pools drain and close.
      topo.stop();
      this.topologies.delete(name);
      if (entry) this.topologyFor(name, entry);
    }
    for (const group of this.pools.groups.values()) {
      const entry = this.findDatabase(group.database);
      if (entry) this.groupDatabase.set(group, { entry, dbname: entry.dbname ?? group.database });
    }
    for (const pool of this.pools.pools.values()) {
      const entry = this.findDatabase(pool.database);
      const topo = this.topologies.get(pool.database);
      if (!entry) pool.closeAll('database removed from config');
      else if (topo === undefined || topo.node(pool.node.id) !== pool.node) pool.closeAll('database servers changed in config');
      pool.refreshSettings();
    }
  }

  /** Stop accepting; close everything once clients are gone or after `timeoutMs`. */
  async shutdown(reason: string, timeoutMs: number): Promise<void> {
    this.shuttingDown = true;
    if (this.janitor) clearInterval(this.janitor);
    for (const t of this.topologies.values()) t.stop();
    // Not awaited: close() calls back only once every accepted connection is gone, which is what we wait for below.
    this.server?.close();
    this.metrics?.close();
    const deadline = Date.now() + timeoutMs;
    while (this.clients.size > 0 && Date.now() < deadline) {
      for (const c of this.clients) if (c.state === 'idle' || c.state === 'login') c.close(reason);
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const c of this.clients) c.fail(new PoolerError(ErrorCodes.shuttingDown, reason));
    for (const p of this.pools.pools.values()) p.closeAll(reason);
  }

  /** Immediate stop. */
  closeNow(reason: string): void {
    this.shuttingDown = true;
    if (this.janitor) clearInterval(this.janitor);
    for (const t of this.topologies.values()) t.stop();
    this.server?.close();
    this.metrics?.close();
    for (const c of this.clients) c.fail(new PoolerError(ErrorCodes.shuttingDown, reason));
    for (const p of this.pools.pools.values()) p.closeAll(reason);
    for (const s of this.servers) s.close(reason);
  }
}

/** Send a final error and make sure the socket goes away: read (and drop) what the client sends until it closes. */
function refuse(socket: net.Socket, error: Buffer): void {
  socket.on('error', () => socket.destroy());
  socket.setTimeout(5000, () => socket.destroy());
  socket.resume();
  socket.end(error);
}

function readUserlist(config: Config): Map<string, UserSecret> {
  const path = config.settings.auth_file;
  if (!path) return new Map();
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${config.file}: auth_file: cannot read ${path}: ${(e as Error).message}`);
  }
  return parseUserlist(text, path);
}
