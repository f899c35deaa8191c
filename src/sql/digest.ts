// Query fingerprinting: normalizes SQL to a canonical shape (constants -> $n, canonical spacing, folded lists) plus a stable 64-bit id.
import {
  SqlLexer,
  T_CAST,
  T_COLON,
  T_COMMA,
  T_DOT,
  T_EOF,
  T_IDENT,
  T_LBRACKET,
  T_LPAREN,
  T_NUMBER,
  T_OP,
  T_PARAM,
  T_QIDENT,
  T_RBRACKET,
  T_RPAREN,
  T_SEMI,
  T_STRING,
} from './lexer.ts';

export interface NormalizedQuery {
  /** canonical text; top-level statements joined by '; ' */
  text: string;
  /** FNV-1a 64 of the UTF-8 bytes of text, 16 lower-case hex chars */
  id: string;
  /** number of non-empty top-level statements */
  statements: number;
  /** first unquoted keyword of each statement, lower case ('' if a statement has none) */
  firstKeywords: string[];
}

// ---- word classification (no string allocation: compared against the lower-cased output buffer) ------------

const W_IN = 1;
const W_AS = 2;
const W_ARRAY = 3;
const W_VALUES = 4;
const W_BEGIN = 5;
const W_ATOMIC = 6;
const W_CASE = 7;
const W_END = 8;
const W_NOT = 9;
const W_MATERIALIZED = 10;
/** words that can continue a multi-word type name after '::' (double precision, character varying, time with time zone) */
const W_TYPECONT = 11;
const W_OTHER = 12;

/** bit set on a word's class: a following '(' is separated by a space (keyword, not a function call) */
const SPACE_PAREN = 0x100;

interface WordInfo {
  word: string;
  cls: number;
}
// Open-addressing table keyed by a rolling hash computed while the identifier is lower-cased, so the usual
// miss costs one probe instead of a scan over candidate words.
const WORD_SLOTS = 1024;
const wordSlot = new Int16Array(WORD_SLOTS).fill(-1);
const wordList: WordInfo[] = [];

function wordHash(h: number, c: number): number {
  return (Math.imul(h, 31) + c) | 0;
}
function slotOf(h: number, len: number): number {
  return (h ^ (h >>> 10) ^ len) & (WORD_SLOTS - 1);
}
function addWord(word: string, cls: number): void {
  let h = 0;
  for (let i = 0; i < word.length; i++) h = wordHash(h, word.charCodeAt(i));
  let slot = slotOf(h, word.length);
  while (wordSlot[slot] !== -1) slot = (slot + 1) & (WORD_SLOTS - 1);
  wordSlot[slot] = wordList.length;
  wordList.push({ word, cls });
}
addWord('in', W_IN | SPACE_PAREN);
addWord('as', W_AS | SPACE_PAREN);
addWord('array', W_ARRAY);
addWord('values', W_VALUES | SPACE_PAREN);
addWord('begin', W_BEGIN);
addWord('atomic', W_ATOMIC);
addWord('case', W_CASE | SPACE_PAREN);
addWord('end', W_END);
addWord('not', W_NOT | SPACE_PAREN);
addWord('materialized', W_MATERIALIZED | SPACE_PAREN);
for (const w of ['precision', 'varying', 'with', 'without', 'time', 'zone']) addWord(w, W_TYPECONT | (w === 'with' ? SPACE_PAREN : 0));
for (const w of [
  'on', 'or', 'by', 'is', 'to', 'and', 'any', 'all', 'set', 'from', 'join', 'some', 'into', 'when', 'then', 'else',
  'like', 'where', 'using', 'union', 'ilike', 'select', 'exists', 'having', 'except', 'filter', 'return', 'within',
  'lateral', 'default', 'between', 'returning', 'intersect',
]) {
  addWord(w, W_OTHER | SPACE_PAREN);
}

// ---- reusable buffers (normalize is synchronous and non-reentrant) --------------------------------------------

// Output is written as UTF-8 bytes: the id is defined over UTF-8, and Node decodes an (almost always ASCII) byte
// buffer far faster than String.fromCharCode over a code-unit array.
let out = Buffer.allocUnsafeSlow(4096);

const F_PLAIN = 0;
/** IN (...) or ARRAY[...]: folds to one placeholder if every item is a constant */
const F_LIST = 1;
/** one row of a VALUES list */
const F_ROW = 2;
/** type modifier after '::' / AS (varchar(10), numeric(10,2), int[3]): numbers stay literal */
const F_TYPMOD = 3;

