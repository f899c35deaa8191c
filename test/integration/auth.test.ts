// Client authentication (trust, md5, SCRAM, SCRAM pass-through) and pooler's own logins to PostgreSQL, end to end.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgClient, poolerUrl, startCluster, startPoolerFor, type Cluster, type PoolerProcess, type PoolerSetup } from './harness.ts';

const SCRAM_PW = 'scram-pw-Ä1';
const MD5_PW = 'md5-pw-2';

let cluster: Cluster;
/** u_scram's pg_authid.rolpassword: a SCRAM-SHA-256 secret minted by PostgreSQL itself */
let scramSecret: string;
/** u_md5's pg_authid.rolpassword: 'md5' + md5(password + user) */
let md5Secret: string;

const poolers: PoolerProcess[] = [];

beforeAll(async () => {
  cluster = await startCluster({ replicas: 0 });
  // Multi-statement simple query: the SET applies to the CREATE ROLE in the same session.
  await cluster.query(cluster.primary, `SET password_encryption = 'scram-sha-256'; CREATE ROLE u_scram LOGIN PASSWORD '${SCRAM_PW}'`);
  await cluster.query(cluster.primary, `SET password_encryption = 'md5'; CREATE ROLE u_md5 LOGIN PASSWORD '${MD5_PW}'`);
  const rows = await cluster.query(cluster.primary, `SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN ('u_scram', 'u_md5')`);
  const byName = new Map(rows.map((r) => [r.rolname as string, r.rolpassword as string]));
  scramSecret = byName.get('u_scram')!;
  md5Secret = byName.get('u_md5')!;
});
afterAll(async () => {
  await Promise.all(poolers.map((p) => p.stop()));
  await cluster?.destroy();
});

async function pooler(setup: PoolerSetup): Promise<PoolerProcess> {
  const p = await startPoolerFor(cluster, setup);
  poolers.push(p);
  return p;
}

function userlist(entries: Record<string, string>): string {
  return Object.entries(entries)
    .map(([u, s]) => `"${u.replaceAll('"', '""')}" "${s.replaceAll('"', '""')}"`)
    .join('\n') + '\n';
}

/** Logs in with node-postgres, runs one query, and returns what PostgreSQL says about the session. */
async function loginAndAsk(p: PoolerProcess, user: string, password: string | undefined, database = 'app') {
  const c = pgClient(p, { user, password, database, connectionTimeoutMillis: 10_000 });
  try {
    await c.connect();
    const r = await c.query('SELECT session_user::text AS who, pg_backend_pid() AS pid, 6 * 7 AS answer');
    return r.rows[0] as { who: string; pid: number; answer: number };
  } finally {
    await c.end().catch(() => {});
  }
}

/** The SQLSTATE node-postgres reports for a failed login (throws if the login unexpectedly succeeds). */
async function loginError(p: PoolerProcess, user: string, password: string | undefined, database = 'app'): Promise<{ code: string; message: string }> {
  const c = pgClient(p, { user, password, database, connectionTimeoutMillis: 10_000 });
  try {
    await c.connect();
  } catch (e) {
    const err = e as { code?: string; message: string };
    return { code: err.code ?? '', message: err.message };
  } finally {
    await c.end().catch(() => {});
  }
  throw new Error(`login as ${user} to ${database} unexpectedly succeeded`);
}

interface PsqlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs /usr/bin/psql with a clean PG* environment; never rejects, the caller checks code/stderr. */
function psql(url: string, sql: string, password?: string): Promise<PsqlResult> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG') && v !== undefined) env[k] = v;
  env.PGCONNECT_TIMEOUT = '10';
  if (password !== undefined) env.PGPASSWORD = password;
  return new Promise((resolve) => {
    execFile('/usr/bin/psql', ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-w', '-d', url, '-c', sql], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
    });
  });
}

/**
 * Sends a StartupMessage and returns the first Authentication request code pooler answers with
 * (0 ok, 3 cleartext, 5 md5, 10 SASL), or the SQLSTATE of an ErrorResponse.
 */
