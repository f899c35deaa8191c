// Real drivers through pooler: node-postgres and postgres.js (simple, extended, pipelined, COPY, notices, LISTEN, session parameters).

import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import postgres from 'postgres';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pgClient, startCluster, startPoolerFor, type Cluster, type PoolerProcess, watchParameterStatus, postgresClient } from './harness.ts';

type Sql = ReturnType<typeof postgres>;
/** unsafe() without parameters defaults to the simple protocol; postgres.js honours `simple: false` though its types omit it. */
const EXTENDED = { simple: false } as postgres.UnsafeQueryOptions;

let cluster: Cluster;
let pooler: PoolerProcess;
const pgOpen = new Set<pg.Client>();
const jsOpen = new Set<Sql>();

beforeAll(async () => {
  cluster = await startCluster({ replicas: 0 });
  const p = cluster.primary;
  pooler = await startPoolerFor(cluster, {
    settings: { default_pool_size: 10, max_client_conn: 500 },
    databases: { sess: `host=${p.host} port=${p.port} dbname=postgres pool_mode=session` },
  });
  await cluster.query(
    p,
    `CREATE TABLE drv_tx (id int, who text);
     CREATE TABLE drv_copy_pg (id int, v text);
     CREATE TABLE drv_copy_js (id int, v text);
     CREATE SCHEMA drv_s;
     CREATE TABLE drv_s.drv_only_here (x int);
     INSERT INTO drv_s.drv_only_here VALUES (42);`,
  );
});
afterEach(async () => {
  await Promise.all([...pgOpen].map((c) => c.end().catch(() => {})));
  await Promise.all([...jsOpen].map((s) => s.end({ timeout: 5 }).catch(() => {})));
  pgOpen.clear();
  jsOpen.clear();
});
afterAll(async () => {
  await pooler?.stop();
  await cluster?.destroy();
});

/** A connected node-postgres client through pooler, closed after the test. */
async function pgc(opts: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const c = pgClient(pooler, opts);
  pgOpen.add(c);
  await c.connect();
  return c;
}

/** A postgres.js instance through pooler (prepare: false, as for any transaction-mode pooler), closed after the test. */
function pjs(opts: postgres.Options<{}> = {}): Sql {
  const sql = postgresClient(pooler, { prepare: false, ...opts });
  jsOpen.add(sql);
  return sql;
}

/** The error a promise rejects with (fails the test if it resolves). */
async function failure(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected the query to fail');
}

async function direct(sql: string, params?: unknown[]): Promise<any[]> {
  return cluster.query(cluster.primary, sql, params);
}

/** COPY text rows `id \t v \n` for ids 1..n, in chunks of ~64 kB, with the md5 of the whole text. */
function copyRows(n: number, tag: string): { chunks: Buffer[]; md5: string; idSum: number } {
  const chunks: Buffer[] = [];
  const hash = createHash('md5');
  let part = '';
  let idSum = 0;
  for (let i = 1; i <= n; i++) {
    part += `${i}\t${tag}-${(i * 2654435761) % 4294967296}-${'abcdefghij'.repeat(1 + (i % 5))}\n`;
    idSum += i;
    if (part.length > 65_000 || i === n) {
      const b = Buffer.from(part);
      chunks.push(b);
      hash.update(b);
      part = '';
    }
  }
  return { chunks, md5: hash.digest('hex'), idSum };
}

/** A Writable that hashes and counts what it is given. */
function hashSink(): { sink: Writable; result: () => { md5: string; bytes: number; lines: number } } {
  const hash = createHash('md5');
  let bytes = 0;
  let lines = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) lines++;
      cb();
    },
  });
  return { sink, result: () => ({ md5: hash.digest('hex'), bytes, lines }) };
}


