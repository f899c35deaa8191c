// Unit tests for statement classification (read/write splitting): a corpus of statements with their expected class, plus timings.
import { beforeAll, describe, expect, it } from 'vitest';
import { classify, initClassifier, type StatementClass } from '../../src/routing/classify.ts';

const READ: string[] = [
  'SELECT 1',
  'select * from t',
  'SELECT a, b FROM t WHERE id = $1',
  'SELECT count(*) FROM orders o JOIN users u ON u.id = o.user_id GROUP BY u.id HAVING count(*) > 2',
  'SELECT * FROM t ORDER BY a LIMIT 10 OFFSET 20',
  'SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b DESC',
  'SELECT * FROM t WHERE a IN (SELECT b FROM u)',
  'SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.a = t.a)',
  'SELECT (SELECT max(x) FROM u) AS m',
  'SELECT * FROM (SELECT * FROM t) s',
  'SELECT * FROM t, LATERAL (SELECT * FROM u WHERE u.a = t.a) l',
  'SELECT 1 UNION SELECT 2',
  'SELECT 1 UNION ALL SELECT 2 INTERSECT SELECT 3 EXCEPT SELECT 4',
  'WITH x AS (SELECT 1 AS a) SELECT * FROM x',
  'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT * FROM r',
  'WITH x AS MATERIALIZED (SELECT * FROM t) SELECT * FROM x',
  'VALUES (1), (2)',
  'VALUES (1, \'a\') ORDER BY 1',
  'TABLE t',
  'TABLE s.t',
  'SHOW search_path',
  'SHOW ALL',
  'SHOW TRANSACTION ISOLATION LEVEL',
  'SELECT now(), current_timestamp, current_user, version()',
  'SELECT pg_catalog.now()',
  'SELECT lower(name), upper(name), coalesce(a, b), nullif(a, b) FROM t',
  'SELECT sum(x) OVER (PARTITION BY y ORDER BY z) FROM t',
  'SELECT array_agg(x ORDER BY x) FILTER (WHERE x > 0) FROM t',
  'SELECT jsonb_build_object(\'a\', 1) -> \'a\'',
  'SELECT x::int, CAST(y AS text) FROM t',
  'SELECT CASE WHEN a THEN 1 ELSE 2 END FROM t',
  'SELECT * FROM generate_series(1, 10) g',
  'SELECT * FROM unnest(ARRAY[1,2,3]) WITH ORDINALITY',
  'SELECT * FROM "Users" WHERE "Id" = 1',
  'SELECT "nextval" FROM t',
  'SELECT nextval FROM t',
  'SELECT t.nextval FROM t',
  'SELECT \'nextval(1)\'',
  'SELECT \'SELECT 1 FOR UPDATE\' AS s',
  'SELECT $$INSERT INTO t VALUES (1)$$',
  'SELECT 1 -- FOR UPDATE',
  '/* DELETE FROM t; */ SELECT 1',
  'SELECT /* nextval(\'s\') */ 1',
  '-- insert\nSELECT 1',
  'SELECT currval_fake(1)',
  'SELECT advisory_lock_info()',
  'SELECT txid_current_snapshot()',
  'SELECT pg_is_in_recovery()',
  'SELECT pg_last_wal_replay_lsn()',
  'SELECT current_setting(\'search_path\')',
  'SELECT lo_get(1234)',
  'SELECT octet_length(\'x\')',
  'SELECT has_table_privilege(\'t\', \'select\')',
  'SELECT * FROM pg_stat_activity',
  'SELECT * FROM information_schema.tables WHERE table_schema = \'public\'',
  'SELECT 1; SELECT 2',
  'SELECT 1; SHOW timezone; VALUES (1)',
  'EXPLAIN SELECT * FROM t',
  'EXPLAIN DELETE FROM t',
  'EXPLAIN INSERT INTO t VALUES (1)',
  'EXPLAIN UPDATE t SET a = 1',
  'EXPLAIN SELECT * FROM t FOR UPDATE',
  'EXPLAIN SELECT nextval(\'s\')',
  'EXPLAIN (COSTS OFF, VERBOSE) SELECT 1',
  'EXPLAIN (ANALYZE false) DELETE FROM t',
  'EXPLAIN (ANALYZE off) INSERT INTO t VALUES (1)',
  'EXPLAIN (ANALYZE 0) UPDATE t SET a = 1',
  'EXPLAIN ANALYZE SELECT * FROM t',
  'EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t WHERE a = 1',
  'COPY t TO STDOUT',
  'COPY t (a, b) TO STDOUT WITH (FORMAT csv, HEADER)',
  'COPY (SELECT * FROM t WHERE a > 1) TO STDOUT',
  'COPY s.t TO STDOUT (FORMAT binary)',
  'SELECT * FROM t WHERE a = ANY($1::int[])',
  'SELECT * FROM t WHERE a BETWEEN 1 AND 2 AND b LIKE \'x%\'',
  'SELECT * FROM t TABLESAMPLE SYSTEM (10)',
  'SELECT * FROM t WINDOW w AS (ORDER BY a)',
  'SELECT * FROM t FETCH FIRST 5 ROWS ONLY',
  'SELECT * FROM t GROUP BY GROUPING SETS ((a), (b))',
  'SELECT row_to_json(t) FROM t',
  'SELECT xmlelement(name foo)',
  'PREPARE p AS SELECT * FROM t WHERE a = $1',
  'PREPARE p (int) AS VALUES ($1)',
  'DECLARE c CURSOR FOR SELECT * FROM t',
  'DECLARE c BINARY SCROLL CURSOR WITHOUT HOLD FOR SELECT 1',
  '   ',
  '-- only a comment',
  ';',
];

