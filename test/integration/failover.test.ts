// Acceptance tests of issue 4's health checks and failover under client load: a replica killed, a replica hung, and
// the primary killed then a replica promoted. Each scenario damages its cluster, so each describe starts its own.

import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgNode } from '../cluster/index.ts';
import { pgClient, poll, startCluster, startPoolerFor, type Cluster, type PoolerProcess } from './harness.ts';

const READ = 'SELECT inet_server_port() AS port, pg_sleep(0.01)';
const now = (): number => performance.now();

/** One statement's fate, times from performance.now(). */
interface Outcome {
  start: number;
  end: number;
  port?: number;
  code?: string;
  error?: string;
}

interface Loop {
  client: pg.Client;
  outcomes: Outcome[];
  /** The connection to pooler closed: the session was lost. */
  lost: boolean;
  /** Start of the statement awaiting its answer, if any. */
  pending: number | undefined;
  done: Promise<void>;
}

/** Clients through pooler, each running `sql` back to back until stopped; a failed statement is recorded and the loop goes on. */
async function startLoops(pooler: PoolerProcess, n: number, sql: string) {
  let stopped = false;
  const loops: Loop[] = [];
  for (let i = 0; i < n; i++) {
    const client = pgClient(pooler);
    await client.connect();
    const loop: Loop = { client, outcomes: [], lost: false, pending: undefined, done: Promise.resolve() };
    // node-postgres reports a broken connection with 'error' and may never emit 'end'.
    client.on('end', () => (loop.lost = true));
    client.on('error', () => (loop.lost = true));
    loop.done = (async () => {
      while (!stopped && !loop.lost) {
        const start = now();
        loop.pending = start;
        try {
          const r = await client.query(sql);
          loop.outcomes.push({ start, end: now(), port: r.rows[0].port as number });
        } catch (e) {
          const err = e as { code?: string; message: string };
          loop.outcomes.push({ start, end: now(), code: err.code, error: err.message });
          // Pacing, not synchronisation: a statement that fails at once must not spin the loop.
          await delay(20);
        } finally {
          loop.pending = undefined;
        }
      }
    })();
    loops.push(loop);
  }
  let stopping: Promise<void> | undefined;
  return {
    loops,
    /** Ends the loops; a statement still hung after 30 s (a pooler bug) is abandoned so cleanup can go on. */
    stop(): Promise<void> {
      stopped = true;
      stopping ??= Promise.race([Promise.all(loops.map((l) => l.done)).then(() => {}), delay(30_000)]);
      return stopping;
    },
    async close(): Promise<void> {
      await this.stop();
      await Promise.all(loops.map((l) => l.client.end().catch(() => {})));
    },
  };
}

const ok = (o: Outcome) => o.port !== undefined;
const all = (loops: Loop[]) => loops.flatMap((l) => l.outcomes);

/** What the loops have seen so far, for failure messages: answers per port, errors per SQLSTATE, lost sessions. */
function tally(loops: Loop[]): string {
  const count = (keys: string[]) => Object.entries(Object.groupBy(keys, (k) => k)).map(([k, v]) => `${k}: ${v!.length}`);
  const outcomes = all(loops);
  const errors = outcomes.filter((o) => !ok(o));
  return (
    `answers by port {${count(outcomes.filter(ok).map((o) => String(o.port))).join(', ')}}, ` +
    `errors {${count(errors.map((e) => `${e.code ?? 'no code'} ${e.error}`)).join('; ')}}, ` +
    `${loops.filter((l) => l.lost).length} of ${loops.length} sessions lost, ` +
    `${loops.filter((l) => l.pending !== undefined && now() - l.pending > 1000).length} statements unanswered for over 1 s`
  );
}

/** poll() whose timeout message also tells what the loops saw. */
function waitUntil<T>(check: () => T, what: string, loops: Loop[], timeoutMs?: number): Promise<T> {
  return poll(check, what, timeoutMs).catch((e: Error) => {
    throw new Error(`${e.message} (${tally(loops)})`);
  });
}

