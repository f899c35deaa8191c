// A statement flood from its own process (so it does not share an event loop with what the test measures):
// `node flood.ts <port> <clients> <ms> <sql with {n}>` runs the statement from each client as fast as it can,
// with {n} replaced by a counter, and prints {"outcomes": {ok | SQLSTATE: count}, "elapsedMs": n} on stdout.
import pg from 'pg';

const [port, clients, ms, template] = [Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4]), process.argv[5]!];
const conns = await Promise.all(
  Array.from({ length: clients }, async () => {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'app' });
    c.on('error', () => {});
    await c.connect();
    return c;
  }),
);
// Ready: the parent starts its clock (and its own measurements) on this line.
process.stdout.write('ready\n');
const outcomes: Record<string, number> = {};
const t0 = performance.now();
const deadline = t0 + ms;
await Promise.all(
  conns.map(async (c, i) => {
    for (let n = 0; performance.now() < deadline; n++) {
      let code = 'ok';
      try {
        await c.query(template.replace('{n}', String(i * 1_000_000 + n)));
      } catch (e) {
        code = (e as { code?: string }).code ?? 'error';
      }
      outcomes[code] = (outcomes[code] ?? 0) + 1;
    }
  }),
);
const elapsedMs = performance.now() - t0;
await Promise.all(conns.map((c) => c.end().catch(() => {})));
process.stdout.write(`${JSON.stringify({ outcomes, elapsedMs })}\n`);
