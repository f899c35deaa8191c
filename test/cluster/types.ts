// Public types of the PostgreSQL cluster fixture, shared by the local and Docker implementations.

export interface PgNode {
  name: string;
  host: string;
  port: number;
  /** Changes to 'primary' when the node is promoted. */
  role: 'primary' | 'replica';
  dataDir: string;
  /** The postmaster's PID while it runs; undefined when stopped, killed, or not visible (Docker). */
  pid(): number | undefined;
}

export interface Cluster {
  /** The node currently taking writes: the original primary, or the last promoted replica. */
  readonly primary: PgNode;
  /** Nodes whose role is still 'replica'. */
  readonly replicas: PgNode[];
  readonly nodes: PgNode[];
  superuser: string;
  connectionString(node: PgNode, db?: string, user?: string): string;
  /** Runs one statement as the superuser over a short-lived connection and returns its rows. */
  query(node: PgNode, sql: string, params?: unknown[]): Promise<any[]>;
  pauseReplay(node: PgNode): Promise<void>;
  resumeReplay(node: PgNode): Promise<void>;
  /** Waits until every running replica whose upstream runs streams and has replayed the upstream's current WAL position. */
  waitForReplication(opts?: { timeoutMs?: number }): Promise<void>;
  stop(node: PgNode): Promise<void>;
  start(node: PgNode): Promise<void>;
  kill(node: PgNode): Promise<void>;
  promote(node: PgNode): Promise<void>;
  /**
   * Hangs the node without killing it (SIGSTOP to the postmaster and every descendant; `docker pause` on Docker):
   * open connections stop answering, and new TCP connects are accepted by the kernel but never get a reply.
   */
  freeze(node: PgNode): Promise<void>;
  /** Undoes freeze() (SIGCONT); a no-op for a node that is not frozen. */
  thaw(node: PgNode): Promise<void>;
  /** Stops every node (thawing frozen ones first) and removes all it created; idempotent. */
  destroy(): Promise<void>;
}

export interface ClusterOptions {
  replicas?: number;
  name?: string;
  /** Extra postgresql.conf settings, applied to every node. */
  settings?: Record<string, string>;
}
