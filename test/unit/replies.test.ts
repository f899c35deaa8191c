// Unit tests for Replies: what the client receives (forwarded server messages, replacements and pooler's own
// answers, in order) for request queues and server reply streams, checked against PostgreSQL's extended-protocol
// rules: an error skips every request up to the next Sync, a Sync always gets ReadyForQuery, and an error inside
// a simple Query skips nothing. Hooks settle each request once: on success injectedDone then ok, on failure or skip
// failed then injectedDone, and requests skipped together are undone newest first. Ends with a randomized
// comparison against a direct connection's replies.
import { describe, expect, it } from 'vitest';
import { Expect, Replies, type ExpectKind, type ReplyHooks } from '../../src/client/replies.ts';
import { rng, typed } from '../helpers/wire.ts';

// ---- messages ------------------------------------------------------------------------------------------

const parseComplete = typed('1');
const bindComplete = typed('2');
const closeComplete = typed('3');
const noData = typed('n');
const emptyQuery = typed('I');
const portalSuspended = typed('s');
const paramDesc = (s: string): Buffer => typed('t', s);
const rowDesc = (s: string): Buffer => typed('T', s);
const dataRow = (s: string): Buffer => typed('D', s);
const cc = (tag: string): Buffer => typed('C', tag + '\0');
const rfq = (status = 'I'): Buffer => typed('Z', status);
const err = (text: string): Buffer => typed('E', `SERROR\0M${text}\0\0`);
const notice = (text: string): Buffer => typed('N', `SNOTICE\0M${text}\0\0`);
/** bytes pooler answers with (distinct per request so the order shows) */
const answer = (s: string): Buffer => typed('1', s);

/** A stream of messages as readable strings, e.g. ['1', 'C:SELECT 1', 'Z:I']. */
function decode(bytes: Buffer): string[] {
  const out: string[] = [];
  let p = 0;
  while (p < bytes.length) {
    if (p + 5 > bytes.length) throw new Error(`truncated message header at ${p}`);
    const len = bytes.readInt32BE(p + 1);
    const end = p + 1 + len;
    if (len < 4 || end > bytes.length) throw new Error(`bad message length ${len} at ${p}`);
    const body = bytes.toString('latin1', p + 5, end).replace(/\0+$/, '').replace(/\0/g, '|');
    out.push(String.fromCharCode(bytes[p]!) + (body.length > 0 ? ':' + body : ''));
    p = end;
  }
  return out;
}
const d = (...msgs: Buffer[]): string[] => decode(Buffer.concat(msgs));

// ---- harness ---------------------------------------------------------------------------------------------

interface Harness {
  r: Replies;
  /** deliver server messages; returns nothing, output accumulates */
  server(...msgs: Buffer[]): void;
  /** everything the client received since the last call, decoded */
  take(): string[];
  /** hook calls in order */
  log: string[];
  hooks(name: string, extra?: ReplyHooks): ReplyHooks;
}

function harness(): Harness {
  const out: Buffer[] = [];
  const log: string[] = [];
  const r = new Replies((b) => {
    log.push('emit');
    out.push(Buffer.from(b));
  });
  return {
    r,
    log,
    server(...msgs) {
      for (const m of msgs) {
        const res = r.onServerMessage(m[0]!, m);
        if (res === true) out.push(m);
        else if (res !== false) out.push(Buffer.from(res));
      }
    },
    take() {
      return decode(Buffer.concat(out.splice(0)));
    },
    hooks(name, extra = {}) {
      return {
        ok: () => log.push(`${name}:ok`),
        failed: () => log.push(`${name}:failed`),
        injectedDone: (n: number) => log.push(`${name}:done(${n})`),
        ...extra,
      };
    },
  };
}

// ---- deterministic ---------------------------------------------------------------------------------------

