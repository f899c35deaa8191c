// Named prepared statements through pooler in transaction and statement mode: real drivers (postgres.js with
// prepare: true, node-postgres named queries, pgbench -M prepared), the per-server LRU (max_prepared_statements),
// message order on the wire where pooler prepares behind the client's back, errors where PostgreSQL puts them,
// SQL-level PREPARE/EXECUTE/DEALLOCATE, DISCARD ALL; and pass-through in session mode and with max_prepared_statements = 0.

import { spawn, type ChildProcess } from 'node:child_process';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  pgClient, poll, poolerUrl, serverConnections, startCluster, startPoolerFor, type Cluster, type PoolerProcess, type PoolerSetup,
  postgresClient,
} from './harness.ts';
import {
  bind, close, columnsOf, commandTag, describe as describeMsg, errorsOf, execute, flush, paramTypesOf, parse, RawClient, rowsOf, sync,
  typesOf, type Message,
} from '../helpers/raw-client.ts';
import { query } from '../helpers/wire.ts';

type Sql = ReturnType<typeof postgres>;

let cluster: Cluster;
const pgOpen = new Set<pg.Client>();
const jsOpen = new Set<Sql>();
const rawOpen = new Set<RawClient>();
const children = new Set<ChildProcess>();

beforeAll(async () => {
  cluster = await startCluster({ replicas: 0 });
  await cluster.query(cluster.primary, 'CREATE TABLE prep_js (client int, v int); CREATE TABLE prep_pg (client int, v int)');
});
afterEach(async () => {
  await Promise.all([...pgOpen].map((c) => c.end().catch(() => {})));
  await Promise.all([...jsOpen].map((s) => s.end({ timeout: 5 }).catch(() => {})));
  for (const r of rawOpen) r.destroy();
  pgOpen.clear();
  jsOpen.clear();
  rawOpen.clear();
});
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await cluster?.destroy();
});

/** Starts a pooler for the enclosing describe (stopped in its afterAll); call the result to get it. */
function poolerFor(setup: PoolerSetup): () => PoolerProcess {
  let p: PoolerProcess | undefined;
  beforeAll(async () => {
    p = await startPoolerFor(cluster, setup);
  });
  afterAll(async () => {
    await p?.stop();
  });
  return () => {
    if (!p) throw new Error('pooler not started');
    return p;
  };
}

/** A connected node-postgres client through pooler, closed after the test. */
async function pgc(p: PoolerProcess, opts: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const c = pgClient(p, opts);
  pgOpen.add(c);
  await c.connect();
  return c;
}

/** A postgres.js instance through pooler with the driver's defaults (prepare: true), closed after the test. */
function pjs(p: PoolerProcess, opts: postgres.Options<{}> = {}): Sql {
  const sql = postgresClient(p, opts);
  jsOpen.add(sql);
  return sql;
}

/** A logged-in raw-protocol client through pooler, closed after the test. */
async function raw(p: PoolerProcess): Promise<RawClient> {
  const c = await RawClient.connect(p);
  rawOpen.add(c);
  return c;
}

function direct(sql: string, params?: unknown[]): Promise<any[]> {
  return cluster.query(cluster.primary, sql, params);
}

/** The error a query rejects with (fails the test if it succeeds). */
async function failure(c: pg.Client, sql: string): Promise<Error & { code?: string }> {
  try {
    await c.query(sql);
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error(`${sql}: succeeded, expected an error`);
}

/**
 * Rejections among `settled`, as "count× SQLSTATE message (e.g. …)", grouped with quoted names blanked out so that
 * 100 clients failing the same way read as one line.
 */
function failures(settled: PromiseSettledResult<unknown>[]): string[] {
  const groups = new Map<string, { n: number; example: string }>();
  for (const s of settled) {
    if (s.status !== 'rejected') continue;
    const e = s.reason as { code?: string; message?: string } | undefined;
    const message = e?.message ?? String(e);
    const key = `${e?.code ?? '-'} ${message.replace(/"[^"]*"/g, '"…"')}`;
    const g = groups.get(key) ?? { n: 0, example: message };
    g.n++;
    groups.set(key, g);
  }
  return [...groups].map(([k, g]) => `${g.n}× ${k} (e.g. ${g.example})`);
}

/** The most server connections pg_stat_activity shows while it runs (sampled every 100 ms). */
function sampleServers(): { stop(): Promise<number> } {
  let max = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      max = Math.max(max, await serverConnections(cluster).catch(() => 0));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return max;
    },
  };
}

/**
 * Run a command-line tool to completion, or kill it after `timeoutMs` (pgbench can hang when a statement it
 * prepares fails); every child is tracked and killed if the test fails.
 */
