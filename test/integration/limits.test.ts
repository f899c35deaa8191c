// Pool limits and timers through the real pooler process: min/reserve/db limits, idle and lifetime, client timeouts, statement mode, per-client options, database-line overrides.

import { readdirSync, readlinkSync } from 'node:fs';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  pgClient, poll, serverConnections, startCluster, startPoolerFor, type Cluster, type PoolerProcess, type PoolerSetup,
} from './harness.ts';

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ replicas: 0 });
  const p = cluster.primary;
  await cluster.query(p, "CREATE ROLE lim_u2 LOGIN PASSWORD 'pw-u2'");
  await cluster.query(p, 'CREATE DATABASE lim_fallback');
  await cluster.query(p, 'CREATE TABLE lim_lock (id int primary key, v int); INSERT INTO lim_lock VALUES (1, 0)');
  await cluster.query(p, 'CREATE SCHEMA lim_x; CREATE TABLE lim_x.lim_marker (x int)');
});
afterAll(async () => {
  await cluster?.destroy();
});
// A stopped pooler's servers leave PostgreSQL a moment later: every test starts from zero.
beforeEach(async () => {
  await poll(async () => (await serverConnections(cluster)) === 0 && (await serverConnections(cluster, 'lim_fallback')) === 0, 'no server connections left over');
});

/** Clients of the running test: a failed test must not leave them holding servers (and pooler's shutdown) open. */
const open = new Set<pg.Client>();

/** A fresh pooler for one test, always stopped. */
async function withPooler(setup: PoolerSetup, body: (p: PoolerProcess) => Promise<void>): Promise<void> {
  const p = await startPoolerFor(cluster, setup);
  try {
    await body(p);
  } finally {
    await Promise.all([...open].map((c) => c.end().catch(() => {})));
    open.clear();
    await p.stop();
  }
}

async function connected(p: PoolerProcess, opts: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const c = pgClient(p, opts);
  open.add(c);
  await c.connect();
  return c;
}