describe('plain requests', () => {
  it('forwards a whole extended batch and counts ReadyForQuery owed', () => {
    const h = harness();
    h.r.push(Expect.Parse, h.hooks('P'));
    h.r.push(Expect.Bind, h.hooks('B'));
    h.r.push(Expect.Describe, h.hooks('D'));
    h.r.push(Expect.Execute, h.hooks('E'));
    h.r.push(Expect.Sync, h.hooks('S'));
    expect(h.r.length).toBe(5);
    expect(h.r.readyOwed).toBe(1);
    const stream = [parseComplete, bindComplete, rowDesc('a'), dataRow('1'), dataRow('2'), cc('SELECT 2'), rfq()];
    h.server(...stream);
    expect(h.take()).toEqual(d(...stream));
    expect(h.log).toEqual(['P:ok', 'B:ok', 'D:ok', 'E:ok', 'S:ok']);
    expect(h.r.length).toBe(0);
    expect(h.r.readyOwed).toBe(0);
  });

  it('completes each request on its own last message, not on others', () => {
    const h = harness();
    h.r.push(Expect.Describe, h.hooks('Ds'));
    h.r.push(Expect.Describe, h.hooks('Dp'));
    h.r.push(Expect.Execute, h.hooks('E1'));
    h.r.push(Expect.Execute, h.hooks('E2'));
    h.r.push(Expect.Execute, h.hooks('E3'));
    h.r.push(Expect.Close, h.hooks('C'));
    h.server(paramDesc('x'));
    expect(h.r.length).toBe(6);
    h.server(noData);
    expect(h.r.length).toBe(5);
    h.server(rowDesc('r'));
    expect(h.r.length).toBe(4);
    h.server(dataRow('1'));
    expect(h.r.length).toBe(4);
    h.server(portalSuspended);
    expect(h.r.length).toBe(3);
    h.server(emptyQuery);
    expect(h.r.length).toBe(2);
    h.server(typed('H', 'copyout'), typed('d', 'row'), typed('c'), cc('COPY 1'));
    expect(h.r.length).toBe(1);
    h.server(closeComplete);
    expect(h.r.length).toBe(0);
    expect(h.log).toEqual(['Ds:ok', 'Dp:ok', 'E1:ok', 'E2:ok', 'E3:ok', 'C:ok']);
    expect(h.take()).toEqual(
      d(paramDesc('x'), noData, rowDesc('r'), dataRow('1'), portalSuspended, emptyQuery, typed('H', 'copyout'), typed('d', 'row'), typed('c'), cc('COPY 1'), closeComplete),
    );
  });

  it('forwards whatever arrives while nothing is owed', () => {
    const h = harness();
    h.server(notice('hello'), typed('S', 'a\0b\0'), typed('A', 'chan'));
    expect(h.take()).toEqual(d(notice('hello'), typed('S', 'a\0b\0'), typed('A', 'chan')));
  });

  it('a simple Query owes everything up to its ReadyForQuery; an error inside skips nothing', () => {
    const h = harness();
    h.r.push(Expect.Query, h.hooks('Q1'));
    h.r.push(Expect.Query, h.hooks('Q2'));
    h.r.push(Expect.Parse, h.hooks('P'));
    h.r.push(Expect.Sync, h.hooks('S'));
    expect(h.r.readyOwed).toBe(3);
    h.server(rowDesc('a'), dataRow('1'), cc('SELECT 1'), err('boom'));
    expect(h.r.length).toBe(4);
    h.server(rfq('I'));
    expect(h.r.readyOwed).toBe(2);
    h.server(cc('SET'), rfq('I'), parseComplete, rfq('I'));
    expect(h.take()).toEqual(d(rowDesc('a'), dataRow('1'), cc('SELECT 1'), err('boom'), rfq('I'), cc('SET'), rfq('I'), parseComplete, rfq('I')));
    expect(h.log).toEqual(['Q1:failed', 'Q2:ok', 'P:ok', 'S:ok']);
    expect(h.r.readyOwed).toBe(0);
  });

  it('an ErrorResponse at a Sync (a deferred constraint at commit) is forwarded and the Sync still completes', () => {
    const h = harness();
    h.r.push(Expect.Execute, h.hooks('E'));
    h.r.push(Expect.Sync, h.hooks('S'));
    h.r.push(Expect.Bind, h.hooks('B'));
    h.server(cc('INSERT 0 1'), err('deferred'), rfq('I'), bindComplete);
    expect(h.take()).toEqual(d(cc('INSERT 0 1'), err('deferred'), rfq('I'), bindComplete));
    expect(h.log).toEqual(['E:ok', 'S:ok', 'B:ok']);
  });

  it('FunctionCall (queued as Query): FunctionCallResponse then ReadyForQuery', () => {
    const h = harness();
    h.r.push(Expect.Query);
    h.server(typed('V', '\0\0\0\x01x'), rfq('I'));
    expect(h.take()).toEqual(d(typed('V', '\0\0\0\x01x'), rfq('I')));
    expect(h.r.length).toBe(0);
  });
});

describe('answered requests', () => {
  it('with nothing owed, an answer goes out at once through emit', () => {
    const h = harness();
    const seq = h.r.push(Expect.Answered, h.hooks('A', { answer: answer('a') }));
    expect(seq).toBeGreaterThanOrEqual(0);
    expect(h.take()).toEqual(d(answer('a')));
    expect(h.log).toEqual(['A:ok', 'emit']);
    expect(h.r.length).toBe(0);
  });

  it('waits for earlier replies and follows the last of them, in one replacement', () => {
    const h = harness();
    h.r.push(Expect.Parse, h.hooks('P'));
    h.r.push(Expect.Answered, h.hooks('A1', { answer: answer('a1') }));
    h.r.push(Expect.Answered, h.hooks('A2', { answer: answer('a2') }));
    h.r.push(Expect.Bind, h.hooks('B'));
    h.r.push(Expect.Answered, h.hooks('A3', { answer: answer('a3') }));
    h.r.push(Expect.Sync, h.hooks('S'));
    h.r.push(Expect.Answered, h.hooks('A4', { answer: answer('a4') }));
    expect(h.take()).toEqual([]);
    const res = h.r.onServerMessage(parseComplete[0]!, parseComplete);
    expect(Buffer.isBuffer(res)).toBe(true);
    expect(d(res as Buffer)).toEqual(d(parseComplete, answer('a1'), answer('a2')));
    h.server(notice('n'), bindComplete, rfq('T'));
    expect(h.take()).toEqual(d(notice('n'), bindComplete, answer('a3'), rfq('T'), answer('a4')));
    expect(h.log).toEqual(['P:ok', 'A1:ok', 'A2:ok', 'B:ok', 'A3:ok', 'S:ok', 'A4:ok']);
    expect(h.log).not.toContain('emit');
    expect(h.r.length).toBe(0);
  });

  it('follows a Query ReadyForQuery, even a failed Query', () => {
    const h = harness();
    h.r.push(Expect.Query, h.hooks('Q'));
    h.r.push(Expect.Answered, h.hooks('A', { answer: answer('a') }));
    h.server(err('e'), rfq('E'));
    expect(h.take()).toEqual(d(err('e'), rfq('E'), answer('a')));
    expect(h.log).toEqual(['Q:failed', 'A:ok']);
  });

  it('patch to Answered at the head emits at once; further back it waits its turn', () => {
    const h = harness();
    const s1 = h.r.push(Expect.Parse);
    const s2 = h.r.push(Expect.Parse);
    const s3 = h.r.push(Expect.Parse);
    h.r.patch(s2, Expect.Answered, h.hooks('A2', { answer: answer('2') }), 0);
    expect(h.take()).toEqual([]);
    h.r.patch(s1, Expect.Answered, h.hooks('A1', { answer: answer('1') }), 0);
    expect(h.take()).toEqual(d(answer('1'), answer('2')));
    expect(h.r.length).toBe(1);
    h.r.patch(s3, Expect.Parse, h.hooks('P3'), 0);
    h.server(parseComplete);
    expect(h.take()).toEqual(d(parseComplete));
    expect(h.log).toEqual(['A1:ok', 'A2:ok', 'emit', 'P3:ok']);
  });

  it('an Answered after a still-unpatched request waits for the patch', () => {
    const h = harness();
    const s1 = h.r.push(Expect.Parse);
    h.r.push(Expect.Answered, h.hooks('A', { answer: answer('a') }));
    expect(h.take()).toEqual([]);
    h.r.patch(s1, Expect.Parse, h.hooks('P', {}), 0);
    h.server(parseComplete);
    expect(h.take()).toEqual(d(parseComplete, answer('a')));
  });
});

