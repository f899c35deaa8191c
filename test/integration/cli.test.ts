// The command line as a user meets it: `npx pooler`, a broken config, and SIGHUP with a broken file.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgClient, poll, poolerIni, startCluster, startPooler, startPoolerFor, type Cluster } from './harness.ts';

const exec = promisify(execFile);
let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster({ replicas: 0 });
});
afterAll(async () => {
  await cluster?.destroy();
});

describe('pooler command line', () => {
  it('runs through npx and prints its version', async () => {
    const { stdout } = await exec('npx', ['--no-install', 'pooler', '--version'], { cwd: new URL('../..', import.meta.url).pathname });
    expect(stdout.trim()).toMatch(/^pooler \d+\.\d+\.\d+$/);
  });

  it('refuses to start on a config error, naming file, line and key', async () => {
    const ini = poolerIni(cluster).replace('pool_mode = transaction', 'pool_mode = transaction\ndefault_pool_sise = 3');
    const p = await startPooler({ ini, files: { 'userlist.txt': '"postgres" ""\n' }, expectFailure: true });
    expect(await p.exited).toBe(1);
    expect(p.logs()).toMatch(new RegExp(`${p.iniPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: default_pool_sise: `));
  });

  it('keeps running on the old config when SIGHUP finds a broken file, and applies a good one', async () => {
    const pooler = await startPoolerFor(cluster, { settings: { default_pool_size: 2 } });
    try {
      const good = poolerIni(cluster, { settings: { default_pool_size: 2 } });
      pooler.rewriteIni(good.replace('[pooler]', '[pooler]\nlisten_port = not-a-port'));
      pooler.sighup();
      await pooler.waitForLog((l) => l.msg === 'config reloaded' || /reload failed/.test(l.msg));
      expect(pooler.logs()).toMatch(/config reload failed/);
      const c = pgClient(pooler);
      await c.connect();
      expect((await c.query('SELECT 1 AS x')).rows[0].x).toBe(1);
      pooler.rewriteIni(good.replace('[databases]', '[databases]\nother = host=127.0.0.1 port=' + cluster.primary.port + ' dbname=postgres'));
      pooler.sighup();
      await poll(() => pooler.logs().includes('config reloaded'), 'the reload');
      const d = pgClient(pooler, { database: 'other' });
      await d.connect();
      expect((await d.query('SELECT current_database() AS db')).rows[0].db).toBe('postgres');
      await d.end();
      expect((await c.query('SELECT 2 AS x')).rows[0].x).toBe(2);
      await c.end();
    } finally {
      await pooler.stop();
    }
  });

  it('SIGTERM with idle clients connected closes them and exits 0 (not killed after the helper\'s 5 s grace)', async () => {
    const pooler = await startPoolerFor(cluster);
    const clients = Array.from({ length: 5 }, () => pgClient(pooler));
    await Promise.all(clients.map((c) => c.connect()));
    await Promise.all(clients.map((c) => c.query('SELECT 1')));
    const closed = clients.map((c) => new Promise((r) => c.once('end', r)));
    expect(await pooler.stop()).toBe(0);
    await Promise.all(closed);
  });
});
