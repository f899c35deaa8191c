// Folds run records into per-case summaries and ratios, and renders them as markdown.
import type { BenchCase } from './cases.ts';
import { formatShares, percent, replicaReadShare, sumStatements } from './split.ts';
import { max, median, ratio, sum } from './stats.ts';
import type { BenchConfig, Machine, RatioKey, Ratios, RunRecord, RywCost, SplitGoal, Summary, TargetName } from './types.ts';

/** Distinct errors over failed rounds, counts dropped (they are in the runs); the first failure when pgbench printed none. */
function summaryFailure(failed: RunRecord[]): string | null {
  if (failed.length === 0) return null;
  const messages = [...new Set(failed.flatMap((r) => r.errorMessages.map((e) => e.message)))];
  return messages.length ? messages.join('; ') : failed[0]!.failure;
}

export function summarize(cases: BenchCase[], targets: TargetName[], runs: RunRecord[]): Summary[] {
  const out: Summary[] = [];
  for (const c of cases) {
    for (const t of c.targets ?? targets) {
      const rs = runs.filter((r) => r.caseId === c.id && r.target === t);
      if (rs.length === 0) continue;
      const failed = rs.filter((r) => r.failure !== null);
      out.push({
        caseId: c.id,
        title: c.title,
        target: t,
        tps: median(rs.map((r) => r.tps)),
        latencyMs: median(rs.map((r) => r.latencyMs)),
        cpuUsPerTx: median(rs.map((r) => r.cpuUsPerTx)),
        rssMb: median(rs.map((r) => r.rssMb)),
        hwmMb: max(rs.map((r) => r.hwmMb)),
        failed: sum(rs.map((r) => r.failed)),
        abortedClients: sum(rs.map((r) => r.abortedClients)),
        rounds: rs.length,
        failedRounds: failed.length,
        failure: summaryFailure(failed),
        statements: sumStatements(rs.map((r) => r.statements)),
      });
    }
  }
  return out;
}

/**
 * pooler/PgBouncer and pooler/direct per case. A ratio with a failed side is NaN, and notComparable says which side
 * failed and how; labels name the targets there (e.g. pgbouncer → "PgBouncer 1.18.0").
 */
export function ratios(cases: BenchCase[], summaries: Summary[], labels: Record<TargetName, string>): Ratios[] {
  const get = (id: string, t: TargetName) => summaries.find((s) => s.caseId === id && s.target === t);
  // Cases without direct or PgBouncer (the read-your-writes pair) compare pooler with itself: rywCosts().
  const compared = cases.filter(
    (c) => !c.targets || (c.targets.includes('pooler') && (c.targets.includes('direct') || c.targets.includes('pgbouncer'))),
  );
  return compared.map((c) => {
    const p = get(c.id, 'pooler');
    const b = get(c.id, 'pgbouncer');
    const d = get(c.id, 'direct');
    const notComparable: Partial<Record<RatioKey, string>> = {};
    /** num over den, or NaN with the reason recorded under key when either side failed */
    const cmp = (key: RatioKey, num: Summary | undefined, den: Summary | undefined, value: (s: Summary) => number): number => {
      const failing = [num, den].filter((s): s is Summary => s !== undefined && s.failedRounds > 0);
      if (failing.length === 0) return ratio(num ? value(num) : NaN, den ? value(den) : NaN);
      // Both sides failing the same way is said once: "pooler and PgBouncer 1.18.0 fail: …".
      const byFailure = new Map<string | null, string[]>();
      for (const s of failing) byFailure.set(s.failure, [...(byFailure.get(s.failure) ?? []), labels[s.target]]);
      const parts = [...byFailure].map(([why, who]) => `${who.join(' and ')} ${who.length > 1 ? 'fail' : 'fails'}: ${why}`);
      notComparable[key] = `n/a — ${parts.join('; ')}`;
      return NaN;
    };
    return {
      caseId: c.id,
      title: c.title,
      tpsPoolerVsPgbouncer: cmp('tpsPoolerVsPgbouncer', p, b, (s) => s.tps),
      tpsPoolerVsDirect: cmp('tpsPoolerVsDirect', p, d, (s) => s.tps),
      cpuPoolerVsPgbouncer: cmp('cpuPoolerVsPgbouncer', p, b, (s) => s.cpuUsPerTx),
      notComparable,
    };
  });
}

/** Why a comparison of a with b says nothing, or null: "n/a — pooler fails: …", as in ratios(). */
function failingSides(sides: (Summary | undefined)[], labels: Record<TargetName, string>): string | null {
  const failing = sides.filter((s): s is Summary => s !== undefined && s.failedRounds > 0);
  if (failing.length === 0) return null;
  return `n/a — ${failing.map((s) => `${labels[s.target]} fails: ${s.failure}`).join('; ')}`;
}