/** Asserts list is empty; on failure shows how many and the first few, not thousands of rows. */
function expectNone(list: Outcome[], what: string): void {
  expect(list.length, `${what}: ${list.length}, first ${JSON.stringify(list.slice(0, 3))}`).toBe(0);
}

/** Each loop's client is still connected and answers one more statement. */
async function expectSessionsKept(loops: Loop[], sql = READ): Promise<void> {
  expect(loops.filter((l) => l.lost).length).toBe(0);
  const finals = await Promise.allSettled(loops.map((l) => l.client.query(sql)));
  expect(finals.filter((f) => f.status === 'rejected').map((f) => String((f as PromiseRejectedResult).reason))).toEqual([]);
}

function replicasLine(cluster: Cluster): string {
  return `replicas=${cluster.replicas.map((r) => `${r.host}:${r.port}`).join(',')}`;
}

/** A fresh primary + 2 replicas and a pooler in front for one describe; torn down in afterAll. */
function setup(interval: number) {
  const s = {} as { cluster: Cluster; pooler: PoolerProcess; primary: PgNode; a: PgNode; b: PgNode };
  beforeAll(async () => {
    s.cluster = await startCluster({ replicas: 2, name: 'failover' });
    [s.primary, s.a, s.b] = [s.cluster.primary, ...s.cluster.replicas];
    s.pooler = await startPoolerFor(s.cluster, {
      appExtra: replicasLine(s.cluster),
      settings: { lag_check_interval: `${interval}ms`, default_pool_size: 20 },
    });
  });
  afterAll(async () => {
    await s.pooler?.stop();
    await s.cluster?.destroy();
  });
  return s;
}

describe('replica killed with SIGKILL under read load from 20 clients', () => {
  const INTERVAL = 100;
  // Two checks to notice the death, plus 1 s for a loaded 2-core machine.
  const DETECT_MS = 2 * INTERVAL + 1000;
  const s = setup(INTERVAL);

  it('keeps every session, fails only statements in flight with class 08, and stops routing to the dead replica', async () => {
    const load = await startLoops(s.pooler, 20, READ);
    try {
      const t0 = now();
      await waitUntil(
        () => now() - t0 >= 1000 && all(load.loops).some((o) => o.port === s.a.port) && load.loops.every((l) => l.outcomes.some(ok)),
        'read load to reach replica A from every client',
        load.loops,
      );
      const killAt = now();
      await s.cluster.kill(s.a);
      await waitUntil(
        () => now() - killAt >= 2500 && load.loops.every((l) => l.outcomes.filter((o) => ok(o) && o.start > killAt + DETECT_MS).length >= 20),
        'every client to keep reading after the kill',
        load.loops,
        15_000,
      );
      await load.stop();

      const outcomes = all(load.loops);
      const errors = outcomes.filter((o) => !ok(o));
      console.log(
        `replica kill: ${outcomes.length} statements, ${errors.length} errors (${[...new Set(errors.map((e) => e.code))].join(',')}), ` +
          `${outcomes.filter((o) => o.port === s.a.port).length} served by A before the kill`,
      );
      expectNone(errors.filter((e) => e.end < killAt), 'errors before the kill');
      expect(errors.length).toBeLessThanOrEqual(20);
      expectNone(errors.filter((e) => !e.code?.startsWith('08')), 'errors outside class 08');
      expectNone(outcomes.filter((o) => o.port === s.a.port && o.start > killAt + DETECT_MS), 'answers from A after detection');
      await expectSessionsKept(load.loops);
    } finally {
      await load.close();
    }
  });
});

