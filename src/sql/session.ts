// Finds, in a client's SQL text, statements whose effect outlives the transaction (what transaction pooling cannot carry).
import {
  SqlLexer,
  T_EOF,
  T_IDENT,
  T_LBRACKET,
  T_LPAREN,
  T_QIDENT,
  T_RBRACKET,
  T_RPAREN,
  T_SEMI,
  T_STRING,
} from './lexer.ts';

export type SessionFeature = 'LISTEN' | 'session advisory lock' | 'CREATE TEMP TABLE' | 'DECLARE WITH HOLD' | 'LOAD';
export interface SqlPrepare {
  kind: 'prepare';
  name: string;
  nameStart: number;
  nameEnd: number;
}
export interface SqlExecute {
  kind: 'execute';
  name: string;
  nameStart: number;
  nameEnd: number;
}
/** name null = DEALLOCATE [PREPARE] ALL (nameStart/End then span the ALL keyword) */
export interface SqlDeallocate {
  kind: 'deallocate';
  name: string | null;
  nameStart: number;
  nameEnd: number;
}
export interface SessionEffects {
  /** may change session settings (GUCs) beyond the transaction */
  changesSettings: boolean;
  /** the first session-only feature used, or null */
  feature: SessionFeature | null;
  /** set only when the text is exactly one statement (ignoring empty statements / trailing semicolons) that is PREPARE, EXECUTE or DEALLOCATE */
  prepared: SqlPrepare | SqlExecute | SqlDeallocate | null;
  /** PREPARE/EXECUTE/DEALLOCATE appear in a text with more than one statement (pooler cannot rewrite those) */
  preparedInMulti: boolean;
  /** DISCARD ALL appears (a statement starting DISCARD ALL) */
  discardAll: boolean;
  /** DEALLOCATE ALL appears (any statement) */
  deallocateAll: boolean;
}

// ---- pre-check -----------------------------------------------------------------------------------------------
// Must never miss a real hit (the lexer then confirms). A statement's first word can only follow the start of the
// text, a ';', a block comment's '*/' or a newline after a '--', with whitespace between; so `UPDATE t SET`,
// `offset`, `reset_at` or `settings` never reach the lexer. Native indexOf plus a regex that leads with '_'
// (rare, so irregexp skips ahead) measured 2-3x faster than one regex for all of it, or than spelling out
// set_config|advisory_lock; the looser '_config'/'_lock' only costs a lexer pass on a false candidate.
const ANYWHERE = /_config|_lock|\btemp(?:orary)?\b/i;

