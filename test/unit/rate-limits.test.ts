// Unit tests of digest rules and statistics: the rule sections, token bucket and concurrency, rule lookup and reload, the LRU'd stats, CommandComplete rows.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/index.ts';
import { normalize } from '../../src/sql/digest.ts';
import { ADMIT, REJECT, WAIT, RuleState, type LimitWaiter } from '../../src/limits/rule-state.ts';
import { Limiter } from '../../src/limits/limiter.ts';
import { defaultRateLimits, type RateLimitConfig, type RateLimitRule } from '../../src/config/rate-limits.ts';
import { DigestStats } from '../../src/stats/digest-stats.ts';
import { commandRows } from '../../src/client/replies.ts';

const ini = (...lines: string[]): string => ['[databases]', 'app = host=127.0.0.1', '', ...lines].join('\n') + '\n';
const rulesOf = (text: string) => parseConfig(text, 'test.ini').rateLimits;

function configError(text: string): ConfigError {
  try {
    parseConfig(text, 'test.ini');
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('rate-limit sections', () => {
  it('reads a rule by statement text: any spelling of the shape gets its digest', () => {
    const rl = rulesOf(ini('[rate_limit.slow_report]', 'match = SELECT count(*) FROM events WHERE created_at > $1', 'database = app', 'rate = 50', 'burst = 10', 'max_concurrency = 4'));
    expect(rl.rules).toHaveLength(1);
    const r = rl.rules[0]!;
    expect(r).toMatchObject({ name: 'slow_report', database: 'app', user: null, rate: 50, burst: 10, maxConcurrency: 4, action: 'reject', block: false, line: 4 });
    expect(r.digest).toBe(normalize("select COUNT(*) from events where created_at > '2024-01-01' -- report").id);
    expect(r.matchText).toBe(normalize('SELECT count(*) FROM events WHERE created_at > $1').text);
  });

  it('reads a rule by digest id, with the trailing comments the issue example uses', () => {
    const rl = rulesOf(ini('[rate_limit.a]', 'match = 5F2C9A0E1B7D3C44   ; a digest id', 'rate = 50    ; per second', 'block = true  # all of it'));
    expect(rl.rules[0]).toMatchObject({ digest: '5f2c9a0e1b7d3c44', matchText: null, rate: 50, burst: 50, block: true });
  });

  it('takes statement text in match to the end of the line (; and # are SQL there)', () => {
    const rl = rulesOf(ini('[rate_limit.a]', 'match = SELECT a # b FROM t', 'rate = 1'));
    expect(rl.rules[0]!.digest).toBe(normalize('SELECT a # b FROM t').id);
  });

  it('fills what a rule leaves out from [rate_limits], wherever that section is', () => {
    const rl = rulesOf(ini('[rate_limit.a]', 'match = SELECT 1', 'max_concurrency = 2', '', '[rate_limits]', 'action = wait', 'max_wait_ms = 250', 'default_rate = 5'));
    expect(rl.rules[0]).toMatchObject({ action: 'wait', maxWaitMs: 250, rate: 0, burst: 0, maxConcurrency: 2 });
    expect(rl.defaults).toMatchObject({ action: 'wait', maxWaitMs: 250, defaultRate: 5 });
  });

  it.each([
    [ini('[rate_limit.a]', 'rate = 5'), 4, '[rate_limit.a]', 'missing match'],
    [ini('[rate_limit.a]', 'match = SELECT 1'), 4, '[rate_limit.a]', 'limits nothing'],
    [ini('[rate_limit.a]', 'match = SELECT 1', 'rate = fast'), 6, 'rate', 'invalid rate'],
    [ini('[rate_limit.a]', 'match = SELECT 1', 'rate = 5', 'burst = 0'), 7, 'burst', 'at least 1'],
    [ini('[rate_limit.a]', 'match = SELECT 1', 'action = queue'), 6, 'action', ''],
    [ini('[rate_limit.a]', 'match = SELECT 1', 'limit = 5'), 6, 'limit', 'unknown key'],
    [ini('[rate_limit.a]', 'match = ', 'rate = 1'), 5, 'match', 'empty'],
    [ini('[rate_limit.a]', 'match = -- nothing', 'rate = 1'), 5, 'match', 'no statement'],
    [ini('[rate_limit.a b]', 'match = SELECT 1', 'rate = 1'), 4, '[rate_limit.a b]', 'rule name'],
    [ini('[rate_limit.a]', 'match = SELECT 1', 'rate = 1', '[rate_limit.a]', 'match = SELECT 2', 'rate = 1'), 7, '[rate_limit.a]', 'rule defined twice (first at test.ini:4)'],
    [ini('[rate_limits]', 'speed = 1'), 5, 'speed', 'unknown [rate_limits] key'],
  ])('%#: names the file, line and key of a bad rule', (text, line, key, message) => {
    const e = configError(text);
    expect({ file: e.file, line: e.line, key: e.key }).toEqual({ file: 'test.ini', line, key });
    expect(e.message).toContain(message);
  });
});

function rule(over: Partial<RateLimitRule>): RateLimitRule {
  return {
    name: 'r', match: 'x', digest: 'aaaaaaaaaaaaaaaa', matchText: null, database: null, user: null,
    rate: 0, burst: 0, maxConcurrency: 0, action: 'reject', maxWaitMs: 1000, block: false, file: 't', line: 1, ...over,
  };
}

function waiter(log: string[], name: string): LimitWaiter {
  return { timer: null, admit: () => log.push(`${name}:admit`), reject: (m) => log.push(`${name}:reject:${m}`) };
}

describe('RuleState', () => {
  afterEach(() => vi.useRealTimers());

  it('admits a full bucket of burst, then one per 1/rate seconds', () => {
    const st = new RuleState(rule({ rate: 10, burst: 3 }), '', 0);
    const at = (t: number) => st.check(t);
    expect([at(0), at(0), at(0), at(0)]).toEqual([ADMIT, ADMIT, ADMIT, REJECT]);
    expect(at(50)).toBe(REJECT); // half a token
    expect(at(100)).toBe(ADMIT);
    expect(at(10_000)).toBe(ADMIT); // refilled to burst, not beyond
    expect([at(10_000), at(10_000), at(10_000)]).toEqual([ADMIT, ADMIT, REJECT]);
    expect(st.admitted).toBe(7);
    expect(st.limited).toBe(3);
    expect(st.reason).toContain('more than 10 statements per second');
  });

  it('over a simulated second at rate 50 burst 10 admits 10 + 50', () => {
    const st = new RuleState(rule({ rate: 50, burst: 10 }), '', 0);
    let admitted = 0;
    for (let t = 0; t <= 1000; t += 0.25) if (st.check(t) === ADMIT) admitted++;
    expect(admitted).toBe(60);
  });

  it('caps what runs at once, and counts a release', () => {
    const st = new RuleState(rule({ maxConcurrency: 2 }), '', 0);
    expect([st.check(0), st.check(0), st.check(0)]).toEqual([ADMIT, ADMIT, REJECT]);
    expect(st.reason).toContain('2 statements of this shape already running');
    st.release();
    expect(st.check(0)).toBe(ADMIT);
    expect(st.running).toBe(2);
  });

  it('block rejects everything and counts it as blocked', () => {
    const st = new RuleState(rule({ block: true }), '', 0);
    expect([st.check(0), st.check(1)]).toEqual([REJECT, REJECT]);
    expect(st.blocked).toBe(2);
    expect(st.admitted).toBe(0);
    expect(st.reason).toContain('blocked by rate-limit rule "r"');
  });

  it('action = wait: waiters get turns in order as slots free up, and newcomers queue behind them', () => {
    vi.useFakeTimers();
    const st = new RuleState(rule({ maxConcurrency: 1, action: 'wait', maxWaitMs: 1000 }), '', 0);
    const log: string[] = [];
    expect(st.check(0)).toBe(ADMIT);
    expect(st.check(0)).toBe(WAIT);
    st.enqueue(waiter(log, 'a'));
    expect(st.check(0)).toBe(WAIT);
    st.enqueue(waiter(log, 'b'));
    st.release();
    expect(log).toEqual(['a:admit']);
    st.release();
    expect(log).toEqual(['a:admit', 'b:admit']);
    expect(st.waited).toBe(2);
  });

  it('action = wait: a waiter without a turn within max_wait_ms is rejected, and counted', () => {
    vi.useFakeTimers();
    const st = new RuleState(rule({ maxConcurrency: 1, action: 'wait', maxWaitMs: 300 }), '', 0);
    const log: string[] = [];
    st.check(0);
    st.enqueue(waiter(log, 'a'));
    vi.advanceTimersByTime(299);
    expect(log).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(log).toEqual(['a:reject:rate-limit rule "r": no turn within max_wait_ms (300 ms)']);
    expect([st.timedOut, st.limited, st.queued]).toEqual([1, 1, 0]);
  });

  it('action = wait with a rate: the next waiter is admitted when its token is due', () => {
    vi.useFakeTimers();
    const st = new RuleState(rule({ rate: 10, burst: 1, action: 'wait', maxWaitMs: 1000 }), '', performance.now());
    const log: string[] = [];
    expect(st.check(performance.now())).toBe(ADMIT);
    st.release();
    expect(st.check(performance.now())).toBe(WAIT);
    st.enqueue(waiter(log, 'a'));
    vi.advanceTimersByTime(60);
    expect(log).toEqual([]);
    vi.advanceTimersByTime(60);
    expect(log).toEqual(['a:admit']);
  });

  it('retiring a rule lets its waiters run', () => {
    vi.useFakeTimers();
    const st = new RuleState(rule({ maxConcurrency: 1, action: 'wait' }), '', 0);
    const log: string[] = [];
    st.check(0);
    st.enqueue(waiter(log, 'a'));
    st.retire();
    expect(log).toEqual(['a:admit']);
    vi.advanceTimersByTime(5000);
    expect(log).toEqual(['a:admit']);
  });
});

describe('Limiter', () => {
  const cfg = (...rules: Partial<RateLimitRule>[]): RateLimitConfig => ({ ...defaultRateLimits(), rules: rules.map(rule) });

  it('is inactive without rules, so statements need no digest for it', () => {
    expect(new Limiter(defaultRateLimits()).active).toBe(false);
  });

  it('picks the most specific matching rule, then the first in the file', () => {
    const l = new Limiter(cfg({ name: 'any', rate: 1 }, { name: 'any2', rate: 1 }, { name: 'db', database: 'app', rate: 1 }, { name: 'dbuser', database: 'app', user: 'bob', rate: 1 }, { name: 'user', user: 'bob', rate: 1 }));
    const d = 'aaaaaaaaaaaaaaaa';
    expect(l.find(d, 'app', 'bob')!.rule.name).toBe('dbuser');
    expect(l.find(d, 'app', 'eve')!.rule.name).toBe('db');
    expect(l.find(d, 'other', 'bob')!.rule.name).toBe('user');
    expect(l.find(d, 'other', 'eve')!.rule.name).toBe('any');
    expect(l.find('bbbbbbbbbbbbbbbb', 'app', 'bob')).toBeNull();
  });

  it('a reload keeps the state of unchanged rules and starts changed ones over', () => {
    const l = new Limiter(cfg({ name: 'a', rate: 1, burst: 1 }, { name: 'b', digest: 'bbbbbbbbbbbbbbbb', rate: 1, burst: 1 }));
    const a = l.find('aaaaaaaaaaaaaaaa', 'x', 'y')!;
    a.check(performance.now());
    const b = l.find('bbbbbbbbbbbbbbbb', 'x', 'y')!;
    l.apply(cfg({ name: 'a', rate: 1, burst: 1, line: 7 }, { name: 'b', digest: 'bbbbbbbbbbbbbbbb', rate: 2, burst: 1 }));
    expect(l.find('aaaaaaaaaaaaaaaa', 'x', 'y')).toBe(a);
    expect(a.admitted).toBe(1);
    expect(a.rule.line).toBe(7);
    expect(l.find('bbbbbbbbbbbbbbbb', 'x', 'y')).not.toBe(b);
    expect(b.retired).toBe(true);
  });

  it('a default rate gives each digest of each database its own bucket', () => {
    const l = new Limiter({ defaults: { ...defaultRateLimits().defaults, defaultRate: 1 }, rules: [] });
    expect(l.active).toBe(true);
    const x = l.find('aaaaaaaaaaaaaaaa', 'app', 'u')!;
    expect(l.find('aaaaaaaaaaaaaaaa', 'app', 'v')).toBe(x);
    expect(l.find('aaaaaaaaaaaaaaaa', 'other', 'u')).not.toBe(x);
    expect(l.find('bbbbbbbbbbbbbbbb', 'app', 'u')).not.toBe(x);
    expect([x.check(performance.now()), x.check(performance.now())]).toEqual([ADMIT, REJECT]);
  });
});

describe('DigestStats', () => {
  it('counts calls, errors, rows, time and where it ran', () => {
    const ds = new DigestStats(10);
    const t = ds.tableFor('app', 'u');
    const s = ds.entry(t, 'aaaaaaaaaaaaaaaa', 'SELECT $1', 'app', 'u');
    s.record(2, 5, true, false);
    s.record(4, 0, false, true);
    expect(ds.entry(t, 'aaaaaaaaaaaaaaaa', 'SELECT $1', 'app', 'u')).toBe(s);
    expect({ calls: s.calls, errors: s.errors, rows: s.rows, totalMs: s.totalMs, mean: s.meanMs, min: s.minMs, max: s.maxMs, p: s.onPrimary, r: s.onReplica }).toEqual({
      calls: 2, errors: 1, rows: 5, totalMs: 6, mean: 3, min: 2, max: 4, p: 1, r: 1,
    });
  });

  it('percentiles are within 10% of the true ones and never outside [min, max]', () => {
    const ds = new DigestStats(10);
    const s = ds.entry(ds.tableFor('a', 'b'), 'x', 'x', 'a', 'b');
    for (let i = 1; i <= 1000; i++) s.record(i / 10, 0, true, false); // 0.1 .. 100 ms
    expect(s.percentile(0.5)).toBeGreaterThan(50 * 0.9);
    expect(s.percentile(0.5)).toBeLessThan(50 * 1.1);
    expect(s.percentile(0.99)).toBeGreaterThan(99 * 0.9);
    expect(s.percentile(0.99)).toBeLessThanOrEqual(100);
    const one = ds.entry(ds.tableFor('a', 'b'), 'y', 'y', 'a', 'b');
    one.record(7.3, 0, true, false);
    expect([one.percentile(0.5), one.percentile(0.99)]).toEqual([7.3, 7.3]);
  });

  it('keeps at most max_digests, dropping the least recently used', () => {
    const ds = new DigestStats(2);
    const t = ds.tableFor('a', 'b');
    const a = ds.entry(t, 'a', 'a', 'a', 'b');
    ds.entry(t, 'b', 'b', 'a', 'b');
    ds.entry(t, 'a', 'a', 'a', 'b'); // a used again: b is now the oldest
    ds.entry(t, 'c', 'c', 'a', 'b');
    expect([...ds.all()].map((s) => s.id)).toEqual(['c', 'a']);
    expect(ds.evictions).toBe(1);
    expect(ds.entry(t, 'a', 'a', 'a', 'b')).toBe(a);
    ds.resize(1);
    expect([...ds.all()].map((s) => s.id)).toEqual(['a']);
    expect(ds.size).toBe(1);
  });

  it('top(k) orders by calls across databases and users', () => {
    const ds = new DigestStats(10);
    for (const [db, id, n] of [['a', 'x', 3], ['b', 'x', 5], ['a', 'y', 1]] as const) {
      const s = ds.entry(ds.tableFor(db, 'u'), id, id, db, 'u');
      for (let i = 0; i < n; i++) s.record(1, 0, true, false);
    }
    expect(ds.top(2).map((s) => `${s.database}/${s.id}:${s.calls}`)).toEqual(['b/x:5', 'a/x:3']);
  });
});

describe('commandRows', () => {
  const cc = (tag: string) => {
    const body = Buffer.from(`${tag}\0`);
    const b = Buffer.alloc(5 + body.length);
    b[0] = 0x43;
    b.writeInt32BE(4 + body.length, 1);
    body.copy(b, 5);
    return b;
  };
  it.each([
    ['SELECT 42', 42], ['INSERT 0 7', 7], ['UPDATE 1000000', 1000000], ['DELETE 0', 0], ['COPY 3', 3], ['MERGE 2', 2],
    ['FETCH 9', 9], ['MOVE 4', 4], ['CREATE TABLE', 0], ['BEGIN', 0], ['SET', 0],
  ])('%s → %d', (tag, rows) => expect(commandRows(cc(tag))).toBe(rows));
});
