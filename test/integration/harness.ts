// Shared setup for integration tests: a real cluster, a pooler process in front of it, and clients for both.

import type { EventEmitter } from 'node:events';
import pg from 'pg';
import postgres from 'postgres';
import { startCluster, type Cluster } from '../cluster/index.ts';
import { startPooler, type PoolerProcess } from '../helpers/pooler-process.ts';

export type { Cluster, PoolerProcess };
export { startCluster, startPooler };

export interface PoolerSetup {
  /** `[pooler]` keys besides the defaults below (values as written in the ini) */
  settings?: Record<string, string | number>;
  /** extra `[databases]` lines, name → connection string; `app` is always there */
  databases?: Record<string, string>;
  /** extra text appended to the `[databases]` line of `app` (e.g. `pool_mode=session`) */
  appExtra?: string;
  /** userlist.txt content; default trusts `postgres` */
  userlist?: string;
  /** ini text appended after `[pooler]` (e.g. `[rate_limit.NAME]` sections) */
  extra?: string;
}

/** The ini text for a pooler in front of `cluster.primary`, database `app` → PostgreSQL database `postgres`. */
export function poolerIni(cluster: Cluster, setup: PoolerSetup = {}): string {
  const p = cluster.primary;
  const settings: Record<string, string | number> = {
    listen_addr: '127.0.0.1',
    listen_port: '${PORT}',
    auth_type: 'trust',
    auth_file: '${DIR}/userlist.txt',
    pool_mode: 'transaction',
    default_pool_size: 10,
    // POOLER_LOG_LEVEL=debug when chasing a failure: the logs come back through pooler.logs()
    log_level: process.env.POOLER_LOG_LEVEL ?? 'info',
    ...setup.settings,
  };
  const dbs: Record<string, string> = {
    app: `host=${p.host} port=${p.port} dbname=postgres${setup.appExtra ? ' ' + setup.appExtra : ''}`,
    ...setup.databases,
  };
  return [
    '[databases]',
    ...Object.entries(dbs).map(([k, v]) => `${k} = ${v}`),
    '',
    '[pooler]',
    ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`),
    '',
    ...(setup.extra ? [setup.extra, ''] : []),
  ].join('\n');
}

export function startPoolerFor(cluster: Cluster, setup: PoolerSetup = {}): Promise<PoolerProcess> {
  return startPooler({
    ini: poolerIni(cluster, setup),
    files: { 'userlist.txt': setup.userlist ?? '"postgres" ""\n' },
  });
}

/** A node-postgres client connected through pooler (not yet connected: call connect()). */
export function pgClient(pooler: PoolerProcess, opts: Partial<pg.ClientConfig> = {}): pg.Client {
  const c = new pg.Client({ host: pooler.host, port: pooler.port, user: 'postgres', database: 'app', ...opts });
  // An error event on an idle client would otherwise crash the test process.
  c.on('error', () => {});
  return c;
}

/** A postgres.js instance through pooler: one connection, notices ignored; `opts` may override anything. */
export function postgresClient(pooler: PoolerProcess, opts: postgres.Options<{}> = {}): ReturnType<typeof postgres> {
  return postgres({ host: pooler.host, port: pooler.port, user: 'postgres', database: 'app', max: 1, onnotice: () => {}, ...opts });
}

/** Connection string for command-line tools (psql, pgbench) through pooler. */
export function poolerUrl(pooler: PoolerProcess, db = 'app', user = 'postgres'): string {
  return `postgresql://${user}@${pooler.host}:${pooler.port}/${db}`;
}

/** Resolve when `check` returns a truthy value; polls instead of sleeping a fixed time. */
export async function poll<T>(check: () => Promise<T> | T, what: string, timeoutMs = 10_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Server connections pooler holds to the primary's `postgres` database (seen from PostgreSQL itself). */
export async function serverConnections(cluster: Cluster, db = 'postgres'): Promise<number> {
  const rows = await cluster.query(
    cluster.primary,
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND client_port IS NOT NULL AND application_name <> 'pg-fixture'`,
    [db],
  );
  return rows[0].n as number;
}

export interface ParamStatusMsg {
  parameterName: string;
  parameterValue: string;
}

/** ParameterStatus messages node-postgres receives (it has no public API for them; its Connection emits them). Call before connect(). */
export function watchParameterStatus(c: pg.Client): ParamStatusMsg[] {
  const seen: ParamStatusMsg[] = [];
  (c as unknown as { connection: EventEmitter }).connection.on('parameterStatus', (m: ParamStatusMsg) =>
    seen.push({ parameterName: m.parameterName, parameterValue: m.parameterValue }),
  );
  return seen;
}