describe('injected messages (hidden replies)', () => {
  it('drops ParseComplete, CloseComplete and BindComplete of injected messages, forwards the rest', () => {
    const h = harness();
    h.r.push(Expect.Parse, h.hooks('P', { injected: 2 }), 2);
    h.r.push(Expect.Bind, h.hooks('B', { injected: 2 }), 2);
    h.r.push(Expect.Describe, h.hooks('D', { injected: 1 }), 1);
    h.r.push(Expect.Sync);
    h.server(closeComplete, notice('x'), closeComplete, parseComplete);
    h.server(closeComplete, parseComplete, bindComplete);
    h.server(parseComplete, paramDesc('p'), rowDesc('r'), rfq());
    expect(h.take()).toEqual(d(notice('x'), parseComplete, bindComplete, paramDesc('p'), rowDesc('r'), rfq()));
    // all injected messages ran: said once, before ok
    expect(h.log).toEqual(['P:done(2)', 'P:ok', 'B:done(2)', 'B:ok', 'D:done(1)', 'D:ok']);
  });

  it('a duplicate-statement raise (Parse+Bind+Execute, hidden 2): the error takes the Parse place and skips to Sync', () => {
    const h = harness();
    h.r.push(Expect.Parse, null, 2);
    h.r.push(Expect.Bind, h.hooks('B'));
    h.r.push(Expect.Execute, h.hooks('E'));
    h.r.push(Expect.Sync, h.hooks('S'));
    h.server(parseComplete, bindComplete, err('already exists'), rfq('I'));
    expect(h.take()).toEqual(d(err('already exists'), rfq('I')));
    // the raise has no hooks; B and E are undone newest first
    expect(h.log).toEqual(['E:failed', 'B:failed', 'S:ok']);
  });

  it('an error in an injected message replaces the request reply and reports how many injected ran', () => {
    const h = harness();
    h.r.push(Expect.Bind, h.hooks('B', { injected: 3 }), 3);
    h.r.push(Expect.Answered, h.hooks('A', { answer: answer('a') }));
    h.r.push(Expect.Execute, h.hooks('E'));
    h.r.push(Expect.Bind, h.hooks('B2', { injected: 1 }), 1);
    h.r.push(Expect.Sync, h.hooks('S'));
    h.r.push(Expect.Answered, h.hooks('A2', { answer: answer('a2') }));
    h.server(closeComplete, closeComplete, err('injected parse failed'));
    expect(h.take()).toEqual(d(err('injected parse failed')));
    // undone newest first; each: failed, then how many of its injected messages ran
    expect(h.log).toEqual(['B2:failed', 'B2:done(0)', 'E:failed', 'A:failed', 'B:failed', 'B:done(2)']);
    h.log.length = 0;
    h.server(rfq('I'));
    expect(h.take()).toEqual(d(rfq('I'), answer('a2')));
    expect(h.log).toEqual(['S:ok', 'A2:ok']);
  });

  it('an error on the first injected message: ran 0; on the request itself after all ran: ran all, after failed', () => {
    const h = harness();
    h.r.push(Expect.Parse, h.hooks('P1', { injected: 1 }), 1);
    h.r.push(Expect.Sync);
    h.r.push(Expect.Parse, h.hooks('P2', { injected: 1 }), 1);
    h.r.push(Expect.Sync);
    h.server(err('close failed'), rfq(), closeComplete, err('parse failed'), rfq());
    expect(h.take()).toEqual(d(err('close failed'), rfq(), err('parse failed'), rfq()));
    expect(h.log).toEqual(['P1:failed', 'P1:done(0)', 'P2:failed', 'P2:done(1)']);
  });

  it('rewriteError applies to the injected error that replaces the request', () => {
    const h = harness();
    h.r.push(Expect.Bind, h.hooks('B', { injected: 1, rewriteError: () => err('rewritten') }), 1);
    h.r.push(Expect.Sync);
    h.server(err('original'), rfq());
    expect(h.take()).toEqual(d(err('rewritten'), rfq()));
  });
});