// item states inside F_LIST / F_ROW frames
const I_START = 0;
const I_CONST = 1;
const I_SIGN = 2;
const I_CAST = 3;

let cap = 0;
let fKindA = new Uint8Array(0);
let fOkA = new Uint8Array(0);
let fItemA = new Uint8Array(0);
let fValuesA = new Uint8Array(0);
let fCountA = new Int32Array(0);
let fOutA = new Int32Array(0);
let fParamA = new Int32Array(0);
let fRowEndA = new Int32Array(0);
let fRowParamA = new Int32Array(0);
let fRowArityA = new Int32Array(0);
growFrames(64);

function growFrames(size: number): void {
  const grow = <T extends Uint8Array | Int32Array>(a: T, make: (n: number) => T): T => {
    const b = make(size);
    b.set(a);
    return b;
  };
  fKindA = grow(fKindA, (n) => new Uint8Array(n));
  fOkA = grow(fOkA, (n) => new Uint8Array(n));
  fItemA = grow(fItemA, (n) => new Uint8Array(n));
  fValuesA = grow(fValuesA, (n) => new Uint8Array(n));
  fCountA = grow(fCountA, (n) => new Int32Array(n));
  fOutA = grow(fOutA, (n) => new Int32Array(n));
  fParamA = grow(fParamA, (n) => new Int32Array(n));
  fRowEndA = grow(fRowEndA, (n) => new Int32Array(n));
  fRowParamA = grow(fRowParamA, (n) => new Int32Array(n));
  fRowArityA = grow(fRowArityA, (n) => new Int32Array(n));
  cap = size;
}

// values-list states per frame
const V_NONE = 0;
/** after VALUES or after "row," : a '(' starts a row */
const V_EXPECT_ROW = 1;
/** just after a row's ')' */
const V_AFTER_ROW = 2;

// spacing context of the previously written token
const S_NONE = 0; // start of statement, or after ( [ . :: : — no space before the next token
const S_TIGHT_PAREN = 1; // identifier that a following '(' attaches to (function call)
const S_SPACE = 2;

const lexer = new SqlLexer();

/**
 * Normalize one query string (possibly several ';'-separated statements) to its canonical shape.
 * Literal constants and existing $n parameters are both replaced by $1, $2, ... in order of appearance, so
 * the simple-protocol and extended-protocol spellings of one statement get the same text and id.
 */
