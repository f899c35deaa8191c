// Read/write splitting: classifies a query string as read, write, transaction control or session command from PostgreSQL's own parse tree.
import v8 from 'node:v8';
import { loadModule, parseSync } from 'libpg-query';

export type StatementClass = 'read' | 'write' | 'transaction' | 'session';

export interface Classification {
  cls: StatementClass;
  /** for transaction statements: true for BEGIN/START TRANSACTION/SET TRANSACTION READ ONLY, false for READ WRITE, absent if neither was given */
  readOnly?: boolean;
  /** why a statement was not a plain read (node type, function name, parse error) */
  reason?: string;
}

// Functions that write, take locks or read/modify state that only exists on the primary. currval/lastval are here
// because they read the session's own nextval() result, which was produced on the primary.
const WRITE_FUNCTIONS: ReadonlySet<string> = new Set([
  'nextval',
  'setval',
  'currval',
  'lastval',
  'set_config',
  'txid_current',
  'pg_current_xact_id',
  'pg_current_xact_id_if_assigned',
  'pg_notify',
  'lo_creat',
  'lo_create',
  'lo_import',
  'lo_export',
  'lo_unlink',
  'lo_from_bytea',
  'lo_put',
  'lowrite',
  'lo_truncate',
  'lo_truncate64',
  'pg_logical_emit_message',
  'pg_create_restore_point',
  'pg_switch_wal',
  'pg_reload_conf',
  'pg_terminate_backend',
  'pg_cancel_backend',
]);
// Every variant: pg_advisory_lock, _xact_, _shared, unlock, unlock_all, pg_try_advisory_*.
const WRITE_FUNCTION_PREFIXES = ['pg_advisory_', 'pg_try_advisory_'];

// Top-level DML; found anywhere in a tree they also catch writing CTEs and PREPARE/EXPLAIN ANALYZE of a write.
const DML_NODES: ReadonlySet<string> = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

const RANK: Record<StatementClass, number> = { read: 0, transaction: 1, session: 2, write: 3 };

// parsenodes.h CURSOR_OPT_HOLD
const CURSOR_OPT_HOLD = 0x20;

type Obj = Record<string, unknown>;

let loading: Promise<void> | undefined;
let loaded = false;

export function initClassifier(): Promise<void> {
  // V8 tiers hot WebAssembly functions up to optimized code in the background. For this module that tier-up
  // (measured on Node 24) grew pooler's RSS from ~75 MB to over 600 MB under load, released only later; the
  // parser runs once per query shape, so baseline (Liftoff) code is plenty. A huge tiering budget keeps it there.
  v8.setFlagsFromString('--wasm-tiering-budget=1000000000');
  loading ??= loadModule().then(() => {
    loaded = true;
  });
  return loading;
}

