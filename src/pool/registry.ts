// All pools: a group per (database, server user), a pool per node of that database inside it, and the shared
// per-database (per node) and per-user connection limits.

import { Pool, SharedLimit, type PoolDeps, type PoolSettings } from './pool.ts';
import { PoolGroup } from './group.ts';
import type { ConnectTarget } from '../server/connect.ts';
import type { ServerConn } from '../server/server.ts';
import type { NodeState } from '../topology/node.ts';
import type { Logger } from '../log.ts';
import type { PoolerError } from '../errors.ts';

export interface RegistryDeps {
  log: Logger;
  settingsFor(pool: Pool): PoolSettings;
  targetFor(pool: Pool): ConnectTarget;
  dbMaxConnections(database: string): number;
  userMaxConnections(user: string): number;
  serverOpened(server: ServerConn, pool: Pool): void;
  serverClosed(server: ServerConn, pool: Pool, reason: string): void;
  connectFailed(pool: Pool, err: PoolerError): void;
}

export class PoolRegistry {
  readonly groups = new Map<string, PoolGroup>();
  /** every pool of every group, keyed by database, user and node */
  readonly pools = new Map<string, Pool>();
  private readonly dbLimits = new Map<string, SharedLimit>();
  private readonly userLimits = new Map<string, SharedLimit>();
  private readonly deps: RegistryDeps;

  constructor(deps: RegistryDeps) {
    this.deps = deps;
  }

  group(database: string, user: string): PoolGroup {
    const key = `${database}\0${user}`;
    let g = this.groups.get(key);
    if (!g) {
      g = new PoolGroup(database, user);
      this.groups.set(key, g);
    }
    return g;
  }

  /** The group's pool for one node, created on first use. */
  pool(group: PoolGroup, node: NodeState): Pool {
    let pool = group.pools.get(node.id);
    if (pool && pool.node !== node) pool = undefined; // the topology was rebuilt by a reload
    if (!pool || pool.closed) {
      const { database, user } = group;
      // max_db_connections counts per server: each node of the database has its own limit.
      const dbLimit = this.limit(this.dbLimits, `${database}\0${node.id}`, this.deps.dbMaxConnections(database));
      const userLimit = this.limit(this.userLimits, user, this.deps.userMaxConnections(user));
      const d = this.deps;
      const poolDeps: PoolDeps = {
        log: d.log,
        settings: () => d.settingsFor(created),
        target: () => d.targetFor(created),
        dbLimit,
        userLimit,
        evictIdleElsewhere: (p) => this.evictIdle(p),
        slotIdle: (p) => this.wakeWaiters(p),
        serverOpened: (s, p) => d.serverOpened(s, p),
        serverClosed: (s, p, r) => d.serverClosed(s, p, r),
        connectFailed: (p, e) => d.connectFailed(p, e),
      };
      const created: Pool = new Pool(group, node, poolDeps);
      pool = created;
      group.pools.set(node.id, pool);
      this.pools.set(`${database}\0${user}\0${node.id}`, pool);
    }
    return pool;
  }

  /** Refresh the shared limits after a reload. */
  refreshLimits(): void {
    for (const [key, l] of this.dbLimits) l.max = this.deps.dbMaxConnections(key.slice(0, key.indexOf('\0')));
    for (const [u, l] of this.userLimits) l.max = this.deps.userMaxConnections(u);
  }

  private limit(map: Map<string, SharedLimit>, key: string, max: number): SharedLimit {
    let l = map.get(key);
    if (!l) {
      l = new SharedLimit(max);
      map.set(key, l);
    }
    return l;
  }

  private wakeWaiters(from: Pool): void {
    for (const p of this.pools.values()) {
      if (p !== from && p.waiting > 0 && ((p.database === from.database && p.node === from.node) || p.user === from.user)) p.fill();
    }
  }

  private evictIdle(requester: Pool): boolean {
    for (const p of this.pools.values()) {
      if (p !== requester && p.database === requester.database && p.node === requester.node && p.waiting === 0 && p.evictOneIdle()) return true;
    }
    return false;
  }
}