function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(c);
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      err = `[killed: still running after ${timeoutMs} ms]\n` + err;
      c.kill('SIGKILL');
    }, timeoutMs);
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('error', reject);
    c.on('close', (code) => {
      clearTimeout(timer);
      children.delete(c);
      resolve({ code, out, err });
    });
  });
}

/**
 * Kills every server connection pooler holds (pg_terminate_backend on a direct connection), waits until they are
 * gone, then until `poolSize` concurrent queries through pooler all run on new backends: from then on, every
 * server pooler hands out is a fresh one that has never seen any prepared statement.
 */
async function replaceServers(p: PoolerProcess, poolSize = 1): Promise<void> {
  const killed = (
    await direct(
      `SELECT pid, pg_terminate_backend(pid) AS ok FROM pg_stat_activity
        WHERE datname = 'postgres' AND backend_type = 'client backend' AND application_name <> 'pg-fixture' AND pid <> pg_backend_pid()`,
    )
  ).map((r) => r.pid as number);
  await poll(
    async () => (await direct('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1)', [killed]))[0].n === 0,
    'the terminated server connections to exit',
  );
  await poll(async () => {
    const pids = await Promise.all(
      Array.from({ length: poolSize }, async () => {
        const c = pgClient(p);
        try {
          await c.connect();
          return (await c.query('SELECT pg_backend_pid() AS pid, pg_sleep(0.05)')).rows[0].pid as number;
        } finally {
          await c.end().catch(() => {});
        }
      }),
    );
    return pids.every((pid) => !killed.includes(pid));
  }, 'pooler to work on new server connections');
}

/** Asserts the message types of an exchange (asynchronous ones left out); a failure shows the errors received. */
function expectTypes(msgs: Message[], expected: string[], label = ''): void {
  const errors = errorsOf(msgs).map((e) => `${e['C']} ${e['M']}`);
  expect(typesOf(msgs), [label, ...(errors.length ? [`errors: ${errors.join('; ')}`] : [])].filter(Boolean).join(', ')).toEqual(expected);
}

/** SQLSTATE and message of the only ErrorResponse among `msgs`. */
function theError(msgs: Message[]): { code: string | undefined; message: string | undefined } {
  const errs = errorsOf(msgs);
  expect(errs, JSON.stringify(errs)).toHaveLength(1);
  return { code: errs[0]!['C'], message: errs[0]!['M'] };
}

/** The transaction status a ReadyForQuery (the last message) reports. */
function statusOf(msgs: Message[]): string {
  const z = msgs[msgs.length - 1]!;
  expect(z.type).toBe('Z');
  return String.fromCharCode(z.body[0]!);
}

/** The one message of type `type` among `msgs`. */
function only(msgs: Message[], type: string): Message {
  const found = msgs.filter((m) => m.type === type);
  expect(found, `one '${type}' among ${typesOf(msgs).join('')}`).toHaveLength(1);
  return found[0]!;
}

async function backendPid(c: RawClient): Promise<string> {
  const rows = rowsOf(await c.simple('SELECT pg_backend_pid()'));
  return rows[0]![0]!;
}

// ---------------------------------------------------------------------------------------------------------

