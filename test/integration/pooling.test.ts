// Transaction/session pooling with real tools: psql, pgbench, pool limits, waits, and dirty-server safety.

import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  pgClient, poll, poolerUrl, serverConnections, startCluster, startPoolerFor, type Cluster, type PoolerProcess,
} from './harness.ts';

let cluster: Cluster;
const children = new Set<ChildProcess>();

/** Run a command-line tool to completion; every child is tracked and killed if the test fails. */
function run(cmd: string, args: string[], opts: { input?: string } = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(p);
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      children.delete(p);
      resolve({ code, out, err });
    });
    p.stdin.end(opts.input ?? '');
  });
}

beforeAll(async () => {
  cluster = await startCluster({ replicas: 0 });
});
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await cluster?.destroy();
});

describe('transaction mode with psql and pgbench', () => {
  let pooler: PoolerProcess;
  beforeAll(async () => {
    pooler = await startPoolerFor(cluster, { settings: { default_pool_size: 10, max_client_conn: 500 } });
  });
  afterAll(async () => {
    await pooler?.stop();
  });

  it('runs a multi-statement script with psql -f', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pooler-psql-'));
    try {
      const file = join(dir, 'script.sql');
      writeFileSync(
        file,
        [
          'CREATE TABLE IF NOT EXISTS psql_t (id int primary key, v text);',
          'TRUNCATE psql_t;',
          'BEGIN;',
          "INSERT INTO psql_t VALUES (1, 'a'), (2, 'b');",
          "UPDATE psql_t SET v = v || '!' WHERE id = 2;",
          'COMMIT;',
          "INSERT INTO psql_t VALUES (3, 'c'); SELECT count(*) AS n FROM psql_t;",
          "SELECT string_agg(v, ',' ORDER BY id) AS vs FROM psql_t;",
          '',
        ].join('\n'),
      );
      const r = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-At', '-f', file, poolerUrl(pooler)]);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out.trim().split('\n').slice(-2)).toEqual(['3', 'a,b!,c']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('initializes with pgbench -i', async () => {
    const r = await run('pgbench', ['-i', '-s', '2', '-q', poolerUrl(pooler)]);
    expect(r.code, r.err).toBe(0);
    const rows = await cluster.query(cluster.primary, 'SELECT count(*)::int AS n FROM pgbench_accounts');
    expect(rows[0].n).toBe(200000);
  });

  for (const mode of ['simple', 'extended']) {
    it(`pgbench -c 50 -j 2 -T 10 -M ${mode}: no failed transaction, never more than 10 server connections`, async () => {
      let maxSeen = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          maxSeen = Math.max(maxSeen, await serverConnections(cluster));
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const r = await run('pgbench', ['-c', '50', '-j', '2', '-T', '10', '-M', mode, poolerUrl(pooler)]);
      sampling = false;
      await sampler;
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/number of failed transactions: 0 /);
      const processed = Number(/number of transactions actually processed: (\d+)/.exec(r.out)?.[1]);
      expect(processed).toBeGreaterThan(0);
      expect(maxSeen).toBeGreaterThan(0);
      expect(maxSeen).toBeLessThanOrEqual(10);
    });
  }
});

describe('waiting for a server', () => {
  it('serves 200 concurrent clients from a pool of 5, first come first served', async () => {
    const pooler = await startPoolerFor(cluster, { settings: { default_pool_size: 5, max_client_conn: 500 } });
    try {
      let maxSeen = 0;
      const clients = Array.from({ length: 200 }, () => pgClient(pooler));
      await Promise.all(clients.map((c) => c.connect()));
      const results = await Promise.all(
        clients.map(async (c, i) => {
          const r = await c.query('SELECT $1::int AS i, pg_sleep(0.01)', [i]);
          maxSeen = Math.max(maxSeen, await serverConnections(cluster).catch(() => 0));
          return r.rows[0].i as number;
        }),
      );
      expect(results).toEqual(clients.map((_, i) => i));
      expect(maxSeen).toBeLessThanOrEqual(5);
      await Promise.all(clients.map((c) => c.end()));
    } finally {
      await pooler.stop();
    }
  });

  it('gives waiting clients query_wait_timeout when the pool is held, then recovers', async () => {
    const pooler = await startPoolerFor(cluster, { settings: { default_pool_size: 1, query_wait_timeout: '300ms' } });
    try {
      const holder = pgClient(pooler);
      await holder.connect();
      await holder.query('BEGIN');
      await holder.query('SELECT 1');
      const waiter = pgClient(pooler);
      await waiter.connect();
      const err = await waiter.query('SELECT 2').then(
        () => null,
        (e: { code?: string; message: string }) => e,
      );
      expect(err?.code).toBe('08P01');
      expect(err?.message).toBe('query_wait_timeout');
      await holder.query('COMMIT');
      // The pool recovers: a new client gets the freed server.
      const next = pgClient(pooler);
      await next.connect();
      expect((await next.query('SELECT 3 AS x')).rows[0].x).toBe(3);
      await next.end();
      await holder.end();
      expect(pooler.logs()).toContain('query_wait_timeout');
    } finally {
      await pooler.stop();
    }
  });
});

