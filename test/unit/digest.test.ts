// Unit tests for the SQL lexer and query normalizer: lexical rules, canonical text, constant folding, statement splitting, stable ids.
import { describe, expect, it } from 'vitest';
import { normalize, fnv1a64Hex } from '../../src/sql/digest.ts';
import {
  SqlLexer,
  T_CAST,
  T_COMMA,
  T_DOT,
  T_EOF,
  T_IDENT,
  T_LPAREN,
  T_NUMBER,
  T_OP,
  T_PARAM,
  T_QIDENT,
  T_RPAREN,
  T_SEMI,
  T_STRING,
} from '../../src/sql/lexer.ts';

function tokens(sql: string): [number, string][] {
  const lx = new SqlLexer();
  lx.reset(sql);
  const out: [number, string][] = [];
  for (let k = lx.next(); k !== T_EOF; k = lx.next()) out.push([k, sql.slice(lx.start, lx.end)]);
  return out;
}

const text = (sql: string): string => normalize(sql).text;
const id = (sql: string): string => normalize(sql).id;

describe('lexer', () => {
  it('skips whitespace, line comments and nested block comments', () => {
    expect(tokens(' a\t-- x /* y\r\nb /* 1 /* 2 */ still comment */ c\f\v')).toEqual([
      [T_IDENT, 'a'],
      [T_IDENT, 'b'],
      [T_IDENT, 'c'],
    ]);
  });

  it('scans standard strings with doubled quotes and keeps backslashes literal', () => {
    expect(tokens("'it''s' 'a\\' x")).toEqual([
      [T_STRING, "'it''s'"],
      [T_STRING, "'a\\'"],
      [T_IDENT, 'x'],
    ]);
  });

  it('scans E strings with backslash escapes', () => {
    expect(tokens("E'it\\'s' e'\\\\' x")).toEqual([
      [T_STRING, "E'it\\'s'"],
      [T_STRING, "e'\\\\'"],
      [T_IDENT, 'x'],
    ]);
  });

  it('scans U&, B, X and N prefixed strings and U& identifiers', () => {
    expect(tokens("U&'d\\0061t' b'101' X'1F' n'x' U&\"d\\0061\" u&'x'")).toEqual([
      [T_STRING, "U&'d\\0061t'"],
      [T_STRING, "b'101'"],
      [T_STRING, "X'1F'"],
      [T_STRING, "n'x'"],
      [T_QIDENT, 'U&"d\\0061"'],
      [T_STRING, "u&'x'"],
    ]);
    // a prefix letter separated from the quote is an identifier followed by a string
    expect(tokens("e 'x'")).toEqual([
      [T_IDENT, 'e'],
      [T_STRING, "'x'"],
    ]);
  });

  it('scans dollar quotes, with and without tags', () => {
    expect(tokens("$$it's; -- not a comment$$ $fn$ $$ nested $fn$ $_1$x$_1$")).toEqual([
      [T_STRING, "$$it's; -- not a comment$$"],
      [T_STRING, '$fn$ $$ nested $fn$'],
      [T_STRING, '$_1$x$_1$'],
    ]);
    // a tag cannot start with a digit: that is a parameter
    expect(tokens('$1$')[0]).toEqual([T_PARAM, '$1']);
    // '$' inside an identifier does not start a dollar quote
    expect(tokens('a$b$ c')).toEqual([
      [T_IDENT, 'a$b$'],
      [T_IDENT, 'c'],
    ]);
  });

  it('scans quoted identifiers with doubled quotes', () => {
    expect(tokens('"My ""Table""".x')).toEqual([
      [T_QIDENT, '"My ""Table"""'],
      [T_DOT, '.'],
      [T_IDENT, 'x'],
    ]);
  });

  it('scans every number form', () => {
    for (const n of ['42', '1.5', '.5', '1.', '1e-3', '1.5E+10', '0x1F', '0X_1f', '0o17', '0b101', '1_000', '1_000.000_1']) {
      expect(tokens(n), n).toEqual([[T_NUMBER, n]]);
    }
    // "1..10" is an integer, '..' (PL/pgSQL ranges), an integer; "1e" without digits leaves the e
    expect(tokens('1..10')).toEqual([
      [T_NUMBER, '1'],
      [T_OP, '..'],
      [T_NUMBER, '10'],
    ]);
    expect(tokens('1ex')).toEqual([
      [T_NUMBER, '1'],
      [T_IDENT, 'ex'],
    ]);
  });

  it('scans parameters, casts and punctuation', () => {
    expect(tokens('f($12::int, a.b);')).toEqual([
      [T_IDENT, 'f'],
      [T_LPAREN, '('],
      [T_PARAM, '$12'],
      [T_CAST, '::'],
      [T_IDENT, 'int'],
      [T_COMMA, ','],
      [T_IDENT, 'a'],
      [T_DOT, '.'],
      [T_IDENT, 'b'],
      [T_RPAREN, ')'],
      [T_SEMI, ';'],
    ]);
  });

  it('applies the operator rules (longest run, no embedded comment, trailing +/- split)', () => {
    expect(tokens('a<=b')[1]).toEqual([T_OP, '<=']);
    expect(tokens('x=-1').map((t) => t[1])).toEqual(['x', '=', '-', '1']);
    expect(tokens('x @- 1').map((t) => t[1])).toEqual(['x', '@-', '1']);
    expect(tokens('a+--c\nb').map((t) => t[1])).toEqual(['a', '+', 'b']);
    expect(tokens('a*/*c*/b').map((t) => t[1])).toEqual(['a', '*', 'b']);
    expect(tokens("j->>'k'").map((t) => t[1])).toEqual(['j', '->>', "'k'"]);
  });

  it('treats unterminated tokens as running to the end', () => {
    expect(tokens("a 'abc")).toEqual([
      [T_IDENT, 'a'],
      [T_STRING, "'abc"],
    ]);
    expect(tokens('a "abc')[1]).toEqual([T_QIDENT, '"abc']);
    expect(tokens("E'ab\\")[0]).toEqual([T_STRING, "E'ab\\"]);
    expect(tokens('$q$ abc')[0]).toEqual([T_STRING, '$q$ abc']);
    expect(tokens('a /* x /* y */')).toEqual([[T_IDENT, 'a']]);
    expect(tokens('a -- x')).toEqual([[T_IDENT, 'a']]);
  });
});

