// Unit tests for MessageScanner: identical framing under every chunking, inspect/drop/forward, inspectAll toggling, stop() and bad lengths.
import { describe, expect, it } from 'vitest';
import { MessageScanner, typeSet, type ScanSink } from '../../src/protocol/scanner.ts';
import type { PoolerError } from '../../src/errors.ts';
import { rng } from '../helpers/wire.ts';

// ---- stream building -----------------------------------------------------------------------------------

interface Msg {
  type: number;
  /** the whole message: type, length, body */
  bytes: Buffer;
}

function msg(type: string | number, body: Buffer | string = Buffer.alloc(0)): Msg {
  const t = typeof type === 'string' ? type.charCodeAt(0) : type;
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const bytes = Buffer.alloc(5 + b.length);
  bytes[0] = t;
  bytes.writeInt32BE(4 + b.length, 1);
  b.copy(bytes, 5);
  return { type: t, bytes };
}

/** A header with an arbitrary (possibly invalid) length field and no body. */
function rawHeader(type: string, len: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = type.charCodeAt(0);
  b.writeUInt32BE(len >>> 0, 1);
  return b;
}

function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

// ---- the sink under test and the model of what it must see ----------------------------------------------

const ALL_ON = Buffer.from('ALL-ON');
const ALL_OFF = Buffer.from('ALL-OFF');
const DROP = Buffer.from('DROP');
const STOP = Buffer.from('STOP');
const X = 'X'.charCodeAt(0);

/** Inspected types in these tests: Query, Sync, Terminate, Parse. Everything else passes through unless inspectAll. */
const INSPECT = typeSet(['Q', 'S', 'X', 'P'].map((c) => c.charCodeAt(0)));

/** The sink's verdict on an inspected message, shared by the sink and the model so both follow the same rule. */
function verdict(type: number, whole: Buffer): { keep: boolean; inspectAll?: boolean; stop?: boolean } {
  const body = whole.subarray(5);
  if (body.equals(ALL_ON)) return { keep: true, inspectAll: true };
  if (body.equals(ALL_OFF)) return { keep: true, inspectAll: false };
  if (body.equals(STOP)) return { keep: false, stop: true };
  return { keep: !(type === X || body.subarray(0, DROP.length).equals(DROP)) };
}

class Sink implements ScanSink {
  inspectAll = false;
  scanner: MessageScanner | null = null;
  readonly pieces: Buffer[] = [];
  readonly inspected: Buffer[] = [];
  readonly errors: PoolerError[] = [];
  readonly anomalies: string[] = [];

  inspect(type: number, m: Buffer): boolean {
    if (this.errors.length > 0) this.anomalies.push('inspect() after malformed()');
    if (m[0] !== type) this.anomalies.push(`inspect type ${type} but message starts with ${m[0]}`);
    if (m.length < 5 || m.readInt32BE(1) + 1 !== m.length) this.anomalies.push(`inspect got ${m.length} bytes for length field ${m.length >= 5 ? m.readInt32BE(1) : '?'}`);
    this.inspected.push(Buffer.from(m)); // the view is only valid during the call
    const v = verdict(type, m);
    if (v.inspectAll !== undefined) this.inspectAll = v.inspectAll;
    if (v.stop) this.scanner!.stop();
    return v.keep;
  }

  forward(bytes: Buffer): void {
    if (this.errors.length > 0) this.anomalies.push('forward() after malformed()');
    if (bytes.length === 0) this.anomalies.push('forward() of zero bytes');
    this.pieces.push(Buffer.from(bytes));
  }

  malformed(err: PoolerError): void {
    this.errors.push(err);
  }

  get forwarded(): Buffer {
    return Buffer.concat(this.pieces);
  }
}

interface Expected {
  stream: Buffer;
  forwarded: Buffer;
  inspected: Buffer[];
  /** offsets in `stream` that are message boundaries */
  boundaries: Set<number>;
}