describe('replica hung with SIGSTOP for 20 s under read load from 10 clients', () => {
  const INTERVAL = 200;
  // The issue's scenario: long enough that a hang cannot pass for a blip, and for reconnect/backoff paths to run.
  const FREEZE_MS = 20_000;
  // A hung node is banned within two intervals (lag_check_timeout = interval); 1.1 s on top for the noisy 2-core machine.
  const BOUND_MS = 2 * INTERVAL + 1100;
  const s = setup(INTERVAL);

  it('bounds every query by the detection time, stops routing to the hung replica, and takes it back after thaw', async () => {
    const load = await startLoops(s.pooler, 10, READ);
    const probes: Outcome[] = [];
    try {
      await waitUntil(() => all(load.loops).some((o) => o.port === s.a.port), 'replica A to serve reads', load.loops);
      let freezeAt = 0;
      let thawAt = 0;
      try {
        freezeAt = now();
        await s.cluster.freeze(s.a);
        // New connections during the freeze, every 500 ms: connect and one read each.
        while (now() - freezeAt < FREEZE_MS) {
          const start = now();
          const c = pgClient(s.pooler);
          try {
            await c.connect();
            const r = await c.query('SELECT inet_server_port() AS port');
            probes.push({ start, end: now(), port: r.rows[0].port as number });
          } catch (e) {
            const err = e as { code?: string; message: string };
            probes.push({ start, end: now(), code: err.code, error: err.message });
          } finally {
            await c.end().catch(() => {});
          }
          await delay(Math.max(0, Math.min(500, FREEZE_MS - (now() - freezeAt))));
        }
      } finally {
        await s.cluster.thaw(s.a);
        thawAt = now();
      }
      await waitUntil(
        () => all(load.loops).some((o) => o.port === s.a.port && o.start > thawAt),
        'replica A to serve reads again after thaw',
        load.loops,
        5_000,
      );
      const backAt = Math.min(...all(load.loops).filter((o) => o.port === s.a.port && o.start > thawAt).map((o) => o.end));
      await load.stop();

      const outcomes = all(load.loops);
      const fromFreeze = outcomes.filter((o) => o.end >= freezeAt);
      const errors = outcomes.filter((o) => !ok(o));
      const maxLatency = Math.max(...fromFreeze.map((o) => o.end - o.start));
      const maxProbe = Math.max(...probes.map((o) => o.end - o.start));
      console.log(
        `replica hang: ${fromFreeze.length} statements from the freeze on, max latency ${maxLatency.toFixed(0)} ms, ` +
          `${errors.length} errors (${[...new Set(errors.map((e) => e.code))].join(',')}); ${probes.length} new connections, ` +
          `slowest ${maxProbe.toFixed(0)} ms; A back ${(backAt - thawAt).toFixed(0)} ms after thaw`,
      );
      expect(maxLatency).toBeLessThan(BOUND_MS);
      expectNone(errors.filter((e) => e.end < freezeAt), 'errors before the freeze');
      expect(errors.length).toBeLessThanOrEqual(10);
      expectNone(errors.filter((e) => !e.code?.startsWith('08')), 'errors outside class 08');
      // A query sent to A while frozen could only answer after the thaw, so what matters is when it was sent.
      expectNone(
        outcomes.filter((o) => o.port === s.a.port && o.start > freezeAt + BOUND_MS && o.start < thawAt),
        'statements sent to A after detection',
      );
      expectNone(probes.filter((p) => !ok(p)), 'failed new connections');
      expect(maxProbe).toBeLessThan(BOUND_MS);
      expectNone(probes.filter((p) => p.port === s.a.port && p.start > freezeAt + BOUND_MS), 'new connections served by A');
      await expectSessionsKept(load.loops);
    } finally {
      await load.close();
    }
  });
});

