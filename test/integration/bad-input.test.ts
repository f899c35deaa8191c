// Integration tests for hostile and broken client input over raw sockets, ending with a 10,000-message protocol fuzz against a live pooler.
import net from 'node:net';
import { errorFields } from '../helpers/raw-client.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { pgClient, poll, startCluster, startPoolerFor, type Cluster, type PoolerProcess } from './harness.ts';
import { query, rng, startup, typed, untyped } from '../helpers/wire.ts';

let cluster: Cluster;
/** the file's pooler: max_client_conn 2000, default_pool_size 5 */
let pooler: PoolerProcess;
/**
 * max_packet_size 1 MB, one server per pool and a short query_wait_timeout, so a server that a bad client
 * leaves unusable shows up as the next client's failure. Databases s1 … s6 are separate pools on PostgreSQL
 * database SMALL_DB, so whatever they leave behind cannot be mistaken for the fuzz's doing (it uses `postgres`).
 */
let small: PoolerProcess;

const SMALL_DB = 'bad_input_small';
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;

beforeAll(async () => {
  cluster = await startCluster({ replicas: 0 });
  await cluster.query(cluster.primary, 'CREATE TABLE bad_input_tx (id serial PRIMARY KEY, tag text NOT NULL)');
  await cluster.query(cluster.primary, `CREATE DATABASE ${SMALL_DB}`);
  const p = cluster.primary;
  const db = `host=${p.host} port=${p.port} dbname=${SMALL_DB}`;
  [pooler, small] = await Promise.all([
    startPoolerFor(cluster, { settings: { max_client_conn: 2000, default_pool_size: 5 } }),
    startPoolerFor(cluster, {
      settings: { max_packet_size: 1048576, default_pool_size: 1, query_wait_timeout: 5 },
      databases: Object.fromEntries([1, 2, 3, 4, 5, 6].map((i) => [`s${i}`, db])),
    }),
  ]);
});

afterAll(async () => {
  await Promise.all([pooler?.stop(), small?.stop()]);
  await cluster?.destroy();
});

// ---- a minimal raw protocol client ---------------------------------------------------------------------

interface Message {
  type: string;
  body: Buffer;
}

const LOGIN = { user: 'postgres', database: 'app' };


