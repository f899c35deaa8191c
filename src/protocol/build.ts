// Builders for the messages pooler itself sends (to clients and to servers); constant ones are built once.

import { Auth, Backend, ErrorField, Frontend, StartupCode } from './codes.ts';

/** A typed message with the body written by `fill` into a buffer of exactly `bodyLen` bytes. */
function typed(type: number, bodyLen: number, fill?: (b: Buffer, off: number) => void): Buffer {
  const b = Buffer.allocUnsafe(5 + bodyLen);
  b[0] = type;
  b.writeInt32BE(4 + bodyLen, 1);
  if (fill) fill(b, 5);
  return b;
}

function cstrings(parts: string[]): Buffer {
  return Buffer.from(parts.map((p) => p + '\0').join(''), 'utf8');
}

function typedBody(type: number, body: Buffer): Buffer {
  return typed(type, body.length, (b, off) => body.copy(b, off));
}

export const readyForQuery = {
  I: typed(Backend.ReadyForQuery, 1, (b, o) => (b[o] = 0x49)),
  T: typed(Backend.ReadyForQuery, 1, (b, o) => (b[o] = 0x54)),
  E: typed(Backend.ReadyForQuery, 1, (b, o) => (b[o] = 0x45)),
} as const;

export const authOk = typed(Backend.Authentication, 4, (b, o) => b.writeInt32BE(Auth.Ok, o));
export const sslRefused = Buffer.from('N');
export const terminate = typed(Frontend.Terminate, 0);
export const syncMessage = typed(Frontend.Sync, 0);

export function authMD5(salt: Buffer): Buffer {
  return typed(Backend.Authentication, 8, (b, o) => {
    b.writeInt32BE(Auth.MD5Password, o);
    salt.copy(b, o + 4, 0, 4);
  });
}

export function authSASL(mechanisms: string[]): Buffer {
  const names = cstrings([...mechanisms, '']);
  return typed(Backend.Authentication, 4 + names.length, (b, o) => {
    b.writeInt32BE(Auth.SASL, o);
    names.copy(b, o + 4);
  });
}

export function authSASLContinue(data: string, final = false): Buffer {
  const d = Buffer.from(data, 'utf8');
  return typed(Backend.Authentication, 4 + d.length, (b, o) => {
    b.writeInt32BE(final ? Auth.SASLFinal : Auth.SASLContinue, o);
    d.copy(b, o + 4);
  });
}

export function parameterStatus(name: string, value: string): Buffer {
  return typedBody(Backend.ParameterStatus, cstrings([name, value]));
}

export function backendKeyData(pid: number, key: number): Buffer {
  return typed(Backend.BackendKeyData, 8, (b, o) => {
    b.writeInt32BE(pid, o);
    b.writeInt32BE(key, o + 4);
  });
}

export function negotiateProtocolVersion(minor: number, unsupported: string[]): Buffer {
  const names = cstrings(unsupported);
  return typed(Backend.NegotiateProtocolVersion, 8 + names.length, (b, o) => {
    b.writeInt32BE(minor, o);
    b.writeInt32BE(unsupported.length, o + 4);
    names.copy(b, o + 8);
  });
}

/** ErrorResponse (or NoticeResponse with `notice`), with optional extra fields keyed by field byte. */
export function errorResponse(
  severity: string,
  sqlstate: string,
  message: string,
  extra?: Map<number, string>,
  notice = false,
): Buffer {
  const fields: [number, string][] = [
    [ErrorField.Severity, severity],
    [ErrorField.SeverityNonLocalized, severity],
    [ErrorField.Code, sqlstate],
    [ErrorField.Message, message],
  ];
  if (extra) {
    for (const [k, v] of extra) {
      if (k !== ErrorField.Severity && k !== ErrorField.SeverityNonLocalized && k !== ErrorField.Code && k !== ErrorField.Message) {
        fields.push([k, v]);
      }
    }
  }
  const parts = fields.map(([k, v]) => Buffer.concat([Buffer.from([k]), Buffer.from(v + '\0', 'utf8')]));
  parts.push(Buffer.from([0]));
  return typedBody(notice ? Backend.NoticeResponse : Backend.ErrorResponse, Buffer.concat(parts));
}

export function query(sql: string): Buffer {
  return typedBody(Frontend.Query, Buffer.from(sql + '\0', 'utf8'));
}

export function startupMessage(params: Record<string, string>): Buffer {
  const kv: string[] = [];
  for (const [k, v] of Object.entries(params)) kv.push(k, v);
  const body = cstrings([...kv, '']);
  const b = Buffer.allocUnsafe(8 + body.length);
  b.writeInt32BE(8 + body.length, 0);
  b.writeInt32BE(StartupCode.Protocol30, 4);
  body.copy(b, 8);
  return b;
}

export function cancelRequest(pid: number, key: number): Buffer {
  const b = Buffer.allocUnsafe(16);
  b.writeInt32BE(16, 0);
  b.writeInt32BE(StartupCode.CancelRequest, 4);
  b.writeInt32BE(pid, 8);
  b.writeInt32BE(key, 12);
  return b;
}

