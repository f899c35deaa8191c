// One measured pgbench run against one target: pgbench's numbers plus the proxy's CPU per transaction and memory.
import { type BenchCase, pgbenchArgs, SECONDS } from './cases.ts';
import { pgbench } from './pgbench.ts';
import { CLK_TCK, cpuTicks, memory } from './procstat.ts';
import type { Target } from './targets.ts';
import type { RunRecord } from './types.ts';

function safe<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined; // the proxy died; the run's problems will say so
  }
}

export async function measure(c: BenchCase, target: Target, round: number): Promise<RunRecord> {
  const pid = target.pid;
  const before = pid === undefined ? undefined : safe(() => cpuTicks(pid));
  // Generous: -C and 100 clients spend a while connecting before and after the timed part.
  const res = await pgbench(target.endpoint, pgbenchArgs(c), SECONDS * 1000 + 120_000);
  const after = pid === undefined ? undefined : safe(() => cpuTicks(pid));
  const mem = pid === undefined ? undefined : safe(() => memory(pid));

  const cpuUsPerTx =
    before !== undefined && after !== undefined && res.processed > 0 ? (((after - before) / CLK_TCK) * 1e6) / res.processed : NaN;
  const problems = [
    ...res.errors.map((e) => `pgbench: ${e}`),
    ...(res.exitCode !== 0 ? [`pgbench exited with code ${res.exitCode}`] : []),
    ...(pid !== undefined && mem === undefined ? [`${target.name} process ${pid} is gone`] : []),
    ...target.newProblems().map((l) => `${target.name} log: ${l}`),
  ];
  return {
    caseId: c.id,
    target: target.name,
    round,
    tps: res.tps,
    latencyMs: res.latencyMs,
    failed: res.failed,
    processed: res.processed,
    abortedClients: res.abortedClients,
    exitCode: res.exitCode,
    cpuUsPerTx,
    rssMb: mem ? mem.rssKb / 1024 : NaN,
    hwmMb: mem ? mem.hwmKb / 1024 : NaN,
    problems,
  };
}
