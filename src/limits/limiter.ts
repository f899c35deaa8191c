// Finds the rate-limit rule of a statement by its digest (one map lookup) and swaps rules on reload, keeping unchanged ones.
import { ruleSignature, type RateLimitConfig, type RateLimitDefaults, type RateLimitRule } from '../config/rate-limits.ts';
import { RuleState } from './rule-state.ts';

/** Digests per database that get their own default-limit bucket before the buckets start over. */
const MAX_DEFAULT_STATES = 10_000;

export class Limiter {
  /** every configured rule, in file order */
  rules: RuleState[] = [];
  /** rules by digest id; a digest with no rule is a single miss */
  private byDigest = new Map<string, RuleState[]>();
  private defaults: RateLimitDefaults | null = null;
  private defaultsSignature = '';
  /** per database, per digest: the default limit's state, created when a digest is first seen */
  private defaultStates = new Map<string, Map<string, RuleState>>();

  constructor(cfg: RateLimitConfig) {
    this.apply(cfg);
  }

  /** Whether any limit can apply: if not, statements need no digest for limiting. */
  get active(): boolean {
    return this.rules.length > 0 || this.defaults !== null;
  }

  /**
   * The rule that governs a statement of digest `id` run by (database, user), or null. The most specific rule wins
   * (database and user, then database or user, then neither); among equals, the first in the file.
   */
  find(id: string, database: string, user: string): RuleState | null {
    const list = this.byDigest.get(id);
    if (list !== undefined) {
      let best: RuleState | null = null;
      let bestScore = -1;
      for (let i = 0; i < list.length; i++) {
        const st = list[i]!;
        const r = st.rule;
        if ((r.database !== null && r.database !== database) || (r.user !== null && r.user !== user)) continue;
        const score = (r.database !== null ? 2 : 0) + (r.user !== null ? 1 : 0);
        if (score > bestScore) {
          best = st;
          bestScore = score;
        }
      }
      if (best !== null) return best;
    }
    return this.defaults === null ? null : this.defaultFor(id, database);
  }

  private defaultFor(id: string, database: string): RuleState {
    let perDb = this.defaultStates.get(database);
    if (perDb === undefined) {
      perDb = new Map();
      this.defaultStates.set(database, perDb);
    }
    let st = perDb.get(id);
    if (st === undefined) {
      if (perDb.size >= MAX_DEFAULT_STATES) {
        // Bounded like the digest statistics: a flood of distinct shapes starts the per-digest buckets over.
        for (const old of perDb.values()) old.retire();
        perDb.clear();
      }
      const d = this.defaults!;
      const rule: RateLimitRule = {
        name: `default:${id}`,
        match: id,
        digest: id,
        matchText: null,
        database,
        user: null,
        rate: d.defaultRate,
        burst: d.defaultRate > 0 ? d.defaultBurst || Math.max(1, Math.ceil(d.defaultRate)) : 0,
        maxConcurrency: d.defaultMaxConcurrency,
        action: d.action,
        maxWaitMs: d.maxWaitMs,
        block: false,
        file: '',
        line: 0,
      };
      st = new RuleState(rule, '', performance.now());
      perDb.set(id, st);
    }
    return st;
  }

  /** Take a reloaded configuration: a rule whose definition is unchanged keeps its bucket, running count and counters. */
  apply(cfg: RateLimitConfig): void {
    const old = new Map(this.rules.map((st) => [st.signature, st]));
    const now = performance.now();
    const rules: RuleState[] = [];
    for (const rule of cfg.rules) {
      const sig = ruleSignature(rule);
      const kept = old.get(sig);
      if (kept !== undefined) {
        old.delete(sig);
        kept.rule = rule; // same behaviour; file and line may have moved
        rules.push(kept);
      } else {
        rules.push(new RuleState(rule, sig, now));
      }
    }
    for (const st of old.values()) st.retire();
    const byDigest = new Map<string, RuleState[]>();
    for (const st of rules) {
      const list = byDigest.get(st.rule.digest);
      if (list) list.push(st);
      else byDigest.set(st.rule.digest, [st]);
    }
    this.rules = rules;
    this.byDigest = byDigest;

    const d = cfg.defaults;
    const on = d.defaultRate > 0 || d.defaultMaxConcurrency > 0;
    const sig = on ? JSON.stringify(d) : '';
    if (sig !== this.defaultsSignature) {
      for (const perDb of this.defaultStates.values()) for (const st of perDb.values()) st.retire();
      this.defaultStates = new Map();
      this.defaultsSignature = sig;
    }
    this.defaults = on ? d : null;
  }
}
