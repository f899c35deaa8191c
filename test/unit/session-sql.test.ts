// Unit tests for session-effect detection in SQL text: each rule, its look-alikes, prepared-statement names and offsets, and the pre-check.
import { describe, expect, it } from 'vitest';
import { scanSessionEffects, sessionEffects, type SessionEffects } from '../../src/sql/session.ts';
import { rng } from '../helpers/wire.ts';

const NONE: SessionEffects = {
  changesSettings: false,
  feature: null,
  prepared: null,
  preparedInMulti: false,
  discardAll: false,
  deallocateAll: false,
};
const effects = (over: Partial<SessionEffects>): SessionEffects => ({ ...NONE, ...over });

/** sessionEffects, also checking that the pre-check agrees with a full lexer pass */
function fx(sql: string): SessionEffects | null {
  const r = sessionEffects(sql);
  expect(r).toEqual(scanSessionEffects(sql));
  return r;
}
const settings = (sql: string): boolean => fx(sql)?.changesSettings ?? false;
const feature = (sql: string): string | null => fx(sql)?.feature ?? null;

describe('common queries', () => {
  it.each([
    "SELECT u.id, u.email FROM users u WHERE u.status = 'active' ORDER BY u.id LIMIT 50 OFFSET 100",
    'UPDATE t SET a = 1 WHERE id = $1',
    'update accounts\n   set balance = balance - $1\n where id = $2',
    'INSERT INTO events (a, b) VALUES ($1, $2) ON CONFLICT (a) DO UPDATE SET b = EXCLUDED.b',
    'SELECT reset_at, offset_ms, settings.listen, "load" FROM settings',
    'DELETE FROM t WHERE id = 1 RETURNING *',
    'BEGIN; UPDATE a SET x = 1; UPDATE b SET y = 2; COMMIT;',
    'SELECT * FROM template JOIN attempts USING (id) WHERE temperature > 3',
    '',
    ';;',
    '   -- only a comment',
  ])('%j has no session effects', (sql) => {
    expect(fx(sql)).toBeNull();
  });

  it('a text that passes the pre-check but has no effects is still null', () => {
    expect(fx('SELECT 1 -- x\nFROM t\nSET')).toBeNull(); // a ';'-less SET inside a statement
    expect(fx('SELECT app_config, row_lock FROM t')).toBeNull();
  });
});

describe('changesSettings', () => {
  it.each([
    'SET search_path TO app, public',
    "set statement_timeout = '5s'",
    'SET SESSION search_path = x',
    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    'SET ROLE admin',
    "SET TIME ZONE 'UTC'",
    "SET NAMES 'UTF8'",
    "SET SCHEMA 'app'",
    'SET SESSION AUTHORIZATION bob',
    'SET transaction_isolation = serializable', // a GUC, not SET TRANSACTION
    'RESET search_path',
    'reset all',
    'RESET ROLE',
    'DISCARD PLANS',
    'DISCARD TEMP',
    "SELECT set_config('search_path', 'x', false)",
    "select pg_catalog.SET_CONFIG('a.b', 'c', false)",
    'SELECT "set_config"($1, $2, false)',
  ])('%j changes settings', (sql) => {
    expect(settings(sql)).toBe(true);
  });

  it.each([
    "SET LOCAL statement_timeout = '5s'",
    'set local search_path = x',
    'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE',
    'SET CONSTRAINTS ALL DEFERRED',
    'UPDATE t SET a = 1',
    "SELECT 'SET x = 1'",
    '/* SET x = 1 */ SELECT 1',
    "SELECT $$ SET x = 1; $$",
    'SELECT "SET_CONFIG"(1)', // quoted names keep their case: another function
    "SELECT 'set_config'",
  ])('%j does not', (sql) => {
    expect(settings(sql)).toBe(false);
  });

  it('reports SET after leading comments and in any statement of a text', () => {
    expect(settings('/* a /* nested */ b */ SET x = 1')).toBe(true);
    expect(settings('-- why\n  SET x = 1')).toBe(true);
    expect(settings('-- why\r\nset x = 1')).toBe(true);
    expect(settings('BEGIN; SELECT 1; SET x = 1; COMMIT')).toBe(true);
    expect(settings('BEGIN; SET LOCAL x = 1; COMMIT')).toBe(false);
    expect(settings('SET /* local? */ LOCAL x = 1')).toBe(false);
    expect(settings('SeT x = 1')).toBe(true);
  });
});