export function normalize(sql: string): NormalizedQuery {
  const lx = lexer;
  lx.reset(sql);
  const src = sql;
  // worst case per source char: a 1-char constant becoming "$<digits>" plus a separating space
  // (non-ASCII needs at most 3 UTF-8 bytes per UTF-16 code unit, which the same bound covers)
  const need = sql.length * (3 + String(sql.length).length) + 16;
  if (out.length < need) out = Buffer.allocUnsafeSlow(Math.max(need, out.length * 2));
  const buf = out;
  // nesting depth can never exceed the character count, so frames are sized once here and the hot loop reads
  // them through locals (module-level `let`s cost a context load and TDZ check on every access)
  if (cap < sql.length + 2) growFrames(Math.max(sql.length + 2, cap * 2));
  const fKind = fKindA;
  const fOk = fOkA;
  const fItem = fItemA;
  const fValues = fValuesA;
  const fCount = fCountA;
  const fOut = fOutA;
  const fParam = fParamA;
  const fRowEnd = fRowEndA;
  const fRowParam = fRowParamA;
  const fRowArity = fRowArityA;

  let o = 0; // output length
  let param = 0; // last placeholder number
  let statements = 0;
  const firstKeywords: string[] = [];
  let inStmt = false;
  let needKw = false;
  let depth = 0;
  let space = S_NONE;
  let prevWord = 0;
  let prevString = false;
  let tstate = 0; // 0 none, 1 expect type name (after :: / AS), 2 after a type name word
  let atomic = false; // inside BEGIN ATOMIC ... END, where ';' does not end the statement
  let caseDepth = 0;
  fKind[0] = F_PLAIN;
  fValues[0] = V_NONE;

  for (;;) {
    const k = lx.next();
    if (k === T_EOF) break;
    // adjacent string constants are one constant (the only valid way they meet is a newline continuation)
    if (k === T_STRING && prevString) continue;
    prevString = false;

    if (k === T_SEMI && depth === 0 && !atomic) {
      if (inStmt) {
        if (needKw) firstKeywords.push('');
        inStmt = false;
      }
      continue;
    }
    if (!inStmt) {
      if (statements > 0) {
        buf[o++] = 59; // ;
        buf[o++] = 32;
      }
      statements++;
      inStmt = true;
      needKw = true;
      depth = 0;
      space = S_NONE;
      prevWord = 0;
      tstate = 0;
      fKind[0] = F_PLAIN;
      fValues[0] = V_NONE;
    }

    // type names after '::' / AS: a '(' or '[' right after the name is a type modifier, not an expression
    let typmod = false;
    let typeStart = false; // this identifier starts a type name
    let typeCont = false; // this identifier must be a continuation word to stay in the type name
    if (tstate !== 0) {
      if (tstate === 1) {
        typeStart = k === T_IDENT;
        tstate = k === T_IDENT || k === T_QIDENT ? 2 : 0;
      } else if (k === T_DOT) {
        tstate = 1;
      } else if (k === T_LPAREN || k === T_LBRACKET) {
        typmod = true;
        tstate = 0;
      } else if (k === T_IDENT) {
        typeCont = true;
      } else {
        tstate = 0;
      }
    }

    // constant-list bookkeeping for the innermost frame
    const fk = fKind[depth]!;
    const closes = depth > 0 && (k === T_RPAREN || k === T_RBRACKET);
    if ((fk === F_LIST || fk === F_ROW) && fOk[depth] === 1 && !closes) {
      const st = fItem[depth]!;
      if (k === T_STRING || k === T_NUMBER || k === T_PARAM) {
        if (st === I_START || st === I_SIGN) fItem[depth] = I_CONST;
        else fOk[depth] = 0;
      } else if (k === T_COMMA && (st === I_CONST || st === I_CAST)) {
        fItem[depth] = I_START;
        fCount[depth]!++;
      } else if (k === T_OP && st === I_START && lx.end - lx.start === 1 && (src.charCodeAt(lx.start) === 45 || src.charCodeAt(lx.start) === 43)) {
        fItem[depth] = I_SIGN;
      } else if (k === T_CAST && st === I_CONST) {
        fItem[depth] = I_CAST;
      } else if (st === I_CAST && (k === T_IDENT || k === T_QIDENT || k === T_DOT)) {
        // type name of a cast on a list item
      } else {
        fOk[depth] = 0;
      }
    }

    // VALUES row sequencing at this depth
    let isRow = false;
    const vs = fValues[depth]!;
    if (vs === V_EXPECT_ROW) {
      if (k === T_LPAREN && !typmod) isRow = true;
      else fValues[depth] = V_NONE;
    } else if (vs === V_AFTER_ROW) {
      if (k === T_COMMA) {
        fValues[depth] = V_EXPECT_ROW;
      } else {
        fValues[depth] = V_NONE;
      }
    }

    if (k === T_IDENT) {
      // lower-case ASCII only, like the server's downcase_identifier for multibyte encodings
      if (space !== S_NONE) buf[o++] = 32;
      const ws = o;
      let h = 0;
      for (let i = lx.start, e = lx.end; i < e; i++) {
        const c = src.charCodeAt(i);
        if (c < 0x80) {
          const l = c >= 65 && c <= 90 ? c + 32 : c;
          buf[o++] = l;
          h = (Math.imul(h, 31) + l) | 0;
        } else {
          const pair = c >= 0xd800 && c <= 0xdbff && i + 1 < e;
          o = copyRaw(buf, o, src, i, pair ? i + 2 : i + 1);
          if (pair) i++;
          h = -1; // non-ASCII identifiers are never keywords
        }
      }
      const len = o - ws;
      let info: WordInfo | undefined;
      if (h !== -1) {
        for (let slot = slotOf(h, len); ; slot = (slot + 1) & (WORD_SLOTS - 1)) {
          const wi = wordSlot[slot]!;
          if (wi === -1) break;
          const w = wordList[wi]!;
          if (w.word.length !== len) continue;
          let same = true;
          for (let i = 0; i < len; i++) {
            if (buf[ws + i] !== w.word.charCodeAt(i)) {
              same = false;
              break;
            }
          }
          if (same) {
            info = w;
            break;
          }
        }
      }
      const cls = info === undefined ? 0 : info.cls;
      const word = cls & 0xff;
      if (needKw) {
        firstKeywords.push(info === undefined ? buf.toString('utf8', ws, o) : info.word);
        needKw = false;
      }
      if (typeCont && word !== W_TYPECONT) tstate = 0;
      else if (typeStart && (word === W_MATERIALIZED || word === W_NOT)) tstate = 0; // AS [NOT] MATERIALIZED (
      if (word === W_VALUES) {
        fValues[depth] = V_EXPECT_ROW;
        fRowEnd[depth] = -1;
      } else if (word === W_ATOMIC && prevWord === W_BEGIN) {
        atomic = true;
        caseDepth = 0;
      } else if (atomic && word === W_CASE) {
        caseDepth++;
      } else if (atomic && word === W_END) {
        if (caseDepth > 0) caseDepth--;
        else atomic = false;
      }
      if (word === W_AS) tstate = 1;
      prevWord = word;
      space = (cls & SPACE_PAREN) !== 0 ? S_SPACE : S_TIGHT_PAREN;
      continue;
    }
    const pw = prevWord;
    prevWord = 0;

    switch (k) {
      case T_STRING:
      case T_NUMBER:
      case T_PARAM: {
        if (space !== S_NONE) buf[o++] = 32;
        if (k === T_NUMBER && fKind[depth] === F_TYPMOD) {
          o = copyRaw(buf, o, src, lx.start, lx.end);
        } else {
          o = writeParam(buf, o, ++param);
          prevString = k === T_STRING;
        }
        space = S_SPACE;
        break;
      }
      case T_LPAREN:
      case T_LBRACKET: {
        if (k === T_LPAREN ? space === S_SPACE : false) buf[o++] = 32;
        buf[o++] = k === T_LPAREN ? 40 : 91;
        // a nested bracket means the enclosing list item is not a plain constant
        if (fKind[depth] === F_LIST || fKind[depth] === F_ROW) fOk[depth] = 0;
        depth++;
        let kind = F_PLAIN;
        if (typmod) kind = F_TYPMOD;
        else if (isRow) kind = F_ROW;
        else if (k === T_LPAREN ? pw === W_IN : pw === W_ARRAY) kind = F_LIST;
        fKind[depth] = kind;
        fOk[depth] = 1;
        fItem[depth] = I_START;
        fCount[depth] = 0;
        fOut[depth] = o;
        fParam[depth] = param;
        fValues[depth] = V_NONE;
        space = S_NONE;
        break;
      }
      case T_RPAREN:
      case T_RBRACKET: {
        if (depth === 0) {
          buf[o++] = k === T_RPAREN ? 41 : 93;
          space = S_SPACE;
          break;
        }
        const kind = fKind[depth]!;
        const complete = fOk[depth] === 1 && (fItem[depth] === I_CONST || fItem[depth] === I_CAST);
        if (kind === F_LIST && complete) {
          // the whole list becomes a single placeholder, renumbered from where the list started
          o = writeParam(buf, fOut[depth]!, (param = fParam[depth]! + 1));
        }
        const arity = fCount[depth]! + 1;
        depth--;
        buf[o++] = k === T_RPAREN ? 41 : 93;
        space = S_SPACE;
        if (kind === F_TYPMOD) {
          tstate = 2;
        } else if (kind === F_ROW) {
          fValues[depth] = V_AFTER_ROW;
          if (!complete) {
            fRowEnd[depth] = -1;
          } else if (fRowEnd[depth]! >= 0 && fRowArity[depth] === arity) {
            // same-shaped constant row as the previous one: drop ", (...)" and its placeholders
            o = fRowEnd[depth]!;
            param = fRowParam[depth]!;
          } else {
            fRowEnd[depth] = o;
            fRowParam[depth] = param;
            fRowArity[depth] = arity;
          }
        }
        break;
      }
      case T_COMMA:
        buf[o++] = 44;
        space = S_SPACE;
        break;
      case T_DOT:
      case T_COLON:
        buf[o++] = k === T_DOT ? 46 : 58;
        space = S_NONE;
        break;
      case T_CAST:
        buf[o++] = 58;
        buf[o++] = 58;
        space = S_NONE;
        tstate = 1;
        break;
      case T_SEMI:
        // only inside brackets or BEGIN ATOMIC bodies
        buf[o++] = 59;
        space = S_SPACE;
        break;
      case T_OP: {
        if (space !== S_NONE) buf[o++] = 32;
        const s = lx.start;
        if (lx.end - s === 2 && src.charCodeAt(s) === 33 && src.charCodeAt(s + 1) === 61) {
          // the server's lexer turns != into <>
          buf[o++] = 60;
          buf[o++] = 62;
        } else {
          o = copyRaw(buf, o, src, s, lx.end);
        }
        space = S_SPACE;
        break;
      }
      default: {
        // quoted identifiers verbatim, and stray characters
        if (space !== S_NONE) buf[o++] = 32;
        o = copyRaw(buf, o, src, lx.start, lx.end);
        space = k === T_QIDENT ? S_TIGHT_PAREN : S_SPACE;
      }
    }
  }
  if (inStmt && needKw) firstKeywords.push('');

  return { text: buf.toString('utf8', 0, o), id: fnv1a64Hex(buf, o), statements, firstKeywords };
}