const WRITE: string[] = [
  // DML
  'INSERT INTO t VALUES (1)',
  'INSERT INTO t (a) SELECT a FROM u',
  'INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = excluded.b',
  'INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING RETURNING *',
  'UPDATE t SET a = a + 1 WHERE id = $1',
  'UPDATE t SET a = u.a FROM u WHERE u.id = t.id',
  'DELETE FROM t WHERE id = 1',
  'DELETE FROM t USING u WHERE u.id = t.id RETURNING t.*',
  'MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN UPDATE SET a = u.a WHEN NOT MATCHED THEN INSERT VALUES (u.id, u.a)',
  'insert into "Quoted Table" ("Col") values (1)',
  // DDL
  'CREATE TABLE x (a int)',
  'CREATE TEMP TABLE x (a int)',
  'CREATE UNLOGGED TABLE x (a int)',
  'CREATE TABLE x AS SELECT * FROM t',
  'CREATE INDEX ON t (a)',
  'CREATE INDEX CONCURRENTLY i ON t (a)',
  'CREATE VIEW v AS SELECT * FROM t',
  'CREATE MATERIALIZED VIEW mv AS SELECT * FROM t',
  'CREATE SEQUENCE s',
  'CREATE SCHEMA s',
  'CREATE EXTENSION pgcrypto',
  'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$SELECT 1$$',
  'CREATE OR REPLACE PROCEDURE p() LANGUAGE plpgsql AS $$BEGIN NULL; END$$',
  'CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()',
  'CREATE TYPE mood AS ENUM (\'sad\', \'ok\')',
  'CREATE DOMAIN d AS int CHECK (VALUE > 0)',
  'CREATE ROLE r LOGIN',
  'CREATE USER u',
  'CREATE DATABASE d',
  'CREATE POLICY p ON t USING (true)',
  'CREATE PUBLICATION p FOR TABLE t',
  'CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING',
  'ALTER TABLE t ADD COLUMN b int',
  'ALTER TABLE t RENAME TO u',
  'ALTER SEQUENCE s RESTART',
  'ALTER ROLE r SET search_path = x',
  'ALTER SYSTEM SET work_mem = \'64MB\'',
  'ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO r',
  'DROP TABLE t',
  'DROP TABLE IF EXISTS t CASCADE',
  'DROP INDEX CONCURRENTLY i',
  'DROP FUNCTION f()',
  'DROP OWNED BY r',
  'REASSIGN OWNED BY a TO b',
  'TRUNCATE t',
  'TRUNCATE TABLE t, u RESTART IDENTITY',
  'GRANT SELECT ON t TO r',
  'REVOKE ALL ON t FROM r',
  'COMMENT ON TABLE t IS \'x\'',
  'SECURITY LABEL ON TABLE t IS \'x\'',
  'REINDEX TABLE t',
  'VACUUM',
  'VACUUM (ANALYZE) t',
  'VACUUM FULL t',
  'ANALYZE',
  'ANALYZE t',
  'CLUSTER t USING i',
  'REFRESH MATERIALIZED VIEW mv',
  'REFRESH MATERIALIZED VIEW CONCURRENTLY mv',
  'CHECKPOINT',
  'IMPORT FOREIGN SCHEMA s FROM SERVER srv INTO x',
  'SET CONSTRAINTS ALL DEFERRED',
  // locking reads
  'SELECT * FROM t FOR UPDATE',
  'SELECT * FROM t FOR NO KEY UPDATE',
  'SELECT * FROM t FOR SHARE',
  'SELECT * FROM t FOR KEY SHARE',
  'SELECT * FROM t FOR UPDATE SKIP LOCKED',
  'SELECT * FROM t FOR UPDATE NOWAIT',
  'SELECT * FROM t FOR UPDATE OF t',
  'SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)',
  'SELECT * FROM (SELECT * FROM t FOR SHARE) s',
  'SELECT (SELECT a FROM u FOR KEY SHARE LIMIT 1)',
  'WITH x AS (SELECT * FROM t FOR UPDATE) SELECT * FROM x',
  'SELECT 1 UNION ALL (SELECT 2 FROM t FOR UPDATE)',
  'SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.a = t.a FOR NO KEY UPDATE)',
  'SELECT * FROM t, LATERAL (SELECT * FROM u FOR UPDATE) l',
  // SELECT INTO
  'SELECT * INTO t2 FROM t',
  'SELECT a INTO TEMP t2 FROM t',
  // writing CTEs
  'WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x',
  'WITH x AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM x',
  'WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM x',
  'WITH a AS (SELECT 1), b AS (WITH c AS (DELETE FROM t RETURNING *) SELECT * FROM c) SELECT * FROM b',
  'WITH x AS (MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE RETURNING t.*) SELECT * FROM x',
  'WITH moved AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM moved',
  // write functions, anywhere
  'SELECT nextval(\'s\')',
  'SELECT NEXTVAL(\'s\')',
  'SELECT pg_catalog.nextval(\'s\')',
  'SELECT "nextval"(\'s\')',
  'SELECT pg_catalog."nextval"(\'s\')',
  'SELECT setval(\'s\', 10)',
  'SELECT currval(\'s\')',
  'SELECT lastval()',
  'SELECT * FROM nextval(\'s\')',
  'SELECT a FROM t WHERE b = nextval(\'s\')',
  'SELECT a FROM t WHERE b IN (SELECT nextval(\'s\'))',
  'SELECT coalesce(a, nextval(\'s\')) FROM t',
  'SELECT CASE WHEN a THEN setval(\'s\', 1) END FROM t',
  'SELECT array[nextval(\'s\')]',
  'SELECT nextval(\'s\')::text',
  'SELECT sum(nextval(\'s\')) OVER () FROM t',
  'WITH x AS (SELECT nextval(\'s\') AS v) SELECT v FROM x',
  'VALUES (nextval(\'s\'))',
  'SELECT pg_advisory_lock(1)',
  'SELECT pg_advisory_lock(1, 2)',
  'SELECT pg_advisory_lock_shared(1)',
  'SELECT pg_advisory_unlock(1)',
  'SELECT pg_advisory_unlock_shared(1)',
  'SELECT pg_advisory_unlock_all()',
  'SELECT pg_advisory_xact_lock(1)',
  'SELECT pg_advisory_xact_lock_shared(1)',
  'SELECT pg_try_advisory_lock(1)',
  'SELECT pg_try_advisory_lock_shared(1)',
  'SELECT pg_try_advisory_xact_lock(1)',
  'SELECT pg_try_advisory_xact_lock_shared(1)',
  'SELECT pg_catalog.pg_try_advisory_lock(hashtext(\'job\'))',
  'SELECT set_config(\'search_path\', \'x\', false)',
  'SELECT pg_catalog.set_config(\'app.tenant\', $1, true)',
  'SELECT txid_current()',
  'SELECT pg_current_xact_id()',
  'SELECT pg_notify(\'ch\', \'payload\')',
  'SELECT lo_create(0)',
  'SELECT lo_creat(-1)',
  'SELECT lo_import(\'/tmp/x\')',
  'SELECT lo_export(1, \'/tmp/x\')',
  'SELECT lo_unlink(1)',
  'SELECT lo_from_bytea(0, \'\\xff\')',
  'SELECT lo_put(1, 0, \'\\xff\')',
  'SELECT lowrite(0, \'x\')',
  'SELECT lo_truncate(0, 1)',
  'SELECT pg_terminate_backend(123)',
  // COPY FROM, CALL, DO
  'COPY t FROM STDIN',
  'COPY t (a, b) FROM STDIN WITH (FORMAT csv)',
  'COPY t FROM \'/tmp/data.csv\'',
  'COPY t TO \'/tmp/out.csv\'',
  'COPY t TO PROGRAM \'gzip > /tmp/x.gz\'',
  'COPY (SELECT nextval(\'s\')) TO STDOUT',
  'COPY (DELETE FROM t RETURNING *) TO STDOUT',
  'COPY (SELECT * FROM t FOR UPDATE) TO STDOUT',
  'CALL p()',
  'CALL s.p(1, 2)',
  'DO $$BEGIN PERFORM 1; END$$',
  'DO LANGUAGE plpgsql $$BEGIN NULL; END$$',
  // EXPLAIN ANALYZE of writes
  'EXPLAIN ANALYZE DELETE FROM t',
  'EXPLAIN ANALYZE INSERT INTO t VALUES (1)',
  'EXPLAIN (ANALYZE) UPDATE t SET a = 1',
  'EXPLAIN (ANALYZE true, BUFFERS) UPDATE t SET a = 1',
  'EXPLAIN (ANALYZE on) MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE',
  'EXPLAIN (ANALYZE 1) DELETE FROM t',
  'EXPLAIN ANALYZE SELECT nextval(\'s\')',
  'EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE',
  'EXPLAIN ANALYZE WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x',
  'EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1',
  'EXPLAIN EXECUTE p(1)',
  // LOCK, LISTEN/NOTIFY/UNLISTEN
  'LOCK TABLE t',
  'LOCK t IN ACCESS EXCLUSIVE MODE NOWAIT',
  'LISTEN ch',
  'NOTIFY ch',
  'NOTIFY ch, \'payload\'',
  'UNLISTEN *',
  'UNLISTEN ch',
  // PREPARE/EXECUTE, cursors
  'PREPARE p AS INSERT INTO t VALUES ($1)',
  'PREPARE p AS SELECT * FROM t FOR UPDATE',
  'PREPARE p AS SELECT nextval(\'s\')',
  'PREPARE p AS WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x',
  'EXECUTE p',
  'EXECUTE p(1, \'a\')',
  'DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE',
  'DECLARE c CURSOR FOR SELECT nextval(\'s\')',
  'DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t',
  'FETCH 10 FROM c',
  'FETCH ALL IN c',
  'FETCH NEXT c',
  'MOVE FORWARD 5 IN c',
  'CLOSE c',
  'CLOSE ALL',
  // multi-statement: the write wins
  'SELECT 1; INSERT INTO t VALUES (1)',
  'BEGIN; UPDATE t SET a = 1; COMMIT',
  'SET x = 1; DELETE FROM t',
  'SHOW x; SELECT nextval(\'s\'); SELECT 1',
  'SELECT 1; SELECT * FROM t FOR UPDATE',
  // unparsable: the primary
  'SELEC 1',
  'SELECT * FROM',
  'SELECT \'unterminated',
  'INSERT INTO t VALUES (1',
  'garbage',
  'SELECT 1; SELEC 2',
  'SELECT $$never closed',
  'SELECT "unterminated',
  'SELECT 1 +',
];

