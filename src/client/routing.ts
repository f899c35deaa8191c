// One client's read/write splitting state: the class of what waits for a server, the node it holds, its
// hints, and the WAL positions its reads must see (read-your-writes).

import type { ClassCache, StatementRoute } from '../routing/class-cache.ts';
import { leadingHint, type Hint } from '../routing/hints.ts';
import { route, type Route, type RouteContext } from '../routing/router.ts';
import type { DatabaseTopology } from '../topology/database.ts';
import type { NodeState } from '../topology/node.ts';
import type { PoolGroup } from '../pool/group.ts';
import type { Settings } from '../config/types.ts';
import type { Shape } from '../sql/shapes.ts';

const RANK = { read: 0, transaction: 1, session: 2, write: 3 } as const;
const CLASS_OF_RANK = ['read', 'transaction', 'session', 'write'] as const;
/** A capture of the commit position failed: until the next one succeeds, only the primary is known to be fresh. */
export const UNKNOWN_LSN = (1n << 64n) - 1n;
/** Statement names a client may have before the oldest are forgotten (and route to the primary). */
const MAX_NAMED = 10_000;

export type { StatementRoute };

const UNNAMED_READ: StatementRoute = { c: { cls: 'read' }, hint: null };
const UNKNOWN: StatementRoute = { c: { cls: 'write', reason: 'unknown prepared statement' }, hint: null };

export class ClientRouting {
  readonly cache: ClassCache;
  readonly group: PoolGroup;
  /** [databases] / [users] read_routing */
  readonly readRouting: boolean;

  // What waits for a server: strongest class, READ ONLY of a BEGIN in it, a hint.
  private rank = -1;
  private readOnly: boolean | undefined = undefined;
  private hint: Hint | null = null;
  /** a transaction statement is among them */
  private tx = false;

  /** node of the server held (or being acquired) */
  node: NodeState | null = null;
  /** a write went to the held server since it was granted: its commit position is read before release */
  wrote = false;
  /** a transaction statement went to the held server: its transaction state is not known to be idle */
  txSeen = false;
  /** the one simple Query in flight on a replica, for one retry elsewhere if the replica dies before answering */
  retryMsg: Buffer | null = null;
  retried = false;
  /** server bytes reached the client since the server was granted */
  delivered = false;

  sessionRoute: 'primary' | 'replica' | 'auto' = 'auto';
  /** SET pooler.min_lsn */
  minLsn = 0n;
  /** commit position of this client's last write transaction */
  lastWriteLsn = 0n;

  private readonly named = new Map<string, StatementRoute>();
  private unnamed: StatementRoute = UNNAMED_READ;

  constructor(cache: ClassCache, group: PoolGroup, readRouting: boolean) {
    this.cache = cache;
    this.group = group;
    this.readRouting = readRouting;
  }

  /** Class and hint of a statement's text; no allocation unless it carries a hint. */
  classify(sql: string): StatementRoute {
    const cached = this.cache.routeOf(sql);
    const hint = leadingHint(sql);
    return hint === null ? cached : { c: cached.c, hint };
  }

  /** The same for a statement whose shape is already known. */
  classifyShape(shape: Shape, sql: string): StatementRoute {
    const cached = this.cache.routeOfShape(shape, sql);
    const hint = leadingHint(sql);
    return hint === null ? cached : { c: cached.c, hint };
  }

  parsed(name: string, sr: StatementRoute): void {
    if (name === '') {
      this.unnamed = sr;
      return;
    }
    if (this.named.size >= MAX_NAMED && !this.named.has(name)) this.named.clear();
    this.named.set(name, sr);
  }

  closed(name: string): void {
    this.named.delete(name);
  }

  /** What a Bind of this statement runs. */
  bound(name: string): StatementRoute {
    return name === '' ? this.unnamed : (this.named.get(name) ?? UNKNOWN);
  }

