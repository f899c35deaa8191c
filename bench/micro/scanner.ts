// Micro-benchmark of MessageScanner: throughput on a realistic server result stream (`node bench/micro/scanner.ts`).
import { MessageScanner, typeSet, type ScanSink } from '../../src/protocol/scanner.ts';

const CHUNK = 64 * 1024;
const ROWS = 1000;
const MEASURE_MS = Number(process.env.BENCH_MICRO_MS ?? 2000);

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

const COLUMNS: [string, number][] = [
  ['id', 23], // int4
  ['name', 25], // text
  ['email', 25],
  ['created_at', 1184], // timestamptz
];

function rowDescription(): Buffer {
  const fields = COLUMNS.map(([name, oid]) =>
    Buffer.concat([Buffer.from(name + '\0'), int32(16384), int16(0), int32(oid), int16(-1), int32(-1), int16(0)]),
  );
  return message('T', Buffer.concat([int16(COLUMNS.length), ...fields]));
}

/** A DataRow of about 100 bytes, like a small table row in text format. */
function dataRow(i: number): Buffer {
  const values = [String(i), `user name number ${i}`.padEnd(24, '.'), `user${i}@example.com`.padEnd(28, '.'), '2024-05-17 12:34:56.789+00'];
  return message('D', Buffer.concat([int16(values.length), ...values.flatMap((v) => [int32(Buffer.byteLength(v)), Buffer.from(v)])]));
}

/** One query's reply: RowDescription, ROWS DataRows, CommandComplete, ReadyForQuery. */
function resultStream(): { bytes: Buffer; messages: number } {
  const parts = [rowDescription()];
  for (let i = 0; i < ROWS; i++) parts.push(dataRow(i));
  parts.push(message('C', Buffer.from(`SELECT ${ROWS}\0`)), message('Z', Buffer.from('I')));
  return { bytes: Buffer.concat(parts), messages: parts.length };
}

export interface ScannerBenchResult {
  mbPerS: number;
  nsPerMessage: number;
  bytes: number;
  messages: number;
  rowBytes: number;
}

export function runScannerBench(): ScannerBenchResult {
  const one = resultStream();
  // Several replies back to back so chunk boundaries fall at varying offsets within messages, as on a real socket.
  const copies = 16;
  const stream = Buffer.concat(Array.from({ length: copies }, () => one.bytes));
  const chunks: Buffer[] = [];
  for (let off = 0; off < stream.length; off += CHUNK) chunks.push(stream.subarray(off, off + CHUNK));
  const messagesPerPass = one.messages * copies;

  let forwarded = 0;
  let inspected = 0;
  const sink: ScanSink = {
    inspectAll: false,
    inspect: () => {
      inspected++;
      return true;
    },
    forward: (b) => {
      forwarded += b.length;
    },
    malformed: (err) => {
      throw err;
    },
  };
  const inspect = typeSet(['Z'.charCodeAt(0), 'S'.charCodeAt(0)]);
  // The stream's messages are all below 1 KiB; the limit only has to let them through.
  const scanner = new MessageScanner(inspect, 256 * 1024 * 1024, sink);
  const pass = () => {
    for (const c of chunks) scanner.push(c);
  };

  pass();
  if (forwarded !== stream.length || inspected !== copies || !scanner.atBoundary) {
    throw new Error(`scanner lost bytes: forwarded ${forwarded} of ${stream.length}, inspected ${inspected} of ${copies}`);
  }
  // Warm-up so the timed loop measures optimized code.
  const warmUntil = performance.now() + 300;
  while (performance.now() < warmUntil) pass();

  let passes = 0;
  const start = performance.now();
  let now = start;
  while (now - start < MEASURE_MS) {
    pass();
    passes++;
    now = performance.now();
  }
  const seconds = (now - start) / 1000;
  return {
    mbPerS: (stream.length * passes) / seconds / 1e6,
    nsPerMessage: (seconds * 1e9) / (messagesPerPass * passes),
    bytes: stream.length,
    messages: messagesPerPass,
    rowBytes: dataRow(0).length,
  };
}

export function formatScannerBench(r: ScannerBenchResult): string {
  return (
    `MessageScanner: ${r.mbPerS.toFixed(0)} MB/s, ${r.nsPerMessage.toFixed(1)} ns/message ` +
    `(${r.messages} messages, ${(r.bytes / 1e6).toFixed(2)} MB per pass in ${CHUNK / 1024} KiB chunks, DataRow ${r.rowBytes} B, inspecting 'Z' and 'S')`
  );
}

if (import.meta.main) console.log(formatScannerBench(runScannerBench()));
