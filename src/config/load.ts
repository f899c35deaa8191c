// Loads a pooler.ini / pgbouncer.ini into a Config: settings, [databases], [users], plus warnings.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { finishDatabase, parseDatabaseLine } from './databases.ts';
import { ConfigError } from './errors.ts';
import { parseIni, type ReadFile } from './ini.ts';
import { applySetting, defaultSettings } from './settings.ts';
import type { Config, ConfigWarning, DatabaseEntry, UserEntry } from './types.ts';
import { applyDefaultsPair, defaultRateLimits, finishRule, ruleDraft, type RuleDraft } from './rate-limits.ts';
import { parseUserLine } from './users.ts';

type SectionKind = 'settings' | 'databases' | 'users' | 'peers' | 'rate_limits' | 'rate_limit';

// [pooler] and [pgbouncer] name the same section so a PgBouncer file loads unchanged; when both appear their keys
// are merged and a key set twice keeps the later value, as a repeated key within one section does.
const SECTIONS: Readonly<Record<string, SectionKind>> = {
  pooler: 'settings',
  pgbouncer: 'settings',
  databases: 'databases',
  users: 'users',
  peers: 'peers',
  rate_limits: 'rate_limits',
};

export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, 0, undefined, `cannot read configuration file: ${(err as Error).message}`);
  }
  return parseConfig(text, path);
}

/** `file` names the text in messages and anchors relative %include and file-name settings. */
export function parseConfig(text: string, file: string, readFile?: ReadFile): Config {
  const settings = defaultSettings();
  const databases = new Map<string, DatabaseEntry>();
  const users = new Map<string, UserEntry>();
  const warnings: ConfigWarning[] = [];
  const rateLimits = defaultRateLimits();
  const drafts: RuleDraft[] = [];
  let section: SectionKind | undefined;

  for (const item of parseIni(text, file, readFile)) {
    if (item.kind === 'section') {
      section = SECTIONS[item.name.toLowerCase()];
      if (section === undefined && item.name.toLowerCase().startsWith('rate_limit.')) {
        const draft = ruleDraft(item.name, item.file, item.line);
        const twice = drafts.find((d) => d.name === draft.name);
        if (twice) throw new ConfigError(item.file, item.line, `[${item.name}]`, `rule defined twice (first at ${twice.file}:${twice.line})`);
        drafts.push(draft);
        section = 'rate_limit';
      }
      if (section === undefined) {
        throw new ConfigError(
          item.file,
          item.line,
          `[${item.name}]`,
          'unknown section (expected [pooler], [pgbouncer], [databases], [users], [peers], [rate_limits] or [rate_limit.NAME])',
        );
      }
      if (section === 'peers') {
        warnings.push({ file: item.file, line: item.line, key: '[peers]', message: 'peering is not implemented yet; the section is ignored' });
      }
      continue;
    }
    switch (section) {
      case undefined:
        throw new ConfigError(item.file, item.line, item.key, 'setting outside of any section (start with [pooler] or [databases])');
      case 'settings':
        applySetting(settings, item, warnings);
        break;
      case 'databases':
        addOnce(databases, parseDatabaseLine(item.key, item.value, item.file, item.line, warnings), 'database', warnings);
        break;
      case 'users':
        addOnce(users, parseUserLine(item.key, item.value, item.file, item.line, warnings), 'user', warnings);
        break;
      case 'peers':
        break;
      case 'rate_limits':
        applyDefaultsPair(rateLimits.defaults, item);
        break;
      case 'rate_limit':
        drafts[drafts.length - 1]!.pairs.push(item);
        break;
    }
  }
  rateLimits.rules = drafts.map((d) => finishRule(d, rateLimits.defaults));

  for (const entry of databases.values()) finishDatabase(entry, settings, warnings);
  const absolute = resolve(file);
  if (settings.conffile === '') settings.conffile = absolute;
  return { file: absolute, settings, databases, users, rateLimits, warnings };
}

function addOnce<T extends { name: string; file: string; line: number }>(
  map: Map<string, T>,
  entry: T,
  kind: string,
  warnings: ConfigWarning[],
): void {
  const earlier = map.get(entry.name);
  if (earlier !== undefined) {
    warnings.push({
      file: entry.file,
      line: entry.line,
      key: entry.name,
      message: `${kind} defined again; this line replaces ${earlier.file}:${earlier.line}`,
    });
  }
  map.set(entry.name, entry);
}