/** What a correct scanner must report for `msgs`, message by message. */
function model(msgs: Msg[]): Expected {
  let all = false;
  let stopped = false;
  const fwd: Buffer[] = [];
  const inspected: Buffer[] = [];
  const boundaries = new Set<number>([0]);
  let off = 0;
  for (const m of msgs) {
    off += m.bytes.length;
    boundaries.add(off);
    if (stopped) continue;
    if (INSPECT[m.type] !== 0 || all) {
      inspected.push(m.bytes);
      const v = verdict(m.type, m.bytes);
      if (v.inspectAll !== undefined) all = v.inspectAll;
      if (v.stop) stopped = true;
      if (v.keep) fwd.push(m.bytes);
    } else {
      fwd.push(m.bytes);
    }
  }
  return { stream: Buffer.concat(msgs.map((m) => m.bytes)), forwarded: Buffer.concat(fwd), inspected, boundaries };
}

function newScanner(maxLength = 1 << 30): { scanner: MessageScanner; sink: Sink } {
  const sink = new Sink();
  const scanner = new MessageScanner<never>(INSPECT, maxLength, sink);
  sink.scanner = scanner;
  return { scanner, sink };
}

/** Push `stream` cut at `cuts` (sorted offsets); returns the sink and atBoundary after each chunk. */
function run(stream: Buffer, cuts: number[], maxLength?: number): { sink: Sink; scanner: MessageScanner; boundaryAfter: boolean[] } {
  const { scanner, sink } = newScanner(maxLength);
  const boundaryAfter: boolean[] = [];
  let prev = 0;
  for (const c of [...cuts, stream.length]) {
    scanner.push(stream.subarray(prev, c));
    boundaryAfter.push(scanner.atBoundary);
    prev = c;
  }
  return { sink, scanner, boundaryAfter };
}

/** Differences between what the scanner did for `cuts` and what `exp` says (empty when right). */
function check(exp: Expected, cuts: number[]): string[] {
  const { sink, boundaryAfter } = run(exp.stream, cuts);
  const where = `cuts [${cuts.slice(0, 12).join(',')}${cuts.length > 12 ? ',…' : ''}]`;
  const problems: string[] = [];
  for (const a of sink.anomalies) problems.push(`${where}: ${a}`);
  if (sink.errors.length > 0) problems.push(`${where}: malformed(): ${sink.errors[0]!.message}`);
  const fwd = sink.forwarded;
  if (!fwd.equals(exp.forwarded)) {
    let i = 0;
    while (i < fwd.length && i < exp.forwarded.length && fwd[i] === exp.forwarded[i]) i++;
    problems.push(`${where}: forwarded ${fwd.length} bytes, expected ${exp.forwarded.length}; first difference at ${i}`);
  }
  if (sink.inspected.length !== exp.inspected.length) {
    problems.push(`${where}: inspected ${sink.inspected.length} messages, expected ${exp.inspected.length}`);
  } else {
    for (let k = 0; k < exp.inspected.length; k++) {
      if (!sink.inspected[k]!.equals(exp.inspected[k]!)) problems.push(`${where}: inspected message #${k} differs`);
    }
  }
  // atBoundary after each chunk: true exactly when the cut is at a message boundary (or the stream was stopped).
  const ends = [...cuts, exp.stream.length];
  for (let k = 0; k < ends.length; k++) {
    const want = exp.boundaries.has(ends[k]!);
    if (boundaryAfter[k] !== want) problems.push(`${where}: atBoundary after chunk ending at ${ends[k]} is ${boundaryAfter[k]}, expected ${want}`);
  }
  return problems;
}

function expectNoProblems(problems: string[]): void {
  expect(problems.slice(0, 8), `${problems.length} problem(s)`).toEqual([]);
}

// ---- streams ------------------------------------------------------------------------------------------

/** A few hundred bytes of everything: zero-length bodies, inspected/passthrough/dropped, inspectAll on and off. */
function tinyStream(): Msg[] {
  return [
    msg('S'), // inspected, empty
    msg('d'), // passthrough, empty
    msg('Q', 'SELECT 1\0'),
    msg('X'), // inspected, empty, dropped
    msg('d', 'abc'),
    msg('Q', 'DROP this\0'), // dropped
    msg('Q', ALL_ON),
    msg('d'), // now inspected, empty
    msg('d', 'DROP while inspectAll'), // inspected and dropped
    msg('D', 'row'),
    msg('Q', ALL_OFF),
    msg('d', 'DROP but not inspected: forwarded'),
    msg(0x00, 'zero type byte'),
    msg(0xff),
    msg('S'),
  ];
}

