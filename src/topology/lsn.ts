// PostgreSQL WAL positions ('16/B374D848') as 64-bit bigints, so they can be compared and subtracted.

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;
const MAX_LSN = (1n << 64n) - 1n;

/** Parse PostgreSQL's `pg_lsn` text form: two hex halves of at most 8 digits each. */
export function parseLsn(text: string): bigint {
  const m = LSN_TEXT.exec(text);
  if (!m) {
    throw new Error(`invalid LSN ${JSON.stringify(text)}: expected X/Y with 1 to 8 hex digits on each side, such as 16/B374D848`);
  }
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** The text PostgreSQL prints for an LSN: upper-case hex halves without zero padding. */
export function formatLsn(lsn: bigint): string {
  if (lsn < 0n || lsn > MAX_LSN) throw new RangeError(`LSN out of range: ${lsn}`);
  const hi = lsn >> 32n;
  const lo = lsn & 0xffffffffn;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}
