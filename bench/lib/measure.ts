// One measured pgbench run against one target: pgbench's numbers plus the proxy's CPU per transaction and memory.
import { type BenchCase, pgbenchArgs, SECONDS } from './cases.ts';
import { errorMessages, formatMessages, runFailure } from './outcome.ts';
import { pgbench } from './pgbench.ts';
import { CLK_TCK, cpuTicks, memory } from './procstat.ts';
import type { Target } from './targets.ts';
import type { NodeStatements, RunRecord } from './types.ts';

/** Counts which node ran what during a run (split.ts), for cases on the split cluster. */
export interface StatementCounter {
  reset(): Promise<void>;
  count(): Promise<NodeStatements[]>;
}

function safe<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined; // the proxy died; the run's problems will say so
  }
}

export async function measure(c: BenchCase, target: Target, round: number, counter?: StatementCounter): Promise<RunRecord> {
  const pid = target.pid;
  await counter?.reset();
  const before = pid === undefined ? undefined : safe(() => cpuTicks(pid));
  // Generous: -C and 100 clients spend a while connecting before and after the timed part.
  const timeoutMs = SECONDS * 1000 + 120_000;
  const res = await pgbench(target.endpoint, pgbenchArgs(c), timeoutMs);
  const after = pid === undefined ? undefined : safe(() => cpuTicks(pid));
  const mem = pid === undefined ? undefined : safe(() => memory(pid));
  let statements: NodeStatements[] | null = null;
  let countError: string | undefined;
  try {
    statements = counter ? await counter.count() : null;
  } catch (err) {
    countError = (err as Error).message; // a node went away; the run's numbers still stand
  }

  const cpuUsPerTx =
    before !== undefined && after !== undefined && res.processed > 0 ? (((after - before) / CLK_TCK) * 1e6) / res.processed : NaN;
  const messages = errorMessages(res.errors);
  const problems = [
    // Collapsed: 50 clients failing the same way would otherwise be 50 problems.
    ...(messages.length ? [`pgbench: ${formatMessages(messages)}`] : []),
    ...(res.timedOut ? [`pgbench killed after ${timeoutMs / 1000} s`] : res.exitCode !== 0 ? [`pgbench exited with code ${res.exitCode}`] : []),
    ...(pid !== undefined && mem === undefined ? [`${target.name} process ${pid} is gone`] : []),
    ...target.newProblems().map((l) => `${target.name} log: ${l}`),
    ...(countError === undefined ? [] : [`could not count statements per node: ${countError}`]),
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
    timedOut: res.timedOut,
    cpuUsPerTx,
    rssMb: mem ? mem.rssKb / 1024 : NaN,
    hwmMb: mem ? mem.hwmKb / 1024 : NaN,
    errorMessages: messages,
    firstError: res.errors[0]?.trim() ?? null,
    failure: runFailure(res, c.clients, timeoutMs),
    problems,
    statements,
  };
}
