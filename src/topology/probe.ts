// One node's health check: a dedicated connection reused across checks, one query, one deadline per check.

import { connectServer, type ConnectTarget } from '../server/connect.ts';
import { ServerConn } from '../server/server.ts';
import { ErrorCodes, PoolerError } from '../errors.ts';
import { parseLsn } from './lsn.ts';

/** Role and WAL positions in one round trip; valid on a primary and on a standby. */
export const CHECK_SQL =
  'SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END, ' +
  'pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()';

export type ProbeResult =
  | { ok: true; inRecovery: boolean; currentLsn: bigint | null; receiveLsn: bigint | null; replayLsn: bigint | null }
  /** soft: the node answered but refused our login (auth, missing database): says nothing about its health */
  | { ok: false; reason: string; soft: boolean; timeout?: boolean };

/** Login refusals the pools would meet too: authentication (28), no such database (3D), or pooler lacking a usable secret. */
export function isSoftError(e: unknown): boolean {
  if (!(e instanceof PoolerError)) return false;
  if (e.sqlstate.startsWith('28') || e.sqlstate.startsWith('3D')) return true;
  // connect.ts's own login failures (no usable secret, SCRAM verification) carry pooler's code and SQLSTATE.
  return e.code === ErrorCodes.serverLoginFailed.code && e.sqlstate === ErrorCodes.serverLoginFailed.sqlstate;
}

function optLsn(v: string | null | undefined): bigint | null {
  return v === null || v === undefined ? null : parseLsn(v);
}

export function parseCheckRows(rows: (string | null)[][]): ProbeResult {
  const row = rows[0];
  if (rows.length !== 1 || row === undefined || row.length !== 4 || (row[0] !== 't' && row[0] !== 'f')) {
    throw new Error(`unexpected reply to the health check: ${JSON.stringify(rows)}`);
  }
  const [inRecovery, current, receive, replay] = row;
  return {
    ok: true,
    inRecovery: inRecovery === 't',
    currentLsn: optLsn(current),
    receiveLsn: optLsn(receive),
    replayLsn: optLsn(replay),
  };
}

export class NodeProbe {
  private conn: ServerConn | null = null;
  /** bumped by destroy(): a login finishing after it belongs to an abandoned check and is thrown away */
  private epoch = 0;
  /** settles the check in flight, if any */
  private abort: ((r: ProbeResult) => void) | null = null;
  private readonly owner = {
    serverClosed: (server: ServerConn) => {
      if (this.conn === server) this.conn = null;
    },
  };

  /** Run one check; never rejects. Settles by `timeoutMs` at the latest, destroying the connection on timeout. */
  check(target: ConnectTarget, timeoutMs: number): Promise<ProbeResult> {
    return new Promise<ProbeResult>((resolve) => {
      let settled = false;
      const finish = (r: ProbeResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (this.abort === finish) this.abort = null;
        // Whatever went wrong, the next check starts from a fresh connection.
        if (!r.ok) this.destroy(r.reason);
        resolve(r);
      };
      const timer = setTimeout(() => finish({ ok: false, reason: `no answer within ${timeoutMs} ms`, soft: false, timeout: true }), timeoutMs);
      timer.unref();
      this.abort = finish;
      this.run(target, timeoutMs).then(finish, (e: unknown) =>
        finish({ ok: false, reason: e instanceof Error ? e.message : String(e), soft: isSoftError(e) }),
      );
    });
  }

  /**
   * Close the connection at once (no waiting for a Terminate to flush: a stopped server never reads it)
   * and settle the check in flight with `reason`.
   */
  destroy(reason: string): void {
    this.epoch++;
    const conn = this.conn;
    this.conn = null;
    if (conn) {
      conn.close(reason);
      conn.socket.destroy();
    }
    const abort = this.abort;
    this.abort = null;
    abort?.({ ok: false, reason, soft: false });
  }

  private async run(target: ConnectTarget, timeoutMs: number): Promise<ProbeResult> {
    let conn = this.conn;
    if (conn === null || conn.closed) {
      const epoch = this.epoch;
      const login = await connectServer({
        ...target,
        startupParams: { ...target.startupParams, application_name: target.startupParams.application_name ?? 'pooler-monitor' },
        connectTimeoutMs: timeoutMs,
      });
      if (epoch !== this.epoch) {
        login.socket.on('error', () => {});
        login.socket.destroy();
        throw new Error('check abandoned');
      }
      conn = new ServerConn(login, target.host, target.port, this.owner);
      this.conn = conn;
    }
    return parseCheckRows(await conn.queryRows(CHECK_SQL));
  }
}
