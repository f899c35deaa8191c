// Query digests through the real pooler process: rate limits, concurrency caps, waits, blocks and their reload, refusals
// inside transactions, and exact per-digest statistics, all read back from /metrics.

import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalize } from '../../src/sql/digest.ts';
import { pgClient, poll, postgresClient, startCluster, startPoolerFor, type Cluster, type PoolerProcess, type PoolerSetup } from './harness.ts';
import type { Metrics } from '../helpers/pooler-process.ts';

const RATE_LIMITED = '53400';

let cluster: Cluster;
/** a direct connection to the primary, for pg_stat_activity */
let direct: pg.Client;

beforeAll(async () => {
  cluster = await startCluster({ replicas: 0 });
  await cluster.query(cluster.primary, 'CREATE TABLE dg_t (id int primary key, v int); INSERT INTO dg_t SELECT g, 0 FROM generate_series(1, 5) g');
  await cluster.query(cluster.primary, 'CREATE TABLE dg_tx (id int)');
  direct = new pg.Client({ host: cluster.primary.host, port: cluster.primary.port, user: 'postgres', database: 'postgres', application_name: 'pg-fixture' });
  direct.on('error', () => {});
  await direct.connect();
});
afterAll(async () => {
  await direct?.end().catch(() => {});
  await cluster?.destroy();
});

const open = new Set<{ end(): Promise<unknown> }>();

const FLOOD_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '../helpers/flood.ts');

/** test/helpers/flood.ts in a child process (killed by PID however the test ends). */
function floodFrom(port: number, n: number, ms: number, sql: string) {
  const child = spawn(process.execPath, [FLOOD_SCRIPT, String(port), String(n), String(ms), sql], { stdio: ['ignore', 'pipe', 'inherit'] });
  open.add({ end: async () => void (child.exitCode === null && child.kill('SIGKILL')) });
  let out = '';
  let onReady: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
    if (out.startsWith('ready\n')) onReady();
  });
  const done = new Promise<{ outcomes: Record<string, number>; elapsedMs: number }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code === 0 && last.startsWith('{')) resolve(JSON.parse(last));
      else reject(new Error(`flood exited with ${code}: ${out}`));
    });
  });
  return { ready, done };
}

/** A pooler with metrics and the given rule sections, stopped (with its clients) however the test ends. */
async function withPooler(extra: string, body: (p: PoolerProcess) => Promise<void>, setup: PoolerSetup = {}): Promise<void> {
  const p = await startPoolerFor(cluster, {
    ...setup,
    settings: { metrics_port: '${METRICS_PORT}', metrics_top_digests: 50, default_pool_size: 25, ...setup.settings },
    extra,
  });
  try {
    await body(p);
  } finally {
    await Promise.all([...open].map((c) => c.end().catch(() => {})));
    open.clear();
    await p.stop();
  }
}

async function clients(p: PoolerProcess, n: number): Promise<pg.Client[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const c = pgClient(p);
      open.add(c);
      await c.connect();
      return c;
    }),
  );
}

const section = (name: string, ...lines: string[]) => [`[rate_limit.${name}]`, ...lines].join('\n');
const digestOf = (sql: string) => normalize(sql).id;
type PgError = { code?: string; message: string };

/** Runs `sql` and says how it ended: 'ok', or the SQLSTATE (anything but a pooler refusal fails the test later). */
async function attempt(c: pg.Client, sql: string, params?: unknown[]): Promise<string> {
  try {
    await c.query(sql, params);
    return 'ok';
  } catch (e) {
    return (e as PgError).code ?? (e as PgError).message;
  }
}

