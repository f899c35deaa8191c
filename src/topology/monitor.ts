// Background health and lag checks of one database's primary and replicas. The router only reads the
// NodeState objects this keeps up to date; nothing here sits on a query's path.

import type { Logger } from '../log.ts';
import type { ConnectTarget } from '../server/connect.ts';
import { LsnHistory } from './lag.ts';
import { formatLsn } from './lsn.ts';
import type { NodeState } from './node.ts';
import { NodeProbe, type ProbeResult } from './probe.ts';

export interface MonitorSettings {
  intervalMs: number;
  /** 0 = intervalMs */
  timeoutMs: number;
}

export interface MonitorDeps {
  /** for logs */
  database: string;
  /** configured primary first, then replicas */
  nodes: NodeState[];
  /** connectTimeoutMs is overridden by the check timeout */
  target(node: NodeState): ConnectTarget;
  /** read every tick (a reload changes it) */
  settings(): MonitorSettings;
  log: Logger;
  /** how often to log one status line per node; default 60 s */
  statusLogEveryMs?: number;
}

/**
 * Timed-out checks in a row before the primary is banned. A refused or broken connection bans it at once, but a
 * slow answer from a busy primary must not: it is the only place writes can go, and banning it fails them.
 */
export const PRIMARY_TIMEOUTS_TO_BAN = 3;

/**
 * Retry delay after the n-th consecutive failure: doubling from one interval, capped short so that a node
 * that comes back (SIGCONT, restart) is seen again soon.
 */
const MAX_BACKOFF_MS = 2000;
export function backoffMs(intervalMs: number, failures: number): number {
  return Math.min(intervalMs * 2 ** Math.max(0, failures - 1), MAX_BACKOFF_MS);
}

interface Slot {
  probe: NodeProbe;
  running: boolean;
  /** bumped by reportFailure(): results of checks started before it are stale */
  gen: number;
  /** no check before this (epoch ms): bannedUntil, or the backoff after a refused login */
  retryAt: number;
  softFailures: number;
  lastSoftError: string | null;
  /** consecutive timed-out checks (see PRIMARY_TIMEOUTS_TO_BAN) */
  timeouts: number;
}

export class TopologyMonitor {
  readonly nodes: NodeState[];
  private readonly deps: MonitorDeps;
  private readonly slots = new Map<NodeState, Slot>();
  private readonly history = new LsnHistory();
  /** the primary whose WAL positions `history` holds */
  private historyOf: NodeState | null = null;
  private current: NodeState | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private roundsStarted = 0;
  private roundWaiters: { after: number; resolve: () => void }[] = [];
  private readonly changeListeners = new Set<() => void>();
  private readonly downListeners = new Set<(node: NodeState, reason: string) => void>();
  private lastStatusLogAt = 0;
  /** from the last tick's settings, for backoffs computed outside a tick (reportFailure) */
  private intervalMs = 250;

  constructor(deps: MonitorDeps) {
    this.deps = deps;
    this.nodes = deps.nodes;
    for (const n of this.nodes) {
      this.slots.set(n, { probe: new NodeProbe(), running: false, gen: 0, retryAt: 0, softFailures: 0, lastSoftError: null, timeouts: 0 });
    }
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.tick();
  }

