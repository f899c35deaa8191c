// Finds (installing it from Debian if need be) and runs a PgBouncer that this process owns, as the yardstick for pooler.
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { onProcessExit } from '../../test/cluster/cleanup.ts';
import { freePort } from '../../test/cluster/ports.ts';
import { cmdline, delay, isAlive, signal, waitDead } from '../../test/cluster/procs.ts';
import { asServer, chownForServer } from '../../test/cluster/osuser.ts';
import { sweepStale, writeOwner } from '../../test/cluster/sweep.ts';
import { tcpReachable } from './net.ts';

const run = promisify(execFile);
const DIR_PREFIX = 'pooler-bench-pgbouncer-';
const PID_FILE = 'pgbouncer.pid.bench';

export interface Pgbouncer {
  host: '127.0.0.1';
  port: number;
  /** PgBouncer's own PID (spawned directly, no su/runuser in between), for /proc readings and signals */
  pid: number;
  logFile: string;
  stop(): Promise<void>;
}

function findOnPath(name: string): string | undefined {
  // Debian puts pgbouncer in /usr/sbin, which a non-login shell's PATH may lack.
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const d of dirs) {
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The pgbouncer binary, installed with apt-get when missing and we are root; undefined (after saying why) otherwise. */
export async function ensurePgbouncer(): Promise<string | undefined> {
  const found = findOnPath('pgbouncer');
  if (found) return found;
  if (process.getuid?.() !== 0) {
    console.log('pgbouncer is not installed and this is not root: install it (Debian: sudo apt-get install -y pgbouncer) to get the PgBouncer rows. Skipping them.');
    return undefined;
  }
  console.log('Installing pgbouncer from Debian (apt-get update && apt-get install -y pgbouncer)…');
  // The package's postinst starts a system pgbouncer on port 6432 unless policy-rc.d forbids it; we only want the binary.
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, '#!/bin/sh\n# Temporary, written by pooler bench/lib/pgbouncer.ts: no service starts during install.\nexit 101\n', { mode: 0o755 });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await run('apt-get', ['update'], { env, maxBuffer: 64 << 20 });
    await run('apt-get', ['install', '-y', '--no-install-recommends', 'pgbouncer'], { env, maxBuffer: 64 << 20 });
  } catch (err) {
    console.log(`Could not install pgbouncer (${(err as Error).message.split('\n')[0]}). Skipping the PgBouncer rows.`);
    return undefined;
  } finally {
    if (ownPolicy) unlinkSync(policy);
  }
  return findOnPath('pgbouncer');
}

export async function pgbouncerVersion(bin: string): Promise<string> {
  const { stdout } = await run(bin, ['--version']);
  return stdout.split('\n')[0]!.trim();
}

/** Kills the PgBouncer of a dir left by a bench run that died without cleaning up. */
function reapDir(dir: string): void {
  const pid = Number(readFileSync(join(dir, PID_FILE), 'utf8'));
  // PIDs get recycled: only kill a process that runs this dir's ini.
  if (pid > 0 && isAlive(pid) && cmdline(pid).includes(dir)) signal(pid, 'SIGKILL');
}

export interface PgbouncerOptions {
  bin: string;
  serverHost: string;
  serverPort: number;
  poolSize: number;
  maxClientConn: number;
}

export async function startPgbouncer(o: PgbouncerOptions): Promise<Pgbouncer> {
  sweepStale(tmpdir(), DIR_PREFIX, reapDir);
  const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  writeOwner(dir);
  // PgBouncer refuses to run as root; asServer() makes it the postgres user, which must be able to write its log here.
  chownForServer(dir);
  const port = await freePort();
  const logFile = join(dir, 'pgbouncer.log');
  const ini = join(dir, 'pgbouncer.ini');
  writeFileSync(
    ini,
    `[databases]
app = host=${o.serverHost} port=${o.serverPort} dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${join(dir, 'userlist.txt')}
pool_mode = transaction
default_pool_size = ${o.poolSize}
max_client_conn = ${o.maxClientConn}
logfile = ${logFile}
ignore_startup_parameters = extra_float_digits
; pooler runs with log_level = warn and so logs no logins; PgBouncer should not pay for them either (matters for -C).
log_connections = 0
log_disconnections = 0
`,
  );
  writeFileSync(join(dir, 'userlist.txt'), '"postgres" ""\n');
  for (const f of [ini, join(dir, 'userlist.txt')]) chownForServer(f);

  // No -d: a daemonized PgBouncer would fork away from the PID we track and outlive us.
  const child = spawn(o.bin, [ini], { ...asServer(dir), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString('utf8')));
  child.stderr.on('data', (b: Buffer) => (output += b.toString('utf8')));
  let exited = false;
  const exit = new Promise<void>((res) => {
    child.once('error', (err) => {
      output += `\n[spawn error] ${err.message}`;
      exited = true;
      res();
    });
    child.once('exit', () => {
      exited = true;
      res();
    });
  });
  const pid = child.pid ?? -1;
  if (pid > 0) writeFileSync(join(dir, PID_FILE), String(pid));
  const unregister = onProcessExit(() => {
    if (!exited) signal(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  let stopping: Promise<void> | undefined;
  const proc: Pgbouncer = {
    host: '127.0.0.1',
    port,
    pid,
    logFile,
    stop() {
      stopping ??= (async () => {
        // SIGTERM is PgBouncer's immediate shutdown; SIGKILL if it lingers.
        if (!exited) signal(pid, 'SIGTERM');
        if (!(await Promise.race([exit.then(() => true), delay(5000).then(() => false)]))) {
          signal(pid, 'SIGKILL');
          await waitDead([pid], 5000);
        }
        unregister();
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };

  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) {
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      await proc.stop();
      throw new Error(`pgbouncer exited before listening on 127.0.0.1:${port}:\n${output}\n${log}`);
    }
    if (await tcpReachable(port)) return proc;
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`pgbouncer did not listen on 127.0.0.1:${port} within 10 s:\n${output}`);
    }
    await delay(25);
  }
}