const TRANSACTION: string[] = [
  'BEGIN',
  'BEGIN WORK',
  'BEGIN TRANSACTION',
  'BEGIN ISOLATION LEVEL SERIALIZABLE',
  'START TRANSACTION',
  'START TRANSACTION ISOLATION LEVEL REPEATABLE READ',
  'COMMIT',
  'COMMIT AND CHAIN',
  'END',
  'ROLLBACK',
  'ABORT',
  'ROLLBACK AND NO CHAIN',
  'SAVEPOINT sp1',
  'RELEASE SAVEPOINT sp1',
  'RELEASE sp1',
  'ROLLBACK TO SAVEPOINT sp1',
  'ROLLBACK TO sp1',
  'PREPARE TRANSACTION \'gid1\'',
  'COMMIT PREPARED \'gid1\'',
  'ROLLBACK PREPARED \'gid1\'',
  'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE',
  'SET TRANSACTION READ ONLY',
  'SET TRANSACTION SNAPSHOT \'00000003-0000001B-1\'',
  'BEGIN; SELECT 1',
  'SELECT 1; COMMIT',
  'BEGIN READ ONLY; SELECT * FROM t; COMMIT',
];

const SESSION: string[] = [
  'SET search_path = x',
  'SET search_path TO x, public',
  'SET LOCAL statement_timeout = 1000',
  'SET SESSION work_mem = \'64MB\'',
  'SET TIME ZONE \'UTC\'',
  'SET NAMES \'UTF8\'',
  'SET ROLE r',
  'SET SESSION AUTHORIZATION u',
  'SET app.tenant = \'42\'',
  'SET "myapp.Setting" = 1',
  'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY',
  'SET transaction_read_only = on',
  'RESET search_path',
  'RESET ALL',
  'RESET ROLE',
  'DISCARD ALL',
  'DISCARD PLANS',
  'DISCARD SEQUENCES',
  'DISCARD TEMP',
  'DEALLOCATE p',
  'DEALLOCATE PREPARE p',
  'DEALLOCATE ALL',
  'BEGIN; SET LOCAL x = 1; COMMIT',
  'SET x = 1; SELECT 1',
  'SELECT 1; RESET x',
];