class RawConn {
  readonly sock: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  closed = false;
  error: Error | null = null;
  private waiters: (() => void)[] = [];

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.notify();
    });
    sock.on('error', (e) => {
      this.error = e;
    });
    sock.on('close', () => {
      this.closed = true;
      this.notify();
    });
  }

  static open(target: PoolerProcess): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: target.host, port: target.port });
      sock.setNoDelay(true);
      sock.once('connect', () => resolve(new RawConn(sock)));
      sock.once('error', reject);
    });
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves with f()'s first non-undefined value, re-checking on every socket event. */
  private waitFor<T>(f: () => T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      const check = () => {
        const v = f();
        if (v !== undefined) {
          clearTimeout(timer);
          resolve(v);
        } else if (this.closed) {
          clearTimeout(timer);
          reject(new Error(`connection closed while waiting for ${what}`));
        } else this.waiters.push(check);
      };
      check();
    });
  }

  write(bytes: Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.sock.destroyed) return resolve();
      this.sock.write(bytes, () => resolve());
    });
  }

  readByte(): Promise<number> {
    return this.waitFor(() => {
      if (this.buf.length < 1) return undefined;
      const b = this.buf[0]!;
      this.buf = this.buf.subarray(1);
      return b;
    }, 'one byte');
  }

  readMessage(timeoutMs?: number): Promise<Message> {
    return this.waitFor(
      () => {
        if (this.buf.length < 5) return undefined;
        const len = this.buf.readInt32BE(1);
        if (this.buf.length < len + 1) return undefined;
        const m: Message = { type: String.fromCharCode(this.buf[0]!), body: this.buf.subarray(5, len + 1) };
        return m;
      },
      'a message',
      timeoutMs,
    ).then((m) => {
      this.buf = this.buf.subarray(5 + m.body.length);
      return m;
    });
  }

  /** Messages up to and including the first of one of `types`. */
  async readUntil(types: string, timeoutMs?: number): Promise<Message[]> {
    const out: Message[] = [];
    for (;;) {
      const m = await this.readMessage(timeoutMs);
      out.push(m);
      if (types.includes(m.type)) return out;
    }
  }

  /** The ErrorResponse the pooler sends before closing; asserts the SQLSTATE and that the connection then closes. */
  async expectFatal(sqlstate: string, message?: RegExp): Promise<Record<string, string>> {
    const msgs = await this.readUntil('EZ');
    const last = msgs[msgs.length - 1]!;
    expect(last.type, `expected an ErrorResponse, got ${msgs.map((m) => m.type).join('')}`).toBe('E');
    const f = errorFields(last.body);
    expect(f['C'], JSON.stringify(f)).toBe(sqlstate);
    if (message) expect(f['M']).toMatch(message);
    await this.waitClosed();
    return f;
  }

  waitClosed(timeoutMs = 10_000): Promise<true> {
    return this.waitFor(() => (this.closed ? true : undefined), 'the pooler to close the connection', timeoutMs).catch((e: Error) => {
      if (this.closed) return true as const;
      throw e;
    });
  }

  /** StartupMessage through ReadyForQuery; returns every message received. */
  async login(params: Record<string, string> = LOGIN, minor = 0): Promise<Message[]> {
    await this.write(startup(params, minor));
    const msgs = await this.readUntil('ZE');
    const last = msgs[msgs.length - 1]!;
    if (last.type === 'E') throw new Error(`login failed: ${JSON.stringify(errorFields(last.body))}`);
    return msgs;
  }

  /** Simple query; returns the first column of each DataRow and the ReadyForQuery status. */
  async simpleQuery(sql: string): Promise<{ values: (string | null)[]; status: string; errors: Record<string, string>[] }> {
    await this.write(query(sql));
    const msgs = await this.readUntil('Z');
    const values: (string | null)[] = [];
    const errors: Record<string, string>[] = [];
    for (const m of msgs) {
      if (m.type === 'D') {
        const len = m.body.readInt32BE(2);
        values.push(len < 0 ? null : m.body.toString('utf8', 6, 6 + len));
      } else if (m.type === 'E') errors.push(errorFields(m.body));
    }
    return { values, status: String.fromCharCode(msgs[msgs.length - 1]!.body[0]!), errors };
  }

  destroy(): void {
    this.sock.destroy();
  }
}

/** Runs `sql` through a fresh node-postgres client of `target` and returns the rows. */
async function viaPg(target: PoolerProcess, sql: string, database = 'app'): Promise<any[]> {
  const c = pgClient(target, { database, query_timeout: 5_000, connectionTimeoutMillis: 5_000 });
  await c.connect();
  try {
    return (await c.query(sql)).rows;
  } finally {
    await c.end().catch(() => {});
  }
}

/** Pooler's connections to PostgreSQL database `datname` that sit in an open transaction. */
async function idleInTransaction(datname = 'postgres'): Promise<any[]> {
  return cluster.query(
    cluster.primary,
    `SELECT pid, state, left(query, 60) AS query FROM pg_stat_activity
      WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname = $1
        AND coalesce(application_name, '') <> 'pg-fixture' AND state LIKE 'idle in transaction%'`,
    [datname],
  );
}

/** One request/response with the pooler on a fresh connection: everything sent to it before has been read by then. */
async function roundTrip(target: PoolerProcess): Promise<void> {
  const c = await RawConn.open(target);
  await c.write(untyped(SSL_REQUEST));
  expect(String.fromCharCode(await c.readByte())).toBe('N');
  c.destroy();
}

