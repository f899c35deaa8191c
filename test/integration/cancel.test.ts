// CancelRequest through pooler: reaches only the query of the client whose key it carries, never anyone else's.

import { randomInt } from 'node:crypto';
import net from 'node:net';
import type pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgClient, poll, startCluster, startPoolerFor, type Cluster, type PoolerProcess } from './harness.ts';

let cluster: Cluster;
const poolers: PoolerProcess[] = [];

beforeAll(async () => {
  cluster = await startCluster({ replicas: 0 });
});
afterAll(async () => {
  await Promise.all(poolers.map((p) => p.stop()));
  await cluster?.destroy();
});

async function pooler(poolSize: number): Promise<PoolerProcess> {
  const p = await startPoolerFor(cluster, { settings: { pool_mode: 'transaction', default_pool_size: poolSize } });
  poolers.push(p);
  return p;
}

/** The BackendKeyData node-postgres received at login (it keeps it on the client; @types/pg does not declare it). */
function keyOf(c: pg.Client): { pid: number; key: number } {
  const k = c as unknown as { processID: number | null; secretKey: number | null };
  if (typeof k.processID !== 'number' || typeof k.secretKey !== 'number') throw new Error('client has no BackendKeyData');
  return { pid: k.processID, key: k.secretKey };
}

/** Sends a CancelRequest to pooler the way libpq does; resolves once pooler has closed the cancel connection. */
function sendCancel(p: PoolerProcess, pid: number, key: number): Promise<void> {
  const msg = Buffer.alloc(16);
  msg.writeInt32BE(16, 0);
  msg.writeInt32BE(80877102, 4);
  msg.writeInt32BE(pid | 0, 8);
  msg.writeInt32BE(key | 0, 12);
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: p.host, port: p.port });
    s.on('connect', () => s.write(msg));
    s.on('error', reject);
    s.on('data', (d: Buffer) => reject(new Error(`pooler answered a CancelRequest with ${d.length} bytes`)));
    s.on('close', () => resolve());
  });
}

/** PostgreSQL pid running `sql` right now (polls until there is one). */
function runningOnServer(sql: string): Promise<number> {
  return poll(async () => {
    const rows = await cluster.query(cluster.primary, `SELECT pid FROM pg_stat_activity WHERE query = $1 AND state = 'active'`, [sql]);
    return rows.length === 1 ? (rows[0].pid as number) : 0;
  }, `"${sql}" to run on PostgreSQL`);
}

/** Settles with the query's outcome, or 'timeout' after `ms`: a bound on how long we wait, not a synchronisation. */
function within<T>(outcome: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  return Promise.race([outcome, t]).finally(() => clearTimeout(timer));
}

function settle<T>(q: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: { code?: string; message: string } }> {
  return q.then(
    (value) => ({ ok: true as const, value }),
    (error: { code?: string; message: string }) => ({ ok: false as const, error }),
  );
}

describe('cancel through pooler (transaction mode, pool size 2)', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await pooler(2);
  });

  it("node-postgres: cancels the running query with 57014, the connection stays usable, and the key is pooler's own", async () => {
    const c = pgClient(p);
    await c.connect();
    try {
      const { pid, key } = keyOf(c);

      const realPid = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      expect(pid).not.toBe(realPid);
      const backendPids = (await cluster.query(cluster.primary, 'SELECT pid FROM pg_stat_activity')).map((r) => r.pid as number);
      expect(backendPids).toContain(realPid);
      expect(backendPids).not.toContain(pid);

      const sql = 'SELECT pg_sleep(30)';
      const outcome = settle(c.query(sql));
      await runningOnServer(sql);
      const sent = Date.now();
      await sendCancel(p, pid, key);
      const r = await within(outcome, 5000);
      expect(r, 'query still running 5 s after the cancel').not.toBe('timeout');
      if (r === 'timeout' || r.ok) throw new Error(`query was not cancelled: ${JSON.stringify(r)}`);
      expect(r.error.code).toBe('57014');
      // The cancel must take effect within 1 s (the bound the transaction-mode issue sets).
      expect(Date.now() - sent).toBeLessThan(1000);

      // The same connection keeps working, with the same key.
      expect((await c.query('SELECT 7 AS x')).rows).toEqual([{ x: 7 }]);
      expect(keyOf(c)).toEqual({ pid, key });
      // And nothing is left running on PostgreSQL.
      expect(await cluster.query(cluster.primary, `SELECT pid FROM pg_stat_activity WHERE query = $1 AND state = 'active'`, [sql])).toEqual([]);
    } finally {
      await c.end();
    }
  });

  it('postgres.js: query.cancel() rejects the query with 57014 and the connection stays usable', async () => {
    const sql = postgres({
      host: p.host,
      port: p.port,
      user: 'postgres',
      database: 'app',
      max: 1,
      prepare: false,
      connect_timeout: 10,
      onnotice: () => {},
    });
    try {
      const text = 'SELECT pg_sleep(30) AS slept';
      const q = sql.unsafe(text);
      const outcome = settle(q.execute());
      await runningOnServer(text);
      q.cancel();
      const r = await within(outcome, 5000);
      expect(r, 'query still running 5 s after the cancel').not.toBe('timeout');
      if (r === 'timeout' || r.ok) throw new Error(`query was not cancelled: ${JSON.stringify(r)}`);
      expect(r.error.code).toBe('57014');
      expect(await sql`SELECT 8 AS x`).toEqual([{ x: 8 }]);
    } finally {
      await sql.end({ timeout: 5 });
    }
  });
});

