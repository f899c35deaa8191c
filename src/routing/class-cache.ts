// Statement classes, cached: libpg-query's parse costs 30 µs for a simple SELECT and far more for an ORM's
// 2 KB query, so each query shape is parsed once. The exact text is tried first (drivers repeat it verbatim),
// then the digest, which folds literals so `WHERE id = 1` and `WHERE id = 2` share one entry.

import { classify, type Classification } from './classify.ts';
import { normalize } from '../sql/digest.ts';

/** Beyond these sizes a cache starts over: cheaper than LRU bookkeeping, and a workload's shapes refill it fast. */
const MAX_TEXTS = 4096;
const MAX_DIGESTS = 16384;
/** Longer texts are only cached by digest, so the exact-text map cannot hold megabytes of SQL. */
const MAX_TEXT_KEY = 4096;

export class ClassCache {
  private readonly byText = new Map<string, Classification>();
  private readonly byDigest = new Map<string, Classification>();
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
    const exact = this.byText.get(sql);
    if (exact !== undefined) {
      this.hits++;
      return exact;
    }
    const id = normalize(sql).id;
    let c = this.byDigest.get(id);
    if (c === undefined) {
      this.misses++;
      c = classify(sql, this.writeFunctions);
      if (this.byDigest.size >= MAX_DIGESTS) this.byDigest.clear();
      this.byDigest.set(id, c);
    } else {
      this.hits++;
    }
    if (sql.length <= MAX_TEXT_KEY) {
      if (this.byText.size >= MAX_TEXTS) this.byText.clear();
      this.byText.set(sql, c);
    }
    return c;
  }
}
