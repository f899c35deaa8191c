// Describes the machine and software versions a bench ran on, so results from different hosts are not compared blindly.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, release } from 'node:os';
import { promisify } from 'node:util';
import type { Cluster } from '../../test/cluster/index.ts';
import { PGBENCH } from './pgbench.ts';
import { pgbouncerVersion } from './pgbouncer.ts';
import type { Machine } from './types.ts';

const run = promisify(execFile);

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1]!.trim();
  } catch {
    // Not Linux: fall back to what Node knows.
  }
  return cpus()[0]?.model ?? 'unknown CPU';
}

export async function describeMachine(cluster: Cluster, pgbouncerBin: string | undefined): Promise<Machine> {
  const [row] = await cluster.query(cluster.primary, 'SHOW server_version');
  const pgbench = (await run(PGBENCH, ['--version'])).stdout.trim();
  return {
    nproc: availableParallelism(),
    cpu: cpuModel(),
    kernel: release(),
    node: process.version,
    postgres: String(row.server_version),
    pgbench,
    pgbouncer: pgbouncerBin ? await pgbouncerVersion(pgbouncerBin) : 'PgBouncer not available',
  };
}