function writeParam(buf: Buffer, o: number, n: number): number {
  buf[o++] = 36; // $
  if (n < 10) {
    buf[o++] = 48 + n;
    return o;
  }
  let digits = 1;
  for (let t = n; t >= 10; t = (t / 10) | 0) digits++;
  o += digits;
  for (let i = o - 1, t = n; i >= o - digits; i--, t = (t / 10) | 0) buf[i] = 48 + (t % 10);
  return o;
}

/** UTF-8 encode src[from, to) into buf at o (lone surrogates become U+FFFD, as TextEncoder does) */
function copyRaw(buf: Buffer, o: number, src: string, from: number, to: number): number {
  for (let i = from; i < to; i++) {
    let c = src.charCodeAt(i);
    if (c < 0x80) {
      buf[o++] = c;
    } else if (c < 0x800) {
      buf[o++] = 0xc0 | (c >> 6);
      buf[o++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < to ? src.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
          buf[o++] = 0xf0 | (cp >> 18);
          buf[o++] = 0x80 | ((cp >> 12) & 0x3f);
          buf[o++] = 0x80 | ((cp >> 6) & 0x3f);
          buf[o++] = 0x80 | (cp & 0x3f);
          continue;
        }
        c = 0xfffd;
      }
      buf[o++] = 0xe0 | (c >> 12);
      buf[o++] = 0x80 | ((c >> 6) & 0x3f);
      buf[o++] = 0x80 | (c & 0x3f);
    }
  }
  return o;
}

