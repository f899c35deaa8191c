// The three things pgbench is pointed at (PostgreSQL itself, pooler, PgBouncer) behind one shape, with their new log problems.
import { readFileSync } from 'node:fs';
import type { Cluster } from '../../test/cluster/index.ts';
import type { PoolerProcess } from '../../test/helpers/pooler-process.ts';
import type { Endpoint } from './pgbench.ts';
import type { Pgbouncer } from './pgbouncer.ts';
import type { TargetName } from './types.ts';

export interface Target {
  name: TargetName;
  endpoint: Endpoint;
  /** the proxy's PID, whose CPU and memory are measured; undefined for direct */
  pid: number | undefined;
  /** warnings and errors the proxy logged since the last call */
  newProblems(): string[];
}

export function directTarget(cluster: Cluster): Target {
  const p = cluster.primary;
  return { name: 'direct', endpoint: { host: p.host, port: p.port, db: 'postgres', user: 'postgres' }, pid: undefined, newProblems: () => [] };
}

/** Lines appended to a growing text since the previous call, complete lines only. */
function tailer(read: () => string): () => string[] {
  let offset = 0;
  return () => {
    const text = read();
    const end = text.lastIndexOf('\n') + 1;
    if (end <= offset) return [];
    const lines = text.slice(offset, end).split('\n').filter((l) => l.trim());
    offset = end;
    return lines;
  };
}

/** name: pooler-ryw-off for the split cluster's pooler with read_your_writes = off, else pooler */
export function poolerTarget(pooler: PoolerProcess, name: 'pooler' | 'pooler-ryw-off' = 'pooler'): Target {
  const next = tailer(() => pooler.logs());
  return {
    name,
    endpoint: { host: pooler.host, port: pooler.port, db: 'app', user: 'postgres' },
    pid: pooler.pid,
    newProblems: () =>
      next().filter((line) => {
        try {
          // pino levels: 40 warn, 50 error, 60 fatal. log_level = warn already drops the rest.
          return Number(JSON.parse(line).level ?? 100) >= 40;
        } catch {
          return true; // not a JSON log line, e.g. a crash trace
        }
      }),
  };
}

export function pgbouncerTarget(b: Pgbouncer): Target {
  const next = tailer(() => {
    try {
      return readFileSync(b.logFile, 'utf8');
    } catch {
      return '';
    }
  });
  return {
    name: 'pgbouncer',
    endpoint: { host: b.host, port: b.port, db: 'app', user: 'postgres' },
    pid: b.pid,
    newProblems: () => next().filter((l) => /\b(WARNING|ERROR|FATAL)\b/.test(l)),
  };
}