  stop(): void {
    if (!this.running) return;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const slot of this.slots.values()) {
      slot.gen++;
      slot.probe.destroy('monitor stopped');
    }
    // Nobody will complete another round for them.
    for (const w of this.roundWaiters.splice(0)) w.resolve();
  }

  /**
   * The node taking writes: the one in use while it stays healthy and primary (so two primaries after a
   * failover do not flip-flop), else the first healthy primary in configured order; null if none.
   */
  get primary(): NodeState | null {
    const cur = this.current;
    if (cur && cur.healthy && cur.role === 'primary') return cur;
    const next = this.nodes.find((n) => n.healthy && n.role === 'primary') ?? null;
    if (next !== cur) {
      this.current = next;
      const ctx = { database: this.deps.database, previous: cur?.id ?? null };
      if (next) this.deps.log.info({ ...ctx, node: next.id }, 'primary is now %s', next.id);
      else this.deps.log.warn(ctx, 'no primary is up');
    }
    return next;
  }

  /** A pool's connect or query to this node failed at the network level: ban it now, until a check succeeds. */
  reportFailure(node: NodeState, reason: string): void {
    const slot = this.slots.get(node);
    if (!slot || !this.running) return;
    // A burst of pool failures from one outage is one failure, not a reason to back off further.
    if (!node.healthy && node.bannedUntil > Date.now()) return;
    slot.gen++;
    this.markDown(node, slot, `reported by pool: ${reason}`);
  }

  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  onDown(listener: (node: NodeState, reason: string) => void): () => void {
    this.downListeners.add(listener);
    return () => this.downListeners.delete(listener);
  }

  /** Resolves once a round started after this call has completed (at once if stopped). */
  nextRound(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.roundWaiters.push({ after: this.roundsStarted, resolve }));
  }

  private tick(): void {
    if (!this.running) return;
    try {
      const s = this.deps.settings();
      this.intervalMs = s.intervalMs;
      this.timer = setTimeout(() => this.tick(), Math.max(1, s.intervalMs));
      this.timer.unref();
      this.startRound(s);
    } catch (e) {
      this.deps.log.error({ database: this.deps.database, err: String(e) }, 'topology check round failed');
      if (this.running && this.timer === null) {
        this.timer = setTimeout(() => this.tick(), 1000);
        this.timer.unref();
      }
    }
  }

  private startRound(s: MonitorSettings): void {
    const id = ++this.roundsStarted;
    const now = Date.now();
    const checks: Promise<void>[] = [];
    for (const node of this.nodes) {
      const slot = this.slots.get(node)!;
      // A hung check is not doubled: its own timeout ends it.
      if (slot.running || slot.retryAt > now) continue;
      checks.push(this.check(node, slot, s));
    }
    void Promise.all(checks).then(() => this.finishRound(id));
  }

  private async check(node: NodeState, slot: Slot, s: MonitorSettings): Promise<void> {
    const gen = slot.gen;
    slot.running = true;
    let r: ProbeResult;
    try {
      r = await slot.probe.check(this.deps.target(node), s.timeoutMs || s.intervalMs);
    } catch (e) {
      r = { ok: false, reason: e instanceof Error ? e.message : String(e), soft: false };
    } finally {
      slot.running = false;
    }
    if (!this.running || gen !== slot.gen) return;
    try {
      if (r.ok) {
        slot.timeouts = 0;
        this.markUp(node, slot, r);
      } else if (r.soft) {
        this.refused(node, slot, r.reason, s.intervalMs);
      } else if (r.timeout === true && node.healthy && node.role === 'primary' && ++slot.timeouts < PRIMARY_TIMEOUTS_TO_BAN) {
        this.deps.log.warn({ database: this.deps.database, node: node.id, reason: r.reason, timeouts: slot.timeouts }, 'primary slow to answer its check');
      } else {
        slot.timeouts = 0;
        this.markDown(node, slot, r.reason);
      }
    } catch (e) {
      this.deps.log.error({ database: this.deps.database, node: node.id, err: String(e) }, 'topology check handling failed');
    }
  }

  private markUp(node: NodeState, slot: Slot, r: Extract<ProbeResult, { ok: true }>): void {
    const now = Date.now();
    const log = this.deps.log;
    const ctx = { database: this.deps.database, node: node.id };
    const wasHealthy = node.healthy;
    const wasChecked = node.checked;
    const prevRole = node.role;
    node.role = r.inRecovery ? 'replica' : 'primary';
    if (node.role === 'primary') {
      node.walLsn = r.currentLsn ?? 0n;
      node.replayLsn = node.walLsn;
    } else {
      node.walLsn = r.receiveLsn ?? 0n;
      node.replayLsn = r.replayLsn ?? 0n;
    }
    node.healthy = true;
    node.checked = true;
    node.failures = 0;
    node.bannedUntil = 0;
    node.lastError = null;
    node.lastCheckAt = now;
    slot.retryAt = 0;
    slot.softFailures = 0;
    slot.lastSoftError = null;

    if (!wasHealthy || !wasChecked) log.info({ ...ctx, role: node.role }, 'node up');
    if (wasChecked && prevRole !== node.role) {
      log.info({ ...ctx, role: node.role }, node.role === 'primary' ? 'replica promoted to primary' : 'primary is now a replica');
    } else if (!wasChecked && node.role !== node.configuredRole) {
      const msg = `node configured as ${node.configuredRole} is a ${node.role}`;
      log.warn({ ...ctx, role: node.role, configuredRole: node.configuredRole }, msg);
    }

    const primary = this.primary;
    if (node.role === 'primary') {
      node.lagBytes = 0;
      node.lagMs = 0;
      if (node === primary) this.recordPrimary(node, now);
    } else {
      this.updateLag(node, now);
    }
    if (!wasHealthy || prevRole !== node.role) this.emitChange();
  }

  private recordPrimary(node: NodeState, now: number): void {
    // Another server's WAL positions are not comparable with the old primary's samples.
    if (this.historyOf !== node) {
      this.history.clear();
      this.historyOf = node;
    }
    this.history.record(now, node.walLsn);
  }

  private updateLag(node: NodeState, now: number): void {
    if (this.primary === null) {
      // With no primary up (it died, nothing promoted yet) WAL it wrote but never sent will never arrive: measured
      // against its last samples, every replica would age out of max_replica_lag_ms and reads would stop. The
      // replica is as fresh as it can be once it has replayed what it received.
      const behind = node.walLsn > node.replayLsn ? node.walLsn - node.replayLsn : 0n;
      node.lagBytes = Number(behind);
      node.lagMs = behind === 0n ? 0 : this.history.lagMs(node.replayLsn, now);
      return;
    }
    node.lagBytes = this.history.lagBytes(node.replayLsn);
    node.lagMs = this.history.lagMs(node.replayLsn, now);
  }

  /** The node refused our login (auth, no database): not a health problem; retry with backoff, keep its state. */
  private refused(node: NodeState, slot: Slot, reason: string, intervalMs: number): void {
    slot.softFailures++;
    slot.retryAt = Date.now() + backoffMs(intervalMs, slot.softFailures);
    node.lastError = reason;
    if (reason !== slot.lastSoftError) {
      slot.lastSoftError = reason;
      this.deps.log.warn(
        { database: this.deps.database, node: node.id, reason },
        'health check login refused (not counted as the node being down)',
      );
    }
  }

  private markDown(node: NodeState, slot: Slot, reason: string): void {
    const now = Date.now();
    const transition = node.healthy || node.failures === 0;
    node.healthy = false;
    node.failures++;
    node.lastError = reason;
    node.bannedUntil = now + backoffMs(this.intervalMs, node.failures);
    slot.retryAt = node.bannedUntil;
    slot.probe.destroy(reason);
    const ctx = { database: this.deps.database, node: node.id, role: node.role, reason };
    if (transition) this.deps.log.warn(ctx, 'node down');
    else this.deps.log.debug({ ...ctx, failures: node.failures }, 'node still down');
    void this.primary;
    if (transition) {
      for (const l of this.downListeners) {
        try {
          l(node, reason);
        } catch (e) {
          this.deps.log.error({ database: this.deps.database, err: String(e) }, 'topology onDown listener failed');
        }
      }
    }
    this.emitChange();
  }

  private finishRound(id: number): void {
    if (!this.running) return;
    const now = Date.now();
    // Replicas' lag against the newest primary samples (a primary checked after a replica in this round).
    for (const n of this.nodes) {
      if (n.checked && n.role === 'replica') this.updateLag(n, now);
    }
    this.emitChange();
    const waiters = this.roundWaiters;
    this.roundWaiters = [];
    for (const w of waiters) {
      if (w.after < id) w.resolve();
      else this.roundWaiters.push(w);
    }
    const every = this.deps.statusLogEveryMs ?? 60_000;
    if (now - this.lastStatusLogAt >= every) {
      this.lastStatusLogAt = now;
      this.logStatus();
    }
  }

  private logStatus(): void {
    const primary = this.primary;
    for (const n of this.nodes) {
      this.deps.log.info(
        {
          database: this.deps.database,
          node: n.id,
          role: n.role,
          current: n === primary,
          healthy: n.healthy,
          lagBytes: n.lagBytes,
          lagMs: n.lagMs,
          replayLsn: formatLsn(n.replayLsn),
          outstanding: n.outstanding,
          reads: n.reads,
          writes: n.writes,
          lastError: n.lastError,
        },
        'node status',
      );
    }
  }

  private emitChange(): void {
    for (const l of this.changeListeners) {
      try {
        l();
      } catch (e) {
        this.deps.log.error({ database: this.deps.database, err: String(e) }, 'topology onChange listener failed');
      }
    }
  }
}
