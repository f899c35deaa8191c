// Basic proxying with node-postgres through pooler in transaction mode.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgClient, startCluster, startPoolerFor, type Cluster, type PoolerProcess } from './harness.ts';

let cluster: Cluster;
let pooler: PoolerProcess;

beforeAll(async () => {
  cluster = await startCluster({ replicas: 0 });
  pooler = await startPoolerFor(cluster);
});
afterAll(async () => {
  await pooler?.stop();
  await cluster?.destroy();
});

describe('node-postgres through pooler', () => {
  it('runs plain and parameterized queries', async () => {
    const c = pgClient(pooler);
    await c.connect();
    expect((await c.query('SELECT 1 AS x')).rows).toEqual([{ x: 1 }]);
    expect((await c.query('SELECT $1::int + $2::int AS s', [2, 3])).rows).toEqual([{ s: 5 }]);
    await c.end();
  });
});