describe('errors skip to the next Sync', () => {
  it('skips requests and answered entries between the error and the Sync; their failed hooks run newest first', () => {
    const h = harness();
    h.r.push(Expect.Parse, h.hooks('P'));
    h.r.push(Expect.Bind, h.hooks('B'));
    h.r.push(Expect.Answered, h.hooks('A', { answer: answer('never') }));
    h.r.push(Expect.Describe, h.hooks('D'));
    h.r.push(Expect.Execute, h.hooks('E'));
    h.r.push(Expect.Query, h.hooks('Q'));
    h.r.push(Expect.Sync, h.hooks('S'));
    h.r.push(Expect.Answered, h.hooks('A2', { answer: answer('after') }));
    h.r.push(Expect.Execute, h.hooks('E2'));
    expect(h.r.readyOwed).toBe(2);
    h.server(parseComplete, err('bind failed'));
    expect(h.r.length).toBe(3);
    // the Query before the Sync is ignored by PostgreSQL: it gets no ReadyForQuery
    expect(h.r.readyOwed).toBe(1);
    h.server(rfq('E'), cc('SELECT 0'));
    expect(h.take()).toEqual(d(parseComplete, err('bind failed'), rfq('E'), answer('after'), cc('SELECT 0')));
    expect(h.log).toEqual(['P:ok', 'Q:failed', 'E:failed', 'D:failed', 'A:failed', 'B:failed', 'S:ok', 'A2:ok', 'E2:ok']);
    expect(h.r.readyOwed).toBe(0);
  });

  it('an Execute that fails after sending rows', () => {
    const h = harness();
    h.r.push(Expect.Execute, h.hooks('E'));
    h.r.push(Expect.Execute, h.hooks('E2'));
    h.r.push(Expect.Sync);
    h.server(dataRow('1'), dataRow('2'), err('division by zero'), rfq('I'));
    expect(h.take()).toEqual(d(dataRow('1'), dataRow('2'), err('division by zero'), rfq('I')));
    expect(h.log).toEqual(['E2:failed', 'E:failed']);
  });

  it('with no Sync queued, later pushes are skipped (sequence -1) until the Sync', () => {
    const h = harness();
    h.r.push(Expect.Bind, h.hooks('B'));
    h.server(err('bad bind'));
    expect(h.r.length).toBe(0);
    expect(h.r.push(Expect.Execute, h.hooks('E'))).toBe(-1);
    expect(h.r.push(Expect.Answered, h.hooks('A', { answer: answer('x') }))).toBe(-1);
    expect(h.r.push(Expect.Parse, h.hooks('P', { injected: 2 }), 2)).toBe(-1);
    expect(h.r.push(Expect.Query, h.hooks('Q'))).toBe(-1);
    expect(h.r.readyOwed).toBe(0);
    expect(h.r.length).toBe(0);
    const sync = h.r.push(Expect.Sync, h.hooks('S'));
    expect(sync).toBeGreaterThanOrEqual(0);
    expect(h.r.readyOwed).toBe(1);
    h.r.push(Expect.Answered, h.hooks('A2', { answer: answer('y') }));
    h.server(rfq('I'));
    expect(h.take()).toEqual(d(err('bad bind'), rfq('I'), answer('y')));
    // each push while skipping settles at once (so in push order)
    expect(h.log).toEqual(['B:failed', 'E:failed', 'A:failed', 'P:failed', 'P:done(0)', 'Q:failed', 'S:ok', 'A2:ok']);
    // after the Sync nothing is skipped any more
    h.log.length = 0;
    h.r.push(Expect.Parse, h.hooks('P2'));
    h.server(parseComplete);
    expect(h.log).toEqual(['P2:ok']);
  });

  it('patch of a skipped request: failed, then injectedDone(0) only when it injected something', () => {
    const h = harness();
    const s1 = h.r.push(Expect.Parse);
    const s2 = h.r.push(Expect.Bind);
    const s3 = h.r.push(Expect.Describe);
    h.r.push(Expect.Sync);
    h.r.patch(s1, Expect.Parse, h.hooks('P'), 0);
    h.server(err('parse failed'));
    h.r.patch(s2, Expect.Bind, h.hooks('B', { injected: 2 }), 2);
    h.r.patch(s3, Expect.Answered, h.hooks('A', { answer: answer('a') }), 0);
    h.r.patch(-1, Expect.Parse, h.hooks('X', { injected: 1 }), 1);
    h.r.patch(-1, Expect.Answered, h.hooks('Y', { answer: answer('y') }), 0);
    expect(h.log).toEqual(['P:failed', 'B:failed', 'B:done(0)', 'A:failed', 'X:failed', 'X:done(0)', 'Y:failed']);
    h.server(rfq());
    expect(h.take()).toEqual(d(err('parse failed'), rfq()));
  });

  it('an entry skipped with its injected messages still to run: failed, then injectedDone(0); newest first', () => {
    const h = harness();
    h.r.push(Expect.Bind, h.hooks('B1'));
    h.r.push(Expect.Bind, h.hooks('B2', { injected: 2 }), 2);
    h.r.push(Expect.Sync);
    h.server(err('x'), rfq());
    expect(h.log).toEqual(['B2:failed', 'B2:done(0)', 'B1:failed']);
  });
});

