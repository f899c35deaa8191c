// The extended-protocol form of a SQL `PREPARE name [(types)] AS statement`, so that a statement prepared in SQL
// can be re-created on another server by a Parse (and bound by the protocol) like any other.

import { SqlLexer, T_COMMA, T_EOF, T_IDENT, T_LPAREN, T_RPAREN } from '../sql/lexer.ts';

/** Built-in types by the names PREPARE accepts; anything else has no Parse form (the OID is not known here). */
const TYPE_OIDS = new Map<string, number>([
  ['bool', 16], ['boolean', 16], ['bytea', 17], ['char', 18], ['name', 19], ['int8', 20], ['bigint', 20],
  ['int2', 21], ['smallint', 21], ['int4', 23], ['int', 23], ['integer', 23], ['text', 25], ['oid', 26],
  ['json', 114], ['xml', 142], ['float4', 700], ['real', 700], ['float8', 701], ['double precision', 701],
  ['money', 790], ['inet', 869], ['cidr', 650], ['macaddr', 829], ['bpchar', 1042], ['character', 1042],
  ['varchar', 1043], ['character varying', 1043], ['date', 1082], ['time', 1083], ['time without time zone', 1083],
  ['timestamp', 1114], ['timestamp without time zone', 1114], ['timestamptz', 1184], ['timestamp with time zone', 1184],
  ['interval', 1186], ['timetz', 1266], ['time with time zone', 1266], ['numeric', 1700], ['decimal', 1700],
  ['uuid', 2950], ['jsonb', 3802],
]);
const ARRAY_OIDS = new Map<number, number>([
  [16, 1000], [17, 1001], [20, 1016], [21, 1005], [23, 1007], [25, 1009], [114, 199], [700, 1021], [701, 1022],
  [1042, 1014], [1043, 1015], [1082, 1182], [1114, 1115], [1184, 1185], [1186, 1187], [1700, 1231], [2950, 2951], [3802, 3807],
]);

function typeOid(text: string): number | null {
  let t = text.toLowerCase().replace(/\s+/g, ' ').trim();
  let array = false;
  if (t.endsWith('[]')) {
    array = true;
    t = t.slice(0, -2).trim();
  }
  t = t.replace(/\s*\([\d\s,]*\)/, ''); // varchar(20), numeric(10,2)
  if (t.startsWith('pg_catalog.')) t = t.slice(11);
  const oid = TYPE_OIDS.get(t);
  if (oid === undefined) return null;
  return array ? (ARRAY_OIDS.get(oid) ?? null) : oid;
}

/**
 * The bytes that follow the statement name in a Parse (query, parameter count, type OIDs) equivalent to the
 * PREPARE whose name ends at `nameEnd`; null when a parameter type is not a built-in one known here.
 */
export function parseFormOfPrepare(sql: string, nameEnd: number): Buffer | null {
  const lx = new SqlLexer();
  lx.reset(sql);
  lx.pos = nameEnd;
  const types: number[] = [];
  let kind = lx.next();
  if (kind === T_LPAREN) {
    let depth = 1;
    let typeStart = -1;
    let typeEnd = -1;
    const finish = (): boolean => {
      if (typeStart < 0) return true;
      const oid = typeOid(sql.slice(typeStart, typeEnd));
      if (oid === null) return false;
      types.push(oid);
      typeStart = -1;
      return true;
    };
    for (;;) {
      kind = lx.next();
      if (kind === T_EOF) return null;
      if (kind === T_LPAREN) depth++;
      if (kind === T_RPAREN && --depth === 0) {
        if (!finish()) return null;
        break;
      }
      if (kind === T_COMMA && depth === 1) {
        if (!finish()) return null;
        continue;
      }
      if (typeStart < 0) typeStart = lx.start;
      typeEnd = lx.end;
    }
    kind = lx.next();
  }
  if (kind !== T_IDENT || sql.slice(lx.start, lx.end).toLowerCase() !== 'as') return null;
  const query = Buffer.from(sql.slice(lx.end).trim() + '\0', 'utf8');
  const out = Buffer.allocUnsafe(query.length + 2 + 4 * types.length);
  query.copy(out, 0);
  out.writeInt16BE(types.length, query.length);
  types.forEach((oid, k) => out.writeInt32BE(oid, query.length + 2 + 4 * k));
  return out;
}
