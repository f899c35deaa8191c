// Hand-written single-pass scanner for PostgreSQL SQL text (scan.l rules, standard_conforming_strings = on), used by the query normalizer.

// Token kinds are plain numeric constants (not an enum: erasableSyntaxOnly) so hot-path comparisons stay Smi compares.
export const T_EOF = 0;
/** unquoted identifier or keyword; text is src[start, end) */
export const T_IDENT = 1;
/** "quoted identifier" or U&"quoted identifier" */
export const T_QIDENT = 2;
/** any string constant: '...', E'...', N'...', U&'...', B'...', X'...', $tag$...$tag$ */
export const T_STRING = 3;
export const T_NUMBER = 4;
/** positional parameter $n */
export const T_PARAM = 5;
export const T_OP = 6;
export const T_LPAREN = 7;
export const T_RPAREN = 8;
export const T_LBRACKET = 9;
export const T_RBRACKET = 10;
export const T_COMMA = 11;
export const T_SEMI = 12;
export const T_DOT = 13;
/** a lone ':' (array slices) */
export const T_COLON = 14;
/** '::' */
export const T_CAST = 15;
/** any character PostgreSQL's lexer would reject (e.g. a stray backslash or brace); kept as a one-character token */
export const T_OTHER = 16;

// Character classes for ASCII; every code unit >= 0x80 is an identifier character, as in scan.l's ident_start/ident_cont.
const C_ID_START = 1;
const C_ID_CONT = 2;
const C_DIGIT = 4;
const C_OP = 8;
const C_SPACE = 16;

const CLASS = new Uint8Array(128);
for (let c = 65; c <= 90; c++) CLASS[c] = C_ID_START | C_ID_CONT;
for (let c = 97; c <= 122; c++) CLASS[c] = C_ID_START | C_ID_CONT;
CLASS[95] = C_ID_START | C_ID_CONT; // _
CLASS[36] = C_ID_CONT; // $ may continue an identifier but never start one
for (let c = 48; c <= 57; c++) CLASS[c] = C_DIGIT | C_ID_CONT;
for (const ch of '~!@#^&|`?+-*/%<>=') CLASS[ch.charCodeAt(0)] = C_OP;
for (const ch of ' \t\n\r\f\v') CLASS[ch.charCodeAt(0)] |= C_SPACE;

