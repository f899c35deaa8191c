// What a server owes its client, request by request, so pooler can hide the replies to messages it injected
// and answer some requests itself (ParseComplete, CloseComplete) at the exact place PostgreSQL would.

import { Backend } from '../protocol/codes.ts';
import type { DigestStat } from '../stats/digest-stats.ts';

/** A rate-limit turn a statement holds until it finishes. */
export interface LimitSlot {
  release(): void;
}

/** Told when a tracked statement (a Query or an Execute with a digest stat or a limit slot) finishes. */
export type StatementDone = (stat: DigestStat | null, slot: LimitSlot | null, ok: boolean, rows: number, startedAt: number) => void;

/** What a request expects from the server. Plain numbers: the queue is a Uint8Array ring. */
export const Expect = {
  /** Query or FunctionCall: everything up to ReadyForQuery; an error inside does not skip anything */
  Query: 1,
  Sync: 2,
  Parse: 3,
  Bind: 4,
  /** ParameterDescription (statements only), then RowDescription or NoData */
  Describe: 5,
  /** CommandComplete, EmptyQueryResponse or PortalSuspended (rows and COPY pass through before it) */
  Execute: 6,
  Close: 7,
  /** answered by pooler itself: its bytes go out as soon as everything before it has been answered */
  Answered: 8,
  /** pooler's own simple Query: every reply up to and including its ReadyForQuery is dropped */
  Hidden: 9,
} as const;
export type ExpectKind = (typeof Expect)[keyof typeof Expect];

/** Rare per-request extras; most requests have none, so the hot path allocates nothing. */
export interface ReplyHooks {
  /** the bytes pooler answers with (Answered) */
  answer?: Buffer;
  /** the request succeeded (for Answered: its answer went out) */
  ok?(): void;
  /** the request failed, or PostgreSQL skipped it after an earlier error */
  failed?(): void;
  /** how many messages pooler injected before this request (their replies are hidden) */
  injected?: number;
  /**
   * Called once when the request is settled: the first `ran` of its injected messages ran on the server, the
   * rest did not (one of them failed, or PostgreSQL skipped them after an earlier error).
   */
  injectedDone?(ran: number): void;
  /** rewrite the ErrorResponse this request gets (e.g. pooler's statement name back to the client's) */
  rewriteError?(msg: Buffer): Buffer;
  /** a Query pooler answered with a no-op statement: the CommandComplete to send instead of the no-op's */
  completeAs?: Buffer;
  /** pooler sent a Parse + Sync ahead of this Query: drop every reply up to and including that ReadyForQuery */
  dropThroughReady?: boolean;
  /** a Query that pooler prefixed with a statement of its own: hide that one's CommandComplete, and say it ran */
  hideFirstComplete?: () => void;
}

export class Replies {
  private kinds = new Uint8Array(32);
  /** replies to messages pooler injected before this request ('1' or '3'), dropped as they come */
  private hidden = new Uint32Array(32);
  private hooks: (ReplyHooks | null)[] = new Array<ReplyHooks | null>(32).fill(null);
  // Per-statement tracking (digest statistics, rate-limit slots): null on untracked entries.
  private stats: (DigestStat | null)[] = new Array<DigestStat | null>(32).fill(null);
  private slots: (LimitSlot | null)[] = new Array<LimitSlot | null>(32).fill(null);
  private started = new Float64Array(32);
  /** rows reported by the CommandCompletes of the tracked request at head so far */
  private rows = 0;
  /** the next Query or Execute pushed is this statement (set just before the push, consumed by it) */
  nextStat: DigestStat | null = null;
  nextSlot: LimitSlot | null = null;
  private readonly done: StatementDone | null;
  private head = 0;
  private count = 0;
  /** sequence number of the entry at head (entries are addressed by sequence so later patches find them) */
  private headSeq = 0;
  /** ReadyForQuery messages owed (Query and Sync entries queued) */
  readyOwed = 0;
  /** an extended-protocol error arrived and no Sync is queued yet: PostgreSQL ignores everything up to the Sync */
  private skipping = false;
  /** the Query at head got an ErrorResponse */
  private queryFailed = false;
  /** bytes to send the client at once when an answered request reaches the head outside a server reply */
  private readonly emit: (bytes: Buffer) => void;

