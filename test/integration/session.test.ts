// Session state in transaction pooling: SET/RESET/set_config and startup parameters follow the client from server to
// server and never leak to another client; ParameterStatus carries only the client's own values; session-only
// features (LISTEN, session advisory locks, temp tables, WITH HOLD cursors, LOAD) pin the client to its server or are
// refused, per `session_features`.

import type net from 'node:net';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  pgClient, poll, serverConnections, startCluster, startPoolerFor, type Cluster, type PoolerProcess, type PoolerSetup,
  watchParameterStatus,
  postgresClient,
} from './harness.ts';

type Sql = ReturnType<typeof postgres>;
type PgError = Error & { code?: string };

const PIN_MSG = 'client pinned to its server';

let cluster: Cluster;
const poolers: PoolerProcess[] = [];
const pgOpen = new Set<pg.Client>();
const jsOpen = new Set<Sql>();

beforeAll(async () => {
  cluster = await startCluster({ replicas: 0 });
});
afterEach(async () => {
  await Promise.all([...pgOpen].map((c) => c.end().catch(() => {})));
  await Promise.all([...jsOpen].map((s) => s.end({ timeout: 5 }).catch(() => {})));
  pgOpen.clear();
  jsOpen.clear();
});
afterAll(async () => {
  await Promise.all(poolers.map((p) => p.stop()));
  await cluster?.destroy();
});

/** A pooler in front of the cluster (transaction mode, max_client_conn 500 unless `setup` says otherwise), stopped in afterAll. */
async function startFor(setup: PoolerSetup): Promise<PoolerProcess> {
  const p = await startPoolerFor(cluster, { ...setup, settings: { max_client_conn: 500, ...setup.settings } });
  poolers.push(p);
  return p;
}

/** A connected node-postgres client through pooler, closed after the test. */
async function pgc(p: PoolerProcess, opts: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const c = pgClient(p, opts);
  pgOpen.add(c);
  await c.connect();
  return c;
}

/** A postgres.js instance through pooler (prepare: false, one connection), closed after the test. */
function pjs(p: PoolerProcess, opts: postgres.Options<{}> = {}): Sql {
  const sql = postgresClient(p, { prepare: false, ...opts });
  jsOpen.add(sql);
  return sql;
}

/** Ends a client now (and forgets it, so afterEach does not end it twice). */
async function endClient(c: pg.Client): Promise<void> {
  pgOpen.delete(c);
  await c.end();
}

/** The error a promise rejects with (fails the test if it resolves). */
async function failure(q: Promise<unknown>): Promise<PgError> {
  try {
    await q;
  } catch (e) {
    return e as PgError;
  }
  throw new Error('expected the query to fail');
}

