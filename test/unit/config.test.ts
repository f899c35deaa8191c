// Unit tests of the configuration loader: ini dialect, settings types, [databases]/[users] lines, errors and warnings.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig, PARAMS, showConfigRows, type Config } from '../../src/config/index.ts';
import { parseIni } from '../../src/config/ini.ts';
import { parseParamValue } from '../../src/config/settings.ts';
import { formatParamValue } from '../../src/config/show.ts';
import { parseTime } from '../../src/config/values.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const tmpRoot = mkdtempSync(join(tmpdir(), 'pooler-config-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

/** Joins lines so that test line numbers are easy to count: the first line is line 1. */
const ini = (...lines: string[]): string => lines.join('\n') + '\n';

const parse = (text: string): Config => parseConfig(text, 'test.ini');

function expectError(text: string, want: { line: number; key: string | undefined; message: string }): void {
  let caught: unknown;
  try {
    parse(text);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  const err = caught as ConfigError;
  expect({ file: err.file, line: err.line, key: err.key, message: err.message }).toEqual({
    file: 'test.ini',
    line: want.line,
    key: want.key,
    message: want.message,
  });
}

function writeTree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpRoot, 'tree-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

describe('ini dialect', () => {
  it('treats ; and # as comments only at the start of a line', () => {
    const c = parse(
      ini(
        '; a comment',
        '   # an indented comment',
        '[pooler]',
        '  ; listen_port = 1',
        'server_reset_query = DISCARD ALL; -- not a comment',
        'server_check_query = select 1 # not a comment either',
        '[databases]',
        'db = host=h password=p;x',
      ),
    );
    expect(c.settings.listen_port).toBe(6432);
    expect(c.settings.server_reset_query).toBe('DISCARD ALL; -- not a comment');
    expect(c.settings.server_check_query).toBe('select 1 # not a comment either');
    expect(c.databases.get('db')?.password).toBe('p;x');
  });

  it('keeps p;x as a value of a settings key', () => {
    expect(parse(ini('[pooler]', 'auth_query = p;x')).settings.auth_query).toBe('p;x');
  });

  it('trims blanks around keys and values, takes values literally and ignores case of keys and sections', () => {
    const c = parse(ini('[PgBouncer]', '  Listen_Port   =   7000   ', 'server_reset_query = "DISCARD ALL"', 'pool_mode=Transaction'));
    expect(c.settings.listen_port).toBe(7000);
    expect(c.settings.server_reset_query).toBe('"DISCARD ALL"');
    expect(c.settings.pool_mode).toBe('transaction');
  });

  it('handles CRLF line ends and a byte-order mark', () => {
    const c = parse('\uFEFF[pooler]\r\nlisten_port = 7001\r\n');
    expect(c.settings.listen_port).toBe(7001);
  });

  it('remembers file and line of every entry', () => {
    const items = parseIni(ini('[pooler]', '', 'listen_port = 1'), 'x.ini');
    expect(items).toEqual([
      { kind: 'section', name: 'pooler', file: 'x.ini', line: 1 },
      { kind: 'pair', key: 'listen_port', value: '1', file: 'x.ini', line: 3 },
    ]);
  });

  it('reads a double-quoted name with "" for a quote', () => {
    const c = parse(ini('[databases]', '"my ""odd"" db" = host=h', '"a=b" = host=h'));
    expect([...c.databases.keys()]).toEqual(['my "odd" db', 'a=b']);
  });
});

describe('[pooler] and [pgbouncer]', () => {
  it('accepts [pgbouncer] as the settings section', () => {
    expect(parse(ini('[pgbouncer]', 'listen_port = 7002')).settings.listen_port).toBe(7002);
  });

  it('merges [pooler] and [pgbouncer]; a key given twice keeps the later value', () => {
    const c = parse(ini('[pooler]', 'listen_port = 1', 'max_client_conn = 5', '[pgbouncer]', 'listen_port = 2', '[pooler]', 'default_pool_size = 3'));
    expect(c.settings.listen_port).toBe(2);
    expect(c.settings.max_client_conn).toBe(5);
    expect(c.settings.default_pool_size).toBe(3);
    expect(c.warnings).toEqual([]);
  });

  it('uses the table defaults when nothing is set', () => {
    const s = parse('').settings;
    expect(s.listen_addr).toBe('127.0.0.1');
    expect(s.listen_port).toBe(6432);
    expect(s.auth_type).toBe('md5');
    expect(s.pool_mode).toBe('session');
    expect(s.max_packet_size).toBe(268435456);
    expect(s.server_lifetime).toBe(3_600_000);
    expect(s.query_wait_timeout).toBe(120_000);
    expect(s.log_level).toBe('info');
    expect(s.track_extra_parameters).toEqual(['IntervalStyle']);
    expect(s.admin_users).toEqual([]);
    expect(s.conffile).toBe(resolve('test.ini'));
  });
});

describe('%include', () => {
  it('includes relative to the including file, continuing the current section', () => {
    const dir = writeTree({
      'main.ini': ini('[pooler]', 'listen_port = 7003', '%include conf.d/more.ini', 'after = host=h2'),
      'conf.d/more.ini': ini('default_pool_size = 4', '%include deeper.ini', '[databases]', 'db = host=h'),
      'conf.d/deeper.ini': ini('min_pool_size = 2'),
    });
    const c = loadConfig(join(dir, 'main.ini'));
    expect(c.settings.listen_port).toBe(7003);
    expect(c.settings.default_pool_size).toBe(4);
    expect(c.settings.min_pool_size).toBe(2);
    expect(c.databases.get('db')).toMatchObject({ file: join(dir, 'conf.d/more.ini'), line: 4 });
    // The [databases] header inside the include is still in force afterwards.
    expect(c.databases.get('after')).toMatchObject({ host: 'h2', file: join(dir, 'main.ini'), line: 4 });
  });

  it('reports errors inside an included file with that file and line', () => {
    const dir = writeTree({ 'main.ini': ini('[pooler]', '%include bad.ini'), 'bad.ini': ini('', 'listen_port = x') });
    expect(() => loadConfig(join(dir, 'main.ini'))).toThrow(`${join(dir, 'bad.ini')}:2: listen_port: invalid integer "x"`);
  });

  it('rejects a missing file, a missing name, a loop and unknown directives', () => {
    const dir = writeTree({ 'loop.ini': ini('[pooler]', '%include loop.ini') });
    expect(() => loadConfig(join(dir, 'loop.ini'))).toThrow(`${join(dir, 'loop.ini')}:2: %include: ${join(dir, 'loop.ini')} includes itself`);
    let err: ConfigError | undefined;
    try {
      loadConfig(writeTree({ 'm.ini': ini('[pooler]', '%include nope.ini') }) + '/m.ini');
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err?.line).toBe(2);
    expect(err?.key).toBe('%include');
    expect(err?.message).toMatch(/m\.ini:2: %include: cannot read .*nope\.ini: ENOENT/);
    expectError(ini('[pooler]', '%include'), { line: 2, key: '%include', message: 'test.ini:2: %include: missing file name' });
    expectError(ini('%define x'), { line: 1, key: undefined, message: 'test.ini:1: unknown directive "%define x"' });
  });
});

describe('errors name file, line and key', () => {
  const cases: [string, string, number, string | undefined, string][] = [
    ['unknown key', ini('[pooler]', 'listen_prot = 1'), 2, 'listen_prot', 'test.ini:2: listen_prot: unknown setting'],
    ['bad int', ini('[pooler]', '', 'max_client_conn = 10k'), 3, 'max_client_conn', 'test.ini:3: max_client_conn: invalid integer "10k"'],
    ['negative int', ini('[pooler]', 'default_pool_size = -1'), 2, 'default_pool_size', 'test.ini:2: default_pool_size: must be at least 0, got -1'],
    ['int above max', ini('[pooler]', 'listen_port = 70000'), 2, 'listen_port', 'test.ini:2: listen_port: must be at most 65535, got 70000'],
    ['empty int', ini('[pooler]', 'listen_port ='), 2, 'listen_port', 'test.ini:2: listen_port: invalid integer ""'],
    [
      'bad bool',
      ini('[pooler]', 'log_connections = maybe'),
      2,
      'log_connections',
      'test.ini:2: log_connections: invalid boolean "maybe" (use 1/0, yes/no, on/off or true/false)',
    ],
    [
      'bad enum',
      ini('[pooler]', 'pool_mode = sessions'),
      2,
      'pool_mode',
      'test.ini:2: pool_mode: invalid value "sessions" (allowed: session, transaction, statement)',
    ],
    [
      'bad time',
      ini('[pooler]', 'server_lifetime = 1 week'),
      2,
      'server_lifetime',
      'test.ini:2: server_lifetime: invalid time: "1 week" (write seconds such as 30 or 0.5, or use a unit: 500ms, 30s, 5min, 1h, 1d)',
    ],
    [
      'negative time',
      ini('[pooler]', 'query_wait_timeout = -5'),
      2,
      'query_wait_timeout',
      'test.ini:2: query_wait_timeout: must not be negative: "-5" (write seconds such as 30 or 0.5, or use a unit: 500ms, 30s, 5min, 1h, 1d)',
    ],
    ['line without =', ini('[pooler]', 'listen_port 6432'), 2, undefined, 'test.ini:2: expected "key = value", got "listen_port 6432"'],
    ['missing key', ini('[pooler]', '= 5'), 2, undefined, 'test.ini:2: missing key before "=" in "= 5"'],
    ['blank inside key', ini('[databases]', 'my db = host=x'), 2, undefined, 'test.ini:2: invalid key "my db" (put names with blanks in double quotes)'],
    ['unterminated section', ini('[pooler', 'listen_port = 1'), 1, undefined, 'test.ini:1: unterminated section header "[pooler"'],
    ['text after section', ini('[pooler] x'), 1, undefined, 'test.ini:1: unexpected text after section header "[pooler] x"'],
    [
      'unknown section',
      ini('[pooler]', '[pgbouncr]'),
      2,
      '[pgbouncr]',
      'test.ini:2: [pgbouncr]: unknown section (expected [pooler], [pgbouncer], [databases], [users], [peers], [rate_limits] or [rate_limit.NAME])',
    ],
    [
      'key outside a section',
      ini('listen_port = 1'),
      1,
      'listen_port',
      'test.ini:1: listen_port: setting outside of any section (start with [pooler] or [databases])',
    ],
    ['unterminated quoted name', ini('[databases]', '"db = host=x'), 2, undefined, 'test.ini:2: unterminated quoted name in ""db = host=x"'],
    [
      'unknown database key',
      ini('[databases]', 'db = host=h prot=1'),
      2,
      'prot',
      expect.stringMatching(/^test\.ini:2: prot: unknown database parameter \(in "db"\); known: application_name, .*dbname, host, .*port, /),
    ],
    ['bad database port', ini('[databases]', 'db = port=abc'), 2, 'port', 'test.ini:2: port: invalid integer "abc" (in "db")'],
    ['bad database pool_mode', ini('[databases]', 'db = pool_mode=x'), 2, 'pool_mode', 'test.ini:2: pool_mode: invalid value "x" (allowed: session, transaction, statement) (in "db")'],
    ['unterminated database quote', ini('[databases]', "db = connect_query='select 1"), 2, 'connect_query', 'test.ini:2: connect_query: unterminated quoted value (in "db")'],
    ['database key without =', ini('[databases]', 'db = host'), 2, 'host', 'test.ini:2: host: expected "=" after the parameter name (in "db")'],
    ['database value without =', ini('[databases]', 'db = =x'), 2, 'db', 'test.ini:2: db: expected a parameter name before "=" in "=x"'],
    ['reserved database name', ini('[databases]', 'pgbouncer = host=h'), 2, 'pgbouncer', 'test.ini:2: pgbouncer: the name "pgbouncer" is reserved for the admin console'],
    ['unknown user key', ini('[users]', 'bob = pool_sise=1'), 2, 'pool_sise', expect.stringMatching(/^test\.ini:2: pool_sise: unknown user parameter \(in "bob"\)/)],
    ['bad user int', ini('[users]', 'bob = max_user_connections=lots'), 2, 'max_user_connections', 'test.ini:2: max_user_connections: invalid integer "lots" (in "bob")'],
  ];
  it.each(cases)('%s', (_name, text, line, key, message) => expectError(text, { line, key, message }));

  it('reports an unreadable main file', () => {
    const missing = join(tmpRoot, 'missing.ini');
    expect(() => loadConfig(missing)).toThrow(ConfigError);
    expect(() => loadConfig(missing)).toThrow(`${missing}:0: cannot read configuration file: ENOENT`);
  });
});

describe('values', () => {
  it('parses times in seconds by default, with fractions, and with units, into milliseconds', () => {
    const cases: [string, number][] = [
      ['0', 0],
      ['0.5', 500],
      ['.25', 250],
      ['30', 30_000],
      ['1.1', 1100],
      ['500ms', 500],
      ['30s', 30_000],
      ['2min', 120_000],
      ['1.5 h', 5_400_000],
      ['1d', 86_400_000],
      ['10MS', 10],
    ];
    for (const [text, ms] of cases) expect(parseTime(text), text).toBe(ms);
    expect(() => parseTime('5m')).toThrow('invalid time');
    expect(() => parseTime('1e3')).toThrow('invalid time');
  });

  it('reads tcp_user_timeout bare numbers as milliseconds, as PgBouncer does', () => {
    const c = parse(ini('[pooler]', 'tcp_user_timeout = 250', 'tcp_keepidle = 30'));
    expect(c.settings.tcp_user_timeout).toBe(250);
    expect(c.settings.tcp_keepidle).toBe(30_000);
  });

  it('stores time settings in milliseconds', () => {
    const c = parse(ini('[pooler]', 'server_lifetime = 2min', 'query_wait_timeout = 0.5', 'client_login_timeout = 1500ms'));
    expect(c.settings.server_lifetime).toBe(120_000);
    expect(c.settings.query_wait_timeout).toBe(500);
    expect(c.settings.client_login_timeout).toBe(1500);
  });

  it('accepts every boolean spelling PgBouncer does', () => {
    for (const [text, want] of [
      ['1', true],
      ['yes', true],
      ['ON', true],
      ['true', true],
      ['0', false],
      ['no', false],
      ['off', false],
      ['False', false],
    ] as const) {
      expect(parse(ini('[pooler]', `log_connections = ${text}`)).settings.log_connections, text).toBe(want);
    }
  });

  it('splits lists on commas and drops blanks', () => {
    const c = parse(ini('[pooler]', 'admin_users = alice, bob ,, carol', 'ignore_startup_parameters = extra_float_digits,options', 'stats_users ='));
    expect(c.settings.admin_users).toEqual(['alice', 'bob', 'carol']);
    expect(c.settings.ignore_startup_parameters).toEqual(['extra_float_digits', 'options']);
    expect(c.settings.stats_users).toEqual([]);
  });

  it('resolves file names against the directory of the file that sets them', () => {
    const dir = writeTree({
      'main.ini': ini('[pooler]', 'auth_file = users.txt', '%include sub/tls.ini'),
      'sub/tls.ini': ini('client_tls_key_file = key.pem', 'client_tls_cert_file = /etc/cert.pem'),
    });
    const c = loadConfig(join(dir, 'main.ini'));
    expect(c.settings.auth_file).toBe(join(dir, 'users.txt'));
    expect(c.settings.client_tls_key_file).toBe(join(dir, 'sub/key.pem'));
    expect(c.settings.client_tls_cert_file).toBe('/etc/cert.pem');
    expect(c.settings.conffile).toBe(join(dir, 'main.ini'));
    expect(c.file).toBe(join(dir, 'main.ini'));
  });
});

describe('[databases]', () => {
  it('parses connection strings with quoting and escapes', () => {
    const c = parse(
      ini(
        '[databases]',
        "app = host=db.example.com port=5433 dbname=app_prod user=app password='se cret' pool_size=7 min_pool_size=1 reserve_pool=2 max_db_connections=30",
        "q = connect_query='SELECT ''a'', \\'b\\''  pool_mode=transaction   client_encoding=UTF8 datestyle=ISO timezone=UTC application_name=x",
        'escaped = password=a\\ b host = h',
      ),
    );
    expect(c.databases.get('app')).toEqual({
      name: 'app',
      dbname: 'app_prod',
      host: 'db.example.com',
      port: 5433,
      user: 'app',
      password: 'se cret',
      poolSize: 7,
      minPoolSize: 1,
      reservePool: 2,
      maxDbConnections: 30,
      startupParams: {},
      replicas: [],
      file: 'test.ini',
      line: 2,
    });
    const q = c.databases.get('q');
    expect(q?.connectQuery).toBe("SELECT 'a', 'b'");
    expect(q?.poolMode).toBe('transaction');
    expect(q?.startupParams).toEqual({ client_encoding: 'UTF8', DateStyle: 'ISO', TimeZone: 'UTC', application_name: 'x' });
    expect(c.databases.get('escaped')).toMatchObject({ password: 'a b', host: 'h' });
    expect(c.warnings).toEqual([]);
  });

  it('accepts reserve_pool_size as the newer name of reserve_pool', () => {
    expect(parse(ini('[databases]', 'db = reserve_pool_size=3')).databases.get('db')?.reservePool).toBe(3);
  });

  it('defaults dbname to the client-side name, port to 5432 and host to unix_socket_dir', () => {
    const c = parse(ini('[databases]', 'plain =', '* = host=fallback.example', '[pooler]', 'unix_socket_dir = /var/run/postgresql'));
    expect(c.databases.get('plain')).toMatchObject({ dbname: undefined, host: '/var/run/postgresql', port: 5432 });
    expect(c.databases.get('*')).toMatchObject({ name: '*', dbname: undefined, host: 'fallback.example' });
    expect(parse(ini('[databases]', 'plain =')).databases.get('plain')?.host).toBe('/tmp');
    expect(parse(ini('[pooler]', 'unix_socket_dir =', '[databases]', 'plain =')).databases.get('plain')?.host).toBe('127.0.0.1');
  });

  it('stores replicas with weights, defaulting their port to the entry port', () => {
    const c = parse(ini('[databases]', 'db = host=primary replicas=r1:5440*3,[::1]:5441,r2,fe80::1*0 port=6000 read_routing=off'));
    expect(c.databases.get('db')?.replicas).toEqual([
      { host: 'r1', port: 5440, weight: 3 },
      { host: '::1', port: 5441, weight: 1 },
      { host: 'r2', port: 6000, weight: 1 },
      { host: 'fe80::1', port: 6000, weight: 0 },
    ]);
    expect(c.databases.get('db')?.readRouting).toBe(false);
    expect(c.warnings).toEqual([]);
    expectError(ini('[databases]', 'db = replicas=r1:99999'), {
      line: 2,
      key: 'replicas',
      message: 'test.ini:2: replicas: must be at most 65535, got 99999 (in "db")',
    });
    expectError(ini('[databases]', 'db = replicas=r1:5433*x'), {
      line: 2,
      key: 'replicas',
      message: 'test.ini:2: replicas: invalid integer "x" (in "db")',
    });
  });

  it('keeps the first host of a host list, with a warning', () => {
    const c = parse(ini('[databases]', 'db = host=a.example,b.example'));
    expect(c.databases.get('db')?.host).toBe('a.example');
    expect(c.warnings).toEqual([
      { file: 'test.ini', line: 2, key: 'host', message: 'host lists are not implemented yet; only a.example is used (in "db")' },
    ]);
  });

  it('warns about PgBouncer database keys this release ignores', () => {
    const c = parse(ini('[databases]', 'db = auth_user=a target_session_attrs=read-write server_lifetime=-1 query_wait_timeout=5'));
    expect(c.warnings.map((w) => w.key)).toEqual(['auth_user', 'target_session_attrs', 'server_lifetime', 'query_wait_timeout']);
    expect(c.databases.get('db')).toMatchObject({ authUser: 'a', targetSessionAttrs: 'read-write', serverLifetime: undefined, queryWaitTimeout: 5000 });
  });

  it('lets a later line replace an earlier one, with a warning', () => {
    const c = parse(ini('[databases]', 'db = host=a', 'db = host=b'));
    expect(c.databases.get('db')?.host).toBe('b');
    expect(c.warnings).toEqual([{ file: 'test.ini', line: 3, key: 'db', message: 'database defined again; this line replaces test.ini:2' }]);
  });
});

describe('[users] and [peers]', () => {
  it('parses per-user settings', () => {
    const c = parse(ini('[users]', 'bob = pool_mode=statement max_user_connections=3 pool_size=2', 'eve = query_timeout=1.5'));
    expect(c.users.get('bob')).toEqual({ name: 'bob', poolMode: 'statement', maxUserConnections: 3, poolSize: 2, file: 'test.ini', line: 2 });
    expect(c.users.get('eve')?.queryTimeout).toBe(1500);
    expect(c.warnings).toEqual([
      { file: 'test.ini', line: 3, key: 'query_timeout', message: 'user parameter not implemented yet; accepted and ignored (in "eve")' },
    ]);
  });

  it('accepts [peers] and ignores it with a warning', () => {
    const c = parse(ini('[peers]', '1 = host=/tmp/a', '2 = host=b port=6433', '[pooler]', 'listen_port = 1'));
    expect(c.settings.listen_port).toBe(1);
    expect(c.warnings).toEqual([{ file: 'test.ini', line: 1, key: '[peers]', message: 'peering is not implemented yet; the section is ignored' }]);
  });
});

describe('unimplemented PgBouncer keys', () => {
  it('warn when set away from their default', () => {
    const c = parse(ini('[pooler]', 'logfile = /var/log/pooler.log', 'so_reuseport = 1', 'unix_socket_dir = /run/pg'));
    expect(c.warnings).toEqual([
      { file: 'test.ini', line: 2, key: 'logfile', message: 'not implemented yet; accepted and ignored' },
      { file: 'test.ini', line: 3, key: 'so_reuseport', message: 'not implemented yet; accepted and ignored' },
      {
        file: 'test.ini',
        line: 4,
        key: 'unix_socket_dir',
        message: 'the pooler does not listen on a Unix socket yet; the directory is only used as the server host of [databases] entries without host=',
      },
    ]);
    expect(c.settings.logfile).toBe('/var/log/pooler.log');
    expect(c.settings.so_reuseport).toBe(true);
  });

  it('stay quiet when set to their default', () => {
    const c = parse(ini('[pooler]', 'pkt_buf = 4096', 'server_round_robin = no', 'stats_period = 1min', 'track_extra_parameters = IntervalStyle'));
    expect(c.warnings).toEqual([]);
  });

  it('never warn for implemented keys', () => {
    const c = parse(ini('[pooler]', 'max_client_conn = 1000', 'server_idle_timeout = 1', 'admin_users = root', 'log_level = debug'));
    expect(c.warnings).toEqual([]);
  });
});

describe('the settings table', () => {
  it('is in alphabetical order without duplicates', () => {
    const names = PARAMS.map((p) => p.name);
    expect(names).toEqual([...names].sort());
    expect(new Set(names).size).toBe(names.length);
  });

  it('marks exactly the keys this release acts on as implemented', () => {
    const implemented = PARAMS.filter((p) => p.implemented).map((p) => p.name);
    expect(implemented).toEqual(
      [
        'listen_addr',
        'listen_port',
        'auth_type',
        'auth_file',
        'pool_mode',
        'max_client_conn',
        'default_pool_size',
        'min_pool_size',
        'reserve_pool_size',
        'reserve_pool_timeout',
        'max_db_connections',
        'max_user_connections',
        'query_wait_timeout',
        'server_connect_timeout',
        'server_idle_timeout',
        'server_lifetime',
        'client_idle_timeout',
        'idle_transaction_timeout',
        'server_reset_query',
        'server_reset_query_always',
        'server_check_delay',
        'server_check_query',
        'max_packet_size',
        'log_connections',
        'log_disconnections',
        'admin_users',
        'stats_users',
        'ignore_startup_parameters',
        'client_login_timeout',
        'log_level',
        'max_prepared_statements',
        'session_features',
        'all_replicas_lagging',
        'lag_check_interval',
        'lag_check_timeout',
        'max_replica_lag_bytes',
        'max_replica_lag_ms',
        'primary_wait_timeout',
        'read_your_writes',
        'replica_wait_timeout',
        'write_functions',
        'max_digests',
        'metrics_addr',
        'metrics_port',
        'metrics_top_digests',
      ].sort(),
    );
  });

  it('has defaults that survive a round trip through the ini syntax', () => {
    for (const p of PARAMS) {
      expect(parseParamValue(p, formatParamValue(p, p.default)), p.name).toEqual(p.default);
      expect(p.doc.length, p.name).toBeGreaterThan(10);
    }
  });

  it('drives SHOW CONFIG rows', () => {
    const rows = showConfigRows(parse(ini('[pooler]', 'listen_port = 7000', 'server_lifetime = 500ms', 'log_connections = off', 'admin_users = a,b')));
    expect(rows.map((r) => r.key)).toEqual(PARAMS.map((p) => p.name));
    const row = (key: string) => rows.find((r) => r.key === key);
    expect(row('listen_port')).toEqual({ key: 'listen_port', value: '7000', default: '6432', changeable: 'no' });
    expect(row('server_lifetime')).toEqual({ key: 'server_lifetime', value: '0.5', default: '3600', changeable: 'yes' });
    expect(row('log_connections')).toEqual({ key: 'log_connections', value: '0', default: '1', changeable: 'yes' });
    expect(row('admin_users')).toEqual({ key: 'admin_users', value: 'a,b', default: '', changeable: 'yes' });
    expect(row('tcp_user_timeout')).toMatchObject({ value: '0', default: '0' });
  });
});

describe('the shipped pooler.ini', () => {
  const path = join(REPO, 'pooler.ini');

  it('loads without errors or warnings', () => {
    const c = loadConfig(path);
    expect(c.warnings).toEqual([]);
    expect(c.settings.listen_port).toBe(6432);
    expect(c.settings.pool_mode).toBe('transaction');
    expect(c.settings.auth_file).toBe(join(REPO, 'userlist.txt'));
    expect(c.databases.get('appdb')).toMatchObject({ host: '127.0.0.1', port: 5432 });
  });

  it('documents every key of the table', () => {
    const text = readFileSync(path, 'utf8');
    const missing = PARAMS.map((p) => p.name).filter((name) => !new RegExp(`^;?${name} =`, 'm').test(text));
    expect(missing).toEqual([]);
  });

  it('shows the default of every commented-out key', () => {
    const text = readFileSync(path, 'utf8');
    for (const p of PARAMS) {
      const m = new RegExp(`^;${p.name} =(.*)$`, 'm').exec(text);
      if (m !== null) expect(parseParamValue(p, (m[1] ?? '').trim()), p.name).toEqual(p.default);
    }
  });
});

describe('a PgBouncer 1.18-style pgbouncer.ini', () => {
  // Written for these tests in the shape of a typical production file of that era.
  const sample = ini(
    ';; production pooler',
    '[databases]',
    'orders = host=10.0.0.5 port=5432 dbname=orders pool_size=40 reserve_pool=5',
    'orders_ro = host=10.0.0.6 dbname=orders user=reader password=r3ad;only pool_mode=session',
    "legacy = host=/var/run/postgresql dbname=legacy connect_query='SET search_path = app, public' client_encoding=UTF8 datestyle='ISO, DMY' timezone=Europe/Berlin",
    'forced = host=localhost port=5433 user=svc max_db_connections=10 min_pool_size=2',
    '* = host=10.0.0.5',
    '',
    '[users]',
    'batch = pool_mode=session max_user_connections=4',
    '',
    '[pgbouncer]',
    'logfile = /var/log/pgbouncer/pgbouncer.log',
    'pidfile = /var/run/pgbouncer/pgbouncer.pid',
    'listen_addr = *',
    'listen_port = 6432',
    'unix_socket_dir = /var/run/postgresql',
    'unix_socket_mode = 0777',
    'unix_socket_group =',
    'user = postgres',
    'auth_type = md5',
    'auth_file = /etc/pgbouncer/userlist.txt',
    'auth_hba_file = /etc/pgbouncer/pg_hba.conf',
    'auth_user = pgbouncer',
    'auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1',
    'admin_users = postgres, admin',
    'stats_users = stats, postgres',
    'pool_mode = transaction',
    'server_reset_query = DISCARD ALL',
    'server_reset_query_always = 0',
    'ignore_startup_parameters = extra_float_digits,search_path',
    'server_check_query = select 1',
    'server_check_delay = 30',
    'application_name_add_host = 1',
    'max_client_conn = 2000',
    'default_pool_size = 25',
    'min_pool_size = 0',
    'reserve_pool_size = 5',
    'reserve_pool_timeout = 3',
    'max_db_connections = 100',
    'max_user_connections = 100',
    'server_round_robin = 0',
    'syslog = 0',
    'syslog_facility = daemon',
    'syslog_ident = pgbouncer',
    'log_connections = 0',
    'log_disconnections = 0',
    'log_pooler_errors = 1',
    'log_stats = 1',
    'stats_period = 60',
    'verbose = 0',
    'server_lifetime = 3600',
    'server_idle_timeout = 600',
    'server_connect_timeout = 15',
    'server_login_retry = 15',
    'query_timeout = 0',
    'query_wait_timeout = 120',
    'client_idle_timeout = 0',
    'client_login_timeout = 60',
    'autodb_idle_timeout = 3600',
    'suspend_timeout = 10',
    'idle_transaction_timeout = 600',
    'pkt_buf = 4096',
    'listen_backlog = 4096',
    'sbuf_loopcnt = 5',
    'max_packet_size = 2147483647',
    'tcp_defer_accept = 45',
    'tcp_socket_buffer = 0',
    'tcp_keepalive = 1',
    'tcp_keepcnt = 5',
    'tcp_keepidle = 60',
    'tcp_keepintvl = 10',
    'tcp_user_timeout = 0',
    'dns_max_ttl = 15',
    'dns_zone_check_period = 0',
    'dns_nxdomain_ttl = 15',
    'client_tls_sslmode = disable',
    'client_tls_protocols = secure',
    'client_tls_ciphers = fast',
    'client_tls_ecdhcurve = auto',
    'client_tls_dheparams = auto',
    'server_tls_sslmode = prefer',
    'server_tls_protocols = secure',
    'server_tls_ciphers = fast',
    'disable_pqexec = 0',
    'so_reuseport = 0',
    '%include /dev/null',
  );

  it('loads, with warnings only for the keys this release ignores', () => {
    const c = parse(sample);
    expect(c.databases.size).toBe(5);
    expect(c.databases.get('orders_ro')).toMatchObject({ password: 'r3ad;only', host: '10.0.0.6', port: 5432, poolMode: 'session' });
    expect(c.databases.get('legacy')?.startupParams).toEqual({ client_encoding: 'UTF8', DateStyle: 'ISO, DMY', TimeZone: 'Europe/Berlin' });
    expect(c.users.get('batch')).toMatchObject({ poolMode: 'session', maxUserConnections: 4 });
    expect(c.settings).toMatchObject({
      listen_addr: '*',
      pool_mode: 'transaction',
      admin_users: ['postgres', 'admin'],
      max_client_conn: 2000,
      reserve_pool_timeout: 3000,
      idle_transaction_timeout: 600_000,
      max_packet_size: 2147483647,
      ignore_startup_parameters: ['extra_float_digits', 'search_path'],
      server_check_query: 'select 1',
    });
    expect(c.warnings.map((w) => w.key)).toEqual([
      'logfile',
      'pidfile',
      'unix_socket_dir',
      'user',
      'auth_hba_file',
      'auth_user',
      'auth_query',
      'application_name_add_host',
      'listen_backlog',
      'tcp_defer_accept',
      'tcp_keepcnt',
      'tcp_keepidle',
      'tcp_keepintvl',
      'client_tls_ciphers',
      'server_tls_ciphers',
    ]);
    for (const w of c.warnings) expect(w.file).toBe('test.ini');
    expect(c.warnings[0]?.line).toBe(13);
  });
});