/** read_your_writes = client (target pooler) priced against off (pooler-ryw-off), for the cases that run both. */
export function rywCosts(cases: BenchCase[], summaries: Summary[], labels: Record<TargetName, string>): RywCost[] {
  const get = (id: string, t: TargetName) => summaries.find((s) => s.caseId === id && s.target === t);
  const out: RywCost[] = [];
  for (const c of cases) {
    const off = get(c.id, 'pooler-ryw-off');
    const client = get(c.id, 'pooler');
    if (!off || !client) continue;
    const notComparable = failingSides([off, client], labels);
    const writes = c.writeTxPerTx ?? 1;
    out.push({
      caseId: c.id,
      title: c.title,
      tpsOff: off.tps,
      tpsClient: client.tps,
      tpsClientVsOff: notComparable ? NaN : ratio(client.tps, off.tps),
      latencyOffMs: off.latencyMs,
      latencyClientMs: client.latencyMs,
      extraMsPerWriteTx: notComparable ? NaN : (client.latencyMs - off.latencyMs) / writes,
      cpuUsPerTxOff: off.cpuUsPerTx,
      cpuUsPerTxClient: client.cpuUsPerTx,
      replicaReadsOff: off.statements ? replicaReadShare(off.statements) : NaN,
      replicaReadsClient: client.statements ? replicaReadShare(client.statements) : NaN,
      notComparable,
    });
  }
  return out;
}

/** The share of reads pooler sent to replicas against each case's replicaReadGoal. */
export function splitGoals(cases: BenchCase[], summaries: Summary[]): SplitGoal[] {
  return cases.flatMap((c) => {
    const s = summaries.find((x) => x.caseId === c.id && x.target === 'pooler');
    if (c.replicaReadGoal === undefined || !s?.statements) return [];
    const replicaReads = replicaReadShare(s.statements);
    return [{ caseId: c.id, title: c.title, replicaReads, goal: c.replicaReadGoal, met: replicaReads >= c.replicaReadGoal }];
  });
}

/** One line per failed run, in run order, for the report's Failures list. */
export function failures(cases: BenchCase[], runs: RunRecord[]): string[] {
  return runs
    .filter((r) => r.failure !== null)
    .map((r) => `${cases.find((c) => c.id === r.caseId)?.title ?? r.caseId}, round ${r.round}, ${r.target}: ${r.failure}`);
}

const fmt = (v: number, digits: number) => (Number.isFinite(v) ? v.toFixed(digits) : '-');

/** Markdown table cells must not contain a bare "|". */
const cell = (text: string) => text.replaceAll('|', '\\|');

function failedCell(s: Summary): string {
  return s.abortedClients > 0 ? `${s.failed} (+${s.abortedClients} clients aborted)` : String(s.failed);
}

function outcomeCell(s: Summary): string {
  return s.failedRounds === 0 ? 'ok' : `**fails** (${s.failedRounds}/${s.rounds} rounds)`;
}

function ratioCell(r: Ratios, key: RatioKey): string {
  return cell(r.notComparable[key] ?? fmt(r[key], 2));
}

function goalCell(s: Summary, goals: SplitGoal[]): string {
  const g = s.target === 'pooler' ? goals.find((x) => x.caseId === s.caseId) : undefined;
  if (!g) return '';
  return `≥ ${percent(g.goal)}: ${g.met ? 'met' : '**not met**'}`;
}

function splitSection(split: Summary[], goals: SplitGoal[], poolSize: number): string[] {
  return [
    '## Read/write splitting',
    '',
    'Cases marked (replicas) run on a second cluster, a primary and 2 streaming replicas (asynchronous, same machine). ' +
      `There pooler has \`replicas=\` for both (a pool of ${poolSize} per node), transaction pooling and the default ` +
      'lag_check_interval; read_your_writes is client (the default) except for target pooler-ryw-off. ' +
      'Direct and PgBouncer go to the primary only. Even rounds run the targets in reverse order.',
    '',
    '| Case | Target | Statements per node | Reads on replicas | Goal |',
    '| --- | --- | --- | ---: | --- |',
    ...split.map(
      (s) => `| ${s.title} | ${s.target} | ${formatShares(s.statements!)} | ${percent(replicaReadShare(s.statements!))} | ${goalCell(s, goals)} |`,
    ),
    '',
    'Statements per node: each node\'s share of the statements on pgbench\'s tables over all rounds, from pg_stat_statements ' +
      '(reset before each run); reads are the SELECTs among them. Monitoring and pooler\'s own queries are not counted.',
  ];
}

