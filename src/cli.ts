#!/usr/bin/env node
// Command line: `pooler [-V] [-h] pooler.ini` — load the config, listen, and map signals to reload/shutdown.

import { readFileSync } from 'node:fs';
import { loadConfig, ConfigError } from './config/index.ts';
import { createLogger } from './log.ts';
import { initClassifier } from './routing/classify.ts';
import { Pooler } from './pooler.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const USAGE = `usage: pooler [-V|--version] [-h|--help] pooler.ini`;

function main(argv: string[]): void {
  const args = argv.slice(2);
  if (args.includes('-V') || args.includes('--version')) {
    process.stdout.write(`pooler ${VERSION}\n`);
    return;
  }
  if (args.includes('-h') || args.includes('--help')) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const files = args.filter((a) => !a.startsWith('-'));
  if (files.length !== 1) {
    process.stderr.write(`${USAGE}\n`);
    process.exitCode = 1;
    return;
  }
  const iniPath = files[0]!;
  let config;
  try {
    config = loadConfig(iniPath);
  } catch (e) {
    process.stderr.write(`pooler: ${e instanceof ConfigError ? e.message : (e as Error).message}\n`);
    process.exitCode = 1;
    return;
  }
  const log = createLogger(config.settings.log_level);
  for (const w of config.warnings) log.warn({ file: w.file, line: w.line, key: w.key }, w.message);

  let pooler: Pooler;
  try {
    pooler = new Pooler(config, log);
  } catch (e) {
    log.fatal({ err: (e as Error).message }, 'cannot start');
    process.exitCode = 1;
    return;
  }

  process.on('unhandledRejection', (e) => log.error({ err: String((e as Error)?.stack ?? e) }, 'unhandled rejection'));
  process.on('uncaughtException', (e) => log.error({ err: String(e.stack ?? e) }, 'uncaught exception'));

  process.on('SIGHUP', () => {
    try {
      const next = loadConfig(iniPath);
      for (const w of next.warnings) log.warn({ file: w.file, line: w.line, key: w.key }, w.message);
      pooler.reload(next);
      log.level = next.settings.log_level;
      log.info({ file: iniPath }, 'config reloaded');
    } catch (e) {
      log.error({ file: iniPath, err: (e as Error).message }, 'config reload failed; keeping the running config');
    }
  });
  let stopping = false;
  const stop = (signal: string, waitMs: number) => {
    if (stopping) {
      pooler.closeNow(`${signal} during shutdown`);
      process.exit(0);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    void pooler.shutdown(`shutdown (${signal})`, waitMs).then(() => {
      log.info('bye');
      log.flush?.();
      setImmediate(() => process.exit(0));
    });
  };
  process.on('SIGINT', () => stop('SIGINT', 30_000));
  process.on('SIGTERM', () => stop('SIGTERM', 30_000));
  process.on('SIGQUIT', () => {
    pooler.closeNow('SIGQUIT');
    process.exit(0);
  });

  // The statement classifier's WASM module loads before the first client can send a statement.
  initClassifier().then(
    () =>
      pooler.listen().catch((e: Error) => {
        log.fatal({ err: e.message, addr: config.settings.listen_addr, port: config.settings.listen_port }, 'cannot listen');
        process.exit(1);
      }),
    (e: Error) => {
      log.fatal({ err: e.message }, 'cannot load the statement classifier');
      process.exit(1);
    },
  );
}

main(process.argv);
