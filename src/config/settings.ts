// Builds Settings: defaults from the table, then each key of the settings section parsed by its type.
import { dirname, resolve } from 'node:path';
import { BadValue, ConfigError } from './errors.ts';
import type { IniPair } from './ini.ts';
import { findParam, PARAMS, type ParamSpec } from './params.ts';
import type { ConfigWarning, Settings } from './types.ts';
import { parseBool, parseEnum, parseInteger, parseList, parseTime } from './values.ts';

type SettingValue = Settings[keyof Settings];

export function defaultSettings(): Settings {
  const entries = PARAMS.map((p: ParamSpec) => [p.name, Array.isArray(p.default) ? [...p.default] : p.default]);
  return Object.fromEntries(entries) as Settings;
}

export function parseParamValue(spec: ParamSpec, text: string): SettingValue {
  switch (spec.type) {
    case 'string':
      return text;
    case 'int':
      return parseInteger(text, spec);
    case 'bool':
      return parseBool(text);
    case 'time':
      return parseTime(text, spec.bare);
    case 'enum':
      return parseEnum<string>(text, spec.values) as SettingValue;
    case 'list':
      return parseList(text);
  }
}

/**
 * Sets one key from the file. Unknown keys are errors, so typos do not go unnoticed; a known PgBouncer key this
 * release ignores is accepted with a warning, but only when its value differs from the default, since restating
 * a default changes nothing.
 */
export function applySetting(settings: Settings, pair: IniPair, warnings: ConfigWarning[]): void {
  const spec = findParam(pair.key);
  if (spec === undefined) throw new ConfigError(pair.file, pair.line, pair.key, 'unknown setting');
  let value: SettingValue;
  try {
    value = parseParamValue(spec, pair.value);
  } catch (err) {
    if (!(err instanceof BadValue)) throw err;
    throw new ConfigError(pair.file, pair.line, spec.name, err.message);
  }
  // File names follow the file that names them, so an included snippet can sit next to its files.
  if (spec.type === 'string' && spec.path === true && value !== '') value = resolve(dirname(pair.file), value as string);
  (settings as unknown as Record<string, SettingValue>)[spec.name] = value;
  if (!spec.implemented && !sameValue(value, spec.default)) {
    warnings.push({ file: pair.file, line: pair.line, key: spec.name, message: spec.warning ?? 'not implemented yet; accepted and ignored' });
  }
}

function sameValue(a: SettingValue, b: SettingValue): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => v === b[i]);
  return a === b;
}
