// Parses the rate-limit sections: `[rate_limits]` (defaults) and one `[rate_limit.NAME]` per rule, matched by digest.
import { BadValue, ConfigError } from './errors.ts';
import type { IniPair } from './ini.ts';
import { parseBool, parseEnum, parseInteger, parseTime } from './values.ts';
import { normalize } from '../sql/digest.ts';

export type LimitAction = 'reject' | 'wait';

export interface RateLimitRule {
  name: string;
  /** the `match` value as written */
  match: string;
  /** the digest id the rule applies to */
  digest: string;
  /** the normalized text when `match` was a statement (so any spelling of the shape matches) */
  matchText: string | null;
  database: string | null;
  user: string | null;
  /** statements per second; 0 = no rate limit */
  rate: number;
  /** bucket size; at least 1 when rate > 0 */
  burst: number;
  /** statements of the digest running at once; 0 = no cap */
  maxConcurrency: number;
  action: LimitAction;
  /** milliseconds a `wait` caller waits before it is rejected */
  maxWaitMs: number;
  block: boolean;
  file: string;
  line: number;
}

/** `[rate_limits]`: the default action for rules that name none, and an optional limit on every other digest. */
export interface RateLimitDefaults {
  action: LimitAction;
  maxWaitMs: number;
  /** per digest (and database) that no rule matches; 0 = off */
  defaultRate: number;
  defaultBurst: number;
  defaultMaxConcurrency: number;
}

export interface RateLimitConfig {
  defaults: RateLimitDefaults;
  rules: RateLimitRule[];
}

export function defaultRateLimits(): RateLimitConfig {
  return { defaults: { action: 'reject', maxWaitMs: 1000, defaultRate: 0, defaultBurst: 0, defaultMaxConcurrency: 0 }, rules: [] };
}

/** A digest id as SHOW DIGESTS prints it. */
const DIGEST_ID = /^[0-9a-f]{16}$/i;
const RULE_NAME = /^[A-Za-z0-9_.-]+$/;

/** Keys of one rule section as read, before defaults are known (a rule may come before `[rate_limits]`). */
export interface RuleDraft {
  name: string;
  file: string;
  line: number;
  pairs: IniPair[];
}

export function ruleDraft(sectionName: string, file: string, line: number): RuleDraft {
  const name = sectionName.slice('rate_limit.'.length).trim();
  if (!RULE_NAME.test(name)) {
    throw new ConfigError(file, line, `[${sectionName}]`, 'a rule name is letters, digits, "_", "-" and "." (e.g. [rate_limit.slow_report])');
  }
  return { name, file, line, pairs: [] };
}

function value<T>(pair: IniPair, parse: (text: string) => T): T {
  try {
    return parse(pair.value);
  } catch (err) {
    if (err instanceof BadValue) throw new ConfigError(pair.file, pair.line, pair.key, err.message);
    throw err;
  }
}

const ACTIONS: readonly LimitAction[] = ['reject', 'wait'];

export function applyDefaultsPair(d: RateLimitDefaults, raw: IniPair): void {
  const pair = withoutComment(raw);
  switch (pair.key.toLowerCase()) {
    case 'action':
      d.action = value(pair, (t) => parseEnum(t, ACTIONS));
      return;
    case 'max_wait_ms':
      d.maxWaitMs = value(pair, (t) => parseTime(t, 'ms'));
      return;
    case 'default_rate':
    case 'rate':
      d.defaultRate = value(pair, parseRate);
      return;
    case 'default_burst':
    case 'burst':
      d.defaultBurst = value(pair, (t) => parseInteger(t));
      return;
    case 'default_max_concurrency':
    case 'max_concurrency':
      d.defaultMaxConcurrency = value(pair, (t) => parseInteger(t));
      return;
    default:
      throw new ConfigError(pair.file, pair.line, pair.key, 'unknown [rate_limits] key (expected action, max_wait_ms, default_rate, default_burst, default_max_concurrency)');
  }
}

function parseRate(text: string): number {
  if (!/^\d+(\.\d*)?$|^\.\d+$/.test(text)) throw new BadValue(`invalid rate "${text}" (statements per second, e.g. 50 or 0.5)`);
  return Number(text);
}

