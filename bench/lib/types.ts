// Shapes shared by the bench runner and its report: one pgbench run, and the rounds of a case/target folded together.

import type { ErrorMessage } from './outcome.ts';
import type { PgbenchResult } from './pgbench.ts';

/**
 * pooler-ryw-off exists on the split cluster only: pooler with read_your_writes = off, the baseline the default
 * (client, the `pooler` target there) is priced against.
 */
export type TargetName = 'direct' | 'pooler' | 'pgbouncer' | 'pooler-ryw-off';

/** Statements on pgbench's tables one node executed during a run (pg_stat_statements), by what they do. */
export interface NodeStatements {
  node: string;
  role: 'primary' | 'replica';
  /** SELECTs */
  reads: number;
  /** everything else: UPDATE, INSERT */
  writes: number;
}

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
  /** per node of the split cluster, what it executed during the run; null for cases on the cluster without replicas */
  statements: NodeStatements[] | null;
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
  /** the rounds' statements per node, summed; null when not counted */
  statements: NodeStatements[] | null;
}

/** What read_your_writes = client costs against off, for one case (pooler-ryw-off vs pooler on the split cluster). */
export interface RywCost {
  caseId: string;
  title: string;
  tpsOff: number;
  tpsClient: number;
  /** tpsClient / tpsOff */
  tpsClientVsOff: number;
  latencyOffMs: number;
  latencyClientMs: number;
  /** mean latency difference per pgbench transaction divided by the write transactions in it */
  extraMsPerWriteTx: number;
  /** pooler's CPU per pgbench transaction */
  cpuUsPerTxOff: number;
  cpuUsPerTxClient: number;
  /** reads served by replicas with off and with client (0..1), NaN when no read was counted */
  replicaReadsOff: number;
  replicaReadsClient: number;
  /** "n/a — <target> fails: …" when either side failed, in which case the numbers above are not a comparison */
  notComparable: string | null;
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

/** Whether pooler on the split cluster sent a case's reads to the replicas as much as the case asks (replicaReadGoal). */
export interface SplitGoal {
  caseId: string;
  title: string;
  /** reads served by replicas over the case's rounds through pooler, 0..1; NaN when no read was counted */
  replicaReads: number;
  goal: number;
  met: boolean;
}