describe('features', () => {
  it('LISTEN, but not UNLISTEN or a column named listen', () => {
    expect(feature('LISTEN jobs')).toBe('LISTEN');
    expect(feature('listen "Jobs"')).toBe('LISTEN');
    expect(feature('UNLISTEN *')).toBeNull();
    expect(feature('SELECT listen FROM t')).toBeNull();
    expect(feature("SELECT 'LISTEN x'")).toBeNull();
    expect(feature('-- LISTEN x\nSELECT 1')).toBeNull();
    expect(feature('/* LISTEN x */ SELECT 1')).toBeNull();
    expect(feature('SELECT "listen"; SELECT 1')).toBeNull();
  });

  it('session advisory locks, not the transaction-level or unlock functions', () => {
    for (const fn of ['pg_advisory_lock', 'pg_advisory_lock_shared', 'pg_try_advisory_lock', 'pg_try_advisory_lock_shared']) {
      expect(feature(`SELECT ${fn}(42)`)).toBe('session advisory lock');
    }
    expect(feature('SELECT PG_ADVISORY_LOCK(1)')).toBe('session advisory lock');
    expect(feature('SELECT pg_catalog.pg_advisory_lock(1, 2)')).toBe('session advisory lock');
    expect(feature('SELECT "pg_advisory_lock"(1)')).toBe('session advisory lock');
    expect(feature('SELECT pg_advisory_xact_lock(1)')).toBeNull();
    expect(feature('SELECT pg_try_advisory_xact_lock_shared(1)')).toBeNull();
    expect(feature('SELECT pg_advisory_unlock(1), pg_advisory_unlock_all()')).toBeNull();
    expect(feature("SELECT 'pg_advisory_lock(1)'")).toBeNull();
    expect(feature('DO $$ BEGIN PERFORM pg_advisory_lock(1); END $$')).toBeNull();
    expect(feature('DO $body$ BEGIN PERFORM pg_advisory_lock(1); END $body$')).toBeNull();
    expect(feature('SELECT my_pg_advisory_lock(1)')).toBeNull();
  });

  it.each([
    'CREATE TEMP TABLE t (a int)',
    'create temporary table t (a int)',
    'CREATE LOCAL TEMP TABLE t (a int)',
    'CREATE GLOBAL TEMPORARY TABLE t (a int)',
    'CREATE TEMP TABLE IF NOT EXISTS t AS SELECT 1',
    'CREATE TEMP TABLE t (a int) ON COMMIT DELETE ROWS',
    'CREATE TEMP VIEW v AS SELECT 1',
    'CREATE OR REPLACE TEMP VIEW v AS SELECT 1',
    'CREATE OR REPLACE LOCAL TEMPORARY VIEW v AS SELECT 1',
    'CREATE TEMP RECURSIVE VIEW v (n) AS SELECT 1',
    'CREATE TEMP SEQUENCE s',
    'SELECT 1 AS x INTO TEMP t',
    'SELECT * INTO TEMPORARY TABLE t FROM src',
    'select * into temp table "T" from src',
    'SELECT * INTO LOCAL TEMP t FROM src',
    'EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1',
  ])('%j creates a temporary object', (sql) => {
    expect(feature(sql)).toBe('CREATE TEMP TABLE');
  });

  it.each([
    'CREATE TEMP TABLE t (a int) ON COMMIT DROP',
    'create temporary table t on commit drop as select 1',
    'CREATE TABLE temp (a int)',
    'CREATE VIEW temp AS SELECT 1',
    'CREATE UNLOGGED TABLE t (a int)',
    'INSERT INTO temp VALUES (1)',
    'INSERT INTO temp (a) SELECT 1',
    'MERGE INTO temp t USING s ON t.id = s.id WHEN MATCHED THEN DELETE',
    'SELECT 1 INTO temp', // a table named temp
    'SELECT * INTO temp FROM src',
    'SELECT * INTO temp.t FROM src', // schema temp
    "SELECT 'CREATE TEMP TABLE t'",
  ])('%j does not', (sql) => {
    expect(feature(sql)).toBeNull();
  });

  it('ON COMMIT DROP only excuses its own statement', () => {
    expect(feature('CREATE TEMP TABLE a (x int) ON COMMIT DROP; CREATE TEMP TABLE b (x int)')).toBe('CREATE TEMP TABLE');
    expect(feature('CREATE TEMP TABLE a (x int); SELECT 1 ON COMMIT DROP')).toBe('CREATE TEMP TABLE');
  });

  it('DECLARE ... WITH HOLD before FOR', () => {
    expect(feature('DECLARE c CURSOR WITH HOLD FOR SELECT 1')).toBe('DECLARE WITH HOLD');
    expect(feature('declare c binary no scroll cursor with hold for select 1')).toBe('DECLARE WITH HOLD');
    expect(feature('DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1')).toBeNull();
    expect(feature('DECLARE c CURSOR FOR SELECT 1')).toBeNull();
    expect(feature('DECLARE c CURSOR FOR WITH hold AS (SELECT 1) SELECT * FROM hold')).toBeNull();
    expect(feature('SELECT 1 WITH HOLD')).toBeNull();
  });

  it('LOAD', () => {
    expect(feature("LOAD 'auto_explain'")).toBe('LOAD');
    expect(feature("load '$libdir/plugins/x'")).toBe('LOAD');
    expect(feature('SELECT load FROM servers')).toBeNull();
  });

  it('reports the first feature in text order', () => {
    expect(feature('SELECT pg_advisory_lock(1); LISTEN x')).toBe('session advisory lock');
    expect(feature('LISTEN x; SELECT pg_advisory_lock(1)')).toBe('LISTEN');
    expect(feature('CREATE TEMP TABLE t AS SELECT pg_advisory_lock(1)')).toBe('CREATE TEMP TABLE');
    expect(feature("LOAD 'x'; DECLARE c CURSOR WITH HOLD FOR SELECT 1")).toBe('LOAD');
    expect(fx('SET x = 1; LISTEN y; SELECT pg_try_advisory_lock(3)')).toEqual(effects({ changesSettings: true, feature: 'LISTEN' }));
  });
});