/** Runs `work` while sampling how many server connections PostgreSQL sees; returns its value and the maximum seen. */
async function sampling<T>(work: () => Promise<T>, db = 'postgres'): Promise<{ value: T; max: number }> {
  let max = 0;
  let on = true;
  const loop = (async () => {
    while (on) {
      max = Math.max(max, await serverConnections(cluster, db).catch(() => 0));
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  try {
    const value = await work();
    return { value, max };
  } finally {
    on = false;
    await loop;
  }
}

type PgError = { code?: string; message: string };

/** Resolves when the client's connection ends, with the error it was sent while not running a query (if any). */
function endOf(c: pg.Client): Promise<PgError | null> {
  return new Promise((resolve) => {
    let err: PgError | null = null;
    c.on('error', (e: PgError) => (err ??= e));
    c.once('end', () => resolve(err));
  });
}

async function pidOf(c: pg.Client): Promise<number> {
  return (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
}

/** Sockets the pooler process holds open (Linux /proc). */
function socketsOf(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:');
    } catch {
      return false;
    }
  }).length;
}

const lockCount = async (): Promise<number> =>
  (await cluster.query(cluster.primary, "SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'lim_lock'"))[0].n;

describe('server pool sizes', () => {
  it('min_pool_size = 3 opens servers up to 3 after the first login, and keeps them while idle', async () => {
    await withPooler({ settings: { min_pool_size: 3 } }, async (p) => {
      // No pool exists before a client asks for one.
      expect(await serverConnections(cluster)).toBe(0);
      const c = await connected(p);
      await poll(async () => (await serverConnections(cluster)) >= 3, 'min_pool_size servers to open');
      expect(await serverConnections(cluster)).toBe(3);
      expect((await c.query('SELECT 1 AS x')).rows[0].x).toBe(1);
      await c.end();
      // With no client at all the pool still holds its minimum.
      await p.waitForLog((l) => /^closing because: client (sent Terminate|closed the connection)/.test(l.msg));
      expect(await serverConnections(cluster)).toBe(3);
      expect(p.logs().match(/new server connection/g)?.length).toBe(3);
    });
  });

  it('reserve_pool_size = 2 serves a waiting client after reserve_pool_timeout, never more than pool + reserve', async () => {
    await withPooler({ settings: { default_pool_size: 2, reserve_pool_size: 2, reserve_pool_timeout: '0.3s' } }, async (p) => {
      const holders = [await connected(p), await connected(p)];
      for (const h of holders) {
        await h.query('BEGIN');
        await h.query('SELECT 1');
      }
      expect(await serverConnections(cluster)).toBe(2);
      const waiters = await Promise.all(Array.from({ length: 4 }, () => connected(p)));
      const { value: elapsed, max } = await sampling(() =>
        Promise.all(
          waiters.map(async (w) => {
            const t0 = Date.now();
            await w.query('SELECT pg_sleep(0.05)');
            return Date.now() - t0;
          }),
        ),
      );
      // Every waiter was served while both holders still sat in their transactions: by reserve connections.
      expect(Math.min(...elapsed)).toBeGreaterThanOrEqual(280);
      expect(Math.min(...elapsed)).toBeLessThan(1500);
      expect(Math.max(...elapsed)).toBeLessThan(5000);
      expect(max).toBeLessThanOrEqual(4);
      expect(await serverConnections(cluster)).toBe(4);
      for (const h of holders) await h.query('COMMIT');
      await Promise.all([...holders, ...waiters].map((c) => c.end()));
    });
  });

  it('reserve_pool_timeout = 0 disables the reserve pool, as in PgBouncer', async () => {
    await withPooler({ settings: { default_pool_size: 1, reserve_pool_size: 1, reserve_pool_timeout: 0, query_wait_timeout: '0.5s' } }, async (p) => {
      const holder = await connected(p);
      await holder.query('BEGIN');
      await holder.query('SELECT 1');
      const waiter = await connected(p);
      const err = await waiter.query('SELECT 2').then(() => null, (e: PgError) => e);
      expect(await serverConnections(cluster)).toBe(1);
      expect(err?.message).toBe('query_wait_timeout');
      await holder.query('COMMIT');
      await holder.end();
    });
  });

  it('max_db_connections = 3 is shared by the pools of two users: a waiting user gets a server freed by the other', async () => {
    const setup: PoolerSetup = {
      settings: { auth_type: 'md5', default_pool_size: 10, max_db_connections: 3, query_wait_timeout: '4s' },
      userlist: '"postgres" "pw-pg"\n"lim_u2" "pw-u2"\n',
    };
    await withPooler(setup, async (p) => {
      // lim_u2 logs in first, so its pool exists (its login server then goes to postgres's third transaction).
      const u2 = await connected(p, { user: 'lim_u2', password: 'pw-u2' });
      const pgs = [await connected(p, { password: 'pw-pg' }), await connected(p, { password: 'pw-pg' }), await connected(p, { password: 'pw-pg' })];
      for (const c of pgs) {
        await c.query('BEGIN');
        await c.query('SELECT 1');
      }
      expect(await serverConnections(cluster)).toBe(3);
      await p.waitForLog((l) => l.msg === 'closing server connection because: evicted for another pool under max_db_connections' && l.user === 'lim_u2');
      const q = u2.query('SELECT current_user AS who').then((r) => r.rows[0].who as string, (e: PgError) => e);
      // A login through pooler after the query was sent: by the time it is done, pooler has queued lim_u2's query.
      await (await connected(p, { password: 'pw-pg' })).end();
      for (const c of pgs) await c.query('COMMIT');
      // postgres's pool now has 3 idle servers and no waiter; lim_u2 needs one of those slots.
      expect(await q).toBe('lim_u2');
      expect(await serverConnections(cluster)).toBeLessThanOrEqual(3);
      await Promise.all([...pgs, u2].map((c) => c.end()));
    });
  });

  it('max_db_connections = 3 under concurrent load from two users: never more than 3 servers, every client finishes', async () => {
    const setup: PoolerSetup = {
      settings: { auth_type: 'md5', default_pool_size: 10, max_db_connections: 3, query_wait_timeout: '4s' },
      userlist: '"postgres" "pw-pg"\n"lim_u2" "pw-u2"\n',
    };
    await withPooler(setup, async (p) => {
      const clients = await Promise.all(
        Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? connected(p, { password: 'pw-pg' }) : connected(p, { user: 'lim_u2', password: 'pw-u2' }))),
      );
      const { value, max } = await sampling(() =>
        Promise.all(
          clients.map(async (c, i) => {
            const who: string[] = [];
            for (let k = 0; k < 4; k++) who.push((await c.query('SELECT current_user AS who, pg_sleep(0.02)')).rows[0].who as string);
            return who.every((w) => w === (i % 2 === 0 ? 'postgres' : 'lim_u2'));
          }),
        ).then(
          (all) => all.every(Boolean),
          (e: PgError) => e,
        ),
      );
      expect(value).toBe(true);
      expect(max).toBeGreaterThan(0);
      expect(max).toBeLessThanOrEqual(3);
      expect(await serverConnections(cluster)).toBeLessThanOrEqual(3);
      await Promise.all(clients.map((c) => c.end()));
    });
  });

  it('pool_size=2 on the [databases] line overrides default_pool_size = 10', async () => {
    await withPooler({ settings: { default_pool_size: 10, max_client_conn: 100 }, appExtra: 'pool_size=2' }, async (p) => {
      const clients = await Promise.all(Array.from({ length: 20 }, () => connected(p)));
      const { value, max } = await sampling(() => Promise.all(clients.map(async (c, i) => (await c.query('SELECT $1::int AS i, pg_sleep(0.05)', [i])).rows[0].i as number)));
      expect(value).toEqual(clients.map((_, i) => i));
      expect(max).toBeLessThanOrEqual(2);
      // The pool filled up to its own size and stopped there.
      expect(await serverConnections(cluster)).toBe(2);
      await Promise.all(clients.map((c) => c.end()));
    });
  });

  it('max_client_conn = 5: the 6th connection gets SQLSTATE 53300, and a freed slot can be reused', async () => {
    await withPooler({ settings: { max_client_conn: 5 } }, async (p) => {
      const five = await Promise.all(Array.from({ length: 5 }, () => connected(p)));
      const err = await connected(p).then(() => null, (e: PgError) => e);
      expect(err?.code).toBe('53300');
      await p.waitForLog((l) => l.msg === 'closing because: no more connections allowed (max_client_conn)');
      await five[0]!.end();
      // The slot frees once pooler has seen the disconnect.
      const again = await poll(async () => connected(p), 'a slot to free up', 5000);
      expect((await again.query('SELECT 1 AS x')).rows[0].x).toBe(1);
      await Promise.all([again, ...five.slice(1)].map((c) => c.end()));
    });
  });

  it('max_client_conn: a refused connection is closed by pooler, not kept open', async () => {
    await withPooler({ settings: { max_client_conn: 2 } }, async (p) => {
      const two = [await connected(p), await connected(p)];
      const before = socketsOf(p.pid);
      for (let i = 0; i < 10; i++) {
        const c = pgClient(p);
        expect((await c.connect().then(() => null, (e: PgError) => e))?.code).toBe('53300');
        // The client has gone for good; pooler must let go of its end too.
        await c.end().catch(() => {});
      }
      await poll(() => socketsOf(p.pid) <= before, `pooler to close refused sockets (it holds ${socketsOf(p.pid) - before} more than before)`, 3000);
      await Promise.all(two.map((c) => c.end()));
    });
  });
});