/**
 * FNV-1a 64 over bytes[0, len), in two 32-bit halves with integer-only arithmetic. The prime is 2^40 + 0x1b3, so
 * h * prime = h * 0x1b3 + (lo << 40) mod 2^64: the low half is lo * 0x1b3 (done in 16-bit pieces to get its carry),
 * the high half is hi * 0x1b3 + carry + (lo << 8).
 */
export function fnv1a64Hex(bytes: Uint8Array, len: number): string {
  let hi = 0xcbf29ce4 | 0;
  let lo = 0x84222325 | 0;
  for (let i = 0; i < len; i++) {
    const x = lo ^ bytes[i]!;
    const pl = (x & 0xffff) * 0x1b3; // < 2^25
    const ph = (x >>> 16) * 0x1b3 + (pl >>> 16); // < 2^26
    hi = (Math.imul(hi, 0x1b3) + (ph >>> 16) + (x << 8)) | 0;
    lo = (ph << 16) | (pl & 0xffff);
  }
  // one fromCharCode call instead of toString(16) + padding: the id is built on every query
  const H = HEX_CODES;
  return String.fromCharCode(
    H[hi >>> 28]!, H[(hi >>> 24) & 15]!, H[(hi >>> 20) & 15]!, H[(hi >>> 16) & 15]!,
    H[(hi >>> 12) & 15]!, H[(hi >>> 8) & 15]!, H[(hi >>> 4) & 15]!, H[hi & 15]!,
    H[lo >>> 28]!, H[(lo >>> 24) & 15]!, H[(lo >>> 20) & 15]!, H[(lo >>> 16) & 15]!,
    H[(lo >>> 12) & 15]!, H[(lo >>> 8) & 15]!, H[(lo >>> 4) & 15]!, H[lo & 15]!,
  );
}

const HEX_CODES = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));