function quote(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/** A value as a fresh direct connection to PostgreSQL sees it (the fixture's connection: not for application_name). */
async function directSetting(name: string): Promise<string> {
  const rows = await cluster.query(cluster.primary, 'SELECT current_setting($1) AS v', [name]);
  return rows[0].v as string;
}

async function pidOf(c: pg.Client): Promise<number> {
  return (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
}

/**
 * `name` as the client sees it, read `n` times, alternating an autocommit statement and an explicit transaction
 * (SHOW for built-in settings, current_setting(name, true) for custom ones, which SHOW refuses where they are unset).
 */
async function across(c: pg.Client, name: string, n = 4): Promise<(string | null)[]> {
  const custom = name.includes('.');
  const values: (string | null)[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) {
      values.push((await c.query(`SELECT current_setting(${quote(name)}, true) AS v`)).rows[0].v);
    } else {
      await c.query('BEGIN');
      const r = await c.query(custom ? `SELECT current_setting(${quote(name)}, true) AS v` : `SHOW ${name}`);
      values.push(Object.values(r.rows[0] as Record<string, string | null>)[0]!);
      await c.query('COMMIT');
    }
  }
  return values;
}

/** n × value, for comparing with across(). */
function times<T>(value: T, n = 4): T[] {
  return Array.from({ length: n }, () => value);
}

interface Churn {
  /** Stops the loops; rejects with the first error one of them hit. Resolves the number of transactions run. */
  stop(): Promise<number>;
}

/** n extra clients running short transactions (autocommit and BEGIN/COMMIT) back to back, so servers change hands. */
async function churn(p: PoolerProcess, n: number, setup?: (c: pg.Client, k: number) => Promise<unknown>): Promise<Churn> {
  const clients = await Promise.all(Array.from({ length: n }, () => pgc(p)));
  if (setup) await Promise.all(clients.map(setup));
  let running = true;
  let done = 0;
  const errors: unknown[] = [];
  const loops = clients.map(async (c, k) => {
    try {
      for (let i = k; running; i++) {
        if (i % 2 === 0) await c.query('SELECT pg_sleep(0.001)');
        else {
          await c.query('BEGIN');
          await c.query('SELECT pg_sleep(0.001)');
          await c.query('COMMIT');
        }
        done++;
      }
    } catch (e) {
      errors.push(e);
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      if (errors.length > 0) throw errors[0];
      return done;
    },
  };
}

/** Every log line pooler wrote so far, parsed (non-JSON lines are dropped). */
function logLines(p: PoolerProcess): any[] {
  return p
    .logs()
    .split('\n')
    .flatMap((l) => {
      try {
        return [JSON.parse(l)];
      } catch {
        return [];
      }
    });
}

function pinLines(p: PoolerProcess): any[] {
  return logLines(p).filter((l) => l.msg === PIN_MSG);
}

/** Predicate for waitForLog: the info-level pin line whose `feature` matches. */
function pinLine(feature: RegExp): (l: any) => boolean {
  return (l) => l.msg === PIN_MSG && l.level === 30 && feature.test(String(l.feature));
}

function localPort(c: pg.Client): number {
  return (c as unknown as { connection: { stream: net.Socket } }).connection.stream.localPort!;
}

/**
 * Ends a client and waits for pooler's log line about its disconnection. pino writes synchronously, so every line
 * pooler logged about what the client did before it left is in the log by then.
 */
async function endAndWaitForClose(p: PoolerProcess, c: pg.Client): Promise<void> {
  const remote = `127.0.0.1:${localPort(c)}`;
  await endClient(c);
  await p.waitForLog((l) => l.remote === remote && typeof l.msg === 'string' && l.msg.startsWith('closing because'));
}


// ---- A. session parameters -------------------------------------------------------------------------------

describe('session parameters never leak between clients (transaction mode, pool size 10)', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await startFor({ settings: { default_pool_size: 10 } });
  });

  it('100 clients with their own search_path, application_name and TimeZone read only their own values, while 10 others SET LOCAL "evil" values', async () => {
    const zones = ['Europe/Paris', 'America/New_York', 'Asia/Tokyo', 'Australia/Sydney', 'America/Sao_Paulo', 'Africa/Nairobi'];
    const read =
      "SELECT current_setting('search_path') AS sp, current_setting('application_name') AS app, current_setting('TimeZone') AS tz, pg_backend_pid() AS pid";
    const clients = await Promise.all(Array.from({ length: 100 }, () => pgc(p)));
    const evil = await Promise.all(Array.from({ length: 10 }, () => pgc(p)));
    await Promise.all(
      clients.map(async (c, i) => {
        await c.query(`SET search_path = s_${i}, public`);
        await c.query(`SET application_name = 'app_${i}'`);
        await c.query(`SET TimeZone = '${zones[i % zones.length]}'`);
      }),
    );

    let sampling = true;
    let maxServers = 0;
    const sampler = (async () => {
      while (sampling) {
        maxServers = Math.max(maxServers, await serverConnections(cluster));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    let running = true;
    let evilTx = 0;
    const evilErrors: unknown[] = [];
    const evilLoops = evil.map(async (c) => {
      try {
        while (running) {
          await c.query('BEGIN');
          await c.query('SET LOCAL search_path = evil');
          await c.query("SET LOCAL application_name = 'evil'");
          await c.query("SET LOCAL TimeZone = 'Asia/Kathmandu'");
          await c.query('SELECT 1');
          await c.query('COMMIT');
          evilTx++;
        }
      } catch (e) {
        evilErrors.push(e);
      }
    });

    const wrong: string[] = [];
    let sawEvil = 0;
    let reads = 0;
    const pids = new Set<number>();
    try {
      await Promise.all(
        clients.map(async (c, i) => {
          const want = { sp: `s_${i}, public`, app: `app_${i}`, tz: zones[i % zones.length] };
          for (let round = 0; round < 30; round++) {
            let row: { sp: string; app: string; tz: string; pid: number };
            if (round % 2 === 0) row = (await c.query(read)).rows[0];
            else {
              await c.query('BEGIN');
              row = (await c.query(read)).rows[0];
              await c.query('COMMIT');
            }
            reads++;
            pids.add(row.pid);
            if (row.sp.includes('evil') || row.app === 'evil' || row.tz === 'Asia/Kathmandu') sawEvil++;
            if (row.sp !== want.sp || row.app !== want.app || row.tz !== want.tz) {
              wrong.push(`client ${i} round ${round}: ${JSON.stringify({ sp: row.sp, app: row.app, tz: row.tz })}, want ${JSON.stringify(want)}`);
            }
          }
        }),
      );
    } finally {
      running = false;
      sampling = false;
      await Promise.all(evilLoops);
      await sampler;
    }
    expect(evilErrors).toEqual([]);
    expect(sawEvil, 'reads that saw an "evil" SET LOCAL value of another client').toBe(0);
    expect(wrong.slice(0, 10), `${wrong.length} of ${reads} reads returned another client's values`).toEqual([]);
    expect(reads).toBe(3000);
    expect(evilTx).toBeGreaterThan(0);
    // 100 clients really shared at most 10 servers.
    expect(pids.size).toBeGreaterThan(1);
    expect(pids.size).toBeLessThanOrEqual(10);
    expect(maxServers).toBeGreaterThan(0);
    expect(maxServers).toBeLessThanOrEqual(10);
  });
});

describe('session parameters follow the client from server to server (transaction mode, pool size 2)', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await startFor({ settings: { default_pool_size: 2 } });
  });

  const cases: { name: string; set: string; value: string }[] = [
    { name: 'search_path', set: 'SET search_path = sp_a, public', value: 'sp_a, public' },
    { name: 'application_name', set: "SET application_name = 'app-a'", value: 'app-a' },
    { name: 'TimeZone', set: "SET TimeZone = 'Pacific/Auckland'", value: 'Pacific/Auckland' },
    { name: 'DateStyle', set: "SET DateStyle = 'SQL, DMY'", value: 'SQL, DMY' },
    { name: 'IntervalStyle', set: 'SET IntervalStyle = iso_8601', value: 'iso_8601' },
    // node-postgres decodes as UTF-8 whatever the server says; the reads below are ASCII, the same in LATIN1.
    { name: 'client_encoding', set: "SET client_encoding = 'LATIN1'", value: 'LATIN1' },
    { name: 'statement_timeout', set: "SET statement_timeout = '12s'", value: '12s' },
    { name: 'lock_timeout', set: "SET lock_timeout = '7s'", value: '7s' },
    { name: 'default_transaction_isolation', set: "SET default_transaction_isolation = 'serializable'", value: 'serializable' },
    { name: 'default_transaction_read_only', set: 'SET default_transaction_read_only = on', value: 'on' },
    { name: 'myapp.tenant', set: "SET myapp.tenant = 'tenant-a'", value: 'tenant-a' },
  ];

  for (const k of cases) {
    it(`${k.name}: the client that SET it keeps ${k.value}, a client that did not sees the default`, async () => {
      const custom = k.name.includes('.');
      // A custom setting is unset (NULL) on a fresh server, '' where a RESET left its placeholder behind.
      const defaults: (string | null)[] = k.name === 'application_name' ? [''] : custom ? [null, ''] : [await directSetting(k.name)];
      expect(defaults).not.toContain(k.value);

      const a = await pgc(p);
      const b = await pgc(p);
      const others = await Promise.all(Array.from({ length: 3 }, () => pgc(p)));
      await a.query(k.set);

      const pidsA = new Set<number>();
      const pidsB = new Set<number>();
      /** The value and the server pid, read in one transaction (autocommit or explicit; SHOW for built-in settings). */
      const read = async (c: pg.Client, tx: boolean, pids: Set<number>): Promise<string | null> => {
        let v: string | null;
        if (!tx) {
          const r = await c.query(`SELECT current_setting(${quote(k.name)}, true) AS v, pg_backend_pid() AS pid`);
          v = r.rows[0].v;
          pids.add(r.rows[0].pid);
        } else {
          await c.query('BEGIN');
          const r = await c.query(custom ? `SELECT current_setting(${quote(k.name)}, true) AS v` : `SHOW ${k.name}`);
          v = Object.values(r.rows[0] as Record<string, string | null>)[0]!;
          pids.add(await pidOf(c));
          await c.query('COMMIT');
        }
        return v;
      };
      const seenA: (string | null)[] = [];
      const seenB: (string | null)[] = [];
      for (let round = 0; round < 6; round++) {
        const tx = round % 2 === 1;
        // A, B, B, A one after another: whatever order the pool hands out its two servers in, B runs on the one A just used.
        seenA.push(await read(a, tx, pidsA));
        seenB.push(await read(b, tx, pidsB));
        seenB.push(await read(b, !tx, pidsB));
        seenA.push(await read(a, !tx, pidsA));
        // Then all at once with the other clients.
        const [va, vb] = await Promise.all([
          read(a, tx, pidsA),
          read(b, !tx, pidsB),
          ...others.map(async (o, j) => {
            if ((round + j) % 2 === 0) await o.query('SELECT pg_sleep(0.001)');
            else {
              await o.query('BEGIN');
              await o.query('SELECT pg_sleep(0.001)');
              await o.query('COMMIT');
            }
            return null;
          }),
        ]);
        seenA.push(va!);
        seenB.push(vb!);
      }
      expect(seenA).toEqual(times(k.value, seenA.length));
      for (const v of seenB) expect(defaults).toContain(v);
      // The two clients did use the same servers, so the value really had to be carried over and taken back.
      expect([...pidsA].some((pid) => pidsB.has(pid))).toBe(true);
    });
  }

  it('statement_timeout set by one client is enforced on its later transactions and never on another client', async () => {
    const a = await pgc(p);
    const b = await pgc(p);
    const ch = await churn(p, 2);
    try {
      await a.query("SET statement_timeout = '100ms'");
      const bSleeps = () => b.query('SELECT pg_sleep(0.25) AS slept');
      for (let round = 0; round < 2; round++) {
        expect((await failure(a.query('SELECT pg_sleep(1)'))).code).toBe('57014');
        await bSleeps();
        await bSleeps();
        await a.query('BEGIN');
        expect((await failure(a.query('SELECT pg_sleep(1)'))).code).toBe('57014');
        await a.query('ROLLBACK');
        const [ea] = await Promise.all([failure(a.query('SELECT pg_sleep(1)')), bSleeps()]);
        expect(ea.code).toBe('57014');
      }
      expect((await b.query('SHOW statement_timeout')).rows).toEqual([{ statement_timeout: await directSetting('statement_timeout') }]);
    } finally {
      await ch.stop();
    }
  });

  it('set_config with the setting name as a parameter pins the client, so even a custom setting stays with it', async () => {
    const a = await pgc(p);
    const ch = await churn(p, 2);
    try {
      await a.query('SELECT set_config($1, $2, false)', ['myapp.by_param', 'param-v']);
      await p.waitForLog(pinLine(/not a literal/), 5000);
      expect(await across(a, 'myapp.by_param')).toEqual(times('param-v'));
    } finally {
      await ch.stop();
    }
  });

  it('a named statement calling set_config changes settings on every execution, not only when it was prepared', async () => {
    const a = await pgc(p);
    const ch = await churn(p, 2);
    try {
      const setSp = (v: string) => a.query({ name: 'set-sp', text: 'SELECT set_config($1, $2, false)', values: ['search_path', v] });
      await setSp('named_one');
      expect(await across(a, 'search_path')).toEqual(times('named_one'));
      // Executed again by name: node-postgres sends no Parse this time.
      await setSp('named_two');
      expect(await across(a, 'search_path')).toEqual(times('named_two'));
    } finally {
      await ch.stop();
    }
  });

  it('keeps SET from a committed transaction and set_config(..., false); drops SET rolled back, SET LOCAL and set_config(..., true)', async () => {
    const a = await pgc(p);
    const ch = await churn(p, 2);
    try {
      await a.query('SET search_path = base_sp, public');
      await a.query("SET application_name = 'base-app'");
      expect(await across(a, 'search_path')).toEqual(times('base_sp, public'));

      // SET inside a transaction that is rolled back: not kept.
      await a.query('BEGIN');
      await a.query('SET search_path = rolled_back');
      await a.query("SET application_name = 'rolled-back'");
      expect(await pidOf(a)).toBeGreaterThan(0);
      await a.query('ROLLBACK');
      expect(await across(a, 'search_path')).toEqual(times('base_sp, public'));
      expect(await across(a, 'application_name')).toEqual(times('base-app'));

      // ... also when the transaction failed before the ROLLBACK.
      await a.query('BEGIN');
      await a.query('SET search_path = failed_tx');
      expect((await failure(a.query('SELECT 1/0'))).code).toBe('22012');
      await a.query('ROLLBACK');
      expect(await across(a, 'search_path')).toEqual(times('base_sp, public'));

      // ... and a SET in a savepoint rolled back to, inside a committed transaction.
      await a.query('BEGIN');
      await a.query('SET search_path = before_sp, public');
      await a.query('SAVEPOINT s1');
      await a.query('SET search_path = inside_savepoint');
      await a.query('ROLLBACK TO SAVEPOINT s1');
      await a.query('COMMIT');
      expect(await across(a, 'search_path')).toEqual(times('before_sp, public'));

      // SET inside a committed transaction: kept.
      await a.query('BEGIN');
      await a.query('SET search_path = committed_sp, public');
      await a.query('SET myapp.x = committed');
      await a.query('COMMIT');
      expect(await across(a, 'search_path')).toEqual(times('committed_sp, public'));
      expect(await across(a, 'myapp.x')).toEqual(times('committed'));

      // SET LOCAL: visible inside its transaction only.
      await a.query('BEGIN');
      await a.query('SET LOCAL search_path = local_sp');
      await a.query("SET LOCAL application_name = 'local-app'");
      expect((await a.query('SHOW search_path')).rows).toEqual([{ search_path: 'local_sp' }]);
      await a.query('COMMIT');
      expect(await across(a, 'search_path')).toEqual(times('committed_sp, public'));
      expect(await across(a, 'application_name')).toEqual(times('base-app'));

      // set_config(..., false) is a SET; set_config(..., true) a SET LOCAL, in an implicit or explicit transaction.
      await a.query("SELECT set_config('search_path', 'cfg_sp, public', false)");
      await a.query("SELECT set_config('myapp.x', 'cfg', false)");
      expect(await across(a, 'search_path')).toEqual(times('cfg_sp, public'));
      expect(await across(a, 'myapp.x')).toEqual(times('cfg'));
      await a.query("SELECT set_config('search_path', 'cfg_local', true)");
      await a.query("SELECT set_config('myapp.x', 'cfg-local', true)");
      await a.query('BEGIN');
      await a.query("SELECT set_config('search_path', 'cfg_tx_local', true)");
      expect((await a.query("SELECT current_setting('search_path') AS v")).rows).toEqual([{ v: 'cfg_tx_local' }]);
      await a.query('COMMIT');
      expect(await across(a, 'search_path')).toEqual(times('cfg_sp, public'));
      expect(await across(a, 'myapp.x')).toEqual(times('cfg'));
      // A parameterized set_config (extended protocol) counts the same.
      await a.query('SELECT set_config($1, $2, false)', ['search_path', 'param_sp, public']);
      expect(await across(a, 'search_path')).toEqual(times('param_sp, public'));
    } finally {
      await ch.stop();
    }
  });

  it("RESET returns a setting to a fresh connection's value; RESET ALL returns all of them, outside or inside a committed transaction", async () => {
    const a = await pgc(p);
    const ch = await churn(p, 2, (c, k) => c.query(`SET search_path = churn_${k}; SET application_name = 'churn-${k}'; SET statement_timeout = '${k + 3}s'`));
    const defaultTimeout = await directSetting('statement_timeout');
    try {
      await a.query('SET search_path = r_sp');
      await a.query("SET application_name = 'r-app'");
      await a.query("SET statement_timeout = '5s'");
      expect(await across(a, 'search_path')).toEqual(times('r_sp'));

      await a.query('RESET search_path');
      expect(await across(a, 'search_path')).toEqual(times('"$user", public'));
      expect(await across(a, 'application_name')).toEqual(times('r-app'));
      expect(await across(a, 'statement_timeout')).toEqual(times('5s'));

      await a.query('SET search_path = r_sp2');
      await a.query('BEGIN');
      await a.query('RESET search_path');
      await a.query('COMMIT');
      expect(await across(a, 'search_path')).toEqual(times('"$user", public'));

      // RESET ALL in a rolled-back transaction changes nothing.
      await a.query('SET search_path = r_sp3');
      await a.query('BEGIN');
      await a.query('RESET ALL');
      await a.query('ROLLBACK');
      expect(await across(a, 'search_path')).toEqual(times('r_sp3'));
      expect(await across(a, 'application_name')).toEqual(times('r-app'));

      await a.query('RESET ALL');
      expect(await across(a, 'application_name')).toEqual(times(''));
      expect(await across(a, 'statement_timeout')).toEqual(times(defaultTimeout));
      expect(await across(a, 'search_path')).toEqual(times('"$user", public'));

      await a.query("SET application_name = 'r-app2'");
      await a.query("SET statement_timeout = '6s'");
      await a.query('BEGIN');
      await a.query('RESET ALL');
      await a.query('COMMIT');
      expect(await across(a, 'application_name')).toEqual(times(''));
      expect(await across(a, 'statement_timeout')).toEqual(times(defaultTimeout));
    } finally {
      await ch.stop();
    }
  });

  it('startup parameters (postgres.js connection, node-postgres options=-c) stay with the client, and are what RESET returns to', async () => {
    const js = pjs(p, { connection: { search_path: 'a_x, public', application_name: 'pjs' } });
    const opt = await pgc(p, { options: '-c statement_timeout=1234 -c search_path=b_y' });
    const ch = await churn(p, 2, (c, k) => c.query(`SET search_path = churn_${k}; SET application_name = 'churn-${k}'; SET statement_timeout = '${k + 3}s'`));
    try {
      const readJs = async (round: number) => {
        const q = "SELECT current_setting('search_path') AS sp, current_setting('application_name') AS app";
        return round % 2 === 0 ? (await js.unsafe(q))[0] : (await js.begin((tx) => tx.unsafe(q)))[0];
      };
      for (let round = 0; round < 8; round++) {
        const [jr, st, sp] = await Promise.all([
          readJs(round),
          opt.query('SHOW statement_timeout'),
          opt.query("SELECT current_setting('search_path') AS sp"),
        ]);
        expect(jr).toEqual({ sp: 'a_x, public', app: 'pjs' });
        expect(st.rows).toEqual([{ statement_timeout: '1234ms' }]);
        expect(sp.rows).toEqual([{ sp: 'b_y' }]);
      }
      // PostgreSQL's reset value of a setting given at startup is the startup value.
      await opt.query("SET statement_timeout = '5s'");
      await opt.query('SET search_path = other_sp');
      expect(await across(opt, 'statement_timeout')).toEqual(times('5s'));
      await opt.query('RESET statement_timeout');
      expect(await across(opt, 'statement_timeout')).toEqual(times('1234ms'));
      expect(await across(opt, 'search_path')).toEqual(times('other_sp'));
      await opt.query('RESET ALL');
      expect(await across(opt, 'search_path')).toEqual(times('b_y'));
      expect(await across(opt, 'statement_timeout')).toEqual(times('1234ms'));

      await js`SET application_name = 'pjs-changed'`;
      await js`SET search_path = js_other`;
      expect(await readJs(1)).toEqual({ sp: 'js_other', app: 'pjs-changed' });
      await js`RESET ALL`;
      for (let round = 0; round < 4; round++) expect(await readJs(round)).toEqual({ sp: 'a_x, public', app: 'pjs' });
    } finally {
      await ch.stop();
    }
  });

  it("ParameterStatus: a client's SET is reported to it, and no client is ever sent another client's value", async () => {
    const defaultTz = await directSetting('TimeZone');
    const defaultDateStyle = await directSetting('DateStyle');
    const othersApp = (k: number) => `ps-other-${k}`;
    const othersTz = (k: number) => `Etc/GMT-${k + 1}`;
    const foreign = new Set<string>([...Array.from({ length: 4 }, (_, k) => othersApp(k)), ...Array.from({ length: 4 }, (_, k) => othersTz(k)), 'SQL, DMY']);

    const mine = pgClient(p);
    pgOpen.add(mine);
    const seenPg = watchParameterStatus(mine);
    await mine.connect();
    const seenJs: [string, string][] = [];
    const js = pjs(p, { connection: { application_name: 'pjs-watch' }, onparameter: (key, value) => seenJs.push([key, String(value)]) });
    await js`SELECT 1`;

    const others = await Promise.all(Array.from({ length: 4 }, () => pgc(p)));
    await Promise.all(
      others.map(async (o, k) => {
        await o.query(`SET application_name = '${othersApp(k)}'`);
        await o.query(`SET TimeZone = '${othersTz(k)}'`);
        await o.query("SET DateStyle = 'SQL, DMY'");
      }),
    );

    seenPg.length = 0;
    await mine.query("SET application_name = 'ps-mine'");
    expect(seenPg).toContainEqual({ parameterName: 'application_name', parameterValue: 'ps-mine' });

    for (let round = 0; round < 10; round++) {
      // mine, then js, then js: js runs on a server mine just used, whatever order the pool hands them out in.
      await mine.query('SELECT 1');
      await js`SELECT 1`;
      await js.begin((tx) => tx`SELECT 1`);
      await Promise.all([
        round % 2 === 0 ? mine.query('SELECT pg_sleep(0.001)') : mine.query('BEGIN').then(() => mine.query('SELECT 1')).then(() => mine.query('COMMIT')),
        js`SELECT pg_sleep(0.001)`,
        ...others.map((o, k) =>
          (round + k) % 2 === 0 ? o.query('SELECT pg_sleep(0.001)') : o.query('BEGIN').then(() => o.query('SELECT 1')).then(() => o.query('COMMIT')),
        ),
      ]);
    }

    const foreignPg = seenPg.filter((m) => foreign.has(m.parameterValue));
    expect(foreignPg, 'ParameterStatus messages node-postgres got with another client\'s value').toEqual([]);
    expect(seenPg.filter((m) => m.parameterName === 'application_name').map((m) => m.parameterValue)).toEqual(
      expect.arrayContaining(['ps-mine']),
    );
    for (const m of seenPg) {
      if (m.parameterName === 'application_name') expect(m.parameterValue).toBe('ps-mine');
      if (m.parameterName === 'TimeZone') expect(m.parameterValue).toBe(defaultTz);
      if (m.parameterName === 'DateStyle') expect(m.parameterValue).toBe(defaultDateStyle);
    }
    const foreignJs = seenJs.filter(([, v]) => foreign.has(v));
    expect(foreignJs, "ParameterStatus messages postgres.js got with another client's value").toEqual([]);
    expect(js.parameters.application_name).toBe('pjs-watch');
    expect(js.parameters.TimeZone).toBe(defaultTz);
    expect(js.parameters.DateStyle).toBe(defaultDateStyle);
  });
});