// A typical ORM query (~2 KB): joins, parameters, nested subqueries, quoted identifiers.
const ORM_QUERY = [
  'SELECT "User"."id", "User"."email", "User"."name", "User"."createdAt", "User"."updatedAt",',
  '"profile"."id" AS "profile.id", "profile"."bio" AS "profile.bio", "profile"."avatarUrl" AS "profile.avatarUrl",',
  '"posts"."id" AS "posts.id", "posts"."title" AS "posts.title", "posts"."body" AS "posts.body",',
  '"posts"."publishedAt" AS "posts.publishedAt", "posts->tags"."id" AS "posts.tags.id", "posts->tags"."label" AS "posts.tags.label",',
  '(SELECT count(*) FROM "public"."comments" AS "c" WHERE "c"."postId" = "posts"."id" AND "c"."hidden" = false) AS "posts.commentCount",',
  '(SELECT max("l"."createdAt") FROM "public"."likes" AS "l" WHERE "l"."postId" = "posts"."id") AS "posts.lastLikedAt",',
  'CASE WHEN "User"."role" = $16 THEN true ELSE false END AS "isAdmin", lower("User"."email") AS "emailKey"',
  'FROM "public"."users" AS "User"',
  'LEFT OUTER JOIN "public"."profiles" AS "profile" ON "User"."id" = "profile"."userId" AND ("profile"."deletedAt" IS NULL)',
  'LEFT OUTER JOIN "public"."posts" AS "posts" ON "User"."id" = "posts"."authorId" AND ("posts"."status" = $1 AND "posts"."publishedAt" <= $2)',
  'LEFT OUTER JOIN ("public"."post_tags" AS "posts->tags->PostTag" INNER JOIN "public"."tags" AS "posts->tags"',
  'ON "posts->tags"."id" = "posts->tags->PostTag"."tagId") ON "posts"."id" = "posts->tags->PostTag"."postId"',
  'WHERE "User"."organizationId" = $3 AND "User"."deletedAt" IS NULL',
  'AND ("User"."email" ILIKE $4 OR "User"."name" ILIKE $5 OR "User"."id" IN (SELECT "m"."userId" FROM "public"."memberships" AS "m"',
  'WHERE "m"."teamId" = ANY($6::uuid[]) AND "m"."role" IN ($7, $8, $9) AND "m"."expiresAt" > now()))',
  'AND EXISTS (SELECT 1 FROM "public"."sessions" AS "s" WHERE "s"."userId" = "User"."id" AND "s"."lastSeenAt" > $10 - interval \'30 days\')',
  'AND "User"."id" NOT IN (SELECT "b"."userId" FROM "public"."blocked_users" AS "b" WHERE "b"."organizationId" = $3)',
  'AND coalesce("User"."settings"->>\'theme\', \'light\') = $11',
  'AND "User"."createdAt" BETWEEN $12 AND $13',
  'ORDER BY "User"."createdAt" DESC, "User"."id" ASC, "posts"."publishedAt" DESC NULLS LAST',
  'LIMIT $14 OFFSET $15',
].join('\n');