describe('cancel with a stale or foreign key (pool size 1)', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await pooler(1);
  });

  it("a cancel sent after the client's query finished does not cancel the next client's query on the same server", async () => {
    const a = pgClient(p);
    const b = pgClient(p);
    await a.connect();
    await b.connect();
    try {
      const serverPid = (await a.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      // a is idle now; its former (and only) server runs b's query.
      const sql = 'SELECT pg_backend_pid() AS pid, pg_sleep(2) AS slept';
      const outcome = settle(b.query(sql));
      expect(await runningOnServer(sql)).toBe(serverPid);
      await sendCancel(p, keyOf(a).pid, keyOf(a).key);
      const r = await outcome;
      if (!r.ok) throw new Error(`b's query failed after a's stale cancel: ${r.error.code} ${r.error.message}`);
      expect(r.value.rows[0].pid).toBe(serverPid);
      // Both clients still work.
      expect((await a.query('SELECT 1 AS x')).rows).toEqual([{ x: 1 }]);
      expect((await b.query('SELECT 2 AS x')).rows).toEqual([{ x: 2 }]);
    } finally {
      await a.end();
      await b.end();
    }
  });

  it("a cancel from a client still waiting for a server does not hit the query holding that server", async () => {
    const a = pgClient(p);
    const b = pgClient(p);
    await a.connect();
    await b.connect();
    try {
      const sql = 'SELECT pg_sleep(2) AS slept';
      const bOutcome = settle(b.query(sql));
      await runningOnServer(sql);
      // a queues behind b (pool size 1); its cancel must not reach b's server. (If the cancel overtakes a's Query,
      // a is merely idle: the same rule applies.)
      const aOutcome = settle(a.query('SELECT 3 AS x'));
      await sendCancel(p, keyOf(a).pid, keyOf(a).key);
      const rb = await bOutcome;
      if (!rb.ok) throw new Error(`b's query failed after a's cancel: ${rb.error.code} ${rb.error.message}`);
      const ra = await aOutcome;
      // PgBouncer drops a waiting client's query on cancel; running it is acceptable too. Either way a stays usable.
      if (!ra.ok) expect(ra.error.code).toBe('57014');
      expect((await a.query('SELECT 4 AS x')).rows).toEqual([{ x: 4 }]);
    } finally {
      await a.end();
      await b.end();
    }
  });

  it('a cancel with an unknown key does nothing harmful', async () => {
    const c = pgClient(p);
    await c.connect();
    try {
      const sql = 'SELECT pg_sleep(1) AS slept';
      const outcome = settle(c.query(sql));
      await runningOnServer(sql);
      const { pid, key } = keyOf(c);
      let otherKey = randomInt(0, 0x7fffffff);
      if (otherKey === key) otherKey++;
      // A random pid and key, and the right pid with a wrong key.
      await sendCancel(p, randomInt(1, 0x7fffffff), randomInt(0, 0x7fffffff));
      await sendCancel(p, pid, otherKey);
      const r = await outcome;
      if (!r.ok) throw new Error(`query failed after a cancel with a foreign key: ${r.error.code} ${r.error.message}`);
      expect(r.value.rows).toHaveLength(1);
      expect((await c.query('SELECT 5 AS x')).rows).toEqual([{ x: 5 }]);
      // pooler still accepts and serves new clients.
      const d = pgClient(p);
      await d.connect();
      expect((await d.query('SELECT 6 AS x')).rows).toEqual([{ x: 6 }]);
      await d.end();
    } finally {
      await c.end();
    }
  });
});
