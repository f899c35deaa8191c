// postgresql.conf settings every fixture node gets, before the caller's own.

/** Settings that make throwaway test servers fast while keeping replication realistic. */
export const TEST_SETTINGS: Record<string, string> = {
  fsync: 'off',
  full_page_writes: 'off',
  wal_level: 'replica',
  max_wal_senders: '20',
  max_replication_slots: '20',
  hot_standby: 'on',
  max_connections: '300',
  wal_keep_size: '256MB',
  // Default is 10 s; replay positions in pg_stat_replication would lag that much behind.
  wal_receiver_status_interval: '1s',
  password_encryption: 'scram-sha-256',
  log_line_prefix: '%m [%p] %q%u@%d ',
};
