// Decodes the untyped startup-phase packets a client sends before it is logged in.

import { StartupCode } from '../protocol/codes.ts';
import { Cursor } from '../protocol/read.ts';
import { ErrorCodes, PoolerError } from '../errors.ts';

/** PostgreSQL's own limit on a startup packet (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET = 10000;

export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; pid: number; key: number }
  | { kind: 'startup'; minor: number; params: Map<string, string>; unsupportedOptions: string[] };

/** Length of the packet at the head of `buf`, or -1 when more bytes are needed. Throws on a bad length. */
export function startupPacketLength(buf: Buffer): number {
  if (buf.length < 4) return -1;
  const len = buf.readInt32BE(0);
  if (len < 8 || len > MAX_STARTUP_PACKET) {
    throw new PoolerError(ErrorCodes.protocolViolation, `invalid startup packet length ${len}`);
  }
  return buf.length >= len ? len : -1;
}

export function parseStartupPacket(packet: Buffer): StartupPacket {
  const c = new Cursor(packet, 4);
  const code = c.int32();
  if (code === StartupCode.SSLRequest && packet.length === 8) return { kind: 'ssl' };
  if (code === StartupCode.GSSENCRequest && packet.length === 8) return { kind: 'gssenc' };
  if (code === StartupCode.CancelRequest) {
    if (packet.length !== 16) throw new PoolerError(ErrorCodes.protocolViolation, 'invalid cancel request length');
    return { kind: 'cancel', pid: c.int32(), key: c.int32() };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) {
    throw new PoolerError(ErrorCodes.unsupportedProtocol, `unsupported frontend protocol ${major}.${minor}: server supports 3.0`);
  }
  const params = new Map<string, string>();
  const unsupportedOptions: string[] = [];
  try {
    for (;;) {
      const name = c.cstring();
      if (name === '') break;
      const value = c.cstring();
      // Protocol extension options (_pq_.*) are not supported; they are reported back, not applied.
      if (name.startsWith('_pq_.')) unsupportedOptions.push(name);
      else params.set(name, value);
    }
  } catch {
    throw new PoolerError(ErrorCodes.protocolViolation, 'invalid startup packet layout: expected terminator as last byte');
  }
  if (c.pos !== packet.length) {
    throw new PoolerError(ErrorCodes.protocolViolation, 'invalid startup packet layout: expected terminator as last byte');
  }
  return { kind: 'startup', minor, params, unsupportedOptions };
}

/**
 * Settings carried in the `options` startup parameter (`-c name=value`, `--name=value`), as PostgreSQL
 * reads them: whitespace separates arguments, a backslash escapes the next character.
 */
export function parseOptions(options: string): Map<string, string> {
  const args: string[] = [];
  let cur = '';
  let inArg = false;
  for (let i = 0; i < options.length; i++) {
    const ch = options[i]!;
    if (ch === '\\' && i + 1 < options.length) {
      cur += options[++i];
      inArg = true;
    } else if (/\s/.test(ch)) {
      if (inArg) args.push(cur);
      cur = '';
      inArg = false;
    } else {
      cur += ch;
      inArg = true;
    }
  }
  if (inArg) args.push(cur);
  const out = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    let kv: string | undefined;
    const a = args[i]!;
    if (a === '-c') kv = args[++i];
    else if (a.startsWith('-c')) kv = a.slice(2);
    else if (a.startsWith('--')) kv = a.slice(2);
    if (kv === undefined) continue;
    const eq = kv.indexOf('=');
    if (eq > 0) out.set(kv.slice(0, eq).replace(/-/g, '_'), kv.slice(eq + 1));
  }
  return out;
}