describe('normalize', () => {
  it('replaces constants of every kind with numbered placeholders', () => {
    expect(text("SELECT 'a', E'b\\'c', U&'d', B'1', X'F', $$e$$, $t$f$t$, 1, 1.5, .5, 1e3, 0x1F, 1_000")).toBe(
      'select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13',
    );
  });

  it('keeps booleans, NULL and DEFAULT as keywords', () => {
    expect(text('SELECT TRUE, false, NULL, DEFAULT')).toBe('select true, false, null, default');
  });

  it('does not treat cast type names or their modifiers as constants', () => {
    expect(text("SELECT '1'::text, x::varchar(10), y::numeric(10,2), z::int[3], w::double precision")).toBe(
      'select $1::text, x::varchar(10), y::numeric(10, 2), z::int[3], w::double precision',
    );
    expect(text('SELECT CAST(x AS numeric(10, 2)), y::timestamp(3) with time zone')).toBe(
      'select cast(x as numeric(10, 2)), y::timestamp(3) with time zone',
    );
    // after the type name, numbers are constants again
    expect(text('SELECT x::int + 1, y::text IN (1, 2)')).toBe('select x::int + $1, y::text in ($2)');
  });

  it('is consistent about negative numbers (sign stays an operator)', () => {
    expect(text('SELECT -1, x=-2, x - 3')).toBe('select - $1, x = - $2, x - $3');
    expect(id('select x = -1')).toBe(id('SELECT x=- 99'));
  });

  it('lower-cases unquoted identifiers and keywords but keeps quoted identifiers verbatim', () => {
    expect(text('SeLeCt Foo, "Foo", "a""B" FROM Bar')).toBe('select foo, "Foo", "a""B" from bar');
    // only ASCII folds, like the server in UTF-8
    expect(text('select Ä')).toBe('select Ä');
  });

  it('canonicalizes whitespace and comments', () => {
    const variants = [
      'select a,b from t where x=1 and f(y)>2',
      'SELECT a , b\n\tFROM t -- trailing\nWHERE x = 1 /* c /* nested */ */ AND f( y ) > 2 ;',
      '  select/**/a,b/*x*/from t where(x=1)and f(y)>2;;  ',
    ];
    expect(text(variants[0]!)).toBe('select a, b from t where x = $1 and f(y) > $2');
    expect(id(variants[1]!)).toBe(id(variants[0]!));
    // parentheses are kept, so this is a different (but canonical) shape
    expect(text(variants[2]!)).toBe('select a, b from t where (x = $1) and f(y) > $2');
  });

  it('normalizes != to <>', () => {
    expect(id('select 1 where a != b')).toBe(id('select 1 where a <> b'));
  });

  it('gives the same id to the same shape with different literals', () => {
    expect(id("select * from users where id = 42 and name = 'bob'")).toBe(id("select * from users where id = 7 and name = 'alice'"));
    expect(id('select * from t limit 10 offset 20')).toBe(id('select * from t limit 1 offset 0'));
  });

  it('gives different ids to different shapes', () => {
    const ids = new Set(
      [
        'select * from users where id = 1',
        'select * from users where id > 1',
        'select * from users where uid = 1',
        'select id from users where id = 1',
        'select * from "Users" where id = 1',
        'select * from users where id = 1 and x = 2',
        'select * from users where id = 1; select 1',
        'select * from users where id = true',
      ].map(id),
    );
    expect(ids.size).toBe(8);
  });

  it('makes simple-protocol literals and extended-protocol parameters identical', () => {
    const simple = normalize("select * from t where a = 5 and b = 'x' and c in (1, 2, 3)");
    const extended = normalize('select * from t where a = $1 and b = $2 and c in ($3, $4, $5)');
    expect(extended.text).toBe(simple.text);
    expect(extended.id).toBe(simple.id);
    // parameters are renumbered in order of appearance
    expect(text('select * from t where b = $2 and a = $1')).toBe('select * from t where b = $1 and a = $2');
  });

  it('folds IN lists to one placeholder', () => {
    expect(text('select * from t where x in (1, 2, 3) and y = 4')).toBe('select * from t where x in ($1) and y = $2');
    expect(text('select * from t where x NOT IN ($1,$2) and y = $3')).toBe('select * from t where x not in ($1) and y = $2');
    expect(id('select 1 from t where x in (1)')).toBe(id("select 1 from t where x in ('a', 'b', -3, +4, 5::int)"));
    // non-constant lists are kept
    expect(text('select 1 from t where x in (a, 2)')).toBe('select $1 from t where x in (a, $2)');
    expect(text('select 1 from t where x in (select y from u where z = 1)')).toBe('select $1 from t where x in (select y from u where z = $2)');
  });

  it('folds ARRAY constructors of constants', () => {
    expect(text("select array[1,2,3], array['a'], 5")).toBe('select array[$1], array[$2], $3');
    expect(id('select * from t where x = any(array[1, 2])')).toBe(id('select * from t where x = ANY (ARRAY[$1])'));
    expect(text('select array[a, 1]')).toBe('select array[a, $1]');
  });

  it('folds multi-row VALUES of constants to one row', () => {
    expect(text("insert into t (a, b) values (1, 'a'), (2, 'b'), (3, 'c')")).toBe('insert into t(a, b) values ($1, $2)');
    expect(id('insert into t (a, b) values ($1, $2)')).toBe(id("INSERT INTO t(a,b) VALUES (1,'x'),(2,'y')"));
    // rows with expressions are kept; placeholders stay sequential after folding
    expect(text("insert into t values (1, now()), (2, 'a'), (3, 'b') returning 9")).toBe(
      'insert into t values ($1, now()), ($2, $3) returning $4',
    );
    expect(text("select * from (values (1, 'a'), (2, 'b')) as v(n, s) where n > 0")).toBe(
      'select * from (values ($1, $2)) as v(n, s) where n > $3',
    );
  });

  it('merges string continuations into one constant', () => {
    expect(text("select 'a'\n  'b', 'c'")).toBe('select $1, $2');
  });

  it('keeps strings, comments and dollar quotes from splitting statements', () => {
    const r = normalize("SELECT $$a;'--$$; select 'x;y' -- ; not here\n; select /* ; */ E'\\';' ; ");
    expect(r.text).toBe('select $1; select $2; select $3');
    expect(r.statements).toBe(3);
    expect(r.firstKeywords).toEqual(['select', 'select', 'select']);
  });

  it('splits multiple statements and reports their first keywords', () => {
    const r = normalize("SET search_path = app; BEGIN; ; UPDATE t SET x = 1 WHERE id = 2; with c as (select 1) SELECT * from c;");
    expect(r.text).toBe('set search_path = app; begin; update t set x = $1 where id = $2; with c as (select $3) select * from c');
    expect(r.statements).toBe(4);
    expect(r.firstKeywords).toEqual(['set', 'begin', 'update', 'with']);
    expect(normalize('(SELECT 1)').firstKeywords).toEqual(['select']);
    expect(normalize('').statements).toBe(0);
    expect(normalize(' ; -- nothing').firstKeywords).toEqual([]);
  });

  it('does not split inside parentheses or BEGIN ATOMIC bodies', () => {
    const r = normalize(
      'CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; SELECT 3',
    );
    expect(r.statements).toBe(2);
    expect(r.firstKeywords).toEqual(['create', 'select']);
  });

  it('never throws on unterminated or odd input', () => {
    for (const q of ["select 'abc", 'select "abc', 'select $x$ abc', "select E'\\", 'select /* /* */', 'select (((', ')))]', '\\x {}', '$', '::', "U&'", '0x']) {
      expect(() => normalize(q), q).not.toThrow();
    }
    expect(text("select 'abc")).toBe('select $1');
  });

  it('handles queries longer than the internal buffers', () => {
    const n = 20000;
    const big = `select * from t where x in (${Array.from({ length: n }, (_, i) => i).join(',')}) and y = ${'('.repeat(500)}1${')'.repeat(500)}`;
    const r = normalize(big);
    expect(r.text.startsWith('select * from t where x in ($1) and y = ((')).toBe(true);
    const many = Array.from({ length: 5000 }, (_, i) => `f(${i})`).join(' + ');
    expect(normalize(`select ${many}`).text.endsWith('f($5000)')).toBe(true);
  });

  it('produces stable ids (FNV-1a 64 over UTF-8 text)', () => {
    const enc = (s: string): string => fnv1a64Hex(Buffer.from(s, 'utf8'), Buffer.byteLength(s));
    // published FNV-1a 64 test vectors
    expect(enc('')).toBe('cbf29ce484222325');
    expect(enc('a')).toBe('af63dc4c8601ec8c');
    expect(enc('foobar')).toBe('85944171f73967e8');
    const r = normalize('SELECT * FROM t WHERE id IN (1, 2, 3) AND name = \'x\'');
    expect(r.text).toBe('select * from t where id in ($1) and name = $2');
    expect(r.id).toBe('dae92e7c79710163');
    expect(r.id).toBe(enc(r.text));
    expect(normalize('select "é😀"').id).toBe(enc('select "é😀"'));
    expect(normalize('select 1').id).toMatch(/^[0-9a-f]{16}$/);
  });
});