  constructor(emit: (bytes: Buffer) => void, done: StatementDone | null = null) {
    this.emit = emit;
    this.done = done;
  }

  /** A tracked statement that never reached push() (answered some other way): settle it now. */
  settleNext(ok: boolean): void {
    const stat = this.nextStat;
    const slot = this.nextSlot;
    if (stat === null && slot === null) return;
    this.nextStat = null;
    this.nextSlot = null;
    this.done?.(stat, slot, ok, 0, performance.now());
  }

  get length(): number {
    return this.count;
  }

  /** Queue what a request expects; returns its sequence number for a later patch(). */
  push(kind: ExpectKind, hooks: ReplyHooks | null = null, hidden = 0): number {
    const tracked = (kind === Expect.Query || kind === Expect.Execute) && (this.nextStat !== null || this.nextSlot !== null);
    if (this.skipping) {
      if (kind !== Expect.Sync) {
        // PostgreSQL ignores this message: it will never be answered.
        if (hooks) settle(hooks, false, 0);
        if (tracked) this.settleNext(false);
        return -1;
      }
      this.skipping = false;
    }
    if (this.count === this.kinds.length) this.grow();
    const i = (this.head + this.count) & (this.kinds.length - 1);
    this.kinds[i] = kind;
    this.hidden[i] = hidden;
    this.hooks[i] = hooks;
    if (tracked) {
      this.stats[i] = this.nextStat;
      this.slots[i] = this.nextSlot;
      this.started[i] = performance.now();
      this.nextStat = null;
      this.nextSlot = null;
      if (this.count === 0) this.rows = 0;
    }
    this.count++;
    if (kind === Expect.Query || kind === Expect.Sync) this.readyOwed++;
    const seq = this.headSeq + this.count - 1;
    if (kind === Expect.Answered && this.count === 1) this.emitAnswers();
    return seq;
  }

  /**
   * Decide, when the request reaches a server, how it is answered: by the server (with `hidden` injected
   * replies first) or by pooler (kind Answered, hooks.answer). Sequence -1 (a skipped request) is ignored.
   */
  patch(seq: number, kind: ExpectKind, hooks: ReplyHooks | null, hidden: number): void {
    const off = seq - this.headSeq;
    if (seq < 0 || off < 0 || off >= this.count) {
      // PostgreSQL skipped it after an earlier error: undo whatever the request assumed would happen.
      if (hooks) settle(hooks, false, 0);
      return;
    }
    const i = (this.head + off) & (this.kinds.length - 1);
    this.kinds[i] = kind;
    this.hooks[i] = hooks;
    this.hidden[i] = hidden;
    if (kind === Expect.Answered && off === 0) this.emitAnswers();
  }

  /** Whether everything before this request has been answered. */
  isHead(seq: number): boolean {
    return seq === this.headSeq && this.count > 0;
  }

  /** Forget everything (the server is gone). */
  clear(): void {
    for (let n = 0; n < this.count; n++) {
      const i = (this.head + n) & (this.kinds.length - 1);
      this.hooks[i] = null;
      this.finishTracked(i, false);
    }
    this.head = 0;
    this.headSeq += this.count;
    this.count = 0;
    this.readyOwed = 0;
    this.skipping = false;
    this.queryFailed = false;
  }