describe('node-postgres', () => {
  it('runs plain and parameterized queries, including NULL, bytea and a large parameter', async () => {
    const c = await pgc();
    expect((await c.query('SELECT 1 AS x')).rows).toEqual([{ x: 1 }]);
    const big = 'y'.repeat(300_000);
    const r = await c.query('SELECT $1::int + $2::int AS s, $3::text IS NULL AS isnull, $4::bytea AS b, length($5::text) AS len', [
      2, 3, null, Buffer.from([0, 1, 255]), big,
    ]);
    expect(r.rows).toEqual([{ s: 5, isnull: true, b: Buffer.from([0, 1, 255]), len: 300_000 }]);
    // A named prepared statement lives on one server: it works only inside a transaction in transaction mode.
    await c.query('BEGIN');
    expect((await c.query({ name: 'drv_named', text: 'SELECT $1::int * 10 AS v', values: [4] })).rows).toEqual([{ v: 40 }]);
    expect((await c.query({ name: 'drv_named', text: 'SELECT $1::int * 10 AS v', values: [5] })).rows).toEqual([{ v: 50 }]);
    await c.query('COMMIT');
  });

  it('runs multi-statement simple query strings, and stays usable after one fails midway', async () => {
    const c = await pgc();
    const res = (await c.query('SELECT 1 AS a; SELECT 2 AS b; SELECT 3 AS c')) as unknown as pg.QueryResult[];
    expect(res.map((r) => r.rows)).toEqual([[{ a: 1 }], [{ b: 2 }], [{ c: 3 }]]);
    const err = await failure(c.query('SELECT 1; SELECT 1/0; SELECT 3'));
    expect(err.code).toBe('22012');
    expect((await c.query('SELECT 4 AS d')).rows).toEqual([{ d: 4 }]);
    // A multi-statement string is one implicit transaction: a failure rolls back its earlier statements.
    await failure(c.query("INSERT INTO drv_tx VALUES (-1, 'implicit'); SELECT 1/0"));
    expect(await direct("SELECT count(*)::int AS n FROM drv_tx WHERE who = 'implicit'")).toEqual([{ n: 0 }]);
  });

  it('commits and rolls back transactions (checked on a direct connection)', async () => {
    const c = await pgc();
    await c.query('BEGIN');
    await c.query("INSERT INTO drv_tx VALUES (1, 'pg-commit'), (2, 'pg-commit')");
    expect(await direct("SELECT count(*)::int AS n FROM drv_tx WHERE who = 'pg-commit'")).toEqual([{ n: 0 }]);
    await c.query('COMMIT');
    expect(await direct("SELECT count(*)::int AS n FROM drv_tx WHERE who = 'pg-commit'")).toEqual([{ n: 2 }]);

    await c.query('BEGIN');
    await c.query("INSERT INTO drv_tx VALUES (3, 'pg-rollback')");
    expect((await c.query("SELECT count(*)::int AS n FROM drv_tx WHERE who = 'pg-rollback'")).rows).toEqual([{ n: 1 }]);
    await c.query('ROLLBACK');
    expect(await direct("SELECT count(*)::int AS n FROM drv_tx WHERE who = 'pg-rollback'")).toEqual([{ n: 0 }]);
  });

  it('keeps the server of a failed transaction with its client until ROLLBACK', async () => {
    const c = await pgc();
    await c.query('BEGIN');
    const pid = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    await c.query("INSERT INTO drv_tx VALUES (10, 'pg-aborted')");
    expect((await failure(c.query('SELECT 1/0'))).code).toBe('22012');
    expect((await failure(c.query('SELECT 1'))).code).toBe('25P02');
    expect((await failure(c.query('SELECT $1::int', [1]))).code).toBe('25P02');

    // Meanwhile other clients run; none of them may be handed the aborted server.
    const others = await Promise.all(Array.from({ length: 20 }, () => pgc()));
    const pids = await Promise.all(others.map(async (o) => (await o.query('SELECT pg_backend_pid() AS pid, pg_sleep(0.02)')).rows[0].pid as number));
    expect(pids).not.toContain(pid);
    expect(await direct('SELECT state FROM pg_stat_activity WHERE pid = $1', [pid])).toEqual([{ state: 'idle in transaction (aborted)' }]);

    await c.query('ROLLBACK');
    expect(await direct("SELECT count(*)::int AS n FROM drv_tx WHERE who = 'pg-aborted'")).toEqual([{ n: 0 }]);
    await c.query('BEGIN');
    await c.query("INSERT INTO drv_tx VALUES (11, 'pg-after-abort')");
    await c.query('COMMIT');
    expect(await direct("SELECT count(*)::int AS n FROM drv_tx WHERE who = 'pg-after-abort'")).toEqual([{ n: 1 }]);

    // Same server before and after an error inside one transaction (recovered with a savepoint).
    await c.query('BEGIN');
    const before = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    await c.query('SAVEPOINT s');
    expect((await failure(c.query('SELECT 1/0'))).code).toBe('22012');
    await Promise.all(others.map((o) => o.query('SELECT pg_sleep(0.01)')));
    await c.query('ROLLBACK TO SAVEPOINT s');
    const after = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    await c.query('COMMIT');
    expect(after).toBe(before);
  });

  it('serves 100 concurrent clients over a pool of 10 with correct results each', async () => {
    const clients = await Promise.all(Array.from({ length: 100 }, (_, i) => pgc({ application_name: `many-${i}` })));
    const pids = new Set<number>();
    await Promise.all(
      clients.map(async (c, i) => {
        for (let round = 0; round < 5; round++) {
          const n = i * 1000 + round;
          const r = await c.query('SELECT $1::int AS n, $2::text AS t, pg_backend_pid() AS pid, current_setting($3) AS app', [n, `t${n}`, 'application_name']);
          expect(r.rows[0]).toMatchObject({ n, t: `t${n}`, app: `many-${i}` });
          pids.add(r.rows[0].pid);
          await c.query('BEGIN');
          await c.query('SELECT pg_sleep(0.002)');
          expect((await c.query('SELECT $1::int * 2 AS d', [n])).rows).toEqual([{ d: n * 2 }]);
          await c.query('COMMIT');
        }
      }),
    );
    expect(pids.size).toBeGreaterThan(1);
    expect(pids.size).toBeLessThanOrEqual(10);
  });

  it('does COPY FROM STDIN and COPY TO STDOUT (pg-copy-streams) with row counts and checksums', async () => {
    const c = await pgc();
    const n = 60_000;
    const { chunks, md5, idSum } = copyRows(n, 'pg');
    const ingest = c.query(copyFrom('COPY drv_copy_pg (id, v) FROM STDIN'));
    await pipeline(Readable.from(chunks), ingest);
    expect(ingest.rowCount).toBe(n);
    const [stored] = await direct(
      "SELECT count(*)::int AS n, sum(id)::bigint::text AS ids, md5(string_agg(id || E'\\t' || v || E'\\n', '' ORDER BY id)) AS md5 FROM drv_copy_pg",
    );
    expect(stored).toEqual({ n, ids: String(idSum), md5 });

    const out = hashSink();
    const dump = c.query(copyTo('COPY (SELECT id, v FROM drv_copy_pg ORDER BY id) TO STDOUT'));
    await pipeline(dump, out.sink);
    expect(out.result()).toEqual({ md5, bytes: chunks.reduce((s, b) => s + b.length, 0), lines: n });
    expect(dump.rowCount).toBe(n);
    // The connection is in a sane state afterwards.
    expect((await c.query('SELECT count(*)::int AS n FROM drv_copy_pg')).rows).toEqual([{ n }]);

    // A bad row fails the COPY (the server answers before the client has sent everything); nothing is stored
    // and the client goes on normally.
    const bad = c.query(copyFrom('COPY drv_copy_pg (id, v) FROM STDIN'));
    const badErr = await failure(pipeline(Readable.from([...chunks.slice(0, 5), Buffer.from('not-a-number\tx\n'), ...chunks.slice(5)]), bad));
    expect(badErr.code).toBe('22P02');
    expect((await c.query('SELECT count(*)::int AS n FROM drv_copy_pg')).rows).toEqual([{ n }]);
    expect((await c.query('SELECT $1::text AS ok', ['fine'])).rows).toEqual([{ ok: 'fine' }]);
  });

  it('passes NOTICE messages through', async () => {
    const c = await pgc();
    const notices: { message?: string; severity?: string }[] = [];
    c.on('notice', (m) => notices.push(m));
    await c.query("DO $$ BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful'; END $$");
    expect(notices.map((m) => [m.severity, m.message])).toEqual([
      ['NOTICE', 'hello 42'],
      ['WARNING', 'careful'],
    ]);
  });

  it('passes ParameterStatus through, at login and on SET', async () => {
    const c = pgClient(pooler);
    pgOpen.add(c);
    const seen = watchParameterStatus(c);
    await c.connect();
    const names = seen.map((m) => m.parameterName);
    expect(names).toEqual(expect.arrayContaining(['server_version', 'client_encoding', 'standard_conforming_strings', 'TimeZone']));
    seen.length = 0;
    await c.query("SET application_name = 'pg-param-x'");
    expect(seen).toEqual([{ parameterName: 'application_name', parameterValue: 'pg-param-x' }]);
    seen.length = 0;
    await c.query("SET TimeZone = 'Asia/Tokyo'");
    expect(seen).toEqual([{ parameterName: 'TimeZone', parameterValue: 'Asia/Tokyo' }]);

    // The reported TimeZone is session state too: it follows the client to other servers while others use other zones.
    const [{ TimeZone: defaultZone }] = await direct('SHOW TimeZone');
    const others = await Promise.all(Array.from({ length: 12 }, () => pgc()));
    await Promise.all(others.slice(0, 8).map((o, k) => o.query(`SET TimeZone = 'Etc/GMT+${k + 1}'`)));
    const zoneOf = (k: number) => (k < 8 ? `Etc/GMT+${k + 1}` : defaultZone);
    for (let round = 0; round < 5; round++) {
      const [mine, ...theirs] = await Promise.all([
        c.query('SELECT current_setting($1) AS tz, pg_sleep(0.002)', ['TimeZone']),
        ...others.map((o) => o.query('SELECT current_setting($1) AS tz, pg_sleep(0.002)', ['TimeZone'])),
      ]);
      expect(mine!.rows[0].tz).toBe('Asia/Tokyo');
      expect(theirs.map((r) => r.rows[0].tz)).toEqual(others.map((_, k) => zoneOf(k)));
    }
    expect(seen.map((m) => m.parameterName)).not.toContain('application_name');
  });

  it('keeps a SET reported parameter across transactions while other clients use other values', async () => {
    const n = 20;
    const clients = await Promise.all(Array.from({ length: n }, () => pgc()));
    await Promise.all(clients.map((c, i) => c.query(`SET application_name = 'a${i}'`)));
    // A SET rolled back with its transaction must not stick.
    await clients[0]!.query('BEGIN');
    await clients[0]!.query("SET application_name = 'temporary'");
    await clients[0]!.query('ROLLBACK');
    const pidsOf = clients.map(() => new Set<number>());
    await Promise.all(
      clients.map(async (c, i) => {
        for (let round = 0; round < 10; round++) {
          expect((await c.query('SHOW application_name')).rows).toEqual([{ application_name: `a${i}` }]);
          await c.query('BEGIN');
          const r = await c.query("SELECT current_setting('application_name') AS app, pg_backend_pid() AS pid, pg_sleep(0.002)");
          expect(r.rows[0].app).toBe(`a${i}`);
          pidsOf[i]!.add(r.rows[0].pid);
          await c.query('COMMIT');
        }
      }),
    );
    // Clients did move between servers, so the value really was carried over.
    expect(pidsOf.some((s) => s.size > 1)).toBe(true);
  });

  it('gives each client its startup application_name on every transaction, and none to a client without one', async () => {
    const named = await Promise.all(Array.from({ length: 15 }, (_, i) => pgc({ application_name: `st-${i}` })));
    const plain = await Promise.all(Array.from({ length: 5 }, () => pgc()));
    await Promise.all([
      ...named.map(async (c, i) => {
        for (let round = 0; round < 10; round++) {
          await c.query('BEGIN');
          expect((await c.query('SHOW application_name')).rows).toEqual([{ application_name: `st-${i}` }]);
          await c.query('SELECT pg_sleep(0.002)');
          await c.query('COMMIT');
        }
      }),
      ...plain.map(async (c) => {
        for (let round = 0; round < 10; round++) {
          expect((await c.query('SHOW application_name')).rows).toEqual([{ application_name: '' }]);
          await c.query('SELECT pg_sleep(0.002)');
        }
      }),
    ]);
  });
});

