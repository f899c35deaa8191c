// A client's named prepared statements under transaction pooling. Each client name maps to a pooler-owned,
// content-addressed server name; whatever server the client lands on is given the statement (once) before
// the client uses it there, and the replies to what pooler injected never reach the client.

import { hash } from 'node:crypto';
import { TxStatus } from '../protocol/codes.ts';
import * as build from '../protocol/build.ts';
import { Expect, type ExpectKind, type ReplyHooks, type Replies } from './replies.ts';
import type { ServerConn } from '../server/server.ts';
import { PROBE_NAME, type ServerStatements } from '../server/statements.ts';

/** Client batches (messages up to a Sync, or one Query) get process-wide numbers, so servers can tell them apart. */
let batches = 0;
import type { SqlDeallocate, SqlExecute, SqlPrepare } from '../sql/session.ts';
import { parseFormOfPrepare } from './prepare-sql.ts';

export interface StatementDef {
  serverName: string;
  /** the Parse that creates it under serverName (protocol-level statements) */
  parse: Buffer | null;
  /** the PREPARE that creates it under serverName (SQL-level statements) */
  prepareSql: string | null;
  /** running it may change session settings (set_config): each use must mark the session for read-back */
  changesSettings?: boolean;
  /** PostgreSQL refused to create it: nothing may bring it back */
  dead?: boolean;
}

/** A client message whose bytes depend on the server it reaches: run when it is written to one. */
export interface StatementOp {
  run(server: ServerConn, out: Buffer[]): void;
}

const deallocateTag = build.commandComplete('DEALLOCATE');

/** Names pooler gives statements on servers; a client using this prefix could collide with them. */
export const SERVER_NAME_PREFIX = '_pooler_';

/**
 * Content address of a statement. A cryptographic hash, because servers are shared: a client able to make
 * two different queries collide could otherwise have another client run its query.
 */
function serverNameFor(kind: 'p' | 'q', def: Buffer | string): string {
  return SERVER_NAME_PREFIX + kind + hash('sha256', def, 'hex').slice(0, 32);
}

/** `msg` with every occurrence of pooler's statement name replaced by the client's (for error messages). */
function renamed(msg: Buffer, serverName: string, clientName: string): Buffer {
  const text = msg.toString('latin1');
  if (!text.includes(serverName)) return Buffer.from(msg);
  const client = Buffer.from(clientName, 'utf8').toString('latin1');
  const out = Buffer.from(text.split(serverName).join(client), 'latin1');
  out.writeInt32BE(out.length - 1, 1);
  return out;
}

export function duplicateStatementError(name: string): [string, string] {
  return ['42P05', `prepared statement "${name}" already exists`];
}

/** How many statements a pool remembers as prepared successfully somewhere (see ClientStatements.parse). */
const KNOWN_PER_POOL = 4096;

export class ClientStatements {
  readonly defs = new Map<string, StatementDef>();
  private readonly replies: Replies;
  private readonly max: () => number;
  /** statements some server of the client's pool prepared without error */
  private readonly known: ServerStatements;
  /** a statement that may change settings is about to run */
  private readonly settingsChanging: () => void;
  /** the batch the client's next messages belong to */
  private batch = ++batches;

  constructor(replies: Replies, max: () => number, known: ServerStatements, settingsChanging: () => void) {
    this.replies = replies;
    this.max = max;
    this.known = known;
    this.settingsChanging = settingsChanging;
  }

  /**
   * A definition that displaced another whose removal (Close, DEALLOCATE) may yet be undone: if the newer one
   * is refused, the older comes back.
   */
  private readonly displaced = new Map<StatementDef, StatementDef>();

  /** PostgreSQL refused to create `def`. */
  private forget(name: string, def: StatementDef): void {
    def.dead = true;
    const older = this.displaced.get(def);
    this.displaced.delete(def);
    if (this.defs.get(name) !== def) return;
    if (older && !older.dead) this.defs.set(name, older);
    else this.defs.delete(name);
  }

  /** A removal of `def` did not happen after all (the Close or DEALLOCATE was refused or skipped). */
  private restore(name: string, def: StatementDef): void {
    if (def.dead) return;
    const current = this.defs.get(name);
    if (current === undefined) this.defs.set(name, def);
    else if (current !== def) this.displaced.set(current, def);
  }

  /** The client sent a Sync or a Query: what follows is a new batch. */
  synced(): void {
    this.batch = ++batches;
  }

