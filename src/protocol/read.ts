// Decoders for the few messages pooler must look inside; everything else is forwarded as bytes.

import { ErrorField } from './codes.ts';

/** A bounds-checked cursor over one message body; throws RangeError on truncation. */
export class Cursor {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;

  constructor(buf: Buffer, start: number, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  int32(): number {
    if (this.pos + 4 > this.end) throw new RangeError('message truncated');
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  cstring(): string {
    const z = this.buf.indexOf(0, this.pos);
    if (z < 0 || z >= this.end) throw new RangeError('missing string terminator');
    const s = this.buf.toString('utf8', this.pos, z);
    this.pos = z + 1;
    return s;
  }

  bytes(n: number): Buffer {
    if (n < 0 || this.pos + n > this.end) throw new RangeError('message truncated');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  rest(): Buffer {
    const b = this.buf.subarray(this.pos, this.end);
    this.pos = this.end;
    return b;
  }
}

/** Fields of an ErrorResponse/NoticeResponse message (whole message including the type byte). */
export function errorFields(msg: Buffer): Map<number, string> {
  const fields = new Map<number, string>();
  let pos = 5;
  while (pos < msg.length && msg[pos] !== 0) {
    const code = msg[pos]!;
    const z = msg.indexOf(0, pos + 1);
    if (z < 0) break;
    fields.set(code, msg.toString('utf8', pos + 1, z));
    pos = z + 1;
  }
  return fields;
}

export function errorSummary(fields: Map<number, string>): { sqlstate: string; message: string; severity: string } {
  return {
    sqlstate: fields.get(ErrorField.Code) ?? 'XX000',
    message: fields.get(ErrorField.Message) ?? 'unknown error',
    severity: fields.get(ErrorField.SeverityNonLocalized) ?? fields.get(ErrorField.Severity) ?? 'ERROR',
  };
}

/** [name, value] of a ParameterStatus message. */
export function parameterStatusOf(msg: Buffer): [string, string] {
  const c = new Cursor(msg, 5);
  return [c.cstring(), c.cstring()];
}

/** A DataRow's columns as text (NULL as null); only for pooler's own small queries. */
export function dataRowText(msg: Buffer): (string | null)[] {
  const c = new Cursor(msg, 5);
  const n = msg.readInt16BE(5);
  c.pos = 7;
  const out: (string | null)[] = [];
  for (let k = 0; k < n; k++) {
    const len = c.int32();
    out.push(len < 0 ? null : c.bytes(len).toString('utf8'));
  }
  return out;
}