describe('transaction mode, pool of 10: drivers that prepare named statements', () => {
  const pooler = poolerFor({ settings: { default_pool_size: 10, max_client_conn: 500 } });

  it('postgres.js (prepare: true): 100 connections × 30 parameterized queries of 5 shapes, all correct, no error and no retry', async () => {
    let executions = 0;
    const sqls = Array.from({ length: 100 }, () =>
      pjs(pooler(), {
        // Called for every execution, retries included: postgres.js silently re-runs a cached statement that
        // fails with "prepared statement does not exist", which would hide exactly the failure this test is about.
        debug: (_conn, text) => {
          if (/pjs_|prep_js/.test(text)) executions++;
        },
      }),
    );
    const sampler = sampleServers();
    const rounds = 5;
    const settled = await Promise.allSettled(
      sqls.map(async (sql, c) => {
        for (let r = 0; r < rounds; r++) {
          const k = c * 100 + r;
          expect([...(await sql`SELECT ${k}::int + ${r}::int AS pjs_sum`)]).toEqual([{ pjs_sum: k + r }]);
          expect([...(await sql`SELECT ${`c${c}`}::text || '-' || ${String(r)}::text AS pjs_cat`)]).toEqual([{ pjs_cat: `c${c}-${r}` }]);
          const n = 1 + ((c + r) % 5);
          expect([...(await sql`SELECT pjs_n FROM generate_series(1, ${n}::int) AS g(pjs_n)`)]).toEqual(
            Array.from({ length: n }, (_, i) => ({ pjs_n: i + 1 })),
          );
          expect([...(await sql`SELECT ${k * 3}::int AS pjs_n, ${null}::text IS NULL AS pjs_null, length(${'x'.repeat(r + 1)}::text) AS pjs_len`)]).toEqual([
            { pjs_n: k * 3, pjs_null: true, pjs_len: r + 1 },
          ]);
          const [row] = await sql.begin(async (tx) => {
            await tx`INSERT INTO prep_js VALUES (${c}::int, ${r}::int)`;
            return tx`SELECT count(*)::int AS pjs_cnt, sum(v)::int AS pjs_sum FROM prep_js WHERE client = ${c}::int`;
          });
          expect(row).toEqual({ pjs_cnt: r + 1, pjs_sum: (r * (r + 1)) / 2 });
        }
      }),
    );
    const maxServers = await sampler.stop();
    expect(failures(settled)).toEqual([]);
    expect(executions, 'queries postgres.js had to run again').toBe(100 * rounds * 6);
    expect(maxServers).toBeGreaterThan(0);
    expect(maxServers).toBeLessThanOrEqual(10);
  });

  it('node-postgres named queries: 100 clients reusing their names, all correct, no error', async () => {
    const clients = await Promise.all(Array.from({ length: 100 }, () => pgc(pooler())));
    const sampler = sampleServers();
    const rounds = 5;
    const settled = await Promise.allSettled(
      clients.map(async (c, i) => {
        for (let r = 0; r < rounds; r++) {
          const k = i * 100 + r;
          // Different client names for one text (shared server-side), and one name per text across clients.
          expect((await c.query({ name: `nq_add_${i % 3}`, text: 'SELECT $1::int + $2::int AS s', values: [k, 7] })).rows).toEqual([{ s: k + 7 }]);
          expect((await c.query({ name: 'nq_cat', text: "SELECT $1::text || '/' || $2::text AS t", values: [`c${i}`, r] })).rows).toEqual([{ t: `c${i}/${r}` }]);
          const n = 1 + ((i + r) % 4);
          expect((await c.query({ name: 'nq_rows', text: 'SELECT g FROM generate_series(1, $1::int) AS g', values: [n] })).rows).toEqual(
            Array.from({ length: n }, (_, j) => ({ g: j + 1 })),
          );
          await c.query('BEGIN');
          await c.query({ name: 'nq_ins', text: 'INSERT INTO prep_pg VALUES ($1, $2)', values: [i, r] });
          expect((await c.query({ name: 'nq_cnt', text: 'SELECT count(*)::int AS n FROM prep_pg WHERE client = $1', values: [i] })).rows).toEqual([{ n: r + 1 }]);
          await c.query('COMMIT');
        }
      }),
    );
    const maxServers = await sampler.stop();
    expect(failures(settled)).toEqual([]);
    expect(maxServers).toBeLessThanOrEqual(10);
  });

  // pgbench prepares each client's statements with blocking PQprepare calls (Parse + Sync) at its first transaction,
  // stalling every other client of that thread. With 25 clients per thread over 10 servers this deadlocks unless
  // pooler answers the Parse of a statement it already knows without taking a server: this test holds it to that.
  it('pgbench -M prepared -c 50 -j 2 -T 20: no failed transaction, never more than 10 server connections', async () => {
    const init = await run('pgbench', ['-i', '-s', '1', '-q', poolerUrl(pooler())]);
    expect(init.code, init.err).toBe(0);
    const sampler = sampleServers();
    const r = await run('pgbench', ['-M', 'prepared', '-c', '50', '-j', '2', '-T', '20', poolerUrl(pooler())], 45_000);
    const maxServers = await sampler.stop();
    expect(r.code, r.err.split('\n').slice(0, 10).join('\n')).toBe(0);
    expect(/number of failed transactions: (\d+)/.exec(r.out)?.[1], r.out).toBe('0');
    expect(Number(/number of transactions actually processed: (\d+)/.exec(r.out)?.[1])).toBeGreaterThan(0);
    expect(maxServers).toBeGreaterThan(0);
    expect(maxServers).toBeLessThanOrEqual(10);
  });
});

