// All pools, keyed by (database, server user), with the shared per-database and per-user connection limits.

import { Pool, SharedLimit, type PoolDeps, type PoolSettings } from './pool.ts';
import type { ConnectTarget } from '../server/connect.ts';
import type { ServerConn } from '../server/server.ts';
import type { Logger } from '../log.ts';

export interface RegistryDeps {
  log: Logger;
  settingsFor(pool: Pool): PoolSettings;
  targetFor(pool: Pool): ConnectTarget;
  dbMaxConnections(database: string): number;
  userMaxConnections(user: string): number;
  serverOpened(server: ServerConn, pool: Pool): void;
  serverClosed(server: ServerConn, pool: Pool, reason: string): void;
}

export class PoolRegistry {
  readonly pools = new Map<string, Pool>();
  private readonly dbLimits = new Map<string, SharedLimit>();
  private readonly userLimits = new Map<string, SharedLimit>();
  private readonly deps: RegistryDeps;

  constructor(deps: RegistryDeps) {
    this.deps = deps;
  }

  get(database: string, user: string): Pool {
    const key = `${database}\0${user}`;
    let pool = this.pools.get(key);
    if (!pool || pool.closed) {
      const dbLimit = this.limit(this.dbLimits, database, this.deps.dbMaxConnections(database));
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
      };
      const created: Pool = new Pool(database, user, poolDeps);
      pool = created;
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** Refresh the shared limits after a reload. */
  refreshLimits(): void {
    for (const [db, l] of this.dbLimits) l.max = this.deps.dbMaxConnections(db);
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
      if (p !== from && p.waiting > 0 && (p.database === from.database || p.user === from.user)) p.fill();
    }
  }

  private evictIdle(requester: Pool): boolean {
    for (const p of this.pools.values()) {
      if (p !== requester && p.database === requester.database && p.waiting === 0 && p.evictOneIdle()) return true;
    }
    return false;
  }
}
