// Read/write splitting: decides, without any I/O, whether a statement goes to the primary, a replica, waits or fails.
import type { StatementClass } from './classify.ts';

export interface ReplicaState {
  id: string;
  healthy: boolean;
  lagBytes: number;
  lagMs: number;
  /** WAL position replayed, as a bigint LSN */
  replayLsn: bigint;
  outstanding: number;
  weight: number;
  /** reads routed there so far: spreads ties of outstanding work (one sequential client) by weight */
  reads?: number;
}

export interface Topology {
  primaryUp: boolean;
  replicas: readonly ReplicaState[];
}

export interface RouteContext {
  /** of the statement (or of the Parse behind a Bind/Execute) */
  cls: StatementClass;
  /** the client is inside an explicit transaction block (server status T/E) */
  inTransaction: boolean;
  /** that transaction was declared READ ONLY; with cls 'transaction' outside a transaction: this statement begins a READ ONLY one */
  transactionReadOnly: boolean;
  /** node the open transaction already runs on ('primary' or a replica id), if any */
  transactionNode: string | null;
  /** leading comment pooler:primary / pooler:replica */
  hint: 'primary' | 'replica' | null;
  /** SET pooler.route */
  sessionRoute: 'primary' | 'replica' | 'auto';
  /** per database/user setting: false = everything to the primary */
  readRouting: boolean;
  /** read-your-writes: the client must see at least this LSN (null: no constraint) */
  minLsn: bigint | null;
  maxLagBytes: number;
  maxLagMs: number;
  allLagging: 'primary' | 'wait' | 'error';
}

export type Route =
  | { kind: 'primary'; reason: string }
  | { kind: 'replica'; id: string; reason: string }
  /** no eligible replica now; the caller waits (up to replica_wait_timeout) and asks again */
  | { kind: 'wait'; reason: string }
  | { kind: 'error'; reason: string };

export function route(ctx: RouteContext, topo: Topology): Route {
  // A transaction's snapshot and locks live on one server, so it cannot move; a non-null node implies an open
  // transaction even before the server's ReadyForQuery status has caught up (pipelined BEGIN; ...).
  if (ctx.transactionNode !== null) {
    return ctx.transactionNode === 'primary'
      ? { kind: 'primary', reason: 'transaction pinned to primary' }
      : { kind: 'replica', id: ctx.transactionNode, reason: 'transaction pinned to replica' };
  }
  if (!ctx.readRouting) return primary(topo, 'read routing disabled');

  const override = ctx.hint ?? (ctx.sessionRoute === 'auto' ? null : ctx.sessionRoute);
  const source = ctx.hint !== null ? 'hint' : 'pooler.route';
  if (override === 'primary') return primary(topo, `${source} primary`);

  const blocker = replicaBlocker(ctx);
  if (blocker !== null) {
    return primary(topo, override === 'replica' ? `${blocker} ignores ${source} replica` : blocker);
  }

  const chosen = pick(ctx, topo.replicas);
  const why =
    override === 'replica'
      ? `${source} replica`
      : ctx.inTransaction
        ? 'read-only transaction'
        : ctx.cls === 'transaction'
          ? 'begins read-only transaction'
          : 'read';
  if (typeof chosen !== 'string') return { kind: 'replica', id: chosen.id, reason: why };

  const none = `no eligible replica (${chosen})`;
  switch (ctx.allLagging) {
    case 'primary':
      return topo.primaryUp
        ? { kind: 'primary', reason: `${none}, fell back to primary` }
        : { kind: 'error', reason: `${none} and primary down` };
    case 'wait':
      return { kind: 'wait', reason: none };
    case 'error':
      return { kind: 'error', reason: `${none} and all_replicas_lagging = error` };
  }
}

function primary(topo: Topology, reason: string): Route {
  return topo.primaryUp ? { kind: 'primary', reason } : { kind: 'error', reason: `primary down (${reason})` };
}

// Why this statement must run on the primary, or null if a replica can serve it. Writes never go to a replica,
// even as the first statement of a READ ONLY transaction: the classifier's 'write' also covers things like
// advisory locks and nextval() whose effect only makes sense on the primary.
function replicaBlocker(ctx: RouteContext): string | null {
  if (ctx.cls === 'write') return 'write';
  if (ctx.inTransaction) return ctx.transactionReadOnly ? null : 'read-write transaction';
  if (ctx.cls === 'read') return null;
  if (ctx.cls === 'transaction' && ctx.transactionReadOnly) return null;
  return ctx.cls === 'transaction' ? 'transaction control' : 'session command';
}

// The least loaded eligible replica, or a summary of why none is eligible.
function pick(ctx: RouteContext, replicas: readonly ReplicaState[]): ReplicaState | string {
  if (replicas.length === 0) return 'none configured';
  let best: ReplicaState | undefined;
  const counts = { unhealthy: 0, lagging: 0, 'behind min LSN': 0, 'weight 0': 0 };
  for (const r of replicas) {
    if (!r.healthy) counts.unhealthy++;
    else if (r.lagBytes > ctx.maxLagBytes || r.lagMs > ctx.maxLagMs) counts.lagging++;
    else if (ctx.minLsn !== null && r.replayLsn < ctx.minLsn) counts['behind min LSN']++;
    else if (!(r.weight > 0)) counts['weight 0']++;
    else if (best === undefined || lessLoaded(r, best)) best = r;
  }
  if (best !== undefined) return best;
  return Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
}

// Compares outstanding/weight by cross-multiplying, so equal ratios tie exactly and fall through to the reads
// served so far per weight, then the id.
function lessLoaded(a: ReplicaState, b: ReplicaState): boolean {
  const l = a.outstanding * b.weight;
  const r = b.outstanding * a.weight;
  if (l !== r) return l < r;
  const lr = (a.reads ?? 0) * b.weight;
  const rr = (b.reads ?? 0) * a.weight;
  if (lr !== rr) return lr < rr;
  return a.id < b.id;
}