  /** Whether the server holds it and this batch may count on that (no other batch's prepare still in flight). */
  private usable(st: ServerStatements, serverName: string, batch: number): boolean {
    if (!st.use(serverName)) return false;
    const from = st.pendingFrom(serverName);
    return from === undefined || from === batch;
  }

  /**
   * Close messages for evicted statements go first (and one for `serverName` itself if an earlier eviction's
   * Close of it may yet be skipped); hooks.injected counts them. Returns the evicted names.
   */
  private makeRoom(server: ServerConn, serverName: string, out: Buffer[], hooks: ReplyHooks, batch: number): string[] | null {
    const st = server.statements;
    const reclose = st.mayStillHold(serverName);
    const evicted = st.add(serverName, this.max(), batch);
    if (evicted) for (const n of evicted) out.push(build.closeStatement(n));
    if (reclose) out.push(build.closeStatement(serverName));
    hooks.injected = (evicted?.length ?? 0) + (reclose ? 1 : 0);
    return evicted;
  }

  /**
   * Give a server that lacks it the client's statement: Closes for evicted ones, then its Parse (all hidden).
   * `hooks` learns how many were injected and what to undo if they did not all run.
   */
  private reprepare(server: ServerConn, def: StatementDef, out: Buffer[], hooks: ReplyHooks, batch: number): void {
    const st = server.statements;
    const name = def.serverName;
    if (st.has(name)) {
      // Prepared by an earlier batch whose outcome is not known yet: close it and prepare it again, which is
      // right whichever way that batch goes.
      out.push(build.closeStatement(name), def.parse!);
      st.takeOver(name, batch);
      hooks.injected = 2;
      hooks.injectedDone = (ran) => {
        if (ran === 2) st.confirm(name, batch);
        else if (ran === 1) st.delete(name, batch);
        else st.uncertain(name, batch);
      };
      return;
    }
    const evicted = this.makeRoom(server, name, out, hooks, batch);
    out.push(def.parse!);
    const closes = hooks.injected!;
    hooks.injected = closes + 1;
    hooks.injectedDone = (ran) => {
      if (evicted) st.settleEvictions(evicted, ran);
      if (ran <= closes) st.delete(name, batch);
      else st.confirm(name, batch);
    };
  }

  // ---- protocol level ----------------------------------------------------------------------------------

  /**
   * Parse. Unnamed statements pass through; a named one becomes an op (or an error for a duplicate).
   * With `local` (the client holds no server and owes nothing) a statement this pool already prepared
   * successfully is answered at once, without a server: false. Drivers that prepare synchronously while
   * other connections of the same thread hold every server (pgbench -M prepared) would otherwise deadlock.
   */
  parse(msg: Buffer, local: boolean, changesSettings = false): boolean | Buffer | StatementOp {
    const z = msg.indexOf(0, 5);
    if (z <= 5) {
      this.replies.push(Expect.Parse);
      return true; // unnamed, or malformed (the server will say so)
    }
    const name = msg.toString('utf8', 5, z);
    if (this.defs.has(name)) {
      this.replies.push(Expect.Parse, null, 2);
      return build.raiseExtended(...duplicateStatementError(name));
    }
    const afterName = msg.subarray(z + 1);
    const serverName = serverNameFor('p', afterName);
    const def: StatementDef = { serverName, parse: build.parseWithName(serverName, afterName), prepareSql: null, changesSettings };
    // Recorded now so that later messages in the same batch see it; undone if PostgreSQL never creates it.
    this.defs.set(name, def);
    if (local && this.known.use(serverName)) {
      this.replies.push(Expect.Answered, { answer: build.parseComplete });
      return false;
    }
    const seq = this.replies.push(Expect.Parse);
    const batch = this.batch;
    return {
      run: (server, out) => {
        const st = server.statements;
        if (st.use(serverName)) {
          if (server.txStatus === TxStatus.Idle && this.replies.isHead(seq)) {
            this.replies.patch(seq, Expect.Answered, { answer: build.parseComplete, failed: () => this.forget(name, def) }, 0);
          } else {
            // Inside a transaction, or behind requests still running: whether PostgreSQL would accept this Parse
            // (not in a failed transaction, except ROLLBACK) is only known there. Ask it with a throwaway name.
            out.push(build.closeStatement(PROBE_NAME), build.parseWithName(PROBE_NAME, afterName));
            server.probeOpen = true;
            this.replies.patch(seq, Expect.Parse, { failed: () => this.forget(name, def), injected: 1 }, 1);
          }
          return;
        }
        const hooks: ReplyHooks = {};
        const evicted = this.makeRoom(server, serverName, out, hooks, batch);
        out.push(def.parse!);
        hooks.injectedDone = (ran) => evicted && st.settleEvictions(evicted, ran);
        hooks.failed = () => {
          st.delete(serverName, batch);
          this.forget(name, def);
        };
        hooks.ok = () => {
          st.confirm(serverName, batch);
          this.known.add(serverName, KNOWN_PER_POOL);
        };
        this.replies.patch(seq, Expect.Parse, hooks, hooks.injected!);
      },
    };
  }

