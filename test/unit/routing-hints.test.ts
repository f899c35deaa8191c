// Unit tests for routing hints and pooler's own SET/SHOW commands, and the cached classifier in front of libpg-query.
import { beforeAll, describe, expect, it } from 'vitest';
import { leadingHint, poolerCommand } from '../../src/routing/hints.ts';
import { ShapeCache } from '../../src/sql/shapes.ts';
import { ClassCache } from '../../src/routing/class-cache.ts';
import { initClassifier } from '../../src/routing/classify.ts';

describe('leadingHint', () => {
  it.each([
    ['/* pooler:primary */ SELECT 1', 'primary'],
    ['  /*pooler:replica*/SELECT 1', 'replica'],
    ['/* POOLER:Replica */ select 1', 'replica'],
    ['SELECT 1 /* pooler:primary */', null],
    ['/* other */ /* pooler:primary */ SELECT 1', null],
    ['/* pooler:somewhere */ SELECT 1', null],
    ['SELECT 1', null],
  ])('%s → %s', (sql, hint) => {
    expect(leadingHint(sql)).toBe(hint);
  });
});

describe('poolerCommand', () => {
  it.each([
    ['SET pooler.route = primary', { kind: 'set', name: 'route', value: 'primary', local: false }],
    ["set session pooler.route to 'replica';", { kind: 'set', name: 'route', value: 'replica', local: false }],
    ['SET LOCAL pooler.route = auto', { kind: 'set', name: 'route', value: 'auto', local: true }],
    ["SET pooler.min_lsn = '0/16B3748'", { kind: 'set', name: 'min_lsn', value: '0/16B3748', local: false }],
    ['SET pooler.min_lsn TO 16/B374D848', { kind: 'set', name: 'min_lsn', value: '16/B374D848', local: false }],
    ['RESET pooler.route', { kind: 'set', name: 'route', value: null, local: false }],
    ['SHOW pooler.last_write_lsn', { kind: 'show', name: 'last_write_lsn' }],
    ['  show POOLER.ROUTE ; ', { kind: 'show', name: 'route' }],
  ])('%s', (sql, cmd) => {
    expect(poolerCommand(sql)).toEqual(cmd);
  });

  it.each([
    'SET pooler.route = primary; SELECT 1',
    "SELECT 'pooler.route'",
    'SET search_path = pooler',
    'SHOW pooler',
    'SET mypooler.route = primary',
  ])('ignores %s', (sql) => {
    expect(poolerCommand(sql)).toBeNull();
  });
});

describe('ClassCache', () => {
  beforeAll(() => initClassifier());

  it('classifies once per shape: other literals hit the cache', () => {
    const c = new ClassCache(new ShapeCache());
    expect(c.classOf('SELECT * FROM t WHERE id = 1').cls).toBe('read');
    expect(c.classOf('SELECT * FROM t WHERE id = 2').cls).toBe('read');
    expect(c.classOf('select * from t where id = $1').cls).toBe('read');
    expect(c.misses).toBe(1);
    expect(c.hits).toBe(2);
    expect(c.classOf('SELECT nextval($1)').cls).toBe('write');
  });

  it('write_functions applies to cached shapes after a change', () => {
    const c = new ClassCache(new ShapeCache());
    expect(c.classOf('SELECT my_write(1)').cls).toBe('read');
    c.setWriteFunctions(['public.my_write']);
    expect(c.classOf('SELECT my_write(1)').cls).toBe('write');
    c.setWriteFunctions([]);
    expect(c.classOf('SELECT my_write(2)').cls).toBe('read');
  });
});