  /**
   * A message from the server for this client. Returns true to forward it, false to drop it, or the bytes
   * to send in its place (the message itself followed by pooler's own answers that come next).
   */
  onServerMessage(type: number, msg: Buffer): boolean | Buffer {
    if (this.count === 0) return true; // notices, notifications, parameter status between requests
    const i = this.head;
    const kind = this.kinds[i]!;
    const h = this.hooks[i];
    if (h !== null && h.dropThroughReady) {
      // pooler's own messages and Sync ahead of a Query: their replies (an error too) stay hidden.
      if (type === Backend.ErrorResponse) {
        // The last of them (the Parse) failed; Close never does.
        h.injectedDone?.((h.injected ?? 1) - 1);
        h.injected = 0;
      } else if (type === Backend.ReadyForQuery) {
        h.dropThroughReady = false;
        this.hidden[i] = 0;
      }
      return false;
    }
    if (kind === Expect.Hidden) {
      if (type !== Backend.ReadyForQuery) return false;
      this.shift(false);
      return this.after(null);
    }
    if (this.hidden[i]! > 0) {
      if (type === Backend.ParseComplete || type === Backend.CloseComplete || type === Backend.BindComplete) {
        this.hidden[i]!--;
        return false;
      }
      // A message pooler injected for this request failed: the request fails with that error, in its place
      // (hidden still counts the failed one, so it is not counted as run).
      return type === Backend.ErrorResponse ? this.fail(msg) : true;
    }
    switch (type) {
      case Backend.ReadyForQuery:
        if (kind !== Expect.Query && kind !== Expect.Sync) return true;
        return this.complete(msg);
      case Backend.ErrorResponse:
        if (kind === Expect.Query) {
          this.queryFailed = true;
          return this.hooks[i]?.rewriteError?.(msg) ?? true;
        }
        if (kind === Expect.Sync) return true; // e.g. a deferred constraint failing at commit
        return this.fail(msg);
      case Backend.ParseComplete:
        return kind === Expect.Parse ? this.complete(msg) : true;
      case Backend.BindComplete:
        return kind === Expect.Bind ? this.complete(msg) : true;
      case Backend.CloseComplete:
        return kind === Expect.Close ? this.complete(msg) : true;
      case Backend.RowDescription:
      case Backend.NoData:
        return kind === Expect.Describe ? this.complete(msg) : true;
      case Backend.CommandComplete: {
        if (this.stats[i] !== null && !(h !== null && h.hideFirstComplete)) this.rows += commandRows(msg);
        if (kind === Expect.Execute) return this.complete(msg);
        if (kind === Expect.Query && h !== null) {
          if (h.hideFirstComplete) {
            const f = h.hideFirstComplete;
            h.hideFirstComplete = undefined;
            f();
            return false;
          }
          if (h.completeAs) return h.completeAs;
        }
        return true;
      }
      case Backend.PortalSuspended:
        return kind === Expect.Execute ? this.complete(msg) : true;
      case Backend.EmptyQueryResponse:
        return kind === Expect.Execute ? this.complete(msg) : true;
      default:
        return true;
    }
  }

  /** The head request got its last reply. */
  private complete(msg: Buffer): boolean | Buffer {
    this.shift(true);
    return this.after(msg);
  }

  /** The head extended-protocol request failed: PostgreSQL skips everything up to the next Sync. */
  private fail(msg: Buffer): boolean | Buffer {
    const rewritten = this.hooks[this.head]?.rewriteError?.(msg);
    const undo: ReplyHooks[] = [];
    const ran: number[] = [];
    this.shift(false, undo, ran);
    // Even a Query before the Sync is ignored (and gets no ReadyForQuery).
    while (this.count > 0 && this.kinds[this.head] !== Expect.Sync) this.shift(false, undo, ran);
    if (this.count === 0) this.skipping = true;
    // Undone newest first: a later request may have changed what an earlier one would restore.
    for (let k = undo.length - 1; k >= 0; k--) settle(undo[k]!, false, ran[k]!);
    return rewritten ?? true;
  }

