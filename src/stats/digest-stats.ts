// Per-digest statistics for each (database, user): calls, errors, rows, time and a latency histogram, bounded by max_digests (LRU).

/** Histogram buckets per power of two of microseconds: each bucket is ~9% wide, so a percentile is within ~5%. */
const PER_OCTAVE = 8;
/** 2^32 µs is over an hour; anything slower lands in the last bucket. */
const BUCKETS = 32 * PER_OCTAVE;

export class DigestStat {
  readonly id: string;
  readonly text: string;
  readonly database: string;
  readonly user: string;
  calls = 0;
  errors = 0;
  rows = 0;
  totalMs = 0;
  minMs = Infinity;
  maxMs = 0;
  onPrimary = 0;
  onReplica = 0;
  /** refused by a rate or concurrency limit (a refused statement did not run: it is not a call) */
  limited = 0;
  /** refused by a block rule */
  blocked = 0;
  private readonly hist = new Uint32Array(BUCKETS);
  /** LRU links, owned by DigestStats */
  prev: DigestStat | null = null;
  next: DigestStat | null = null;
  evicted = false;

  constructor(id: string, text: string, database: string, user: string) {
    this.id = id;
    this.text = text;
    this.database = database;
    this.user = user;
  }

  /** A statement of this digest finished. */
  record(ms: number, rows: number, ok: boolean, onReplica: boolean): void {
    this.calls++;
    if (!ok) this.errors++;
    this.rows += rows;
    this.totalMs += ms;
    if (ms < this.minMs) this.minMs = ms;
    if (ms > this.maxMs) this.maxMs = ms;
    if (onReplica) this.onReplica++;
    else this.onPrimary++;
    const us = ms * 1000;
    let b = us < 1 ? 0 : Math.floor(Math.log2(us) * PER_OCTAVE);
    if (b >= BUCKETS) b = BUCKETS - 1;
    this.hist[b]!++;
  }

  get meanMs(): number {
    return this.calls === 0 ? 0 : this.totalMs / this.calls;
  }

  /**
   * The q-quantile of the recorded latencies in ms (q in 0..1): the middle of the histogram bucket holding it,
   * clamped to the fastest and slowest seen, so it always lies within the recorded distribution.
   */
  percentile(q: number): number {
    if (this.calls === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.calls));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.hist[b]!;
      if (seen >= rank) {
        const mid = 2 ** ((b + 0.5) / PER_OCTAVE) / 1000;
        return Math.min(this.maxMs, Math.max(this.minMs, b === 0 ? this.minMs : mid));
      }
    }
    return this.maxMs;
  }
}

/** The statistics of one (database, user): digest id → stat. */
export type DigestTable = Map<string, DigestStat>;

export class DigestStats {
  /** 0 turns statistics off */
  max: number;
  size = 0;
  private readonly tables = new Map<string, DigestTable>();
  /** most recently used first */
  private head: DigestStat | null = null;
  private tail: DigestStat | null = null;
  evictions = 0;

  constructor(max: number) {
    this.max = max;
  }

  get enabled(): boolean {
    return this.max > 0;
  }

  /** The table of one (database, user); clients look it up once, at login. */
  tableFor(database: string, user: string): DigestTable {
    const key = `${database}\u0000${user}`;
    let t = this.tables.get(key);
    if (t === undefined) {
      t = new Map();
      this.tables.set(key, t);
    }
    return t;
  }

  /** The stat of a digest in a table, created (evicting the least recently used) if new; marked as just used. */
  entry(table: DigestTable, id: string, text: string, database: string, user: string): DigestStat {
    let s = table.get(id);
    if (s === undefined) {
      s = new DigestStat(id, text, database, user);
      table.set(id, s);
      this.size++;
      this.linkFront(s);
      while (this.size > this.max && this.tail !== null) this.evict(this.tail);
      return s;
    }
    if (this.head !== s) {
      this.unlink(s);
      this.linkFront(s);
    }
    return s;
  }

  /** max_digests changed (a reload). */
  resize(max: number): void {
    this.max = max;
    while (this.size > this.max && this.tail !== null) this.evict(this.tail);
  }

  /** Every stat, most recently used first. */
  *all(): IterableIterator<DigestStat> {
    for (let s = this.head; s !== null; s = s.next) yield s;
  }

  /** The k most called digests (of any database and user). */
  top(k: number): DigestStat[] {
    const out: DigestStat[] = [];
    for (const s of this.all()) out.push(s);
    out.sort((a, b) => b.calls - a.calls);
    return out.length > k ? out.slice(0, k) : out;
  }

  private evict(s: DigestStat): void {
    this.unlink(s);
    this.tables.get(`${s.database}\u0000${s.user}`)?.delete(s.id);
    s.evicted = true;
    this.size--;
    this.evictions++;
  }

  private linkFront(s: DigestStat): void {
    s.prev = null;
    s.next = this.head;
    if (this.head !== null) this.head.prev = s;
    this.head = s;
    if (this.tail === null) this.tail = s;
  }

  private unlink(s: DigestStat): void {
    if (s.prev !== null) s.prev.next = s.next;
    else this.head = s.next;
    if (s.next !== null) s.next.prev = s.prev;
    else this.tail = s.prev;
    s.prev = null;
    s.next = null;
  }
}
