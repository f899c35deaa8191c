// Shapes shared by the bench runner and its report: one pgbench run, and the rounds of a case/target folded together.

import type { ErrorMessage } from './outcome.ts';
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
  /** pgbench's error lines, condensed and counted (see outcome.ts) */
  errorMessages: ErrorMessage[];
  /** pgbench's first error line as printed, null if none */
  firstError: string | null;
  /** why this run is not comparable (pgbench failed, hung, aborted clients or printed errors), null if it is */
  failure: string | null;
  /** pgbench errors (collapsed), a non-zero exit, and proxy warnings/errors logged during the run */
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
  /** rounds whose run had a failure; any makes this target's numbers for the case not comparable */
  failedRounds: number;
  /** the distinct errors of those rounds, or their failure when pgbench printed none; null when every round was clean */
  failure: string | null;
}

export interface Ratios {
  caseId: string;
  title: string;
  tpsPoolerVsPgbouncer: number;
  tpsPoolerVsDirect: number;
  cpuPoolerVsPgbouncer: number;
  /** for each ratio left out (NaN) because a target it divides failed: "n/a — <target> fails: <error>" */
  notComparable: Partial<Record<RatioKey, string>>;
}

export type RatioKey = 'tpsPoolerVsPgbouncer' | 'tpsPoolerVsDirect' | 'cpuPoolerVsPgbouncer';

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