// ---- B. session-only features in transaction mode ------------------------------------------------------------

describe('session_features = pin (the default): a client using a session-only feature keeps its server (pool size 10)', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await startFor({ settings: { default_pool_size: 10 } });
  });

  it('LISTEN: the listener stays on its server and receives every notification', async () => {
    const listener = await pgc(p);
    const got: pg.Notification[] = [];
    listener.on('notification', (n) => got.push(n));
    await listener.query('LISTEN pin_chan');
    const pid0 = await pidOf(listener);
    const line = await p.waitForLog(pinLine(/LISTEN/i));
    expect(line.feature).toMatch(/LISTEN/i);

    const ch = await churn(p, 4);
    try {
      const notifier = await pgc(p);
      for (let k = 0; k < 5; k++) {
        if (k % 2 === 0) await notifier.query(`NOTIFY pin_chan, 'm${k}'`);
        else {
          await notifier.query('BEGIN');
          await notifier.query(`SELECT pg_notify('pin_chan', 'm${k}')`);
          await notifier.query('COMMIT');
        }
        expect(await pidOf(listener)).toBe(pid0);
        await listener.query('BEGIN');
        expect(await pidOf(listener)).toBe(pid0);
        await listener.query('COMMIT');
      }
      await poll(() => got.length >= 5, 'the listener to receive 5 notifications');
      expect(got.map((n) => [n.channel, n.payload])).toEqual([0, 1, 2, 3, 4].map((k) => ['pin_chan', `m${k}`]));
      expect(await pidOf(listener)).toBe(pid0);
    } finally {
      await ch.stop();
    }
  });

  it('session advisory locks (pg_advisory_lock, pg_try_advisory_lock, *_shared) pin: the lock is held by the client\'s server in every later transaction', async () => {
    const fns = ['pg_advisory_lock', 'pg_try_advisory_lock', 'pg_advisory_lock_shared', 'pg_try_advisory_lock_shared'];
    const key = (i: number) => 801 + i;
    const cs = await Promise.all(fns.map(() => pgc(p)));
    await Promise.all(cs.map((c, i) => c.query(`SELECT ${fns[i]}(${key(i)})`)));
    await p.waitForLog(pinLine(/advisory/i));
    const ch = await churn(p, 4);
    try {
      const held = `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND pid = pg_backend_pid() AND granted`;
      for (let round = 0; round < 4; round++) {
        await Promise.all(
          cs.map(async (c, i) => {
            if (round % 2 === 0) expect((await c.query(held, [key(i)])).rows, fns[i]).toEqual([{ n: 1 }]);
            else {
              await c.query('BEGIN');
              expect((await c.query(held, [key(i)])).rows, fns[i]).toEqual([{ n: 1 }]);
              await c.query('COMMIT');
            }
          }),
        );
      }
    } finally {
      await ch.stop();
    }
    await Promise.all(cs.map((c) => endClient(c)));
    await poll(
      async () => (await cluster.query(cluster.primary, "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid BETWEEN 801 AND 804"))[0].n === 0,
      'the advisory locks to be released once their clients left',
    );
  });

  it('CREATE TEMP TABLE, DECLARE ... WITH HOLD and LOAD pin the client and keep working across transactions', async () => {
    const ch = await churn(p, 4);
    try {
      const t = await pgc(p);
      await t.query('CREATE TEMP TABLE pin_tmp (x int)');
      await t.query('BEGIN');
      await t.query('INSERT INTO pin_tmp VALUES (1), (2)');
      await t.query('COMMIT');
      for (let round = 0; round < 4; round++) {
        expect((await t.query('SELECT sum(x)::int AS s FROM pin_tmp')).rows).toEqual([{ s: 3 }]);
      }
      await t.query('BEGIN');
      await t.query('INSERT INTO pin_tmp VALUES (3)');
      expect((await t.query('SELECT sum(x)::int AS s FROM pin_tmp')).rows).toEqual([{ s: 6 }]);
      await t.query('COMMIT');
      await p.waitForLog(pinLine(/TEMP/i));

      const h = await pgc(p);
      await h.query('BEGIN');
      await h.query('DECLARE pin_cur CURSOR WITH HOLD FOR SELECT generate_series(1, 10) AS g');
      await h.query('COMMIT');
      expect((await h.query('FETCH 3 FROM pin_cur')).rows).toEqual([{ g: 1 }, { g: 2 }, { g: 3 }]);
      await h.query('SELECT 1');
      await h.query('BEGIN');
      expect((await h.query('FETCH 3 FROM pin_cur')).rows).toEqual([{ g: 4 }, { g: 5 }, { g: 6 }]);
      await h.query('COMMIT');
      expect((await h.query('FETCH 3 FROM pin_cur')).rows).toEqual([{ g: 7 }, { g: 8 }, { g: 9 }]);
      await h.query('CLOSE pin_cur');
      await p.waitForLog(pinLine(/HOLD/i));

      const l = await pgc(p);
      await l.query("LOAD 'auto_explain'");
      await p.waitForLog(pinLine(/LOAD/i));
      // auto_explain's settings exist only in a session that loaded it.
      for (let round = 0; round < 4; round++) {
        expect((await l.query('SHOW auto_explain.log_min_duration')).rows).toEqual([{ 'auto_explain.log_min_duration': '-1' }]);
      }
    } finally {
      await ch.stop();
    }
  });
});