function isIdCont(c: number): boolean {
  return c >= 128 || (CLASS[c]! & C_ID_CONT) !== 0;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** digit test for a numeric base (16, 8 or 2); NaN (past the end) is never a digit */
function isBaseDigit(c: number, base: number): boolean {
  if (base === 16) return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
  if (base === 8) return c >= 48 && c <= 55;
  return c === 48 || c === 49;
}

/**
 * Reusable scanner: call reset(sql) then next() until it returns T_EOF. The current token is
 * [start, end) of src and kind; nothing is allocated per token (only dollar-quote tags are sliced).
 * Malformed input never throws: an unterminated string, comment or quote swallows the rest.
 */
export class SqlLexer {
  src = '';
  len = 0;
  pos = 0;
  start = 0;
  end = 0;
  kind = T_EOF;

  reset(src: string): void {
    this.src = src;
    this.len = src.length;
    this.pos = 0;
    this.start = 0;
    this.end = 0;
    this.kind = T_EOF;
  }

  next(): number {
    const s = this.src;
    const n = this.len;
    let p = this.pos;
    // skip whitespace and comments
    for (;;) {
      if (p >= n) {
        this.start = this.end = this.pos = n;
        return (this.kind = T_EOF);
      }
      const c = s.charCodeAt(p);
      if (c < 128 && (CLASS[c]! & C_SPACE) !== 0) {
        p++;
      } else if (c === 45 && s.charCodeAt(p + 1) === 45) {
        p = skipLineComment(s, p + 2, n);
      } else if (c === 47 && s.charCodeAt(p + 1) === 42) {
        p = skipBlockComment(s, p + 2, n);
      } else {
        break;
      }
    }
    this.start = p;
    const c = s.charCodeAt(p);
    let kind: number;
    const cls = c < 128 ? CLASS[c]! : C_ID_START | C_ID_CONT;
    if (c === 39) {
      p = scanQuoted(s, p + 1, n, 39);
      kind = T_STRING;
    } else if (c === 34) {
      p = scanQuoted(s, p + 1, n, 34);
      kind = T_QIDENT;
    } else if ((cls & C_ID_START) !== 0) {
      const d = s.charCodeAt(p + 1);
      const lc = c | 0x20;
      if (d === 39 && lc === 101) {
        p = scanEscapeString(s, p + 2, n);
        kind = T_STRING;
      } else if (d === 39 && (lc === 98 || lc === 120 || lc === 110)) {
        // B'...', X'...', N'...' use standard quoting rules
        p = scanQuoted(s, p + 2, n, 39);
        kind = T_STRING;
      } else if (d === 38 && lc === 117 && s.charCodeAt(p + 2) === 39) {
        p = scanQuoted(s, p + 3, n, 39);
        kind = T_STRING;
      } else if (d === 38 && lc === 117 && s.charCodeAt(p + 2) === 34) {
        p = scanQuoted(s, p + 3, n, 34);
        kind = T_QIDENT;
      } else {
        p++;
        while (p < n && isIdCont(s.charCodeAt(p))) p++;
        kind = T_IDENT;
      }
    } else if ((cls & C_DIGIT) !== 0) {
      p = scanNumber(s, p, n);
      kind = T_NUMBER;
    } else if (c === 46) {
      const d = s.charCodeAt(p + 1);
      if (isDigit(d)) {
        p = scanNumber(s, p, n);
        kind = T_NUMBER;
      } else if (d === 46) {
        // '..' (DOT_DOT, PL/pgSQL ranges) is one token, so "1..10" never yields the number ".10"
        p += 2;
        kind = T_OP;
      } else {
        p++;
        kind = T_DOT;
      }
    } else if (c === 36) {
      const r = scanDollar(s, p, n);
      if (r > 0) {
        p = r;
        kind = T_STRING;
      } else if (isDigit(s.charCodeAt(p + 1))) {
        p += 2;
        while (p < n && isDigit(s.charCodeAt(p))) p++;
        kind = T_PARAM;
      } else {
        p++;
        kind = T_OTHER;
      }
    } else if ((cls & C_OP) !== 0) {
      p = scanOperator(s, p, n);
      kind = T_OP;
    } else {
      p++;
      switch (c) {
        case 40:
          kind = T_LPAREN;
          break;
        case 41:
          kind = T_RPAREN;
          break;
        case 91:
          kind = T_LBRACKET;
          break;
        case 93:
          kind = T_RBRACKET;
          break;
        case 44:
          kind = T_COMMA;
          break;
        case 59:
          kind = T_SEMI;
          break;
        case 58: {
          const d = s.charCodeAt(p);
          if (d === 58) {
            p++;
            kind = T_CAST;
          } else if (d === 61) {
            // ':=' (named-argument notation) behaves like an operator
            p++;
            kind = T_OP;
          } else {
            kind = T_COLON;
          }
          break;
        }
        default:
          kind = T_OTHER;
      }
    }
    this.end = this.pos = p;
    return (this.kind = kind);
  }
}

function skipLineComment(s: string, p: number, n: number): number {
  while (p < n) {
    const c = s.charCodeAt(p);
    if (c === 10 || c === 13) return p + 1;
    p++;
  }
  return n;
}

/** block comments nest in PostgreSQL (unlike the SQL standard's C-style rule) */
function skipBlockComment(s: string, p: number, n: number): number {
  let depth = 1;
  while (p < n) {
    const c = s.charCodeAt(p);
    if (c === 42 && s.charCodeAt(p + 1) === 47) {
      p += 2;
      if (--depth === 0) return p;
    } else if (c === 47 && s.charCodeAt(p + 1) === 42) {
      p += 2;
      depth++;
    } else {
      p++;
    }
  }
  return n;
}

/** body of a quote-doubling literal ('...' or "..."), p just past the opening quote; returns the index past the closing quote */
function scanQuoted(s: string, p: number, n: number, q: number): number {
  const quote = q === 39 ? "'" : '"';
  for (;;) {
    const i = s.indexOf(quote, p);
    if (i < 0) return n;
    if (s.charCodeAt(i + 1) === q) {
      p = i + 2;
      continue;
    }
    return i + 1;
  }
}

/** E'...' body: backslash escapes anything (including a quote), and '' still doubles */
function scanEscapeString(s: string, p: number, n: number): number {
  while (p < n) {
    const c = s.charCodeAt(p);
    if (c === 92) {
      p += 2;
    } else if (c === 39) {
      if (s.charCodeAt(p + 1) === 39) p += 2;
      else return p + 1;
    } else {
      p++;
    }
  }
  return n;
}

/**
 * Dollar quote at s[p] === '$': returns the index past the closing delimiter (or n if unterminated), or 0 if
 * this is not the start of a dollar quote. The tag follows identifier rules without '$' and cannot start with a digit.
 */
function scanDollar(s: string, p: number, n: number): number {
  let q = p + 1;
  const c = s.charCodeAt(q);
  if (c !== 36) {
    if (!(c >= 128 || (CLASS[c]! & C_ID_START) !== 0)) return 0;
    q++;
    for (;;) {
      const d = s.charCodeAt(q);
      if (d === 36) break;
      if (!(d >= 128 || (CLASS[d]! & C_ID_CONT) !== 0)) return 0; // includes NaN at end of input
      q++;
    }
  }
  // s[q] is the '$' closing the opening delimiter
  const tag = s.substring(p, q + 1);
  const i = s.indexOf(tag, q + 1);
  return i < 0 ? n : i + tag.length;
}

/** integers (with '_' separators), 0x/0o/0b, decimals, exponents; stops before anything that would not extend a valid number */
function scanNumber(s: string, p: number, n: number): number {
  const c = s.charCodeAt(p);
  if (c === 48) {
    const x = s.charCodeAt(p + 1) | 0x20;
    const base = x === 120 ? 16 : x === 111 ? 8 : x === 98 ? 2 : 0;
    if (base !== 0) {
      let q = p + 2;
      if (s.charCodeAt(q) === 95) q++;
      if (isBaseDigit(s.charCodeAt(q), base)) {
        q++;
        for (;;) {
          const d = s.charCodeAt(q);
          if (isBaseDigit(d, base)) q++;
          else if (d === 95 && isBaseDigit(s.charCodeAt(q + 1), base)) q += 2;
          else break;
        }
        return q;
      }
      // "0x" without digits: just the 0 (the server would reject the junk anyway)
    }
  }
  if (c !== 46) p = scanDigits(s, p, n);
  if (s.charCodeAt(p) === 46) {
    // "1..10" is an integer followed by '..', not the decimal "1."
    if (s.charCodeAt(p + 1) === 46) return p;
    p++;
    if (isDigit(s.charCodeAt(p))) p = scanDigits(s, p, n);
  }
  if ((s.charCodeAt(p) | 0x20) === 101) {
    let q = p + 1;
    const sign = s.charCodeAt(q);
    if (sign === 43 || sign === 45) q++;
    if (isDigit(s.charCodeAt(q))) p = scanDigits(s, q, n);
  }
  return p;
}

function scanDigits(s: string, p: number, n: number): number {
  while (p < n) {
    const d = s.charCodeAt(p);
    if (isDigit(d)) p++;
    else if (d === 95 && isDigit(s.charCodeAt(p + 1))) p += 2;
    else break;
  }
  return p;
}

/**
 * Operator per scan.l: the longest run of operator characters, cut before any embedded comment start, and
 * with trailing '+'/'-' dropped unless the operator contains one of ~ ! @ # % ^ & | ` ? (so "=-1" is "=", "-", "1").
 */
function scanOperator(s: string, p: number, n: number): number {
  let q = p + 1;
  while (q < n) {
    const c = s.charCodeAt(q);
    if (c >= 128 || (CLASS[c]! & C_OP) === 0) break;
    const d = s.charCodeAt(q + 1);
    if ((c === 45 && d === 45) || (c === 47 && d === 42)) break;
    q++;
  }
  if (q - p > 1) {
    const last = s.charCodeAt(q - 1);
    if (last === 43 || last === 45) {
      let special = false;
      for (let i = p; i < q; i++) {
        const c = s.charCodeAt(i);
        // ~ ! @ # % ^ & | ` ?
        if (c === 126 || c === 33 || c === 64 || c === 35 || c === 37 || c === 94 || c === 38 || c === 124 || c === 96 || c === 63) {
          special = true;
          break;
        }
      }
      if (!special) {
        do q--;
        while (q - p > 1 && (s.charCodeAt(q - 1) === 43 || s.charCodeAt(q - 1) === 45));
      }
    }
  }
  return q;
}