  /** A statement joins what waits for the next server. */
  addToBatch(sr: StatementRoute): void {
    const r = RANK[sr.c.cls];
    if (r > this.rank) this.rank = r;
    if (sr.c.cls === 'transaction' && sr.c.readOnly !== undefined && this.readOnly === undefined) this.readOnly = sr.c.readOnly;
    if (sr.hint !== null && this.hint === null) this.hint = sr.hint;
    if (sr.c.cls === 'transaction') this.tx = true;
  }

  resetBatch(): void {
    this.rank = -1;
    this.readOnly = undefined;
    this.hint = null;
    this.tx = false;
  }

  /** A server of `node` was granted for what waited: the batch's facts now describe the held server. */
  granted(node: NodeState, onlyQuery: Buffer | null): void {
    this.node = node;
    node.outstanding++;
    if (this.rank === RANK.write) {
      this.wrote = true;
      node.writes++;
    } else {
      node.reads++;
    }
    this.txSeen = this.tx;
    this.retryMsg = node.role === 'replica' ? onlyQuery : null;
    this.delivered = false;
    this.resetBatch();
  }

  /** The held server went back to its pool, or was lost. */
  released(): void {
    if (this.node !== null) this.node.outstanding--;
    this.node = null;
    this.wrote = false;
    this.txSeen = false;
    this.retryMsg = null;
    this.delivered = false;
  }

  /** Whether a statement cannot run on the replica this client holds, so it must wait for another server. */
  needsOtherNode(sr: StatementRoute): boolean {
    if (this.node === null || this.node.role !== 'replica') return false;
    if (sr.hint === 'primary' || (sr.hint === null && this.sessionRoute === 'primary')) return true;
    const cls = sr.c.cls;
    return cls === 'write' || cls === 'session' || (cls === 'transaction' && sr.c.readOnly !== true);
  }

  /** The WAL position this client's next read must see, or null. */
  requiredLsn(mode: Settings['read_your_writes']): bigint | null {
    let m = this.minLsn;
    if (mode === 'client' && this.lastWriteLsn > m) m = this.lastWriteLsn;
    if (mode === 'user' && this.group.lastWriteLsn > m) m = this.group.lastWriteLsn;
    return m === 0n ? null : m;
  }

  /** The commit position of a write this client made. */
  noteWrite(lsn: bigint): void {
    if (lsn > this.lastWriteLsn || this.lastWriteLsn === UNKNOWN_LSN) this.lastWriteLsn = lsn;
    const g = this.group;
    if (lsn > g.lastWriteLsn || g.lastWriteLsn === UNKNOWN_LSN) g.lastWriteLsn = lsn;
  }

  /** Where what waits for a server goes. The context object is this client's, refilled for each decision. */
  decide(
    topo: DatabaseTopology,
    s: Settings,
    defaultReadOnly: boolean,
    pinned: boolean,
    lagPolicy: RouteContext['allLagging'],
    avoid: NodeState | null,
  ): Route {
    const ctx = this.ctx;
    ctx.cls = this.rank < 0 ? 'read' : CLASS_OF_RANK[this.rank]!;
    ctx.transactionReadOnly = this.readOnly ?? defaultReadOnly;
    ctx.hint = this.hint;
    ctx.sessionRoute = this.sessionRoute;
    ctx.readRouting = this.readRouting && !pinned;
    ctx.minLsn = this.requiredLsn(s.read_your_writes);
    ctx.maxLagBytes = s.max_replica_lag_bytes > 0 ? s.max_replica_lag_bytes : Infinity;
    ctx.maxLagMs = s.max_replica_lag_ms > 0 ? s.max_replica_lag_ms : Infinity;
    ctx.allLagging = lagPolicy;
    const replicas = avoid === null ? topo.replicas : topo.replicas.filter((n) => n !== avoid);
    return route(ctx, { primaryUp: topo.primary !== null, replicas });
  }

  private readonly ctx: RouteContext = {
    cls: 'read',
    // Routing happens only when the client holds no server, so never inside a transaction.
    inTransaction: false,
    transactionReadOnly: false,
    transactionNode: null,
    hint: null,
    sessionRoute: 'auto',
    readRouting: true,
    minLsn: null,
    maxLagBytes: Infinity,
    maxLagMs: Infinity,
    allLagging: 'primary',
  };

}
