// Which node of the split cluster ran a run's statements, counted with pg_stat_statements on every node.
//
// pg_stat_statements rather than pg_stat_database.xact_commit: PostgreSQL 15 backends flush their database counters
// at most once a second and an idle one up to 10 s later, so a pool's idle server connections would hide the last
// second of every run; pg_stat_statements counts in shared memory when a statement ends. Only statements on pgbench's
// tables count, so the topology monitor's checks and pooler's own queries (e.g. the WAL position after a write) do not.
import type { Cluster } from '../../test/cluster/index.ts';
import type { NodeStatements } from './types.ts';

/** postgresql.conf settings the split cluster needs for the counting. */
export const SPLIT_CLUSTER_SETTINGS: Record<string, string> = { shared_preload_libraries: 'pg_stat_statements' };

/** Creates the extension on the primary (replicas get it by replication) and waits until they have it. */
export async function installStatementCounting(cluster: Cluster): Promise<void> {
  await cluster.query(cluster.primary, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  await cluster.waitForReplication();
}

export async function resetStatements(cluster: Cluster): Promise<void> {
  await Promise.all(cluster.nodes.map((n) => cluster.query(n, 'SELECT pg_stat_statements_reset()')));
}

// pg_stat_statements keeps the text with constants replaced by $n, so this query never counts itself.
const COUNT_SQL = `
  SELECT coalesce(sum(calls) FILTER (WHERE query ~* '^\\s*select\\M'), 0)::float8 AS reads,
         coalesce(sum(calls) FILTER (WHERE query !~* '^\\s*select\\M'), 0)::float8 AS writes
    FROM pg_stat_statements
   WHERE query LIKE '%pgbench\\_%'`;

/** What every node executed since resetStatements, in the cluster's node order (primary first). */
export async function countStatements(cluster: Cluster): Promise<NodeStatements[]> {
  return Promise.all(
    cluster.nodes.map(async (n) => {
      const [row] = await cluster.query(n, COUNT_SQL);
      return { node: n.name, role: n.role, reads: Number(row.reads), writes: Number(row.writes) };
    }),
  );
}

/** Per node sums over runs (rounds); null when none of them was counted. */
export function sumStatements(lists: (NodeStatements[] | null)[]): NodeStatements[] | null {
  const counted = lists.filter((l): l is NodeStatements[] => l !== null);
  if (counted.length === 0) return null;
  const out = new Map<string, NodeStatements>();
  for (const list of counted) {
    for (const n of list) {
      const seen = out.get(n.node);
      if (seen) {
        seen.reads += n.reads;
        seen.writes += n.writes;
      } else {
        out.set(n.node, { ...n });
      }
    }
  }
  return [...out.values()];
}

/** Reads the replicas served, 0..1; NaN when there were no reads. */
export function replicaReadShare(nodes: NodeStatements[]): number {
  const reads = nodes.reduce((a, n) => a + n.reads, 0);
  const onReplicas = nodes.filter((n) => n.role === 'replica').reduce((a, n) => a + n.reads, 0);
  return reads > 0 ? onReplicas / reads : NaN;
}

/** 0.4936 → "49.4%", 0.95 → "95%". */
export function percent(share: number): string {
  if (!Number.isFinite(share)) return '-';
  return `${(share * 100).toFixed(1).replace(/\.0$/, '')}%`;
}

/** Each node's share of all the statements: "primary 2.0%, replica1 49.0%, replica2 49.0%". */
export function formatShares(nodes: NodeStatements[]): string {
  const total = nodes.reduce((a, n) => a + n.reads + n.writes, 0);
  if (total === 0) return 'no statements counted';
  return nodes.map((n) => `${n.node} ${percent((n.reads + n.writes) / total)}`).join(', ');
}
