// The prepared statements one server connection holds under pooler's names, least recently used first,
// bounded by max_prepared_statements.

/** Batch of a prepare whose outcome nobody will report (see ServerStatements.uncertain). */
export const UNCERTAIN = -1;

/** A statement name pooler prepares only to learn whether PostgreSQL would accept a Parse right now. */
export const PROBE_NAME = '_pooler_probe';

export class ServerStatements {
  /** Set order is the LRU order: a use moves the name to the end */
  private readonly names = new Set<string>();
  /**
   * Names whose prepare is still in flight, with the client batch (up to a Sync) that sent it: never evicted,
   * because undoing an eviction (a skipped Close) would bring back a statement whose own prepare may yet fail;
   * and a later batch cannot count on them (PostgreSQL may still skip that prepare). UNCERTAIN: nobody knows.
   */
  private readonly pending = new Map<string, number>();
  /** Names evicted by a Close still in flight: PostgreSQL may yet skip it, so the statement may still be there. */
  private readonly closing = new Set<string>();

  get size(): number {
    return this.names.size;
  }

  /** Whether the server has it; a hit counts as a use. */
  use(name: string): boolean {
    if (!this.names.has(name)) return false;
    this.names.delete(name);
    this.names.add(name);
    return true;
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  /**
   * Record a statement being prepared; returns the least recently used names to close first so the set
   * stays within `max` (0: no bound).
   */
  add(name: string, max: number, batch?: number): string[] | null {
    let evict: string[] | null = null;
    if (max > 0) {
      for (const old of this.names) {
        if (this.names.size - (evict?.length ?? 0) < max) break;
        if (!this.pending.has(old)) (evict ??= []).push(old);
      }
      if (evict) {
        for (const old of evict) {
          this.names.delete(old);
          this.closing.add(old);
        }
      }
    }
    this.names.add(name);
    if (batch !== undefined) this.pending.set(name, batch);
    return evict;
  }

  /** The batch whose prepare of `name` is still in flight (UNCERTAIN if unknown); undefined when settled. */
  pendingFrom(name: string): number | undefined {
    return this.pending.get(name);
  }

  /** A later batch prepares it again (after a Close): its outcome decides from now on. */
  takeOver(name: string, batch: number): void {
    this.names.add(name);
    this.pending.set(name, batch);
  }

  /** The server answered `batch`'s prepare: the statement is there (unless another batch took it over). */
  confirm(name: string, batch?: number): void {
    if (batch === undefined || this.pending.get(name) === batch) this.pending.delete(name);
  }

  /** `batch`'s prepare never ran and whether an earlier one did is unknown: the next user closes and prepares. */
  uncertain(name: string, batch: number): void {
    if (this.pending.get(name) === batch) this.pending.set(name, UNCERTAIN);
  }

  /** Whether an eviction's Close of `name` may still be skipped (a new prepare of it must close it first). */
  mayStillHold(name: string): boolean {
    return this.closing.has(name);
  }

  /** The evicting request settled: the first `ran` Closes ran, the rest never did (their statements stay). */
  settleEvictions(evicted: string[], ran: number): void {
    evicted.forEach((n, k) => {
      this.closing.delete(n);
      if (k >= ran) this.names.add(n);
    });
  }

  /** The statement is not there: `batch`'s prepare failed (ignored if another batch has taken it over). */
  delete(name: string, batch?: number): void {
    if (batch !== undefined && this.pending.has(name) && this.pending.get(name) !== batch) return;
    this.names.delete(name);
    this.pending.delete(name);
  }

  /** The server forgot them all (DISCARD ALL, DEALLOCATE ALL). */
  clear(): void {
    this.names.clear();
    this.pending.clear();
    this.closing.clear();
  }
}