describe('DISCARD and DEALLOCATE ALL', () => {
  it('DISCARD ALL', () => {
    expect(fx('DISCARD ALL')).toEqual(effects({ changesSettings: true, discardAll: true }));
    expect(fx('discard all;')).toEqual(effects({ changesSettings: true, discardAll: true }));
    expect(fx('DISCARD SEQUENCES')).toEqual(effects({ changesSettings: true }));
    expect(fx('SELECT 1; DISCARD ALL')).toEqual(effects({ changesSettings: true, discardAll: true }));
  });

  it('DEALLOCATE [PREPARE] ALL in any statement', () => {
    const text = 'SELECT 1; DEALLOCATE PREPARE ALL';
    expect(fx(text)).toEqual(effects({ deallocateAll: true, preparedInMulti: true }));
  });
});

describe('prepared statements', () => {
  const prepared = (sql: string) => fx(sql)?.prepared ?? null;
  /** the name's span in the text */
  const span = (sql: string): string => {
    const p = prepared(sql);
    expect(p).not.toBeNull();
    return sql.slice(p!.nameStart, p!.nameEnd);
  };

  it('PREPARE, with and without parameter types', () => {
    const sql = 'PREPARE get_user (int, text) AS SELECT * FROM users WHERE id = $1 AND name = $2';
    expect(fx(sql)).toEqual(effects({ prepared: { kind: 'prepare', name: 'get_user', nameStart: 8, nameEnd: 16 } }));
    expect(prepared('prepare q as select 1')).toEqual({ kind: 'prepare', name: 'q', nameStart: 8, nameEnd: 9 });
    expect(prepared('PREPARE "q"(int)AS SELECT $1')).toMatchObject({ kind: 'prepare', name: 'q' });
  });

  it('EXECUTE, with and without arguments', () => {
    expect(prepared('EXECUTE get_user(42)')).toEqual({ kind: 'execute', name: 'get_user', nameStart: 8, nameEnd: 16 });
    expect(prepared('execute q')).toEqual({ kind: 'execute', name: 'q', nameStart: 8, nameEnd: 9 });
    expect(prepared('EXECUTE q;')).toMatchObject({ kind: 'execute', name: 'q' });
  });

  it('DEALLOCATE name, DEALLOCATE PREPARE name, ALL', () => {
    expect(prepared('DEALLOCATE q')).toEqual({ kind: 'deallocate', name: 'q', nameStart: 11, nameEnd: 12 });
    expect(prepared('DEALLOCATE PREPARE q')).toEqual({ kind: 'deallocate', name: 'q', nameStart: 19, nameEnd: 20 });
    expect(fx('DEALLOCATE ALL')).toEqual(effects({ deallocateAll: true, prepared: { kind: 'deallocate', name: null, nameStart: 11, nameEnd: 14 } }));
    expect(fx('deallocate prepare all')).toEqual(effects({ deallocateAll: true, prepared: { kind: 'deallocate', name: null, nameStart: 19, nameEnd: 22 } }));
    // a lone PREPARE after DEALLOCATE is the statement's name, as in PostgreSQL's grammar
    expect(prepared('DEALLOCATE prepare')).toEqual({ kind: 'deallocate', name: 'prepare', nameStart: 11, nameEnd: 18 });
    expect(prepared('DEALLOCATE PREPARE prepare')).toMatchObject({ name: 'prepare', nameStart: 19 });
    expect(prepared('DEALLOCATE "all"')).toEqual({ kind: 'deallocate', name: 'all', nameStart: 11, nameEnd: 16 });
  });

  it('folds unquoted names to lower case and keeps quoted ones, unescaping ""', () => {
    expect(prepared('EXECUTE GetUser')).toMatchObject({ name: 'getuser' });
    expect(prepared('EXECUTE "GetUser"')).toMatchObject({ name: 'GetUser' });
    expect(prepared('EXECUTE "a""b"')).toMatchObject({ name: 'a"b' });
    expect(prepared('EXECUTE "a;b"(1)')).toMatchObject({ name: 'a;b' });
    expect(prepared('EXECUTE Ünï')).toMatchObject({ name: 'Ünï' }); // only ASCII folds on a UTF-8 server
    expect(prepared('execute select_user')).toMatchObject({ name: 'select_user' });
  });

  it('U&"..." names, with UESCAPE spanned so the caller can replace the whole clause', () => {
    expect(prepared('EXECUTE U&"d\\0061t"')).toMatchObject({ name: 'dat' });
    expect(prepared('EXECUTE U&"\\+01F600x"')).toMatchObject({ name: '\u{1F600}x' });
    const sql = "EXECUTE U&\"d!0061t\" UESCAPE '!' (1)";
    expect(prepared(sql)).toMatchObject({ kind: 'execute', name: 'dat' });
    expect(span(sql)).toBe("U&\"d!0061t\" UESCAPE '!'");
    expect(prepared('EXECUTE U&"d\\00"')).toBeNull(); // bad escape: the server rejects it
  });

  it('truncates names to 63 bytes like the server', () => {
    const long = 'a'.repeat(70);
    expect(prepared(`EXECUTE ${long}`)).toMatchObject({ name: 'a'.repeat(63), nameStart: 8, nameEnd: 78 });
    expect(prepared(`EXECUTE "${'é'.repeat(40)}"`)).toMatchObject({ name: 'é'.repeat(31) });
  });

  it('offsets point at the name token (quotes included) in the original text', () => {
    for (const sql of [
      'PREPARE p1 AS SELECT 1',
      '  /* lead */ -- more\n PREPARE "My Stmt" (int) AS SELECT $1',
      'EXECUTE\n\t"x""y" ( 1, 2 )',
      'DEALLOCATE /* c */ PREPARE Foo ;',
      ';; EXECUTE p ;;',
    ]) {
      const p = prepared(sql)!;
      expect(p).not.toBeNull();
      const token = sql.slice(p.nameStart, p.nameEnd);
      expect(['p1', '"My Stmt"', '"x""y"', 'Foo', 'p']).toContain(token);
    }
    const sql = 'EXECUTE "x""y"(1)';
    const p = prepared(sql)!;
    expect(sql.slice(0, p.nameStart) + 'pooler_1' + sql.slice(p.nameEnd)).toBe('EXECUTE pooler_1(1)');
  });

  it('reports effects of the prepared statement body too', () => {
    expect(fx('PREPARE p AS SELECT pg_advisory_lock($1)')).toMatchObject({ feature: 'session advisory lock', prepared: { kind: 'prepare', name: 'p' } });
    expect(fx('PREPARE p AS SELECT 1 INTO TEMP t')).toMatchObject({ feature: 'CREATE TEMP TABLE', prepared: { name: 'p' } });
  });

  it('a single statement ignores empty statements around it', () => {
    expect(prepared(';EXECUTE p;;')).toMatchObject({ name: 'p' });
    expect(fx('EXECUTE p; -- done')).toEqual(effects({ prepared: { kind: 'execute', name: 'p', nameStart: 8, nameEnd: 9 } }));
  });

  it('flags PREPARE/EXECUTE/DEALLOCATE in a multi-statement text without a rewritable statement', () => {
    expect(fx('BEGIN; EXECUTE p; COMMIT')).toEqual(effects({ preparedInMulti: true }));
    expect(fx('PREPARE p AS SELECT 1; EXECUTE p')).toEqual(effects({ preparedInMulti: true }));
    expect(fx('SELECT 1; DEALLOCATE p')).toEqual(effects({ preparedInMulti: true }));
    expect(fx('SET x = 1; EXECUTE p')).toEqual(effects({ preparedInMulti: true, changesSettings: true }));
  });

  it('ignores what is not a PREPARE/EXECUTE/DEALLOCATE statement', () => {
    expect(fx("SELECT 'EXECUTE p'")).toBeNull();
    expect(fx('SELECT execute, prepare FROM jobs')).toBeNull();
    expect(fx("DO $$ BEGIN EXECUTE 'SELECT 1'; END $$")).toBeNull();
    expect(fx('CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE x; END $$')).toBeNull();
  });

  it('malformed names are left for the server to reject', () => {
    expect(fx('EXECUTE')).toBeNull();
    expect(fx('EXECUTE select')).toBeNull(); // reserved word
    expect(fx('EXECUTE 1')).toBeNull();
    expect(fx('EXECUTE ""')).toBeNull();
    expect(fx('EXECUTE p q')).toBeNull();
    expect(fx('PREPARE p SELECT 1')).toBeNull();
    expect(fx('DEALLOCATE p q')).toBeNull();
  });
});

