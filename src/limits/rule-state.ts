// The live state of one rate-limit rule: its token bucket, what runs under it, who waits for a turn, and its counters.
import type { RateLimitRule } from '../config/rate-limits.ts';

export const ADMIT = 0;
export const REJECT = 1;
export const WAIT = 2;
export type Verdict = typeof ADMIT | typeof REJECT | typeof WAIT;

/** A statement waiting for a turn under a rule (action = wait). */
export interface LimitWaiter {
  /** it may run now: it holds a slot until it calls rule.release() */
  admit(): void;
  /** its wait is over without a turn (max_wait_ms, or the rule went away) */
  reject(message: string): void;
  /** set by the rule while the waiter is queued */
  timer: NodeJS.Timeout | null;
}

export class RuleState {
  rule: RateLimitRule;
  readonly signature: string;
  /** tokens in the bucket, refilled lazily at rule.rate per second up to rule.burst */
  private tokens: number;
  private refilledAt: number;
  /** statements admitted and not finished */
  running = 0;
  private readonly waiters: LimitWaiter[] = [];
  private rateTimer: NodeJS.Timeout | null = null;
  /** why the last check refused (the client's error message) */
  reason = '';
  // Counters, kept across reloads while the rule is unchanged.
  admitted = 0;
  /** refused for rate or concurrency (including waits that ran out) */
  limited = 0;
  blocked = 0;
  /** callers that had to wait for a turn */
  waited = 0;
  timedOut = 0;
  retired = false;

  constructor(rule: RateLimitRule, signature: string, now: number) {
    this.rule = rule;
    this.signature = signature;
    this.tokens = rule.burst;
    this.refilledAt = now;
  }

  get queued(): number {
    return this.waiters.length;
  }

  /** One statement asks to run. O(1); allocates nothing unless it is refused. */
  check(now: number): Verdict {
    const r = this.rule;
    if (r.block) {
      this.blocked++;
      this.reason = `statement blocked by rate-limit rule "${r.name}"`;
      return REJECT;
    }
    // First come, first served: while anyone waits, a newcomer queues behind them.
    if (this.waiters.length === 0 && this.canRun(now)) {
      this.take();
      return ADMIT;
    }
    if (r.action === 'wait' && r.maxWaitMs > 0) return WAIT;
    this.limited++;
    this.reason = this.refusal();
    return REJECT;
  }

  private canRun(now: number): boolean {
    const r = this.rule;
    if (r.maxConcurrency > 0 && this.running >= r.maxConcurrency) return false;
    if (r.rate > 0) {
      this.refill(now);
      // Lazy refills add up fractions: a whole token that rounding left a hair short still counts.
      if (this.tokens < 1 - 1e-9) return false;
    }
    return true;
  }

  private refill(now: number): void {
    const r = this.rule;
    const t = this.tokens + ((now - this.refilledAt) * r.rate) / 1000;
    this.tokens = t > r.burst ? r.burst : t;
    this.refilledAt = now;
  }

  private take(): void {
    if (this.rule.rate > 0) this.tokens -= 1;
    this.running++;
    this.admitted++;
  }

  private refusal(): string {
    const r = this.rule;
    if (r.maxConcurrency > 0 && this.running >= r.maxConcurrency) {
      return `rate-limit rule "${r.name}": ${r.maxConcurrency} statement${r.maxConcurrency === 1 ? '' : 's'} of this shape already running (max_concurrency)`;
    }
    return `rate-limit rule "${r.name}": more than ${r.rate} statements per second of this shape (burst ${r.burst})`;
  }

  /** Queue a waiter (after check() said WAIT); it is admitted in order, or rejected after rule.maxWaitMs. */
  enqueue(w: LimitWaiter): void {
    this.waited++;
    this.waiters.push(w);
    const ms = this.rule.maxWaitMs;
    w.timer = setTimeout(() => {
      w.timer = null;
      const i = this.waiters.indexOf(w);
      if (i < 0) return;
      this.waiters.splice(i, 1);
      this.timedOut++;
      this.limited++;
      w.reject(`rate-limit rule "${this.rule.name}": no turn within max_wait_ms (${ms} ms)`);
    }, ms);
    this.pump(performance.now());
  }

  /** A waiter gave up (its client left). */
  cancel(w: LimitWaiter): void {
    const i = this.waiters.indexOf(w);
    if (i < 0) return;
    this.waiters.splice(i, 1);
    if (w.timer !== null) clearTimeout(w.timer);
    w.timer = null;
  }

  /** An admitted statement finished. */
  release(): void {
    this.running--;
    if (this.waiters.length > 0) this.pump(performance.now());
  }

  /** Admit waiters while the rule allows, oldest first; when only the bucket holds them back, come back when a token is due. */
  private pump(now: number): void {
    while (this.waiters.length > 0 && this.canRun(now)) {
      const w = this.waiters.shift()!;
      if (w.timer !== null) clearTimeout(w.timer);
      w.timer = null;
      this.take();
      w.admit();
    }
    if (this.waiters.length === 0 || this.rateTimer !== null) return;
    const r = this.rule;
    if (r.rate > 0 && this.tokens < 1 && (r.maxConcurrency === 0 || this.running < r.maxConcurrency)) {
      const ms = Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / r.rate));
      this.rateTimer = setTimeout(() => {
        this.rateTimer = null;
        this.pump(performance.now());
      }, ms);
    }
  }

  /** The rule was changed or removed by a reload: whoever waits runs now (the new rule governs what comes next). */
  retire(): void {
    this.retired = true;
    if (this.rateTimer !== null) clearTimeout(this.rateTimer);
    this.rateTimer = null;
    const ws = this.waiters.splice(0);
    for (const w of ws) {
      if (w.timer !== null) clearTimeout(w.timer);
      w.timer = null;
      this.running++;
      this.admitted++;
      w.admit();
    }
  }
}
