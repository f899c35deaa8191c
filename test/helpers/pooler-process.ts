// Runs the real pooler CLI (dist/cli.js) as a child process, the way a user would, for integration tests and the demo.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onProcessExit } from '../cluster/cleanup.ts';
import { freePort } from '../cluster/ports.ts';
import { cmdline, delay, isAlive, signal } from '../cluster/procs.ts';
import { sweepStale, writeOwner } from '../cluster/sweep.ts';

export interface PoolerProcess {
  port: number;
  /** the metrics endpoint's port when the ini has a ${METRICS_PORT} token, else 0 */
  metricsPort: number;
  /** GET /metrics (throws unless the ini set metrics_port = ${METRICS_PORT}) */
  metrics(): Promise<Metrics>;
  host: '127.0.0.1';
  pid: number;
  iniPath: string;
  /** the ini text as given to startPooler (tokens not yet substituted) */
  iniTemplate: string;
  dir: string;
  /** Everything the process wrote to stdout and stderr so far, in arrival order. */
  logs(): string;
  /**
   * Resolves with the first log line (parsed JSON; non-JSON lines come as `{ raw: line }`) that pred accepts, searching
   * from the first line ever written; to wait for a later occurrence, also match on pino's `time` field.
   */
  waitForLog(pred: (line: any) => boolean, timeoutMs?: number): Promise<any>;
  sighup(): void;
  signal(sig: NodeJS.Signals): void;
  /** Replaces pooler.ini (atomically, so a reload never reads half a file); ${PORT} and ${DIR} are substituted as at start. */
  rewriteIni(text: string): void;
  /** SIGTERM, then SIGKILL after 5 s; resolves the exit code (null if a signal ended it). Idempotent. */
  stop(): Promise<number | null>;
  exited: Promise<number | null>;
}

export interface StartPoolerOptions {
  /** Full ini text; ${PORT} becomes a free port, ${METRICS_PORT} another, ${DIR} the directory holding pooler.ini. */
  ini: string;
  /** Extra files written beside pooler.ini (e.g. userlist.txt), with the same substitutions. */
  files?: Record<string, string>;
  /** Resolve once the process has exited instead of once it listens. */
  expectFailure?: boolean;
  /** Entry script to run instead of <repo>/dist/cli.js. */
  cli?: string;
  /** Extra environment variables for the process. */
  env?: Record<string, string>;
}

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIR_PREFIX = 'pooler-proc-';
const PID_FILE = 'pooler.pid';
const READY_TIMEOUT_MS = 10_000;
const running = new Set<PoolerProcess>();

function nodeBinary(): string {
  const local = join(REPO, 'node_modules/.bin/node');
  return existsSync(local) ? local : process.execPath;
}

function reapPoolerDir(dir: string): void {
  const pid = Number(readFileSync(join(dir, PID_FILE), 'utf8'));
  // PIDs get recycled: only kill a process that runs this dir's ini.
  if (pid > 0 && isAlive(pid) && cmdline(pid).includes(dir)) signal(pid, 'SIGKILL');
}

let swept = false;

function tcpReachable(port: number): Promise<boolean> {
  return new Promise((res) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      res(true);
    });
    sock.once('error', () => res(false));
  });
}