export function passwordMessage(password: string): Buffer {
  return typedBody(Frontend.Password, Buffer.from(password + '\0', 'utf8'));
}

export function saslInitialResponse(mechanism: string, data: string): Buffer {
  const mech = Buffer.from(mechanism + '\0', 'utf8');
  const d = Buffer.from(data, 'utf8');
  return typed(Frontend.Password, mech.length + 4 + d.length, (b, o) => {
    mech.copy(b, o);
    b.writeInt32BE(d.length, o + mech.length);
    d.copy(b, o + mech.length + 4);
  });
}

export function saslResponse(data: string): Buffer {
  return typedBody(Frontend.Password, Buffer.from(data, 'utf8'));
}

export function authCleartext(): Buffer {
  return typed(Backend.Authentication, 4, (b, o) => b.writeInt32BE(Auth.CleartextPassword, o));
}

export const parseComplete = typed(Backend.ParseComplete, 0);
export const closeComplete = typed(Backend.CloseComplete, 0);

export function commandComplete(tag: string): Buffer {
  return typedBody(Backend.CommandComplete, Buffer.from(tag + '\0', 'utf8'));
}

/** RowDescription of text columns, for the few result sets pooler answers itself. */
export function rowDescriptionText(names: string[]): Buffer {
  const parts: Buffer[] = [Buffer.from([0, 0])];
  parts[0]!.writeUInt16BE(names.length, 0);
  for (const n of names) {
    const field = Buffer.alloc(18);
    // table oid 0, column 0, type text (25), size -1, modifier -1, format text
    field.writeInt32BE(25, 6);
    field.writeInt16BE(-1, 10);
    field.writeInt32BE(-1, 12);
    parts.push(Buffer.from(n + '\0', 'utf8'), field);
  }
  return typedBody(Backend.RowDescription, Buffer.concat(parts));
}

/** DataRow of text values (null: SQL NULL). */
export function dataRowText(values: (string | null)[]): Buffer {
  const parts: Buffer[] = [Buffer.alloc(2)];
  parts[0]!.writeUInt16BE(values.length, 0);
  for (const v of values) {
    const len = Buffer.alloc(4);
    if (v === null) {
      len.writeInt32BE(-1, 0);
      parts.push(len);
    } else {
      const b = Buffer.from(v, 'utf8');
      len.writeInt32BE(b.length, 0);
      parts.push(len, b);
    }
  }
  return typedBody(Backend.DataRow, Buffer.concat(parts));
}

/** Parse of `name` from the bytes that follow a name in a client's Parse (query, parameter types). */
export function parseWithName(name: string, afterName: Buffer): Buffer {
  const n = Buffer.byteLength(name);
  return typed(Frontend.Parse, n + 1 + afterName.length, (b, o) => {
    b.write(name, o, 'utf8');
    b[o + n] = 0;
    afterName.copy(b, o + n + 1);
  });
}

/** A copy of a Bind, Describe or Close whose name spans [start, end) of `msg`, with `name` in its place. */
export function withName(msg: Buffer, start: number, end: number, name: string): Buffer {
  const n = Buffer.byteLength(name);
  const out = Buffer.allocUnsafe(msg.length - (end - start) + n);
  msg.copy(out, 0, 0, start);
  out.write(name, start, 'utf8');
  msg.copy(out, start + n, end);
  out.writeInt32BE(out.length - 1, 1);
  return out;
}

export function closeStatement(name: string): Buffer {
  const n = Buffer.byteLength(name);
  return typed(Frontend.Close, n + 2, (b, o) => {
    b[o] = 0x53; // 'S'
    b.write(name, o + 1, 'utf8');
    b[o + 1 + n] = 0;
  });
}

/** A statement that does nothing, yet fails like any other in an aborted transaction (unlike an empty query). */
export const noOpSql = 'DO $pooler$BEGIN END$pooler$';

/** A statement whose only effect is to fail with this SQLSTATE and message, as if PostgreSQL refused the client's. */
export function raiseSql(sqlstate: string, message: string): string {
  const lit = "'" + message.replace(/'/g, "''") + "'";
  return `DO $pooler$BEGIN RAISE EXCEPTION USING ERRCODE = '${sqlstate}', MESSAGE = ${lit}; END$pooler$`;
}

/**
 * Extended-protocol messages that fail with this error at the place of the message they replace: the server
 * aborts the transaction and skips to Sync exactly as for its own error. Uses the unnamed statement and portal.
 */
export function raiseExtended(sqlstate: string, message: string): Buffer {
  const sql = Buffer.from(raiseSql(sqlstate, message) + '\0', 'utf8');
  const parse = typed(Frontend.Parse, 1 + sql.length + 2, (b, o) => {
    b[o] = 0;
    sql.copy(b, o + 1);
    b.writeInt16BE(0, o + 1 + sql.length);
  });
  // Bind: portal "", statement "", 0 parameter formats, 0 parameters, 0 result formats.
  const bind = typed(Frontend.Bind, 8, (b, o) => b.fill(0, o, o + 8));
  // Execute: portal "", no row limit.
  const exec = typed(Frontend.Execute, 5, (b, o) => b.fill(0, o, o + 5));
  return Buffer.concat([parse, bind, exec]);
}