function corpus(): [string, StatementClass][] {
  return [
    ...READ.map((s): [string, StatementClass] => [s, 'read']),
    ...WRITE.map((s): [string, StatementClass] => [s, 'write']),
    ...TRANSACTION.map((s): [string, StatementClass] => [s, 'transaction']),
    ...SESSION.map((s): [string, StatementClass] => [s, 'session']),
    [ORM_QUERY, 'read'],
    [ORM_QUERY.replace('LIMIT $14', 'FOR UPDATE OF "User" LIMIT $14').replace(/ORDER BY[^\n]*\n/, ''), 'write'],
  ];
}

describe('classify', () => {
  beforeAll(async () => {
    const t0 = performance.now();
    await initClassifier();
    console.log(`initClassifier (WASM load): ${(performance.now() - t0).toFixed(1)} ms`);
  });

  it(`classifies the corpus (${corpus().length} statements)`, () => {
    expect(corpus().length).toBeGreaterThanOrEqual(200);
    const wrong = corpus()
      .map(([sql, want]) => ({ sql, want, got: classify(sql) }))
      .filter((r) => r.got.cls !== r.want)
      .map((r) => `${r.sql.slice(0, 80)}: want ${r.want}, got ${r.got.cls} (${r.got.reason ?? ''})`);
    expect(wrong).toEqual([]);
  });

  it('gives a reason for writes', () => {
    expect(classify('SELECT pg_catalog.nextval(\'s\')').reason).toBe('function nextval');
    expect(classify('SELECT * FROM t WHERE a IN (SELECT a FROM u FOR SHARE)').reason).toBe('locking clause');
    expect(classify('SELECT * INTO x FROM t').reason).toBe('SELECT INTO');
    expect(classify('SELEC 1').reason).toMatch(/^parse error: .*selec/i);
    expect(classify('TRUNCATE t').reason).toBe('TruncateStmt');
  });

  it('reports READ ONLY / READ WRITE on transaction statements', () => {
    expect(classify('BEGIN READ ONLY')).toEqual({ cls: 'transaction', readOnly: true });
    // A hot standby refuses serializable mode: such a transaction must run on the primary.
    expect(classify('START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE')).toEqual({
      cls: 'transaction',
      readOnly: false,
      reason: 'SERIALIZABLE is not available on a hot standby',
    });
    expect(classify('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')).toEqual({ cls: 'transaction', readOnly: true });
    expect(classify('SET TRANSACTION READ ONLY')).toEqual({ cls: 'transaction', readOnly: true });
    expect(classify('BEGIN READ WRITE')).toEqual({ cls: 'transaction', readOnly: false });
    expect(classify('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE READ WRITE')).toEqual({
      cls: 'transaction',
      readOnly: false,
    });
    expect(classify('BEGIN')).toEqual({ cls: 'transaction' });
    expect(classify('COMMIT')).toEqual({ cls: 'transaction' });
    expect(classify('BEGIN READ ONLY; SELECT 1')).toEqual({ cls: 'transaction', readOnly: true });
    expect(classify('BEGIN READ ONLY; SET TRANSACTION READ WRITE')).toEqual({ cls: 'transaction', readOnly: false });
    // a write outranks the transaction statement, and readOnly belongs only to transaction results
    expect(classify('BEGIN READ ONLY; INSERT INTO t VALUES (1)').readOnly).toBeUndefined();
    // a session default, not this transaction
    expect(classify('SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY')).toEqual({ cls: 'session' });
  });

  it('treats writeFunctions as writes, by lower-case schema-less name', () => {
    const fns = new Set(['bump_counter', 'audit_log']);
    expect(classify('SELECT bump_counter(1)', fns).cls).toBe('write');
    expect(classify('SELECT app.bump_counter(1)', fns).cls).toBe('write');
    expect(classify('SELECT "BUMP_COUNTER"(1)', fns).cls).toBe('write');
    expect(classify('SELECT * FROM t WHERE a = (SELECT audit_log($1))', fns)).toEqual({
      cls: 'write',
      reason: 'function audit_log',
    });
    expect(classify('SELECT * FROM audit_log(\'x\')', fns).cls).toBe('write');
    expect(classify('SELECT bump_counter FROM t', fns).cls).toBe('read');
    expect(classify('SELECT bump_counter(1)').cls).toBe('read');
    expect(classify('SELECT other(1)', fns).cls).toBe('read');
    expect(classify('EXPLAIN SELECT bump_counter(1)', fns).cls).toBe('read');
    expect(classify('EXPLAIN ANALYZE SELECT bump_counter(1)', fns).cls).toBe('write');
  });

  it('copes with deep nesting', () => {
    const deep = 'SELECT ' + '('.repeat(500) + '1' + ')'.repeat(500);
    expect(classify(deep).cls).toBe('read');
    const deepWrite = 'SELECT ' + '('.repeat(500) + 'nextval(\'s\')' + ')'.repeat(500);
    expect(classify(deepWrite).cls).toBe('write');
  });

  it('measures classify() time (printed, not asserted)', () => {
    const time = (sql: string, n: number): number => {
      for (let i = 0; i < 200; i++) classify(sql);
      const t0 = performance.now();
      for (let i = 0; i < n; i++) classify(sql);
      return ((performance.now() - t0) / n) * 1000;
    };
    const simple = 'SELECT id, name FROM users WHERE id = $1';
    console.log(`classify() simple SELECT (${simple.length} B): ${time(simple, 20_000).toFixed(1)} µs`);
    console.log(`classify() ORM query (${ORM_QUERY.length} B): ${time(ORM_QUERY, 2_000).toFixed(1)} µs`);
  });
});
