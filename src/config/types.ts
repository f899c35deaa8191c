// The shape of a loaded configuration: settings, [databases], [users], rate limits and the warnings met on the way.
import type { RateLimitConfig } from './rate-limits.ts';

export type PoolMode = 'session' | 'transaction' | 'statement';
/** What transaction and statement pooling do with features that need the same server for the whole session. */
export type SessionFeatures = 'pin' | 'reject';
/** Where a read goes when no replica may serve it (down, too far behind, or behind the client's own writes). */
export type AllReplicasLagging = 'primary' | 'wait' | 'error';
/** Whose writes a read must see: none, the connection's own, or every connection of the same (database, user). */
export type ReadYourWrites = 'off' | 'client' | 'user';

export type AuthType = 'any' | 'cert' | 'hba' | 'ldap' | 'md5' | 'pam' | 'plain' | 'scram-sha-256' | 'trust';

export type TlsMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export type SyslogFacility =
  | 'auth'
  | 'authpriv'
  | 'daemon'
  | 'user'
  | 'local0'
  | 'local1'
  | 'local2'
  | 'local3'
  | 'local4'
  | 'local5'
  | 'local6'
  | 'local7';

export type LoadBalanceHosts = 'round-robin' | 'disable';

export type TargetSessionAttrs = 'any' | 'read-write' | 'read-only' | 'primary' | 'standby';

export interface HostPort {
  host: string;
  port: number;
}

/** A replica of a [databases] entry: `host:port*weight`. */
export interface ReplicaAddress extends HostPort {
  /** share of the reads relative to the other replicas; 1 unless given */
  weight: number;
}

/** One `[databases]` line. Keys that only PgBouncer acts on are kept so SHOW DATABASES can echo them. */
export interface DatabaseEntry {
  name: string;
  /** undefined = the database name the client asked for */
  dbname: string | undefined;
  /** a host name, an IP address, or a Unix-socket directory (starts with `/`) */
  host: string;
  port: number;
  user?: string;
  password?: string;
  authUser?: string;
  authQuery?: string;
  authDbname?: string;
  poolSize?: number;
  minPoolSize?: number;
  reservePool?: number;
  poolMode?: PoolMode;
  maxDbConnections?: number;
  maxDbClientConnections?: number;
  connectQuery?: string;
  /** milliseconds */
  serverLifetime?: number;
  /** milliseconds */
  queryWaitTimeout?: number;
  loadBalanceHosts?: LoadBalanceHosts;
  targetSessionAttrs?: TargetSessionAttrs;
  /** sent in the server StartupMessage: client_encoding, DateStyle, TimeZone, application_name */
  startupParams: Record<string, string>;
  /** streaming replicas that may serve reads; roles are verified by the topology monitor */
  replicas: ReplicaAddress[];
  /** read_routing=off sends everything to the primary */
  readRouting?: boolean;
  file: string;
  line: number;
}

/** One `[users]` line. Time values are milliseconds. */
export interface UserEntry {
  name: string;
  poolMode?: PoolMode;
  maxUserConnections?: number;
  maxUserClientConnections?: number;
  poolSize?: number;
  reservePoolSize?: number;
  queryTimeout?: number;
  queryWaitTimeout?: number;
  idleTransactionTimeout?: number;
  transactionTimeout?: number;
  clientIdleTimeout?: number;
  /** read_routing=off sends everything this user runs to the primary */
  readRouting?: boolean;
  file: string;
  line: number;
}

export interface ConfigWarning {
  file: string;
  line: number;
  key: string;
  message: string;
}

/**
 * Every key of the settings section (`[pooler]` or `[pgbouncer]`), named as in the ini file.
 * Time values are milliseconds; list values are already split on commas.
 * `params.ts` holds the type, default and documentation of each; the two must name the same keys.
 */