/** A few KB: the tiny stream plus a seeded mix of short messages of many types. */
function smallStream(seed: number): Msg[] {
  const rand = rng(seed);
  const types = ['Q', 'S', 'X', 'P', 'd', 'D', 'B', 'E', 'H', 'c', 'f'];
  const out = tinyStream();
  for (let i = 0; i < 60; i++) {
    const r = rand();
    if (r < 0.05) out.push(msg('Q', rand() < 0.5 ? ALL_ON : ALL_OFF));
    else if (r < 0.1) out.push(msg(types[Math.floor(rand() * types.length)]!, Buffer.concat([DROP, randomBytes(rand, 3)])));
    else {
      const len = rand() < 0.3 ? 0 : Math.floor(rand() * (rand() < 0.1 ? 600 : 40));
      out.push(msg(types[Math.floor(rand() * types.length)]!, randomBytes(rand, len)));
    }
  }
  out.push(msg('Q', ALL_OFF), msg('S'));
  return out;
}

/** Hundreds of KB: a 200 KB inspected message, a 100 KB passthrough one, a 70 KB one caught by inspectAll. */
function bigStream(): Msg[] {
  const rand = rng(7);
  return [
    msg('Q', 'SELECT 1\0'),
    msg('d', 'x'),
    msg('P', randomBytes(rand, 200 * 1024)), // inspected, 200 KB
    msg('S'),
    msg('d', randomBytes(rand, 100 * 1024)), // passthrough, 100 KB
    msg('X'),
    msg('Q', ALL_ON),
    msg('d', randomBytes(rand, 70 * 1024)), // inspected because of inspectAll
    msg('d', Buffer.concat([DROP, randomBytes(rand, 5000)])), // inspected and dropped
    msg('Q', ALL_OFF),
    msg('D', randomBytes(rand, 3000)),
    msg('P', Buffer.concat([DROP, randomBytes(rand, 150 * 1024)])), // inspected, large, dropped
    msg('S'),
    msg('d'),
  ];
}

function randomCuts(rand: () => number, len: number, count: number): number[] {
  const s = new Set<number>();
  while (s.size < Math.min(count, len - 1)) s.add(1 + Math.floor(rand() * (len - 1)));
  return [...s].sort((a, b) => a - b);
}

// ---- tests --------------------------------------------------------------------------------------------

