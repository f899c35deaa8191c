// A minimal raw-protocol client for tests that must see every message in order: it logs in, then sends whatever
// bytes it is given and reads the answers as {type, body} messages. Extended-protocol message builders and
// parsers for the answers are here too.
import net from 'node:net';
import { query, startup, typed } from './wire.ts';

export interface Message {
  type: string;
  body: Buffer;
}

export interface Target {
  host: string;
  port: number;
}

const ASYNC_TYPES = new Set(['N', 'S', 'A']);

export class RawClient {
  readonly sock: net.Socket;
  /** Messages received and not read yet, oldest first. */
  readonly messages: Message[] = [];
  closed = false;
  error: Error | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      while (this.buf.length >= 5) {
        const len = this.buf.readUInt32BE(1);
        if (this.buf.length < 1 + len) break;
        this.messages.push({ type: String.fromCharCode(this.buf[0]!), body: Buffer.from(this.buf.subarray(5, 1 + len)) });
        this.buf = this.buf.subarray(1 + len);
      }
      this.notify();
    });
    sock.on('error', (e) => {
      this.error = e;
    });
    sock.on('close', () => {
      this.closed = true;
      this.notify();
    });
  }

  /** Connects and logs in (StartupMessage through ReadyForQuery); throws on an ErrorResponse. */
  static async connect(target: Target, params: Record<string, string> = { user: 'postgres', database: 'app' }): Promise<RawClient> {
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: target.host, port: target.port });
      s.setNoDelay(true);
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
    const c = new RawClient(sock);
    c.send(startup(params));
    const login = await c.readUntil('ZE');
    const last = login[login.length - 1]!;
    if (last.type === 'E') {
      c.destroy();
      throw new Error(`login failed: ${JSON.stringify(errorFields(last.body))}`);
    }
    return c;
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(...bufs: Buffer[]): void {
    this.sock.write(bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs));
  }

  /** The next message (waits for it). */
  next(timeoutMs = 10_000): Promise<Message> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for a message`)), timeoutMs);
      const check = () => {
        const m = this.messages.shift();
        if (m) {
          clearTimeout(timer);
          resolve(m);
        } else if (this.closed) {
          clearTimeout(timer);
          reject(new Error(`connection closed while waiting for a message${this.error ? `: ${this.error.message}` : ''}`));
        } else this.waiters.push(check);
      };
      check();
    });
  }

  /** Messages up to and including the first whose type is one of `types`. */
  async readUntil(types: string, timeoutMs = 10_000): Promise<Message[]> {
    const out: Message[] = [];
    for (;;) {
      const m = await this.next(timeoutMs);
      out.push(m);
      if (types.includes(m.type)) return out;
    }
  }

  /** The next `n` messages, leaving asynchronous ones (NoticeResponse, ParameterStatus, NotificationResponse) out. */
  async readN(n: number, timeoutMs = 10_000): Promise<Message[]> {
    const out: Message[] = [];
    while (out.length < n) {
      const m = await this.next(timeoutMs);
      if (!ASYNC_TYPES.has(m.type)) out.push(m);
    }
    return out;
  }

  /** Messages up to and including ReadyForQuery. */
  readUntilReady(timeoutMs = 10_000): Promise<Message[]> {
    return this.readUntil('Z', timeoutMs);
  }

  /** Sends `bufs` (which should end with Sync) and returns the answer up to and including ReadyForQuery. */
  run(...bufs: Buffer[]): Promise<Message[]> {
    this.send(...bufs);
    return this.readUntilReady();
  }

  /** A simple-protocol Query; the answer up to and including ReadyForQuery. */
  simple(sql: string): Promise<Message[]> {
    return this.run(query(sql));
  }

  /** Sends Terminate and closes. */
  end(): void {
    if (!this.sock.destroyed) this.sock.end(typed('X'));
  }

  destroy(): void {
    this.sock.destroy();
  }
}

// ---- builders --------------------------------------------------------------------------------------------

function cstr(s: string): Buffer {
  return Buffer.from(s + '\0', 'utf8');
}

function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n | 0);
  return b;
}

/** Parse: a named (or unnamed, '') statement with the given parameter type OIDs (0 = unspecified). */
export function parse(name: string, sql: string, paramTypes: number[] = []): Buffer {
  return typed('P', Buffer.concat([cstr(name), cstr(sql), int16(paramTypes.length), ...paramTypes.map(int32)]));
}

/** Bind: text-format parameters (null = SQL NULL), text-format results unless `resultFormats` says otherwise. */
export function bind(statement: string, params: (string | null)[] = [], portal = '', resultFormats: number[] = []): Buffer {
  const values = params.flatMap((p) => (p === null ? [int32(-1)] : [int32(Buffer.byteLength(p)), Buffer.from(p, 'utf8')]));
  return typed(
    'B',
    Buffer.concat([cstr(portal), cstr(statement), int16(0), int16(params.length), ...values, int16(resultFormats.length), ...resultFormats.map(int16)]),
  );
}

/** Describe of a statement ('S') or a portal ('P'). */
export function describe(kind: 'S' | 'P', name: string): Buffer {
  return typed('D', Buffer.concat([Buffer.from(kind), cstr(name)]));
}

export function execute(portal = '', maxRows = 0): Buffer {
  return typed('E', Buffer.concat([cstr(portal), int32(maxRows)]));
}

/** Close of a statement ('S') or a portal ('P'). */
export function close(kind: 'S' | 'P', name: string): Buffer {
  return typed('C', Buffer.concat([Buffer.from(kind), cstr(name)]));
}

export function sync(): Buffer {
  return typed('S');
}

export function flush(): Buffer {
  return typed('H');
}

// ---- parsers ---------------------------------------------------------------------------------------------

/** The message types in order, leaving asynchronous ones (NoticeResponse, ParameterStatus, Notification) out. */
export function typesOf(msgs: Message[]): string[] {
  return msgs.filter((m) => !ASYNC_TYPES.has(m.type)).map((m) => m.type);
}

/** ErrorResponse / NoticeResponse fields by field letter (C = SQLSTATE, M = message, …). */
export function errorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const z = body.indexOf(0, pos + 1);
    if (z < 0) break;
    out[String.fromCharCode(body[pos]!)] = body.toString('utf8', pos + 1, z);
    pos = z + 1;
  }
  return out;
}

/** The fields of every ErrorResponse among `msgs`. */
export function errorsOf(msgs: Message[]): Record<string, string>[] {
  return msgs.filter((m) => m.type === 'E').map((m) => errorFields(m.body));
}

/** A DataRow's columns as text (null for SQL NULL). */
export function dataRow(body: Buffer): (string | null)[] {
  const n = body.readInt16BE(0);
  const out: (string | null)[] = [];
  let pos = 2;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(pos);
    pos += 4;
    if (len < 0) out.push(null);
    else {
      out.push(body.toString('utf8', pos, pos + len));
      pos += len;
    }
  }
  return out;
}

/** Every DataRow among `msgs`, as text columns. */
export function rowsOf(msgs: Message[]): (string | null)[][] {
  return msgs.filter((m) => m.type === 'D').map((m) => dataRow(m.body));
}

/** ParameterDescription: the parameter type OIDs. */
export function paramTypesOf(body: Buffer): number[] {
  const n = body.readInt16BE(0);
  return Array.from({ length: n }, (_, i) => body.readUInt32BE(2 + 4 * i));
}

/** RowDescription: the column names and type OIDs. */
export function columnsOf(body: Buffer): { name: string; type: number }[] {
  const n = body.readInt16BE(0);
  const out: { name: string; type: number }[] = [];
  let pos = 2;
  for (let i = 0; i < n; i++) {
    const z = body.indexOf(0, pos);
    const name = body.toString('utf8', pos, z);
    pos = z + 1;
    // table OID (4), column number (2), then the type OID
    out.push({ name, type: body.readUInt32BE(pos + 6) });
    pos += 18;
  }
  return out;
}

/** CommandComplete's tag. */
export function commandTag(body: Buffer): string {
  return body.toString('utf8', 0, body.indexOf(0));
}