describe('dirty servers never reach another client', () => {
  it('a client killed mid-transaction holding a row lock: the lock is gone within 1 s and the next client is clean', async () => {
    const pooler = await startPoolerFor(cluster, { settings: { default_pool_size: 1 } });
    try {
      await cluster.query(cluster.primary, 'CREATE TABLE IF NOT EXISTS lock_t (id int primary key, v int); INSERT INTO lock_t VALUES (1, 0) ON CONFLICT DO NOTHING');
      // psql is killed with SIGKILL while its transaction holds the lock: no Terminate, no ROLLBACK from the client.
      const psql = spawn('psql', ['-X', '-q', poolerUrl(pooler)], { stdio: ['pipe', 'pipe', 'pipe'] });
      children.add(psql);
      let out = '';
      psql.stdout.on('data', (d) => (out += d));
      psql.stdin.write("BEGIN;\nSELECT v FROM lock_t WHERE id = 1 FOR UPDATE;\nSET LOCAL application_name = 'dirty';\nSELECT 'locked';\n");
      await poll(() => out.includes('locked'), 'psql to take the lock');
      const held = await cluster.query(cluster.primary, "SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'lock_t' AND l.mode = 'RowShareLock'");
      expect(held[0].n).toBe(1);
      psql.kill('SIGKILL');
      const killedAt = Date.now();
      await poll(async () => {
        const r = await cluster.query(cluster.primary, "SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'lock_t'");
        return r[0].n === 0;
      }, 'the row lock to be released', 5000);
      expect(Date.now() - killedAt).toBeLessThan(1000);
      // Pool size 1: the next client gets the very server the killed client held, and it is outside any transaction.
      const next = pgClient(pooler);
      await next.connect();
      const r = await next.query("SELECT now() = statement_timestamp() AS fresh_tx, current_setting('application_name') AS app, (SELECT v FROM lock_t WHERE id = 1 FOR UPDATE NOWAIT) AS v");
      expect(r.rows[0]).toEqual({ fresh_tx: true, app: '', v: 0 });
      await next.end();
    } finally {
      await pooler.stop();
    }
  });

  it('a server that dies mid-query gives its client an 08 error and the pool replaces it', async () => {
    const pooler = await startPoolerFor(cluster, { settings: { default_pool_size: 1 } });
    try {
      const c = pgClient(pooler);
      await c.connect();
      const before = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      await c.query('BEGIN');
      const running = c.query('SELECT pg_sleep(30)').then(() => null, (e: { code?: string }) => e);
      await poll(async () => (await serverConnections(cluster)) === 1 && (await cluster.query(cluster.primary, "SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'")).length === 1, 'the query to run');
      // kill -9 of the postmaster: the server connection just drops, with no message from PostgreSQL.
      await cluster.kill(cluster.primary);
      const err = await running;
      expect(err?.code).toBe('08006');
      await cluster.start(cluster.primary);
      const d = pgClient(pooler);
      await d.connect();
      const r = await d.query('SELECT pg_backend_pid() AS pid');
      expect(r.rows[0].pid).not.toBe(before);
      await d.end();
      await c.end().catch(() => {});
      expect(pooler.logs()).toMatch(/closing server connection because: server (closed the connection|error)/);
    } finally {
      await pooler.stop();
    }
  });
});

describe('session mode', () => {
  it('keeps SET across transactions and cleans the server with server_reset_query before another client gets it', async () => {
    const pooler = await startPoolerFor(cluster, { settings: { pool_mode: 'session', default_pool_size: 1, server_reset_query: 'DISCARD ALL' } });
    try {
      const a = pgClient(pooler);
      await a.connect();
      const pidA = (await a.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      await a.query("SET search_path = 'sess_a'");
      await a.query('BEGIN');
      await a.query('COMMIT');
      await a.query('CREATE TEMP TABLE sess_tmp (x int)');
      expect((await a.query('SHOW search_path')).rows[0].search_path).toBe('sess_a');
      await a.end();
      const b = pgClient(pooler);
      await b.connect();
      const r = await b.query("SELECT pg_backend_pid() AS pid, current_setting('search_path') AS sp, to_regclass('pg_temp.sess_tmp') IS NULL AS no_tmp");
      expect(r.rows[0]).toEqual({ pid: pidA, sp: '"$user", public', no_tmp: true });
      await b.end();
    } finally {
      await pooler.stop();
    }
  });
});
