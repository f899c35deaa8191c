// Micro-benchmark of session-effect detection: ns per sessionEffects() on the hot path and a few hits (`node bench/micro/session.ts`).
import { sessionEffects } from '../../src/sql/session.ts';

const MEASURE_OPS = Number(process.env.BENCH_MICRO_OPS ?? 500_000);

const CASES: [string, string][] = [
  [
    'select',
    "SELECT u.id, u.email, u.created_at, u.reset_at FROM users u JOIN orgs o ON o.id = u.org_id WHERE u.status = 'active' AND o.plan IN ('pro', 'team') ORDER BY u.id LIMIT 50 OFFSET 100 -- list",
  ],
  [
    'update',
    "UPDATE accounts SET balance = balance - 100.50, updated_at = now(), note = E'transfer \\'x\\'' WHERE id = 42 AND balance >= 100.50 /* transfer */ AND NOT frozen AND settings_id = $1",
  ],
  [
    'update-nl',
    'UPDATE accounts\n   SET balance = balance - $1,\n       updated_at = now()\n WHERE id = $2\n   AND balance >= $1\n   AND NOT frozen\nRETURNING id, balance, updated_at, version, owner_id, reset_at, currency, limit_amount',
  ],
  [
    'multi',
    "BEGIN; UPDATE accounts SET balance = balance - 100 WHERE id = 1; UPDATE accounts SET balance = balance + 100 WHERE id = 2; INSERT INTO transfers (src, dst, amount) VALUES (1, 2, 100); COMMIT;",
  ],
  ['set', "SET search_path TO app, public"],
  ['set-local', "BEGIN; SET LOCAL statement_timeout = '5s'; SELECT * FROM orders WHERE customer_id = 42 ORDER BY created_at DESC LIMIT 20; COMMIT"],
  ['execute', 'EXECUTE get_user(42)'],
];

// best of several rounds: on a shared 2-core host other processes inflate single long runs
const ROUNDS = 10;
const ROUND_OPS = Math.ceil(MEASURE_OPS / ROUNDS);
function bestOf(round: () => void): number {
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    round();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / ROUND_OPS);
  }
  return best;
}

let sink = 0;
const run = (q: string): void => {
  const r = sessionEffects(q);
  if (r !== null) sink += r.changesSettings ? 1 : 2;
};

// warm up so the optimizing tiers have compiled the pre-check and the scanner
for (let i = 0; i < 100_000; i++) run(CASES[i % CASES.length]![1]);

console.log('case'.padEnd(10), 'chars'.padStart(6), 'ns/op'.padStart(8), '  result (ns/op: best of', ROUNDS, 'rounds)');
for (const [name, q] of CASES) {
  const ns = bestOf(() => {
    for (let i = 0; i < ROUND_OPS; i++) run(q);
  });
  const r = sessionEffects(q);
  const what = r === null ? 'null' : JSON.stringify(r, (k, v: unknown) => (v === false || v === null ? undefined : k === 'prepared' ? (v as { kind: string }).kind : v));
  console.log(name.padEnd(10), String(q.length).padStart(6), ns.toFixed(0).padStart(8), ' ', what);
}

// Machine-speed reference: the cost of merely reading each character of a 200-character query once (see digest.ts).
const ref = CASES[0]![1];
const readAll = (q: string): number => {
  let x = 0;
  for (let i = 0; i < q.length; i++) x += q.charCodeAt(i);
  return x;
};
for (let i = 0; i < 50_000; i++) sink += readAll(ref);
const base = bestOf(() => {
  for (let i = 0; i < ROUND_OPS; i++) sink += readAll(ref);
});
console.log('read-only'.padEnd(10), String(ref.length).padStart(6), base.toFixed(0).padStart(8), '  (a bare charCodeAt pass)');
if (sink === 42) console.log('');
