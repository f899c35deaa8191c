// Streaming framer for typed protocol messages: finds message boundaries, hands the few messages pooler
// inspects over whole, and passes every other byte through as slices of the received chunk.
//
// Why not pg-protocol's Parser: it decodes every message (DataRow fields included) into objects, which is
// exactly the per-row work the hot path must not do; here a DataRow costs a 5-byte header read.

import { ErrorCodes, PoolerError } from '../errors.ts';

export interface ScanSink<R = never> {
  /** When true every message is inspected (e.g. while pooler consumes the replies to its own query). */
  readonly inspectAll: boolean;
  /**
   * A whole message (type byte, length, body). The view is only valid during the call.
   * Return true to forward it along with the surrounding bytes, false to drop it, or a replacement that
   * goes to replace() in its place, after everything before the message has been forwarded.
   */
  inspect(type: number, msg: Buffer): boolean | R;
  /** Bytes to pass on unchanged, in stream order. */
  forward(bytes: Buffer): void;
  /** What inspect() returned instead of a message, in stream order. */
  replace?(replacement: R): void;
  /** The stream is malformed; nothing more will be scanned. */
  malformed(err: PoolerError): void;
}

export class MessageScanner<R = never> {
  private readonly inspectTypes: Uint8Array;
  private readonly maxLength: number;
  private readonly sink: ScanSink<R>;
  private readonly header = Buffer.alloc(5);
  private headerLen = 0;
  /** an inspected message that spans chunks, being assembled */
  private partial: Buffer | null = null;
  private partialLen = 0;
  /** body bytes of a passed-through message still to come */
  private passRemaining = 0;
  private dead = false;

  /**
   * @param inspectTypes 256 flags: non-zero means messages of that type byte go to inspect()
   * @param maxLength largest accepted message length field (PostgreSQL's length includes itself)
   */
  constructor(inspectTypes: Uint8Array, maxLength: number, sink: ScanSink<R>) {
    this.inspectTypes = inspectTypes;
    this.maxLength = maxLength;
    this.sink = sink;
  }

  /** True when the stream is at a message boundary (nothing half-read). */
  get atBoundary(): boolean {
    return this.headerLen === 0 && this.partial === null && this.passRemaining === 0;
  }

  push(chunk: Buffer): void {
    if (this.dead) return;
    const n = chunk.length;
    let pos = 0;
    let fwdStart = 0;
    while (pos < n) {
      if (this.passRemaining > 0) {
        const take = Math.min(this.passRemaining, n - pos);
        this.passRemaining -= take;
        pos += take;
        continue;
      }
      if (this.partial !== null) {
        const want = this.partial.length - this.partialLen;
        const take = Math.min(want, n - pos);
        chunk.copy(this.partial, this.partialLen, pos, pos + take);
        this.partialLen += take;
        pos += take;
        fwdStart = pos;
        if (this.partialLen === this.partial.length) {
          const msg = this.partial;
          this.partial = null;
          this.deliverWhole(msg[0]!, msg);
          if (this.dead) return;
        }
        continue;
      }
      // At a message header.
      let type: number;
      let len: number;
      let stashed = false;
      if (this.headerLen === 0 && n - pos >= 5) {
        type = chunk[pos]!;
        len = chunk.readInt32BE(pos + 1);
      } else {
        const take = Math.min(5 - this.headerLen, n - pos);
        if (this.headerLen === 0) this.flush(chunk, fwdStart, pos);
        chunk.copy(this.header, this.headerLen, pos, pos + take);
        this.headerLen += take;
        pos += take;
        fwdStart = pos;
        if (this.headerLen < 5) return;
        type = this.header[0]!;
        len = this.header.readInt32BE(1);
        stashed = true;
      }
      if (len < 4 || len > this.maxLength) {
        this.dead = true;
        // Whole messages before the bad header still go out, so the receiver never holds half a message.
        if (!stashed) this.flush(chunk, fwdStart, pos);
        this.sink.malformed(
          len < 4
            ? new PoolerError(ErrorCodes.protocolViolation, `invalid message length ${len} for message type ${typeName(type)}`)
            : new PoolerError(ErrorCodes.packetTooLarge, `message of ${len} bytes is larger than max_packet_size (${this.maxLength})`),
        );
        return;
      }
      const total = len + 1;
      const wanted = this.inspectTypes[type] !== 0 || this.sink.inspectAll;
      if (stashed) {
        this.headerLen = 0;
        if (wanted) {
          this.partial = Buffer.allocUnsafe(total);
          this.header.copy(this.partial, 0, 0, 5);
          this.partialLen = 5;
          if (total === 5) {
            const msg = this.partial;
            this.partial = null;
            this.deliverWhole(type, msg);
            if (this.dead) return;
          }
        } else {
          this.sink.forward(Buffer.from(this.header));
          this.passRemaining = total - 5;
        }
        continue;
      }
      if (pos + total <= n) {
        if (wanted) {
          const msg = chunk.subarray(pos, pos + total);
          const r = this.sink.inspect(type, msg);
          if (r !== true) {
            this.flush(chunk, fwdStart, pos);
            fwdStart = pos + total;
            if (r !== false) this.sink.replace!(r);
          }
          if (this.dead) return;
        }
        pos += total;
      } else if (wanted) {
        this.flush(chunk, fwdStart, pos);
        this.partial = Buffer.allocUnsafe(total);
        this.partialLen = n - pos;
        chunk.copy(this.partial, 0, pos, n);
        pos = n;
        fwdStart = n;
      } else {
        this.passRemaining = total - (n - pos);
        pos = n;
      }
    }
    this.flush(chunk, fwdStart, pos);
  }

  /** A message assembled across chunks: everything before it has already been forwarded. */
  private deliverWhole(type: number, msg: Buffer): void {
    const r = this.sink.inspect(type, msg);
    if (r === true) this.sink.forward(msg);
    else if (r !== false) this.sink.replace!(r);
  }

  /** Stop scanning: later pushes are ignored. */
  stop(): void {
    this.dead = true;
  }

  private flush(chunk: Buffer, from: number, to: number): void {
    if (to > from) this.sink.forward(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to));
  }
}

/** Flags table for MessageScanner from a list of type bytes. */
export function typeSet(types: Iterable<number>): Uint8Array {
  const t = new Uint8Array(256);
  for (const x of types) t[x] = 1;
  return t;
}

export function typeName(type: number): string {
  return type >= 0x20 && type < 0x7f ? `'${String.fromCharCode(type)}'` : `0x${type.toString(16).padStart(2, '0')}`;
}