describe('MessageScanner framing', () => {
  it('the model itself: forwarded = stream minus dropped messages, inspected ones as listed', () => {
    const exp = model(tinyStream());
    // 15 messages; dropped: X, 'DROP this', 'DROP while inspectAll'
    expect(exp.inspected.length).toBe(10);
    expect(exp.stream.length - exp.forwarded.length).toBe(5 + (5 + 10) + (5 + 21));
  });

  it('whole stream in one chunk', () => {
    for (const msgs of [tinyStream(), smallStream(1), bigStream()]) expectNoProblems(check(model(msgs), []));
  });

  it('tiny stream: every pair of split points (three chunks, headers cut in three)', () => {
    const exp = model(tinyStream());
    const n = exp.stream.length;
    const problems: string[] = [];
    for (let a = 0; a <= n; a++) for (let b = a; b <= n; b++) problems.push(...check(exp, [a, b]));
    expectNoProblems(problems);
  });

  it('small stream: every single split point', () => {
    for (const seed of [1, 2, 3]) {
      const exp = model(smallStream(seed));
      const problems: string[] = [];
      for (let a = 0; a <= exp.stream.length; a++) problems.push(...check(exp, [a]));
      expectNoProblems(problems);
    }
  });

  it('small stream: byte by byte and random multi-split patterns', () => {
    const rand = rng(42);
    for (const seed of [4, 5]) {
      const exp = model(smallStream(seed));
      const n = exp.stream.length;
      const problems = check(exp, Array.from({ length: n - 1 }, (_, i) => i + 1));
      for (let k = 0; k < 300; k++) problems.push(...check(exp, randomCuts(rand, n, 1 + Math.floor(rand() * 60))));
      expectNoProblems(problems);
    }
  });

  it('big stream (200 KB messages): every split point near each boundary, a stride through the bodies, random patterns, byte by byte', () => {
    const exp = model(bigStream());
    const n = exp.stream.length;
    const cuts = new Set<number>();
    for (const b of exp.boundaries) for (let d = -9; d <= 9; d++) if (b + d >= 0 && b + d <= n) cuts.add(b + d);
    for (let p = 0; p <= n; p += 4099) cuts.add(p);
    const problems: string[] = [];
    for (const c of cuts) problems.push(...check(exp, [c]));
    const rand = rng(99);
    for (let k = 0; k < 60; k++) problems.push(...check(exp, randomCuts(rand, n, 2 + Math.floor(rand() * 200))));
    // TCP-like: chunks of 64 KB, 16 KB and 1460 bytes, at every alignment of the first chunk near a boundary
    for (const size of [65536, 16384, 1460]) {
      for (const start of [1, 3, 5, 6, 1000]) {
        const c: number[] = [];
        for (let p = start; p < n; p += size) c.push(p);
        problems.push(...check(exp, c));
      }
    }
    problems.push(...check(exp, Array.from({ length: n - 1 }, (_, i) => i + 1)));
    expectNoProblems(problems);
  });

  it('inspected messages arrive whole in inspect() and forwarded pieces never overlap a dropped message', () => {
    // Drop every inspected message: what is forwarded must be exactly the passthrough ones, whatever the cuts.
    const msgs = [msg('d', 'a'), msg('Q', 'DROP 1'), msg('d', 'bb'), msg('S', 'DROP'), msg('P', 'DROP' + 'z'.repeat(300)), msg('d', 'ccc')];
    const exp = model(msgs);
    expect(exp.forwarded).toEqual(Buffer.concat([msgs[0]!.bytes, msgs[2]!.bytes, msgs[5]!.bytes]));
    const problems: string[] = [];
    for (let a = 0; a <= exp.stream.length; a++) for (let b = a; b <= exp.stream.length; b += 7) problems.push(...check(exp, [a, b]));
    expectNoProblems(problems);
  });

  it('atBoundary is false at the end of a stream that stops mid-message, true once the rest arrives', () => {
    for (const m of [msg('Q', 'SELECT 1\0'), msg('d', 'abcdef'), msg('S')]) {
      for (let cut = 1; cut < m.bytes.length; cut++) {
        const { scanner, sink } = newScanner();
        scanner.push(m.bytes.subarray(0, cut));
        expect(scanner.atBoundary, `${String.fromCharCode(m.type)} cut at ${cut}`).toBe(false);
        scanner.push(m.bytes.subarray(cut));
        expect(scanner.atBoundary).toBe(true);
        expect(sink.forwarded).toEqual(m.bytes);
      }
    }
  });

  it('inspectAll switched by the sink between pushes is honoured from the next message header on', () => {
    const a = msg('d', 'first');
    const b = msg('d', 'second');
    const c = msg('D', 'third');
    const { scanner, sink } = newScanner();
    scanner.push(a.bytes);
    expect(sink.inspected).toEqual([]);
    sink.inspectAll = true;
    scanner.push(b.bytes.subarray(0, 3)); // header cut: the decision is made once the header is complete
    scanner.push(b.bytes.subarray(3));
    sink.inspectAll = false;
    scanner.push(c.bytes);
    expect(sink.inspected).toEqual([b.bytes]);
    expect(sink.forwarded).toEqual(Buffer.concat([a.bytes, b.bytes, c.bytes]));
  });
});

