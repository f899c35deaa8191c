// Tests of the PostgreSQL cluster fixture itself: replication, replay control, crashes, promotion and cleanup.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster, type PgNode } from './index.ts';
import { sweepStaleClusters } from './local.ts';
import { descendants, isAlive, waitFor } from './procs.ts';

const here = dirname(fileURLToPath(import.meta.url));
const repoNode = join(here, '../../node_modules/.bin/node');
const nodeBin = existsSync(repoNode) ? repoNode : process.execPath;

function processArgs(): string {
  return execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
}

async function rows(c: Cluster, node: PgNode, sql: string): Promise<number[]> {
  return (await c.query(node, sql)).map((r) => Number(r.id));
}

describe('cluster fixture', () => {
  let c: Cluster;

  beforeAll(async () => {
    c = await startCluster({ replicas: 2, name: 'fixture-test' });
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it('starts a primary and two streaming replicas', async () => {
    expect(c.nodes.map((n) => n.name)).toEqual(['primary', 'replica1', 'replica2']);
    expect(new Set(c.nodes.map((n) => n.port)).size).toBe(3);
    expect((await c.query(c.primary, 'select pg_is_in_recovery() as r'))[0].r).toBe(false);
    for (const r of c.replicas) expect((await c.query(r, 'select pg_is_in_recovery() as r'))[0].r).toBe(true);
    const streaming = await c.query(c.primary, "select application_name from pg_stat_replication where state = 'streaming'");
    expect(streaming.map((r) => r.application_name).sort()).toEqual(['replica1', 'replica2']);
    expect(c.connectionString(c.primary, 'db', 'u')).toBe(`postgresql://u@127.0.0.1:${c.primary.port}/db`);
  });

  it('makes a write on the primary visible on both replicas', async () => {
    await c.query(c.primary, 'create table items (id int primary key)');
    await c.query(c.primary, 'insert into items values ($1)', [1]);
    await c.waitForReplication();
    for (const r of c.replicas) expect(await rows(c, r, 'select id from items')).toEqual([1]);
  });

  it('lets a replica lag while replay is paused and catch up on resume', async () => {
    const [lagging, other] = c.replicas;
    await c.pauseReplay(lagging);
    await c.query(c.primary, 'insert into items values (2)');
    const [{ lsn }] = await c.query(c.primary, 'select pg_current_wal_lsn()::text as lsn');
    await waitFor('the other replica to see the row', async () => (await rows(c, other, 'select id from items')).includes(2));
    // The WAL has arrived on the paused replica; only its replay is held back.
    await waitFor('the paused replica to receive the WAL', async () => {
      const [r] = await c.query(lagging, 'select pg_last_wal_receive_lsn() >= $1::pg_lsn as ok', [lsn]);
      return r.ok;
    });
    expect(await rows(c, lagging, 'select id from items order by id')).toEqual([1]);
    await c.resumeReplay(lagging);
    await c.waitForReplication();
    expect(await rows(c, lagging, 'select id from items order by id')).toEqual([1, 2]);
  });

  it('keeps the primary working after a replica is killed with SIGKILL, and restarts the replica', async () => {
    const victim = c.replicas[0];
    const pid = victim.pid()!;
    expect(pid).toBeGreaterThan(0);
    const children = descendants(pid);
    await c.kill(victim);
    expect(isAlive(pid)).toBe(false);
    expect(children.filter(isAlive)).toEqual([]);
    expect(victim.pid()).toBeUndefined();
    await c.query(c.primary, 'insert into items values (3)');
    // Replicas that are down are skipped rather than waited for.
    await c.waitForReplication();
    expect(await rows(c, c.replicas[1], 'select id from items order by id')).toEqual([1, 2, 3]);

    await c.start(victim);
    expect(victim.pid()).not.toBe(pid);
    await c.waitForReplication();
    expect(await rows(c, victim, 'select id from items order by id')).toEqual([1, 2, 3]);
  });

  it('stops and starts a node', async () => {
    const node = c.replicas[1];
    await c.stop(node);
    expect(node.pid()).toBeUndefined();
    await expect(c.query(node, 'select 1')).rejects.toThrow();
    await c.start(node);
    await c.waitForReplication();
    expect(await rows(c, node, 'select id from items order by id')).toEqual([1, 2, 3]);
  });

  it('freezes a node so it hangs without closing anything, and thaws it', async () => {
    const node = c.replicas[0];
    const open = new pg.Client({ connectionString: c.connectionString(node), query_timeout: 1000 });
    open.on('error', () => {});
    await open.connect();
    try {
      await c.freeze(node);
      try {
        await expect(open.query('select 1')).rejects.toThrow(/read timeout/);
        // The kernel completes the handshake, so a new connection times out instead of being refused.
        const fresh = new pg.Client({ connectionString: c.connectionString(node), connectionTimeoutMillis: 1000 });
        fresh.on('error', () => {});
        await expect(fresh.connect()).rejects.toThrow(/timeout/);
        await c.query(c.primary, 'select 1');
      } finally {
        await c.thaw(node);
      }
      expect(await rows(c, node, 'select id from items order by id')).toEqual([1, 2, 3]);
    } finally {
      await open.end().catch(() => {});
    }
  });

  it('promotes a replica to a writable primary', async () => {
    const target = c.replicas[1];
    await c.promote(target);
    expect(target.role).toBe('primary');
    expect(c.primary).toBe(target);
    expect(c.replicas.map((r) => r.name)).toEqual(['replica1']);
    await c.query(target, 'insert into items values (4)');
    expect(await rows(c, target, 'select id from items order by id')).toEqual([1, 2, 3, 4]);
  });

  it('destroy leaves no process and no directory behind, and is idempotent', async () => {
    const baseDir = dirname(c.nodes[0].dataDir);
    const pids = c.nodes.flatMap((n) => {
      const pid = n.pid();
      return pid === undefined ? [] : [pid, ...descendants(pid)];
    });
    expect(pids.length).toBeGreaterThan(3);
    // A frozen node would hold the shutdown signal pending: destroy() must thaw it first.
    await c.freeze(c.replicas[0]);
    await c.destroy();
    await c.destroy();
    expect(pids.filter(isAlive)).toEqual([]);
    expect(existsSync(baseDir)).toBe(false);
    expect(processArgs()).not.toContain(baseDir);
  });
});

describe('cluster fixture cleanup of interrupted runs', () => {
  // A separate process owns a cluster, so it can be interrupted the way a developer's Ctrl-C or a CI timeout would.
  async function ownerProcess(): Promise<{ child: ReturnType<typeof spawn>; baseDir: string; pids: number[] }> {
    const script = `
      const { startCluster } = await import(${JSON.stringify(join(here, 'index.ts'))});
      const c = await startCluster({ replicas: 1, name: 'orphan-test' });
      const pids = c.nodes.map((n) => n.pid());
      console.log(JSON.stringify({ dataDir: c.primary.dataDir, pids }));
      setInterval(() => {}, 1000);
    `;
    const child = spawn(nodeBin, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const line = await waitFor('the owner process to start its cluster', () => out.includes('\n') && out, { timeoutMs: 60_000 });
    const info = JSON.parse(line) as { dataDir: string; pids: number[] };
    return { child, baseDir: dirname(info.dataDir), pids: info.pids };
  }

  it('cleans up synchronously when the owning process gets SIGTERM', async () => {
    const { child, baseDir, pids } = await ownerProcess();
    const code = new Promise((r) => child.once('exit', (c, s) => r(c ?? s)));
    child.kill('SIGTERM');
    expect(await code).toBe(143);
    expect(pids.filter(isAlive)).toEqual([]);
    expect(existsSync(baseDir)).toBe(false);
  });

  it('sweeps postmasters and dirs left by an owner that was killed with SIGKILL', async () => {
    const { child, baseDir, pids } = await ownerProcess();
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
    // Nothing could clean up: the servers outlive their owner until the next run sweeps them.
    expect(pids.every(isAlive)).toBe(true);
    expect(existsSync(baseDir)).toBe(true);
    sweepStaleClusters();
    expect(pids.filter(isAlive)).toEqual([]);
    expect(existsSync(baseDir)).toBe(false);
  });
});