/** a PostgreSQL identifier character (scan.l ident_cont), so a keyword candidate is not just a word's prefix */
function isIdentChar(c: number): boolean {
  return c >= 128 || (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === 36;
}

function wordAt(s: string, p: number, word: string): boolean {
  return sameWord(s, p, word) && !isIdentChar(s.charCodeAt(p + word.length));
}

/** whitespace then a word that can start a statement with session effects, at s[p] */
function leadWordAt(s: string, p: number): boolean {
  let c = s.charCodeAt(p);
  // scan.l space: [ \t\n\r\f\v]
  while (c === 32 || (c >= 9 && c <= 13)) c = s.charCodeAt(++p);
  switch (c | 0x20) {
    case 115: // s
      return wordAt(s, p, 'set');
    case 114: // r
      return wordAt(s, p, 'reset');
    case 100: // d
      return wordAt(s, p, 'discard') || wordAt(s, p, 'declare') || wordAt(s, p, 'deallocate');
    case 108: // l
      return wordAt(s, p, 'listen') || wordAt(s, p, 'load');
    case 112: // p
      return wordAt(s, p, 'prepare');
    case 101: // e
      return wordAt(s, p, 'execute');
  }
  return false;
}

/** false when the text certainly has no session effects */
function mayHaveEffects(s: string): boolean {
  if (ANYWHERE.test(s) || leadWordAt(s, 0)) return true;
  for (let p = s.indexOf(';'); p >= 0; p = s.indexOf(';', p + 1)) if (leadWordAt(s, p + 1)) return true;
  for (let p = s.indexOf('*/'); p >= 0; p = s.indexOf('*/', p + 2)) if (leadWordAt(s, p + 2)) return true;
  const dash = s.indexOf('--');
  if (dash >= 0) {
    for (let p = s.indexOf('\n', dash); p >= 0; p = s.indexOf('\n', p + 1)) if (leadWordAt(s, p + 1)) return true;
    for (let p = s.indexOf('\r', dash); p >= 0; p = s.indexOf('\r', p + 1)) if (leadWordAt(s, p + 1)) return true;
  }
  return false;
}

// ---- keywords --------------------------------------------------------------------------------------------------
// Numeric codes (not an enum: erasableSyntaxOnly); matched against the source without allocating a lower-cased copy.
const K_SET = 1;
const K_RESET = 2;
const K_DISCARD = 3;
const K_LISTEN = 4;
const K_DECLARE = 5;
const K_LOAD = 6;
const K_PREPARE = 7;
const K_EXECUTE = 8;
const K_DEALLOCATE = 9;
const K_LOCAL = 10;
const K_TRANSACTION = 11;
const K_CONSTRAINTS = 12;
const K_ALL = 13;
const K_CREATE = 14;
const K_OR = 15;
const K_REPLACE = 16;
const K_GLOBAL = 17;
const K_TEMP = 18;
const K_RECURSIVE = 19;
const K_TABLE = 20;
const K_VIEW = 21;
const K_SEQUENCE = 22;
const K_INTO = 23;
const K_INSERT = 24;
const K_MERGE = 25;
const K_ON = 26;
const K_COMMIT = 27;
const K_DROP = 28;
const K_WITH = 29;
const K_HOLD = 30;
const K_FOR = 31;
const K_BEGIN = 32;
const K_ATOMIC = 33;
const K_CASE = 34;
const K_END = 35;
const K_UESCAPE = 36;
const K_SET_CONFIG = 37;
const K_ADVISORY_LOCK = 38;
const K_AS = 39;
/** flag on a code: reserved or type/function-name keyword, so not usable as a bare statement or table name (not a ColId) */
const RESERVED = 0x100;
const CODE = 0xff;

const KEYWORDS: [string, number][] = [
  ['set', K_SET],
  ['reset', K_RESET],
  ['discard', K_DISCARD],
  ['listen', K_LISTEN],
  ['declare', K_DECLARE],
  ['load', K_LOAD],
  ['prepare', K_PREPARE],
  ['execute', K_EXECUTE],
  ['deallocate', K_DEALLOCATE],
  ['local', K_LOCAL],
  ['transaction', K_TRANSACTION],
  ['constraints', K_CONSTRAINTS],
  ['or', K_OR],
  ['replace', K_REPLACE],
  ['global', K_GLOBAL],
  ['temp', K_TEMP],
  ['temporary', K_TEMP],
  ['recursive', K_RECURSIVE],
  ['view', K_VIEW],
  ['sequence', K_SEQUENCE],
  ['insert', K_INSERT],
  ['merge', K_MERGE],
  ['commit', K_COMMIT],
  ['drop', K_DROP],
  ['hold', K_HOLD],
  ['begin', K_BEGIN],
  ['atomic', K_ATOMIC],
  ['uescape', K_UESCAPE],
  ['set_config', K_SET_CONFIG],
  ['pg_advisory_lock', K_ADVISORY_LOCK],
  ['pg_advisory_lock_shared', K_ADVISORY_LOCK],
  ['pg_try_advisory_lock', K_ADVISORY_LOCK],
  ['pg_try_advisory_lock_shared', K_ADVISORY_LOCK],
];
// PostgreSQL's RESERVED_KEYWORD and TYPE_FUNC_NAME_KEYWORD lists (pg_get_keywords() catcode R and T, plus 16's system_user).
const RESERVED_WORDS =
  'all analyse analyze and any array as asc asymmetric authorization binary both case cast check collate collation ' +
  'column concurrently constraint create cross current_catalog current_date current_role current_schema current_time ' +
  'current_timestamp current_user default deferrable desc distinct do else end except false fetch for foreign freeze ' +
  'from full grant group having ilike in initially inner intersect into is isnull join lateral leading left like limit ' +
  'localtime localtimestamp natural not notnull null offset on only or order outer overlaps placing primary references ' +
  'returning right select session_user similar some symmetric system_user table tablesample then to trailing true ' +
  'union unique user using variadic verbose when where window with';
const RESERVED_CODES: Record<string, number> = {
  all: K_ALL,
  as: K_AS,
  case: K_CASE,
  create: K_CREATE,
  end: K_END,
  for: K_FOR,
  into: K_INTO,
  on: K_ON,
  or: K_OR,
  table: K_TABLE,
  with: K_WITH,
};

// words grouped by length and first letter, so a lookup compares against a word or two at most
const buckets: { word: string; code: number }[][] = [];
const bucketOf = (len: number, first: number): number => len * 32 + (first & 31);
function addKeyword(word: string, code: number): void {
  const list = (buckets[bucketOf(word.length, word.charCodeAt(0))] ??= []);
  const hit = list.find((e) => e.word === word);
  if (hit) hit.code |= code;
  else list.push({ word, code });
}
for (const [word, code] of KEYWORDS) addKeyword(word, code);
for (const word of RESERVED_WORDS.split(' ')) addKeyword(word, RESERVED | (RESERVED_CODES[word] ?? 0));

/** keyword code (with the RESERVED flag) of the unquoted identifier s[a, b), 0 if none of interest */
function keyword(s: string, a: number, b: number): number {
  const list = buckets[bucketOf(b - a, s.charCodeAt(a))];
  if (list === undefined) return 0;
  for (let i = 0; i < list.length; i++) {
    const e = list[i]!;
    if (sameWord(s, a, e.word)) return e.code;
  }
  return 0;
}

/** ASCII case-insensitive compare of s at a with a lower-case word of the same length */
function sameWord(s: string, a: number, word: string): boolean {
  for (let i = 0; i < word.length; i++) {
    const c = s.charCodeAt(a + i);
    const w = word.charCodeAt(i);
    // c | 0x20 only equals a lower-case letter for that letter in either case ('_' never has bit 0x20)
    if (c !== w && (c | 0x20) !== w) return false;
  }
  return true;
}

// ---- identifiers ---------------------------------------------------------------------------------------------------

/** NAMEDATALEN - 1: longer identifiers are truncated (at a character boundary) by the server */
const MAX_IDENT_BYTES = 63;

function truncateIdent(name: string): string {
  if (name.length <= MAX_IDENT_BYTES / 3) return name;
  let bytes = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    let w = 1;
    let units = 1;
    if (c >= 0x800) {
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < name.length) {
        w = 4;
        units = 2;
      } else {
        w = 3;
      }
    } else if (c >= 0x80) {
      w = 2;
    }
    if (bytes + w > MAX_IDENT_BYTES) return name.slice(0, i);
    bytes += w;
    i += units - 1;
  }
  return name;
}