export async function startPooler(opts: StartPoolerOptions): Promise<PoolerProcess> {
  if (!swept) {
    swept = true;
    sweepStale(tmpdir(), DIR_PREFIX, reapPoolerDir);
  }
  const cli = opts.cli ?? join(REPO, 'dist/cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} does not exist: run \`npm run build\` first.`);

  let port: number;
  if (opts.ini.includes('${PORT}')) port = await freePort();
  else {
    const m = /^\s*listen_port\s*=\s*(\d+)\s*$/m.exec(opts.ini);
    if (!m) throw new Error('The ini has neither a ${PORT} token nor a listen_port line.');
    port = Number(m[1]);
  }

  const metricsPort = opts.ini.includes('${METRICS_PORT}') ? await freePort() : 0;
  const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  writeOwner(dir);
  const fill = (text: string) =>
    text.replaceAll('${PORT}', String(port)).replaceAll('${METRICS_PORT}', String(metricsPort)).replaceAll('${DIR}', dir);
  const iniPath = join(dir, 'pooler.ini');
  writeFileSync(iniPath, fill(opts.ini));
  for (const [name, text] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), fill(text));

  const child = spawn(nodeBinary(), [cli, iniPath], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  const pid = child.pid ?? -1;
  if (pid > 0) writeFileSync(join(dir, PID_FILE), String(pid));

  let output = '';
  const lines: any[] = [];
  const pending: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };
  const listeners = new Set<() => void>();
  const onData = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    output += text;
    // Each stream is split separately so interleaved writes cannot glue two half-lines together.
    const parts = (pending[stream] + text).split('\n');
    pending[stream] = parts.pop()!;
    for (const line of parts) {
      if (!line.trim()) continue;
      try {
        lines.push(JSON.parse(line));
      } catch {
        lines.push({ raw: line });
      }
    }
    for (const l of listeners) l();
  };
  child.stdout!.on('data', onData('stdout'));
  child.stderr!.on('data', onData('stderr'));

  // alive: the process may still take signals; closed: it is gone and all its output has been read.
  let alive = pid > 0;
  let closed = false;
  const exited = new Promise<number | null>((res) => {
    child.once('error', (err) => {
      output += `\n[spawn error] ${err.message}\n`;
      alive = false;
      closed = true;
      res(null);
    });
    child.once('exit', () => {
      alive = false;
    });
    child.once('close', (code) => {
      alive = false;
      closed = true;
      res(code);
    });
  });
  exited.then(() => {
    for (const l of listeners) l();
  });

  const unregister = onProcessExit(() => {
    if (alive) signal(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  let stopping: Promise<number | null> | undefined;
  const proc: PoolerProcess = {
    port,
    metricsPort,
    async metrics() {
      if (metricsPort === 0) throw new Error('this pooler has no metrics port: put metrics_port = ${METRICS_PORT} in its ini');
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      if (res.status !== 200) throw new Error(`GET /metrics: HTTP ${res.status}`);
      return new Metrics(await res.text());
    },
    host: '127.0.0.1',
    pid,
    iniPath,
    iniTemplate: opts.ini,
    dir,
    logs: () => output,
    waitForLog(pred, timeoutMs = 10_000) {
      return new Promise((res, rej) => {
        let seen = 0;
        const check = () => {
          for (; seen < lines.length; seen++) {
            let ok = false;
            try {
              ok = pred(lines[seen]);
            } catch {
              // A predicate that trips over an unexpected line shape just does not match it.
            }
            if (ok) return finish(() => res(lines[seen]));
          }
          if (closed) finish(() => rej(new Error(`pooler exited before the awaited log line appeared; output:\n${output}`)));
        };
        const timer = setTimeout(
          () => finish(() => rej(new Error(`No matching pooler log line within ${timeoutMs} ms; output:\n${output}`))),
          timeoutMs,
        );
        const finish = (f: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          f();
        };
        listeners.add(check);
        check();
      });
    },
    sighup() {
      proc.signal('SIGHUP');
    },
    signal(sig) {
      if (alive) signal(pid, sig);
    },
    rewriteIni(text) {
      const tmp = `${iniPath}.tmp`;
      writeFileSync(tmp, fill(text));
      renameSync(tmp, iniPath);
    },
    stop() {
      stopping ??= (async () => {
        if (alive) signal(pid, 'SIGTERM');
        const timer = setTimeout(() => alive && signal(pid, 'SIGKILL'), 5000);
        const code = await exited;
        clearTimeout(timer);
        unregister();
        rmSync(dir, { recursive: true, force: true });
        running.delete(proc);
        return code;
      })();
      return stopping;
    },
    exited,
  };
  running.add(proc);

  if (opts.expectFailure) {
    const timeout = delay(READY_TIMEOUT_MS).then(() => 'timeout' as const);
    if ((await Promise.race([exited, timeout])) === 'timeout') {
      await proc.stop();
      throw new Error(`pooler was expected to fail but still ran after ${READY_TIMEOUT_MS} ms; output:\n${output}`);
    }
    return proc;
  }

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (!alive) {
      const code = await exited;
      await proc.stop();
      throw new Error(`pooler exited (code ${code}) before listening on 127.0.0.1:${port}; output:\n${output}`);
    }
    if ((await tcpReachable(port)) && (metricsPort === 0 || (await tcpReachable(metricsPort)))) return proc;
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`pooler did not listen on 127.0.0.1:${port} within ${READY_TIMEOUT_MS} ms; output:\n${output}`);
    }
    await delay(25);
  }
}

/** Stops every pooler this process started and has not stopped yet. */
export async function stopAllPoolers(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop()));
}

/** A parsed Prometheus text exposition: sample values by metric name and labels. */
export class Metrics {
  readonly text: string;
  readonly samples: { name: string; labels: Record<string, string>; value: number }[] = [];

  constructor(text: string) {
    this.text = text;
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m) throw new Error(`unparsable metrics line: ${line}`);
      const labels: Record<string, string> = {};
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      for (let l = re.exec(m[2] ?? ''); l !== null; l = re.exec(m[2] ?? '')) {
        labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
      }
      this.samples.push({ name: m[1]!, labels, value: Number(m[3]) });
    }
  }

  /** Samples of a metric whose labels include `match`. */
  all(name: string, match: Record<string, string> = {}): { labels: Record<string, string>; value: number }[] {
    return this.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
  }

  /** The one sample of a metric with these labels; undefined if there is none. Throws if several match. */
  value(name: string, match: Record<string, string> = {}): number | undefined {
    const found = this.all(name, match);
    if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(match)}`);
    return found[0]?.value;
  }
}