describe('Query hooks', () => {
  it('completeAs replaces the CommandComplete of the no-op', () => {
    const h = harness();
    h.r.push(Expect.Query, h.hooks('Q', { completeAs: cc('PREPARE') }));
    h.server(cc('DO'), rfq('T'));
    expect(h.take()).toEqual(d(cc('PREPARE'), rfq('T')));
    expect(h.log).toEqual(['Q:ok']);
  });

  it('completeAs: when the no-op fails (aborted transaction) the error goes through and the request fails', () => {
    const h = harness();
    h.r.push(Expect.Query, h.hooks('Q', { completeAs: cc('DEALLOCATE') }));
    h.server(err('current transaction is aborted'), rfq('E'));
    expect(h.take()).toEqual(d(err('current transaction is aborted'), rfq('E')));
    expect(h.log).toEqual(['Q:failed']);
  });

  it('completeAs leaves an Execute CommandComplete and EmptyQueryResponse alone', () => {
    const h = harness();
    h.r.push(Expect.Execute);
    h.r.push(Expect.Execute);
    h.r.push(Expect.Query, { completeAs: cc('X') });
    h.server(cc('DO'), emptyQuery, cc('DO'), rfq());
    expect(h.take()).toEqual(d(cc('DO'), emptyQuery, cc('X'), rfq()));
  });

  it('an EmptyQueryResponse to a Query is forwarded, even with completeAs', () => {
    const h = harness();
    h.r.push(Expect.Query, { completeAs: cc('X') });
    h.server(emptyQuery, rfq());
    expect(h.take()).toEqual(d(emptyQuery, rfq()));
  });

  it('hideFirstComplete hides only the first CommandComplete and is called once', () => {
    const h = harness();
    let calls = 0;
    h.r.push(Expect.Query, h.hooks('Q', { hideFirstComplete: () => calls++ }));
    h.server(cc('PREPARE'), rowDesc('r'), dataRow('1'), cc('SELECT 1'), rfq());
    expect(h.take()).toEqual(d(rowDesc('r'), dataRow('1'), cc('SELECT 1'), rfq()));
    expect(calls).toBe(1);
    expect(h.log).toEqual(['Q:ok']);
  });

  it('hideFirstComplete is not called when the first statement fails', () => {
    const h = harness();
    let calls = 0;
    h.r.push(Expect.Query, h.hooks('Q', { hideFirstComplete: () => calls++, rewriteError: () => err('renamed') }));
    h.server(err('prepare failed'), rfq('I'));
    expect(h.take()).toEqual(d(err('renamed'), rfq('I')));
    expect(calls).toBe(0);
    expect(h.log).toEqual(['Q:failed']);
  });

  it('dropThroughReady hides the Parse+Sync replies, then the Query replies go through', () => {
    const h = harness();
    h.r.push(Expect.Query, h.hooks('Q', { dropThroughReady: true, injected: 1 }), 1);
    h.r.push(Expect.Answered, h.hooks('A', { answer: answer('a') }));
    h.server(parseComplete, rfq('I'));
    expect(h.take()).toEqual([]);
    expect(h.r.length).toBe(2);
    h.server(dataRow('1'), cc('SELECT 1'), rfq('I'));
    expect(h.take()).toEqual(d(dataRow('1'), cc('SELECT 1'), rfq('I'), answer('a')));
    expect(h.log).toEqual(['Q:done(1)', 'Q:ok', 'A:ok']);
  });

  it('dropThroughReady with evicting Closes first: all hidden, injectedDone(all) once the Query settles', () => {
    const h = harness();
    h.r.push(Expect.Query, h.hooks('Q', { dropThroughReady: true, injected: 3 }), 3);
    h.server(closeComplete, closeComplete, parseComplete, rfq('I'));
    expect(h.take()).toEqual([]);
    expect(h.log).toEqual([]);
    // after the hidden ReadyForQuery nothing injected is owed any more: the Query's own replies go through
    h.server(err('division by zero'), rfq('I'));
    expect(h.take()).toEqual(d(err('division by zero'), rfq('I')));
    expect(h.log).toEqual(['Q:failed', 'Q:done(3)']);
  });

  it('dropThroughReady with a failing Parse: injectedDone(injected - 1) at once, the error stays hidden, the Query error is rewritten', () => {
    const h = harness();
    h.r.push(Expect.Query, h.hooks('Q', { dropThroughReady: true, injected: 1, rewriteError: () => err('client name') }), 1);
    h.server(err('parse failed'), rfq('I'));
    expect(h.take()).toEqual([]);
    expect(h.log).toEqual(['Q:done(0)']);
    h.server(err('server name'), rfq('I'));
    expect(h.take()).toEqual(d(err('client name'), rfq('I')));
    // settled once: no second injectedDone
    expect(h.log).toEqual(['Q:done(0)', 'Q:failed']);
  });

  it('dropThroughReady: the Closes ran, the Parse failed: injectedDone(closes), once, even if the Query then succeeds', () => {
    const h = harness();
    h.r.push(Expect.Query, h.hooks('Q', { dropThroughReady: true, injected: 3 }), 3);
    h.server(closeComplete, closeComplete, err('parse failed'), rfq('I'));
    expect(h.take()).toEqual([]);
    expect(h.log).toEqual(['Q:done(2)']);
    h.server(cc('SELECT 0'), rfq('I'));
    expect(h.take()).toEqual(d(cc('SELECT 0'), rfq('I')));
    expect(h.log).toEqual(['Q:done(2)', 'Q:ok']);
  });

  it('rewriteError on an extended request error', () => {
    const h = harness();
    h.r.push(Expect.Describe, h.hooks('D', { rewriteError: (m) => typed('E', Buffer.concat([Buffer.from('rw '), m.subarray(5)])) }));
    h.r.push(Expect.Sync);
    h.server(err('x'), rfq());
    expect(h.take()).toEqual(d(typed('E', Buffer.concat([Buffer.from('rw '), err('x').subarray(5)])), rfq()));
  });
});

describe('pooler own queries (Expect.Hidden)', () => {
  it('drops everything through its ReadyForQuery; an answer next replaces that ReadyForQuery', () => {
    const h = harness();
    h.r.push(Expect.Hidden);
    h.r.push(Expect.Answered, h.hooks('A', { answer: answer('a') }));
    h.r.push(Expect.Hidden);
    h.r.push(Expect.Query);
    h.server(rowDesc('x'), dataRow('1'), err('e'), notice('n'), rfq('I'));
    expect(h.take()).toEqual(d(answer('a')));
    h.server(cc('SET'), rfq('I'));
    expect(h.take()).toEqual([]);
    h.server(cc('SELECT 0'), rfq('I'));
    expect(h.take()).toEqual(d(cc('SELECT 0'), rfq('I')));
    expect(h.r.length).toBe(0);
    expect(h.r.readyOwed).toBe(0);
  });
});

describe('clear', () => {
  it('forgets everything without calling hooks; later sequences stay distinct', () => {
    const h = harness();
    const s = h.r.push(Expect.Parse, h.hooks('P'));
    h.r.push(Expect.Sync);
    h.r.clear();
    expect(h.r.length).toBe(0);
    expect(h.r.readyOwed).toBe(0);
    expect(h.log).toEqual([]);
    h.r.patch(s, Expect.Answered, h.hooks('late', { answer: answer('x') }), 0);
    expect(h.log).toEqual(['late:failed']);
    h.server(parseComplete);
    expect(h.take()).toEqual(d(parseComplete));
  });
});