/** unquoted identifier as the server stores it: ASCII folded to lower case (UTF-8 servers leave other letters alone) */
function foldIdent(s: string, a: number, b: number): string {
  const raw = s.slice(a, b);
  return truncateIdent(/[A-Z]/.test(raw) ? raw.replace(/[A-Z]/g, (ch) => String.fromCharCode(ch.charCodeAt(0) | 0x20)) : raw);
}

/** body of "..." (a at the opening quote) with "" unescaped; null if unterminated or empty (both server errors) */
function quotedBody(s: string, a: number, b: number): string | null {
  let out = '';
  let from = a + 1;
  for (let p = a + 1; p < b; p++) {
    if (s.charCodeAt(p) !== 34) continue;
    if (p === b - 1) {
      out += s.slice(from, p);
      return out === '' ? null : out;
    }
    if (s.charCodeAt(p + 1) !== 34) return null;
    out += s.slice(from, p + 1);
    from = p + 2;
    p++;
  }
  return null;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  if (l >= 97 && l <= 102) return l - 87;
  return -1;
}

function hexRun(s: string, p: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) {
    const h = hexValue(s.charCodeAt(p + i));
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

/** U&"..." body after unescaping \XXXX, \+XXXXXX and \\ (or the UESCAPE character); null where the server would reject it */
function unicodeBody(body: string, esc: number): string | null {
  let out = '';
  let high = 0; // pending UTF-16 high surrogate
  for (let p = 0; p < body.length; ) {
    const c = body.charCodeAt(p);
    if (c !== esc) {
      if (high !== 0) return null;
      out += body[p];
      p++;
      continue;
    }
    let cp: number;
    if (body.charCodeAt(p + 1) === esc) {
      if (high !== 0) return null;
      out += body[p];
      p += 2;
      continue;
    } else if (body.charCodeAt(p + 1) === 43) {
      cp = hexRun(body, p + 2, 6);
      p += 8;
    } else {
      cp = hexRun(body, p + 1, 4);
      p += 5;
    }
    if (cp <= 0 || cp > 0x10ffff) return null;
    if (high !== 0) {
      if (cp < 0xdc00 || cp > 0xdfff) return null;
      out += String.fromCharCode(high, cp);
      high = 0;
    } else if (cp >= 0xd800 && cp <= 0xdbff) {
      high = cp;
    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
      return null;
    } else {
      out += String.fromCodePoint(cp);
    }
  }
  return high !== 0 || out === '' ? null : out;
}

/** valid UESCAPE character of the string constant s[a, b): exactly 'c', not a hex digit, '+', quote or whitespace */
function uescapeChar(s: string, a: number, b: number): number {
  if (b - a !== 3 || s.charCodeAt(a) !== 39 || s.charCodeAt(b - 1) !== 39) return -1;
  const c = s.charCodeAt(a + 1);
  if (hexValue(c) >= 0 || c === 43 || c === 39 || c === 34 || c <= 32) return -1;
  return c;
}

// ---- scanner ---------------------------------------------------------------------------------------------------

/** first tokens of each statement kept for the PREPARE/EXECUTE/DEALLOCATE and SET/DISCARD forms */
const HEAD = 6;
const headKind = new Int32Array(HEAD);
const headStart = new Int32Array(HEAD);
const headEnd = new Int32Array(HEAD);
const headCode = new Int32Array(HEAD);

const P_NONE = 0;
const P_PREPARE = 1;
const P_EXECUTE = 2;
const P_DEALLOCATE = 3;

const lexer = new SqlLexer();

// Scan state lives in module variables (one synchronous scan at a time), so a scan allocates nothing unless it finds something.
let changesSettings = false;
let feature: SessionFeature | null = null;
let featurePos = 0;
let discardAll = false;
let deallocateAll = false;
/** PREPARE/EXECUTE/DEALLOCATE statements seen */
let preparedCount = 0;
/** the last one that parsed: P_* kind, name span, name (null = ALL) */
let pKind = P_NONE;
let pStart = 0;
let pEnd = 0;
let pName: string | null = null;

function addFeature(f: SessionFeature, pos: number): void {
  if (feature === null || pos < featurePos) {
    feature = f;
    featurePos = pos;
  }
}

const QUOTED_FUNCTIONS: [string, number][] = [
  ['set_config', K_SET_CONFIG],
  ['pg_advisory_lock', K_ADVISORY_LOCK],
  ['pg_advisory_lock_shared', K_ADVISORY_LOCK],
  ['pg_try_advisory_lock', K_ADVISORY_LOCK],
  ['pg_try_advisory_lock_shared', K_ADVISORY_LOCK],
];

/** "quoted identifier" at [a, b) spelling exactly a function we watch (quoted names are case-sensitive) */
function quotedCode(s: string, a: number, b: number): number {
  if (s.charCodeAt(a) !== 34 || s.charCodeAt(b - 1) !== 34) return 0;
  for (const [word, code] of QUOTED_FUNCTIONS) if (b - a === word.length + 2 && s.startsWith(word, a + 1)) return code;
  return 0;
}

/**
 * The statement name at head token i (plus an optional UESCAPE clause); sets pName/pStart/pEnd and returns the index
 * of the head token after it, or -1 if it is not a name the server would accept.
 */
function parseName(s: string, i: number, tokens: number): number {
  if (i >= tokens) return -1;
  const kind = headKind[i]!;
  const a = headStart[i]!;
  const b = headEnd[i]!;
  if (kind === T_IDENT) {
    if ((headCode[i]! & RESERVED) !== 0) return -1;
    pName = foldIdent(s, a, b);
    pStart = a;
    pEnd = b;
    return i + 1;
  }
  if (kind !== T_QIDENT) return -1;
  if (s.charCodeAt(a) === 34) {
    const body = quotedBody(s, a, b);
    if (body === null) return -1;
    pName = truncateIdent(body);
    pStart = a;
    pEnd = b;
    return i + 1;
  }
  // U&"...": the server joins a following UESCAPE 'c' to it, so the name span includes that clause
  const body = quotedBody(s, a + 2, b);
  if (body === null) return -1;
  let esc = 92;
  let next = i + 1;
  let end = b;
  if (next < tokens && next < HEAD && headKind[next] === T_IDENT && (headCode[next]! & CODE) === K_UESCAPE) {
    if (next + 1 >= HEAD || next + 1 >= tokens || headKind[next + 1] !== T_STRING) return -1;
    esc = uescapeChar(s, headStart[next + 1]!, headEnd[next + 1]!);
    if (esc < 0) return -1;
    end = headEnd[next + 1]!;
    next += 2;
  }
  const name = unicodeBody(body, esc);
  if (name === null) return -1;
  pName = truncateIdent(name);
  pStart = a;
  pEnd = end;
  return next;
}

/** statement-start rules, once the statement's tokens (tokens of them, the first HEAD kept) are known */
function endStatement(s: string, tokens: number): void {
  const head = headCode[0]! & CODE;
  if (headKind[0] !== T_IDENT || head === 0 || head > K_DEALLOCATE) return;
  const second = tokens > 1 && headKind[1] === T_IDENT ? headCode[1]! & CODE : 0;
  switch (head) {
    case K_SET:
      if (tokens > 1 && second !== K_LOCAL && second !== K_TRANSACTION && second !== K_CONSTRAINTS) changesSettings = true;
      return;
    case K_RESET:
      changesSettings = true;
      return;
    case K_DISCARD:
      changesSettings = true;
      if (second === K_ALL) discardAll = true;
      return;
    case K_LISTEN:
      addFeature('LISTEN', headStart[0]!);
      return;
    case K_LOAD:
      addFeature('LOAD', headStart[0]!);
      return;
    case K_DECLARE:
      return; // WITH HOLD is found while scanning
  }
  preparedCount++;
  // only the last PREPARE/EXECUTE/DEALLOCATE is kept: prepared is reported only for a single-statement text
  pKind = P_NONE;
  if (head === K_DEALLOCATE) {
    // DEALLOCATE PREPARE x | DEALLOCATE x | ... ALL; a lone "DEALLOCATE prepare" names a statement "prepare"
    let i = 1;
    if (second === K_PREPARE && tokens > 2) i = 2;
    if (i < tokens && headKind[i] === T_IDENT && (headCode[i]! & CODE) === K_ALL) {
      deallocateAll = true;
      if (tokens !== i + 1) return;
      pName = null;
      pStart = headStart[i]!;
      pEnd = headEnd[i]!;
      pKind = P_DEALLOCATE;
      return;
    }
    if (parseName(s, i, tokens) === tokens) pKind = P_DEALLOCATE;
    return;
  }
  const after = parseName(s, 1, tokens);
  if (after < 0) return;
  if (head === K_EXECUTE) {
    // EXECUTE name [ ( args ) ]
    if (after === tokens || (after < HEAD && headKind[after] === T_LPAREN)) pKind = P_EXECUTE;
  } else if (after < tokens && after < HEAD) {
    // PREPARE name [ ( types ) ] AS statement
    if (headKind[after] === T_LPAREN || (headKind[after] === T_IDENT && (headCode[after]! & CODE) === K_AS)) pKind = P_PREPARE;
  }
}

/** null (without allocating) when the text has no session effects at all: the common case, on the hot path. */
export function sessionEffects(sql: string): SessionEffects | null {
  return mayHaveEffects(sql) ? scanSessionEffects(sql) : null;
}

/** sessionEffects without the pre-check: every token is looked at (for tests comparing the two, and for fuzzing) */
export function scanSessionEffects(s: string): SessionEffects | null {
  changesSettings = false;
  feature = null;
  featurePos = 0;
  discardAll = false;
  deallocateAll = false;
  preparedCount = 0;
  pKind = P_NONE;
  pName = null;

  const lx = lexer;
  lx.reset(s);
  let statements = 0;
  let tokens = 0; // in the current statement; 0 = between statements
  let depth = 0; // brackets: a ';' inside them does not end the statement
  let atomic = false; // inside BEGIN ATOMIC ... END, where ';' does not end the statement either
  let caseDepth = 0;
  let prev = 0; // code of the previous token
  let createState = 0;
  let createPos = 0;
  let tempPos = -1; // a CREATE TEMP ... in this statement, pending its ON COMMIT DROP check
  let intoState = 0;
  let intoPos = 0;
  let onState = 0;
  let commitDrop = false;
  let declare = false; // in a DECLARE statement, before its FOR

  for (;;) {
    const k = lx.next();
    if (k === T_SEMI && depth === 0 && !atomic) {
      if (tokens > 0) {
        endStatement(s, tokens);
        if (tempPos >= 0 && !commitDrop) addFeature('CREATE TEMP TABLE', tempPos);
        tokens = 0;
      }
      continue;
    }
    if (k === T_EOF) {
      if (tokens > 0) {
        endStatement(s, tokens);
        if (tempPos >= 0 && !commitDrop) addFeature('CREATE TEMP TABLE', tempPos);
      }
      break;
    }
    const full = k === T_IDENT ? keyword(s, lx.start, lx.end) : k === T_QIDENT ? quotedCode(s, lx.start, lx.end) : 0;
    const code = full & CODE;
    if (tokens === 0) {
      statements++;
      createState = intoState = onState = 0;
      tempPos = -1;
      commitDrop = false;
      declare = k === T_IDENT && code === K_DECLARE;
      prev = 0;
    }
    if (tokens < HEAD) {
      headKind[tokens] = k;
      headStart[tokens] = lx.start;
      headEnd[tokens] = lx.end;
      headCode[tokens] = full;
    }
    tokens++;

    if (code === K_SET_CONFIG) changesSettings = true;
    else if (code === K_ADVISORY_LOCK) addFeature('session advisory lock', lx.start);

    // CREATE [OR REPLACE] [GLOBAL | LOCAL] TEMP | TEMPORARY [RECURSIVE] TABLE | VIEW | SEQUENCE
    const c = k === T_IDENT ? code : 0;
    switch (createState) {
      case 1:
        createState = c === K_OR ? 2 : c === K_GLOBAL || c === K_LOCAL ? 4 : c === K_TEMP ? 5 : 0;
        break;
      case 2:
        createState = c === K_REPLACE ? 3 : 0;
        break;
      case 3:
        createState = c === K_GLOBAL || c === K_LOCAL ? 4 : c === K_TEMP ? 5 : 0;
        break;
      case 4:
        createState = c === K_TEMP ? 5 : 0;
        break;
      case 5:
      case 6:
        if (c === K_VIEW || (createState === 5 && (c === K_TABLE || c === K_SEQUENCE))) {
          if (tempPos < 0) tempPos = createPos;
          createState = 0;
        } else {
          createState = createState === 5 && c === K_RECURSIVE ? 6 : 0;
        }
        break;
    }
    if (c === K_CREATE) {
      createState = 1;
      createPos = lx.start;
    }

    // SELECT ... INTO [GLOBAL | LOCAL] TEMP | TEMPORARY [TABLE] name (but INSERT INTO temp ... names a table "temp")
    switch (intoState) {
      case 1:
        intoState = c === K_GLOBAL || c === K_LOCAL ? 2 : c === K_TEMP ? 3 : 0;
        break;
      case 2:
        intoState = c === K_TEMP ? 3 : 0;
        break;
      case 3:
        // "INTO temp FROM ..." or "INTO temp.x" is a plain table name; a temp table's name (or TABLE) follows TEMP
        if (c === K_TABLE || k === T_QIDENT || (k === T_IDENT && (full & RESERVED) === 0)) {
          addFeature('CREATE TEMP TABLE', intoPos);
        }
        intoState = 0;
        break;
    }
    if (c === K_INTO && prev !== K_INSERT && prev !== K_MERGE) {
      intoState = 1;
      intoPos = lx.start;
    }

    // ON COMMIT DROP: such a temp table dies with its transaction
    if (onState === 2 && c === K_DROP) commitDrop = true;
    onState = c === K_ON ? 1 : onState === 1 && c === K_COMMIT ? 2 : 0;

    if (declare) {
      if (c === K_FOR) declare = false;
      else if (c === K_HOLD && prev === K_WITH) {
        addFeature('DECLARE WITH HOLD', headStart[0]!);
        declare = false;
      }
    }

    if (k === T_LPAREN || k === T_LBRACKET) depth++;
    else if ((k === T_RPAREN || k === T_RBRACKET) && depth > 0) depth--;
    else if (c === K_ATOMIC && prev === K_BEGIN) {
      atomic = true;
      caseDepth = 0;
    } else if (atomic && c === K_CASE) caseDepth++;
    else if (atomic && c === K_END) {
      if (caseDepth > 0) caseDepth--;
      else atomic = false;
    }
    prev = c;
  }

  const prepared = statements === 1 && preparedCount === 1 && pKind !== P_NONE;
  const preparedInMulti = statements > 1 && preparedCount > 0;
  if (!changesSettings && feature === null && !prepared && !preparedInMulti && !discardAll && !deallocateAll) return null;
  return {
    changesSettings,
    feature,
    prepared: prepared ? preparedStatement() : null,
    preparedInMulti,
    discardAll,
    deallocateAll,
  };
}

function preparedStatement(): SqlPrepare | SqlExecute | SqlDeallocate {
  if (pKind === P_DEALLOCATE) return { kind: 'deallocate', name: pName, nameStart: pStart, nameEnd: pEnd };
  const name = pName!;
  if (pKind === P_PREPARE) return { kind: 'prepare', name, nameStart: pStart, nameEnd: pEnd };
  return { kind: 'execute', name, nameStart: pStart, nameEnd: pEnd };
}
