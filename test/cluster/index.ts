// Public entry of the PostgreSQL cluster fixture (primary + streaming replicas) used by integration tests, the demo and benchmarks.
import { findPgBinDir } from './binaries.ts';
import { dockerRunning, startDockerCluster } from './docker.ts';
import { startLocalCluster } from './local.ts';
import type { Cluster, ClusterOptions } from './types.ts';

export type { Cluster, ClusterOptions, PgNode } from './types.ts';
export { freePort } from './ports.ts';

/** Starts a primary and opts.replicas streaming replicas; resolves once every replica streams. Always destroy() it. */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const binDir = findPgBinDir();
  if (binDir) return startLocalCluster(binDir, opts);
  if (await dockerRunning()) return startDockerCluster(opts);
  throw new Error(
    'PostgreSQL server binaries (initdb, pg_basebackup) were not found and Docker is not running: install PostgreSQL (Debian: apt-get install -y postgresql) or start Docker.',
  );
}
