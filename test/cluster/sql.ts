// SQL-level fixture operations (queries, replay control, replication waits) shared by the local and Docker clusters.
import pg from 'pg';
import type { PgNode } from './types.ts';
import { waitFor } from './procs.ts';

export const SUPERUSER = 'postgres';

export function connectionString(node: PgNode, db = 'postgres', user = SUPERUSER): string {
  return `postgresql://${encodeURIComponent(user)}@${node.host}:${node.port}/${encodeURIComponent(db)}`;
}

export async function query(node: PgNode, sql: string, params?: unknown[]): Promise<any[]> {
  const client = new pg.Client({
    host: node.host,
    port: node.port,
    user: SUPERUSER,
    database: 'postgres',
    connectionTimeoutMillis: 10_000,
    application_name: 'pg-fixture',
  });
  // A server killed mid-query emits 'error' on the client; without a listener that would crash the process.
  client.on('error', () => {});
  try {
    await client.connect();
    const res = await client.query(sql, params);
    return res.rows;
  } finally {
    await client.end().catch(() => {});
  }
}

export async function pauseReplay(node: PgNode): Promise<void> {
  await query(node, 'select pg_wal_replay_pause()');
  // Pausing is only requested by the call above; the startup process acknowledges it a little later.
  await waitFor(`replay on ${node.name} to pause`, async () => {
    const [row] = await query(node, 'select pg_get_wal_replay_pause_state() as s');
    return row.s === 'paused';
  });
}

export async function resumeReplay(node: PgNode): Promise<void> {
  await query(node, 'select pg_wal_replay_resume()');
}

export async function promote(node: PgNode): Promise<void> {
  await query(node, 'select pg_promote(true, 60)');
  await waitFor(`${node.name} to leave recovery`, async () => {
    const [row] = await query(node, 'select pg_is_in_recovery() as r');
    return row.r === false;
  });
  node.role = 'primary';
}

/** Waits until replica streams from upstream (seen in upstream's pg_stat_replication). */
export async function waitStreaming(upstream: PgNode, replicas: PgNode[], timeoutMs = 30_000): Promise<void> {
  if (replicas.length === 0) return;
  const names = replicas.map((r) => r.name);
  await waitFor(
    `${names.join(', ')} to stream from ${upstream.name}`,
    async () => {
      const rows = await query(
        upstream,
        "select application_name from pg_stat_replication where state = 'streaming' and application_name = any($1)",
        [names],
      );
      return new Set(rows.map((r) => r.application_name)).size === names.length;
    },
    { timeoutMs },
  );
}

/** Waits until each replica streams from upstream and has replayed everything upstream had written when called. */
export async function waitCaughtUp(upstream: PgNode, replicas: PgNode[], timeoutMs = 30_000): Promise<void> {
  if (replicas.length === 0) return;
  await waitStreaming(upstream, replicas, timeoutMs);
  const [{ lsn }] = await query(upstream, 'select pg_current_wal_lsn()::text as lsn');
  await Promise.all(
    replicas.map((r) =>
      // Asking the replica itself is immediate; pg_stat_replication.replay_lsn only moves with status messages.
      waitFor(
        `${r.name} to replay up to ${lsn}`,
        async () => {
          const [row] = await query(r, 'select pg_last_wal_replay_lsn() >= $1::pg_lsn as ok', [lsn]);
          return row.ok === true;
        },
        { timeoutMs },
      ),
    ),
  );
}