export function classify(sql: string, writeFunctions?: ReadonlySet<string>): Classification {
  if (!loaded) throw new Error('classify() called before initClassifier() resolved');
  if (sql.trim() === '') return { cls: 'read', reason: 'empty query' };
  let stmts: { stmt?: unknown }[];
  try {
    stmts = (parseSync(sql).stmts ?? []) as { stmt?: unknown }[];
  } catch (err) {
    return { cls: 'write', reason: `parse error: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (stmts.length === 0) return { cls: 'read', reason: 'empty query' };
  let best: Classification | undefined;
  let readOnly: boolean | undefined;
  for (const raw of stmts) {
    const c = statement(raw.stmt, writeFunctions);
    // The last READ ONLY / READ WRITE given wins, as it would on the server.
    if (c.readOnly !== undefined) readOnly = c.readOnly;
    if (best === undefined || RANK[c.cls] > RANK[best.cls]) best = c;
  }
  const out: Classification = { cls: best!.cls };
  if (best!.reason !== undefined) out.reason = best!.reason;
  if (out.cls === 'transaction' && readOnly !== undefined) out.readOnly = readOnly;
  return out;
}

/** Classifies one statement node ({ SelectStmt: {...} } etc.). */
function statement(node: unknown, fns: ReadonlySet<string> | undefined): Classification {
  if (!isObj(node)) return { cls: 'write', reason: 'unknown statement' };
  const [type, body] = Object.entries(node)[0] ?? ['', undefined];
  const b = isObj(body) ? body : {};
  switch (type) {
    case 'SelectStmt':
      return queryClass(node, fns);
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      return { cls: 'write', reason: type };
    case 'ExplainStmt': {
      // EXECUTE needs the prepared statement, which only the primary is known to have, even just to plan.
      if (isObj(b.query) && 'ExecuteStmt' in b.query) return { cls: 'write', reason: 'EXPLAIN EXECUTE' };
      // Without ANALYZE the query is only planned, so even EXPLAIN of a write runs on a replica.
      return explainAnalyzes(b.options) ? statement(b.query, fns) : { cls: 'read' };
    }
    case 'CopyStmt':
      if (b.is_from === true) return { cls: 'write', reason: 'COPY FROM' };
      // A server-side file or program is meant for the primary's host.
      if (b.filename !== undefined || b.is_program === true) return { cls: 'write', reason: 'COPY TO file/program' };
      return b.query !== undefined ? statement(b.query, fns) : { cls: 'read' };
    case 'VariableShowStmt':
      return { cls: 'read' };
    case 'TransactionStmt':
      return withReadOnly({ cls: 'transaction' }, b.options);
    case 'VariableSetStmt':
      // SET TRANSACTION [SNAPSHOT] changes the current transaction; SET SESSION CHARACTERISTICS AS TRANSACTION is a
      // session default.
      if (b.kind === 'VAR_SET_MULTI' && (b.name === 'TRANSACTION' || b.name === 'TRANSACTION SNAPSHOT')) {
        return withReadOnly({ cls: 'transaction' }, b.args);
      }
      return { cls: 'session' };
    case 'DiscardStmt':
    case 'DeallocateStmt':
      return { cls: 'session' };
    case 'PrepareStmt':
      return statement(b.query, fns);
    case 'DeclareCursorStmt': {
      // A WITH HOLD cursor outlives its transaction and later FETCHes go to the primary, so it must live there.
      if (typeof b.options === 'number' && (b.options & CURSOR_OPT_HOLD) !== 0) {
        return { cls: 'write', reason: 'DECLARE WITH HOLD' };
      }
      return statement(b.query, fns);
    }
    case 'FetchStmt':
    case 'ClosePortalStmt':
      // FETCH/MOVE/CLOSE carry no query to judge; the cursor lives on whichever server declared it, and outside a
      // transaction pinned to a replica that can only be the primary.
      return { cls: 'write', reason: 'cursor operation' };
    case 'ExecuteStmt':
      return { cls: 'write', reason: 'EXECUTE of an unknown prepared statement' };
    default:
      // DDL, CALL, DO, LOCK, LISTEN/NOTIFY/UNLISTEN, VACUUM, CHECKPOINT, and anything new: the primary.
      return { cls: 'write', reason: type || 'unknown statement' };
  }
}

/** A query (SELECT/VALUES/TABLE or a DML node): write if anything in its tree writes or locks. */
function queryClass(root: unknown, fns: ReadonlySet<string> | undefined): Classification {
  const reason = findWrite(root, fns);
  return reason === undefined ? { cls: 'read' } : { cls: 'write', reason };
}

// Iterative so that a deeply nested query cannot overflow the JS stack.
function findWrite(root: unknown, fns: ReadonlySet<string> | undefined): string | undefined {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      for (const x of v) if (typeof x === 'object' && x !== null) stack.push(x);
      continue;
    }
    if (!isObj(v)) continue;
    for (const key in v) {
      const child = v[key];
      if (DML_NODES.has(key)) return key;
      if (key === 'LockingClause') return 'locking clause';
      if (key === 'intoClause') return 'SELECT INTO';
      if (key === 'FuncCall' && isObj(child)) {
        const name = funcName(child.funcname);
        if (name !== undefined && isWriteFunction(name, fns)) return `function ${name}`;
      }
      if (typeof child === 'object' && child !== null) stack.push(child);
    }
  }
  return undefined;
}

/** Last name part, lower-cased: pg_catalog.nextval and "NEXTVAL" both match nextval (erring towards the primary). */
function funcName(parts: unknown): string | undefined {
  if (!Array.isArray(parts) || parts.length === 0) return undefined;
  const last: unknown = parts[parts.length - 1];
  if (!isObj(last) || !isObj(last.String)) return undefined;
  const s = last.String.sval;
  return typeof s === 'string' ? s.toLowerCase() : undefined;
}

function isWriteFunction(name: string, fns: ReadonlySet<string> | undefined): boolean {
  if (WRITE_FUNCTIONS.has(name) || fns?.has(name) === true) return true;
  for (const p of WRITE_FUNCTION_PREFIXES) if (name.startsWith(p)) return true;
  return false;
}

function explainAnalyzes(options: unknown): boolean {
  if (!Array.isArray(options)) return false;
  let analyze = false;
  for (const o of options) {
    const d = isObj(o) && isObj(o.DefElem) ? o.DefElem : undefined;
    if (d?.defname !== 'analyze') continue;
    // Anything other than a clear false/off/0 counts as ANALYZE: the server would run the query, or reject it.
    analyze = !isFalse(d.arg);
  }
  return analyze;
}

function isFalse(arg: unknown): boolean {
  if (!isObj(arg)) return false;
  if (isObj(arg.String) && typeof arg.String.sval === 'string') {
    const s = arg.String.sval.toLowerCase();
    return s === 'false' || s === 'off';
  }
  if (isObj(arg.Integer)) return (arg.Integer.ival ?? 0) === 0;
  return false;
}

/**
 * Adds readOnly from transaction_read_only in BEGIN/START/SET TRANSACTION options. A SERIALIZABLE transaction
 * counts as read-write even when declared READ ONLY: a hot standby refuses serializable mode.
 */
function withReadOnly(c: Classification, options: unknown): Classification {
  if (!Array.isArray(options)) return c;
  let serializable = false;
  for (const o of options) {
    const d = isObj(o) && isObj(o.DefElem) ? o.DefElem : undefined;
    const a = d !== undefined && isObj(d.arg) && isObj(d.arg.A_Const) ? d.arg.A_Const : undefined;
    if (d?.defname === 'transaction_isolation') {
      serializable = a !== undefined && isObj(a.sval) && a.sval.sval === 'serializable';
      continue;
    }
    if (d?.defname !== 'transaction_read_only') continue;
    // The JSON omits zero values: READ WRITE is { ival: {} }.
    const ival = a !== undefined && isObj(a.ival) ? (a.ival.ival ?? 0) : undefined;
    if (ival !== undefined) c.readOnly = ival !== 0;
  }
  if (serializable && c.readOnly === true) {
    c.readOnly = false;
    c.reason = 'SERIALIZABLE is not available on a hot standby';
  }
  return c;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