/** A rule from its section, with the defaults of `[rate_limits]` filling what it does not say. */
export function finishRule(draft: RuleDraft, d: RateLimitDefaults): RateLimitRule {
  const r: RateLimitRule = {
    name: draft.name,
    match: '',
    digest: '',
    matchText: null,
    database: null,
    user: null,
    rate: 0,
    burst: 0,
    maxConcurrency: 0,
    action: d.action,
    maxWaitMs: d.maxWaitMs,
    block: false,
    file: draft.file,
    line: draft.line,
  };
  let burstSet = false;
  for (const raw of draft.pairs) {
    const pair = withoutComment(raw);
    switch (pair.key.toLowerCase()) {
      case 'match': {
        const m = pair.value.trim();
        if (m === '') throw new ConfigError(pair.file, pair.line, 'match', 'empty: give a digest id or the statement text');
        r.match = m;
        if (DIGEST_ID.test(m)) {
          r.digest = m.toLowerCase();
        } else {
          const n = normalize(m);
          if (n.statements === 0) throw new ConfigError(pair.file, pair.line, 'match', 'holds no statement');
          r.digest = n.id;
          r.matchText = n.text;
        }
        break;
      }
      case 'database':
        r.database = pair.value === '' ? null : pair.value;
        break;
      case 'user':
        r.user = pair.value === '' ? null : pair.value;
        break;
      case 'rate':
        r.rate = value(pair, parseRate);
        break;
      case 'burst':
        r.burst = value(pair, (t) => parseInteger(t));
        burstSet = true;
        break;
      case 'max_concurrency':
        r.maxConcurrency = value(pair, (t) => parseInteger(t));
        break;
      case 'action':
        r.action = value(pair, (t) => parseEnum(t, ACTIONS));
        break;
      case 'max_wait_ms':
        r.maxWaitMs = value(pair, (t) => parseTime(t, 'ms'));
        break;
      case 'block':
        r.block = value(pair, parseBool);
        break;
      default:
        throw new ConfigError(
          pair.file,
          pair.line,
          pair.key,
          `unknown key in [rate_limit.${draft.name}] (expected match, database, user, rate, burst, max_concurrency, action, max_wait_ms, block)`,
        );
    }
  }
  if (r.digest === '') throw new ConfigError(draft.file, draft.line, `[rate_limit.${draft.name}]`, 'missing match (a digest id or the statement text)');
  if (r.rate > 0 && !burstSet) r.burst = Math.max(1, Math.ceil(r.rate));
  if (r.rate > 0 && r.burst < 1) {
    const at = draft.pairs.find((p) => p.key.toLowerCase() === 'burst')!;
    throw new ConfigError(at.file, at.line, 'burst', 'must be at least 1 when rate is set');
  }
  if (!r.block && r.rate === 0 && r.maxConcurrency === 0) {
    throw new ConfigError(draft.file, draft.line, `[rate_limit.${draft.name}]`, 'limits nothing: set rate, max_concurrency or block = true');
  }
  return r;
}

/**
 * Rule sections allow a comment after a value (`rate = 50   ; per second`), as rules are usually annotated; the
 * PgBouncer sections do not. Statement text in `match` is taken to the end of the line (`;` and `#` are SQL),
 * but a digest id may be followed by a comment.
 */
const TRAILING_COMMENT = /\s+[;#].*$/;
const DIGEST_WITH_COMMENT = /^([0-9a-f]{16})\s+[;#].*$/i;

function withoutComment(pair: IniPair): IniPair {
  if (pair.key.toLowerCase() === 'match') {
    const m = DIGEST_WITH_COMMENT.exec(pair.value.trim());
    return m ? { ...pair, value: m[1]! } : pair;
  }
  const v = pair.value.replace(TRAILING_COMMENT, '');
  return v === pair.value ? pair : { ...pair, value: v };
}

/** What identifies a rule's behaviour: a reload keeps the counters and bucket of a rule whose signature is unchanged. */
export function ruleSignature(r: RateLimitRule): string {
  return JSON.stringify([r.name, r.digest, r.database, r.user, r.rate, r.burst, r.maxConcurrency, r.action, r.maxWaitMs, r.block]);
}
