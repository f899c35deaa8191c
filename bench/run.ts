// `npm run bench`: pgbench against PostgreSQL directly, through pooler and through PgBouncer, interleaved, with a markdown/JSON report.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster, type Cluster } from '../test/cluster/index.ts';
import { startPooler, type PoolerProcess } from '../test/helpers/pooler-process.ts';
import { poolerIni } from '../test/integration/harness.ts';
import { MAX_CLIENT_CONN, POOL_SIZE, ROUNDS, SCALE, SECONDS, SELECTED_CASES, THREADS, type BenchCase } from './lib/cases.ts';
import { describeMachine } from './lib/machine.ts';
import { measure } from './lib/measure.ts';
import { killAllPgbench, pgbench } from './lib/pgbench.ts';
import { ensurePgbouncer, startPgbouncer, type Pgbouncer } from './lib/pgbouncer.ts';
import { failures, markdown, ratios, summarize } from './lib/report.ts';
import { directTarget, pgbouncerTarget, poolerTarget, type Target } from './lib/targets.ts';
import type { BenchConfig, RunRecord } from './lib/types.ts';
import { formatScannerBench, runScannerBench, type ScannerBenchResult } from './micro/scanner.ts';

const RESULTS = join(dirname(fileURLToPath(import.meta.url)), 'results');
const WARMUP_SECONDS = 3;

let cluster: Cluster | undefined;
let pooler: PoolerProcess | undefined;
let bouncer: Pgbouncer | undefined;
let cleaning: Promise<void> | undefined;
let interrupted = false;

/** Stops everything this run started; safe to call twice. The fixtures' exit hooks are the last-resort net. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.allSettled([pooler?.stop(), bouncer?.stop()]);
    await cluster?.destroy().catch(() => {});
  })();
  return cleaning;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${sig}: stopping pgbench, pooler, PgBouncer and PostgreSQL…`);
    killAllPgbench();
    void cleanup().finally(() => process.exit(130));
  });
}

const log = (msg: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** What pgbench would do before a run without -n, done directly so it costs no proxy anything. */
async function prepare(c: BenchCase): Promise<void> {
  if (!c.writes || !cluster) return;
  for (const sql of ['VACUUM pgbench_branches', 'VACUUM pgbench_tellers', 'TRUNCATE pgbench_history', 'CHECKPOINT']) {
    await cluster.query(cluster.primary, sql);
  }
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const startedAt = new Date(t0).toISOString();
  const bouncerBin = await ensurePgbouncer();
  // Before anything else runs, so the micro-benchmark has the CPUs to itself.
  let micro: ScannerBenchResult | undefined;
  if (process.env.BENCH_MICRO === '1') {
    micro = runScannerBench();
    log(formatScannerBench(micro));
  }

  log('starting PostgreSQL');
  cluster = await startCluster({ replicas: 0, name: 'bench' });
  const direct = directTarget(cluster);
  log(`pgbench -i -s ${SCALE}`);
  const init = await pgbench(direct.endpoint, ['-i', '-s', String(SCALE), '-q'], 600_000);
  if (init.exitCode !== 0) throw new Error(`pgbench -i failed:\n${init.errors.join('\n')}`);

  pooler = await startPooler({
    ini: poolerIni(cluster, {
      settings: {
        log_level: 'warn',
        default_pool_size: POOL_SIZE,
        max_client_conn: MAX_CLIENT_CONN,
        ignore_startup_parameters: 'extra_float_digits',
      },
    }),
    files: { 'userlist.txt': '"postgres" ""\n' },
  });
  const targets: Target[] = [direct, poolerTarget(pooler)];
  if (bouncerBin) {
    bouncer = await startPgbouncer({
      bin: bouncerBin,
      serverHost: cluster.primary.host,
      serverPort: cluster.primary.port,
      poolSize: POOL_SIZE,
      maxClientConn: MAX_CLIENT_CONN,
    });
    targets.push(pgbouncerTarget(bouncer));
  }
  const machine = await describeMachine(cluster, bouncerBin);
  console.log(
    `Machine: nproc ${machine.nproc} (${machine.cpu}), Node ${machine.node}, PostgreSQL ${machine.postgres}, ${machine.pgbench}, ${machine.pgbouncer}`,
  );

  // Fills shared buffers and lets pooler's JIT settle, so the first measured target is not the one paying for it.
  for (const t of targets) {
    log(`warm-up ${t.name} (${WARMUP_SECONDS} s)`);
    const r = await pgbench(t.endpoint, ['-S', '-n', '-c', '10', '-j', String(THREADS), '-T', String(WARMUP_SECONDS)], 120_000);
    if (r.exitCode !== 0) throw new Error(`warm-up against ${t.name} failed:\n${r.errors.join('\n')}`);
    t.newProblems(); // warm-up noise is not a run's problem
  }

  const runs: RunRecord[] = [];
  const total = SELECTED_CASES.length * ROUNDS * targets.length;
  for (const c of SELECTED_CASES) {
    for (let round = 1; round <= ROUNDS; round++) {
      for (const t of targets) {
        if (interrupted) return;
        await prepare(c);
        const r = await measure(c, t, round);
        runs.push(r);
        const cpu = Number.isFinite(r.cpuUsPerTx) ? `, ${r.cpuUsPerTx.toFixed(1)} µs/tx` : '';
        log(
          `[${runs.length}/${total}] ${c.id} round ${round} ${t.name}: ${r.tps.toFixed(0)} tps, ${r.latencyMs} ms, ${r.failed} failed${cpu}` +
            (r.failure ? ` — FAILED: ${r.failure}` : r.problems.length ? ` — ${r.problems.length} problem(s): ${r.problems[0]}` : ''),
        );
      }
    }
  }

  const config: BenchConfig = { seconds: SECONDS, rounds: ROUNDS, scale: SCALE, threads: THREADS, poolSize: POOL_SIZE };
  const summaries = summarize(SELECTED_CASES, targets.map((t) => t.name), runs);
  const rat = ratios(SELECTED_CASES, summaries, { direct: 'PostgreSQL (direct)', pooler: 'pooler', pgbouncer: machine.pgbouncer });
  const failed = failures(SELECTED_CASES, runs);
  const problems = runs.flatMap((r) => r.problems.map((p) => `${r.caseId} round ${r.round} ${r.target}: ${p}`));
  const durationS = (Date.now() - t0) / 1000;
  let md = markdown({ machine, config, summaries, ratios: rat, startedAt, durationS, failures: failed, problems });
  if (micro) md += `\n${formatScannerBench(micro)}\n`;
  console.log('\n' + md);

  mkdirSync(RESULTS, { recursive: true });
  // ISO 8601 basic format (20250102T030405Z): a timestamp without the colons some file systems reject.
  const jsonPath = join(RESULTS, `${startedAt.replace(/[-:]/g, '').replace(/\.\d+/, '')}.json`);
  // NaN is not JSON; null says "not measured" (direct has no proxy process).
  const json = JSON.stringify(
    { startedAt, durationS, machine, config, cases: SELECTED_CASES, summaries, ratios: rat, runs, failures: failed, problems, micro },
    (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v),
    2,
  );
  writeFileSync(jsonPath, json + '\n');
  writeFileSync(join(RESULTS, 'latest.md'), md);
  log(`wrote ${jsonPath} and ${join(RESULTS, 'latest.md')}`);
}

try {
  await main();
  await cleanup();
} catch (err) {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  await cleanup();
  process.exitCode = 1;
}
