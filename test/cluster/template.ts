// Caches one initdb'd data dir per PostgreSQL build in the temp dir, since copying it is ~10x faster than running initdb.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chownForServer, runTool, serverUser } from './osuser.ts';
import { fixtureRoot, sweepStale, writeOwner } from './sweep.ts';

const INITDB_ARGS = ['-U', 'postgres', '--auth-local=trust', '--auth-host=md5', '-E', 'UTF8', '--locale=C'];
const BUILDING_PREFIX = 'pooler-pgtemplate-tmp-';

export async function templateDataDir(binDir: string): Promise<string> {
  const version = execFileSync(join(binDir, 'postgres'), ['-V'], { encoding: 'utf8' }).trim();
  const key = createHash('sha256')
    .update([binDir, version, serverUser()?.uid ?? process.getuid?.(), ...INITDB_ARGS].join('\0'))
    .digest('hex')
    .slice(0, 16);
  const root = fixtureRoot();
  const final = join(root, `pooler-pgtemplate-${key}`);
  const data = join(final, 'data');
  if (existsSync(join(data, 'PG_VERSION'))) return data;

  // Build beside the final place and rename, so concurrent runs never see a half-made template.
  sweepStale(root, BUILDING_PREFIX, () => {});
  const building = mkdtempSync(join(root, BUILDING_PREFIX));
  try {
    writeOwner(building);
    chownForServer(building);
    await runTool(join(binDir, 'initdb'), ['-D', join(building, 'data'), ...INITDB_ARGS, '--no-sync'], building);
    try {
      renameSync(building, final);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw err;
      // Another run finished first; use its template.
    }
  } finally {
    rmSync(building, { recursive: true, force: true });
  }
  return data;
}
