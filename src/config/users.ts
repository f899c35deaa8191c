// Turns one [users] line (`name = pool_mode=... max_user_connections=...`) into a UserEntry.
import { applyConnString, optionalTime, type EntryKey } from './entries.ts';
import type { ConfigWarning, UserEntry } from './types.ts';
import { parseBool, parseEnum, parseInteger } from './values.ts';

type Key = EntryKey<UserEntry>;

/** Keys of a [users] line, lower-case. Times are in seconds unless given a unit; -1 means not set. */
export const USER_KEYS: Readonly<Record<string, Key>> = {
  client_idle_timeout: { implemented: false, set: (u, v) => (u.clientIdleTimeout = optionalTime(v)) },
  idle_transaction_timeout: { implemented: false, set: (u, v) => (u.idleTransactionTimeout = optionalTime(v)) },
  max_user_client_connections: { implemented: false, set: (u, v) => (u.maxUserClientConnections = parseInteger(v)) },
  max_user_connections: { implemented: true, set: (u, v) => (u.maxUserConnections = parseInteger(v)) },
  pool_mode: { implemented: true, set: (u, v) => (u.poolMode = parseEnum(v, ['session', 'transaction', 'statement'] as const)) },
  pool_size: { implemented: true, set: (u, v) => (u.poolSize = parseInteger(v)) },
  query_timeout: { implemented: false, set: (u, v) => (u.queryTimeout = optionalTime(v)) },
  query_wait_timeout: { implemented: false, set: (u, v) => (u.queryWaitTimeout = optionalTime(v)) },
  read_routing: { implemented: true, set: (u, v) => (u.readRouting = parseBool(v)) },
  reserve_pool_size: { implemented: false, set: (u, v) => (u.reservePoolSize = parseInteger(v)) },
  transaction_timeout: { implemented: false, set: (u, v) => (u.transactionTimeout = optionalTime(v)) },
};

export function parseUserLine(name: string, value: string, file: string, line: number, warnings: ConfigWarning[]): UserEntry {
  const entry: UserEntry = { name, file, line };
  applyConnString(entry, value, USER_KEYS, { file, line, entry: name }, 'user', warnings);
  return entry;
}