function firstAuthRequest(p: PoolerProcess, user: string, database = 'app'): Promise<{ auth: number } | { error: string }> {
  const body = Buffer.from(`user\0${user}\0database\0${database}\0\0`, 'utf8');
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(196608, 4);
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: p.host, port: p.port });
    let buf = Buffer.alloc(0);
    s.on('connect', () => s.write(Buffer.concat([head, body])));
    s.on('error', reject);
    s.on('close', () => reject(new Error('pooler closed the connection before answering the startup message')));
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 5) return;
      const len = buf.readInt32BE(1);
      if (buf.length < len + 1) return;
      s.removeAllListeners('close');
      s.destroy();
      if (buf[0] === 0x52 /* R */) resolve({ auth: buf.readInt32BE(5) });
      else if (buf[0] === 0x45 /* E */) {
        const m = /C([0-9A-Z]{5})\0/.exec(buf.subarray(5, len + 1).toString('latin1'));
        resolve({ error: m ? m[1]! : '?' });
      } else reject(new Error(`unexpected first message ${String.fromCharCode(buf[0]!)}`));
    });
  });
}

describe('fixture roles', () => {
  it('stores u_scram as SCRAM and u_md5 as md5 in PostgreSQL', () => {
    expect(scramSecret).toMatch(/^SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    expect(md5Secret).toMatch(/^md5[0-9a-f]{32}$/);
  });
});

describe('auth_type = md5, plaintext secrets', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await pooler({ settings: { auth_type: 'md5' }, userlist: userlist({ u_scram: SCRAM_PW, u_md5: MD5_PW }) });
  });

  it('asks clients for md5', async () => {
    expect(await firstAuthRequest(p, 'u_scram')).toEqual({ auth: 5 });
    expect(await firstAuthRequest(p, 'u_md5')).toEqual({ auth: 5 });
  });

  it('node-postgres logs in as both users; pooler logs in to PostgreSQL with SCRAM / md5', async () => {
    expect(await loginAndAsk(p, 'u_scram', SCRAM_PW)).toMatchObject({ who: 'u_scram', answer: 42 });
    expect(await loginAndAsk(p, 'u_md5', MD5_PW)).toMatchObject({ who: 'u_md5', answer: 42 });
  });

  it('psql logs in as both users with PGPASSWORD', async () => {
    for (const [user, pw] of [['u_scram', SCRAM_PW], ['u_md5', MD5_PW]] as const) {
      const r = await psql(poolerUrl(p, 'app', user), 'SELECT session_user, 1 + 1', pw);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(`${user}|2`);
    }
  });

  it('rejects a wrong password with 28P01 and logs the failed login with the user name', async () => {
    const start = Date.now();
    const e = await loginError(p, 'u_md5', 'not-the-password');
    expect(e.code).toBe('28P01');
    const line = await p.waitForLog(
      (l) => l.user === 'u_md5' && Date.parse(l.time) >= start - 1000 && /login failed/.test(l.msg) && /password authentication failed/.test(l.msg),
    );
    expect(line.msg).toContain('u_md5');
    // psql gets the same answer.
    const r = await psql(poolerUrl(p, 'app', 'u_scram'), 'SELECT 1', 'wrong');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/password authentication failed for user "u_scram"/);
  });

  it('rejects an unknown user with 28P01', async () => {
    expect((await loginError(p, 'nobody_here', 'whatever')).code).toBe('28P01');
  });

  it('rejects an unknown database with 3D000 and logs it', async () => {
    const e = await loginError(p, 'u_md5', MD5_PW, 'no_such_db');
    expect(e.code).toBe('3D000');
    const line = await p.waitForLog((l) => l.db === 'no_such_db' && /no such database/.test(l.msg));
    expect(line.user).toBe('u_md5');
  });
});

