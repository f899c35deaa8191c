// Runs PostgreSQL programs as the `postgres` OS user when we are root, because the server refuses to run as root.
import { execFile } from 'node:child_process';
import { chownSync, readFileSync } from 'node:fs';

export interface ServerUser {
  uid: number;
  gid: number;
}

let cached: ServerUser | undefined | null = null;

/** uid/gid to run server programs as, or undefined when we are not root and can run them ourselves. */
export function serverUser(): ServerUser | undefined {
  if (cached !== null) return cached;
  if (process.getuid?.() !== 0) return (cached = undefined);
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('Running as root but there is no `postgres` OS user to run the PostgreSQL server as.');
  const [, , uid, gid] = line.split(':');
  return (cached = { uid: Number(uid), gid: Number(gid) });
}

export function chownForServer(path: string): void {
  const u = serverUser();
  if (u) chownSync(path, u.uid, u.gid);
}

/** Environment for server programs: ours without libpq's PG* variables, which would redirect pg_basebackup and friends. */
export function serverEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env.HOME = home;
  return env;
}

/** Spawn options that make a child run as the server user. Node spawns it directly, so its PID is the program's own. */
export function asServer(cwd: string): { uid?: number; gid?: number; cwd: string; env: NodeJS.ProcessEnv } {
  const u = serverUser();
  return { ...(u ? { uid: u.uid, gid: u.gid } : {}), cwd, env: serverEnv(cwd) };
}

/** Runs a short server-side tool (initdb, pg_basebackup) to completion as the server user. */
export function runTool(file: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { ...asServer(cwd), maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}
