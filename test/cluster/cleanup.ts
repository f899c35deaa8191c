// One process-wide list of synchronous cleanups run at exit, including exits caused by SIGINT/SIGTERM/SIGHUP, so interrupted runs leave nothing behind.
import { constants } from 'node:os';

type Task = () => void;

interface Registry {
  tasks: Set<Task>;
  installed: boolean;
}

// Kept on globalThis so test runners that re-evaluate modules per file still share one set of handlers.
const KEY = Symbol.for('pooler.test.cleanup');
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function registry(): Registry {
  const g = globalThis as unknown as Record<symbol, Registry | undefined>;
  return (g[KEY] ??= { tasks: new Set(), installed: false });
}

function runAll(): void {
  const reg = registry();
  for (const task of [...reg.tasks]) {
    reg.tasks.delete(task);
    try {
      task();
    } catch {
      // Best effort: one failing cleanup must not stop the others.
    }
  }
}

function onSignal(sig: NodeJS.Signals): void {
  // A program with its own handler owns shutdown (and may clean up gracefully); the 'exit' hook still runs when it exits.
  if (process.listenerCount(sig) > 1) return;
  // Otherwise keep the signal's default meaning; exiting runs the cleanups through the 'exit' hook.
  process.exit(128 + (constants.signals[sig] ?? 0));
}

/** Registers a synchronous cleanup; returns a function that unregisters it (call it once cleaned up normally). */
export function onProcessExit(task: Task): () => void {
  const reg = registry();
  if (!reg.installed) {
    reg.installed = true;
    process.on('exit', runAll);
    for (const sig of SIGNALS) process.on(sig, onSignal);
  }
  reg.tasks.add(task);
  return () => {
    reg.tasks.delete(task);
  };
}
