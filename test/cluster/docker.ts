// Cluster fixture on Docker (testcontainers) for machines without local PostgreSQL binaries; same API as local.ts.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { freePort } from './ports.ts';
import * as sql from './sql.ts';
import { TEST_SETTINGS } from './settings.ts';
import type { Cluster, ClusterOptions, PgNode } from './types.ts';

const run = promisify(execFile);
const IMAGE = process.env.PG_FIXTURE_IMAGE ?? 'postgres:16';
const DATA = '/var/lib/postgresql/data';

const HBA = [
  'local all all trust',
  'local replication all trust',
  'host all postgres all trust',
  'host replication all all trust',
  'host all all all md5',
].join('\n');

export async function dockerRunning(): Promise<boolean> {
  try {
    await run('docker', ['info'], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

interface DockerNode extends PgNode {
  id: string;
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

function settingArgs(settings: Record<string, string>, name: string): string[] {
  return Object.entries({ ...TEST_SETTINGS, ...settings, cluster_name: name }).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
}

export async function startDockerCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const { GenericContainer, Network, Wait } = await import('testcontainers');
  const network = await new Network().start();
  const containers: { stop(): Promise<unknown> }[] = [];
  const nodes: DockerNode[] = [];
  let primary: DockerNode;
  let destroying: Promise<void> | undefined;
  /** Containers frozen with `docker pause`; stopping one needs it unpaused first to deliver the stop signal. */
  const paused = new Set<string>();

  async function unpause(node: PgNode): Promise<void> {
    const id = (node as DockerNode).id;
    if (!paused.delete(id)) return;
    await run('docker', ['unpause', id]);
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
      await sql.waitCaughtUp(primary, cluster.replicas, o.timeoutMs);
    },
    async stop(node) {
      await unpause(node);
      // The image's STOPSIGNAL is SIGINT, PostgreSQL's fast shutdown.
      await run('docker', ['stop', '-t', '60', (node as DockerNode).id]);
    },
    async start(node) {
      await run('docker', ['start', (node as DockerNode).id]);
      await pollReady(node);
    },
    async kill(node) {
      await unpause(node);
      await run('docker', ['kill', '-s', 'KILL', (node as DockerNode).id]);
    },
    async promote(node) {
      await sql.promote(node);
      primary = node as DockerNode;
    },
    async freeze(node) {
      // The cgroup freezer stops every process in the container; the host kernel still accepts TCP connects.
      await run('docker', ['pause', (node as DockerNode).id]);
      paused.add((node as DockerNode).id);
    },
    async thaw(node) {
      await unpause(node);
    },
    destroy() {
      destroying ??= (async () => {
        await Promise.allSettled(nodes.map(unpause));
        await Promise.allSettled(containers.map((c) => c.stop()));
        await network.stop().catch(() => {});
      })();
      return destroying;
    },
  };

  async function pollReady(node: PgNode): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await sql.query(node, 'select 1');
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async function startNode(name: string, role: 'primary' | 'replica', build: (port: number) => InstanceType<typeof GenericContainer>) {
    // Fixed host ports survive `docker stop`/`docker start`, which random bindings would not.
    const port = await freePort();
    const started = await build(port).start();
    containers.push(started);
    const node: DockerNode = { name, role, host: started.getHost(), port, dataDir: DATA, id: started.getId(), pid: () => undefined };
    nodes.push(node);
    return node;
  }

  try {
    primary = await startNode('primary', 'primary', (port) =>
      new GenericContainer(IMAGE)
        .withNetwork(network)
        .withNetworkAliases('primary')
        .withExposedPorts({ container: 5432, host: port })
        .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust', POSTGRES_INITDB_ARGS: '--locale=C -E UTF8' })
        .withCopyContentToContainer([
          { content: `cat > "$PGDATA/pg_hba.conf" <<'EOF'\n${HBA}\nEOF\n`, target: '/docker-entrypoint-initdb.d/10-hba.sh' },
        ])
        .withCommand(['postgres', ...settingArgs(opts.settings ?? {}, 'primary')])
        .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2)),
    );
    await pollReady(primary);

    const replicas = await Promise.all(
      Array.from({ length: opts.replicas ?? 0 }, (_, i) => {
        const name = `replica${i + 1}`;
        // Clone only on first start: `docker start` after a stop reruns this script on the existing data dir.
        const script = [
          `if [ ! -f ${DATA}/PG_VERSION ]; then`,
          `  until pg_basebackup -h primary -U postgres -D ${DATA} -R -c fast -X stream; do rm -rf ${DATA}/*; sleep 1; done`,
          `  echo "primary_conninfo = 'host=primary user=postgres application_name=${name}'" >> ${DATA}/postgresql.auto.conf`,
          'fi',
          `chmod 700 ${DATA}`,
          `exec postgres -D ${DATA} ${settingArgs(opts.settings ?? {}, name).map(shellQuote).join(' ')}`,
        ].join('\n');
        return startNode(name, 'replica', (port) =>
          new GenericContainer(IMAGE)
            .withNetwork(network)
            .withExposedPorts({ container: 5432, host: port })
            .withUser('postgres')
            .withEntrypoint(['bash', '-c', script])
            .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept read-only connections/)),
        );
      }),
    );
    await sql.waitStreaming(primary, replicas);
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}
