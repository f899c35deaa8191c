// `npm run bench`: pgbench against PostgreSQL directly, through pooler and through PgBouncer, interleaved, with a markdown/JSON report.
// Cases marked `replicas` run last, on a second cluster with 2 streaming replicas: read/write splitting and its costs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster, type Cluster } from '../test/cluster/index.ts';
import { startPooler, type PoolerProcess } from '../test/helpers/pooler-process.ts';
import { poolerIni } from '../test/integration/harness.ts';
import { MAX_CLIENT_CONN, POOL_SIZE, ROUNDS, SCALE, SECONDS, SELECTED_CASES, THREADS, type BenchCase } from './lib/cases.ts';
import { describeMachine } from './lib/machine.ts';
import { measure, type StatementCounter } from './lib/measure.ts';
import { killAllPgbench, pgbench } from './lib/pgbench.ts';
import { ensurePgbouncer, startPgbouncer } from './lib/pgbouncer.ts';
import { failures, markdown, ratios, rywCosts, splitGoals, summarize } from './lib/report.ts';
import { countStatements, formatShares, installStatementCounting, resetStatements, SPLIT_CLUSTER_SETTINGS } from './lib/split.ts';
import { directTarget, pgbouncerTarget, poolerTarget, type Target } from './lib/targets.ts';
import type { BenchConfig, Machine, RunRecord, TargetName } from './lib/types.ts';
import { formatScannerBench, runScannerBench, type ScannerBenchResult } from './micro/scanner.ts';

const RESULTS = join(dirname(fileURLToPath(import.meta.url)), 'results');
const WARMUP_SECONDS = 3;
const DEFAULT_TARGETS: TargetName[] = ['direct', 'pooler', 'pgbouncer'];

/** What is running now; a phase stops its own before the next one starts. */
const proxies = new Set<{ stop(): Promise<unknown> }>();
const clusters = new Set<Cluster>();
let cleaning: Promise<void> | undefined;
let interrupted = false;

async function teardown(): Promise<void> {
  const ps = [...proxies];
  proxies.clear();
  await Promise.allSettled(ps.map((p) => p.stop()));
  const cs = [...clusters];
  clusters.clear();
  await Promise.allSettled(cs.map((c) => c.destroy()));
}

