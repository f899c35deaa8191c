// Splits a libpq-style `key=value key='quoted value'` string, as used by [databases] and [users] lines.
import { ConfigError } from './errors.ts';

export interface ConnPair {
  /** lower-cased */
  key: string;
  value: string;
}

export interface Where {
  file: string;
  line: number;
  /** the database or user name the line defines, for messages */
  entry: string;
}

/**
 * Values may be single-quoted to hold blanks; inside quotes `\'` and `''` both stand for a quote and `\\` for a
 * backslash. Outside quotes a backslash escapes the next character, as in libpq.
 */
export function parseConnString(text: string, where: Where): ConnPair[] {
  const pairs: ConnPair[] = [];
  let i = 0;
  const fail = (key: string | undefined, problem: string): never => {
    throw new ConfigError(where.file, where.line, key ?? where.entry, key === undefined ? problem : `${problem} (in "${where.entry}")`);
  };
  const skipBlanks = (): void => {
    while (i < text.length && /\s/.test(text[i] as string)) i++;
  };

  for (skipBlanks(); i < text.length; skipBlanks()) {
    const keyStart = i;
    while (i < text.length && text[i] !== '=' && !/\s/.test(text[i] as string)) i++;
    const key = text.slice(keyStart, i).toLowerCase();
    if (key === '') fail(undefined, `expected a parameter name before "=" in "${text}"`);
    skipBlanks();
    if (text[i] !== '=') fail(key, 'expected "=" after the parameter name');
    i++;
    skipBlanks();
    let value = '';
    if (text[i] === "'") {
      i++;
      for (;;) {
        if (i >= text.length) fail(key, 'unterminated quoted value');
        const ch = text[i] as string;
        if (ch === '\\' && i + 1 < text.length) {
          value += text[i + 1];
          i += 2;
        } else if (ch === "'" && text[i + 1] === "'") {
          value += "'";
          i += 2;
        } else if (ch === "'") {
          i++;
          break;
        } else {
          value += ch;
          i++;
        }
      }
      if (i < text.length && !/\s/.test(text[i] as string)) fail(key, 'expected a blank after the closing quote');
    } else {
      while (i < text.length && !/\s/.test(text[i] as string)) {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        value += text[i];
        i++;
      }
    }
    pairs.push({ key, value });
  }
  return pairs;
}