describe('server timers', () => {
  it('server_idle_timeout = 1s closes idle servers of a burst, not before the timeout', async () => {
    await withPooler({ settings: { server_idle_timeout: '1s', min_pool_size: 0 } }, async (p) => {
      const clients = await Promise.all(Array.from({ length: 5 }, () => connected(p)));
      for (const c of clients) await c.query('BEGIN');
      const pids = await Promise.all(clients.map(pidOf));
      expect(new Set(pids).size).toBe(5);
      for (const c of clients) await c.query('COMMIT');
      const released = Date.now();
      expect(await serverConnections(cluster)).toBe(5);
      await poll(async () => (await serverConnections(cluster)) === 0, 'idle servers to be closed', 5000);
      expect(Date.now() - released).toBeGreaterThanOrEqual(900);
      await p.waitForLog((l) => l.msg === 'closing server connection because: server_idle_timeout');
      // The clients are still there and get new servers.
      expect(pids).not.toContain(await pidOf(clients[0]!));
      await Promise.all(clients.map((c) => c.end()));
    });
  });

  it('server_lifetime = 1s: an old idle server is closed by the janitor, a busy one when released', async () => {
    await withPooler({ settings: { server_lifetime: '1s', default_pool_size: 1 } }, async (p) => {
      const c = await connected(p);
      const first = await pidOf(c);
      // Idle in the pool: the janitor closes it once it is 1 s old.
      await poll(async () => (await serverConnections(cluster)) === 0, 'the janitor to close the old server', 5000);
      await p.waitForLog((l) => l.msg === 'closing server connection because: server_lifetime' && l.backendPid === first);
      const second = await pidOf(c);
      expect(second).not.toBe(first);
      // Held in a transaction past its lifetime: closed as soon as it is released.
      await c.query('BEGIN');
      expect(await pidOf(c)).toBe(second);
      await poll(
        async () => (await cluster.query(cluster.primary, "SELECT now() - backend_start > interval '1.1 s' AS old FROM pg_stat_activity WHERE pid = $1", [second]))[0]?.old === true,
        'the held server to outlive server_lifetime',
      );
      expect(await serverConnections(cluster)).toBe(1);
      await c.query('COMMIT');
      await p.waitForLog((l) => l.msg === 'closing server connection because: server_lifetime' && l.backendPid === second);
      const third = await pidOf(c);
      expect(third).not.toBe(second);
      await c.end();
    });
  });

  it('server_check_delay = 0: checking idle servers does not make pooler open more of them', async () => {
    await withPooler({ settings: { server_check_delay: 0, server_check_query: 'select 1', default_pool_size: 5 } }, async (p) => {
      const c = await connected(p);
      // One client, one query at a time: one server is all it ever needs.
      const { value: pids, max } = await sampling(async () => {
        const seen = new Set<number>();
        for (let i = 0; i < 20; i++) seen.add(await pidOf(c));
        return seen;
      });
      expect(await serverConnections(cluster)).toBe(1);
      expect(max).toBe(1);
      expect(pids.size).toBe(1);
      await c.end();
    });
  });

  it('server_check_delay = 0 with server_check_query: queries keep working, and a backend killed while pooled is discarded', async () => {
    await withPooler({ settings: { server_check_delay: 0, server_check_query: 'select 1', default_pool_size: 1 } }, async (p) => {
      const a = await connected(p);
      const b = await connected(p);
      const pids = new Set<number>();
      for (let i = 0; i < 10; i++) pids.add(await pidOf(i % 2 === 0 ? a : b));
      // The check passes: the one server is reused throughout.
      expect(pids.size).toBe(1);
      for (let round = 0; round < 3; round++) {
        const victim = await pidOf(a);
        await cluster.query(cluster.primary, 'SELECT pg_terminate_backend($1)', [victim]);
        // Next use, with no wait for pooler to notice: no error, a new backend.
        const next = await pidOf(round % 2 === 0 ? b : a);
        expect(next).not.toBe(victim);
      }
      expect((await a.query('SELECT 1 AS x')).rows[0].x).toBe(1);
      await Promise.all([a, b].map((c) => c.end()));
    });
  });
});

