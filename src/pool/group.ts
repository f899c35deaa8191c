// The pools of one (database, user): one per node (the primary and each replica), and what they share.

import type { Pool } from './pool.ts';
import { ServerStatements } from '../server/statements.ts';

export class PoolGroup {
  readonly database: string;
  readonly user: string;
  /** by node id (`host:port`) */
  readonly pools = new Map<string, Pool>();
  /**
   * Prepared statements (pooler's names) that some server of the group prepared without error. Shared by the
   * nodes: the schema is the same on the primary and its replicas.
   */
  readonly knownStatements = new ServerStatements();
  /** ParameterStatus values of the first server that logged in; sent to clients at login */
  serverParams: Map<string, string> | null = null;
  /** clients that keep their server for the session (session_features = pin), for SHOW POOLS and metrics */
  pinnedClients = 0;
  /** read_your_writes = user: the newest commit position any client of this (database, user) produced */
  lastWriteLsn = 0n;

  constructor(database: string, user: string) {
    this.database = database;
    this.user = user;
  }
}