  /** Take the head entry off; its hooks run now, or (when `undo` is given) are collected for the caller. */
  private shift(ok: boolean, undo?: ReplyHooks[], ran?: number[]): void {
    const i = this.head;
    const kind = this.kinds[i]!;
    const hooks = this.hooks[i];
    this.hooks[i] = null;
    const trackedOk = ok && !((kind === Expect.Query) && this.queryFailed);
    this.finishTracked(i, trackedOk);
    this.head = (i + 1) & (this.kinds.length - 1);
    this.headSeq++;
    this.count--;
    if (kind === Expect.Query || kind === Expect.Sync) {
      this.readyOwed--;
      if (kind === Expect.Query) {
        // A Query succeeded only if none of its statements failed.
        if (this.queryFailed) ok = false;
        this.queryFailed = false;
      }
    }
    if (hooks) {
      // The injected messages still counted in hidden never ran (skipped, or the first of them failed).
      const done = (hooks.injected ?? 0) - this.hidden[i]!;
      if (undo) {
        undo.push(hooks);
        ran!.push(done);
      } else {
        settle(hooks, ok, done);
      }
    }
  }

  /** After a completed request: pooler's answers that are now due follow `msg` (or go out on their own). */
  private after(msg: Buffer | null): boolean | Buffer {
    if (this.count === 0 || this.kinds[this.head] !== Expect.Answered) return msg !== null;
    const parts: Buffer[] = msg === null ? [] : [msg];
    while (this.count > 0 && this.kinds[this.head] === Expect.Answered) {
      parts.push(this.hooks[this.head]!.answer!);
      this.shift(true);
    }
    return Buffer.concat(parts);
  }

  /** Answered requests at head, outside any server reply (nothing before them is outstanding). */
  private emitAnswers(): void {
    const r = this.after(null);
    if (r instanceof Buffer) this.emit(r);
  }

  /** Entry i is done: its statement statistics and limit slot are settled (and forgotten). */
  private finishTracked(i: number, ok: boolean): void {
    const stat = this.stats[i]!;
    const slot = this.slots[i]!;
    if (stat === null && slot === null) return;
    this.stats[i] = null;
    this.slots[i] = null;
    const rows = this.rows;
    this.rows = 0;
    this.done?.(stat, slot, ok, rows, this.started[i]!);
  }

  private grow(): void {
    const n = this.kinds.length;
    const kinds = new Uint8Array(n * 2);
    const hidden = new Uint32Array(n * 2);
    const hooks = new Array<ReplyHooks | null>(n * 2).fill(null);
    const stats = new Array<DigestStat | null>(n * 2).fill(null);
    const slots = new Array<LimitSlot | null>(n * 2).fill(null);
    const started = new Float64Array(n * 2);
    for (let k = 0; k < this.count; k++) {
      const j = (this.head + k) & (n - 1);
      kinds[k] = this.kinds[j]!;
      hidden[k] = this.hidden[j]!;
      hooks[k] = this.hooks[j]!;
      stats[k] = this.stats[j]!;
      slots[k] = this.slots[j]!;
      started[k] = this.started[j]!;
    }
    this.kinds = kinds;
    this.hidden = hidden;
    this.hooks = hooks;
    this.stats = stats;
    this.slots = slots;
    this.started = started;
    this.head = 0;
  }
}

/** A request is settled: its own outcome, then what became of the messages injected before it. */
function settle(hooks: ReplyHooks, ok: boolean, ran: number): void {
  if (ok) {
    if (hooks.injected) hooks.injectedDone?.(ran);
    hooks.ok?.();
  } else {
    // Undo in reverse: the request's own effect is newer than its injected messages'.
    hooks.failed?.();
    if (hooks.injected) hooks.injectedDone?.(ran);
  }
}

/**
 * The row count of a CommandComplete tag: its last word when that is a number ("SELECT 5", "INSERT 0 5",
 * "UPDATE 3", "COPY 10"); 0 for tags without one ("CREATE TABLE"). Reads bytes, allocates nothing.
 */
export function commandRows(msg: Buffer): number {
  // type, length, tag, NUL
  let end = msg.length - 1;
  if (end > 5 && msg[end] === 0) end--;
  let n = 0;
  let scale = 1;
  let i = end;
  for (; i >= 5; i--) {
    const c = msg[i]!;
    if (c < 48 || c > 57) break;
    n += (c - 48) * scale;
    scale *= 10;
  }
  return i < end && i >= 5 && msg[i] === 32 ? n : 0;
}
