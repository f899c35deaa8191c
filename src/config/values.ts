// Parsers for the value types of the ini file: int, bool, time, enum and list.
import { BadValue } from './errors.ts';

export interface IntLimits {
  min?: number;
  max?: number;
}

export function parseInteger(text: string, limits: IntLimits = {}): number {
  if (!/^[+-]?\d+$/.test(text)) throw new BadValue(`invalid integer "${text}"`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new BadValue(`integer "${text}" is too large`);
  const min = limits.min ?? 0;
  if (n < min) throw new BadValue(`must be at least ${min}, got ${n}`);
  if (limits.max !== undefined && n > limits.max) throw new BadValue(`must be at most ${limits.max}, got ${n}`);
  return n;
}

const TRUE_WORDS = new Set(['1', 'yes', 'on', 'true']);
const FALSE_WORDS = new Set(['0', 'no', 'off', 'false']);

export function parseBool(text: string): boolean {
  const word = text.toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  throw new BadValue(`invalid boolean "${text}" (use 1/0, yes/no, on/off or true/false)`);
}

/** Unit of a time value written without a suffix: PgBouncer uses seconds everywhere except tcp_user_timeout. */
export type BareTimeUnit = 's' | 'ms';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration in milliseconds. A bare number is in `bare` units and may be fractional (`0.5`);
 * a suffix `ms`, `s`, `min`, `h` or `d` overrides that (`500ms`, `2min`).
 */
export function parseTime(text: string, bare: BareTimeUnit = 's'): number {
  const m = /^(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)$/i.exec(text);
  const unit = m?.[2]?.toLowerCase() || bare;
  const factor = UNIT_MS[unit];
  if (m === null || factor === undefined) {
    const hint = text.startsWith('-') ? 'must not be negative' : 'invalid time';
    throw new BadValue(`${hint}: "${text}" (write seconds such as 30 or 0.5, or use a unit: 500ms, 30s, 5min, 1h, 1d)`);
  }
  const ms = Number(m[1]) * factor;
  if (!Number.isFinite(ms) || ms > Number.MAX_SAFE_INTEGER) throw new BadValue(`time "${text}" is too large`);
  // Keeps 1.1 s at 1100 ms instead of 1100.0000000000002; below a microsecond nothing is meaningful anyway.
  return Math.round(ms * 1000) / 1000;
}

/** Matches case-insensitively and returns the spelling of the allowed list. */
export function parseEnum<T extends string>(text: string, allowed: readonly T[]): T {
  const found = allowed.find((v) => v.toLowerCase() === text.toLowerCase());
  if (found === undefined) throw new BadValue(`invalid value "${text}" (allowed: ${allowed.join(', ')})`);
  return found;
}

/** Comma-separated; blanks around items and empty items are dropped. */
export function parseList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}
