// Typed errors with stable codes: what a client sees (SQLSTATE + message) and what the log records.

export interface PoolerErrorInfo {
  /** stable machine-readable code, used in logs and metrics */
  code: string;
  /** SQLSTATE sent to the client */
  sqlstate: string;
  severity?: 'ERROR' | 'FATAL';
}

export const ErrorCodes = {
  protocolViolation: { code: 'protocol_violation', sqlstate: '08P01', severity: 'FATAL' },
  packetTooLarge: { code: 'packet_too_large', sqlstate: '08P01', severity: 'FATAL' },
  noUser: { code: 'no_user', sqlstate: '08P01', severity: 'FATAL' },
  unsupportedProtocol: { code: 'unsupported_protocol', sqlstate: '08P01', severity: 'FATAL' },
  unknownDatabase: { code: 'unknown_database', sqlstate: '3D000', severity: 'FATAL' },
  authFailed: { code: 'auth_failed', sqlstate: '28P01', severity: 'FATAL' },
  authUnsupported: { code: 'auth_unsupported', sqlstate: '28000', severity: 'FATAL' },
  tooManyClients: { code: 'max_client_conn', sqlstate: '53300', severity: 'FATAL' },
  queryWaitTimeout: { code: 'query_wait_timeout', sqlstate: '08P01', severity: 'FATAL' },
  serverConnectFailed: { code: 'server_connect_failed', sqlstate: '08006', severity: 'FATAL' },
  serverLost: { code: 'server_lost', sqlstate: '08006', severity: 'FATAL' },
  serverLoginFailed: { code: 'server_login_failed', sqlstate: '08006', severity: 'FATAL' },
  clientIdleTimeout: { code: 'client_idle_timeout', sqlstate: '08P01', severity: 'FATAL' },
  idleTransactionTimeout: { code: 'idle_transaction_timeout', sqlstate: '25P03', severity: 'FATAL' },
  loginTimeout: { code: 'client_login_timeout', sqlstate: '08P01', severity: 'FATAL' },
  statementModeTransaction: { code: 'statement_mode_transaction', sqlstate: '25001', severity: 'FATAL' },
  replicationUnsupported: { code: 'replication_unsupported', sqlstate: '0A000', severity: 'FATAL' },
  sessionFeatureRejected: { code: 'session_feature_rejected', sqlstate: '0A000', severity: 'ERROR' },
  /** read/write splitting: no primary is up (failover in progress) */
  noPrimary: { code: 'no_primary', sqlstate: '08001', severity: 'ERROR' },
  /** read/write splitting: no replica may serve the read and all_replicas_lagging = error */
  noReplica: { code: 'no_replica', sqlstate: '08001', severity: 'ERROR' },
  /** the node went down while a statement waited for one of its connections */
  nodeDown: { code: 'node_down', sqlstate: '08006', severity: 'ERROR' },
  /** the server died under a running statement; the client's session goes on */
  statementLost: { code: 'statement_lost', sqlstate: '08006', severity: 'ERROR' },
  /** a rate-limit rule refused the statement (rate, concurrency, block or wait timeout); the session goes on */
  rateLimited: { code: 'rate_limited', sqlstate: '53400', severity: 'ERROR' },
  invalidPoolerSetting: { code: 'invalid_pooler_setting', sqlstate: '22023', severity: 'ERROR' },
  shuttingDown: { code: 'shutting_down', sqlstate: '57P01', severity: 'FATAL' },
} as const satisfies Record<string, PoolerErrorInfo>;

export class PoolerError extends Error {
  readonly code: string;
  readonly sqlstate: string;
  readonly severity: 'ERROR' | 'FATAL';
  /** extra ErrorResponse fields from a server error being relayed (field byte → value) */
  readonly fields: Map<number, string> | undefined;

  constructor(info: PoolerErrorInfo, message: string, fields?: Map<number, string>) {
    super(message);
    this.name = 'PoolerError';
    this.code = info.code;
    this.sqlstate = info.sqlstate;
    this.severity = info.severity ?? 'ERROR';
    this.fields = fields;
  }
}