describe('auth_type = md5, md5 secret', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    // Written from scratch, and the same as what PostgreSQL stored.
    const secret = 'md5' + createHash('md5').update(MD5_PW + 'u_md5').digest('hex');
    expect(secret).toBe(md5Secret);
    p = await pooler({ settings: { auth_type: 'md5' }, userlist: userlist({ u_md5: secret }) });
  });

  it('logs node-postgres and psql in and answers PostgreSQL md5 challenge from the hash', async () => {
    expect(await firstAuthRequest(p, 'u_md5')).toEqual({ auth: 5 });
    expect(await loginAndAsk(p, 'u_md5', MD5_PW)).toMatchObject({ who: 'u_md5', answer: 42 });
    const r = await psql(poolerUrl(p, 'app', 'u_md5'), 'SELECT current_user', MD5_PW);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('u_md5');
  });

  it('rejects a wrong password', async () => {
    expect((await loginError(p, 'u_md5', MD5_PW + 'x')).code).toBe('28P01');
  });
});

describe('auth_type = scram-sha-256, plaintext secret', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await pooler({ settings: { auth_type: 'scram-sha-256' }, userlist: userlist({ u_scram: SCRAM_PW, u_md5: MD5_PW }) });
  });

  it('asks for SASL and logs in both users (pooler uses SCRAM / md5 towards PostgreSQL)', async () => {
    expect(await firstAuthRequest(p, 'u_scram')).toEqual({ auth: 10 });
    expect(await loginAndAsk(p, 'u_scram', SCRAM_PW)).toMatchObject({ who: 'u_scram', answer: 42 });
    expect(await loginAndAsk(p, 'u_md5', MD5_PW)).toMatchObject({ who: 'u_md5', answer: 42 });
    const r = await psql(poolerUrl(p, 'app', 'u_scram'), 'SELECT session_user', SCRAM_PW);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('u_scram');
  });

  it('rejects a wrong password and an unknown user with 28P01', async () => {
    expect((await loginError(p, 'u_scram', 'nope')).code).toBe('28P01');
    expect((await loginError(p, 'nobody_here', 'nope')).code).toBe('28P01');
  });

  it('PBKDF2 cache: 30 sequential SCRAM logins all succeed, and a wrong password still fails between them', async () => {
    for (let i = 0; i < 30; i++) {
      expect(await loginAndAsk(p, 'u_scram', SCRAM_PW)).toMatchObject({ who: 'u_scram', answer: 42 });
      if (i % 10 === 5) expect((await loginError(p, 'u_scram', SCRAM_PW + i)).code).toBe('28P01');
    }
  });
});

describe('auth_type = scram-sha-256, SCRAM secret copied from pg_authid (pass-through)', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await pooler({ settings: { auth_type: 'scram-sha-256' }, userlist: userlist({ u_scram: scramSecret }) });
  });

  it('has no plaintext anywhere in its files', () => {
    expect(readFileSync(`${p.dir}/userlist.txt`, 'utf8')).not.toContain(SCRAM_PW);
    expect(readFileSync(p.iniPath, 'utf8')).not.toContain(SCRAM_PW);
  });

  it('logs the client in and logs in to PostgreSQL as u_scram with the proved ClientKey', async () => {
    const got = await loginAndAsk(p, 'u_scram', SCRAM_PW);
    expect(got).toMatchObject({ who: 'u_scram', answer: 42 });
    const seen = await cluster.query(cluster.primary, 'SELECT usename::text AS u FROM pg_stat_activity WHERE pid = $1', [got.pid]);
    expect(seen).toEqual([{ u: 'u_scram' }]);
  });

  it('opens further server connections by pass-through while another client holds one', async () => {
    const a = pgClient(p, { user: 'u_scram', password: SCRAM_PW });
    const b = pgClient(p, { user: 'u_scram', password: SCRAM_PW });
    await a.connect();
    await b.connect();
    try {
      await a.query('BEGIN');
      const pidA = (await a.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      const r = (await b.query('SELECT pg_backend_pid() AS pid, session_user::text AS who')).rows[0];
      expect(r.who).toBe('u_scram');
      expect(r.pid).not.toBe(pidA);
      await a.query('COMMIT');
    } finally {
      await a.end();
      await b.end();
    }
  });

  it('psql logs in the same way', async () => {
    const r = await psql(poolerUrl(p, 'app', 'u_scram'), 'SELECT session_user', SCRAM_PW);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('u_scram');
  });

  it('rejects a wrong password with 28P01', async () => {
    expect((await loginError(p, 'u_scram', 'wrong')).code).toBe('28P01');
  });
});

