// Unit tests for WAL positions (parse/format) and replica lag measured against samples of the primary's position.
import { describe, expect, it } from 'vitest';
import { formatLsn, parseLsn } from '../../src/topology/lsn.ts';
import { LsnHistory } from '../../src/topology/lag.ts';
import { backoffMs } from '../../src/topology/monitor.ts';
import { parseCheckRows } from '../../src/topology/probe.ts';

describe('parseLsn / formatLsn', () => {
  it('parses PostgreSQL LSN text into 64 bits', () => {
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n);
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn('0/3000060')).toBe(0x3000060n);
    expect(parseLsn('ffffffff/ffffffff')).toBe((1n << 64n) - 1n);
    expect(parseLsn('00000001/00000000')).toBe(1n << 32n);
  });

  it('formats like PostgreSQL: upper-case hex, no zero padding', () => {
    expect(formatLsn((0x16n << 32n) | 0xb374d848n)).toBe('16/B374D848');
    expect(formatLsn(0n)).toBe('0/0');
    expect(formatLsn(0x3000060n)).toBe('0/3000060');
    expect(formatLsn(1n << 32n)).toBe('1/0');
  });

  it('round-trips', () => {
    for (const t of ['0/0', '0/1', '1/0', 'A/FF', '16/B374D848', 'FFFFFFFF/FFFFFFFF', '7FFFFFFF/80000000']) {
      expect(formatLsn(parseLsn(t))).toBe(t);
    }
    for (const v of [0n, 1n, 0xffffffffn, 0x100000000n, 123456789012345n, (1n << 64n) - 1n]) {
      expect(parseLsn(formatLsn(v))).toBe(v);
    }
  });

  it('rejects bad input with a clear message', () => {
    for (const bad of ['', 'x/y', '1/', '/1', '1', '1/2/3', ' 1/2', '1/2 ', '123456789/0', '0/123456789', '-1/0', '0x1/0', '1/g']) {
      expect(() => parseLsn(bad), bad).toThrow(/invalid LSN/);
    }
    expect(() => formatLsn(-1n)).toThrow(RangeError);
    expect(() => formatLsn(1n << 64n)).toThrow(RangeError);
  });
});

describe('LsnHistory', () => {
  it('is empty at first: latest 0n and no lag', () => {
    const h = new LsnHistory();
    expect(h.latest).toBe(0n);
    expect(h.lagBytes(0n)).toBe(0);
    expect(h.lagMs(0n, 1000)).toBe(0);
  });

  it('shows no lag for a caught-up replica of an idle primary, however much time passes', () => {
    const h = new LsnHistory();
    h.record(1000, 500n);
    for (let t = 1100; t < 100_000; t += 100) h.record(t, 500n);
    expect(h.size).toBe(1);
    expect(h.lagBytes(500n)).toBe(0);
    expect(h.lagMs(500n, 100_000)).toBe(0);
    // A replica sampled after the primary may be ahead of the last sample.
    expect(h.lagMs(600n, 100_000)).toBe(0);
    expect(h.lagBytes(600n)).toBe(0);
  });

  it('measures lag from the first time the primary was seen past the replica', () => {
    const h = new LsnHistory();
    h.record(1000, 100n);
    h.record(2000, 200n);
    h.record(3000, 300n);
    h.record(4000, 400n);
    // Replayed 250: missing WAL the primary had since the 300 sample at t=3000.
    expect(h.lagMs(250n, 5000)).toBe(2000);
    expect(h.lagBytes(250n)).toBe(150);
    // Exactly at a sample: the next one is what is missing.
    expect(h.lagMs(300n, 5000)).toBe(1000);
    expect(h.lagMs(399n, 5000)).toBe(1000);
    expect(h.lagMs(400n, 5000)).toBe(0);
    // Behind even the oldest sample: measured from the oldest one.
    expect(h.lagMs(50n, 5000)).toBe(4000);
    expect(h.lagMs(100n, 5000)).toBe(3000);
    // Grows with time while the replica stays behind.
    expect(h.lagMs(250n, 9000)).toBe(6000);
    // Never negative.
    expect(h.lagMs(250n, 0)).toBe(0);
  });

  it('keeps only advances of the position and starts over when it goes back (another primary)', () => {
    const h = new LsnHistory();
    h.record(1000, 100n);
    h.record(2000, 100n);
    expect(h.size).toBe(1);
    expect(h.lagMs(50n, 3000)).toBe(2000);
    h.record(3000, 80n);
    expect(h.size).toBe(1);
    expect(h.latest).toBe(80n);
    expect(h.lagMs(50n, 4000)).toBe(1000);
  });

  it('is bounded, dropping the oldest samples', () => {
    const h = new LsnHistory(8);
    for (let i = 1; i <= 20; i++) h.record(i * 10, BigInt(i * 100));
    expect(h.size).toBe(8);
    expect(h.latest).toBe(2000n);
    // Samples 13..20 remain; 1300 at t=130 is the oldest.
    expect(h.lagMs(0n, 1000)).toBe(870);
    expect(h.lagMs(1350n, 1000)).toBe(1000 - 140);
    expect(h.lagMs(1999n, 1000)).toBe(1000 - 200);
    expect(h.lagBytes(1500n)).toBe(500);

    const big = new LsnHistory();
    for (let i = 1; i <= 10_000; i++) big.record(i, BigInt(i));
    expect(big.size).toBe(4096);
    expect(big.lagMs(10_000n - 10n, 20_000)).toBe(20_000 - (10_000 - 9));
    expect(big.lagMs(0n, 20_000)).toBe(20_000 - (10_000 - 4095));
  });

  it('agrees with a linear scan on random data', () => {
    const h = new LsnHistory(64);
    const samples: [number, bigint][] = [];
    let lsn = 0n;
    for (let t = 0; t < 500; t++) {
      lsn += BigInt(Math.floor(Math.random() * 3));
      h.record(t, lsn);
      if (samples.length === 0 || samples.at(-1)![1] < lsn) samples.push([t, lsn]);
    }
    const kept = samples.slice(-64);
    for (let r = 0n; r <= lsn + 1n; r++) {
      const first = kept.find(([, l]) => l > r);
      const expected = r >= lsn ? 0 : 1000 - (first ?? kept[0]!)[0];
      expect(h.lagMs(r, 1000)).toBe(expected);
    }
  });
});

describe('health check pieces', () => {
  it('backs off from one interval, doubling, capped at 2 s', () => {
    expect([1, 2, 3, 4, 5, 6].map((f) => backoffMs(100, f))).toEqual([100, 200, 400, 800, 1600, 2000]);
    expect(backoffMs(250, 1)).toBe(250);
    expect(backoffMs(5000, 1)).toBe(2000);
  });

  it('reads the check query reply of a primary and of a replica', () => {
    expect(parseCheckRows([['f', '0/3000148', null, null]])).toEqual({
      ok: true, inRecovery: false, currentLsn: 0x3000148n, receiveLsn: null, replayLsn: null,
    });
    expect(parseCheckRows([['t', null, '1/10', '1/8']])).toEqual({
      ok: true, inRecovery: true, currentLsn: null, receiveLsn: 0x100000010n, replayLsn: 0x100000008n,
    });
    expect(() => parseCheckRows([])).toThrow(/unexpected reply/);
    expect(() => parseCheckRows([['x', null, null, null]])).toThrow(/unexpected reply/);
    expect(() => parseCheckRows([['f', 'bogus', null, null]])).toThrow(/invalid LSN/);
  });
});
