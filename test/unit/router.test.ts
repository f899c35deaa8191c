// Unit tests for the read/write splitting router: a table of contexts and topologies with the route each must produce.
import { describe, expect, it } from 'vitest';
import { route, type ReplicaState, type Route, type RouteContext, type Topology } from '../../src/routing/router.ts';

const ctx = (o: Partial<RouteContext> = {}): RouteContext => ({
  cls: 'read',
  inTransaction: false,
  transactionReadOnly: false,
  transactionNode: null,
  hint: null,
  sessionRoute: 'auto',
  readRouting: true,
  minLsn: null,
  maxLagBytes: 1_000_000,
  maxLagMs: 1_000,
  allLagging: 'primary',
  ...o,
});

const rep = (id: string, o: Partial<ReplicaState> = {}): ReplicaState => ({
  id,
  healthy: true,
  lagBytes: 0,
  lagMs: 0,
  replayLsn: 100n,
  outstanding: 0,
  weight: 1,
  ...o,
});

const topo = (o: Partial<Topology> = {}): Topology => ({ primaryUp: true, replicas: [rep('r1'), rep('r2')], ...o });
const down = (replicas: ReplicaState[] = [rep('r1'), rep('r2')]): Topology => ({ primaryUp: false, replicas });
const onlyBad: ReplicaState[] = [rep('r1', { healthy: false }), rep('r2', { lagMs: 5_000 })];

type Expect = { kind: Route['kind']; id?: string; reason?: RegExp };
const P: Expect = { kind: 'primary' };
const R1: Expect = { kind: 'replica', id: 'r1' };
const R2: Expect = { kind: 'replica', id: 'r2' };

