// Unit tests for startup-phase packet parsing: SSL/GSSENC/cancel requests, protocol versions, _pq_ options, lengths and `options`.
import { describe, expect, it } from 'vitest';
import { MAX_STARTUP_PACKET, parseOptions, parseStartupPacket, startupPacketLength } from '../../src/client/startup.ts';
import { PoolerError } from '../../src/errors.ts';
import { untyped } from '../helpers/wire.ts';

/** A StartupMessage body: name\0value\0 pairs, then the terminating \0 unless `terminate` is false. */
function params(pairs: [string, string][], terminate = true): Buffer {
  return Buffer.from(pairs.map(([k, v]) => `${k}\0${v}\0`).join('') + (terminate ? '\0' : ''), 'utf8');
}

const V30 = 3 << 16;
const SSL = 80877103;
const GSSENC = 80877104;
const CANCEL = 80877102;

function thrown(f: () => unknown): PoolerError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PoolerError);
    return e as PoolerError;
  }
  throw new Error('expected a PoolerError, nothing was thrown');
}

describe('parseStartupPacket', () => {
  it('SSLRequest and GSSENCRequest', () => {
    expect(parseStartupPacket(untyped(SSL))).toEqual({ kind: 'ssl' });
    expect(parseStartupPacket(untyped(GSSENC))).toEqual({ kind: 'gssenc' });
  });

  it('CancelRequest with pid and key, negative key included', () => {
    const body = Buffer.alloc(8);
    body.writeInt32BE(12345, 0);
    body.writeInt32BE(-7, 4);
    expect(parseStartupPacket(untyped(CANCEL, body))).toEqual({ kind: 'cancel', pid: 12345, key: -7 });
  });

  it('a CancelRequest of the wrong length is a protocol violation', () => {
    for (const n of [0, 4, 12]) {
      const e = thrown(() => parseStartupPacket(untyped(CANCEL, Buffer.alloc(n))));
      expect(e.sqlstate).toBe('08P01');
      expect(e.message).toMatch(/cancel request length/);
    }
  });

  it('an SSLRequest code with a body is not taken for an SSLRequest', () => {
    // 80877103 = 1234.5679: only the exact 8-byte packet is the request; anything else is an unknown protocol.
    const e = thrown(() => parseStartupPacket(untyped(SSL, Buffer.from('x\0\0'))));
    expect(e.sqlstate).toBe('08P01');
    expect(e.code).toBe('unsupported_protocol');
  });

  it('protocol 3.0 StartupMessage with parameters, in order, values may be empty', () => {
    const p = parseStartupPacket(untyped(V30, params([['user', 'alice'], ['database', 'app'], ['application_name', ''], ['options', '-c x=1']])));
    expect(p.kind).toBe('startup');
    if (p.kind !== 'startup') return;
    expect(p.minor).toBe(0);
    expect([...p.params]).toEqual([['user', 'alice'], ['database', 'app'], ['application_name', ''], ['options', '-c x=1']]);
    expect(p.unsupportedOptions).toEqual([]);
  });

  it('UTF-8 names and values survive', () => {
    const p = parseStartupPacket(untyped(V30, params([['user', 'zoë'], ['application_name', '日本']])));
    expect(p.kind === 'startup' && Object.fromEntries(p.params)).toEqual({ user: 'zoë', application_name: '日本' });
  });

  it('a StartupMessage with no parameters at all is accepted (the user check is the caller’s)', () => {
    const p = parseStartupPacket(untyped(V30, Buffer.from([0])));
    expect(p.kind === 'startup' && p.params.size).toBe(0);
  });

  it('protocol 3.2 (and any 3.x) reports its minor version', () => {
    for (const minor of [1, 2, 9999]) {
      const p = parseStartupPacket(untyped(V30 | minor, params([['user', 'u']])));
      expect(p.kind === 'startup' && p.minor).toBe(minor);
    }
  });

  it('_pq_. protocol options are listed as unsupported and not taken as parameters', () => {
    const p = parseStartupPacket(
      untyped(V30 | 2, params([['user', 'u'], ['_pq_.compression', 'on'], ['database', 'd'], ['_pq_.other', '']])),
    );
    expect(p.kind).toBe('startup');
    if (p.kind !== 'startup') return;
    expect(p.unsupportedOptions).toEqual(['_pq_.compression', '_pq_.other']);
    expect([...p.params.keys()]).toEqual(['user', 'database']);
  });

  it('protocol 2.0, 1.0 and 4.0 are rejected with 08P01 unsupported_protocol', () => {
    for (const [major, minor] of [[2, 0], [1, 0], [4, 0], [0, 0]] as const) {
      const e = thrown(() => parseStartupPacket(untyped((major << 16) | minor, params([['user', 'u']]))));
      expect(e.sqlstate).toBe('08P01');
      expect(e.code).toBe('unsupported_protocol');
      expect(e.message).toContain(`${major}.${minor}`);
    }
  });

  it('a missing final terminator is rejected', () => {
    const e = thrown(() => parseStartupPacket(untyped(V30, params([['user', 'u']], false))));
    expect(e.sqlstate).toBe('08P01');
    expect(e.code).toBe('protocol_violation');
    expect(e.message).toMatch(/terminator/);
  });

  it('a name without value, a value without terminator, and an empty body are rejected', () => {
    for (const body of [Buffer.from('user\0'), Buffer.from('user\0alice'), Buffer.from('user'), Buffer.alloc(0)]) {
      const e = thrown(() => parseStartupPacket(untyped(V30, body)));
      expect(e.sqlstate, JSON.stringify(body.toString())).toBe('08P01');
    }
  });

  it('bytes after the terminator are rejected', () => {
    const e = thrown(() => parseStartupPacket(untyped(V30, Buffer.concat([params([['user', 'u']]), Buffer.from('junk\0')]))));
    expect(e.sqlstate).toBe('08P01');
    expect(e.message).toMatch(/terminator/);
  });
});

