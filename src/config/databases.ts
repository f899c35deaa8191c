// Turns one [databases] line (`name = host=... port=... dbname=...`) into a DatabaseEntry.
import { BadValue, ConfigError } from './errors.ts';
import { applyConnString, optionalTime, type EntryKey } from './entries.ts';
import type { ConfigWarning, DatabaseEntry, ReplicaAddress, Settings } from './types.ts';
import { parseBool, parseEnum, parseInteger } from './values.ts';

export const DEFAULT_SERVER_PORT = 5432;

/** The admin console answers to this name, so no [databases] entry may take it. */
export const ADMIN_DATABASE = 'pgbouncer';

const POOL_MODES = ['session', 'transaction', 'statement'] as const;

type Key = EntryKey<DatabaseEntry>;

const startupParam =
  (name: string): Key['set'] =>
  (e, v) => {
    e.startupParams[name] = v;
  };

/** Keys of a [databases] connection string, lower-case. */
export const DATABASE_KEYS: Readonly<Record<string, Key>> = {
  application_name: { implemented: true, set: startupParam('application_name') },
  auth_dbname: { implemented: false, set: (e, v) => (e.authDbname = v) },
  auth_query: { implemented: false, set: (e, v) => (e.authQuery = v) },
  auth_user: { implemented: false, set: (e, v) => (e.authUser = v) },
  client_encoding: { implemented: true, set: startupParam('client_encoding') },
  connect_query: { implemented: true, set: (e, v) => (e.connectQuery = v) },
  datestyle: { implemented: true, set: startupParam('DateStyle') },
  dbname: { implemented: true, set: (e, v) => (e.dbname = v === '' ? undefined : v) },
  // The host is checked for a list later, once the whole line is known; see finishDatabase.
  host: { implemented: true, set: (e, v) => (e.host = v) },
  load_balance_hosts: { implemented: false, set: (e, v) => (e.loadBalanceHosts = parseEnum(v, ['round-robin', 'disable'] as const)) },
  max_db_client_connections: { implemented: false, set: (e, v) => (e.maxDbClientConnections = parseInteger(v)) },
  max_db_connections: { implemented: true, set: (e, v) => (e.maxDbConnections = parseInteger(v)) },
  min_pool_size: { implemented: true, set: (e, v) => (e.minPoolSize = parseInteger(v)) },
  password: { implemented: true, set: (e, v) => (e.password = v) },
  pool_mode: { implemented: true, set: (e, v) => (e.poolMode = parseEnum(v, POOL_MODES)) },
  pool_size: { implemented: true, set: (e, v) => (e.poolSize = parseInteger(v)) },
  port: { implemented: true, set: (e, v) => (e.port = parseInteger(v, { min: 1, max: 65535 })) },
  query_wait_timeout: { implemented: false, set: (e, v) => (e.queryWaitTimeout = optionalTime(v)) },
  read_routing: { implemented: true, set: (e, v) => (e.readRouting = parseBool(v)) },
  replicas: { implemented: true, set: (e, v) => (e.replicas = parseReplicas(v)) },
  reserve_pool: { implemented: true, set: (e, v) => (e.reservePool = parseInteger(v)) },
  reserve_pool_size: { implemented: true, set: (e, v) => (e.reservePool = parseInteger(v)) },
  server_lifetime: { implemented: false, set: (e, v) => (e.serverLifetime = optionalTime(v)) },
  target_session_attrs: {
    implemented: false,
    set: (e, v) => (e.targetSessionAttrs = parseEnum(v, ['any', 'read-write', 'read-only', 'primary', 'standby'] as const)),
  },
  timezone: { implemented: true, set: startupParam('TimeZone') },
  user: { implemented: true, set: (e, v) => (e.user = v === '' ? undefined : v) },
};

/**
 * Parses the line; `host` stays '' when the line names none, because its default (unix_socket_dir) may be set
 * further down the file. finishDatabase fills it in once all settings are known.
 */
export function parseDatabaseLine(name: string, value: string, file: string, line: number, warnings: ConfigWarning[]): DatabaseEntry {
  if (name.toLowerCase() === ADMIN_DATABASE) {
    throw new ConfigError(file, line, name, `the name "${ADMIN_DATABASE}" is reserved for the admin console`);
  }
  const entry: DatabaseEntry = {
    name,
    dbname: undefined,
    host: '',
    port: DEFAULT_SERVER_PORT,
    startupParams: {},
    replicas: [],
    file,
    line,
  };
  applyConnString(entry, value, DATABASE_KEYS, { file, line, entry: name }, 'database', warnings);
  return entry;
}

/**
 * A missing host means the Unix socket directory, as in PgBouncer; with unix_socket_dir emptied it falls back to
 * 127.0.0.1. A host list keeps its first host only, with a warning, since round-robin over hosts is not implemented.
 */
export function finishDatabase(entry: DatabaseEntry, settings: Settings, warnings: ConfigWarning[]): void {
  const hosts = entry.host
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h !== '');
  const [first] = hosts;
  entry.host = first ?? (settings.unix_socket_dir !== '' ? settings.unix_socket_dir : '127.0.0.1');
  if (hosts.length > 1) {
    warnings.push({
      file: entry.file,
      line: entry.line,
      key: 'host',
      message: `host lists are not implemented yet; only ${first} is used (in "${entry.name}")`,
    });
  }
  for (const replica of entry.replicas) {
    if (replica.port === 0) replica.port = entry.port;
  }
}

/**
 * `host:port,host:port*2`: a missing port (left 0 here) becomes the entry's port; `*n` weights a replica's share of
 * the reads (default 1). IPv6 goes in brackets: `[::1]:5433`.
 */
function parseReplicas(value: string): ReplicaAddress[] {
  return value.split(',').map((item): ReplicaAddress => {
    let text = item.trim();
    if (text === '') throw new BadValue(`empty item in replica list "${value}"`);
    let weight = 1;
    const star = text.lastIndexOf('*');
    if (star >= 0) {
      weight = parseInteger(text.slice(star + 1).trim(), { min: 0, max: 1000 });
      text = text.slice(0, star).trim();
    }
    const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
    if (bracketed !== null) return { host: bracketed[1] as string, port: replicaPort(bracketed[2]), weight };
    const colon = text.indexOf(':');
    // More than one colon and no brackets: a bare IPv6 address without a port.
    if (colon < 0 || text.indexOf(':', colon + 1) >= 0) return { host: text, port: 0, weight };
    const host = text.slice(0, colon);
    if (host === '') throw new BadValue(`missing host in replica "${text}"`);
    return { host, port: replicaPort(text.slice(colon + 1)), weight };
  });
}

function replicaPort(text: string | undefined): number {
  return text === undefined ? 0 : parseInteger(text, { min: 1, max: 65535 });
}