describe('MessageScanner stop()', () => {
  it('stop() inside inspect(): everything before is forwarded whole, nothing after, for every split', () => {
    const msgs = [msg('Q', 'SELECT 1\0'), msg('d', 'copy data'), msg('D', 'x'.repeat(40)), msg('Q', STOP), msg('Q', 'after\0'), msg('d', 'after')];
    const exp = model(msgs);
    expect(exp.forwarded).toEqual(Buffer.concat(msgs.slice(0, 3).map((m) => m.bytes)));
    const n = exp.stream.length;
    const problems: string[] = [];
    for (let a = 0; a <= n; a++) {
      for (let b = a; b <= n; b++) {
        const { sink } = run(exp.stream, [a, b]);
        const f = sink.forwarded;
        if (!f.equals(exp.forwarded)) problems.push(`cuts [${a},${b}]: forwarded ${f.length} bytes, expected ${exp.forwarded.length}`);
        if (sink.inspected.length !== exp.inspected.length) problems.push(`cuts [${a},${b}]: ${sink.inspected.length} inspected`);
      }
    }
    expectNoProblems(problems);
  });

  it('a Terminate-style drop-and-stop (empty body) forwards the preceding passthrough bytes', () => {
    // The sink stops on the zero-length 'X' like ClientConn does with Terminate.
    const before = [msg('d', 'abc'), msg('d', 'x'.repeat(100))];
    const stream = Buffer.concat([...before.map((m) => m.bytes), msg('X').bytes, msg('Q', 'never\0').bytes]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const sink = new Sink();
      const scanner = new MessageScanner(INSPECT, 1 << 20, {
        get inspectAll() {
          return false;
        },
        inspect: (t, m) => {
          sink.inspect(t, m);
          if (t === X) scanner.stop();
          return t !== X;
        },
        forward: (b) => sink.forward(b),
        malformed: (e) => sink.malformed(e),
      });
      scanner.push(stream.subarray(0, cut));
      scanner.push(stream.subarray(cut));
      expect(sink.forwarded, `cut ${cut}`).toEqual(Buffer.concat(before.map((m) => m.bytes)));
      expect(sink.inspected.map((m) => m[0])).toEqual([X]);
    }
  });
});

describe('MessageScanner bad lengths', () => {
  const MAX = 4096;
  const prefix = [msg('Q', 'SELECT 1\0'), msg('d', 'x'.repeat(300)), msg('S'), msg('d', 'y'.repeat(50))];
  const suffix = [msg('Q', 'SELECT 2\0'), msg('d', 'z'.repeat(20))];
  const prefixBytes = Buffer.concat(prefix.map((m) => m.bytes));
  const prefixEnds = new Set<number>([0]);
  prefix.reduce((off, m) => (prefixEnds.add(off + m.bytes.length), off + m.bytes.length), 0);
  const cases: { name: string; header: Buffer; code: string; text: RegExp }[] = [
    { name: 'length 2', header: rawHeader('Q', 2), code: 'protocol_violation', text: /invalid message length 2\b/ },
    { name: 'length 0 on a passthrough type', header: rawHeader('d', 0), code: 'protocol_violation', text: /invalid message length 0\b/ },
    { name: 'length 3', header: rawHeader('S', 3), code: 'protocol_violation', text: /invalid message length 3\b/ },
    { name: 'negative length', header: rawHeader('Q', 0xffffffff), code: 'protocol_violation', text: /invalid message length -1\b/ },
    { name: 'length maxLength + 1', header: rawHeader('Q', MAX + 1), code: 'packet_too_large', text: /max_packet_size/ },
    { name: 'huge passthrough length', header: rawHeader('d', 0x7fffffff), code: 'packet_too_large', text: /max_packet_size/ },
  ];

  for (const c of cases) {
    const stream = Buffer.concat([prefixBytes, c.header, ...suffix.map((m) => m.bytes)]);
    const bad = prefixBytes.length;

    it(`${c.name}: malformed() once with 08P01, nothing from the bad header on is forwarded or inspected, at every split`, () => {
      const problems: string[] = [];
      const splits: number[][] = [];
      for (let a = 0; a <= stream.length; a++) splits.push([a]);
      splits.push(Array.from({ length: stream.length - 1 }, (_, i) => i + 1));
      for (const cuts of splits) {
        const { sink, scanner } = run(stream, cuts, MAX);
        const where = cuts.length > 1 ? 'byte by byte' : `cut ${cuts[0]}`;
        if (sink.errors.length !== 1) problems.push(`${where}: malformed() called ${sink.errors.length} times`);
        const e = sink.errors[0];
        if (e && (e.sqlstate !== '08P01' || e.code !== c.code || !c.text.test(e.message))) problems.push(`${where}: error ${e.code} ${e.sqlstate} ${e.message}`);
        const f = sink.forwarded;
        if (f.length > bad || !f.equals(prefixBytes.subarray(0, f.length))) problems.push(`${where}: forwarded bytes beyond the valid prefix (${f.length} bytes)`);
        if (sink.inspected.length !== 2) problems.push(`${where}: ${sink.inspected.length} messages inspected, expected the 2 before the bad header`);
        for (const a of sink.anomalies) problems.push(`${where}: ${a}`);
        // Later pushes are ignored.
        scanner.push(msg('Q', 'later\0').bytes);
        if (sink.errors.length > 1 || sink.anomalies.length > 0) problems.push(`${where}: activity after malformed()`);
      }
      expectNoProblems(problems);
    });

    it(`${c.name}: what was forwarded before malformed() ends on a message boundary (never half a message)`, () => {
      // A half-forwarded message leaves the server waiting for the rest of it: a server released to the pool
      // would then swallow whatever pooler sends next (its ROLLBACK) as message body and never answer.
      const problems: string[] = [];
      for (let a = 0; a <= stream.length; a++) {
        const { sink } = run(stream, [a], MAX);
        const f = sink.forwarded.length;
        if (!prefixEnds.has(f)) problems.push(`cut ${a}: forwarded ${f} bytes, which ends inside a message (message ends: ${[...prefixEnds].join(',')})`);
      }
      expectNoProblems(problems);
    });

    it(`${c.name}: every whole message before the bad header is forwarded, whatever the chunking`, () => {
      // Otherwise whether a client's last good Query runs depends on how TCP happened to cut the stream.
      const problems: string[] = [];
      for (let a = 0; a <= stream.length; a++) {
        const { sink } = run(stream, [a], MAX);
        if (!sink.forwarded.equals(prefixBytes)) problems.push(`cut ${a}: forwarded ${sink.forwarded.length} of the ${bad} bytes before the bad header`);
      }
      expectNoProblems(problems);
    });
  }

  it('a length equal to maxLength is accepted, one more is not', () => {
    const ok = msg('d', Buffer.alloc(MAX - 4));
    const { scanner, sink } = newScanner(MAX);
    scanner.push(ok.bytes);
    expect(sink.errors).toEqual([]);
    expect(sink.forwarded).toEqual(ok.bytes);
    scanner.push(rawHeader('d', MAX + 1));
    expect(sink.errors).toHaveLength(1);
    expect(sink.errors[0]!.message).toContain(`max_packet_size (${MAX})`);
  });

  it('the minimum length 4 (empty body) is valid for every type', () => {
    const { scanner, sink } = newScanner(MAX);
    const all = Buffer.concat(Array.from({ length: 256 }, (_, t) => rawHeader('?', 4).fill(t, 0, 1)));
    scanner.push(all);
    expect(sink.errors).toEqual([]);
    // inspected: Q S X P; X is dropped
    expect(sink.inspected).toHaveLength(4);
    expect(sink.forwarded.length).toBe(all.length - 5);
    expect(scanner.atBoundary).toBe(true);
  });
});