describe('a pinned client\'s server is cleaned before anyone else gets it (pool size 2)', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await startFor({ settings: { default_pool_size: 2 } });
  });

  it('advisory lock, LISTEN, temp table, WITH HOLD cursor and settings are gone after the client disconnects', async () => {
    const a = await pgc(p);
    await a.query('SELECT pg_advisory_lock(42)');
    await p.waitForLog(pinLine(/advisory/i));
    await a.query('LISTEN clean_chan');
    await a.query('CREATE TEMP TABLE clean_tmp (x int)');
    await a.query('BEGIN');
    await a.query('DECLARE clean_cur CURSOR WITH HOLD FOR SELECT 1');
    await a.query('COMMIT');
    await a.query("SET application_name = 'pinned-a'");
    const pidA = await pidOf(a);
    for (let round = 0; round < 3; round++) {
      expect(await pidOf(a)).toBe(pidA);
      await a.query('BEGIN');
      expect(await pidOf(a)).toBe(pidA);
      await a.query('COMMIT');
    }

    // B stays in one transaction on the pool's other server the whole time.
    const b = await pgc(p);
    await b.query('BEGIN');
    expect(await pidOf(b)).not.toBe(pidA);
    expect((await b.query('SELECT pg_try_advisory_lock(42) AS ok')).rows).toEqual([{ ok: false }]);
    expect(await pidOf(a)).toBe(pidA);

    await endClient(a);
    await poll(async () => (await b.query('SELECT pg_try_advisory_lock(42) AS ok')).rows[0].ok === true, 'B to get the lock once A has left');

    // With B holding the other server, the next client gets the server A was pinned to.
    const c = await pgc(p);
    const r = await c.query(`SELECT pg_backend_pid() AS pid,
        (SELECT count(*)::int FROM pg_listening_channels()) AS channels,
        (SELECT count(*)::int FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temp_tables,
        (SELECT count(*)::int FROM pg_cursors) AS cursors,
        (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory_locks,
        current_setting('application_name') AS app`);
    expect(r.rows[0]).toEqual({ pid: pidA, channels: 0, temp_tables: 0, cursors: 0, advisory_locks: 0, app: '' });
    await b.query('COMMIT');
  });
});

