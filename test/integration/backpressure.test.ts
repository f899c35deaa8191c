// Backpressure: a slow reader of a 200 MB result and a fast 100 MB COPY into a slow server must not grow pooler's memory.

import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { poll, startCluster, startPoolerFor, type Cluster, type PoolerProcess } from './harness.ts';
import { startup, typed } from '../helpers/wire.ts';

const MB = 1024 * 1024;
const RSS_LIMIT_MB = 64;

let cluster: Cluster;
let pooler: PoolerProcess;

beforeAll(async () => {
  cluster = await startCluster({ replicas: 0 });
  // Every 16th row sleeps 10 ms on the server: ~100 MB of 10 kB rows takes the server ≥ 6 s to take in.
  await cluster.query(
    cluster.primary,
    `CREATE UNLOGGED TABLE bp_in (id int, v text);
     CREATE FUNCTION bp_slow() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN IF NEW.id % 16 = 0 THEN PERFORM pg_sleep(0.01); END IF; RETURN NEW; END $$;
     CREATE TRIGGER bp_slow BEFORE INSERT ON bp_in FOR EACH ROW EXECUTE FUNCTION bp_slow();`,
  );
});
// A fresh pooler per test: each direction is measured from a cold process, not one the other test already grew.
beforeEach(async () => {
  pooler = await startPoolerFor(cluster, { settings: { default_pool_size: 10 } });
});
afterEach(async () => {
  await pooler?.stop();
});
afterAll(async () => {
  await cluster?.destroy();
});

/** pooler's resident set size in bytes, from /proc. */
function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Samples pooler's RSS every 100 ms until stopped; reports the baseline (taken at start) and the peak. */
function rssSampler(pid: number): { stop(): { baseline: number; peak: number; growthMb: number } } {
  const baseline = rssOf(pid);
  let peak = baseline;
  const timer = setInterval(() => {
    peak = Math.max(peak, rssOf(pid));
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, rssOf(pid));
      return { baseline, peak, growthMb: (peak - baseline) / MB };
    },
  };
}

interface Msg {
  type: string;
  body: Buffer;
}

/**
 * A minimal protocol-3 client on a raw socket. DataRows are only counted (never kept); every other message is queued
 * for next(). With `rate` set it reads no faster than that many bytes per second by pausing the socket.
 */