function poolerAlive(p: PoolerProcess): boolean {
  try {
    process.kill(p.pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Log lines at error level or above that report a crash-type failure. */
function crashLines(p: PoolerProcess): string[] {
  return p
    .logs()
    .split('\n')
    .filter((line) => {
      try {
        const j = JSON.parse(line) as { level?: number; msg?: string };
        return (j.level ?? 0) >= 50 && /uncaught exception|unhandled rejection/i.test(j.msg ?? '');
      } catch {
        return /uncaught exception|unhandled rejection/i.test(line);
      }
    });
}

// ---- targeted cases ------------------------------------------------------------------------------------

describe('bad input before login', () => {
  it('a startup packet without user gets 08P01 and is closed', async () => {
    const c = await RawConn.open(pooler);
    await c.write(startup({ database: 'app' }));
    await c.expectFatal('08P01', /user/);
  });

  it('an empty user is the same as none', async () => {
    const c = await RawConn.open(pooler);
    await c.write(startup({ user: '', database: 'app' }));
    await c.expectFatal('08P01', /user/);
  });

  it('an unknown database gets 3D000', async () => {
    const c = await RawConn.open(pooler);
    await c.write(startup({ user: 'postgres', database: 'no_such_db' }));
    await c.expectFatal('3D000', /no_such_db/);
  });

  it('garbage (an HTTP request) instead of a startup packet gets 08P01 and is closed', async () => {
    const c = await RawConn.open(pooler);
    await c.write(Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    await c.expectFatal('08P01', /invalid startup packet length/);
  });

  it('a plausible length with an unknown protocol code gets 08P01', async () => {
    const c = await RawConn.open(pooler);
    await c.write(untyped(0x12345678, Buffer.from('user\0postgres\0\0')));
    await c.expectFatal('08P01', /unsupported frontend protocol/);
  });

  it('protocol 2.0 is refused with 08P01', async () => {
    const c = await RawConn.open(pooler);
    await c.write(untyped(2 << 16, Buffer.from('user\0postgres\0\0')));
    await c.expectFatal('08P01', /2\.0/);
  });

  it('a startup packet cut short, then a close, leaves nothing behind and the pooler serving', async () => {
    const c = await RawConn.open(pooler);
    await c.write(startup(LOGIN).subarray(0, 12));
    c.sock.end();
    await c.waitClosed();
    expect(await viaPg(pooler, 'SELECT 1 AS x')).toEqual([{ x: 1 }]);
  });

  it('SSLRequest is answered N, then a normal login and query work', async () => {
    const c = await RawConn.open(pooler);
    await c.write(untyped(SSL_REQUEST));
    expect(String.fromCharCode(await c.readByte())).toBe('N');
    const msgs = await c.login();
    expect(msgs.map((m) => m.type)).toContain('R');
    expect((await c.simpleQuery('SELECT 41 + 1')).values).toEqual(['42']);
    c.destroy();
  });

  it('GSSENCRequest is answered N, then SSLRequest N, then a normal login works', async () => {
    const c = await RawConn.open(pooler);
    await c.write(untyped(GSSENC_REQUEST));
    expect(String.fromCharCode(await c.readByte())).toBe('N');
    await c.write(untyped(SSL_REQUEST));
    expect(String.fromCharCode(await c.readByte())).toBe('N');
    await c.login();
    expect((await c.simpleQuery('SELECT 7')).values).toEqual(['7']);
    c.destroy();
  });

  it('bytes sent after an SSLRequest before its answer are refused (they could be injected in the clear)', async () => {
    const c = await RawConn.open(pooler);
    await c.write(Buffer.concat([untyped(SSL_REQUEST), startup(LOGIN)]));
    await c.expectFatal('08P01', /unencrypted data after encryption request/);
  });

  it('protocol 3.2 with a _pq_ option gets NegotiateProtocolVersion (3.0, option listed) and still logs in', async () => {
    const c = await RawConn.open(pooler);
    const msgs = await c.login({ ...LOGIN, '_pq_.test_option': 'on' }, 2);
    const v = msgs.find((m) => m.type === 'v');
    expect(v, msgs.map((m) => m.type).join('')).toBeDefined();
    expect(msgs[0]!.type).toBe('v'); // before any authentication message
    expect(v!.body.readInt32BE(0)).toBe(0); // newest minor version supported
    expect(v!.body.readInt32BE(4)).toBe(1); // one unrecognized option
    expect(v!.body.toString('utf8', 8)).toBe('_pq_.test_option\0');
    expect(msgs.some((m) => m.type === 'R' && m.body.readInt32BE(0) === 0)).toBe(true);
    expect((await c.simpleQuery('SELECT 3')).values).toEqual(['3']);
    c.destroy();
  });

  it('protocol 3.2 without options gets NegotiateProtocolVersion with no options', async () => {
    const c = await RawConn.open(pooler);
    const msgs = await c.login(LOGIN, 2);
    expect(msgs[0]!.type).toBe('v');
    expect(msgs[0]!.body.readInt32BE(0)).toBe(0);
    expect(msgs[0]!.body.readInt32BE(4)).toBe(0);
    expect((await c.simpleQuery('SELECT 4')).values).toEqual(['4']);
    c.destroy();
  });

  it('a CancelRequest with an unknown key is closed quietly', async () => {
    const c = await RawConn.open(pooler);
    const body = Buffer.alloc(8);
    body.writeInt32BE(1, 0);
    body.writeInt32BE(2, 4);
    await c.write(untyped(CANCEL_REQUEST, body));
    await c.waitClosed();
  });
});

describe('bad input after login', () => {
  it('an invalid length field (2) gets 08P01 and is closed', async () => {
    const c = await RawConn.open(pooler);
    await c.login();
    await c.write(typed('Q', Buffer.alloc(0), 2));
    await c.expectFatal('08P01', /invalid message length 2/);
  });

  it("an unknown message type ('z') gets 08P01 and is closed", async () => {
    const c = await RawConn.open(pooler);
    await c.login();
    await c.write(typed('z', 'whatever'));
    await c.expectFatal('08P01', /invalid frontend message type 'z'/);
  });

  it('a password message after login is an unknown type too', async () => {
    const c = await RawConn.open(pooler);
    await c.login();
    await c.write(typed('p', 'secret\0'));
    await c.expectFatal('08P01', /invalid frontend message type 'p'/);
  });

  it('a truncated message and then a close inside a transaction leaves no server behind in a transaction', async () => {
    const c = await RawConn.open(pooler);
    await c.login();
    expect((await c.simpleQuery('BEGIN')).status).toBe('T');
    expect((await c.simpleQuery("INSERT INTO bad_input_tx (tag) VALUES ('truncated') RETURNING 1")).values).toEqual(['1']);
    await c.write(query('SELECT 1').subarray(0, 7));
    c.sock.end();
    await c.waitClosed();
    await poll(async () => (await idleInTransaction()).length === 0, 'no idle-in-transaction server');
    expect(await viaPg(pooler, "SELECT count(*)::int AS n FROM bad_input_tx WHERE tag = 'truncated'")).toEqual([{ n: 0 }]);
  });

  it('a 20 MB message over max_packet_size (1 MB) gets 08P01 naming max_packet_size and is closed; the pooler carries on', async () => {
    const c = await RawConn.open(small);
    await c.login({ user: 'postgres', database: 's1' });
    const huge = typed('Q', Buffer.alloc(20 * 1024 * 1024, 0x41));
    // The length field says 20 MB; the first 1 MB + 1 byte of it is sent, more than max_packet_size allows, and
    // the pooler must answer without waiting for the rest. (Streaming all 20 MB from Node mostly ends in EPIPE:
    // the pooler closes with unread input, the reset makes Node destroy the socket before it reads the error.)
    await c.write(huge.subarray(0, 5 + 1024 * 1024 + 1));
    const f = await c.expectFatal('08P01', /max_packet_size/);
    expect(f['M']).toContain(`${20 * 1024 * 1024 + 4} bytes`); // the length field, read before the body
    expect(f['M']).toContain('1048576');
    expect(poolerAlive(small)).toBe(true);
    expect(await viaPg(small, 'SELECT 1 AS x', 's1')).toEqual([{ x: 1 }]);
  });

  it('a message just under max_packet_size goes through', async () => {
    const c = await RawConn.open(small);
    await c.login({ user: 'postgres', database: 's1' });
    const sql = `SELECT length('${'x'.repeat(1000 * 1000)}')`;
    expect((await c.simpleQuery(sql)).values).toEqual(['1000000']);
    c.destroy();
  });

  it('a bad length right after a large CopyData inside a transaction does not leave the server unusable', async () => {
    // The CopyData spans several reads; its tail arrives in the same read as the bad header. If the tail is
    // never forwarded, PostgreSQL keeps waiting for it and takes pooler's ROLLBACK as CopyData bytes.
    const c = await RawConn.open(small);
    await c.login({ user: 'postgres', database: 's2' });
    expect((await c.simpleQuery('BEGIN')).status).toBe('T');
    const copy = typed('d', Buffer.alloc(300 * 1024, 0x61));
    await c.write(copy.subarray(0, copy.length - 100));
    await c.write(Buffer.concat([copy.subarray(copy.length - 100), typed('Q', Buffer.alloc(0), 2)]));
    await c.expectFatal('08P01', /invalid message length 2/);
    // default_pool_size 1: the next client needs that very server.
    expect(await viaPg(small, 'SELECT 1 AS x', 's2')).toEqual([{ x: 1 }]);
    await poll(async () => (await idleInTransaction(SMALL_DB)).length === 0, 'no idle-in-transaction server', 5000);
  });

  it('a bad length right after a large CopyData outside a transaction does not desynchronize the next client', async () => {
    const c = await RawConn.open(small);
    await c.login({ user: 'postgres', database: 's3' });
    const copy = typed('d', Buffer.alloc(300 * 1024, 0x61));
    await c.write(copy.subarray(0, copy.length - 100));
    await c.write(Buffer.concat([copy.subarray(copy.length - 100), typed('Q', Buffer.alloc(0), 2)]));
    await c.expectFatal('08P01', /invalid message length 2/);
    expect(await viaPg(small, 'SELECT 1 AS x', 's3')).toEqual([{ x: 1 }]);
  });

  it('an unknown startup parameter fails only its own client, not the next one on the same server', async () => {
    const c = await RawConn.open(small);
    await c.write(startup({ user: 'postgres', database: 's4', no_such_setting: '1' }));
    const first = await c.readUntil('ZE');
    if (first[first.length - 1]!.type === 'Z') {
      // Accepted at login: the setting is applied when a server is linked. A Flush owes no reply, so
      // pooler's setting is the only thing that runs on the server before it goes back to the pool.
      await c.write(typed('H'));
      await c.expectFatal('42704', /no_such_setting/);
    } else {
      expect(errorFields(first[first.length - 1]!.body)['M']).toMatch(/no_such_setting/);
    }
    // default_pool_size 1: the next client gets the very server the failed setting ran on.
    expect(await viaPg(small, 'SELECT 1 AS x', 's4')).toEqual([{ x: 1 }]);
  });

  it('a Flush with a body (PostgreSQL then skips to the next Sync) does not pass that state on to the next client', async () => {
    const f = await RawConn.open(small);
    await f.login({ user: 'postgres', database: 's5' });
    await f.write(typed('H', Buffer.from('!')));
    // default_pool_size 1: the next client gets the same server. PostgreSQL, having failed the Flush, discards
    // everything up to a Sync: the next client's Parse/Bind/Execute, leaving it a bare ReadyForQuery (a simple
    // Query would get no answer at all).
    const w = pgClient(small, { database: 's5', query_timeout: 10_000 });
    await w.connect();
    try {
      expect((await w.query('SELECT $1::int AS v', [42])).rows).toEqual([{ v: 42 }]);
      // The client that sent it must hear about its error, not silence.
      await f.expectFatal('08P01');
    } finally {
      await w.end();
      f.destroy();
    }
  });

  it('a client that leaves while its session settings are being applied does not pass the server on mid-query', async () => {
    // Setting default_text_search_config looks the name up in pg_ts_config: an exclusive lock on it holds pooler's SET.
    // pg_ts_config is per database: lock the one the s6 pool's servers use.
    const blocker = new pg.Client({ connectionString: cluster.connectionString(cluster.primary, SMALL_DB) });
    await blocker.connect();
    let w: pg.Client | null = null;
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE pg_catalog.pg_ts_config IN ACCESS EXCLUSIVE MODE');
      const f = await RawConn.open(small);
      await f.login({ user: 'postgres', database: 's6', default_text_search_config: 'pg_catalog.simple' });
      await f.write(typed('H')); // links a server; pooler first sends it the client's setting
      await poll(
        async () =>
          (
            await cluster.query(
              cluster.primary,
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid() AND query LIKE '%default_text_search_config%'",
            )
          )[0].n === 1,
        "pooler's SET to wait for the lock",
      );
      w = pgClient(small, { database: 's6', query_timeout: 10_000 });
      await w.connect();
      const result = w.query('SELECT $1::int AS v', [42]).then(
        (r) => r.rows,
        (e: Error) => e.message,
      );
      await roundTrip(small); // W's query has been read: W waits for the pool's only server
      const port = f.sock.localPort;
      f.destroy();
      await small.waitForLog((l) => l.remote === `127.0.0.1:${port}` && /closing because/.test(l.msg));
      await blocker.query('COMMIT');
      // Handed over with the SET still running, W would take the replies to pooler's SET/RESET for its own.
      expect(await result).toEqual([{ v: 42 }]);
      expect((await w.query('SELECT 7 AS v')).rows).toEqual([{ v: 7 }]);
    } finally {
      await blocker.query('ROLLBACK').catch(() => {});
      await blocker.end().catch(() => {});
      await w?.end().catch(() => {});
    }
  });
});

// ---- the fuzz ------------------------------------------------------------------------------------------

class Gen {
  readonly r: () => number;
  constructor(seed: number) {
    this.r = rng(seed);
  }
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

const FRONTEND_TYPES = 'BCdcfDEHFPQSX';
const BENIGN_SQL = ['SELECT 1', 'BEGIN', 'COMMIT', 'ROLLBACK', 'SELECT pg_sleep(0)', '', ';', 'SELEC 1', 'SELECT 1/0', "SELECT 'x'::int", 'SHOW server_version'];

/** One fuzz "message": the pieces to write, each as its own write. */
function fuzzMessage(g: Gen): Buffer[] {
  const k = g.int(100);
  if (k < 14) return [query(g.pick(BENIGN_SQL))];
  if (k < 24) {
    // random type byte, random length field, random body
    const lens = [g.int(4), 4 + g.int(64), g.int(0x7fffffff), -1 - g.int(1000), 5];
    return [typed(g.int(256), g.bytes(g.int(64)), g.pick(lens))];
  }
  if (k < 40) return [typed(g.pick([...FRONTEND_TYPES.replace('X', '')]), g.bytes(g.int(48)))]; // valid type, garbage body
  if (k < 48) {
    // valid type, length promises more than is sent (what follows becomes its body)
    const body = g.bytes(g.int(40));
    return [typed(g.pick([...FRONTEND_TYPES]), body, 4 + body.length + 1 + g.int(200)).subarray(0, 5 + body.length)];
  }
  if (k < 52) {
    // huge lengths: above max_packet_size, or below it and never delivered
    const len = g.pick([0x7fffffff, 300 * 1024 * 1024, 64 * 1024 * 1024, 2 * 1024 * 1024, 0x80000000]);
    return [typed(g.pick(['Q', 'd', 'P', 'B']), g.bytes(g.int(32)), len)];
  }
  if (k < 58) return [typed('Q', 'SELECT 1' + g.bytes(g.int(20)).toString('latin1').replace(/\0/g, 'x'))]; // no terminator
  if (k < 66) {
    // Bind/Describe/Execute/Close referencing nothing, sometimes followed by Sync
    const name = `nope_${g.int(1000)}\0`;
    const msgs = [
      typed('B', Buffer.concat([Buffer.from(`\0${name}`), Buffer.from([0, 0, 0, 0, 0, 0])])),
      typed('D', `S${name}`),
      typed('E', `${name}\0\0\0\0`),
      typed('C', `P${name}`),
    ];
    const out = [g.pick(msgs)];
    if (g.r() < 0.6) out.push(typed('S'));
    return [Buffer.concat(out)];
  }
  if (k < 72) {
    // Parse garbage then Sync, or a valid Parse/Bind/Execute/Sync
    if (g.r() < 0.5) return [Buffer.concat([typed('P', g.bytes(g.int(30))), typed('S')])];
    const n = g.int(1000);
    return [
      Buffer.concat([
        typed('P', `\0SELECT $1::int + ${n}\0\0\0`),
        typed('B', Buffer.concat([Buffer.from('\0\0'), Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 0x37, 0, 0])])),
        typed('E', '\0\0\0\0\0'),
        typed('S'),
      ]),
    ];
  }
  if (k < 80) return [typed(g.pick(['S', 'H', 'c']))];
  if (k < 86) return [typed('d', g.bytes(g.r() < 0.1 ? 100_000 : g.int(100)))]; // CopyData outside COPY
  if (k < 89) return [typed('f', 'fuzz\0')];
  if (k < 93) {
    // one message split over several writes
    const m = query(`SELECT ${g.int(100)}`);
    const cut = 1 + g.int(m.length - 1);
    return [m.subarray(0, cut), m.subarray(cut)];
  }
  if (k < 95) return [typed('F', g.bytes(g.int(20)))]; // FunctionCall with garbage
  if (k < 96) return [typed('X')];
  return [g.bytes(1 + g.int(50))]; // pure noise
}

interface FuzzStats {
  connections: number;
  messages: number;
  closedByPooler: number;
  fatal08P01: number;
}

async function fuzzConnection(target: PoolerProcess, g: Gen, perConn: number, stats: FuzzStats): Promise<void> {
  const sock = net.connect({ host: target.host, port: target.port });
  sock.setNoDelay(true);
  let closed = false;
  let head: Buffer = Buffer.alloc(0);
  const closedP = new Promise<void>((resolve) => {
    sock.on('close', () => {
      closed = true;
      resolve();
    });
  });
  sock.on('error', () => {});
  sock.on('data', (d: Buffer) => {
    // keep the start of what the pooler sends after login, to count its fatal errors
    if (head.length < 8192) head = Buffer.concat([head, d]);
  });
  await new Promise<void>((resolve) => {
    sock.once('connect', () => resolve());
    sock.once('close', () => resolve());
  });
  stats.connections++;
  const write = (b: Buffer) =>
    new Promise<void>((resolve) => {
      if (closed || sock.destroyed) return resolve();
      sock.write(b, () => resolve());
    });

  const kind = g.int(100);
  if (kind < 8) {
    // noise before any startup packet
    for (let i = 0; i < perConn && !closed; i++) {
      stats.messages++;
      await write(g.r() < 0.5 ? g.bytes(1 + g.int(64)) : untyped(g.int(0x7fffffff), g.bytes(g.int(40))).subarray(0, 8 + g.int(40)));
    }
  } else if (kind < 12) {
    // encryption or cancel requests, then garbage
    const reqs = [untyped(SSL_REQUEST), untyped(GSSENC_REQUEST), untyped(CANCEL_REQUEST, g.bytes(8)), untyped(CANCEL_REQUEST, g.bytes(3))];
    stats.messages++;
    await write(g.pick(reqs));
    for (let i = 1; i < perConn && !closed; i++) {
      stats.messages++;
      await write(fuzzMessage(g)[0]!);
    }
  } else {
    // a valid login, then typed messages
    const params: Record<string, string> = { ...LOGIN };
    if (g.r() < 0.3) params['application_name'] = `fuzz${g.int(10)}`;
    await write(startup(params, g.r() < 0.1 ? 2 : 0));
    // wait for ReadyForQuery before fuzzing (event-driven)
    await new Promise<void>((resolve) => {
      const check = () => {
        if (closed || head.includes(Buffer.from([0x5a, 0, 0, 0, 5]))) {
          sock.off('data', check);
          resolve();
        }
      };
      sock.on('data', check);
      sock.once('close', () => resolve());
      check();
    });
    for (let i = 0; i < perConn && !closed; i++) {
      stats.messages++;
      for (const piece of fuzzMessage(g)) await write(piece);
    }
  }
  // how to leave: politely, abruptly mid-message, or abruptly
  const end = g.int(10);
  if (!closed && end < 5) sock.end();
  else if (!closed && end < 8) {
    await write(query('SELECT 1').subarray(0, 1 + g.int(8)));
    sock.destroy();
  } else sock.destroy();
  // A polite end is answered by the pooler closing its side; bound the wait so one stuck socket cannot stall the run.
  const timer = setTimeout(() => sock.destroy(), 5_000);
  await closedP;
  clearTimeout(timer);
  if (head.includes(Buffer.from('C08P01\0'))) stats.fatal08P01++;
  stats.closedByPooler += sock.readableEnded ? 1 : 0;
}

describe('protocol fuzz', () => {
  it('10,000 malformed or random messages over many connections do not disturb a well-behaved client or the pooler', async () => {
    const TOTAL = 10_000;
    const MIN_CONNS = 200;
    const PER_CONN = 50;
    const CONCURRENCY = 20;
    const SEED = Number(process.env['FUZZ_SEED'] ?? 20240601); // FUZZ_SEED=n replays another run
    const stats: FuzzStats = { connections: 0, messages: 0, closedByPooler: 0, fatal08P01: 0 };

    // The well-behaved clients run the whole time.
    let done = false;
    const errors: string[] = [];
    let queries = 0;
    let transactions = 0;
    const qc: pg.Client = pgClient(pooler, { query_timeout: 10_000 });
    const tc: pg.Client = pgClient(pooler, { query_timeout: 10_000 });
    await Promise.all([qc.connect(), tc.connect()]);
    const queryLoop = (async () => {
      const r = rng(1);
      while (!done) {
        const v = Math.floor(r() * 2 ** 31);
        try {
          const res = await qc.query('SELECT $1::int AS v', [v]);
          if (res.rows.length !== 1 || res.rows[0].v !== v) errors.push(`query loop: got ${JSON.stringify(res.rows)} for ${v}`);
          queries++;
        } catch (e) {
          errors.push(`query loop: ${(e as Error).message}`);
          return;
        }
      }
    })();
    const txLoop = (async () => {
      let i = 0;
      while (!done) {
        const tag = `tx${i}`;
        const commit = i++ % 2 === 0;
        try {
          await tc.query('BEGIN');
          const p1 = (await tc.query('SELECT pg_backend_pid() AS p')).rows[0].p;
          await tc.query('INSERT INTO bad_input_tx (tag) VALUES ($1)', [tag]);
          const inside = (await tc.query('SELECT count(*)::int AS n, pg_backend_pid() AS p FROM bad_input_tx WHERE tag = $1', [tag])).rows[0];
          if (inside.n !== 1 || inside.p !== p1) errors.push(`tx loop: inside ${JSON.stringify(inside)}, first pid ${p1}`);
          await tc.query(commit ? 'COMMIT' : 'ROLLBACK');
          const after = (await tc.query('SELECT count(*)::int AS n FROM bad_input_tx WHERE tag = $1', [tag])).rows[0].n;
          if (after !== (commit ? 1 : 0)) errors.push(`tx loop: ${tag} count ${after} after ${commit ? 'COMMIT' : 'ROLLBACK'}`);
          transactions++;
        } catch (e) {
          errors.push(`tx loop: ${(e as Error).message}`);
          return;
        }
      }
    })();

    // Bounded concurrency: CONCURRENCY workers pull connections until enough messages were sent.
    const started = Date.now();
    let opened = 0;
    const worker = async () => {
      while (stats.messages < TOTAL || opened < MIN_CONNS) {
        opened++;
        await fuzzConnection(pooler, new Gen(SEED + opened), PER_CONN, stats);
      }
    };
    try {
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    } finally {
      done = true;
      await Promise.all([queryLoop, txLoop]);
      await Promise.all([qc.end().catch(() => {}), tc.end().catch(() => {})]);
    }
    const elapsed = Date.now() - started;
    console.log(`fuzz: ${JSON.stringify(stats)} in ${elapsed} ms; well-behaved client: ${queries} queries, ${transactions} transactions`);

    expect(stats.messages).toBeGreaterThanOrEqual(TOTAL);
    expect(stats.connections).toBeGreaterThanOrEqual(MIN_CONNS);
    expect(stats.fatal08P01, 'the fuzz did reach the protocol checks').toBeGreaterThan(10);
    expect(errors.slice(0, 5)).toEqual([]);
    // Pool of 5 shared with 20 fuzzing connections: the loops wait their turn, but must keep getting it.
    expect(queries, 'the query loop kept running').toBeGreaterThanOrEqual(10);
    expect(transactions, 'the transaction loop kept running').toBeGreaterThanOrEqual(2);

    // The pooler survived, serves a fresh client, and logged no crash.
    expect(poolerAlive(pooler)).toBe(true);
    expect(await viaPg(pooler, 'SELECT 1 AS x')).toEqual([{ x: 1 }]);
    expect(crashLines(pooler)).toEqual([]);

    // No server connection left in a transaction.
    await poll(async () => (await idleInTransaction()).length === 0, 'no idle-in-transaction server connections', 10_000).catch(async (e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(await idleInTransaction())}`);
    });

    // Every server the pool can hand out still works: hold default_pool_size transactions at once.
    const holders = Array.from({ length: 5 }, () => pgClient(pooler, { query_timeout: 10_000 }));
    try {
      await Promise.all(holders.map((h) => h.connect()));
      await Promise.all(holders.map((h) => h.query('BEGIN')));
      const pids = await Promise.all(holders.map(async (h, i) => (await h.query('SELECT pg_backend_pid() AS p, $1::int AS i', [i])).rows[0]));
      expect(pids.map((p) => p.i)).toEqual([0, 1, 2, 3, 4]);
      expect(new Set(pids.map((p) => p.p)).size).toBe(5);
      await Promise.all(holders.map((h) => h.query('COMMIT')));
    } finally {
      await Promise.all(holders.map((h) => h.end().catch(() => {})));
    }
    expect(crashLines(pooler)).toEqual([]);
  });
});