describe('statement splitting', () => {
  it('does not split inside parentheses or a BEGIN ATOMIC body', () => {
    const fn = 'CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 1 END; END';
    expect(fx(fn)).toBeNull();
    expect(fx(`${fn}; EXECUTE p`)).toEqual(effects({ preparedInMulti: true }));
  });

  it('a ; inside strings, identifiers and comments does not start a statement', () => {
    expect(fx("SELECT ';SET x = 1'")).toBeNull();
    expect(fx('SELECT 1 AS ";SET x"')).toBeNull();
    expect(fx('SELECT 1 /* ; SET x = 1 */')).toBeNull();
    expect(fx('SELECT 1 -- ; LISTEN x')).toBeNull();
    expect(fx("SELECT E'\\'; LISTEN x'")).toBeNull();
  });
});

describe('malformed text', () => {
  it.each([
    "SELECT 'unterminated; SET x = 1",
    'SELECT "unterminated; LISTEN x',
    '/* unterminated SET x = 1',
    'SELECT $$ unterminated; LISTEN x',
    'PREPARE "unterminated AS SELECT 1',
    'EXECUTE U&"x" UESCAPE',
    "EXECUTE U&\"x\" UESCAPE 'ab'",
    'DEALLOCATE',
    'DEALLOCATE PREPARE p q',
  ])('%j never throws and finds nothing', (sql) => {
    expect(fx(sql)).toBeNull();
  });

  it('a statement cut short still counts what it started', () => {
    expect(fx("SET x = 'unterminated")).toEqual(effects({ changesSettings: true }));
    expect(fx('LISTEN')).toEqual(effects({ feature: 'LISTEN' }));
  });

  it('random texts built from tricky fragments: never throws, pre-check agrees with a full scan', () => {
    const parts = [
      'SET', 'set', 'LOCAL', 'RESET', 'DISCARD', 'ALL', 'LISTEN', 'DECLARE', 'CURSOR', 'WITH', 'HOLD', 'FOR', 'LOAD',
      'PREPARE', 'EXECUTE', 'DEALLOCATE', 'CREATE', 'OR REPLACE', 'TEMP', 'temporary', 'TABLE', 'VIEW', 'INTO', 'INSERT',
      'ON', 'COMMIT', 'DROP', 'BEGIN', 'ATOMIC', 'END', 'CASE', 'set_config', 'pg_advisory_lock', 'pg_advisory_xact_lock',
      'p', '"Q"', 'U&"x"', "UESCAPE '!'", ';', ';', '(', ')', ',', "'str'", "'", '"', '$$', '$$x$$', '--', '\n', '\r',
      '/*', '*/', ' ', '\t', 'x', '1', 'SELECT', 'UPDATE t', 'é', '$1',
    ];
    const rand = rng(7);
    for (let i = 0; i < 3000; i++) {
      let sql = '';
      const n = 1 + Math.floor(rand() * 12);
      for (let j = 0; j < n; j++) sql += parts[Math.floor(rand() * parts.length)]! + (rand() < 0.7 ? ' ' : '');
      expect(sessionEffects(sql), sql).toEqual(scanSessionEffects(sql));
    }
  });
});