describe('auth_type = md5 with a SCRAM secret', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await pooler({ settings: { auth_type: 'md5' }, userlist: userlist({ u_scram: scramSecret, u_md5: MD5_PW }) });
  });

  it('uses SCRAM for that user (md5 for the plaintext one) and logs in', async () => {
    expect(await firstAuthRequest(p, 'u_scram')).toEqual({ auth: 10 });
    expect(await firstAuthRequest(p, 'u_md5')).toEqual({ auth: 5 });
    expect(await loginAndAsk(p, 'u_scram', SCRAM_PW)).toMatchObject({ who: 'u_scram', answer: 42 });
    const r = await psql(poolerUrl(p, 'app', 'u_scram'), 'SELECT session_user', SCRAM_PW);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('u_scram');
    expect((await loginError(p, 'u_scram', 'wrong')).code).toBe('28P01');
  });
});

describe('auth_type = trust', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await pooler({ settings: { auth_type: 'trust' }, userlist: userlist({ u_md5: MD5_PW, u_scram: SCRAM_PW }) });
  });

  it('accepts any password (or none) without asking, and logs in to PostgreSQL from the auth_file', async () => {
    expect(await firstAuthRequest(p, 'u_md5')).toEqual({ auth: 0 });
    expect(await loginAndAsk(p, 'u_md5', 'anything at all')).toMatchObject({ who: 'u_md5', answer: 42 });
    expect(await loginAndAsk(p, 'u_scram', undefined)).toMatchObject({ who: 'u_scram', answer: 42 });
    const r = await psql(poolerUrl(p, 'app', 'u_md5'), 'SELECT session_user', 'garbage');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('u_md5');
  });

  it('still rejects a user that auth_file does not list, as an authentication error', async () => {
    // Documented: "trust accepts any user listed in auth_file" (PgBouncer: "The user name must still exist in auth_file").
    const e = await loginError(p, 'not_listed', 'whatever');
    expect(e.code).toMatch(/^28/);
    // Where it matters: PostgreSQL trusts `postgres` from 127.0.0.1, so an unchecked name would get a superuser session.
    const su = await loginError(p, 'postgres', undefined);
    expect(su.code).toMatch(/^28/);
  });
});

describe('password= and user= on the [databases] line', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    const { host, port } = cluster.primary;
    p = await pooler({
      settings: { auth_type: 'trust' },
      // The client's own auth_file entry has no relation to the server login.
      userlist: userlist({ app_client: 'unrelated-secret' }),
      databases: { forced: `host=${host} port=${port} dbname=postgres user=u_md5 password=${MD5_PW}` },
    });
  });

  it('clients log in with trust and pooler logs in to PostgreSQL as the forced user with that password', async () => {
    expect(await loginAndAsk(p, 'app_client', undefined, 'forced')).toMatchObject({ who: 'u_md5', answer: 42 });
    const r = await psql(poolerUrl(p, 'forced', 'app_client'), 'SELECT session_user');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('u_md5');
  });
});

describe('SSLRequest', () => {
  let p: PoolerProcess;
  beforeAll(async () => {
    p = await pooler({ settings: { auth_type: 'md5' }, userlist: userlist({ u_md5: MD5_PW }) });
  });

  it('psql sslmode=prefer connects in the clear after pooler answers N', async () => {
    const r = await psql(`${poolerUrl(p, 'app', 'u_md5')}?sslmode=prefer`, 'SELECT session_user', MD5_PW);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('u_md5');
  });

  it('psql sslmode=require fails with a clear error', async () => {
    const r = await psql(`${poolerUrl(p, 'app', 'u_md5')}?sslmode=require`, 'SELECT 1', MD5_PW);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/server does not support SSL, but SSL was required/);
  });

  it('node-postgres with ssl fails with a clear error and pooler keeps serving', async () => {
    const c = pgClient(p, { user: 'u_md5', password: MD5_PW, ssl: { rejectUnauthorized: false } });
    await expect(c.connect()).rejects.toThrow(/does not support SSL/);
    await c.end().catch(() => {});
    expect(await loginAndAsk(p, 'u_md5', MD5_PW)).toMatchObject({ who: 'u_md5' });
  });
});