describe('transaction-scoped variants do not pin (session_features = pin, pool size 10)', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await startFor({ settings: { default_pool_size: 10, session_features: 'pin' } });
  });

  it('ON COMMIT DROP temp table, pg_advisory_xact_lock, UNLISTEN and a cursor without HOLD log no pin line', async () => {
    const x = await pgc(p);
    await x.query('BEGIN');
    await x.query('CREATE TEMP TABLE np_tmp (x int) ON COMMIT DROP');
    await x.query('INSERT INTO np_tmp VALUES (1), (2)');
    expect((await x.query('SELECT count(*)::int AS n FROM np_tmp')).rows).toEqual([{ n: 2 }]);
    await x.query('COMMIT');
    expect((await x.query("SELECT to_regclass('pg_temp.np_tmp') IS NULL AS gone")).rows).toEqual([{ gone: true }]);

    await x.query('BEGIN');
    await x.query('SELECT pg_advisory_xact_lock(1101)');
    await x.query('COMMIT');
    expect((await x.query('SELECT pg_try_advisory_xact_lock(1102) AS ok')).rows).toEqual([{ ok: true }]);
    await x.query('SELECT pg_advisory_xact_lock_shared(1103)');

    await x.query('UNLISTEN np_chan');
    await x.query('UNLISTEN *');

    await x.query('BEGIN');
    await x.query('DECLARE np_cur CURSOR FOR SELECT generate_series(1, 3) AS g');
    expect((await x.query('FETCH 2 FROM np_cur')).rows).toEqual([{ g: 1 }, { g: 2 }]);
    await x.query('COMMIT');

    await endAndWaitForClose(p, x);
    expect(pinLines(p)).toEqual([]);
    expect(
      (await cluster.query(cluster.primary, "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid BETWEEN 1101 AND 1103"))[0].n,
    ).toBe(0);
  });
});

