// Reads PgBouncer's ini dialect into a flat list of section headers and key/value pairs, expanding %include.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { ConfigError } from './errors.ts';

export interface IniSection {
  kind: 'section';
  name: string;
  file: string;
  line: number;
}

export interface IniPair {
  kind: 'pair';
  key: string;
  /** the rest of the line after `=`, blanks trimmed, taken literally: no quote removal, no trailing comment */
  value: string;
  file: string;
  line: number;
}

export type IniItem = IniSection | IniPair;

export type ReadFile = (path: string) => string;

// Deep enough for any sane layout, shallow enough to stop a file that includes itself by another name.
const MAX_INCLUDE_DEPTH = 10;

const readUtf8: ReadFile = (path) => readFileSync(path, 'utf8');

/**
 * `%include name` is expanded in place, so a section opened before it continues into the included file and a
 * section opened inside it continues after it. A relative name is taken relative to the including file
 * (PgBouncer uses the working directory; the two agree when the pooler is started from the config directory).
 */
export function parseIni(text: string, file: string, readFile: ReadFile = readUtf8): IniItem[] {
  const items: IniItem[] = [];
  parseInto(items, text, file, readFile, [resolve(file)]);
  return items;
}

function parseInto(items: IniItem[], text: string, file: string, readFile: ReadFile, stack: string[]): void {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    const trimmed = raw.trim();
    // Comment markers count only at the start of a line, so values like `password = p;x` survive whole.
    if (trimmed === '' || trimmed.startsWith(';') || trimmed.startsWith('#')) return;
    if (trimmed.startsWith('%')) {
      includeFile(items, trimmed, file, line, readFile, stack);
      return;
    }
    if (trimmed.startsWith('[')) {
      items.push({ kind: 'section', name: sectionName(trimmed, file, line), file, line });
      return;
    }
    const [key, value] = splitPair(trimmed, file, line);
    items.push({ kind: 'pair', key, value, file, line });
  });
}

function includeFile(items: IniItem[], directive: string, file: string, line: number, readFile: ReadFile, stack: string[]): void {
  const m = /^%(\S+)\s*(.*)$/.exec(directive);
  if (m === null || m[1] !== 'include') throw new ConfigError(file, line, undefined, `unknown directive "${directive}"`);
  const name = m[2] ?? '';
  if (name === '') throw new ConfigError(file, line, '%include', 'missing file name');
  const path = isAbsolute(name) ? name : join(dirname(file), name);
  const absolute = resolve(path);
  if (stack.includes(absolute)) throw new ConfigError(file, line, '%include', `${path} includes itself`);
  if (stack.length > MAX_INCLUDE_DEPTH) throw new ConfigError(file, line, '%include', `includes nested deeper than ${MAX_INCLUDE_DEPTH}`);
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    throw new ConfigError(file, line, '%include', `cannot read ${path}: ${(err as Error).message}`);
  }
  parseInto(items, text, path, readFile, [...stack, absolute]);
}

function sectionName(trimmed: string, file: string, line: number): string {
  const close = trimmed.indexOf(']');
  if (close < 0) throw new ConfigError(file, line, undefined, `unterminated section header "${trimmed}"`);
  if (close !== trimmed.length - 1) throw new ConfigError(file, line, undefined, `unexpected text after section header "${trimmed}"`);
  const name = trimmed.slice(1, close).trim();
  if (name === '') throw new ConfigError(file, line, undefined, 'empty section name');
  return name;
}

/** Splits `key = value`; a key holding blanks or `=` (a database name, say) is written in double quotes, `""` for a quote. */
function splitPair(trimmed: string, file: string, line: number): [string, string] {
  let key: string;
  let rest: string;
  if (trimmed.startsWith('"')) {
    const quoted = readQuotedKey(trimmed, file, line);
    key = quoted.key;
    rest = trimmed.slice(quoted.end).trimStart();
    if (!rest.startsWith('=')) throw new ConfigError(file, line, key, 'expected "=" after the quoted name');
  } else {
    const eq = trimmed.indexOf('=');
    if (eq < 0) throw new ConfigError(file, line, undefined, `expected "key = value", got "${trimmed}"`);
    key = trimmed.slice(0, eq).trim();
    rest = trimmed.slice(eq);
    if (key === '') throw new ConfigError(file, line, undefined, `missing key before "=" in "${trimmed}"`);
    if (/\s/.test(key)) throw new ConfigError(file, line, undefined, `invalid key "${key}" (put names with blanks in double quotes)`);
  }
  return [key, rest.slice(1).trim()];
}

function readQuotedKey(text: string, file: string, line: number): { key: string; end: number } {
  let key = '';
  for (let i = 1; i < text.length; i++) {
    const ch = text[i];
    if (ch !== '"') {
      key += ch;
    } else if (text[i + 1] === '"') {
      key += '"';
      i++;
    } else {
      if (key === '') throw new ConfigError(file, line, undefined, 'empty quoted name');
      return { key, end: i + 1 };
    }
  }
  throw new ConfigError(file, line, undefined, `unterminated quoted name in "${text}"`);
}
