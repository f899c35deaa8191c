// Decides whether a pgbench run counts, and says in a line why not: a run whose clients saw errors is no basis for a ratio.
import type { PgbenchResult } from './pgbench.ts';

/** One distinct error pgbench reported, with the client and "pgbench: error:" noise taken off, and how often it came. */
export interface ErrorMessage {
  message: string;
  count: number;
}

/** pgbench's closing line after an abort: a consequence of the errors before it, not an error of its own. */
const RUN_ABORTED = /^Run was aborted; the above results are incomplete\.?$/;

/**
 * The error itself out of a pgbench stderr line: 'pgbench: error: client 4 script 0 aborted in command 1 query 0:
 * ERROR:  prepared statement "P_0" does not exist' → 'prepared statement "P_0" does not exist'. pgbench's threads
 * write the "pgbench: ", "error: " and message parts separately, so with several clients failing at once lines come
 * out as "pgbench:pgbench: error: …" or " error: client 4 …": the server's message after the last ERROR:/FATAL: is
 * what stays whole.
 */
export function condense(line: string): string {
  const server = /.*\b(?:ERROR|FATAL):\s+(.*)$/.exec(line);
  if (server) return server[1]!.trim();
  return line
    .replace(/^(?:\s*(?:pgbench|error|fatal):)+\s*/i, '')
    .replace(/^client \d+ (?:script \d+ )?aborted in [^:;]*[:;]\s*/, '')
    .trim();
}

/** The distinct errors of a run in order of first appearance, with counts. */
export function errorMessages(lines: string[]): ErrorMessage[] {
  const out: ErrorMessage[] = [];
  for (const line of lines) {
    const message = condense(line);
    if (!message || RUN_ABORTED.test(message)) continue;
    const seen = out.find((e) => e.message === message);
    if (seen) seen.count++;
    else out.push({ message, count: 1 });
  }
  return out;
}

export function formatMessages(ms: ErrorMessage[]): string {
  return ms.map((m) => (m.count > 1 ? `${m.message} (×${m.count})` : m.message)).join('; ');
}

/**
 * Why a run is not comparable, or null when it is: pgbench exited non-zero, was killed as hung, gave up on a client,
 * printed an error (with exit code 0 too: e.g. a failed Parse that pgbench only logs), or printed no TPS.
 */
export function runFailure(res: PgbenchResult, clients: number, timeoutMs: number): string | null {
  const why: string[] = [];
  if (res.timedOut) why.push(`killed after ${Math.round(timeoutMs / 1000)} s without finishing`);
  else if (res.exitCode !== 0) why.push(`exit code ${res.exitCode}`);
  if (res.abortedClients > 0) why.push(`${res.abortedClients}/${clients} clients aborted`);
  if (res.errors.length > 0) why.push(`${res.errors.length} error line(s)`);
  if (!Number.isFinite(res.tps)) why.push('no TPS reported');
  if (why.length === 0) return null;
  const processed = Number.isFinite(res.processed) ? res.processed : 0;
  const first = res.errors[0] === undefined ? '' : `; first error line: ${res.errors[0].trim()}`;
  return `pgbench ${why.join(', ')}; ${processed} transactions processed${first}`;
}
