// Query shapes, cached: the digest of a statement text and what other parts learned about that shape (its
// read/write class). One normalize() per new text; drivers repeat texts verbatim, so most lookups are one map hit.
import { normalize } from './digest.ts';
import type { Classification } from '../routing/classify.ts';

export interface Shape {
  /** digest id: 16 hex digits */
  readonly id: string;
  /** normalized text */
  readonly text: string;
  /** read/write class of the shape (with no hint: comments fold out of the digest), filled by the class cache */
  route: { c: Classification; hint: null } | null;
  /** the class cache generation `route` belongs to (write_functions may have changed since) */
  routeGen: number;
}

/** Beyond these sizes a map starts over: cheaper than LRU bookkeeping, and a workload's shapes refill it fast. */
const MAX_TEXTS = 4096;
const MAX_SHAPES = 16384;
/** Longer texts are only found by digest, so the exact-text map cannot hold megabytes of SQL. */
const MAX_TEXT_KEY = 4096;

export class ShapeCache {
  private readonly byText = new Map<string, Shape>();
  private readonly byId = new Map<string, Shape>();

  shapeOf(sql: string): Shape {
    const exact = this.byText.get(sql);
    if (exact !== undefined) return exact;
    const n = normalize(sql);
    let s = this.byId.get(n.id);
    if (s === undefined) {
      s = { id: n.id, text: n.text, route: null, routeGen: 0 };
      if (this.byId.size >= MAX_SHAPES) this.byId.clear();
      this.byId.set(n.id, s);
    }
    if (sql.length <= MAX_TEXT_KEY) {
      if (this.byText.size >= MAX_TEXTS) this.byText.clear();
      this.byText.set(sql, s);
    }
    return s;
  }
}