describe('startup options applied on every server', () => {
  it("applies `options=-c search_path=a,b` as PostgreSQL does at startup (a list, not one quoted name)", async () => {
    const options = '-c search_path=drv_s,public';
    // What PostgreSQL itself makes of the option, on a direct connection.
    const d = new pg.Client({ host: cluster.primary.host, port: cluster.primary.port, user: 'postgres', database: 'postgres', options });
    d.on('error', () => {});
    await d.connect();
    const expected = (await d.query('SHOW search_path')).rows[0].search_path as string;
    await d.end();
    expect((await direct('SELECT x FROM drv_s.drv_only_here'))[0].x).toBe(42);

    const withPath = await Promise.all(Array.from({ length: 12 }, () => pgc({ options })));
    const without = await Promise.all(Array.from({ length: 4 }, () => pgc()));
    await Promise.all([
      ...withPath.map(async (c) => {
        for (let round = 0; round < 5; round++) {
          expect((await c.query('SHOW search_path')).rows[0].search_path).toBe(expected);
          expect((await c.query('SELECT x, pg_sleep(0.002) FROM drv_only_here')).rows[0].x).toBe(42);
        }
      }),
      ...without.map(async (c) => {
        for (let round = 0; round < 5; round++) {
          expect((await c.query('SHOW search_path')).rows[0].search_path).toBe('"$user", public');
          await c.query('SELECT pg_sleep(0.002)');
        }
      }),
    ]);
  });

  it('applies a search_path startup parameter from postgres.js the same way', async () => {
    const sql = pjs({ connection: { search_path: 'drv_s,public' } });
    expect([...(await sql`SELECT x FROM drv_only_here`)]).toEqual([{ x: 42 }]);
  });
});

