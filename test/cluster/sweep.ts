// Owner markers for fixture temp dirs, and a sweep that reclaims dirs (and their processes) left by runs that were killed.
import { accessSync, constants, existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive, startTime } from './procs.ts';

/**
 * Where fixture dirs live: PG_FIXTURE_TMPDIR, else /dev/shm (tmpfs: copying a data dir there is ~10x faster than onto
 * a VM disk), else the OS temp dir.
 */
export function fixtureRoot(): string {
  const env = process.env.PG_FIXTURE_TMPDIR;
  if (env) return env;
  try {
    accessSync('/dev/shm', constants.W_OK | constants.X_OK);
    if (statSync('/dev/shm').isDirectory()) return '/dev/shm';
  } catch {
    // No usable tmpfs.
  }
  return tmpdir();
}

const OWNER_FILE = 'owner.json';
// A dir without a marker may be one another process is creating right now; only older ones are abandoned.
const UNMARKED_GRACE_MS = 10 * 60_000;

interface Owner {
  pid: number;
  start?: string;
}

export function writeOwner(dir: string): void {
  const owner: Owner = { pid: process.pid, start: startTime(process.pid) };
  writeFileSync(join(dir, OWNER_FILE), JSON.stringify(owner));
}

function ownerAlive(dir: string): boolean {
  const file = join(dir, OWNER_FILE);
  if (!existsSync(file)) {
    try {
      return Date.now() - statSync(dir).mtimeMs < UNMARKED_GRACE_MS;
    } catch {
      return false;
    }
  }
  try {
    const owner = JSON.parse(readFileSync(file, 'utf8')) as Owner;
    // A recycled PID has a different start time, so it does not keep a dead run's dir alive.
    return isAlive(owner.pid) && (owner.start === undefined || startTime(owner.pid) === owner.start);
  } catch {
    return false;
  }
}

/** Reaps every `prefix*` dir in root whose owner process is gone: reap() kills what ran there, then the dir goes. */
export function sweepStale(root: string, prefix: string, reap: (dir: string) => void): void {
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return;
  }
  for (const entry of entries) {
    if (!entry.startsWith(prefix)) continue;
    const dir = join(root, entry);
    if (ownerAlive(dir)) continue;
    try {
      reap(dir);
    } catch {
      // Keep sweeping; a dir we cannot reap now may be reaped next time.
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