  /** Bind (statement name after the portal name) or Describe/Close of a statement ('S'). */
  private use(msg: Buffer, nameStart: number, kind: ExpectKind): true | StatementOp {
    const z = msg.indexOf(0, nameStart);
    const name = z > nameStart ? msg.toString('utf8', nameStart, z) : '';
    const def = name === '' ? undefined : this.defs.get(name);
    if (def === undefined) {
      // Unnamed, or a name the client never defined: the server gives PostgreSQL's own error for it.
      this.replies.push(kind);
      return true;
    }
    if (def.changesSettings && kind === Expect.Bind) this.settingsChanging();
    const rewritten = build.withName(msg, nameStart, z, def.serverName);
    const seq = this.replies.push(kind);
    const batch = this.batch;
    return {
      run: (server, out) => {
        const st = server.statements;
        if (this.usable(st, def.serverName, batch)) {
          out.push(rewritten);
          return;
        }
        if (def.parse === null) {
          // A SQL-level PREPARE this server lacks cannot be re-created from the extended protocol.
          out.push(rewritten);
          this.replies.patch(seq, kind, { rewriteError: (m) => renamed(m, def.serverName, name) }, 0);
          return;
        }
        const hooks: ReplyHooks = {};
        this.reprepare(server, def, out, hooks, batch);
        out.push(rewritten);
        this.replies.patch(seq, kind, hooks, hooks.injected!);
      },
    };
  }

  bind(msg: Buffer): true | StatementOp {
    const portalEnd = msg.indexOf(0, 5);
    if (portalEnd < 0) {
      this.replies.push(Expect.Bind);
      return true;
    }
    return this.use(msg, portalEnd + 1, Expect.Bind);
  }

  describe(msg: Buffer): true | StatementOp {
    if (msg.length < 7 || msg[5] !== 0x53) {
      this.replies.push(Expect.Describe);
      return true; // a portal: portals live and die inside the transaction
    }
    return this.use(msg, 6, Expect.Describe);
  }

  /** Close: a statement is only forgotten by the client; the server keeps it for others (LRU decides). */
  close(msg: Buffer): boolean {
    const z = msg.indexOf(0, 6);
    if (msg.length < 7 || msg[5] !== 0x53 || z <= 6) {
      this.replies.push(Expect.Close);
      return true;
    }
    const name = msg.toString('utf8', 6, z);
    const def = this.defs.get(name);
    if (def) this.defs.delete(name);
    // Closing a name that does not exist is not an error in PostgreSQL either.
    this.replies.push(Expect.Answered, { answer: build.closeComplete, failed: def ? () => this.restore(name, def) : undefined });
    return false;
  }

  // ---- SQL level (a single-statement simple Query) -------------------------------------------------------

  sqlPrepare(sql: string, p: SqlPrepare, changesSettings = false): true | Buffer | StatementOp {
    if (this.defs.has(p.name)) {
      this.replies.push(Expect.Query);
      return build.query(build.raiseSql(...duplicateStatementError(p.name)));
    }
    const serverName = serverNameFor('q', sql.slice(p.nameEnd));
    const afterName = parseFormOfPrepare(sql, p.nameEnd);
    const def: StatementDef = {
      serverName,
      // So that a server lacking it can be given it by a Parse when the client binds it through the protocol.
      parse: afterName && build.parseWithName(serverName, afterName),
      prepareSql: sql.slice(0, p.nameStart) + serverName + sql.slice(p.nameEnd),
      changesSettings,
    };
    this.defs.set(p.name, def);
    const seq = this.replies.push(Expect.Query);
    const batch = this.batch;
    return {
      run: (server, out) => {
        const st = server.statements;
        if (st.use(serverName)) {
          // The server already has it (or an earlier batch is preparing it, and a later use re-prepares it if
          // that fails): a no-op answers, with PREPARE's own CommandComplete.
          out.push(build.query(build.noOpSql));
          this.replies.patch(seq, Expect.Query, { completeAs: build.commandComplete('PREPARE'), failed: () => this.forget(p.name, def) }, 0);
          return;
        }
        // Not bounded here (that would take extended-protocol Closes ahead of a simple Query); the next
        // protocol-level prepare on this server evicts down to max_prepared_statements.
        st.add(serverName, 0, batch);
        out.push(build.query(def.prepareSql!));
        this.replies.patch(seq, Expect.Query, {
          ok: () => st.confirm(serverName, batch),
          failed: () => {
            st.delete(serverName, batch);
            this.forget(p.name, def);
          },
        }, 0);
      },
    };
  }