describe('ring growth', () => {
  it('1000 Bind/Execute pairs then Sync: every reply forwarded in order, counts right', () => {
    const h = harness();
    const done: number[] = [];
    for (let k = 0; k < 1000; k++) {
      h.r.push(Expect.Bind, { ok: () => done.push(2 * k) });
      h.r.push(Expect.Execute, { ok: () => done.push(2 * k + 1) });
    }
    h.r.push(Expect.Sync);
    expect(h.r.length).toBe(2001);
    expect(h.r.readyOwed).toBe(1);
    const stream: Buffer[] = [];
    for (let k = 0; k < 1000; k++) stream.push(bindComplete, dataRow(`r${k}`), cc(`SELECT ${k}`));
    stream.push(rfq());
    for (let n = 0; n < stream.length; n++) {
      h.server(stream[n]!);
      if (n === 1500) expect(h.r.length).toBe(2001 - 1001); // 500 triples and one BindComplete in
    }
    expect(h.take()).toEqual(d(...stream));
    expect(done).toEqual(Array.from({ length: 2000 }, (_, k) => k));
    expect(h.r.length).toBe(0);
    expect(h.r.readyOwed).toBe(0);
  });

  it('an error deep in the pipeline skips the rest of it', () => {
    const h = harness();
    let failed = 0;
    for (let k = 0; k < 1000; k++) {
      h.r.push(Expect.Bind, { failed: () => failed++ });
      h.r.push(Expect.Execute, { failed: () => failed++ });
    }
    h.r.push(Expect.Sync);
    const stream: Buffer[] = [];
    for (let k = 0; k < 500; k++) stream.push(bindComplete, cc(`SELECT ${k}`));
    stream.push(err('bind 500'), rfq('I'));
    h.server(...stream);
    expect(h.take()).toEqual(d(...stream));
    expect(failed).toBe(1000);
    expect(h.r.length).toBe(0);
  });

  it('grows while the ring has wrapped, and patches and answers still find their entries', () => {
    const h = harness();
    // move head to the middle of the 32-slot ring
    for (let k = 0; k < 20; k++) h.r.push(Expect.Parse);
    for (let k = 0; k < 20; k++) h.server(parseComplete);
    expect(h.take()).toHaveLength(20);
    const seqs: number[] = [];
    for (let k = 0; k < 100; k++) seqs.push(h.r.push(Expect.Parse));
    h.r.push(Expect.Sync);
    // every third becomes answered; patch in order, as ops run
    const expected: Buffer[] = [];
    for (let k = 0; k < 100; k++) {
      if (k % 3 === 0) h.r.patch(seqs[k]!, Expect.Answered, { answer: answer(`a${k}`) }, 0);
      else h.r.patch(seqs[k]!, Expect.Parse, null, 0);
    }
    // the first is answered at the head: emitted at once
    expect(h.take()).toEqual(d(answer('a0')));
    for (let k = 1; k < 100; k++) {
      if (k % 3 === 0) expected.push(answer(`a${k}`));
      else {
        expected.push(parseComplete);
        h.server(parseComplete);
      }
    }
    h.server(rfq());
    expected.push(rfq());
    expect(h.take()).toEqual(d(...expected));
    expect(h.r.length).toBe(0);
  });

  it('more than 255 injected messages (evictions after max_prepared_statements shrinks) are all hidden', () => {
    // ClientStatements.makeRoom can evict any number of statements (server sets grow past the bound through
    // SQL PREPARE, which adds with max 0, or max_prepared_statements is lowered by a reload).
    const h = harness();
    h.r.push(Expect.Parse, h.hooks('P', { injected: 300 }), 300);
    h.r.push(Expect.Sync);
    for (let k = 0; k < 300; k++) h.server(closeComplete);
    h.server(parseComplete, rfq());
    expect(h.take()).toEqual(d(parseComplete, rfq()));
    expect(h.log).toEqual(['P:done(300)', 'P:ok']);
  });

  it('70000 injected messages, the last of them failing: the count is not cut to 16 bits either', () => {
    const h = harness();
    h.r.push(Expect.Bind, h.hooks('B', { injected: 70000 }), 70000);
    h.r.push(Expect.Sync);
    for (let k = 0; k < 69999; k++) h.server(closeComplete);
    h.server(err('parse failed'), rfq());
    expect(h.take()).toEqual(d(err('parse failed'), rfq()));
    expect(h.log).toEqual(['B:failed', 'B:done(69999)']);
  });
});

// ---- randomized: Replies against a direct connection --------------------------------------------------------

type Part = 'rows' | 'empty' | 'error' | 'noop';
type RKind = 'parse' | 'bind' | 'describeS' | 'describeP' | 'execute' | 'close' | 'sync' | 'query' | 'answered' | 'hidden';

interface RReq {
  kind: RKind;
  /** pushed without hooks and patched when "written" (a StatementOp) */
  op: boolean;
  /** an op that turns out to be answered by pooler (parse only) */
  opAnswered: boolean;
  /** reply types of messages pooler injected before it */
  injected: number[];
  /** index of the injected message that fails, or -1 */
  injectedFail: number;
  /** the request itself fails (extended) */
  fail: boolean;
  rows: number;
  /** how an Execute ends */
  execEnd: 'C' | 's' | 'I';
  noData: boolean;
  notice: boolean;
  rewrite: boolean;
  /** Query: its statements' outcomes (stops at the first error); 'noop' is pooler's no-op (CommandComplete DO) */
  parts: Part[];
  completeAs: boolean;
  hideFirst: boolean;
  hideFirstFails: boolean;
  /** a Query pooler prefixed with Closes (dtrCloses of them), a Parse and a Sync: dropThroughReady */
  dtr: boolean;
  dtrCloses: number;
  dtrFails: boolean;
  syncError: boolean;
  status: string;
}

const EXT: RKind[] = ['parse', 'bind', 'describeS', 'describeP', 'execute', 'close'];
const EXPECT_OF: Record<RKind, ExpectKind> = {
  parse: Expect.Parse,
  bind: Expect.Bind,
  describeS: Expect.Describe,
  describeP: Expect.Describe,
  execute: Expect.Execute,
  close: Expect.Close,
  sync: Expect.Sync,
  query: Expect.Query,
  answered: Expect.Answered,
  hidden: Expect.Hidden,
};