describe('postgres.js', () => {
  it('runs plain and parameterized queries', async () => {
    const sql = pjs();
    expect([...(await sql`SELECT 1::int AS x`)]).toEqual([{ x: 1 }]);
    expect([...(await sql`SELECT ${2}::int + ${3}::int AS s, ${'abc'}::text AS t, ${null}::text AS n`)]).toEqual([{ s: 5, t: 'abc', n: null }]);
    const rows = await sql`SELECT g AS i FROM generate_series(1, ${1000}::int) g`;
    expect(rows.length).toBe(1000);
    expect(rows[999]).toEqual({ i: 1000 });
  });

  it('runs multi-statement simple query strings', async () => {
    const sql = pjs();
    const res = (await sql.unsafe('SELECT 1::int AS a; SELECT 2::int AS b')) as unknown as unknown[][];
    expect(res.map((r) => [...r])).toEqual([[{ a: 1 }], [{ b: 2 }]]);
  });

  it('commits and rolls back transactions (checked on a direct connection)', async () => {
    const sql = pjs();
    await sql.begin(async (tx) => {
      await tx`INSERT INTO drv_tx VALUES (${20}, 'js-commit'), (${21}, 'js-commit')`;
      expect(await direct("SELECT count(*)::int AS n FROM drv_tx WHERE who = 'js-commit'")).toEqual([{ n: 0 }]);
    });
    expect(await direct("SELECT count(*)::int AS n FROM drv_tx WHERE who = 'js-commit'")).toEqual([{ n: 2 }]);

    const err = await failure(
      sql.begin(async (tx) => {
        await tx`INSERT INTO drv_tx VALUES (${22}, 'js-rollback')`;
        expect([...(await tx`SELECT count(*)::int AS n FROM drv_tx WHERE who = 'js-rollback'`)]).toEqual([{ n: 1 }]);
        throw new Error('roll it back');
      }),
    );
    expect(err.message).toBe('roll it back');
    expect(await direct("SELECT count(*)::int AS n FROM drv_tx WHERE who = 'js-rollback'")).toEqual([{ n: 0 }]);
  });

  it('fails the transaction on an error, keeps its server until ROLLBACK, then works again', async () => {
    const sql = pjs({ max: 1 });
    const reserved = await sql.reserve();
    try {
      await reserved`BEGIN`;
      const [{ pid }] = await reserved`SELECT pg_backend_pid() AS pid`;
      expect((await failure(reserved`SELECT 1/${0}::int`)).code).toBe('22012');
      expect((await failure(reserved`SELECT 1`)).code).toBe('25P02');
      expect(await direct('SELECT state FROM pg_stat_activity WHERE pid = $1', [pid])).toEqual([{ state: 'idle in transaction (aborted)' }]);
      await reserved`ROLLBACK`;
      await reserved`BEGIN`;
      const [{ pid: p1 }] = await reserved`SELECT pg_backend_pid() AS pid`;
      await reserved`SAVEPOINT s`;
      expect((await failure(reserved`SELECT 1/${0}::int`)).code).toBe('22012');
      await reserved`ROLLBACK TO SAVEPOINT s`;
      const [{ pid: p2 }] = await reserved`SELECT pg_backend_pid() AS pid`;
      await reserved`COMMIT`;
      expect(p2).toBe(p1);
      expect([...(await reserved`SELECT ${7}::int AS v`)]).toEqual([{ v: 7 }]);
    } finally {
      reserved.release();
    }
  });

  it('pipelines 50 queries on one connection (many Syncs in flight)', async () => {
    const sql = pjs({ max: 1 });
    await sql`SELECT 1`;
    // No parameters: postgres.js sends Parse/Describe/Bind/Execute/Sync for each without waiting (simple ones as Query).
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        i % 2 === 0 ? sql.unsafe(`SELECT ${i}::int AS i, repeat('z', ${i * 100}) AS pad`, [], EXTENDED) : sql.unsafe(`SELECT ${i}::int AS i, repeat('z', ${i * 100}) AS pad`),
      ),
    );
    results.forEach((r, i) => expect([...r]).toEqual([{ i, pad: 'z'.repeat(i * 100) }]));
    // Parameterized ones (Parse/Describe/Flush first, then Bind/Execute/Sync) interleaved with a pipeline, several rounds.
    for (let round = 0; round < 3; round++) {
      const mixed = await Promise.all(
        Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? sql`SELECT ${i}::int AS i` : sql.unsafe(`SELECT ${i}::int AS i`, [], EXTENDED))),
      );
      mixed.forEach((r, i) => expect([...r]).toEqual([{ i }]));
    }
    // One failing query in a pipeline fails alone: the others, each behind its own Sync, still succeed.
    const settled = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => sql.unsafe(i === 9 ? 'SELECT 1/0 AS i' : `SELECT ${i}::int AS i`, [], EXTENDED)),
    );
    settled.forEach((r, i) => {
      if (i === 9) expect(r.status === 'rejected' && (r.reason as { code?: string }).code).toBe('22012');
      else expect(r.status === 'fulfilled' && [...r.value]).toEqual([{ i }]);
    });
    // A pipeline inside a transaction stays on one server.
    const pids = await sql.begin((tx) => Array.from({ length: 20 }, () => tx`SELECT pg_backend_pid() AS pid`));
    expect(new Set(pids.map((r) => r[0]!.pid)).size).toBe(1);
  });

  it('pipelines from many connections at once over the pool of 10, with parameterized queries in between', async () => {
    const sqls = Array.from({ length: 12 }, (_, k) => pjs({ max: 1, connection: { application_name: `pipe-${k}` } }));
    await Promise.all(
      sqls.map(async (sql, k) => {
        for (let round = 0; round < 3; round++) {
          const rs = await Promise.all(
            Array.from({ length: 40 }, (_, i) =>
              // Every 4th has a parameter: Parse/Describe/Flush, a round trip, then Bind/Execute/Sync on the same server.
              i % 4 === 0
                ? sql`SELECT ${k * 1000 + i}::int AS v, current_setting('application_name') AS app`
                : sql.unsafe(`SELECT ${k * 1000 + i}::int AS v, current_setting('application_name') AS app`, [], EXTENDED),
            ),
          );
          rs.forEach((r, i) => expect([...r]).toEqual([{ v: k * 1000 + i, app: `pipe-${k}` }]));
        }
      }),
    );
  });

  it('does COPY FROM STDIN (.writable()) and COPY TO STDOUT (.readable()) with row counts and checksums', async () => {
    const sql = pjs({ max: 1 });
    const n = 60_000;
    const { chunks, md5, idSum } = copyRows(n, 'js');
    const w = await sql`COPY drv_copy_js (id, v) FROM STDIN`.writable();
    await pipeline(Readable.from(chunks), w);
    const [stored] = await direct(
      "SELECT count(*)::int AS n, sum(id)::bigint::text AS ids, md5(string_agg(id || E'\\t' || v || E'\\n', '' ORDER BY id)) AS md5 FROM drv_copy_js",
    );
    expect(stored).toEqual({ n, ids: String(idSum), md5 });

    const out = hashSink();
    const r = await sql`COPY (SELECT id, v FROM drv_copy_js ORDER BY id) TO STDOUT`.readable();
    await pipeline(r, out.sink);
    expect(out.result()).toEqual({ md5, bytes: chunks.reduce((s, b) => s + b.length, 0), lines: n });
    expect([...(await sql`SELECT count(*)::int AS n FROM drv_copy_js`)]).toEqual([{ n }]);
  });

  it('passes NOTICE messages through', async () => {
    const notices: string[] = [];
    const sql = pjs({ onnotice: (n) => notices.push(String(n['message'])) });
    await sql`DO $$ BEGIN RAISE NOTICE 'js notice %', 7; END $$`;
    expect(notices).toEqual(['js notice 7']);
  });

  it('exposes ParameterStatus in sql.parameters and keeps a SET value across transactions', async () => {
    const sql = pjs({ max: 1 });
    await sql`SELECT 1`;
    expect(sql.parameters.application_name).toBe('postgres.js');
    expect(sql.parameters.server_version).toMatch(/^\d+/);
    await sql`SET application_name = 'js-param-x'`;
    expect(sql.parameters.application_name).toBe('js-param-x');
    // Other clients with other names churn the pool in between.
    const others = Array.from({ length: 15 }, (_, k) => pjs({ max: 1, connection: { application_name: `js-other-${k}` } }));
    for (let round = 0; round < 5; round++) {
      const [mine, ...theirs] = await Promise.all([
        sql`SELECT current_setting('application_name') AS app, pg_sleep(0.002)`,
        ...others.map((o) => o`SELECT current_setting('application_name') AS app, pg_sleep(0.002)`),
      ]);
      expect(mine![0]!.app).toBe('js-param-x');
      theirs.forEach((r, k) => expect(r[0]!.app).toBe(`js-other-${k}`));
      await sql.begin(async (tx) => {
        expect([...(await tx`SHOW application_name`)]).toEqual([{ application_name: 'js-param-x' }]);
      });
    }
  });
});

