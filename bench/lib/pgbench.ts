// Runs one pgbench invocation against a host:port and parses the summary it prints.
import { spawn } from 'node:child_process';
import { onProcessExit } from '../../test/cluster/cleanup.ts';
import { signal } from '../../test/cluster/procs.ts';

export const PGBENCH = process.env.PGBENCH ?? '/usr/bin/pgbench';

const running = new Set<number>();

/** SIGKILLs every pgbench still running, so an interrupted bench stops loading the servers before it stops them. */
export function killAllPgbench(): void {
  for (const pid of running) signal(pid, 'SIGKILL');
}

export interface Endpoint {
  host: string;
  port: number;
  db: string;
  user: string;
}

export interface PgbenchResult {
  tps: number;
  latencyMs: number;
  /** transactions that ended in a serialization or deadlock failure (pgbench ≥ 15 counts these separately) */
  failed: number;
  processed: number;
  /** clients pgbench gave up on after a non-retriable error: each one stops sending, so any is a broken run */
  abortedClients: number;
  exitCode: number | null;
  /** pgbench's stderr lines that report errors, for the report */
  errors: string[];
  /** killed because it overran its time limit (a hung proxy); exitCode is then null */
  timedOut: boolean;
  stdout: string;
}

/** Environment without libpq's PG* variables, so only the arguments decide where pgbench connects. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  return env;
}

/** Runs pgbench to completion; kills it if it overruns timeoutMs (a hung proxy must not hang the bench). */
export function pgbench(to: Endpoint, args: string[], timeoutMs: number): Promise<PgbenchResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(PGBENCH, ['-h', to.host, '-p', String(to.port), '-U', to.user, ...args, to.db], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: cleanEnv(),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    const pid = child.pid;
    if (pid !== undefined) running.add(pid);
    // An interrupted bench must not leave pgbench hammering whatever listens on that port next.
    const unregister = onProcessExit(() => pid !== undefined && signal(pid, 'SIGKILL'));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (pid !== undefined) signal(pid, 'SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      unregister();
      reject(new Error(`cannot run ${PGBENCH}: ${err.message}`));
    });
    child.once('close', (code) => {
      if (pid !== undefined) running.delete(pid);
      clearTimeout(timer);
      unregister();
      resolve({ ...parse(stdout, stderr, code), timedOut });
    });
  });
}

function num(text: string, re: RegExp): number {
  const m = re.exec(text);
  return m ? Number(m[1]) : NaN;
}

export function parse(stdout: string, stderr: string, exitCode: number | null): Omit<PgbenchResult, 'timedOut'> {
  const errors = stderr.split('\n').filter((l) => /error|fatal|abort/i.test(l));
  return {
    // -C prints "(including reconnection times)", otherwise "(without initial connection time)": one tps line either way.
    tps: num(stdout, /^tps = ([\d.]+) \((?:without initial connection time|including reconnection times)\)/m),
    latencyMs: num(stdout, /^latency average = ([\d.]+) ms/m),
    // Absent in pgbench < 15, which aborts the client instead of counting a failure.
    failed: num(stdout, /^number of failed transactions: (\d+)/m) || 0,
    processed: num(stdout, /^number of transactions actually processed: (\d+)/m),
    // Counted in the whole stderr: pgbench threads write concurrently, so two messages can share a line.
    // "client 3 script 0 aborted in command 1 query 0: …", "client 3 aborted in command 0 (set) of script 0; …",
    // "client 3 aborted while establishing connection".
    abortedClients: stderr.match(/\bclient \d+ (?:script \d+ )?aborted\b/g)?.length ?? 0,
    exitCode,
    errors,
    stdout,
  };
}