export interface Settings {
  admin_users: string[];
  all_replicas_lagging: AllReplicasLagging;
  application_name_add_host: boolean;
  auth_dbname: string;
  auth_file: string;
  auth_hba_file: string;
  auth_ident_file: string;
  auth_ldap_options: string;
  auth_query: string;
  auth_type: AuthType;
  auth_user: string;
  autodb_idle_timeout: number;
  cancel_wait_timeout: number;
  client_idle_timeout: number;
  client_login_timeout: number;
  client_tls13_ciphers: string;
  client_tls_ca_file: string;
  client_tls_cert_file: string;
  client_tls_ciphers: string;
  client_tls_dheparams: string;
  client_tls_ecdhcurve: string;
  client_tls_key_file: string;
  client_tls_protocols: string;
  client_tls_sslmode: TlsMode;
  conffile: string;
  default_pool_size: number;
  disable_pqexec: boolean;
  dns_max_ttl: number;
  dns_nxdomain_ttl: number;
  dns_zone_check_period: number;
  idle_transaction_timeout: number;
  ignore_startup_parameters: string[];
  job_name: string;
  lag_check_interval: number;
  lag_check_timeout: number;
  listen_addr: string;
  listen_backlog: number;
  listen_port: number;
  log_connections: boolean;
  log_disconnections: boolean;
  log_level: LogLevel;
  log_pooler_errors: boolean;
  log_stats: boolean;
  logfile: string;
  login_notify_message: string;
  max_client_conn: number;
  max_db_client_connections: number;
  max_db_connections: number;
  max_digests: number;
  max_packet_size: number;
  max_prepared_statements: number;
  max_replica_lag_bytes: number;
  max_replica_lag_ms: number;
  max_user_client_connections: number;
  max_user_connections: number;
  metrics_addr: string;
  metrics_port: number;
  metrics_top_digests: number;
  min_pool_size: number;
  peer_id: number;
  pidfile: string;
  pkt_buf: number;
  pool_idle_timeout: number;
  pool_mode: PoolMode;
  primary_wait_timeout: number;
  query_timeout: number;
  query_wait_notify: number;
  query_wait_timeout: number;
  read_your_writes: ReadYourWrites;
  replica_wait_timeout: number;
  reserve_pool_size: number;
  reserve_pool_timeout: number;
  resolv_conf: string;
  sbuf_loopcnt: number;
  scram_iterations: number;
  server_check_delay: number;
  /** `<empty>` (the default) means: send an empty query; an empty string disables the check */
  server_check_query: string;
  server_connect_timeout: number;
  server_fast_close: boolean;
  server_idle_timeout: number;
  server_lifetime: number;
  server_login_retry: number;
  server_reset_query: string;
  server_reset_query_always: boolean;
  server_round_robin: boolean;
  server_tls13_ciphers: string;
  server_tls_ca_file: string;
  server_tls_cert_file: string;
  server_tls_ciphers: string;
  server_tls_key_file: string;
  server_tls_protocols: string;
  server_tls_sslmode: TlsMode;
  service_name: string;
  session_features: SessionFeatures;
  so_reuseport: boolean;
  stats_period: number;
  stats_users: string[];
  suspend_timeout: number;
  syslog: boolean;
  syslog_facility: SyslogFacility;
  syslog_ident: string;
  tcp_defer_accept: number;
  tcp_keepalive: boolean;
  tcp_keepcnt: number;
  tcp_keepidle: number;
  tcp_keepintvl: number;
  tcp_socket_buffer: number;
  tcp_user_timeout: number;
  track_extra_parameters: string[];
  transaction_timeout: number;
  unix_socket_dir: string;
  unix_socket_group: string;
  unix_socket_mode: string;
  user: string;
  verbose: number;
  write_functions: string[];
}

export interface Config {
  /** absolute path of the main ini file */
  file: string;
  settings: Settings;
  databases: Map<string, DatabaseEntry>;
  users: Map<string, UserEntry>;
  /** [rate_limits] and the [rate_limit.NAME] rules */
  rateLimits: RateLimitConfig;
  warnings: ConfigWarning[];
}
