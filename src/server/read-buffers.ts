// Reusable read buffers for server sockets: what PostgreSQL sends is read into pooled 64 KiB buffers that
// return to the pool once every write forwarding a slice of them has completed.
//
// Why: Node allocates a fresh buffer per socket read, and forwarded slices keep those buffers alive until
// a GC notices them. A slow client reading a large result would otherwise see pooler's RSS climb by tens
// of MB of dead chunks even though backpressure keeps the live data to one socket buffer.

import type net from 'node:net';

const SIZE = 64 * 1024;
/** Enough for every busy server connection to have a spare; beyond that buffers are left to the GC. */
const MAX_FREE = 512;

export interface ReadBuffer {
  readonly buf: Buffer;
  /** holders: the read in progress plus each write of a slice not yet completed */
  refs: number;
  /** drop one hold; the last one returns the buffer to the pool */
  readonly release: () => void;
}

const free: ReadBuffer[] = [];

function make(): ReadBuffer {
  const rb: ReadBuffer = {
    buf: Buffer.allocUnsafeSlow(SIZE),
    refs: 0,
    release: () => {
      if (--rb.refs === 0 && free.length < MAX_FREE) free.push(rb);
    },
  };
  return rb;
}

function take(): ReadBuffer {
  return free.pop() ?? make();
}

/** The buffer whose bytes are being dispatched right now (reads are dispatched synchronously, one at a time). */
let current: ReadBuffer | null = null;

/**
 * Hold the buffer being dispatched, for a write of one of its slices; returns the callback that ends the hold,
 * or undefined when the bytes are not from a pooled buffer.
 */
export function holdCurrent(): (() => void) | undefined {
  if (current === null) return undefined;
  current.refs++;
  return current.release;
}

/**
 * `onread` options for net.connect: each read goes to a pooled buffer and is emitted as an ordinary 'data'
 * event, so code that reads the socket does not change. A 'data' handler that keeps bytes past the event
 * must copy them or call holdCurrent().
 */
export function pooledOnRead(socket: () => net.Socket): net.OnReadOpts {
  let next: ReadBuffer | null = null;
  return {
    buffer: () => {
      next = take();
      return next.buf;
    },
    callback: (nread: number, buf: Uint8Array): boolean => {
      const rb = next !== null && next.buf === buf ? next : null;
      if (rb) {
        rb.refs = 1;
        current = rb;
      }
      try {
        socket().emit('data', Buffer.from(buf.buffer, buf.byteOffset, nread));
      } finally {
        current = null;
        rb?.release();
      }
      // Flow control stays with the 'data' handler's own pause()/resume().
      return true;
    },
  };
}