describe('transaction mode, max_prepared_statements = 5, pool of 2', () => {
  const pooler = poolerFor({ settings: { default_pool_size: 2, max_prepared_statements: 5, max_client_conn: 500 } });

  it('20 distinct statements over 6 clients: every result correct, never more than 5 prepared on a server', async () => {
    const clients = await Promise.all(Array.from({ length: 6 }, () => pgc(pooler())));
    const seen: number[] = [];
    const countPrepared = async (c: pg.Client) => {
      // No parameters: node-postgres sends a simple Query. Inside a transaction pooler may hold one throwaway
      // `_pooler_probe` statement (closed before the server goes back to the pool): not one of the LRU's.
      seen.push((await c.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name <> '_pooler_probe'")).rows[0].n as number);
    };
    const named = (c: pg.Client, k: number, v: number) => c.query({ name: `lru_${k}`, text: `SELECT $1::int + ${k} AS v`, values: [v] });
    const settled = await Promise.allSettled(
      clients.map(async (c, i) => {
        for (let n = 0; n < 60; n++) {
          const k = (i * 7 + n * 3) % 20;
          const v = i * 1000 + n;
          if (n % 10 === 9) {
            await c.query('BEGIN');
            expect((await named(c, k, v)).rows).toEqual([{ v: v + k }]);
            expect((await named(c, (k + 1) % 20, v)).rows).toEqual([{ v: v + ((k + 1) % 20) }]);
            await countPrepared(c);
            await c.query('COMMIT');
          } else {
            expect((await named(c, k, v)).rows).toEqual([{ v: v + k }]);
          }
          if (n % 5 === 4) await countPrepared(c);
        }
      }),
    );
    expect(failures(settled)).toEqual([]);
    expect(seen.length).toBeGreaterThan(50);
    expect(Math.max(...seen)).toBeGreaterThan(0);
    expect(Math.max(...seen)).toBeLessThanOrEqual(5);
  });
});

describe('transaction mode, pool of 1: raw protocol', () => {
  const pooler = poolerFor({ settings: { default_pool_size: 1, max_client_conn: 500 } });

  it('Parse + Sync gives ParseComplete, ReadyForQuery; later Binds work on a replaced server without an extra ParseComplete', async () => {
    const c = await raw(pooler());
    expectTypes(await c.run(parse('s1', 'SELECT $1::int + 1 AS v'), sync()), ['1', 'Z']);
    let m = await c.run(bind('s1', ['41']), execute(), sync());
    expectTypes(m, ['2', 'D', 'C', 'Z']);
    expect(rowsOf(m)).toEqual([['42']]);

    const pidBefore = await backendPid(c);
    await replaceServers(pooler());
    m = await c.run(bind('s1', ['9']), execute(), sync());
    expectTypes(m, ['2', 'D', 'C', 'Z']);
    expect(rowsOf(m)).toEqual([['10']]);
    expect(statusOf(m)).toBe('I');
    expect(await backendPid(c)).not.toBe(pidBefore);

    // Again on another new server, this time in the middle of a pipeline that also defines a statement.
    await replaceServers(pooler());
    m = await c.run(parse('s2', 'SELECT $1::text AS t'), bind('s2', ['x']), execute(), bind('s1', ['1']), execute(), sync());
    expectTypes(m, ['1', '2', 'D', 'C', '2', 'D', 'C', 'Z']);
    expect(rowsOf(m)).toEqual([['x'], ['2']]);
    // The same statement text under another client name: ParseComplete, whatever the server already has.
    m = await c.run(parse('s1_again', 'SELECT $1::int + 1 AS v'), sync());
    expectTypes(m, ['1', 'Z']);
    expect(rowsOf(await c.run(bind('s1_again', ['5']), execute(), sync()))).toEqual([['6']]);
  });

  it('two clients preparing the same text share one server-side statement, named _pooler_…', async () => {
    const a = await raw(pooler());
    const b = await raw(pooler());
    const text = 'SELECT $1::int * 11 AS shared_v';
    expectTypes(await a.run(parse('mine', text), sync()), ['1', 'Z']);
    expectTypes(await b.run(parse('theirs', text), sync()), ['1', 'Z']);
    expect(rowsOf(await a.run(bind('mine', ['2']), execute(), sync()))).toEqual([['22']]);
    expect(rowsOf(await b.run(bind('theirs', ['3']), execute(), sync()))).toEqual([['33']]);
    const names = rowsOf(await a.simple(`SELECT name FROM pg_prepared_statements WHERE statement = '${text}'`));
    expect(names).toHaveLength(1);
    expect(names[0]![0]).toMatch(/^_pooler_/);
    expect(rowsOf(await a.simple("SELECT count(*) FROM pg_prepared_statements WHERE name IN ('mine', 'theirs')"))).toEqual([['0']]);
  });

  it('a failing Parse in a pipeline: ErrorResponse in its place, the rest skipped up to Sync, the name left undefined', async () => {
    const c = await raw(pooler());
    let m = await c.run(parse('pa', 'SELECT 1 AS one'), bind('pa'), execute(), parse('pb', 'SELEC 2'), bind('pb'), execute(), sync());
    expectTypes(m, ['1', '2', 'D', 'C', 'E', 'Z']);
    expect(theError(m).code).toBe('42601');
    expect(rowsOf(m)).toEqual([['1']]);

    m = await c.run(bind('pb'), execute(), sync());
    expectTypes(m, ['E', 'Z']);
    expect(theError(m)).toEqual({ code: '26000', message: expect.stringContaining('"pb"') });
    m = await c.run(bind('pa'), execute(), sync());
    expectTypes(m, ['2', 'D', 'C', 'Z']);
    // The name is free: it can be defined now.
    m = await c.run(parse('pb', 'SELECT 2 AS two'), bind('pb'), execute(), sync());
    expectTypes(m, ['1', '2', 'D', 'C', 'Z']);
    expect(rowsOf(m)).toEqual([['2']]);
    // A failing Parse first in the pipeline: only the error and ReadyForQuery.
    m = await c.run(parse('pc', 'SELECT FROM WHERE'), bind('pc'), execute(), sync());
    expectTypes(m, ['E', 'Z']);
    expect(theError(m).code).toBe('42601');
    expect(statusOf(m)).toBe('I');
  });

  it("Parse of a name the client already has: 42P05 naming the client's name, also when the server is new", async () => {
    const c = await raw(pooler());
    expectTypes(await c.run(parse('dup', 'SELECT 1 AS v'), sync()), ['1', 'Z']);
    await replaceServers(pooler());
    let m = await c.run(parse('dup', 'SELECT 2 AS v'), sync());
    expectTypes(m, ['E', 'Z']);
    let e = theError(m);
    expect(e.code).toBe('42P05');
    expect(e.message).toContain('"dup"');
    expect(e.message).not.toContain('_pooler_');
    // The same text again is a duplicate too.
    m = await c.run(parse('dup', 'SELECT 1 AS v'), sync());
    expectTypes(m, ['E', 'Z']);
    expect(theError(m).code).toBe('42P05');
    // dup is still the first query.
    expect(rowsOf(await c.run(bind('dup'), execute(), sync()))).toEqual([['1']]);

    // Within one pipeline.
    m = await c.run(parse('dup2', 'SELECT 3 AS v'), bind('dup2'), execute(), parse('dup2', 'SELECT 4 AS v'), bind('dup2'), execute(), sync());
    expectTypes(m, ['1', '2', 'D', 'C', 'E', 'Z']);
    e = theError(m);
    expect(e.code).toBe('42P05');
    expect(e.message).toContain('"dup2"');
    expect(e.message).not.toContain('_pooler_');
    expect(rowsOf(await c.run(bind('dup2'), execute(), sync()))).toEqual([['3']]);
  });

  it('Bind or Describe of an unknown name: 26000 naming it', async () => {
    const c = await raw(pooler());
    let m = await c.run(bind('nope'), execute(), sync());
    expectTypes(m, ['E', 'Z']);
    expect(theError(m)).toEqual({ code: '26000', message: expect.stringContaining('"nope"') });
    m = await c.run(describeMsg('S', 'nope2'), sync());
    expectTypes(m, ['E', 'Z']);
    expect(theError(m)).toEqual({ code: '26000', message: expect.stringContaining('"nope2"') });
    // A Parse before the failing Bind stays defined (prepared statements are not transactional).
    m = await c.run(parse('ok_d', 'SELECT 7 AS v'), bind('nope'), execute(), sync());
    expectTypes(m, ['1', 'E', 'Z']);
    expect(theError(m).code).toBe('26000');
    expect(rowsOf(await c.run(bind('ok_d'), execute(), sync()))).toEqual([['7']]);
  });

  it('Close answers CloseComplete, the name is gone afterwards; Close of a never-defined name is CloseComplete too', async () => {
    const c = await raw(pooler());
    const other = await raw(pooler());
    expectTypes(await c.run(parse('cl', 'SELECT 5 AS v'), sync()), ['1', 'Z']);
    expectTypes(await other.run(parse('other_cl', 'SELECT 5 AS v'), sync()), ['1', 'Z']);
    expect(rowsOf(await c.run(bind('cl'), execute(), sync()))).toEqual([['5']]);

    expectTypes(await c.run(close('S', 'cl'), sync()), ['3', 'Z']);
    let m = await c.run(bind('cl'), execute(), sync());
    expectTypes(m, ['E', 'Z']);
    expect(theError(m).code).toBe('26000');
    expectTypes(await c.run(close('S', 'never_defined'), sync()), ['3', 'Z']);

    // Another client's statement with the same text is unaffected.
    m = await other.run(bind('other_cl'), execute(), sync());
    expectTypes(m, ['2', 'D', 'C', 'Z']);
    expect(rowsOf(m)).toEqual([['5']]);

    // The name can hold another query now.
    m = await c.run(parse('cl', 'SELECT 6 AS v'), bind('cl'), execute(), sync());
    expectTypes(m, ['1', '2', 'D', 'C', 'Z']);
    expect(rowsOf(m)).toEqual([['6']]);
    // Parse, Close, Bind in one pipeline.
    m = await c.run(parse('cl2', 'SELECT 8 AS v'), close('S', 'cl2'), bind('cl2'), execute(), sync());
    expectTypes(m, ['1', '3', 'E', 'Z']);
    expect(theError(m).code).toBe('26000');
  });

  it('Describe of a named statement: ParameterDescription and RowDescription, also from a new server with Flush', async () => {
    const c = await raw(pooler());
    let m = await c.run(parse('ds', 'SELECT $1::int AS a, $2::text AS b'), describeMsg('S', 'ds'), sync());
    expectTypes(m, ['1', 't', 'T', 'Z']);
    expect(paramTypesOf(only(m, 't').body)).toEqual([23, 25]);
    expect(columnsOf(only(m, 'T').body)).toEqual([
      { name: 'a', type: 23 },
      { name: 'b', type: 25 },
    ]);

    await replaceServers(pooler());
    // As postgres.js does: Describe, Flush, and only then the rest.
    c.send(describeMsg('S', 'ds'), flush());
    const got = await c.readUntil('TE');
    expectTypes(got, ['t', 'T']);
    expect(paramTypesOf(only(got, 't').body)).toEqual([23, 25]);
    c.send(bind('ds', ['3', 'x']), describeMsg('P', ''), execute(), sync());
    m = await c.readUntilReady();
    expectTypes(m, ['2', 'T', 'D', 'C', 'Z']);
    expect(rowsOf(m)).toEqual([['3', 'x']]);
  });

  it('a hidden re-prepare that fails: the error in place of BindComplete, then ReadyForQuery; the connection stays usable', async () => {
    await direct('DROP TABLE IF EXISTS prep_tmp_tbl_x; CREATE TABLE prep_tmp_tbl_x AS SELECT 1 AS x');
    const c = await raw(pooler());
    let m = await c.run(parse('tx', 'SELECT * FROM prep_tmp_tbl_x'), bind('tx'), execute(), sync());
    expectTypes(m, ['1', '2', 'D', 'C', 'Z']);
    expect(rowsOf(m)).toEqual([['1']]);

    await direct('DROP TABLE prep_tmp_tbl_x');
    await replaceServers(pooler());
    m = await c.run(bind('tx'), execute(), sync());
    expectTypes(m, ['E', 'Z']);
    expect(theError(m)).toEqual({ code: '42P01', message: expect.stringContaining('prep_tmp_tbl_x') });
    expect(statusOf(m)).toBe('I');

    expect(rowsOf(await c.simple('SELECT 3'))).toEqual([['3']]);
    m = await c.run(parse('tx2', 'SELECT 4'), bind('tx2'), execute(), sync());
    expectTypes(m, ['1', '2', 'D', 'C', 'Z']);
    // tx is still defined: once the table is back it works again, as on PostgreSQL.
    await direct('CREATE TABLE prep_tmp_tbl_x AS SELECT 7 AS x');
    m = await c.run(bind('tx'), execute(), sync());
    expectTypes(m, ['2', 'D', 'C', 'Z']);
    expect(rowsOf(m)).toEqual([['7']]);
  });

  it('two clients using one statement name for different queries each get their own results', async () => {
    const a = await pgc(pooler());
    const b = await pgc(pooler());
    for (let r = 0; r < 15; r++) {
      const [ra, rb] = await Promise.all([
        a.query({ name: 'same', text: 'SELECT $1::int + 100 AS v', values: [r] }),
        b.query({ name: 'same', text: "SELECT $1::text || '-b' AS v", values: [r] }),
      ]);
      expect(ra.rows).toEqual([{ v: r + 100 }]);
      expect(rb.rows).toEqual([{ v: `${r}-b` }]);
    }
  });

  it("DISCARD ALL and DEALLOCATE ALL forget the client's statements (not another client's)", async () => {
    const c = await raw(pooler());
    const other = await raw(pooler());
    expectTypes(await other.run(parse('kept', 'SELECT 8 AS v'), sync()), ['1', 'Z']);
    for (const cmd of ['DISCARD ALL', 'DEALLOCATE ALL']) {
      const name = cmd === 'DISCARD ALL' ? 'd1' : 'd2';
      expectTypes(await c.run(parse(name, 'SELECT 1 AS v'), sync()), ['1', 'Z']);
      expect(rowsOf(await c.run(bind(name), execute(), sync()))).toEqual([['1']]);
      let m = await c.simple(cmd);
      expectTypes(m, ['C', 'Z']);
      expect(commandTag(only(m, 'C').body)).toBe(cmd);

      m = await c.run(bind(name), execute(), sync());
      expectTypes(m, ['E', 'Z'], cmd);
      expect(theError(m).code).toBe('26000');
      m = await c.run(parse(name, 'SELECT 2 AS v'), bind(name), execute(), sync());
      expectTypes(m, ['1', '2', 'D', 'C', 'Z'], cmd);
      expect(rowsOf(m)).toEqual([['2']]);

      m = await other.run(bind('kept'), execute(), sync());
      expectTypes(m, ['2', 'D', 'C', 'Z'], cmd);
      expect(rowsOf(m)).toEqual([['8']]);
    }
  });

  it('a statement prepared right behind DISCARD ALL / DEALLOCATE ALL in one pipeline is prepared again after it', async () => {
    const c = await raw(pooler());
    for (const cmd of ['DISCARD ALL', 'DEALLOCATE ALL']) {
      // The server the client gets holds this text from before; the ALL in front of the Parse drops it.
      expectTypes(await c.run(parse('pre', 'SELECT 31 AS v'), bind('pre'), execute(), sync()), ['1', '2', 'D', 'C', 'Z']);
      expectTypes(await c.run(close('S', 'pre'), sync()), ['3', 'Z']);
      const first = await c.run(Buffer.concat([query(cmd), parse('after', 'SELECT 31 AS v'), bind('after'), execute(), sync()]));
      const m = [...first, ...(await c.readUntilReady())];
      expectTypes(m, ['C', 'Z', '1', '2', 'D', 'C', 'Z'], cmd);
      expect(rowsOf(m)).toEqual([['31']]);
      expectTypes(await c.run(close('S', 'after'), sync()), ['3', 'Z']);
    }
  });
});

describe('transaction mode, pool of 2: SQL-level PREPARE / EXECUTE / DEALLOCATE', () => {
  const pooler = poolerFor({ settings: { default_pool_size: 2, max_client_conn: 500 } });

  it('20 clients each PREPARE q differently, then 20 transactions of EXECUTE q(i) each', async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => pgc(pooler())));
    await Promise.all(clients.map((c, n) => c.query(`PREPARE q(int) AS SELECT $1 * ${n + 1} AS v`)));
    const settled = await Promise.allSettled(
      clients.map(async (c, n) => {
        for (let i = 0; i < 20; i++) {
          if (i % 4 === 3) {
            await c.query('BEGIN');
            expect((await c.query(`EXECUTE q(${i})`)).rows).toEqual([{ v: i * (n + 1) }]);
            expect((await c.query(`EXECUTE q(${i + 1})`)).rows).toEqual([{ v: (i + 1) * (n + 1) }]);
            await c.query('COMMIT');
          } else {
            expect((await c.query(`EXECUTE q(${i})`)).rows).toEqual([{ v: i * (n + 1) }]);
          }
        }
      }),
    );
    expect(failures(settled)).toEqual([]);
  });

  it('duplicate PREPARE is 42P05; EXECUTE after DEALLOCATE, after DEALLOCATE ALL or of a never-prepared name is 26000', async () => {
    const c = await pgc(pooler());
    await c.query('PREPARE dq(int) AS SELECT $1 + 1 AS v');
    await replaceServers(pooler(), 2);
    const dup = await failure(c, 'PREPARE dq(int) AS SELECT $1 + 2 AS v');
    expect(dup.code).toBe('42P05');
    expect(dup.message).toContain('"dq"');
    expect(dup.message).not.toContain('_pooler_');
    expect((await c.query('EXECUTE dq(1)')).rows).toEqual([{ v: 2 }]);

    await c.query('DEALLOCATE dq');
    expect((await failure(c, 'EXECUTE dq(1)')).code).toBe('26000');
    const never = await failure(c, 'EXECUTE never_prepared(1)');
    expect(never.code).toBe('26000');
    expect(never.message).toContain('"never_prepared"');
    expect((await failure(c, 'DEALLOCATE never_prepared')).code).toBe('26000');

    await c.query('PREPARE dq(int) AS SELECT $1 + 3 AS v');
    expect((await c.query('EXECUTE dq(1)')).rows).toEqual([{ v: 4 }]);
    await c.query('PREPARE dq_other AS SELECT 5 AS v');
    await c.query('DEALLOCATE ALL');
    expect((await failure(c, 'EXECUTE dq(1)')).code).toBe('26000');
    expect((await failure(c, 'EXECUTE dq_other')).code).toBe('26000');
    await c.query('PREPARE dq_other AS SELECT 6 AS v');
    expect((await c.query('EXECUTE dq_other')).rows).toEqual([{ v: 6 }]);
  });

  it('one namespace with protocol-level names: a statement PREPAREd in SQL can be bound, and its name is taken for Parse', async () => {
    const c = await raw(pooler());
    let m = await c.simple('PREPARE mixq(int) AS SELECT $1 + 5 AS v');
    expectTypes(m, ['C', 'Z']);
    await replaceServers(pooler(), 2);
    m = await c.run(bind('mixq', ['1']), execute(), sync());
    expectTypes(m, ['2', 'D', 'C', 'Z']);
    expect(rowsOf(m)).toEqual([['6']]);
    m = await c.run(parse('mixq', 'SELECT 1'), sync());
    expectTypes(m, ['E', 'Z']);
    expect(theError(m).code).toBe('42P05');
    // Close works on it too.
    expectTypes(await c.run(close('S', 'mixq'), sync()), ['3', 'Z']);
    expect(theError(await c.simple('EXECUTE mixq(1)')).code).toBe('26000');
  });

  it('one namespace with protocol-level names: a statement Parsed via the protocol can be EXECUTEd and DEALLOCATEd in SQL', async () => {
    const c = await raw(pooler());
    expectTypes(await c.run(parse('protoq', 'SELECT $1::int * 3 AS v'), sync()), ['1', 'Z']);
    await replaceServers(pooler(), 2);
    const ex = await c.simple('EXECUTE protoq(4)');
    expectTypes(ex, ['T', 'D', 'C', 'Z']);
    expect(rowsOf(ex)).toEqual([['12']]);
    const m = await c.simple('PREPARE protoq AS SELECT 1');
    expectTypes(m, ['E', 'Z']);
    expect(theError(m).code).toBe('42P05');
    expectTypes(await c.simple('DEALLOCATE protoq'), ['C', 'Z']);
    const after = await c.run(bind('protoq', ['1']), execute(), sync());
    expectTypes(after, ['E', 'Z']);
    expect(theError(after).code).toBe('26000');
  });
});

