// Folds run records into per-case summaries and ratios, and renders them as markdown.
import type { BenchCase } from './cases.ts';
import { max, median, ratio, sum } from './stats.ts';
import type { BenchConfig, Machine, Ratios, RunRecord, Summary, TargetName } from './types.ts';

export function summarize(cases: BenchCase[], targets: TargetName[], runs: RunRecord[]): Summary[] {
  const out: Summary[] = [];
  for (const c of cases) {
    for (const t of targets) {
      const rs = runs.filter((r) => r.caseId === c.id && r.target === t);
      if (rs.length === 0) continue;
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
      });
    }
  }
  return out;
}

export function ratios(cases: BenchCase[], summaries: Summary[]): Ratios[] {
  const get = (id: string, t: TargetName) => summaries.find((s) => s.caseId === id && s.target === t);
  return cases.map((c) => {
    const p = get(c.id, 'pooler');
    const b = get(c.id, 'pgbouncer');
    const d = get(c.id, 'direct');
    return {
      caseId: c.id,
      title: c.title,
      tpsPoolerVsPgbouncer: ratio(p?.tps ?? NaN, b?.tps ?? NaN),
      tpsPoolerVsDirect: ratio(p?.tps ?? NaN, d?.tps ?? NaN),
      cpuPoolerVsPgbouncer: ratio(p?.cpuUsPerTx ?? NaN, b?.cpuUsPerTx ?? NaN),
    };
  });
}

const fmt = (v: number, digits: number) => (Number.isFinite(v) ? v.toFixed(digits) : '-');

function failedCell(s: Summary): string {
  return s.abortedClients > 0 ? `${s.failed} (+${s.abortedClients} clients aborted)` : String(s.failed);
}

export function markdown(o: {
  machine: Machine;
  config: BenchConfig;
  summaries: Summary[];
  ratios: Ratios[];
  startedAt: string;
  durationS: number;
  problems: string[];
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
    '| Case | Target | TPS | Mean latency ms | Failed | CPU µs/tx | RSS MB | Peak RSS MB |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...o.summaries.map(
      (s) =>
        `| ${s.title} | ${s.target} | ${fmt(s.tps, 0)} | ${fmt(s.latencyMs, 3)} | ${failedCell(s)} | ${fmt(s.cpuUsPerTx, 1)} | ${fmt(s.rssMb, 1)} | ${fmt(s.hwmMb, 1)} |`,
    ),
    '',
    '| Case | TPS pooler/PgBouncer | TPS pooler/direct | CPU µs/tx pooler/PgBouncer |',
    '| --- | ---: | ---: | ---: |',
    ...o.ratios.map((r) => `| ${r.title} | ${fmt(r.tpsPoolerVsPgbouncer, 2)} | ${fmt(r.tpsPoolerVsDirect, 2)} | ${fmt(r.cpuPoolerVsPgbouncer, 2)} |`),
    '',
    'CPU µs/tx is the proxy process\'s user+system time over the run divided by the transactions pgbench completed; ' +
      'RSS is VmRSS at the end of a run, Peak RSS the process\'s VmHWM. Direct has no proxy, hence "-".',
  ];
  if (o.problems.length) {
    lines.push('', 'Problems seen during the runs:', '', ...o.problems.slice(0, 50).map((p) => `- ${p.replaceAll('|', '\\|')}`));
    if (o.problems.length > 50) lines.push(`- … and ${o.problems.length - 50} more (see the JSON)`);
  }
  return lines.join('\n') + '\n';
}