function generate(rand: () => number, n: number): RReq[] {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const chance = (p: number): boolean => rand() < p;
  const reqs: RReq[] = [];
  let unsynced = false;
  for (let i = 0; i < n; i++) {
    const r = rand();
    const kind: RKind =
      r < 0.14 ? 'sync' : r < 0.24 ? 'query' : r < 0.34 ? 'answered' : r < 0.37 ? 'hidden' : pick(EXT);
    const injectable = kind === 'parse' || kind === 'bind' || kind === 'describeS';
    const k = injectable && chance(0.35) ? 1 + Math.floor(rand() * 3) : 0;
    const injected = Array.from({ length: k }, () => pick([parseComplete[0]!, closeComplete[0]!, bindComplete[0]!]));
    const nParts = 1 + Math.floor(rand() * 3);
    const parts: Part[] = Array.from({ length: nParts }, () => (chance(0.2) ? 'error' : chance(0.15) ? 'empty' : 'rows'));
    const req: RReq = {
      kind,
      op: (injectable && chance(0.5)) || (kind === 'parse' && chance(0.2)),
      opAnswered: false,
      injected,
      injectedFail: k > 0 && chance(0.25) ? Math.floor(rand() * k) : -1,
      fail: chance(0.12),
      rows: Math.floor(rand() * 3),
      execEnd: pick(['C', 'C', 's', 'I']),
      noData: chance(0.3),
      notice: chance(0.15),
      rewrite: chance(0.3),
      parts,
      completeAs: false,
      hideFirst: false,
      hideFirstFails: false,
      dtr: false,
      dtrCloses: 0,
      dtrFails: false,
      syncError: chance(0.05),
      status: pick(['I', 'T', 'E']),
    };
    if (kind === 'parse' && req.op && k === 0 && chance(0.5)) req.opAnswered = true;
    if (kind === 'execute' && req.execEnd === 'I') req.rows = 0;
    if (kind === 'query') {
      const special = rand();
      if (special < 0.15) {
        // the no-op fails in an aborted transaction
        req.completeAs = true;
        req.parts = [chance(0.3) ? 'error' : 'noop'];
        req.op = chance(0.5);
      } else if (special < 0.3) {
        req.hideFirst = true;
        req.hideFirstFails = chance(0.3);
        req.op = chance(0.5);
      } else if (special < 0.45 && !unsynced) {
        // pooler only injects Closes+Parse+Sync ahead of a Query when no extended batch is open (sqlExecute's batchOpen)
        req.dtr = true;
        req.dtrCloses = pick([0, 0, 1, 2]);
        req.dtrFails = chance(0.4);
        req.op = chance(0.5);
      }
    }
    if (EXT.includes(kind) || kind === 'answered') unsynced = true;
    if (kind === 'sync') unsynced = false;
    reqs.push(req);
  }
  return reqs;
}

interface Simulated {
  /** server messages, each with the request it answers */
  server: { req: number; msg: Buffer }[];
  /** what a direct connection gives the client */
  client: Buffer[];
  /** hook calls per request */
  hooks: string[][];
}

function rewritten(m: Buffer): Buffer {
  return typed('E', Buffer.concat([Buffer.from('rw '), m.subarray(5)]));
}

/** PostgreSQL's replies to the requests: through pooler (with injected messages) and on a direct connection. */
function simulate(reqs: RReq[]): Simulated {
  const server: { req: number; msg: Buffer }[] = [];
  const client: Buffer[] = [];
  const hooks: string[][] = reqs.map(() => []);
  let skip = false;
  reqs.forEach((q, i) => {
    const s = (msg: Buffer): void => void server.push({ req: i, msg });
    const both = (msg: Buffer): void => {
      s(msg);
      client.push(msg);
    };
    const error = (text: string): void => {
      const e = err(text);
      s(e);
      client.push(q.rewrite ? rewritten(e) : e);
    };
    if (q.kind === 'sync') {
      skip = false;
      if (q.notice) both(notice(`n${i}`));
      if (q.syncError) both(err(`commit ${i}`));
      both(rfq(q.status));
      hooks[i]!.push('ok');
      return;
    }
    if (skip) {
      // PostgreSQL ignores it: failed, then none of its injected messages ran
      if (q.kind === 'hidden') return;
      hooks[i]!.push('failed');
      if (q.injected.length > 0) hooks[i]!.push('done(0)');
      return;
    }
    switch (q.kind) {
      case 'answered':
        client.push(answer(`#${i}`));
        hooks[i]!.push('ok');
        return;
      case 'hidden':
        if (q.notice) s(notice(`n${i}`));
        for (const p of q.parts) {
          if (p === 'error') {
            s(err(`hidden ${i}`));
            break;
          }
          s(p === 'empty' ? emptyQuery : cc(`SET ${i}`));
        }
        s(rfq(q.status));
        return;
      case 'query': {
        if (q.dtr) {
          for (let k = 0; k < q.dtrCloses; k++) s(closeComplete);
          s(q.dtrFails ? err(`dtr ${i}`) : parseComplete);
          s(rfq('I'));
          // the Parse (last) failed: the Closes ran, and that is said at once
          if (q.dtrFails) hooks[i]!.push(`done(${q.dtrCloses})`);
        }
        if (q.notice) both(notice(`n${i}`));
        let failed = false;
        if (q.hideFirst) {
          if (q.hideFirstFails) {
            error(`prepare ${i}`);
            failed = true;
          } else {
            s(cc('PREPARE'));
            hooks[i]!.push('hid');
          }
        }
        if (!failed) {
          for (const [k, p] of q.parts.entries()) {
            if (p === 'error') {
              error(`query ${i}.${k}`);
              failed = true;
              break;
            }
            if (p === 'empty') {
              both(emptyQuery);
              continue;
            }
            if (p === 'noop') {
              s(cc('DO'));
              client.push(q.completeAs ? cc(`COMPLETEAS ${i}`) : cc('DO'));
              continue;
            }
            both(rowDesc(`q${i}.${k}`));
            for (let n = 0; n < q.rows; n++) both(dataRow(`q${i}.${k}.${n}`));
            both(cc(`SELECT ${i}.${k}`));
          }
        }
        both(rfq(q.status));
        // all of its injected messages ran: on success said before ok, on failure after failed
        const done = q.dtr && !q.dtrFails ? [`done(${q.dtrCloses + 1})`] : [];
        hooks[i]!.push(...(failed ? ['failed', ...done] : [...done, 'ok']));
        return;
      }
      default: {
        if (q.opAnswered) {
          client.push(answer(`#${i}`));
          hooks[i]!.push('ok');
          return;
        }
        // injected messages run first
        for (const [j, t] of q.injected.entries()) {
          if (j === q.injectedFail) {
            error(`injected ${i}.${j}`);
            hooks[i]!.push('failed', `done(${j})`);
            skip = true;
            return;
          }
          s(typed(t));
        }
        if (q.notice) both(notice(`n${i}`));
        if (q.kind === 'execute') for (let n = 0; n < q.rows; n++) both(dataRow(`e${i}.${n}`));
        const done = q.injected.length > 0 ? [`done(${q.injected.length})`] : [];
        if (q.fail) {
          error(`failed ${i}`);
          hooks[i]!.push('failed', ...done);
          skip = true;
          return;
        }
        switch (q.kind) {
          case 'parse':
            both(parseComplete);
            break;
          case 'bind':
            both(bindComplete);
            break;
          case 'close':
            both(closeComplete);
            break;
          case 'describeS':
            both(paramDesc(`p${i}`));
            both(q.noData ? noData : rowDesc(`d${i}`));
            break;
          case 'describeP':
            both(q.noData ? noData : rowDesc(`d${i}`));
            break;
          case 'execute':
            both(q.execEnd === 'C' ? cc(`EXEC ${i}`) : q.execEnd === 's' ? portalSuspended : emptyQuery);
            break;
        }
        hooks[i]!.push(...done, 'ok');
      }
    }
  });
  return { server, client, hooks };
}

