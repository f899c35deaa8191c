// Finds the directory holding the PostgreSQL server binaries the local fixture needs.
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';

const NEEDED = ['initdb', 'postgres', 'pg_basebackup'];

function complete(dir: string): boolean {
  return NEEDED.every((b) => existsSync(join(dir, b)));
}

function fromPath(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'initdb');
    if (!existsSync(candidate)) continue;
    // Debian symlinks only some binaries into /usr/local/bin or /usr/bin; the real dir has them all.
    const real = dirname(realpathSync(candidate));
    if (complete(real)) return real;
  }
  return undefined;
}

function fromDebianLayout(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const dir = join(root, v, 'bin');
    if (complete(dir)) return dir;
  }
  return undefined;
}

/** The PostgreSQL bin dir (PG_BINDIR, else initdb's real dir on PATH, else newest /usr/lib/postgresql/N/bin), or undefined. */
export function findPgBinDir(): string | undefined {
  const env = process.env.PG_BINDIR;
  if (env) {
    if (!complete(env)) throw new Error(`PG_BINDIR=${env} does not contain ${NEEDED.join(', ')}.`);
    return env;
  }
  return fromPath() ?? fromDebianLayout();
}