describe('client timers', () => {
  it('client_idle_timeout = 0.5s disconnects an idle client', async () => {
    await withPooler({ settings: { client_idle_timeout: '0.5s' } }, async (p) => {
      const c = await connected(p);
      const ended = endOf(c);
      await c.query('SELECT 1');
      const t0 = Date.now();
      const err = await ended;
      expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
      expect(err?.message).toBe('client_idle_timeout');
      await expect(c.query('SELECT 1')).rejects.toThrow();
      await p.waitForLog((l) => l.msg === 'closing because: client_idle_timeout');
    });
  });

  it('idle_transaction_timeout = 0.5s disconnects a client idle in BEGIN (25P03), rolls its server back and reuses it', async () => {
    await withPooler({ settings: { idle_transaction_timeout: '0.5s', default_pool_size: 1 } }, async (p) => {
      const c = await connected(p);
      const ended = endOf(c);
      await c.query('BEGIN');
      const pid = await pidOf(c);
      expect((await c.query('SELECT v FROM lim_lock WHERE id = 1 FOR UPDATE')).rows[0].v).toBe(0);
      expect(await lockCount()).toBeGreaterThan(0);
      const err = await ended;
      expect(err?.code).toBe('25P03');
      await p.waitForLog((l) => l.sqlstate === '25P03', 5000);
      await poll(async () => (await lockCount()) === 0, 'the row lock to be released');
      // Pool size 1: the next client gets the very same server, outside any transaction, lock free.
      const next = await connected(p);
      const r = await next.query('SELECT pg_backend_pid() AS pid, now() = statement_timestamp() AS fresh, (SELECT v FROM lim_lock WHERE id = 1 FOR UPDATE NOWAIT) AS v');
      expect(r.rows[0]).toEqual({ pid, fresh: true, v: 0 });
      await next.end();
    });
  });
});

