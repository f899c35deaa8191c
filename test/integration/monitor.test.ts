// The topology monitor against a real primary + 2 streaming replicas: roles, lag, kill, SIGSTOP, failover.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { poll, startCluster, type Cluster } from './harness.ts';
import type { PgNode } from '../cluster/index.ts';
import { descendants } from '../cluster/procs.ts';
import { newNode, type NodeState } from '../../src/topology/node.ts';
import { TopologyMonitor, type MonitorDeps } from '../../src/topology/monitor.ts';
import type { ConnectTarget, ServerCredential } from '../../src/server/connect.ts';

const INTERVAL = 100;

interface LogLine {
  level: number;
  msg: string;
  node?: string;
  [k: string]: unknown;
}

let cluster: Cluster;
let pgPrimary: PgNode;
let pgR1: PgNode;
let pgR2: PgNode;
const logs: LogLine[] = [];
const downs: { node: string; reason: string; at: number }[] = [];
let monitors: TopologyMonitor[] = [];
let monitor: TopologyMonitor;
let primary: NodeState;
let r1: NodeState;
let r2: NodeState;

const logger = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) });

function makeMonitor(
  o: { user?: string; database?: string; credential?: ServerCredential; appName?: string; timeoutMs?: number } = {},
): TopologyMonitor {
  const nodes = [
    newNode(pgPrimary.host, pgPrimary.port, 'primary'),
    newNode(pgR1.host, pgR1.port, 'replica'),
    newNode(pgR2.host, pgR2.port, 'replica', 2),
  ];
  const deps: MonitorDeps = {
    database: 'app',
    nodes,
    target: (n): ConnectTarget => ({
      host: n.host,
      port: n.port,
      user: o.user ?? cluster.superuser,
      database: o.database ?? 'postgres',
      startupParams: o.appName ? { application_name: o.appName } : {},
      credential: o.credential ?? { kind: 'none' },
      connectTimeoutMs: 60_000,
    }),
    settings: () => ({ intervalMs: INTERVAL, timeoutMs: o.timeoutMs ?? 0 }),
    log: logger,
  };
  const m = new TopologyMonitor(deps);
  monitors.push(m);
  return m;
}

const processesOf = (n: PgNode): number[] => {
  const pm = n.pid();
  if (pm === undefined) throw new Error(`${n.name} is not running`);
  return [pm, ...descendants(pm)];
};

beforeAll(async () => {
  cluster = await startCluster({ replicas: 2, name: 'monitor' });
  pgPrimary = cluster.primary;
  [pgR1, pgR2] = cluster.replicas as [PgNode, PgNode];
  monitor = makeMonitor();
  [primary, r1, r2] = monitor.nodes as [NodeState, NodeState, NodeState];
  monitor.onDown((n, reason) => downs.push({ node: n.id, reason, at: Date.now() }));
  monitor.start();
});

afterAll(async () => {
  for (const m of monitors) m.stop();
  await cluster?.destroy();
});

