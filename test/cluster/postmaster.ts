// Reads a data dir's postmaster.pid and kills or cleans up after the postmaster it names.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cmdline, descendants, isAlive, signal, waitDeadSync } from './procs.ts';

interface PidFile {
  pid: number;
  shmid?: number;
}

export function readPidFile(dataDir: string): PidFile | undefined {
  try {
    const lines = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
    const pid = Number(lines[0]);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    // Line 7 holds the SysV shared memory key and id ("  5432001    32769").
    const shmid = Number(lines[6]?.trim().split(/\s+/)[1]);
    return { pid, shmid: Number.isInteger(shmid) && shmid >= 0 ? shmid : undefined };
  } catch {
    return undefined;
  }
}

/**
 * After a postmaster died without shutting down, its small SysV segment outlives it; PostgreSQL only removes it when
 * restarted on the same dir, so a deleted dir would leak it until reboot.
 */
export function removeLeftoverShm(dataDir: string): void {
  const pf = readPidFile(dataDir);
  if (!pf || pf.shmid === undefined || isAlive(pf.pid)) return;
  try {
    execFileSync('ipcrm', ['-m', String(pf.shmid)], { stdio: 'ignore' });
  } catch {
    // Already gone, or reused by someone else we must not touch (ipcrm then fails for lack of permission).
  }
}

/** SIGKILLs a postmaster and all its children and blocks until they are gone; for exit hooks and sweeps. */
export function killTreeSync(pid: number): void {
  const all = [pid, ...descendants(pid)];
  for (const p of all) signal(p, 'SIGKILL');
  waitDeadSync(all, 3000);
}

/** Kills postmasters of every data dir directly under root that still run from that dir, and frees their shared memory. */
export function reapDataDirs(root: string): void {
  if (!existsSync(root)) return;
  for (const entry of readdirSync(root)) {
    const dataDir = join(root, entry);
    const pf = readPidFile(dataDir);
    if (!pf) continue;
    // PIDs get recycled: only kill a process that really is a postmaster for this dir.
    if (isAlive(pf.pid) && cmdline(pf.pid).includes(dataDir)) killTreeSync(pf.pid);
    removeLeftoverShm(dataDir);
  }
}