describe('session mode', () => {
  const pooler = poolerFor({ settings: { default_pool_size: 10, max_client_conn: 500 }, appExtra: 'pool_mode=session' });

  it("the server sees the client's own statement names", async () => {
    const c = await pgc(pooler());
    expect((await c.query({ name: 'sess_q', text: 'SELECT $1::int AS v', values: [1] })).rows).toEqual([{ v: 1 }]);
    await c.query('PREPARE sess_sql AS SELECT 2');
    expect((await c.query('SELECT name FROM pg_prepared_statements ORDER BY name')).rows).toEqual([{ name: 'sess_q' }, { name: 'sess_sql' }]);
  });
});

describe('statement mode, pool of 2', () => {
  const pooler = poolerFor({ settings: { default_pool_size: 2, max_client_conn: 500 }, appExtra: 'pool_mode=statement' });

  it('node-postgres named queries from 20 clients: all correct, no error', async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => pgc(pooler())));
    const settled = await Promise.allSettled(
      clients.map(async (c, i) => {
        for (let r = 0; r < 10; r++) {
          expect((await c.query({ name: 'st_add', text: 'SELECT $1::int + $2::int AS s', values: [i, r] })).rows).toEqual([{ s: i + r }]);
          expect((await c.query({ name: `st_txt_${i % 2}`, text: "SELECT $1::text || '!' AS t", values: [`c${i}r${r}`] })).rows).toEqual([{ t: `c${i}r${r}!` }]);
        }
      }),
    );
    expect(failures(settled)).toEqual([]);
  });
});

describe('transaction mode, max_prepared_statements = 0, pool of 1', () => {
  const pooler = poolerFor({ settings: { default_pool_size: 1, max_prepared_statements: 0, max_client_conn: 500 } });

  it("passes statements through: the server sees the client's own name", async () => {
    const c = await pgc(pooler());
    expect((await c.query({ name: 'own_name', text: 'SELECT $1::int AS v', values: [3] })).rows).toEqual([{ v: 3 }]);
    const names = (await c.query('SELECT name FROM pg_prepared_statements')).rows.map((r) => r.name as string);
    expect(names).toContain('own_name');
    expect(names.filter((n) => n.startsWith('_pooler_'))).toEqual([]);
  });
});