describe('TopologyMonitor', () => {
  it('sees roles and health after the first rounds; lag 0 at rest', async () => {
    // Before any check: writes may go to the configured primary, reads wait for the replicas' first check.
    expect(monitor.primary).toBe(primary);
    await monitor.nextRound();
    await cluster.waitForReplication();
    // Polled rather than counted in rounds: on a loaded machine a 100 ms check may time out now and then.
    await poll(() => monitor.nodes.every((n) => n.checked && n.healthy), 'every node checked and healthy', 5_000);
    expect(monitor.primary).toBe(primary);
    expect(primary).toMatchObject({ role: 'primary', healthy: true, checked: true, failures: 0, lagBytes: 0, lagMs: 0 });
    for (const r of [r1, r2]) {
      expect(r).toMatchObject({ role: 'replica', healthy: true, checked: true, failures: 0, bannedUntil: 0, lastError: null });
    }
    expect(r2.weight).toBe(2);
    expect(primary.walLsn).toBeGreaterThan(0n);
    expect(primary.replayLsn).toBe(primary.walLsn);
    // At rest the replicas replayed what the primary has: no lag, and it does not grow with time.
    await poll(() => r1.lagBytes === 0 && r2.lagBytes === 0, 'replicas at lag 0', 5_000);
    await monitor.nextRound();
    await monitor.nextRound();
    for (const r of [r1, r2]) expect(r).toMatchObject({ lagBytes: 0, lagMs: 0 });
    expect(r1.replayLsn).toBeGreaterThanOrEqual(primary.walLsn);
    expect(new Set(logs.filter((l) => l.msg === 'node up').map((l) => l.node))).toEqual(new Set([primary.id, r1.id, r2.id]));
  });

  it('measures the lag of a replica whose replay is paused, and its return to 0', async () => {
    await cluster.pauseReplay(pgR1);
    try {
      await cluster.query(pgPrimary, 'CREATE TABLE lag_probe (x int)');
      await cluster.query(pgPrimary, 'INSERT INTO lag_probe SELECT generate_series(1, 1000)');
      await poll(() => r1.lagBytes > 0 && r1.lagMs > 0, 'r1 to show lag', 5_000);
      const first = r1.lagMs;
      await poll(() => r1.lagMs >= first + 3 * INTERVAL, 'r1 lag to grow', 5_000);
      expect(r1.lagBytes).toBeGreaterThan(1000);
      expect(r1.healthy).toBe(true);
      // r2 replays as usual.
      await poll(() => r2.lagBytes === 0 && r2.lagMs === 0, 'r2 at lag 0 while r1 is paused', 5_000);
      expect(r1.lagBytes).toBeGreaterThan(0);
    } finally {
      await cluster.resumeReplay(pgR1);
    }
    await poll(() => r1.lagBytes === 0 && r1.lagMs === 0, 'r1 back to lag 0', 10_000);
  });

  it('bans a node a pool reports, until a check succeeds', async () => {
    await poll(() => r2.healthy, 'r2 healthy', 5_000);
    const before = downs.length;
    monitor.reportFailure(r2, 'connection reset');
    expect(r2).toMatchObject({ healthy: false, failures: 1 });
    expect(r2.bannedUntil).toBeGreaterThan(Date.now() - 10);
    // Repeats from the same outage do not pile up.
    monitor.reportFailure(r2, 'connection reset');
    expect(r2.failures).toBe(1);
    expect(downs.slice(before).filter((d) => d.node === r2.id)).toHaveLength(1);
    await poll(() => r2.healthy, 'r2 back after a good check', 5_000);
    expect(r2.failures).toBe(0);
  });

  it('marks a SIGSTOPped replica down within two intervals, and up again after SIGCONT', async () => {
    await poll(() => r2.healthy && r2.failures === 0, 'r2 healthy', 5_000);
    const before = downs.length;
    const pids = processesOf(pgR2);
    let stoppedAt = 0;
    let downAfter = 0;
    let upAfter = 0;
    try {
      for (const p of pids) process.kill(p, 'SIGSTOP');
      stoppedAt = Date.now();
      await poll(() => !r2.healthy, 'stopped r2 to be marked down', 10_000, 5);
      downAfter = Date.now() - stoppedAt;
      expect(r2.lastError).toMatch(/no answer within/);
      // It stays banned while stopped, the backoff growing.
      await poll(() => r2.failures >= 3, 'further failed checks of r2', 10_000);
      expect(r2.healthy).toBe(false);
    } finally {
      for (const p of pids) {
        try {
          process.kill(p, 'SIGCONT');
        } catch {
          // already gone
        }
      }
    }
    const contAt = Date.now();
    await poll(() => r2.healthy, 'r2 up again after SIGCONT', 15_000, 5);
    upAfter = Date.now() - contAt;
    console.log(`SIGSTOP detected after ${downAfter} ms; healthy again ${upAfter} ms after SIGCONT`);
    expect(downAfter).toBeLessThan(2 * INTERVAL + 1500);
    // One onDown for the outage, however many checks failed during it.
    expect(downs.slice(before).filter((d) => d.node === r2.id)).toHaveLength(1);
  });

  it('marks a killed replica down and fires onDown once', async () => {
    const before = downs.length;
    const logsBefore = logs.length;
    const t0 = Date.now();
    await cluster.kill(pgR1);
    const killed = Date.now();
    await poll(() => !r1.healthy, 'killed r1 to be marked down', 10_000, 5);
    console.log(`kill detected ${Date.now() - killed} ms after kill() returned (${Date.now() - t0} ms after it was called)`);
    await poll(() => r1.failures >= 2, 'r1 to fail again', 10_000);
    expect(downs.slice(before).filter((d) => d.node === r1.id)).toHaveLength(1);
    expect(logs.slice(logsBefore).filter((l) => l.msg === 'node down' && l.node === r1.id)).toHaveLength(1);
  });

  it('does not count a refused login (auth, missing database) as a node being down', async () => {
    const logsBefore = logs.length;
    // A generous timeout: a login slowed down by load must not pass for a node being down here.
    const wrongPassword = makeMonitor({ user: 'nobody', credential: { kind: 'password', password: 'wrong' }, timeoutMs: 5_000 });
    const noDb = makeMonitor({ database: 'no_such_db', timeoutMs: 5_000 });
    wrongPassword.start();
    noDb.start();
    for (const m of [wrongPassword, noDb]) {
      await m.nextRound();
      await m.nextRound();
      const [p, , rep2] = m.nodes as [NodeState, NodeState, NodeState];
      // The configured primary stays the primary (pools will report the real error), r2 stays unchecked.
      expect(p).toMatchObject({ healthy: true, checked: false, failures: 0 });
      expect(rep2).toMatchObject({ healthy: false, checked: false, failures: 0 });
      expect(m.primary).toBe(p);
      m.stop();
    }
    const refused = logs.slice(logsBefore).filter((l) => String(l.msg).startsWith('health check login refused'));
    expect(refused.some((l) => /password authentication failed/.test(String(l.reason)))).toBe(true);
    expect(refused.some((l) => /no_such_db/.test(String(l.reason)))).toBe(true);
    // Once per distinct message per node, not once per retry.
    const keys = refused.map((l) => `${l.node} ${String(l.reason)}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('closes its connections on stop()', async () => {
    const m = makeMonitor({ appName: 'monitor-leak-check', timeoutMs: 5_000 });
    m.start();
    await m.nextRound();
    const sql = `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'monitor-leak-check'`;
    const count = async () => (await cluster.query(pgPrimary, sql))[0].n as number;
    expect(await count()).toBe(1);
    m.stop();
    await m.nextRound();
    await poll(async () => (await count()) === 0, 'monitor connection to close', 5_000);
  });

  it('follows a failover: primary killed, replica promoted', async () => {
    await cluster.kill(pgPrimary);
    await poll(() => !primary.healthy, 'killed primary to be marked down', 10_000, 5);
    expect(monitor.primary).toBeNull();
    // The surviving replica replayed everything: it keeps lag 0 and keeps serving reads.
    await monitor.nextRound();
    await poll(() => r2.healthy, 'r2 healthy', 5_000);
    expect(r2).toMatchObject({ lagBytes: 0, lagMs: 0 });
    const t0 = Date.now();
    await cluster.promote(pgR2);
    await poll(() => monitor.primary === r2, 'the promoted replica to become the primary', 10_000, 5);
    console.log(`promotion seen ${Date.now() - t0} ms after promote() was called`);
    expect(r2).toMatchObject({ role: 'primary', healthy: true, lagBytes: 0, lagMs: 0 });
    expect(logs.some((l) => l.msg === 'replica promoted to primary' && l.node === r2.id)).toBe(true);
    expect(primary.healthy).toBe(false);
  });
});