describe('MessageScanner replacements', () => {
  /** Replaces every 'R' message with "<" + its body + ">" and forwards everything else; records the output. */
  class ReplacingSink implements ScanSink<Buffer> {
    readonly inspectAll = false;
    readonly out: Buffer[] = [];
    inspect(type: number, m: Buffer): boolean | Buffer {
      return type === 0x52 ? Buffer.concat([Buffer.from('<'), m.subarray(5), Buffer.from('>')]) : true;
    }
    forward(bytes: Buffer): void {
      this.out.push(Buffer.from(bytes));
    }
    replace(r: Buffer): void {
      this.out.push(r);
    }
    malformed(): void {
      throw new Error('unexpected');
    }
  }

  it('puts the replacement exactly where the message was, for every split point', () => {
    const parts = [msg('D', 'row1'), msg('R', 'x'), msg('D', 'row2'), msg('R', 'yy'), msg('C', 'done')];
    const stream = Buffer.concat(parts.map((p) => p.bytes));
    const expected = Buffer.concat([parts[0]!.bytes, Buffer.from('<x>'), parts[2]!.bytes, Buffer.from('<yy>'), parts[4]!.bytes]);
    for (let cut = 0; cut <= stream.length; cut++) {
      for (let cut2 = cut; cut2 <= stream.length; cut2 += 3) {
        const sink = new ReplacingSink();
        const s = new MessageScanner<Buffer>(typeSet([0x52]), 1 << 20, sink);
        s.push(stream.subarray(0, cut));
        s.push(stream.subarray(cut, cut2));
        s.push(stream.subarray(cut2));
        expect(Buffer.concat(sink.out).toString('latin1'), `cuts ${cut}, ${cut2}`).toBe(expected.toString('latin1'));
      }
    }
  });
});