const CASES: [name: string, c: RouteContext, t: Topology, e: Expect][] = [
  // 1. open transactions stay where they are
  ['pinned to primary: read stays', ctx({ inTransaction: true, transactionNode: 'primary' }), topo(), P],
  ['pinned to replica: read stays', ctx({ inTransaction: true, transactionReadOnly: true, transactionNode: 'r2' }), topo(), R2],
  ['pinned to replica: COMMIT stays', ctx({ cls: 'transaction', inTransaction: true, transactionNode: 'r2' }), topo(), R2],
  ['pinned to replica: write stays (server rejects it)', ctx({ cls: 'write', inTransaction: true, transactionNode: 'r1' }), topo(), R1],
  ['pinned to replica beats primary hint', ctx({ inTransaction: true, transactionNode: 'r1', hint: 'primary' }), topo(), R1],
  ['pinned to primary beats replica hint', ctx({ inTransaction: true, transactionNode: 'primary', hint: 'replica' }), topo(), P],
  ['pinned to replica even if it turned unhealthy', ctx({ inTransaction: true, transactionNode: 'r1' }), topo({ replicas: [rep('r1', { healthy: false }), rep('r2')] }), R1],
  ['pinned before status caught up (pipelined BEGIN)', ctx({ transactionNode: 'r2' }), topo(), R2],
  // 2. first statement inside a transaction
  ['read in read-write transaction → primary', ctx({ inTransaction: true }), topo(), { kind: 'primary', reason: /read-write transaction/ }],
  ['read in read-only transaction → replica', ctx({ inTransaction: true, transactionReadOnly: true }), topo(), { ...R1, reason: /read-only transaction/ }],
  ['SET LOCAL in read-only transaction → replica', ctx({ cls: 'session', inTransaction: true, transactionReadOnly: true }), topo(), R1],
  ['write in read-only transaction → primary', ctx({ cls: 'write', inTransaction: true, transactionReadOnly: true }), topo(), P],
  ['read-only transaction, none eligible → fallback', ctx({ inTransaction: true, transactionReadOnly: true }), topo({ replicas: onlyBad }), P],
  ['replica hint in read-write transaction → primary', ctx({ inTransaction: true, hint: 'replica' }), topo(), { kind: 'primary', reason: /ignores hint replica/ }],
  // 3. outside a transaction
  ['plain read → replica', ctx(), topo(), { ...R1, reason: /^read$/ }],
  ['write → primary', ctx({ cls: 'write' }), topo(), { kind: 'primary', reason: /^write$/ }],
  ['session command → primary', ctx({ cls: 'session' }), topo(), { kind: 'primary', reason: /session/ }],
  ['BEGIN → primary', ctx({ cls: 'transaction' }), topo(), { kind: 'primary', reason: /transaction control/ }],
  ['BEGIN READ ONLY → replica', ctx({ cls: 'transaction', transactionReadOnly: true }), topo(), { ...R1, reason: /begins read-only/ }],
  // 4. overrides
  ['primary hint forces primary', ctx({ hint: 'primary' }), topo(), { kind: 'primary', reason: /hint primary/ }],
  ['session route primary forces primary', ctx({ sessionRoute: 'primary' }), topo(), { kind: 'primary', reason: /pooler\.route primary/ }],
  ['replica hint beats session route primary', ctx({ hint: 'replica', sessionRoute: 'primary' }), topo(), { ...R1, reason: /hint replica/ }],
  ['primary hint beats session route replica', ctx({ hint: 'primary', sessionRoute: 'replica' }), topo(), P],
  ['session route replica sends reads to a replica', ctx({ sessionRoute: 'replica' }), topo(), { ...R1, reason: /pooler\.route replica/ }],
  ['write with replica hint → primary', ctx({ cls: 'write', hint: 'replica' }), topo(), { kind: 'primary', reason: /write ignores hint replica/ }],
  ['write with session route replica → primary', ctx({ cls: 'write', sessionRoute: 'replica' }), topo(), P],
  ['forced replica, none eligible → allLagging error', ctx({ hint: 'replica', allLagging: 'error' }), topo({ replicas: onlyBad }), { kind: 'error' }],
  ['readRouting off → primary', ctx({ readRouting: false }), topo(), { kind: 'primary', reason: /read routing disabled/ }],
  ['readRouting off beats replica hint', ctx({ readRouting: false, hint: 'replica' }), topo(), P],
  // 5. eligibility and balancing
  ['unhealthy skipped', ctx(), topo({ replicas: [rep('r1', { healthy: false }), rep('r2')] }), R2],
  ['lag bytes over limit skipped', ctx(), topo({ replicas: [rep('r1', { lagBytes: 1_000_001 }), rep('r2')] }), R2],
  ['lag bytes at limit eligible', ctx(), topo({ replicas: [rep('r1', { lagBytes: 1_000_000 }), rep('r2', { outstanding: 1 })] }), R1],
  ['lag ms over limit skipped', ctx(), topo({ replicas: [rep('r1', { lagMs: 1_001 }), rep('r2')] }), R2],
  ['lag ms at limit eligible', ctx(), topo({ replicas: [rep('r1', { lagMs: 1_000 }), rep('r2', { outstanding: 1 })] }), R1],
  ['behind minLsn skipped', ctx({ minLsn: 150n }), topo({ replicas: [rep('r1', { replayLsn: 149n }), rep('r2', { replayLsn: 150n })] }), R2],
  ['minLsn beyond 2^53 compared exactly', ctx({ minLsn: 2n ** 60n + 1n }), topo({ replicas: [rep('r1', { replayLsn: 2n ** 60n }), rep('r2', { replayLsn: 2n ** 60n + 1n })] }), R2],
  ['weight 0 never chosen', ctx(), topo({ replicas: [rep('r1', { weight: 0 }), rep('r2', { outstanding: 50 })] }), R2],
  ['least outstanding wins', ctx(), topo({ replicas: [rep('r1', { outstanding: 3 }), rep('r2', { outstanding: 2 })] }), R2],
  ['weight scales load', ctx(), topo({ replicas: [rep('r1', { outstanding: 3, weight: 2 }), rep('r2', { outstanding: 2 })] }), R1],
  ['equal load: fewer reads served per weight wins', ctx(), topo({ replicas: [rep('r1', { reads: 10 }), rep('r2', { reads: 4, weight: 2 })] }), R2],
  ['equal load and reads: r1 with weight 2 has served less per weight', ctx(), topo({ replicas: [rep('r2', { reads: 6 }), rep('r1', { reads: 10, weight: 2 })] }), R1],
  ['equal ratio ties broken by id', ctx(), topo({ replicas: [rep('r2', { outstanding: 2 }), rep('r1', { outstanding: 4, weight: 2 })] }), R1],
  ['tie broken by id regardless of order', ctx(), topo({ replicas: [rep('b'), rep('a')] }), { kind: 'replica', id: 'a' }],
  // 6. no eligible replica
  ['allLagging primary → primary', ctx(), topo({ replicas: onlyBad }), { kind: 'primary', reason: /1 unhealthy, 1 lagging/ }],
  ['allLagging primary, primary down → error', ctx(), down(onlyBad), { kind: 'error', reason: /primary down/ }],
  ['allLagging wait → wait', ctx({ allLagging: 'wait' }), topo({ replicas: onlyBad }), { kind: 'wait' }],
  ['allLagging error names the setting', ctx({ allLagging: 'error' }), topo({ replicas: onlyBad }), { kind: 'error', reason: /all_replicas_lagging/ }],
  ['no replicas configured → policy', ctx({ allLagging: 'wait' }), topo({ replicas: [] }), { kind: 'wait', reason: /none configured/ }],
  ['only weight 0 → policy', ctx(), topo({ replicas: [rep('r1', { weight: 0 })] }), { kind: 'primary', reason: /weight 0/ }],
  ['all behind minLsn → policy', ctx({ minLsn: 200n, allLagging: 'wait' }), topo(), { kind: 'wait', reason: /2 behind min LSN/ }],
  // 7. primary down
  ['primary down: write → error', ctx({ cls: 'write' }), down(), { kind: 'error', reason: /^primary down/ }],
  ['primary down: read → replica', ctx(), down(), R1],
  ['primary down: primary hint → error', ctx({ hint: 'primary' }), down(), { kind: 'error', reason: /primary down/ }],
  ['primary down: readRouting off → error', ctx({ readRouting: false }), down(), { kind: 'error', reason: /primary down/ }],
  ['primary down: read-only transaction → replica', ctx({ inTransaction: true, transactionReadOnly: true }), down(), R1],
];

describe('route', () => {
  it.each(CASES)('%s', (_name, c, t, e) => {
    const r = route(c, t);
    expect(r.kind).toBe(e.kind);
    if (e.id !== undefined) expect(r).toMatchObject({ id: e.id });
    if (e.reason !== undefined) expect(r.reason).toMatch(e.reason);
    expect(r.reason.length).toBeGreaterThan(0);
  });

  it('does not modify its inputs', () => {
    const c = ctx();
    const t = topo();
    const before = JSON.stringify([c, t], (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    route(c, t);
    expect(JSON.stringify([c, t], (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))).toBe(before);
  });
});