function rywSection(costs: RywCost[]): string[] {
  return [
    '## Cost of read-your-writes',
    '',
    '| Case | TPS off | TPS client | TPS client/off | Latency off ms | Latency client ms | Extra ms per write tx | CPU µs/tx off / client | Reads on replicas off / client |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...costs.map(
      (r) =>
        `| ${r.title} | ${fmt(r.tpsOff, 0)} | ${fmt(r.tpsClient, 0)} | ${cell(r.notComparable ?? fmt(r.tpsClientVsOff, 2))} | ` +
        `${fmt(r.latencyOffMs, 3)} | ${fmt(r.latencyClientMs, 3)} | ${r.notComparable ? 'n/a' : fmt(r.extraMsPerWriteTx, 3)} | ` +
        `${fmt(r.cpuUsPerTxOff, 1)} / ${fmt(r.cpuUsPerTxClient, 1)} | ` +
        `${percent(r.replicaReadsOff)} / ${percent(r.replicaReadsClient)} |`,
    ),
    '',
    'Same pooler settings and cluster, read_your_writes = off (target pooler-ryw-off) against client (target pooler). ' +
      'With client, pooler reads the primary\'s WAL position after each write transaction and sends the connection\'s ' +
      'later reads only to replicas that have replayed it, else to the primary. Extra ms per write tx is the difference ' +
      'in pgbench\'s mean latency per transaction divided by the write transactions in one (1 in both scripts): the round ' +
      'trip plus any reads moved to the primary. With many clients on few cores that difference is mostly queueing; ' +
      'the 1-client case shows what one write costs a client, and CPU µs/tx what it costs pooler.',
  ];
}

export function markdown(o: {
  machine: Machine;
  config: BenchConfig;
  summaries: Summary[];
  ratios: Ratios[];
  startedAt: string;
  durationS: number;
  /** see failures() */
  failures: string[];
  problems: string[];
  /** see rywCosts() and splitGoals(); empty when no such case ran */
  rywCosts: RywCost[];
  splitGoals: SplitGoal[];
}): string {
  const m = o.machine;
  const c = o.config;
  const lines = [
    `# pooler benchmark (${o.startedAt})`,
    '',
    `Machine: ${m.nproc} CPUs (${m.cpu}), Linux ${m.kernel}, Node ${m.node}, PostgreSQL ${m.postgres}, ${m.pgbench}, ${m.pgbouncer}.`,
    `pgbench scale ${c.scale}, -j ${c.threads}, -T ${c.seconds} s, ${c.rounds} interleaved rounds per case and target (medians shown; failed is the total). ` +
      `Proxies: transaction pooling, pool size ${c.poolSize}; everything on one machine, over loopback. Total run time ${Math.round(o.durationS)} s.`,
    '',
    '| Case | Target | TPS | Mean latency ms | Failed | CPU µs/tx | RSS MB | Peak RSS MB | Outcome |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...o.summaries.map(
      (s) =>
        `| ${s.title} | ${s.target} | ${fmt(s.tps, 0)} | ${fmt(s.latencyMs, 3)} | ${failedCell(s)} | ${fmt(s.cpuUsPerTx, 1)} | ${fmt(s.rssMb, 1)} | ${fmt(s.hwmMb, 1)} | ${outcomeCell(s)} |`,
    ),
    '',
    '| Case | TPS pooler/PgBouncer | TPS pooler/direct | CPU µs/tx pooler/PgBouncer |',
    '| --- | ---: | ---: | ---: |',
    ...o.ratios.map(
      (r) =>
        `| ${r.title} | ${ratioCell(r, 'tpsPoolerVsPgbouncer')} | ${ratioCell(r, 'tpsPoolerVsDirect')} | ${ratioCell(r, 'cpuPoolerVsPgbouncer')} |`,
    ),
    '',
    'CPU µs/tx is the proxy process\'s user+system time over the run divided by the transactions pgbench completed; ' +
      'RSS is VmRSS at the end of a run, Peak RSS the process\'s VmHWM. Direct has no proxy, hence "-".',
    'A target fails a case when, in any round, pgbench exits non-zero, is killed as hung, aborts a client or prints an error; ' +
      'its numbers are then what pgbench printed and no ratio is taken against it ("n/a — <target> fails: <errors>").',
  ];
  const split = o.summaries.filter((s) => s.statements !== null);
  if (split.length) lines.push('', ...splitSection(split, o.splitGoals, c.poolSize));
  if (o.rywCosts.length) lines.push('', ...rywSection(o.rywCosts));
  if (o.failures.length) {
    lines.push('', 'Failed runs:', '', ...o.failures.slice(0, 50).map((f) => `- ${cell(f)}`));
    if (o.failures.length > 50) lines.push(`- … and ${o.failures.length - 50} more (see the JSON)`);
  }
  if (o.problems.length) {
    lines.push('', 'Problems seen during the runs:', '', ...o.problems.slice(0, 50).map((p) => `- ${cell(p)}`));
    if (o.problems.length > 50) lines.push(`- … and ${o.problems.length - 50} more (see the JSON)`);
  }
  return lines.join('\n') + '\n';
}