/** how many messages pooler injected before the request (a dropThroughReady Query: its Closes and the Parse) */
function injectedOf(q: RReq): number {
  return q.dtr ? q.dtrCloses + 1 : q.injected.length;
}

/** Hook calls: per request, and all of them in order with the step (push, write or delivery) they came in. */
interface HookLog {
  per: string[][];
  all: { step: number; req: number; call: string }[];
  step: number;
}

function hooksFor(q: RReq, i: number, log: HookLog): ReplyHooks {
  const rec = (s: string): void => {
    log.per[i]!.push(s);
    log.all.push({ step: log.step, req: i, call: s });
  };
  const h: ReplyHooks = { ok: () => rec('ok'), failed: () => rec('failed') };
  if (q.kind === 'answered' || q.opAnswered) h.answer = answer(`#${i}`);
  if (injectedOf(q) > 0) {
    h.injected = injectedOf(q);
    h.injectedDone = (n) => rec(`done(${n})`);
  }
  if (q.rewrite) h.rewriteError = rewritten;
  if (q.completeAs) h.completeAs = cc(`COMPLETEAS ${i}`);
  if (q.hideFirst) h.hideFirstComplete = () => rec('hid');
  if (q.dtr) h.dropThroughReady = true;
  return h;
}

/** Runs the requests through Replies with a random interleaving of pushes, writes (op patches) and server replies. */
function run(reqs: RReq[], sim: Simulated, rand: () => number): { client: Buffer[]; hooks: string[][]; log: HookLog; length: number; readyOwed: number } {
  const out: Buffer[] = [];
  const log: HookLog = { per: reqs.map(() => []), all: [], step: 0 };
  const r = new Replies((b) => out.push(Buffer.from(b)));
  const seqs: number[] = [];
  let pushed = 0;
  let written = 0;
  let delivered = 0;
  while (pushed < reqs.length || written < reqs.length || delivered < sim.server.length) {
    const can: ('push' | 'write' | 'deliver')[] = [];
    if (pushed < reqs.length) can.push('push');
    if (written < pushed) can.push('write');
    if (delivered < sim.server.length && sim.server[delivered]!.req < written) can.push('deliver', 'deliver');
    const act = can[Math.floor(rand() * can.length)]!;
    log.step++;
    if (act === 'push') {
      const q = reqs[pushed]!;
      if (q.op) seqs.push(r.push(EXPECT_OF[q.kind]));
      else if (q.kind === 'hidden') seqs.push(r.push(Expect.Hidden));
      else seqs.push(r.push(EXPECT_OF[q.kind], hooksFor(q, pushed, log), injectedOf(q)));
      pushed++;
    } else if (act === 'write') {
      const q = reqs[written]!;
      if (q.op) {
        if (q.opAnswered) r.patch(seqs[written]!, Expect.Answered, hooksFor(q, written, log), 0);
        else r.patch(seqs[written]!, EXPECT_OF[q.kind], hooksFor(q, written, log), injectedOf(q));
      }
      written++;
    } else {
      const m = sim.server[delivered++]!.msg;
      const res = r.onServerMessage(m[0]!, m);
      if (res === true) out.push(m);
      else if (res !== false) out.push(Buffer.from(res));
    }
  }
  return { client: out, hooks: log.per, log, length: r.length, readyOwed: r.readyOwed };
}

describe('randomized against a direct connection', () => {
  it('gives the client exactly what PostgreSQL would, and runs the right hooks', () => {
    let together = 0;
    for (let seed = 1; seed <= 1500; seed++) {
      const rand = rng(seed);
      const reqs = generate(rand, 1 + Math.floor(rand() * (seed % 10 === 0 ? 120 : 40)));
      const sim = simulate(reqs);
      const got = run(reqs, sim, rand);
      const ctx = `seed ${seed}: ${reqs.map((q) => q.kind + (q.injected.length ? `+${q.injected.length}` : '') + (q.op ? '(op)' : '')).join(' ')}`;
      expect(decode(Buffer.concat(got.client)), ctx).toEqual(decode(Buffer.concat(sim.client)));
      expect(got.hooks, ctx).toEqual(sim.hooks);
      expect(got.length, ctx).toBe(0);
      expect(got.readyOwed, ctx).toBe(0);
      // requests undone together (one error skipping several) are undone newest first, each one whole
      const undone = new Map<number, number[]>();
      for (const c of got.log.all) {
        if (c.call !== 'failed' && !c.call.startsWith('done(')) continue;
        let l = undone.get(c.step);
        if (l === undefined) undone.set(c.step, (l = []));
        l.push(c.req);
      }
      for (const l of undone.values()) {
        expect(l, ctx).toEqual([...l].sort((a, b) => b - a));
        if (new Set(l).size > 1) together++;
      }
    }
    expect(together).toBeGreaterThan(200);
  });
});
