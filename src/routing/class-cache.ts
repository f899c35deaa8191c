// Statement classes, cached on the query shape: libpg-query's parse costs 30 µs for a simple SELECT and far more
// for an ORM's 2 KB query, so each shape is parsed once. Shapes are found by exact text, then by digest, which
// folds literals so `WHERE id = 1` and `WHERE id = 2` share one entry (the same digest the rate limits use).

import { classify, type Classification } from './classify.ts';
import type { Hint } from './hints.ts';
import type { Shape, ShapeCache } from '../sql/shapes.ts';

/** A statement's class and its leading hint; cached entries carry no hint (comments fold out of the digest). */
export interface StatementRoute {
  c: Classification;
  hint: Hint | null;
}

export class ClassCache {
  readonly shapes: ShapeCache;
  private writeFunctions: ReadonlySet<string> = new Set();
  private writeFunctionsKey = '';
  /** bumped when write_functions changes: classes of an older generation are computed again */
  private gen = 1;
  hits = 0;
  misses = 0;

  constructor(shapes: ShapeCache) {
    this.shapes = shapes;
  }

  /** write_functions changed (a reload): earlier answers may be wrong now. */
  setWriteFunctions(names: readonly string[]): void {
    const key = names.join(',');
    if (key === this.writeFunctionsKey) return;
    this.writeFunctionsKey = key;
    this.writeFunctions = new Set(names.map((n) => n.toLowerCase().slice(n.lastIndexOf('.') + 1)));
    this.gen++;
  }

  classOf(sql: string): Classification {
    return this.routeOf(sql).c;
  }

  /** The cached entry for the statement's shape, shared by every statement of that shape. */
  routeOf(sql: string): StatementRoute {
    return this.routeOfShape(this.shapes.shapeOf(sql), sql);
  }

  /** The same, for a shape already looked up (`sql` is one statement of it, parsed on a miss). */
  routeOfShape(shape: Shape, sql: string): StatementRoute {
    let r = shape.route;
    if (r === null || shape.routeGen !== this.gen) {
      this.misses++;
      r = { c: classify(sql, this.writeFunctions), hint: null };
      shape.route = r;
      shape.routeGen = this.gen;
    } else {
      this.hits++;
    }
    return r;
  }
}