describe('startupPacketLength', () => {
  function header(len: number, total = 4): Buffer {
    const b = Buffer.alloc(total);
    b.writeUInt32BE(len >>> 0, 0);
    return b;
  }

  it('needs 4 bytes to know anything', () => {
    for (let n = 0; n < 4; n++) expect(startupPacketLength(Buffer.alloc(n, 0xff))).toBe(-1);
  });

  it('returns the length once the whole packet is there, -1 before', () => {
    expect(startupPacketLength(header(8, 7))).toBe(-1);
    expect(startupPacketLength(header(8, 8))).toBe(8);
    expect(startupPacketLength(header(8, 20))).toBe(8); // more bytes behind the packet
    expect(startupPacketLength(header(MAX_STARTUP_PACKET, 100))).toBe(-1);
    expect(startupPacketLength(header(MAX_STARTUP_PACKET, MAX_STARTUP_PACKET))).toBe(MAX_STARTUP_PACKET);
  });

  it('rejects lengths below 8 and above the PostgreSQL limit before waiting for the bytes', () => {
    for (const len of [0, 4, 7, MAX_STARTUP_PACKET + 1, 0x7fffffff, -1, -8]) {
      const e = thrown(() => startupPacketLength(header(len)));
      expect(e.sqlstate).toBe('08P01');
      expect(e.message).toContain(`invalid startup packet length ${len}`);
    }
  });

  it('garbage such as an HTTP request is rejected at once', () => {
    expect(() => startupPacketLength(Buffer.from('GET / HTTP/1.1\r\n'))).toThrow(/invalid startup packet length/);
  });

  it('MAX_STARTUP_PACKET is PostgreSQL’s 10000', () => {
    expect(MAX_STARTUP_PACKET).toBe(10000);
  });
});

describe('parseOptions', () => {
  const opts = (s: string) => Object.fromEntries(parseOptions(s));

  it('-c name=value, with and without the space', () => {
    expect(opts('-c a=b')).toEqual({ a: 'b' });
    expect(opts('-ca=b')).toEqual({ a: 'b' });
  });

  it('--name=value, dashes in the name become underscores', () => {
    expect(opts('--a-b=c')).toEqual({ a_b: 'c' });
    expect(opts('-c statement-timeout=5s')).toEqual({ statement_timeout: '5s' });
  });

  it('dashes in the value stay', () => {
    expect(opts('-c search_path=a-b')).toEqual({ search_path: 'a-b' });
  });

  it('several settings separated by any whitespace, the last of a name wins', () => {
    expect(opts('  -c a=1\t-cb=2\n--c-d=3   -c a=4 ')).toEqual({ a: '4', b: '2', c_d: '3' });
  });

  it('a backslash escapes a space (and itself)', () => {
    expect(opts('-c search_path=my\\ schema,public')).toEqual({ search_path: 'my schema,public' });
    expect(opts('-c application_name=a\\\\b')).toEqual({ application_name: 'a\\b' });
    expect(opts('-c\\ x=1')).toEqual({ ' x': '1' }); // "-c x=1" as one argument: name " x"
  });

  it('everything after the first = is the value, = included', () => {
    expect(opts('-c options=x=y')).toEqual({ options: 'x=y' });
    expect(opts('-c a=')).toEqual({ a: '' });
  });

  it('ignores what is not a setting without failing', () => {
    expect(opts('')).toEqual({});
    expect(opts('foo bar -x 1')).toEqual({});
    expect(opts('-c')).toEqual({});
    expect(opts('-c =x')).toEqual({});
    expect(opts('-c novalue')).toEqual({});
    expect(opts('trailing\\')).toEqual({});
  });
});
