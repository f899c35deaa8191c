// A statement held back by a rate-limit rule with action = wait: it sits in the client's queue, in order, until
// the rule gives it a turn (then it runs) or max_wait_ms passes (then the server is made to refuse it).
import type { ServerConn } from '../server/server.ts';
import type { LimitWaiter, RuleState } from '../limits/rule-state.ts';
import type { LimitSlot } from './replies.ts';
import type { DigestStat } from '../stats/digest-stats.ts';

export interface GateItem {
  run(server: ServerConn, out: Buffer[]): void;
}

export class LimitGate implements LimitWaiter, LimitSlot, GateItem {
  readonly rule: RuleState;
  timer: NodeJS.Timeout | null = null;
  settled = false;
  admitted = false;
  /** an Execute: the messages of its batch queued before it are to be held back with it */
  holdsBatch = false;
  /** what the client queued before the statement in the same batch, held back with it (see ClientConn.holdBatch) */
  before: (Buffer | GateItem)[] | null = null;
  /** the statement's message (or rewritten form) to send once admitted */
  item: Buffer | GateItem | null = null;
  /** what to send instead when the wait runs out: a statement that fails with the limit's error on the server */
  replacement: ((message: string) => Buffer) | null = null;
  /** the statement's digest statistics, to count a wait that ran out */
  stat: DigestStat | null = null;
  private message = '';
  private readonly onSettled: (gate: LimitGate) => void;

  constructor(rule: RuleState, onSettled: (gate: LimitGate) => void) {
    this.rule = rule;
    this.onSettled = onSettled;
  }

  admit(): void {
    this.settled = true;
    this.admitted = true;
    this.onSettled(this);
  }

  /** its wait ran out: it was refused */
  get refused(): boolean {
    return this.message !== '';
  }

  reject(message: string): void {
    this.settled = true;
    this.message = message;
    this.onSettled(this);
  }

  /** The statement finished (or never ran): its turn goes back to the rule. */
  release(): void {
    if (!this.admitted) return;
    this.admitted = false;
    this.rule.release();
  }

  run(server: ServerConn, out: Buffer[]): void {
    if (this.before !== null) {
      for (const b of this.before) {
        if (Buffer.isBuffer(b)) out.push(b);
        else b.run(server, out);
      }
    }
    if (this.message === '') {
      const item = this.item!;
      if (Buffer.isBuffer(item)) out.push(item);
      else item.run(server, out);
    } else {
      out.push(this.replacement!(this.message));
    }
  }
}
