// One PostgreSQL server of a database (its primary or a replica) as the topology monitor and the router see it.

export type NodeRole = 'primary' | 'replica';

export interface NodeState {
  /** `${host}:${port}` */
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly configuredRole: NodeRole;
  /** replicas' share of reads; 1 by default */
  weight: number;
  /** last seen via pg_is_in_recovery(); configuredRole until the first check */
  role: NodeRole;
  /** a check has succeeded at least once since start */
  checked: boolean;
  /** last check succeeded and not banned (initially true for the configured primary, false for replicas until checked) */
  healthy: boolean;
  /** consecutive failed checks / reported failures */
  failures: number;
  /** epoch ms before which no check is attempted; 0 if not banned */
  bannedUntil: number;
  lastError: string | null;
  /** primary: pg_current_wal_lsn(); replica: pg_last_wal_receive_lsn() (0n if null) */
  walLsn: bigint;
  /** replica: pg_last_wal_replay_lsn(); primary: = walLsn */
  replayLsn: bigint;
  lagBytes: number;
  lagMs: number;
  /** epoch ms of the last successful check; 0 if none */
  lastCheckAt: number;
  // Maintained by the pooler, not the monitor:
  /** statements routed there and not finished */
  outstanding: number;
  /** routed counts, for logs / SHOW REPLICAS / metrics */
  reads: number;
  writes: number;
}

export function newNode(host: string, port: number, role: NodeRole, weight = 1): NodeState {
  return {
    id: `${host}:${port}`,
    host,
    port,
    configuredRole: role,
    weight,
    role,
    checked: false,
    // Writes may go to the configured primary before its first check; reads wait for a replica's first check.
    healthy: role === 'primary',
    failures: 0,
    bannedUntil: 0,
    lastError: null,
    walLsn: 0n,
    replayLsn: 0n,
    lagBytes: 0,
    lagMs: 0,
    lastCheckAt: 0,
    outstanding: 0,
    reads: 0,
    writes: 0,
  };
}
