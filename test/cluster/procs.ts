// Process helpers for fixtures: liveness, process trees, polling, and synchronous waits for exit hooks.
import { readFileSync, readdirSync } from 'node:fs';

function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses; fields are only safe after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

const HAS_PROC = (() => {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
})();

/** True while pid runs; zombies count as dead because orphans may never be reaped in containers. */
export function isAlive(pid: number): boolean {
  if (HAS_PROC) {
    const f = statFields(pid);
    return f !== undefined && f[0] !== 'Z' && f[0] !== 'X';
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Kernel start time of pid (clock ticks since boot), to tell a live owner from a recycled PID. */
export function startTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** All live descendants of pid (children first found breadth-first); empty without /proc. */
export function descendants(pid: number): number[] {
  if (!HAS_PROC) return [];
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const child = Number(entry);
    if (!Number.isInteger(child) || child <= 0) continue;
    const f = statFields(child);
    if (!f || f[0] === 'Z') continue;
    const ppid = Number(f[1]);
    const list = children.get(ppid);
    if (list) list.push(child);
    else children.set(ppid, [child]);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    for (const c of children.get(queue.shift()!) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone: that is what the caller wanted.
  }
}

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Blocks until every pid is dead or timeoutMs passes; only for exit hooks, where nothing async runs. */
export function waitDeadSync(pids: number[], timeoutMs: number): boolean {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (pids.every((p) => !isAlive(p))) return true;
    if (Date.now() > deadline) return false;
    sleepSync(10);
  }
}

export const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls check until it returns a value other than undefined/false, or throws a timeout naming what. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await delay(opts.intervalMs ?? 25);
  }
}

export async function waitDead(pids: number[], timeoutMs: number): Promise<boolean> {
  try {
    await waitFor('processes to exit', () => pids.every((p) => !isAlive(p)), { timeoutMs, intervalMs: 10 });
    return true;
  } catch {
    return false;
  }
}

/** True once pid is in the stopped state (or gone); without /proc we cannot tell and assume the signal landed. */
function stoppedOrGone(pid: number): boolean {
  if (!HAS_PROC) return true;
  const state = statFields(pid)?.[0];
  return state === undefined || state === 'T' || state === 'Z' || state === 'X';
}

/**
 * SIGSTOPs pid and all its descendants. The parent goes first so it forks no new children; a fork it was already in
 * can still complete, so the tree is listed again once everything signalled has stopped, until nothing new shows up.
 * Returns every PID it stopped.
 */
export async function stopTree(pid: number): Promise<number[]> {
  const stopped = [pid];
  signal(pid, 'SIGSTOP');
  for (;;) {
    await waitFor('processes to stop', () => stopped.every(stoppedOrGone), { timeoutMs: 5_000, intervalMs: 5 });
    const fresh = descendants(pid).filter((p) => !stopped.includes(p));
    if (fresh.length === 0) return stopped;
    for (const p of fresh) signal(p, 'SIGSTOP');
    stopped.push(...fresh);
  }
}

/** SIGCONTs pid and all its descendants, children first so the parent wakes to a running tree. */
export function continueTree(pid: number): void {
  for (const p of descendants(pid)) signal(p, 'SIGCONT');
  signal(pid, 'SIGCONT');
}
