// Reads a process's CPU time and memory from /proc, to charge a proxy's cost to the transactions it carried.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second, the unit of utime/stime in /proc/PID/stat. */
export const CLK_TCK: number = (() => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    if (Number.isFinite(n) && n > 0) return n;
  } catch {
    // getconf missing: Linux has used 100 on every common architecture for decades.
  }
  return 100;
})();

/** utime + stime of pid in clock ticks (stat fields 14 and 15); the thread-group leader's entry sums all threads. */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces and parentheses; count fields after the last ')' instead.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3, so field N is rest[N - 3].
  return Number(rest[11]) + Number(rest[12]);
}

export interface Memory {
  /** resident set size now (VmRSS), in KiB */
  rssKb: number;
  /** peak resident set size since the process started (VmHWM), in KiB */
  hwmKb: number;
}

export function memory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
}