describe('primary killed, then a replica promoted', () => {
  const INTERVAL = 100;
  const WRITE = 'INSERT INTO failover_writes DEFAULT VALUES RETURNING inet_server_port() AS port';
  // Readers may wait at most two checks plus 1.3 s of scheduling noise between two answers.
  const GAP_MS = 2 * INTERVAL + 1300;
  const s = setup(INTERVAL);

  beforeAll(async () => {
    await s.cluster.query(s.primary, 'CREATE TABLE failover_writes (id serial PRIMARY KEY)');
    await s.cluster.waitForReplication();
  });

  it('keeps reads going, fails writes quickly with class 08 on the same session, and writes to the promoted replica', async () => {
    const readers = await startLoops(s.pooler, 10, READ);
    const writer = await startLoops(s.pooler, 1, WRITE);
    const w = writer.loops[0];
    try {
      const t0 = now();
      const everyone = [...readers.loops, w];
      await waitUntil(
        () => now() - t0 >= 1000 && w.outcomes.filter(ok).length >= 5 && readers.loops.every((l) => l.outcomes.some(ok)),
        'writes and reads to flow',
        everyone,
      );
      const killAt = now();
      await s.cluster.kill(s.primary);
      await waitUntil(
        () => now() - killAt >= 1000 && w.outcomes.filter((o) => !ok(o) && o.start > killAt).length >= 5,
        'writes to fail after the kill',
        [w],
      );
      const promoteAt = now();
      await s.cluster.promote(s.b);
      const firstOnB = (await waitUntil(
        () => w.outcomes.find((o) => o.port === s.b.port && o.start > promoteAt),
        'a write to succeed on the promoted replica',
        [w],
        15_000,
      ))!;
      await waitUntil(() => w.outcomes.filter((o) => o.port === s.b.port).length >= 10, 'more writes on the promoted replica', [w]);
      const stopAt = now();
      await Promise.all([readers.stop(), writer.stop()]);

      const writes = w.outcomes;
      const failed = writes.filter((o) => !ok(o));
      const reads = all(readers.loops);
      const readErrors = reads.filter((o) => !ok(o));
      // Longest stretch, from the kill to the stop, in which a reader got no answer.
      const gaps = readers.loops.map((l) => {
        const ends = [killAt, stopAt, ...l.outcomes.filter((o) => ok(o) && o.end > killAt).map((o) => o.end)].sort((x, y) => x - y);
        return Math.max(...ends.map((e, i) => (i === 0 ? 0 : e - ends[i - 1])));
      });
      console.log(
        `primary kill: ${failed.length} failed writes (${[...new Set(failed.map((e) => e.code))].join(',')}), slowest failure ` +
          `${Math.max(...failed.map((o) => o.end - o.start)).toFixed(0)} ms; first write on B ${(firstOnB.end - promoteAt).toFixed(0)} ms ` +
          `after the promote call; ${reads.length} reads, ${readErrors.length} errors, longest gap ${Math.max(...gaps).toFixed(0)} ms`,
      );
      expectNone(writes.filter((o) => ok(o) && o.start < killAt && o.port !== s.primary.port), 'writes before the kill not on the primary');
      expectNone(failed.filter((o) => o.end < killAt), 'failed writes before the kill');
      expectNone(failed.filter((o) => !o.code?.startsWith('08')), 'failed writes outside class 08');
      expectNone(failed.filter((o) => o.end - o.start >= 1000), 'writes failing after 1 s or more');
      expect(firstOnB.end - promoteAt).toBeLessThan(5000);
      expectNone(writes.filter((o) => o.start > firstOnB.end && o.port !== s.b.port), 'writes not on B after the first one there');
      expect(w.lost).toBe(false);

      expect(readErrors.length).toBeLessThanOrEqual(10);
      expectNone(readErrors.filter((o) => !o.code?.startsWith('08')), 'read errors outside class 08');
      expect(Math.max(...gaps)).toBeLessThan(GAP_MS);
      await expectSessionsKept(readers.loops);
      expect((await w.client.query(WRITE)).rows[0].port).toBe(s.b.port);
    } finally {
      await Promise.all([readers.close(), writer.close()]);
    }
  });
});
