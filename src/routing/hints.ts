// What a statement asks of the router itself: a leading /* pooler:primary */ comment, or one of pooler's own
// session commands (SET pooler.route / pooler.min_lsn, SHOW pooler.last_write_lsn), answered by pooler.

export type Hint = 'primary' | 'replica';

const HINT = /^\s*\/\*\s*pooler:(primary|replica)\s*\*\//i;

/** The routing hint in a comment at the very start of the query text, or null. */
export function leadingHint(sql: string): Hint | null {
  // Fast path: almost no query starts with a comment.
  let i = 0;
  while (i < sql.length && sql.charCodeAt(i) <= 32) i++;
  if (sql.charCodeAt(i) !== 0x2f /* / */) return null;
  const m = HINT.exec(sql);
  return m === null ? null : (m[1]!.toLowerCase() as Hint);
}

export type PoolerCommand =
  | { kind: 'set'; name: string; value: string | null; local: boolean }
  | { kind: 'show'; name: string };

const COMMAND =
  /^\s*(?:(set)\s+(?:(session|local)\s+)?pooler\.(\w+)\s*(?:=|\s+to\s+)\s*(?:'((?:[^']|'')*)'|([\w./]+))|(reset)\s+pooler\.(\w+)|(show)\s+pooler\.(\w+))\s*;?\s*$/i;

/** A single SET / RESET / SHOW of a pooler.* setting, or null (including when other statements come with it). */
export function poolerCommand(sql: string): PoolerCommand | null {
  // Cheap pre-check before the regular expression: the query must mention the prefix at all.
  if (sql.length > 200 || !/pooler\./i.test(sql)) return null;
  const m = COMMAND.exec(sql);
  if (m === null) return null;
  if (m[1] !== undefined) {
    const value = m[4] !== undefined ? m[4].replace(/''/g, "'") : m[5]!;
    return { kind: 'set', name: m[3]!.toLowerCase(), value, local: m[2]?.toLowerCase() === 'local' };
  }
  if (m[6] !== undefined) return { kind: 'set', name: m[7]!.toLowerCase(), value: null, local: false };
  return { kind: 'show', name: m[9]!.toLowerCase() };
}