describe('LISTEN/NOTIFY in a session-mode pool', () => {
  it('delivers notifications to a listener on the session-mode database', async () => {
    const listener = await pgc({ database: 'sess' });
    const got = new Promise<pg.Notification>((resolve) => listener.on('notification', resolve));
    await listener.query('LISTEN drv_chan');
    const listenerPid = (await listener.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;

    // The notifier goes through the transaction-mode database; NOTIFY is sent at COMMIT.
    const notifier = await pgc();
    await notifier.query('BEGIN');
    await notifier.query("SELECT pg_notify('drv_chan', 'hello from pooler')");
    await notifier.query('COMMIT');
    const n = await got;
    expect(n).toMatchObject({ channel: 'drv_chan', payload: 'hello from pooler', processId: expect.any(Number) });
    expect(n.processId).not.toBe(listenerPid);
    // Still the same server (session mode).
    expect((await listener.query('SELECT pg_backend_pid() AS pid')).rows[0].pid).toBe(listenerPid);
  });

  it('delivers notifications to postgres.js sql.listen on the session-mode database', async () => {
    const sql = pjs({ database: 'sess', max: 2 });
    const payloads: string[] = [];
    let wake: () => void = () => {};
    const two = new Promise<void>((r) => (wake = r));
    await sql.listen('drv_js_chan', (p) => {
      payloads.push(p);
      if (payloads.length === 2) wake();
    });
    await sql.notify('drv_js_chan', 'one');
    await direct("NOTIFY drv_js_chan, 'two'");
    await two;
    expect(payloads).toEqual(['one', 'two']);
  });
});
