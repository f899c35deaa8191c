// A client's session settings (GUCs) under transaction pooling: what it asked for, how to bring a server to
// it, and how to read back what the client changed on a server so it follows the client to the next one.

import type { ServerConn } from '../server/server.ts';

/** What the server's session holds beyond its startup values: read back after a client changed settings. */
const CAPTURE_SETTINGS = "SELECT name, setting FROM pg_catalog.pg_settings WHERE source = 'session'";
/** Custom settings (`myapp.tenant`) hide from pg_settings; their names are taken from the SQL instead. */
const customSet = /\bset\s+(?:session\s+)?("?[a-z_][\w$]*"?\s*\.\s*"?[a-z_][\w$]*"?)|\bset_config\s*\(\s*'([^'.]+\.[^']+)'/gi;
/** set_config whose setting name is not a literal: a custom setting set this way could not be read back. */
const setConfigByParam = /\bset_config\s*\(\s*[^'\s]/i;
/** SET ROLE / SESSION AUTHORIZATION hide from pg_settings, so they cannot follow a client to another server. */
const roleChange = /\b(role|authorization)\b/i;
/** Reported parameters that describe the server or role, not settings a session can SET. */
const readOnlyReported = new Set(['server_version', 'server_encoding', 'integer_datetimes', 'is_superuser', 'session_authorization', 'in_hot_standby']);

export interface SettingChange {
  name: string;
  /** null: RESET */
  value: string | null;
  sql: string;
}

export class SessionSettings {
  /** what the client asked for (lower-case name → value); applied to each server it gets */
  readonly values = new Map<string, string>();
  /** the client may have changed settings since they were last read back from its server */
  dirty = false;
  /** the startup packet's settings: what RESET returns to, as on a direct connection */
  private startup: Map<string, string> | null = null;
  /** custom settings (with a dot) the client ever set, read back by name */
  private customNames: Set<string> | null = null;

  /** The startup packet and `options` have been read into `values`. */
  startupDone(): void {
    if (this.values.size > 0) this.startup = new Map(this.values);
  }

  /**
   * SQL the client sends that may change settings (the classifier said so). Returns a reason the change
   * cannot be followed across servers (the client must keep its server), or null.
   */
  noteChange(sql: string): string | null {
    this.dirty = true;
    for (const m of sql.matchAll(customSet)) {
      const raw = (m[1] ?? m[2]!).replace(/\s+/g, '');
      (this.customNames ??= new Set()).add(raw.includes('"') ? raw.replace(/"/g, '') : raw.toLowerCase());
    }
    if (roleChange.test(sql)) return 'SET ROLE or SET SESSION AUTHORIZATION';
    if (setConfigByParam.test(sql)) return 'set_config with a setting name that is not a literal';
    return null;
  }

  /** A ParameterStatus the client got: its own change, so part of its session. */
  reported(name: string, value: string, server: ServerConn | null, tracking: boolean): void {
    const key = name.toLowerCase();
    if (readOnlyReported.has(key)) return;
    this.values.set(key, value);
    server?.touched.add(key);
    // Something changed a setting pooler may not have seen in the SQL (a function, say): read them all back.
    if (tracking) this.dirty = true;
  }

  /**
   * set_config/RESET statements that bring the server's session to the client's; null when it already matches
   * (the common case, checked on every hand-out, so it allocates nothing).
   */
  syncFor(server: ServerConn): SettingChange[] | null {
    let out: SettingChange[] | null = null;
    for (const [name, value] of this.values) {
      if (server.params.get(name) !== value) {
        // set_config reads the value as a startup parameter would: `a,b` stays a list, not one quoted name.
        (out ??= []).push({ name, value, sql: `SELECT pg_catalog.set_config(${quoteLiteral(name)}, ${quoteLiteral(value)}, false)` });
        server.touched.add(name);
      }
    }
    for (const name of server.touched) {
      if (!this.values.has(name)) {
        (out ??= []).push({ name, value: null, sql: `RESET ${quoteIdent(name)}` });
        server.touched.delete(name);
      }
    }
    return out;
  }

  /** The query that reads the server's session settings back. */
  captureSql(): string {
    if (this.customNames === null) return CAPTURE_SETTINGS;
    const names = [...this.customNames].map(quoteLiteral).join(', ');
    return `${CAPTURE_SETTINGS} UNION ALL SELECT n, pg_catalog.current_setting(n, true) FROM pg_catalog.unnest(ARRAY[${names}]::text[]) AS n`;
  }

  /** The rows of captureSql() from the client's server: they are now the client's settings, and the server's. */
  captured(server: ServerConn, rows: (string | null)[][]): void {
    const captured = new Map<string, string>();
    for (const [name, value] of rows) {
      // A custom setting RESET (or never set on this server) reads as '' or NULL: not part of the session.
      if (name && value && !name.startsWith('transaction_')) captured.set(name.toLowerCase(), value);
    }
    // The server's session now differs from its startup values in exactly these.
    for (const k of server.touched) if (!captured.has(k)) server.params.delete(k);
    server.touched.clear();
    this.values.clear();
    for (const [k, v] of captured) {
      server.params.set(k, v);
      server.touched.add(k);
      this.values.set(k, v);
    }
    // What the session does not hold any more was RESET: on a direct connection that means the startup value.
    if (this.startup) for (const [k, v] of this.startup) if (!captured.has(k)) this.values.set(k, v);
  }
}

export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

export function quoteLiteral(value: string): string {
  const body = value.replace(/'/g, "''");
  return value.includes('\\') ? `E'${body.replace(/\\/g, '\\\\')}'` : `'${body}'`;
}
