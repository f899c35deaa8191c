// Statement classes, cached: libpg-query's parse costs 30 µs for a simple SELECT and far more for an ORM's
// 2 KB query, so each query shape is parsed once. The exact text is tried first (drivers repeat it verbatim),
// then the digest, which folds literals so `WHERE id = 1` and `WHERE id = 2` share one entry.

import { classify, type Classification } from './classify.ts';
import type { Hint } from './hints.ts';
import { normalize } from '../sql/digest.ts';

/** A statement's class and its leading hint; cached entries carry no hint (comments fold out of the digest). */
export interface StatementRoute {
  c: Classification;
  hint: Hint | null;
}

/** Beyond these sizes a cache starts over: cheaper than LRU bookkeeping, and a workload's shapes refill it fast. */
const MAX_TEXTS = 4096;
const MAX_DIGESTS = 16384;
/** Longer texts are only cached by digest, so the exact-text map cannot hold megabytes of SQL. */
const MAX_TEXT_KEY = 4096;

export class ClassCache {
  private readonly byText = new Map<string, StatementRoute>();
  private readonly byDigest = new Map<string, StatementRoute>();
  private writeFunctions: ReadonlySet<string> = new Set();
  private writeFunctionsKey = '';
  hits = 0;
  misses = 0;

  /** write_functions changed (a reload): earlier answers may be wrong now. */
  setWriteFunctions(names: readonly string[]): void {
    const key = names.join(',');
    if (key === this.writeFunctionsKey) return;
    this.writeFunctionsKey = key;
    this.writeFunctions = new Set(names.map((n) => n.toLowerCase().slice(n.lastIndexOf('.') + 1)));
    this.byText.clear();
    this.byDigest.clear();
  }

  classOf(sql: string): Classification {
    return this.routeOf(sql).c;
  }

  /** The cached entry for the statement's shape, shared by every statement of that shape. */
  routeOf(sql: string): StatementRoute {
    const exact = this.byText.get(sql);
    if (exact !== undefined) {
      this.hits++;
      return exact;
    }
    const id = normalize(sql).id;
    let e = this.byDigest.get(id);
    if (e === undefined) {
      this.misses++;
      e = { c: classify(sql, this.writeFunctions), hint: null };
      if (this.byDigest.size >= MAX_DIGESTS) this.byDigest.clear();
      this.byDigest.set(id, e);
    } else {
      this.hits++;
    }
    if (sql.length <= MAX_TEXT_KEY) {
      if (this.byText.size >= MAX_TEXTS) this.byText.clear();
      this.byText.set(sql, e);
    }
    return e;
  }
}
