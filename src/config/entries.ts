// Applies the key=value pairs of a [databases] or [users] line to its entry through a per-section key table.
import { parseConnString, type Where } from './connstring.ts';
import { BadValue, ConfigError } from './errors.ts';
import type { ConfigWarning } from './types.ts';
import { parseTime } from './values.ts';

export interface EntryKey<T> {
  /** whether this release acts on it; setting an unimplemented key warns */
  implemented: boolean;
  /** parses the value into the entry; throws BadValue when it does not parse */
  set: (entry: T, value: string) => void;
}

export function applyConnString<T>(
  entry: T,
  text: string,
  keys: Readonly<Record<string, EntryKey<T>>>,
  where: Where,
  kind: 'database' | 'user',
  warnings: ConfigWarning[],
): void {
  for (const { key, value } of parseConnString(text, where)) {
    const spec = Object.hasOwn(keys, key) ? keys[key] : undefined;
    if (spec === undefined) {
      throw new ConfigError(where.file, where.line, key, `unknown ${kind} parameter (in "${where.entry}"); known: ${Object.keys(keys).join(', ')}`);
    }
    try {
      spec.set(entry, value);
    } catch (err) {
      if (!(err instanceof BadValue)) throw err;
      throw new ConfigError(where.file, where.line, key, `${err.message} (in "${where.entry}")`);
    }
    if (!spec.implemented) {
      warnings.push({
        file: where.file,
        line: where.line,
        key,
        message: `${kind} parameter not implemented yet; accepted and ignored (in "${where.entry}")`,
      });
    }
  }
}

/** A per-entry time override, where -1 means "not set" as in PgBouncer. */
export function optionalTime(value: string): number | undefined {
  return value.trim() === '-1' ? undefined : parseTime(value);
}