describe('session_features = reject (pool size 10)', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await startFor({ settings: { default_pool_size: 10, session_features: 'reject' } });
    await cluster.query(cluster.primary, 'CREATE TABLE IF NOT EXISTS rej_t (id int)');
  });

  const refused: { sql: string; feature: RegExp }[] = [
    { sql: 'LISTEN rej_chan', feature: /LISTEN/ },
    { sql: 'SELECT pg_advisory_lock(1)', feature: /advisory/i },
    { sql: 'SELECT pg_try_advisory_lock(2)', feature: /advisory/i },
    { sql: 'SELECT pg_advisory_lock_shared(3)', feature: /advisory/i },
    { sql: 'SELECT pg_try_advisory_lock_shared(4)', feature: /advisory/i },
    { sql: 'CREATE TEMP TABLE rej_tmp (x int)', feature: /TEMP/i },
    { sql: 'CREATE TEMPORARY TABLE rej_tmp2 (x int)', feature: /TEMP/i },
    { sql: 'DECLARE rej_cur CURSOR WITH HOLD FOR SELECT 1', feature: /HOLD/i },
    { sql: "LOAD 'auto_explain'", feature: /LOAD/ },
  ];

  it('refuses each session-only statement with 0A000 naming the feature and session_features; the session stays usable and others are unaffected', async () => {
    const ch = await churn(p, 4);
    try {
      const c = await pgc(p);
      for (const r of refused) {
        const err = await failure(c.query(r.sql));
        expect(err.code, r.sql).toBe('0A000');
        expect(err.message, r.sql).toMatch(r.feature);
        expect(err.message, r.sql).toContain('session_features');
        expect((await c.query('SELECT 1 AS ok')).rows, `after ${r.sql}`).toEqual([{ ok: 1 }]);
      }
      // Nothing of it reached PostgreSQL.
      expect(
        (await cluster.query(cluster.primary, "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid BETWEEN 1 AND 4"))[0].n,
      ).toBe(0);
      expect((await cluster.query(cluster.primary, "SELECT count(*)::int AS n FROM pg_class WHERE relname IN ('rej_tmp', 'rej_tmp2')"))[0].n).toBe(0);
      expect((await c.query('SELECT count(*)::int AS n FROM pg_cursors')).rows).toEqual([{ n: 0 }]);
      expect(pinLines(p)).toEqual([]);
    } finally {
      expect(await ch.stop()).toBeGreaterThan(0);
    }
  });

  it('inside a transaction the refusal fails the transaction as a PostgreSQL error would: 25P02 until ROLLBACK, and the ROLLBACK undoes its work', async () => {
    const c = await pgc(p);
    await c.query('BEGIN');
    await c.query('INSERT INTO rej_t VALUES (77)');
    const err = await failure(c.query('SELECT pg_advisory_lock(1)'));
    expect(err.code).toBe('0A000');
    expect(err.message).toMatch(/advisory/i);
    expect(err.message).toContain('session_features');
    expect((await failure(c.query('SELECT 1'))).code).toBe('25P02');
    await c.query('ROLLBACK');
    expect((await c.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    expect((await cluster.query(cluster.primary, 'SELECT count(*)::int AS n FROM rej_t WHERE id = 77'))[0].n).toBe(0);

    await c.query('BEGIN');
    expect((await failure(c.query('LISTEN rej_chan'))).code).toBe('0A000');
    // PostgreSQL answers COMMIT of a failed transaction with a ROLLBACK command tag.
    expect((await c.query('COMMIT')).command).toBe('ROLLBACK');
    expect((await c.query('SELECT 2 AS ok')).rows).toEqual([{ ok: 2 }]);
  });

  it('postgres.js (extended protocol): a parameterized pg_advisory_lock is refused with 0A000, in and out of a transaction', async () => {
    const sql = pjs(p);
    const err = await failure(sql`select pg_advisory_lock(${1})`.execute());
    expect(err.code).toBe('0A000');
    expect(err.message).toContain('session_features');
    expect([...(await sql`select ${5}::int as x`)]).toEqual([{ x: 5 }]);
    const inTx = await failure(sql.begin(async (tx) => {
      await tx`select 1`;
      await tx`select pg_try_advisory_lock(${2})`;
    }));
    expect(inTx.code).toBe('0A000');
    expect([...(await sql`select ${6}::int as x`)]).toEqual([{ x: 6 }]);
    expect(
      (await cluster.query(cluster.primary, "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid BETWEEN 1 AND 2"))[0].n,
    ).toBe(0);
  });
});

