// The pgbench workloads the bench runs against its targets, and how long and how often.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TargetName } from './types.ts';

export interface BenchCase {
  id: string;
  title: string;
  clients: number;
  /** pgbench arguments besides connection, client/thread count and duration */
  args: string[];
  /** writes to pgbench tables, so vacuum/truncate/checkpoint first as pgbench itself would (we pass -n) */
  writes: boolean;
  /**
   * Runs on the second cluster, a primary with 2 streaming replicas, where pooler has `replicas=` for both and every
   * run also counts which node served the statements (split.ts). Direct and PgBouncer there go to the primary only.
   */
  replicas?: boolean;
  /** the targets this case runs against, in this order; default direct, pooler, PgBouncer */
  targets?: TargetName[];
  /** reads on replicas pooler should reach through the split cluster (0.95 = 95%), reported as met or not */
  replicaReadGoal?: number;
  /** write transactions per pgbench transaction, to turn a latency difference into a cost per write */
  writeTxPerTx?: number;
}

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, not ${JSON.stringify(raw)}`);
  return n;
}

export const SECONDS = positiveInt('BENCH_SECONDS', 10);
export const ROUNDS = positiveInt('BENCH_ROUNDS', 2);
export const SCALE = positiveInt('BENCH_SCALE', 10);
/** pgbench threads; the machine has 2 cores */
export const THREADS = 2;
/** server connections per pool, the same for pooler and PgBouncer */
export const POOL_SIZE = 10;
export const MAX_CLIENT_CONN = 500;

const SCRIPTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts');

export const CASES: BenchCase[] = [
  { id: 'select-10', title: '-S, 10 clients', clients: 10, args: ['-S'], writes: false },
  { id: 'select-100', title: '-S, 100 clients', clients: 100, args: ['-S'], writes: false },
  { id: 'tpcb-50', title: 'TPC-B-like, 50 clients', clients: 50, args: [], writes: true },
  { id: 'select-connect-10', title: '-S -C, 10 clients', clients: 10, args: ['-S', '-C'], writes: false },
  { id: 'select-extended-10', title: '-S -M extended, 10 clients', clients: 10, args: ['-S', '-M', 'extended'], writes: false },
  // Named prepared statements: pgbench Parses "P_0" once per connection, then only Binds/Executes it. In transaction mode
  // the next transaction may get another server, so a proxy must carry the statements over; one that does not makes
  // clients fail, and the report says so instead of giving a ratio (outcome.ts). 10 clients match the pool size;
  // 50 make clients share servers. Keep these last: a proxy that does not manage them leaves "P_0" on its server
  // connections, which changes what later runs through it see (a later Parse fails with "already exists").
  { id: 'select-prepared-10', title: '-S -M prepared, 10 clients', clients: 10, args: ['-S', '-M', 'prepared'], writes: false },
  { id: 'select-prepared-50', title: '-S -M prepared, 50 clients', clients: 50, args: ['-S', '-M', 'prepared'], writes: false },
  // Read/write splitting (split cluster): the same reads spread over 2 replicas, against the primary alone.
  {
    id: 'rw-split-S',
    title: '-S, 20 clients (replicas)',
    clients: 20,
    args: ['-S'],
    writes: false,
    replicas: true,
    replicaReadGoal: 0.95,
  },
  {
    id: 'rw-split-S-prepared',
    title: '-S -M prepared, 20 clients (replicas)',
    clients: 20,
    args: ['-S', '-M', 'prepared'],
    writes: false,
    replicas: true,
    replicaReadGoal: 0.95,
  },
  // The cost of read-your-writes: the same pooler and cluster with read_your_writes = off and = client (the default).
  // A write then a read of the row it wrote, as two autocommit statements: with client the read must see the write.
  {
    id: 'ryw-update-select',
    title: 'UPDATE then SELECT the row, 20 clients (replicas)',
    clients: 20,
    args: ['-f', join(SCRIPTS, 'update-select.sql'), '-s', String(SCALE)],
    writes: true,
    replicas: true,
    targets: ['pooler-ryw-off', 'pooler'],
    writeTxPerTx: 1,
  },
  // One client: nothing queues, so the latency difference is what one write costs that client, not CPU contention.
  {
    id: 'ryw-update-select-1',
    title: 'UPDATE then SELECT the row, 1 client (replicas)',
    clients: 1,
    args: ['-f', join(SCRIPTS, 'update-select.sql'), '-s', String(SCALE)],
    writes: true,
    replicas: true,
    targets: ['pooler-ryw-off', 'pooler'],
    writeTxPerTx: 1,
  },
  {
    id: 'ryw-tpcb',
    title: 'TPC-B-like, 20 clients (replicas)',
    clients: 20,
    args: [],
    writes: true,
    replicas: true,
    targets: ['pooler-ryw-off', 'pooler'],
    writeTxPerTx: 1,
  },
];

/** BENCH_CASES=id1,id2 runs only those cases (in CASES order); unset or empty runs them all. */
function selectCases(): BenchCase[] {
  const raw = process.env.BENCH_CASES?.trim();
  if (!raw) return CASES;
  const ids = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = ids.filter((id) => !CASES.some((c) => c.id === id));
  if (unknown.length) {
    throw new Error(`BENCH_CASES: unknown case ${unknown.join(', ')}; known: ${CASES.map((c) => c.id).join(', ')}`);
  }
  return CASES.filter((c) => ids.includes(c.id));
}

/** The cases this run measures: CASES, narrowed by BENCH_CASES. */
export const SELECTED_CASES = selectCases();

export function pgbenchArgs(c: BenchCase): string[] {
  // -n: the vacuum pgbench would run first goes through the proxy; we do it directly instead (see prepare in run.ts).
  return [...c.args, '-n', '-c', String(c.clients), '-j', String(Math.min(THREADS, c.clients)), '-T', String(SECONDS)];
}
