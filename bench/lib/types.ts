// Shapes shared by the bench runner and its report: one pgbench run, and the rounds of a case/target folded together.

import type { PgbenchResult } from './pgbench.ts';

export type TargetName = 'direct' | 'pooler' | 'pgbouncer';

/** One pgbench run: what pgbench reported (its error lines are folded into `problems`) plus the proxy's cost. */
export interface RunRecord extends Omit<PgbenchResult, 'errors' | 'stdout'> {
  caseId: string;
  target: TargetName;
  round: number;
  /** proxy CPU (user + system) per processed transaction, µs; NaN for direct */
  cpuUsPerTx: number;
  /** proxy VmRSS at the end of the run, MB; NaN for direct */
  rssMb: number;
  /** proxy VmHWM (peak RSS since it started) at the end of the run, MB; NaN for direct */
  hwmMb: number;
  /** pgbench error lines and proxy warnings/errors logged during the run */
  problems: string[];
}

export interface Summary {
  caseId: string;
  title: string;
  target: TargetName;
  /** medians over rounds (for the peak: the maximum) */
  tps: number;
  latencyMs: number;
  cpuUsPerTx: number;
  rssMb: number;
  hwmMb: number;
  /** totals over rounds */
  failed: number;
  abortedClients: number;
  rounds: number;
}

export interface Ratios {
  caseId: string;
  title: string;
  tpsPoolerVsPgbouncer: number;
  tpsPoolerVsDirect: number;
  cpuPoolerVsPgbouncer: number;
}

export interface Machine {
  nproc: number;
  cpu: string;
  kernel: string;
  node: string;
  postgres: string;
  pgbench: string;
  pgbouncer: string;
}

export interface BenchConfig {
  seconds: number;
  rounds: number;
  scale: number;
  threads: number;
  poolSize: number;
}
