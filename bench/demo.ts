// `npm run demo`: a PostgreSQL primary + 2 replicas with the pooler in front, written to and read from through the
// pooler every few seconds, showing where each statement ran.
import pg from 'pg';
import { startCluster, type Cluster } from '../test/cluster/index.ts';
import { startPooler, type PoolerProcess } from '../test/helpers/pooler-process.ts';

const TICK_MS = 3000;
const seconds = Number(process.env.DEMO_SECONDS ?? 0);

const INI = (primaryPort: number, replicaPorts: number[]) => `[databases]
demo = host=127.0.0.1 port=${primaryPort} dbname=postgres replicas=${replicaPorts.map((p) => `127.0.0.1:${p}`).join(',')}

[pooler]
listen_addr = 127.0.0.1
listen_port = \${PORT}
pool_mode = transaction
auth_type = trust
auth_file = \${DIR}/userlist.txt
log_level = info
`;

let cluster: Cluster | undefined;
let pooler: PoolerProcess | undefined;
let timer: NodeJS.Timeout | undefined;
let stopping = false;
let successes = 0;
let logOffset = 0;

function stamp(): string {
  return new Date().toTimeString().slice(0, 8);
}

async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    clearInterval(timer);
    console.log('\nStopping the pooler and PostgreSQL…');
    await pooler?.stop().catch(() => {});
    await cluster?.destroy().catch(() => {});
    console.log('Done: nothing left running.');
  }
  process.exit(code);
}

// Registered first so a Ctrl-C during startup also cleans up; the fixtures' exit hooks are the safety net.
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

/** Pooler output worth showing on the console: warnings, errors and anything that is not a JSON log line. */
function printPoolerOutput(): void {
  if (!pooler) return;
  const text = pooler.logs();
  const end = text.lastIndexOf('\n') + 1;
  for (const line of text.slice(logOffset, end).split('\n')) {
    if (!line.trim()) continue;
    let level = 100;
    try {
      level = Number(JSON.parse(line).level ?? 100);
    } catch {
      // Not JSON (e.g. a crash trace): always show it.
    }
    if (level >= 40) console.log(`  pooler | ${line}`);
  }
  logOffset = Math.max(logOffset, end);
}

async function tick(): Promise<void> {
  printPoolerOutput();
  if (!pooler || !cluster) return;
  const nameOf = new Map(cluster.nodes.map((n) => [n.port, n.name]));
  const client = new pg.Client({
    host: '127.0.0.1',
    port: pooler.port,
    user: 'postgres',
    database: 'demo',
    connectionTimeoutMillis: 2000,
    query_timeout: 2000,
    application_name: 'pooler-demo',
  });
  client.on('error', () => {});
  const t0 = performance.now();
  try {
    await client.connect();
    // A read first (a replica), then a write (the primary), then read-your-writes: the read right after the
    // write goes where the write is already visible, the primary until a replica has replayed it.
    const plain = await client.query('select inet_server_port() as port');
    const note = `tick ${successes + 1} at ${stamp()}`;
    const w = await client.query('insert into demo_items (note) values ($1) returning inet_server_port() as port', [note]);
    const { rows } = await client.query('select count(*)::int as n, inet_server_port() as port from demo_items');
    const ms = (performance.now() - t0).toFixed(1);
    successes++;
    const name = (p: number) => nameOf.get(p) ?? `port ${p}`;
    console.log(
      `[${stamp()}] via pooler: read on ${name(plain.rows[0].port)}, insert on ${name(w.rows[0].port)}, ` +
        `read back ${rows[0].n} rows on ${name(rows[0].port)} (${ms} ms)`,
    );
  } catch (err) {
    console.log(`[${stamp()}] via pooler: query failed: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => {});
  }
}

async function main(): Promise<void> {
  console.log('Starting PostgreSQL: a primary and 2 streaming replicas…');
  const t0 = performance.now();
  cluster = await startCluster({ replicas: 2, name: 'demo' });
  const { primary, replicas } = cluster;
  console.log(`PostgreSQL ready in ${((performance.now() - t0) / 1000).toFixed(1)} s.`);

  await cluster.query(primary, "create role demo login password 'demo'");
  await cluster.query(primary, 'create table demo_items (id serial primary key, note text not null, created_at timestamptz not null default now())');
  await cluster.query(primary, "insert into demo_items (note) values ('hello'), ('from'), ('the primary')");
  await cluster.query(primary, 'grant select, insert, update, delete on demo_items to demo; grant usage on sequence demo_items_id_seq to demo');
  await cluster.waitForReplication();

  try {
    pooler = await startPooler({ ini: INI(primary.port, replicas.map((r) => r.port)), files: { 'userlist.txt': '"postgres" ""\n' } });
  } catch (err) {
    console.log(`\nThe pooler did not start: ${(err as Error).message}\n`);
  }

  console.log('');
  if (pooler) {
    console.log(`Pooler (pid ${pooler.pid}) listening on 127.0.0.1:${pooler.port}, config ${pooler.iniPath}`);
    console.log(`  Connect:  psql -h 127.0.0.1 -p ${pooler.port} -U postgres demo`);
    void pooler.exited.then((code) => {
      if (stopping) return;
      printPoolerOutput();
      console.log(`[${stamp()}] the pooler exited unexpectedly (code ${code}).`);
      pooler = undefined;
    });
  }
  console.log(`  Primary:  psql -h 127.0.0.1 -p ${primary.port} -U postgres postgres`);
  for (const r of replicas) console.log(`  ${r.name}: psql -h 127.0.0.1 -p ${r.port} -U postgres postgres`);
  console.log(`  Table demo_items; user demo (password demo) may read and write it.`);
  console.log(seconds > 0 ? `Stopping by itself after ${seconds} s (DEMO_SECONDS).\n` : 'Press Ctrl-C to stop.\n');

  await tick();
  timer = setInterval(() => void tick(), TICK_MS);
  if (seconds > 0) {
    setTimeout(() => {
      // As a smoke test the demo passes only if the pooler served queries and is still up.
      const ok = pooler !== undefined && successes > 0;
      if (!ok) console.log('Smoke check failed: the pooler did not serve any query or is no longer running.');
      void shutdown(ok ? 0 : 1);
    }, seconds * 1000);
  }
}

main().catch((err: Error) => {
  console.error(`Demo failed: ${err.message}`);
  void shutdown(1);
});