class RawClient {
  readonly socket: net.Socket;
  dataRows = 0;
  bytesIn = 0;
  /** bytes per second the client reads at most; Infinity reads as fast as the socket delivers */
  rate = Infinity;
  private rateStart = 0;
  private rateBytes = 0;
  private readonly header = Buffer.alloc(5);
  private headerLen = 0;
  private type = 0;
  private remaining = 0;
  private body: Buffer[] | null = null;
  private readonly inbox: Msg[] = [];
  private wake: (() => void) | null = null;
  private failure: Error | null = null;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.onChunk(chunk));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static async connect(port: number, params: Record<string, string>): Promise<RawClient> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((res, rej) => socket.once('connect', res).once('error', rej));
    const c = new RawClient(socket);
    socket.write(startup(params));
    for (;;) {
      const m = await c.next();
      if (m.type === 'E') throw new Error(`login failed: ${errorText(m.body)}`);
      if (m.type === 'Z') return c;
    }
  }

  /** Read no faster than `bytesPerSecond` from now on. */
  throttle(bytesPerSecond: number): void {
    this.rate = bytesPerSecond;
    this.rateStart = Date.now();
    this.rateBytes = 0;
  }

  /** The next message that is not a DataRow. */
  async next(): Promise<Msg> {
    for (;;) {
      const m = this.inbox.shift();
      if (m) return m;
      if (this.failure) throw this.failure;
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  query(sql: string): void {
    this.socket.write(typed('Q', Buffer.from(sql + '\0')));
  }

  /** Write, waiting for the socket to drain when its buffer is full (a fast but well-behaved sender). */
  async send(bytes: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.socket.write(bytes)) {
      await new Promise<void>((res, rej) => {
        const onDrain = () => {
          this.socket.off('close', onClose);
          res();
        };
        const onClose = () => {
          this.socket.off('drain', onDrain);
          rej(this.failure ?? new Error('connection closed'));
        };
        this.socket.once('drain', onDrain).once('close', onClose);
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private push(type: number, body: Buffer): void {
    this.inbox.push({ type: String.fromCharCode(type), body });
    this.notify();
  }

  private onChunk(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    let pos = 0;
    while (pos < chunk.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - pos);
        this.body?.push(chunk.subarray(pos, pos + take));
        this.remaining -= take;
        pos += take;
        if (this.remaining === 0) this.endMessage();
        continue;
      }
      const take = Math.min(5 - this.headerLen, chunk.length - pos);
      chunk.copy(this.header, this.headerLen, pos, pos + take);
      this.headerLen += take;
      pos += take;
      if (this.headerLen < 5) break;
      this.headerLen = 0;
      this.type = this.header[0]!;
      this.remaining = this.header.readInt32BE(1) - 4;
      this.body = this.type === 0x44 ? null : [];
      if (this.remaining === 0) this.endMessage();
    }
    if (this.rate !== Infinity) {
      this.rateBytes += chunk.length;
      const aheadMs = (this.rateBytes / this.rate) * 1000 - (Date.now() - this.rateStart);
      if (aheadMs > 0) {
        this.socket.pause();
        setTimeout(() => this.socket.resume(), aheadMs);
      }
    }
  }

  private endMessage(): void {
    if (this.type === 0x44) this.dataRows++;
    else this.push(this.type, Buffer.concat(this.body ?? []));
    this.body = null;
  }
}

function cstring(body: Buffer): string {
  const end = body.indexOf(0);
  return body.toString('utf8', 0, end < 0 ? body.length : end);
}

function errorText(body: Buffer): string {
  const fields: string[] = [];
  for (let i = 0; i < body.length && body[i] !== 0; ) {
    const end = body.indexOf(0, i + 1);
    fields.push(`${String.fromCharCode(body[i]!)}=${body.toString('utf8', i + 1, end)}`);
    i = end + 1;
  }
  return fields.join(' ');
}

/** Waits for a message of `type`, failing on an ErrorResponse; returns it. */
async function expectMsg(c: RawClient, type: string): Promise<Msg> {
  const m = await c.next();
  if (m.type === 'E') throw new Error(`server error while waiting for '${type}': ${errorText(m.body)}`);
  if (m.type !== type) throw new Error(`expected message '${type}', got '${m.type}'`);
  return m;
}

describe('backpressure through pooler', () => {
  it('streams a 200 MB result to a slow reader without buffering it', async () => {
    const rows = 200_000;
    const rowBytes = 1000;
    const c = await RawClient.connect(pooler.port, { user: 'postgres', database: 'app', application_name: 'bp-reader' });
    try {
      const rss = rssSampler(pooler.pid);
      const started = Date.now();
      // ~15 MB/s: the transfer takes ~14 s, far slower than PostgreSQL and pooler could produce it.
      c.throttle(15 * MB);
      c.query(`SELECT repeat('x', ${rowBytes}) FROM generate_series(1, ${rows})`);
      await expectMsg(c, 'T');

      // Halfway through, PostgreSQL must still be sending: pooler passes the slowness on instead of soaking it up.
      await poll(() => c.dataRows >= rows / 2, 'half of the rows', 30_000, 50);
      const [backend] = await cluster.query(
        cluster.primary,
        "SELECT state, wait_event FROM pg_stat_activity WHERE query LIKE 'SELECT repeat(%' AND pid <> pg_backend_pid()",
      );
      expect(backend?.state).toBe('active');

      const done = await expectMsg(c, 'C');
      expect(cstring(done.body)).toBe(`SELECT ${rows}`);
      await expectMsg(c, 'Z');
      const seconds = (Date.now() - started) / 1000;
      const { baseline, peak, growthMb } = rss.stop();
      console.info(
        `slow reader: ${(c.bytesIn / MB).toFixed(0)} MB in ${seconds.toFixed(1)} s; pooler RSS ${(baseline / MB).toFixed(1)} → peak ${(peak / MB).toFixed(1)} MB (+${growthMb.toFixed(1)} MB)`,
      );
      expect(c.dataRows).toBe(rows);
      // Each DataRow: 5-byte header, 2-byte field count, 4-byte field length, the value.
      expect(c.bytesIn).toBeGreaterThan(rows * (rowBytes + 11));
      expect(growthMb).toBeLessThan(RSS_LIMIT_MB);
    } finally {
      c.close();
    }
  });

  it('passes a fast 100 MB COPY FROM STDIN to a slow server without buffering it', async () => {
    const rowLen = 10_000;
    const rows = 10_000; // ~100 MB
    const perMessage = 6;
    const c = await RawClient.connect(pooler.port, { user: 'postgres', database: 'app', application_name: 'bp-writer' });
    try {
      const rss = rssSampler(pooler.pid);
      const started = Date.now();
      c.query('COPY bp_in (id, v) FROM STDIN');
      await expectMsg(c, 'G');
      const pad = 'abcdefghijklmnopqrstuvwxyz'.repeat(Math.ceil(rowLen / 26)).slice(0, rowLen);
      let sent = 0;
      let idSum = 0;
      for (let id = 1; id <= rows; ) {
        let text = '';
        for (let k = 0; k < perMessage && id <= rows; k++, id++) {
          text += `${id}\t${pad}\n`;
          idSum += id;
        }
        const msg = typed('d', Buffer.from(text));
        sent += msg.length;
        await c.send(msg);
      }
      // The sender could only get this far as fast as the server took the data in: what the server has not
      // processed yet is what sits in socket buffers and pooler, not the whole stream.
      const [progress] = await cluster.query(
        cluster.primary,
        "SELECT bytes_processed::bigint::text AS b FROM pg_stat_progress_copy p JOIN pg_stat_activity a USING (pid) WHERE a.query LIKE 'COPY bp_in%'",
      );
      const behindMb = (sent - Number(progress?.b ?? 0)) / MB;
      const sendSeconds = (Date.now() - started) / 1000;
      await c.send(typed('c', Buffer.alloc(0)));
      const done = await expectMsg(c, 'C');
      expect(cstring(done.body)).toBe(`COPY ${rows}`);
      await expectMsg(c, 'Z');
      const seconds = (Date.now() - started) / 1000;
      const { baseline, peak, growthMb } = rss.stop();
      console.info(
        `fast COPY: ${(sent / MB).toFixed(0)} MB sent in ${sendSeconds.toFixed(1)} s, done in ${seconds.toFixed(1)} s, server ${behindMb.toFixed(1)} MB behind when the last byte was sent; pooler RSS ${(baseline / MB).toFixed(1)} → peak ${(peak / MB).toFixed(1)} MB (+${growthMb.toFixed(1)} MB)`,
      );
      expect(behindMb).toBeLessThan(RSS_LIMIT_MB);
      const [stored] = await cluster.query(
        cluster.primary,
        'SELECT count(*)::int AS n, sum(id)::bigint::text AS ids, sum(length(v))::bigint::text AS chars FROM bp_in',
      );
      expect(stored).toEqual({ n: rows, ids: String(idSum), chars: String(rows * rowLen) });
      expect(growthMb).toBeLessThan(RSS_LIMIT_MB);
    } finally {
      c.close();
    }
  });
});