/** The digest series of one statement shape in a scrape. */
function digestSeries(m: Metrics, sql: string, name: string, labels: Record<string, string> = {}): number | undefined {
  return m.value(name, { digest: digestOf(sql), database: 'app', user: 'postgres', ...labels });
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/**
 * Samples pg_stat_activity until stopped: the most backends seen sleeping in pg_sleep at once (and that sample),
 * and the most seen 'active' with a pg_sleep text at all. The two differ because a backend reports a statement
 * active from its Parse on: a refused extended-protocol call is parsed and bound (for microseconds) before the
 * server raises pooler's error in its Execute's place, so it shows as active without ever running.
 */
function sampleSleepers(everyMs = 20): { stop(): Promise<{ max: number; maxActive: number; worst: unknown[] }> } {
  let on = true;
  let max = 0;
  let maxActive = 0;
  let worst: unknown[] = [];
  const loop = (async () => {
    while (on) {
      const r = await direct.query(
        "SELECT pid, wait_event, query_start, query FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(%' AND pid <> pg_backend_pid()",
      );
      const sleeping = r.rows.filter((row) => row.wait_event === 'PgSleep');
      maxActive = Math.max(maxActive, r.rows.length);
      if (sleeping.length > max) {
        max = sleeping.length;
        worst = sleeping;
      }
      await new Promise((res) => setTimeout(res, everyMs));
    }
  })();
  return {
    async stop() {
      on = false;
      await loop;
      return { max, maxActive, worst };
    },
  };
}

describe('rate limits', () => {
  it('rate = 50, burst = 10: a 10 s flood from 20 clients gets 510 ± 10% through and the rest 53400; another digest sees no refusal', async () => {
    const FLOOD = 'SELECT 1::int AS dg_flood';
    const OTHER = 'SELECT 2 AS dg_other';
    await withPooler(section('flood', `match = SELECT $1::int AS dg_flood`, 'rate = 50', 'burst = 10'), async (p) => {
      const [bystander] = await clients(p, 1);
      // The other digest alone first, for its latency without the flood.
      const timeOther = async (until: () => boolean) => {
        const lat: number[] = [];
        const codes: string[] = [];
        while (!until()) {
          const t = performance.now();
          codes.push(await attempt(bystander!, OTHER));
          lat.push(performance.now() - t);
        }
        return { lat: lat.sort((a, b) => a - b), refused: codes.filter((c) => c !== 'ok') };
      };
      const alone = performance.now() + 2000;
      const before = await timeOther(() => performance.now() > alone);

      const flood = floodFrom(p.port, 20, 10_000, FLOOD.replace('1::int', '{n}::int'));
      await flood.ready;
      let flooding = true;
      const [during, result] = await Promise.all([timeOther(() => !flooding), flood.done.finally(() => (flooding = false))]);
      const { outcomes, elapsedMs } = result;
      const admitted = outcomes.ok ?? 0;
      const refused = outcomes[RATE_LIMITED] ?? 0;
      const expected = 10 + (50 * elapsedMs) / 1000;
      console.log(
        `flood: ${admitted} admitted, ${refused} refused in ${(elapsedMs / 1000).toFixed(2)} s (expected ${expected.toFixed(0)}); ` +
          `other digest: ${before.lat.length} calls p50 ${percentile(before.lat, 0.5).toFixed(2)} ms p99 ${percentile(before.lat, 0.99).toFixed(2)} ms alone, ` +
          `${during.lat.length} calls p50 ${percentile(during.lat, 0.5).toFixed(2)} ms p99 ${percentile(during.lat, 0.99).toFixed(2)} ms during the flood`,
      );
      expect(Object.keys(outcomes).filter((k) => k !== 'ok' && k !== RATE_LIMITED)).toEqual([]);
      expect(admitted).toBeGreaterThanOrEqual(510 * 0.9);
      expect(admitted).toBeLessThanOrEqual(510 * 1.1);
      expect(refused).toBeGreaterThan(admitted);
      expect(before.refused).toEqual([]);
      expect(during.refused).toEqual([]);
      expect(during.lat.length).toBeGreaterThan(0);

      // Everyone's session still works after a refusal.
      expect((await bystander!.query('SELECT 7 AS n')).rows).toEqual([{ n: 7 }]);
      const m = await p.metrics();
      expect(m.value('pooler_rate_limit_admitted_total', { rule: 'flood' })).toBe(admitted);
      expect(m.value('pooler_rate_limit_limited_total', { rule: 'flood' })).toBe(refused);
      expect(digestSeries(m, FLOOD, 'pooler_digest_calls_total')).toBe(admitted);
      expect(digestSeries(m, FLOOD, 'pooler_digest_limited_total')).toBe(refused);
      expect(digestSeries(m, OTHER, 'pooler_digest_limited_total')).toBe(0);
    });
  });

  it('max_concurrency = 2 on SELECT pg_sleep($1): pg_stat_activity never shows more than two under 20 callers (simple and extended protocol)', async () => {
    await withPooler(section('sleepers', 'match = SELECT pg_sleep($1)', 'max_concurrency = 2'), async (p) => {
      const callers = await clients(p, 20);
      const sampler = sampleSleepers();
      const deadline = performance.now() + 3000;
      const outcomes: string[] = [];
      await Promise.all(
        callers.map(async (c, i) => {
          while (performance.now() < deadline) {
            const code = i % 2 === 0 ? await attempt(c, 'SELECT pg_sleep(0.1)') : await attempt(c, 'SELECT pg_sleep($1)', [0.1]);
            outcomes.push(code);
            // A refused caller comes back a little later rather than spinning on refusals.
            if (code === RATE_LIMITED) await new Promise((r) => setTimeout(r, 5));
          }
        }),
      );
      const { max, maxActive, worst } = await sampler.stop();
      const ok = outcomes.filter((c) => c === 'ok').length;
      const refused = outcomes.filter((c) => c === RATE_LIMITED).length;
      console.log(`max_concurrency 2: ${ok} ran, ${refused} refused; pg_stat_activity: at most ${max} in pg_sleep, ${maxActive} active with its text`);
      expect(max, JSON.stringify(worst)).toBe(2);
      expect(outcomes.filter((c) => c !== 'ok' && c !== RATE_LIMITED)).toEqual([]);
      expect(ok).toBeGreaterThan(20);
      expect(refused).toBeGreaterThan(0);
      const m = await p.metrics();
      expect(m.value('pooler_rate_limit_running', { rule: 'sleepers' })).toBe(0);
      expect(m.value('pooler_rate_limit_admitted_total', { rule: 'sleepers' })).toBe(ok);
    });
  });

  it('action = wait: callers run in arrival order, each within max_wait_ms, or get 53400 after waiting it', async () => {
    const WAIT_MS = 1400;
    const SLEEP_S = 0.3;
    const rule = section('queue', 'match = SELECT pg_sleep($1)', 'max_concurrency = 2', 'action = wait', `max_wait_ms = ${WAIT_MS}`);
    await withPooler(rule, async (p) => {
      const callers = await clients(p, 20);
      const sampler = sampleSleepers();
      const results: { i: number; code: string; sentAt: number; doneAt: number; message: string }[] = [];
      const running: Promise<void>[] = [];
      for (let i = 0; i < callers.length; i++) {
        const sentAt = performance.now();
        const c = callers[i]!;
        const q = i % 2 === 0 ? c.query(`SELECT pg_sleep(${SLEEP_S})`) : c.query('SELECT pg_sleep($1)', [SLEEP_S]);
        running.push(
          q.then(
            () => void results.push({ i, code: 'ok', sentAt, doneAt: performance.now(), message: '' }),
            (e: PgError) => void results.push({ i, code: e.code ?? '?', sentAt, doneAt: performance.now(), message: e.message }),
          ),
        );
        // The next caller arrives once pooler has seen this one (running at once, or waiting): arrival order is then known.
        await poll(async () => {
          const m = await p.metrics();
          return i < 2 ? m.value('pooler_rate_limit_admitted_total', { rule: 'queue' })! >= i + 1 : m.value('pooler_rate_limit_waited_total', { rule: 'queue' })! >= i - 1;
        }, `caller ${i} seen`);
      }
      await Promise.all(running);
      const { max, maxActive } = await sampler.stop();

      const ok = results.filter((r) => r.code === 'ok').sort((a, b) => a.doneAt - b.doneAt);
      const refused = results.filter((r) => r.code !== 'ok');
      console.log(
        `action = wait: ${ok.length} ran (order ${ok.map((r) => r.i).join(',')}), ${refused.length} refused after ` +
          `${refused.map((r) => (r.doneAt - r.sentAt).toFixed(0)).join(',')} ms; pg_stat_activity: at most ${max} in pg_sleep, ${maxActive} active with its text`,
      );
      expect(max).toBe(2);
      // A waiting statement's batch is held back whole: no backend even parses it before its turn.
      expect(maxActive).toBe(2);
      // Those that ran finished in the order they arrived.
      expect(ok.map((r) => r.i)).toEqual(ok.map((r) => r.i).sort((a, b) => a - b));
      // Each started within max_wait_ms of sending (it ran SLEEP_S once started).
      for (const r of ok) expect(r.doneAt - r.sentAt - SLEEP_S * 1000).toBeLessThan(WAIT_MS + 100);
      // The queue holds 3 s of work: the last ones cannot get a turn in 1.4 s.
      expect(refused.length).toBeGreaterThan(0);
      expect(ok.length).toBeGreaterThan(4);
      for (const r of refused) {
        expect(r.code).toBe(RATE_LIMITED);
        expect(r.message).toContain('max_wait_ms');
        expect(r.doneAt - r.sentAt).toBeGreaterThanOrEqual(WAIT_MS - 5);
      }
      // Every session goes on.
      for (const c of callers) expect((await c.query('SELECT 1 AS x')).rows).toEqual([{ x: 1 }]);
      const m = await p.metrics();
      expect(m.value('pooler_rate_limit_running', { rule: 'queue' })).toBe(0);
      expect(m.value('pooler_rate_limit_queued', { rule: 'queue' })).toBe(0);
      expect(m.value('pooler_rate_limit_timed_out_total', { rule: 'queue' })).toBe(refused.length);
    });
  });

  it('a waiting caller that disconnects gives up its place; the ones behind it still get turns', async () => {
    const rule = section('queue', 'match = SELECT pg_sleep($1)', 'max_concurrency = 1', 'action = wait', 'max_wait_ms = 10000');
    await withPooler(rule, async (p) => {
      const [a, b, c] = await clients(p, 3);
      const queued = (n: number) => poll(async () => (await p.metrics()).value('pooler_rate_limit_queued', { rule: 'queue' }) === n, `${n} queued`);
      const ra = a!.query('SELECT pg_sleep(0.3)');
      await poll(async () => (await p.metrics()).value('pooler_rate_limit_running', { rule: 'queue' }) === 1, 'a running');
      const rb = b!.query('SELECT pg_sleep(0.01)').catch((e: Error) => e);
      await queued(1);
      const rc = c!.query('SELECT pg_sleep(0.01)');
      await queued(2);
      await b!.end();
      open.delete(b!);
      await queued(1);
      await ra;
      await rc;
      expect(await rb).toBeInstanceOf(Error);
      const m = await p.metrics();
      expect(m.value('pooler_rate_limit_admitted_total', { rule: 'queue' })).toBe(2);
      expect(m.value('pooler_rate_limit_running', { rule: 'queue' })).toBe(0);
    });
  });

  it('block = true refuses 100%; after the rule is edited and SIGHUP the digest flows again, and an unchanged rule keeps its counters', async () => {
    const BLOCKED = 'SELECT v FROM dg_t WHERE id = 1';
    const KEPT = 'SELECT id FROM dg_t WHERE v >= 0 ORDER BY id LIMIT 1';
    const kept = section('kept', 'match = SELECT id FROM dg_t WHERE v >= $1 ORDER BY id LIMIT $2', 'rate = 1000');
    await withPooler([section('stop_it', `match = ${digestOf(BLOCKED)}   ; by digest id`, 'block = true'), kept].join('\n\n'), async (p) => {
      const [c] = await clients(p, 1);
      const codes: string[] = [];
      for (let i = 0; i < 50; i++) codes.push(await attempt(c!, BLOCKED.replace('1', String(i + 1))));
      for (let i = 0; i < 50; i++) codes.push(await attempt(c!, 'SELECT v FROM dg_t WHERE id = $1', [i]));
      expect(codes.filter((x) => x === RATE_LIMITED)).toHaveLength(100);
      await expect(c!.query(BLOCKED)).rejects.toThrow('statement blocked by rate-limit rule "stop_it"');
      for (let i = 0; i < 5; i++) await c!.query(KEPT.replace('0', String(i)));
      let m = await p.metrics();
      expect(m.value('pooler_rate_limit_blocked_total', { rule: 'stop_it' })).toBe(101);
      expect(m.value('pooler_rate_limit_admitted_total', { rule: 'kept' })).toBe(5);
      expect(digestSeries(m, BLOCKED, 'pooler_digest_blocked_total')).toBe(101);
      expect(digestSeries(m, BLOCKED, 'pooler_digest_calls_total')).toBe(0);

      const since = Date.now();
      p.rewriteIni(p.iniTemplate.replace('block = true', 'rate = 1000'));
      p.sighup();
      await p.waitForLog((l) => l.msg === 'config reloaded' && Date.parse(l.time) >= since);
      const after: string[] = [];
      for (let i = 0; i < 50; i++) after.push(await attempt(c!, BLOCKED.replace('1', String(i + 1))));
      expect(after.filter((x) => x !== 'ok')).toEqual([]);
      await c!.query(KEPT);
      m = await p.metrics();
      expect(m.value('pooler_rate_limit_admitted_total', { rule: 'kept' })).toBe(6);
      expect(m.value('pooler_rate_limit_admitted_total', { rule: 'stop_it' })).toBe(50);
      expect(digestSeries(m, BLOCKED, 'pooler_digest_calls_total')).toBe(50);
    });
  });

  it('a refusal inside a transaction fails the transaction on both sides, and the server is clean for the next client', async () => {
    const BLOCKED = 'SELECT count(*) FROM dg_t WHERE v > 100';
    await withPooler(
      section('no_count', `match = ${BLOCKED}`, 'block = true'),
      async (p) => {
        const [a, b] = await clients(p, 2);
        // simple protocol
        await a!.query('BEGIN');
        await a!.query('INSERT INTO dg_tx VALUES (1)');
        await expect(a!.query(BLOCKED)).rejects.toMatchObject({ code: RATE_LIMITED });
        await expect(a!.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
        // The other client waits for the one server, which a's failed transaction holds, until a rolls back.
        const bRead = b!.query('SELECT count(*)::int AS n, txid_current_if_assigned() AS xid FROM dg_tx');
        await a!.query('ROLLBACK');
        expect((await bRead).rows).toEqual([{ n: 0, xid: null }]);

        // extended protocol, and a client that leaves without rolling back
        await a!.query('BEGIN');
        await a!.query('INSERT INTO dg_tx VALUES ($1)', [2]);
        await expect(a!.query('SELECT count(*) FROM dg_t WHERE v > $1', [100])).rejects.toMatchObject({ code: RATE_LIMITED });
        await expect(a!.query('SELECT $1::int', [1])).rejects.toMatchObject({ code: '25P02' });
        await a!.end();
        open.delete(a!);
        expect((await b!.query('SELECT count(*)::int AS n FROM dg_tx')).rows).toEqual([{ n: 0 }]);
        // Outside a transaction a refusal leaves the session as it was.
        await expect(b!.query(BLOCKED)).rejects.toMatchObject({ code: RATE_LIMITED });
        expect((await b!.query('SELECT 5 AS n')).rows).toEqual([{ n: 5 }]);
        expect((await direct.query('SELECT count(*)::int AS n FROM dg_tx')).rows).toEqual([{ n: 0 }]);
      },
      { settings: { default_pool_size: 1 } },
    );
  });
});

describe('digest statistics', () => {
  it('after a known workload, calls, errors and rows per digest are exact and the latency quantiles lie within the recorded range', async () => {
    const SERIES = 'SELECT g FROM generate_series(1, $1) g';
    const UPDATE = 'UPDATE dg_t SET v = v + 1 WHERE id <= 3';
    const DIVIDE = 'SELECT 1/0';
    const SLEEP = 'SELECT pg_sleep($1)';
    await withPooler('', async (p) => {
      const [c] = await clients(p, 1);
      const js = postgresClient(p);
      open.add(js);
      let rows = 0;
      for (let n = 1; n <= 10; n++) {
        rows += (await c!.query(`SELECT g FROM generate_series(1, ${n}) g`)).rowCount!; // simple protocol, literals
        rows += (await c!.query(SERIES, [n])).rowCount!; // extended protocol, unnamed statement
        rows += (await js.unsafe(SERIES, [n], { prepare: true })).length; // extended protocol, named statement
      }
      expect(rows).toBe(165);
      for (let i = 0; i < 7; i++) await c!.query(UPDATE);
      for (let i = 0; i < 4; i++) await expect(c!.query(DIVIDE)).rejects.toMatchObject({ code: '22012' });
      const clientMs: number[] = [];
      for (const s of [...Array(16).fill(0.005), ...Array(4).fill(0.1)]) {
        const t = performance.now();
        await c!.query(SLEEP, [s]);
        clientMs.push(performance.now() - t);
      }

      const m = await p.metrics();
      const get = (sql: string, name: string, labels?: Record<string, string>) => digestSeries(m, sql, name, labels);
      expect([get(SERIES, 'pooler_digest_calls_total'), get(SERIES, 'pooler_digest_rows_total'), get(SERIES, 'pooler_digest_errors_total')]).toEqual([30, 165, 0]);
      expect([get(UPDATE, 'pooler_digest_calls_total'), get(UPDATE, 'pooler_digest_rows_total')]).toEqual([7, 21]);
      expect([get(DIVIDE, 'pooler_digest_calls_total'), get(DIVIDE, 'pooler_digest_errors_total'), get(DIVIDE, 'pooler_digest_rows_total')]).toEqual([4, 4, 0]);
      expect([get(SERIES, 'pooler_digest_routed_total', { role: 'primary' }), get(SERIES, 'pooler_digest_routed_total', { role: 'replica' })]).toEqual([30, 0]);
      expect(m.all('pooler_digest_calls_total', { digest: digestOf(SERIES) })[0]!.labels.query).toBe(normalize(SERIES).text);

      const q = (quantile: string) => get(SLEEP, 'pooler_digest_latency_seconds', { quantile })!;
      const [min, p50, p95, p99, max] = ['0', '0.5', '0.95', '0.99', '1'].map(q) as [number, number, number, number, number];
      console.log(`pg_sleep digest: min ${min} p50 ${p50} p95 ${p95} p99 ${p99} max ${max} s`);
      expect(min).toBeGreaterThanOrEqual(0.005);
      expect(min).toBeLessThanOrEqual(p50);
      expect(p50).toBeLessThanOrEqual(p95);
      expect(p95).toBeLessThanOrEqual(p99);
      expect(p99).toBeLessThanOrEqual(max);
      // 16 of 20 slept 5 ms, 4 slept 100 ms: the median is a short one, the 95th a long one.
      expect(p50).toBeLessThan(0.05);
      expect(p95).toBeGreaterThanOrEqual(0.1 * 0.95);
      // pooler times a statement inside the client's round trip
      expect(max).toBeLessThanOrEqual(Math.max(...clientMs) / 1000);
      const total = get(SLEEP, 'pooler_digest_seconds_total')!;
      expect(total).toBeGreaterThanOrEqual(16 * 0.005 + 4 * 0.1);
      expect(total).toBeLessThanOrEqual(clientMs.reduce((a, b) => a + b, 0) / 1000);
    });
  });
});