describe('session pool mode: nothing to pin', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await startFor({ settings: { default_pool_size: 10 }, appExtra: 'pool_mode=session' });
  });

  it('LISTEN, advisory locks and temp tables just work and log no pin line', async () => {
    const l = await pgc(p);
    const got: pg.Notification[] = [];
    l.on('notification', (n) => got.push(n));
    await l.query('LISTEN sess_chan');
    await l.query('SELECT pg_advisory_lock(1301)');
    await l.query('CREATE TEMP TABLE sess_tmp (x int)');
    const n = await pgc(p);
    for (let k = 0; k < 3; k++) await n.query(`NOTIFY sess_chan, 's${k}'`);
    await poll(() => got.length >= 3, 'the listener to receive 3 notifications');
    expect(got.map((m) => m.payload)).toEqual(['s0', 's1', 's2']);
    expect((await l.query("SELECT to_regclass('pg_temp.sess_tmp') IS NOT NULL AS here")).rows).toEqual([{ here: true }]);
    await endAndWaitForClose(p, l);
    await endAndWaitForClose(p, n);
    expect(pinLines(p)).toEqual([]);
    await poll(
      async () => (await cluster.query(cluster.primary, "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 1301"))[0].n === 0,
      'the session-mode client\'s advisory lock to be released after it left',
    );
  });
});

describe('statement pool mode: a pinned client still may not open a transaction block', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await startFor({ settings: { default_pool_size: 2 }, appExtra: 'pool_mode=statement' });
  });

  it('LISTEN pins the client (notifications arrive), and BEGIN then gets 25001 as for any statement-mode client', async () => {
    const l = await pgc(p);
    const got: pg.Notification[] = [];
    l.on('notification', (n) => got.push(n));
    await l.query('LISTEN stmt_chan');
    const n = await pgc(p);
    await n.query("NOTIFY stmt_chan, 'x'");
    await poll(() => got.length >= 1, 'the pinned listener to receive the notification');
    expect(pinLines(p).length).toBe(1);
    // As for any statement-mode client, the 25001 comes right after BEGIN's own reply and closes the connection.
    const ended = new Promise<PgError>((resolve) => l.once('error', (e) => resolve(e as PgError)));
    const queryErr = await l.query('BEGIN').then(() => null, (e: PgError) => e);
    expect((queryErr ?? (await ended)).code).toBe('25001');
  });
});
