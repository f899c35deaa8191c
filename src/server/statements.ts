// The prepared statements one server connection holds under pooler's names, least recently used first,
// bounded by max_prepared_statements.

/** A statement name pooler prepares only to learn whether PostgreSQL would accept a Parse right now. */
export const PROBE_NAME = '_pooler_probe';

export class ServerStatements {
  /** Set order is the LRU order: a use moves the name to the end */
  private readonly names = new Set<string>();
  /**
   * Names whose prepare is still in flight: never evicted, because undoing an eviction (a skipped Close)
   * would bring back a statement whose own prepare may yet fail.
   */
  private readonly pending = new Set<string>();

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
  add(name: string, max: number): string[] | null {
    let evict: string[] | null = null;
    if (max > 0) {
      for (const old of this.names) {
        if (this.names.size - (evict?.length ?? 0) < max) break;
        if (!this.pending.has(old)) (evict ??= []).push(old);
      }
      if (evict) for (const old of evict) this.names.delete(old);
    }
    this.names.add(name);
    this.pending.add(name);
    return evict;
  }

  /** The server answered the prepare: the statement is there. */
  confirm(name: string): void {
    this.pending.delete(name);
  }

  /** Put back names whose Close never ran (PostgreSQL skipped it after an error). */
  restore(names: string[]): void {
    for (const n of names) this.names.add(n);
  }

  delete(name: string): void {
    this.names.delete(name);
    this.pending.delete(name);
  }

  /** The server forgot them all (DISCARD ALL, DEALLOCATE ALL). */
  clear(): void {
    this.names.clear();
    this.pending.clear();
  }
}