describe('pool modes and session settings', () => {
  it('pool_mode = statement: autocommit works, BEGIN gets 25001 and closes the client, the server is rolled back', async () => {
    await withPooler({ settings: { pool_mode: 'statement', default_pool_size: 1 } }, async (p) => {
      const a = await connected(p);
      const b = await connected(p);
      expect((await a.query('SELECT 1 AS x')).rows[0].x).toBe(1);
      expect((await b.query('SELECT 2 AS x')).rows[0].x).toBe(2);
      // Several statements in one Query run as one implicit transaction and end idle: allowed.
      const multi = (await a.query('SELECT 3 AS x; SELECT 4 AS y')) as unknown as pg.QueryResult[];
      expect(multi.map((r) => r.rows[0])).toEqual([{ x: 3 }, { y: 4 }]);
      const pid = await pidOf(b);
      const ended = endOf(a);
      const queryErr = await a.query('BEGIN').then(() => null, (e: PgError) => e);
      const idleErr = await ended;
      expect((queryErr ?? idleErr)?.code).toBe('25001');
      await poll(
        async () => (await cluster.query(cluster.primary, "SELECT 1 FROM pg_stat_activity WHERE datname = 'postgres' AND state LIKE 'idle in transaction%'")).length === 0,
        'no server left idle in transaction',
      );
      const r = await b.query('SELECT pg_backend_pid() AS pid, now() = statement_timestamp() AS fresh');
      // Pool size 1: the server that ran BEGIN was rolled back and is the one b gets now.
      expect(r.rows[0]).toEqual({ pid, fresh: true });
      await p.waitForLog((l) => l.msg === 'closing because: transaction blocks not allowed in statement pooling mode' && l.sqlstate === '25001');
      await b.end();
    });
  });

  it("options=-c search_path=... -c statement_timeout=... apply on every transaction, whoever used the server before", async () => {
    await withPooler({ settings: { default_pool_size: 1 } }, async (p) => {
      const x = await connected(p, { options: '-c search_path=lim_x,public -c statement_timeout=300' });
      const plain = await connected(p);
      const other = await connected(p, { options: '-c statement_timeout=5s -c search_path=public' });
      const probe = "SELECT pg_backend_pid() AS pid, to_regclass('lim_marker') IS NOT NULL AS sees_x, current_setting('statement_timeout') AS st";
      const pids = new Set<number>();
      const order = [x, plain, other, x, other, plain, x, x, plain, other];
      for (const c of order) {
        const r = (await c.query(probe)).rows[0];
        pids.add(r.pid);
        if (c === x) expect(r, 'client with lim_x').toMatchObject({ sees_x: true, st: '300ms' });
        else if (c === plain) expect(r, 'client without options').toMatchObject({ sees_x: false, st: '0' });
        else expect(r, 'client with other options').toMatchObject({ sees_x: false, st: '5s' });
      }
      expect(pids.size).toBe(1);
      // statement_timeout is really in force for x, and really gone for the others.
      const err = await x.query('SELECT pg_sleep(2)').then(() => null, (e: PgError) => e);
      expect(err?.code).toBe('57014');
      await plain.query('SELECT pg_sleep(0.4)');
      await other.query('SELECT pg_sleep(0.4)');
      // Inside a transaction too.
      await x.query('BEGIN');
      expect((await x.query(probe)).rows[0]).toMatchObject({ sees_x: true, st: '300ms' });
      await x.query('COMMIT');
      await Promise.all([x, plain, other].map((c) => c.end()));
    });
  });

  it('a * fallback line serves a database name that has no line of its own', async () => {
    const p0 = cluster.primary;
    await withPooler({ databases: { '*': `host=${p0.host} port=${p0.port}` } }, async (p) => {
      const c = await connected(p, { database: 'lim_fallback' });
      expect((await c.query('SELECT current_database() AS db')).rows[0].db).toBe('lim_fallback');
      expect(await serverConnections(cluster, 'lim_fallback')).toBe(1);
      // The listed name still goes where its own line says.
      const app = await connected(p);
      expect((await app.query('SELECT current_database() AS db')).rows[0].db).toBe('postgres');
      await Promise.all([c, app].map((x) => x.end()));
    });
  });
});