  /** `batchOpen`: extended-protocol messages precede it unsynced (a Sync of pooler's would end the client's batch). */
  sqlExecute(sql: string, e: SqlExecute, batchOpen: boolean): true | StatementOp {
    const def = this.defs.get(e.name);
    if (def === undefined) {
      this.replies.push(Expect.Query);
      return true;
    }
    const rewritten = sql.slice(0, e.nameStart) + def.serverName + sql.slice(e.nameEnd);
    if (def.changesSettings) this.settingsChanging();
    const seq = this.replies.push(Expect.Query);
    const batch = this.batch;
    return {
      run: (server, out) => {
        const st = server.statements;
        if (this.usable(st, def.serverName, batch)) {
          out.push(build.query(rewritten));
          return;
        }
        const rewriteError = (m: Buffer): Buffer => renamed(m, def.serverName, e.name);
        if (def.parse !== null && !batchOpen) {
          // Prepare it first with a Parse + Sync whose replies (an error too) stay hidden; should it fail, the
          // EXECUTE fails with "does not exist", under the client's name.
          const hooks: ReplyHooks = { dropThroughReady: true, rewriteError };
          this.reprepare(server, def, out, hooks, batch);
          out.push(build.syncMessage, build.query(rewritten));
          this.replies.patch(seq, Expect.Query, hooks, hooks.injected!);
          return;
        }
        if (def.prepareSql === null || st.has(def.serverName)) {
          // Inside an open batch: no way to prepare it first; PostgreSQL says it does not exist, as it would.
          out.push(build.query(rewritten));
          this.replies.patch(seq, Expect.Query, { rewriteError }, 0);
          return;
        }
        // Prepare it in the same round trip; its CommandComplete is hidden.
        out.push(build.query(`${def.prepareSql!}; ${rewritten}`));
        this.replies.patch(seq, Expect.Query, {
          hideFirstComplete: () => {
            st.add(def.serverName, 0);
            st.confirm(def.serverName);
          },
          rewriteError,
        }, 0);
      },
    };
  }

  sqlDeallocate(d: SqlDeallocate, server: () => ServerConn | null): true | Buffer {
    if (d.name === null) {
      // DEALLOCATE ALL runs on the server: it forgets every statement there, the client all of its own.
      this.replies.push(Expect.Query, this.forgetAllHooks(server));
      return true;
    }
    const name = d.name;
    const def = this.defs.get(name);
    if (def === undefined) {
      this.replies.push(Expect.Query);
      return true;
    }
    // Like a protocol Close: only the client forgets it; the server statement may serve other clients.
    this.defs.delete(name);
    this.replies.push(Expect.Query, { completeAs: deallocateTag, failed: () => this.restore(name, def) });
    return build.query(build.noOpSql);
  }

  /** DISCARD ALL or DEALLOCATE ALL ran on the client's server. */
  forgetAll(server: ServerConn | null): void {
    this.defs.clear();
    server?.statements.clear();
  }

  /**
   * A Query with DISCARD ALL or DEALLOCATE ALL: the client's statements are forgotten now (later messages in the
   * same pipeline must not find them), the server's when it succeeds. Should it fail, whether a DEALLOCATE ALL
   * in it ran is unknown: the server gets DISCARD ALL before anyone else uses it.
   */
  forgetAllHooks(server: () => ServerConn | null): ReplyHooks {
    const saved = new Map(this.defs);
    this.defs.clear();
    return {
      ok: () => server()?.statements.clear(),
      failed: () => {
        for (const [k, v] of saved) this.restore(k, v);
        const srv = server();
        if (srv) srv.needsDiscard = true;
      },
    };
  }
}
