// The nodes of one database as the router sees them: the primary and replicas from its [databases] line,
// and once a server of it has logged in, the monitor that keeps their roles, health and lag current.

import type { DatabaseEntry } from '../config/types.ts';
import { newNode, type NodeState } from './node.ts';
import type { TopologyMonitor } from './monitor.ts';

export class DatabaseTopology {
  readonly name: string;
  /** configured primary first, then the replicas */
  readonly nodes: NodeState[];
  /** what the [databases] line said, to tell whether a reload changed the nodes */
  readonly signature: string;
  monitor: TopologyMonitor | null = null;
  /** a reload replaced this topology: clients holding it look up the current one */
  stopped = false;
  private readonly listeners = new Set<() => void>();
  private replicaList: NodeState[] | null = null;
  private readonly detach: (() => void)[] = [];

  constructor(name: string, entry: DatabaseEntry) {
    this.name = name;
    this.nodes = [newNode(entry.host, entry.port, 'primary'), ...entry.replicas.map((r) => newNode(r.host, r.port, 'replica', r.weight))];
    this.signature = topologySignature(entry);
  }

  /** Whether reads can be split off at all. */
  get hasReplicas(): boolean {
    return this.nodes.length > 1;
  }

  /** The node taking writes now; null while none is up (failover). Before the monitor runs: the configured one. */
  get primary(): NodeState | null {
    return this.monitor !== null ? this.monitor.primary : this.nodes[0]!;
  }

  /** Nodes currently in the replica role (a promoted replica leaves this list). */
  get replicas(): readonly NodeState[] {
    return (this.replicaList ??= this.nodes.filter((n) => n.role === 'replica'));
  }

  node(id: string): NodeState | undefined {
    for (const n of this.nodes) if (n.id === id) return n;
    return undefined;
  }

  attach(monitor: TopologyMonitor, onDown: (node: NodeState, reason: string) => void): void {
    this.monitor = monitor;
    this.detach.push(
      monitor.onChange(() => {
        this.replicaList = null;
        for (const l of [...this.listeners]) l();
      }),
      monitor.onDown(onDown),
    );
    monitor.start();
  }

  /** Called after every monitor round and on every node state change. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Weights may change on reload without touching the nodes. */
  updateWeights(entry: DatabaseEntry): void {
    for (const r of entry.replicas) {
      const n = this.node(`${r.host}:${r.port}`);
      if (n) n.weight = r.weight;
    }
  }

  stop(): void {
    this.stopped = true;
    for (const d of this.detach.splice(0)) d();
    this.monitor?.stop();
    // Whoever waits for a change must not wait for this topology forever.
    for (const l of [...this.listeners]) l();
  }
}

export function topologySignature(entry: DatabaseEntry): string {
  return [`${entry.host}:${entry.port}`, ...entry.replicas.map((r) => `${r.host}:${r.port}`)].join(',');
}
