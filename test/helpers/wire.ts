// Builders for raw protocol bytes and a seeded PRNG, for tests that speak the wire protocol by hand.

/** A typed message; `lengthField` overrides the length written (to make malformed messages). */
export function typed(type: string | number, body: Buffer | string = Buffer.alloc(0), lengthField?: number): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const out = Buffer.alloc(5 + b.length);
  out[0] = typeof type === 'string' ? type.charCodeAt(0) : type;
  out.writeUInt32BE((lengthField ?? 4 + b.length) >>> 0, 1);
  b.copy(out, 5);
  return out;
}

/** A simple-protocol Query. */
export function query(sql: string): Buffer {
  return typed('Q', sql + '\0');
}

/** An untyped startup-phase packet: length, a 32-bit code (protocol version or request code), then `body`. */
export function untyped(code: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(out.length, 0);
  out.writeUInt32BE(code >>> 0, 4);
  body.copy(out, 8);
  return out;
}

export const PROTOCOL_30 = 3 << 16;

/** A StartupMessage for protocol 3.`minor` with the given parameters. */
export function startup(params: Record<string, string>, minor = 0): Buffer {
  const body = Buffer.from(Object.entries(params).map(([k, v]) => `${k}\0${v}\0`).join('') + '\0', 'utf8');
  return untyped(PROTOCOL_30 | minor, body);
}

/** Deterministic PRNG (mulberry32) so a failing random test can be replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
