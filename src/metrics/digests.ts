// Prometheus series for query digests (the most called top-K) and rate-limit rules, read from live state at scrape time.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { DigestStat, DigestStats } from '../stats/digest-stats.ts';
import type { Limiter } from '../limits/limiter.ts';

/** Long statements would make huge label values: the digest id is the key, the text a hint. */
const QUERY_LABEL_CHARS = 120;
const DIGEST_LABELS = ['digest', 'database', 'user', 'query'] as const;
/** quantile "0" and "1" are the fastest and slowest seen, so a reader can check the others lie between. */
const QUANTILES = [0, 0.5, 0.95, 0.99, 1] as const;

export interface DigestMetricsSource {
  digestStats: DigestStats;
  limiter: Limiter;
  topDigests(): number;
}

type DigestLabels = Record<(typeof DIGEST_LABELS)[number], string>;

function labelsOf(s: DigestStat): DigestLabels {
  const q = s.text.length > QUERY_LABEL_CHARS ? `${s.text.slice(0, QUERY_LABEL_CHARS - 1)}…` : s.text;
  return { digest: s.id, database: s.database, user: s.user, query: q };
}

export function registerDigestMetrics(reg: Registry, src: DigestMetricsSource): void {
  // Every digest series reads the same top-K, computed once per scrape: the first collect of a scrape sorts.
  let snapshot: { at: number; top: { stat: DigestStat; labels: DigestLabels }[] } = { at: -1, top: [] };
  const top = () => {
    const now = performance.now();
    if (now - snapshot.at > 50) {
      snapshot = { at: now, top: src.digestStats.top(src.topDigests()).map((stat) => ({ stat, labels: labelsOf(stat) })) };
    }
    return snapshot.top;
  };

  const digestCounter = (name: string, help: string, value: (s: DigestStat) => number) =>
    new Counter({
      name,
      help,
      labelNames: DIGEST_LABELS,
      registers: [reg],
      collect() {
        this.reset();
        for (const { stat, labels } of top()) this.inc(labels, value(stat));
      },
    });
  digestCounter('pooler_digest_calls_total', 'Statements of the digest that ran (top digests by calls).', (s) => s.calls);
  digestCounter('pooler_digest_errors_total', 'Statements of the digest that ended in an error.', (s) => s.errors);
  digestCounter('pooler_digest_rows_total', 'Rows the digest returned or changed (from CommandComplete).', (s) => s.rows);
  digestCounter('pooler_digest_seconds_total', 'Time the digest ran, from sending it to its last reply.', (s) => s.totalMs / 1000);
  digestCounter('pooler_digest_limited_total', 'Statements of the digest refused by a rate or concurrency limit.', (s) => s.limited);
  digestCounter('pooler_digest_blocked_total', 'Statements of the digest refused by a block rule.', (s) => s.blocked);
  new Counter({
    name: 'pooler_digest_routed_total',
    help: 'Statements of the digest by where they ran.',
    labelNames: [...DIGEST_LABELS, 'role'],
    registers: [reg],
    collect() {
      this.reset();
      for (const { stat, labels } of top()) {
        this.inc({ ...labels, role: 'primary' }, stat.onPrimary);
        this.inc({ ...labels, role: 'replica' }, stat.onReplica);
      }
    },
  });
  new Gauge({
    name: 'pooler_digest_latency_seconds',
    help: 'Latency quantiles of the digest (0 = fastest, 1 = slowest seen).',
    labelNames: [...DIGEST_LABELS, 'quantile'],
    registers: [reg],
    collect() {
      this.reset();
      for (const { stat, labels } of top()) {
        if (stat.calls === 0) continue;
        for (const q of QUANTILES) {
          const ms = q === 0 ? stat.minMs : q === 1 ? stat.maxMs : stat.percentile(q);
          this.set({ ...labels, quantile: String(q) }, ms / 1000);
        }
      }
    },
  });
  new Gauge({
    name: 'pooler_digests',
    help: 'Digests whose statistics are kept (bounded by max_digests).',
    registers: [reg],
    collect() {
      this.set(src.digestStats.size);
    },
  });
  new Counter({
    name: 'pooler_digest_evictions_total',
    help: 'Digest statistics dropped to stay within max_digests (least recently used first).',
    registers: [reg],
    collect() {
      this.reset();
      this.inc(src.digestStats.evictions);
    },
  });

  type RuleValue = (r: Limiter['rules'][number]) => number;
  const ruleSeries = (counter: boolean, name: string, help: string, value: RuleValue) => {
    const config = { name, help, labelNames: ['rule'], registers: [reg] };
    // A counter is read from the rule's own count: reset, then inc by it, is how prom-client sets a counter.
    if (counter) {
      return new Counter({
        ...config,
        collect() {
          this.reset();
          for (const st of src.limiter.rules) this.inc({ rule: st.rule.name }, value(st));
        },
      });
    }
    return new Gauge({
      ...config,
      collect() {
        this.reset();
        for (const st of src.limiter.rules) this.set({ rule: st.rule.name }, value(st));
      },
    });
  };
  const ruleCounter = (name: string, help: string, value: RuleValue) => ruleSeries(true, name, help, value);
  const ruleGauge = (name: string, help: string, value: RuleValue) => ruleSeries(false, name, help, value);
  ruleCounter('pooler_rate_limit_admitted_total', 'Statements a rate-limit rule let run.', (r) => r.admitted);
  ruleCounter('pooler_rate_limit_limited_total', 'Statements a rule refused for rate or concurrency (waits that ran out included).', (r) => r.limited);
  ruleCounter('pooler_rate_limit_blocked_total', 'Statements a block rule refused.', (r) => r.blocked);
  ruleCounter('pooler_rate_limit_waited_total', 'Statements that waited for a turn (action = wait).', (r) => r.waited);
  ruleCounter('pooler_rate_limit_timed_out_total', 'Waits that ran out (max_wait_ms) and were refused.', (r) => r.timedOut);
  ruleGauge('pooler_rate_limit_running', 'Statements running under the rule now.', (r) => r.running);
  ruleGauge('pooler_rate_limit_queued', 'Statements waiting for a turn under the rule now.', (r) => r.queued);
}