/** Stops everything this run started; safe to call twice. The fixtures' exit hooks are the last-resort net. */
function cleanup(): Promise<void> {
  cleaning ??= teardown();
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
async function prepare(c: BenchCase, cluster: Cluster): Promise<void> {
  if (c.writes) {
    for (const sql of ['VACUUM pgbench_branches', 'VACUUM pgbench_tellers', 'TRUNCATE pgbench_history', 'CHECKPOINT']) {
      await cluster.query(cluster.primary, sql);
    }
  }
  // A replica still replaying the previous run's writes would be busy, or too far behind for pooler to use it.
  if (cluster.replicas.length) await cluster.waitForReplication({ timeoutMs: 120_000 });
}

async function launchPooler(cluster: Cluster, settings: Record<string, string | number>, appExtra?: string): Promise<PoolerProcess> {
  const pooler = await startPooler({
    ini: poolerIni(cluster, {
      settings: {
        log_level: 'warn',
        default_pool_size: POOL_SIZE,
        max_client_conn: MAX_CLIENT_CONN,
        ignore_startup_parameters: 'extra_float_digits',
        ...settings,
      },
      ...(appExtra ? { appExtra } : {}),
    }),
    files: { 'userlist.txt': '"postgres" ""\n' },
  });
  proxies.add(pooler);
  return pooler;
}

/** The targets a case runs against here: its own list (default all three), less PgBouncer when it is not installed. */
function targetsOf(c: BenchCase, bouncerBin: string | undefined): TargetName[] {
  return (c.targets ?? DEFAULT_TARGETS).filter((t) => t !== 'pgbouncer' || bouncerBin !== undefined);
}

let machine: Machine | undefined;
const runs: RunRecord[] = [];

/**
 * Starts a cluster (with 2 replicas and statement counting when split) and the targets the cases need, runs the
 * cases interleaved by round and target, and stops it all again. Returns false when interrupted.
 */
async function runPhase(cases: BenchCase[], split: boolean, bouncerBin: string | undefined, total: number): Promise<boolean> {
  log(split ? 'starting PostgreSQL with 2 streaming replicas' : 'starting PostgreSQL');
  const cluster = split
    ? await startCluster({ replicas: 2, name: 'bench-split', settings: SPLIT_CLUSTER_SETTINGS })
    : await startCluster({ replicas: 0, name: 'bench' });
  clusters.add(cluster);
  const direct = directTarget(cluster);
  log(`pgbench -i -s ${SCALE}${split ? ' (replicated to 2 replicas)' : ''}`);
  const init = await pgbench(direct.endpoint, ['-i', '-s', String(SCALE), '-q'], 600_000);
  if (init.exitCode !== 0) throw new Error(`pgbench -i failed:\n${init.errors.join('\n')}`);
  if (split) await installStatementCounting(cluster);

  const needed = new Set(cases.flatMap((c) => targetsOf(c, bouncerBin)));
  const replicas = `replicas=${cluster.replicas.map((r) => `${r.host}:${r.port}`).join(',')}`;
  const targets = new Map<TargetName, Target>();
  if (needed.has('direct')) targets.set('direct', direct);
  if (needed.has('pooler')) {
    // Spelled out on the split cluster: the case prices client against off, whatever the default becomes.
    const pooler = split ? await launchPooler(cluster, { read_your_writes: 'client' }, replicas) : await launchPooler(cluster, {});
    targets.set('pooler', poolerTarget(pooler));
  }
  if (needed.has('pooler-ryw-off')) {
    targets.set('pooler-ryw-off', poolerTarget(await launchPooler(cluster, { read_your_writes: 'off' }, replicas), 'pooler-ryw-off'));
  }
  if (needed.has('pgbouncer') && bouncerBin) {
    const bouncer = await startPgbouncer({
      bin: bouncerBin,
      serverHost: cluster.primary.host,
      serverPort: cluster.primary.port,
      poolSize: POOL_SIZE,
      maxClientConn: MAX_CLIENT_CONN,
    });
    proxies.add(bouncer);
    targets.set('pgbouncer', pgbouncerTarget(bouncer));
  }
  if (!machine) {
    machine = await describeMachine(cluster, bouncerBin);
    console.log(
      `Machine: nproc ${machine.nproc} (${machine.cpu}), Node ${machine.node}, PostgreSQL ${machine.postgres}, ${machine.pgbench}, ${machine.pgbouncer}`,
    );
  }

  // Fills shared buffers (the replicas' too, through pooler) and lets pooler's JIT settle, so the first measured
  // target is not the one paying for it.
  for (const t of targets.values()) {
    log(`warm-up ${t.name} (${WARMUP_SECONDS} s)`);
    const r = await pgbench(t.endpoint, ['-S', '-n', '-c', '10', '-j', String(THREADS), '-T', String(WARMUP_SECONDS)], 120_000);
    if (r.exitCode !== 0) throw new Error(`warm-up against ${t.name} failed:\n${r.errors.join('\n')}`);
    t.newProblems(); // warm-up noise is not a run's problem
  }

  const counter: StatementCounter | undefined = split
    ? { reset: () => resetStatements(cluster), count: () => countStatements(cluster) }
    : undefined;
  for (const c of cases) {
    for (let round = 1; round <= ROUNDS; round++) {
      // On the split cluster even rounds go in reverse: the read-your-writes pair differs by a few percent, and the
      // target that runs second always inherits the first one's dead rows and replica replay.
      const order = split && round % 2 === 0 ? targetsOf(c, bouncerBin).reverse() : targetsOf(c, bouncerBin);
      for (const name of order) {
        if (interrupted) return false;
        const t = targets.get(name)!;
        await prepare(c, cluster);
        const r = await measure(c, t, round, counter);
        runs.push(r);
        const cpu = Number.isFinite(r.cpuUsPerTx) ? `, ${r.cpuUsPerTx.toFixed(1)} µs/tx` : '';
        const where = r.statements ? `, ${formatShares(r.statements)}` : '';
        log(
          `[${runs.length}/${total}] ${c.id} round ${round} ${t.name}: ${r.tps.toFixed(0)} tps, ${r.latencyMs} ms, ${r.failed} failed${cpu}${where}` +
            (r.failure ? ` — FAILED: ${r.failure}` : r.problems.length ? ` — ${r.problems.length} problem(s): ${r.problems[0]}` : ''),
        );
      }
    }
  }
  await teardown();
  return true;
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

  const total = SELECTED_CASES.reduce((n, c) => n + ROUNDS * targetsOf(c, bouncerBin).length, 0);
  // Replicas cost seconds to start and CPU to replay writes: the plain cases never run beside them.
  const plain = SELECTED_CASES.filter((c) => !c.replicas);
  const split = SELECTED_CASES.filter((c) => c.replicas);
  if (plain.length && !(await runPhase(plain, false, bouncerBin, total))) return;
  if (split.length && !(await runPhase(split, true, bouncerBin, total))) return;
  if (!machine) return;

  const config: BenchConfig = { seconds: SECONDS, rounds: ROUNDS, scale: SCALE, threads: THREADS, poolSize: POOL_SIZE };
  const summaries = summarize(SELECTED_CASES, DEFAULT_TARGETS, runs);
  const labels: Record<TargetName, string> = {
    direct: 'PostgreSQL (direct)',
    pooler: 'pooler',
    pgbouncer: machine.pgbouncer,
    'pooler-ryw-off': 'pooler (read_your_writes = off)',
  };
  const rat = ratios(SELECTED_CASES, summaries, labels);
  const ryw = rywCosts(SELECTED_CASES, summaries, labels);
  const goals = splitGoals(SELECTED_CASES, summaries);
  const failed = failures(SELECTED_CASES, runs);
  const problems = runs.flatMap((r) => r.problems.map((p) => `${r.caseId} round ${r.round} ${r.target}: ${p}`));
  const durationS = (Date.now() - t0) / 1000;
  let md = markdown({ machine, config, summaries, ratios: rat, startedAt, durationS, failures: failed, problems, rywCosts: ryw, splitGoals: goals });
  if (micro) md += `\n${formatScannerBench(micro)}\n`;
  console.log('\n' + md);

  mkdirSync(RESULTS, { recursive: true });
  // ISO 8601 basic format (20250102T030405Z): a timestamp without the colons some file systems reject.
  const jsonPath = join(RESULTS, `${startedAt.replace(/[-:]/g, '').replace(/\.\d+/, '')}.json`);
  // NaN is not JSON; null says "not measured" (direct has no proxy process).
  const json = JSON.stringify(
    {
      startedAt,
      durationS,
      machine,
      config,
      cases: SELECTED_CASES,
      summaries,
      ratios: rat,
      readYourWrites: ryw,
      splitGoals: goals,
      runs,
      failures: failed,
      problems,
      micro,
    },
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
