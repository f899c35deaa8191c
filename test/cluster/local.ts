// Cluster fixture on local PostgreSQL binaries: data dirs in a temp dir, postmasters spawned and owned by this process.
import { execFile, spawn } from 'node:child_process';
import { appendFileSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { onProcessExit } from './cleanup.ts';
import { freePort } from './ports.ts';
import { killTreeSync, readPidFile, reapDataDirs, removeLeftoverShm } from './postmaster.ts';
import { continueTree, descendants, isAlive, signal, stopTree, waitDead, waitFor } from './procs.ts';
import { asServer, chownForServer, runTool } from './osuser.ts';
import * as sql from './sql.ts';
import { fixtureRoot, sweepStale, writeOwner } from './sweep.ts';
import { templateDataDir } from './template.ts';
import { TEST_SETTINGS } from './settings.ts';
import type { Cluster, ClusterOptions, PgNode } from './types.ts';

export const DIR_PREFIX = 'pooler-pg-';

const HBA = `# Written by the test cluster fixture.
local all all trust
local replication all trust
host all postgres 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
host all all 127.0.0.1/32 md5
`;

class LocalNode implements PgNode {
  name: string;
  host = '127.0.0.1';
  port: number;
  role: 'primary' | 'replica';
  dataDir: string;
  logFile: string;
  /** The node this replica streams from. */
  upstream: LocalNode | undefined;
  postmaster: number | undefined;
  /** Set by freeze(): the postmaster and its children are SIGSTOPped. */
  frozen = false;

  constructor(name: string, role: 'primary' | 'replica', port: number, baseDir: string, upstream?: LocalNode) {
    this.name = name;
    this.role = role;
    this.port = port;
    this.dataDir = join(baseDir, name);
    this.logFile = join(baseDir, 'logs', `${name}.log`);
    this.upstream = upstream;
  }

  pid(): number | undefined {
    return this.postmaster !== undefined && isAlive(this.postmaster) ? this.postmaster : undefined;
  }
}

function confValue(v: string): string {
  return `'${v.replaceAll("'", "''")}'`;
}

function logTail(node: LocalNode, lines = 20): string {
  try {
    return readFileSync(node.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Kills postmasters and removes dirs left by fixture runs whose process died without cleaning up. */
export function sweepStaleClusters(): void {
  sweepStale(fixtureRoot(), DIR_PREFIX, reapDataDirs);
}

let swept = false;

export async function startLocalCluster(binDir: string, opts: ClusterOptions = {}): Promise<Cluster> {
  if (!swept) {
    swept = true;
    sweepStaleClusters();
  }
  const label = (opts.name ?? '').replace(/[^A-Za-z0-9_-]/g, '').slice(0, 24);
  const baseDir = mkdtempSync(join(fixtureRoot(), `${DIR_PREFIX}${label ? `${label}-` : ''}`));
  writeOwner(baseDir);
  const sockDir = join(baseDir, 'sock');
  mkdirSync(sockDir);
  mkdirSync(join(baseDir, 'logs'));
  for (const d of [baseDir, sockDir, join(baseDir, 'logs')]) chownForServer(d);

  const nodes: LocalNode[] = [];
  let primary: LocalNode;
  let destroying: Promise<void> | undefined;
  const keep = process.env.PG_FIXTURE_KEEP === '1';

  // Runs synchronously from exit/signal handlers when the test process goes away without destroy().
  const unregister = onProcessExit(() => {
    for (const n of nodes) if (n.postmaster !== undefined && isAlive(n.postmaster)) killTreeSync(n.postmaster);
    for (const n of nodes) removeLeftoverShm(n.dataDir);
    if (!keep) rmSync(baseDir, { recursive: true, force: true });
  });

  async function launch(node: LocalNode): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const logFd = openSync(node.logFile, 'a');
      if (attempt === 1) chownForServer(node.logFile);
      const child = spawn(
        join(binDir, 'postgres'),
        ['-D', node.dataDir, '-p', String(node.port), '-k', sockDir, '-c', `cluster_name=${node.name}`],
        { ...asServer(baseDir), stdio: ['ignore', logFd, logFd] },
      );
      closeSync(logFd);
      // A forgotten cluster must not keep the test process alive; the exit hook still kills it.
      child.unref();
      let exit: string | undefined;
      child.once('error', (err) => (exit = err.message));
      child.once('exit', (code, sig) => (exit = sig ? `signal ${sig}` : `code ${code}`));
      node.postmaster = child.pid;

      const outcome = await waitFor(
        `${node.name} (port ${node.port}) to accept connections`,
        async () => {
          if (exit !== undefined) return 'exited' as const;
          await sql.query(node, 'select 1');
          return 'ready' as const;
        },
        { timeoutMs: 60_000 },
      ).catch((err: Error) => {
        if (node.postmaster !== undefined) killTreeSync(node.postmaster);
        throw new Error(`${err.message}\n--- ${node.logFile} ---\n${logTail(node)}`);
      });
      if (outcome === 'ready') {
        // The PID file is the authority on which process is the postmaster.
        node.postmaster = readPidFile(node.dataDir)?.pid ?? child.pid;
        return;
      }
      node.postmaster = undefined;
      const tail = logTail(node);
      // freePort() can race with other processes grabbing the same port; pick another and retry.
      if (/could not (bind|create any TCP)/i.test(tail) && attempt < 4) {
        node.port = await freePort();
        continue;
      }
      throw new Error(`${node.name} exited during startup (${exit}).\n--- ${node.logFile} ---\n${tail}`);
    }
  }

  async function makeReplica(node: LocalNode): Promise<LocalNode> {
    await runTool(
      join(binDir, 'pg_basebackup'),
      ['-h', primary.host, '-p', String(primary.port), '-U', 'postgres', '-D', node.dataDir, '-R', '-c', 'fast', '-X', 'stream', '--no-sync'],
      baseDir,
    );
    // Named walreceivers let us find each replica's row in pg_stat_replication.
    appendFileSync(
      join(node.dataDir, 'postgresql.auto.conf'),
      `primary_conninfo = ${confValue(`host=${primary.host} port=${primary.port} user=postgres application_name=${node.name}`)}\n`,
    );
    await launch(node);
    return node;
  }

  /** SIGCONTs a frozen node; a stopped process would hold any other signal pending until then. */
  function thawNode(node: LocalNode): void {
    if (!node.frozen) return;
    node.frozen = false;
    if (node.postmaster !== undefined) continueTree(node.postmaster);
  }

  async function stopNode(node: LocalNode, sig: NodeJS.Signals, timeoutMs: number): Promise<void> {
    thawNode(node);
    const pm = node.postmaster;
    node.postmaster = undefined;
    if (pm === undefined || !isAlive(pm)) return;
    signal(pm, sig);
    if (!(await waitDead([pm], timeoutMs))) killTreeSync(pm);
  }

  function own(node: PgNode): LocalNode {
    const n = nodes.find((x) => x === node);
    if (!n) throw new Error(`${node.name} is not a node of this cluster`);
    return n;
  }

  const cluster: Cluster = {
    get primary() {
      return primary;
    },
    get replicas() {
      return nodes.filter((n) => n.role === 'replica');
    },
    get nodes() {
      return [...nodes];
    },
    superuser: sql.SUPERUSER,
    connectionString: sql.connectionString,
    query: sql.query,
    pauseReplay: sql.pauseReplay,
    resumeReplay: sql.resumeReplay,

    async waitForReplication(o = {}) {
      const live = nodes.filter((n) => n.role === 'replica' && n.pid() !== undefined && n.upstream?.pid() !== undefined);
      const byUpstream = Map.groupBy(live, (n) => n.upstream!);
      await Promise.all([...byUpstream].map(([up, reps]) => sql.waitCaughtUp(up, reps, o.timeoutMs)));
    },

    async stop(node) {
      // SIGINT is PostgreSQL's fast shutdown.
      await stopNode(own(node), 'SIGINT', 60_000);
    },

    async start(node) {
      const n = own(node);
      if (n.pid() !== undefined) return;
      await launch(n);
    },

    async kill(node) {
      const n = own(node);
      const pm = n.postmaster;
      n.postmaster = undefined;
      if (pm === undefined || !isAlive(pm)) return;
      const children = descendants(pm);
      signal(pm, 'SIGKILL');
      // Frozen backends must run again to notice that their postmaster is gone.
      if (n.frozen) for (const c of children) signal(c, 'SIGCONT');
      n.frozen = false;
      // Orphaned backends notice the dead postmaster and exit; until they do, a restart would refuse to start.
      if (!(await waitDead([pm, ...children], 15_000))) for (const c of children) signal(c, 'SIGKILL');
      await waitDead(children, 5_000);
    },

    async promote(node) {
      const n = own(node);
      await sql.promote(n);
      primary = n;
    },

    async freeze(node) {
      const n = own(node);
      const pm = n.pid();
      if (pm === undefined) throw new Error(`${n.name} is not running, so it cannot be frozen`);
      if (n.frozen) return;
      n.frozen = true;
      await stopTree(pm);
    },

    async thaw(node) {
      thawNode(own(node));
    },

    destroy() {
      destroying ??= (async () => {
        // Immediate shutdown (SIGQUIT) still lets the postmaster free its shared memory, unlike SIGKILL.
        await Promise.all(nodes.map((n) => stopNode(n, 'SIGQUIT', 5_000)));
        for (const n of nodes) removeLeftoverShm(n.dataDir);
        if (!keep) rmSync(baseDir, { recursive: true, force: true });
        unregister();
      })();
      return destroying;
    },
  };

  try {
    const template = await templateDataDir(binDir);
    primary = new LocalNode('primary', 'primary', await freePort(), baseDir);
    nodes.push(primary);
    await promisify(execFile)('cp', ['-a', template, primary.dataDir]);
    chownForServer(primary.dataDir);
    writeFileSync(join(primary.dataDir, 'pg_hba.conf'), HBA);
    const settings = {
      ...TEST_SETTINGS,
      listen_addresses: '127.0.0.1',
      // Dynamic shared memory in files under the data dir goes away with the dir, even after kill -9.
      dynamic_shared_memory_type: 'mmap',
      ...opts.settings,
    };
    appendFileSync(
      join(primary.dataDir, 'postgresql.conf'),
      `\n# Test cluster fixture settings\n${Object.entries(settings)
        .map(([k, v]) => `${k} = ${confValue(v)}`)
        .join('\n')}\n`,
    );
    await launch(primary);
    const replicas: LocalNode[] = [];
    for (let i = 1; i <= (opts.replicas ?? 0); i++) {
      replicas.push(new LocalNode(`replica${i}`, 'replica', await freePort(), baseDir, primary));
    }
    nodes.push(...replicas);
    await Promise.all(replicas.map(makeReplica));
    await sql.waitStreaming(primary, replicas);
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}

