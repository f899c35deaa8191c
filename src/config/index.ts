// Public face of the configuration module: load a file, inspect settings, list them for SHOW CONFIG.
export { loadConfig, parseConfig } from './load.ts';
export { ConfigError } from './errors.ts';
export { showConfigRows, formatParamValue, type ShowConfigRow } from './show.ts';
export { PARAMS, findParam, type ParamSpec, type ParamName, type ParamType } from './params.ts';
export { ADMIN_DATABASE, DEFAULT_SERVER_PORT } from './databases.ts';
export type {
  AuthType,
  Config,
  ConfigWarning,
  DatabaseEntry,
  HostPort,
  LogLevel,
  PoolMode,
  Settings,
  UserEntry,
} from './types.ts';
