// Errors of the configuration loader: each names the file, line and key so the fix is one jump away.

/** A configuration mistake; the message reads `<file>:<line>: <key>: <problem>` (no `<key>: ` when the line has none). */
export class ConfigError extends Error {
  readonly file: string;
  readonly line: number;
  readonly key: string | undefined;
  /** the problem alone, without the location prefix */
  readonly problem: string;

  constructor(file: string, line: number, key: string | undefined, problem: string) {
    super(key === undefined ? `${file}:${line}: ${problem}` : `${file}:${line}: ${key}: ${problem}`);
    this.name = 'ConfigError';
    this.file = file;
    this.line = line;
    this.key = key;
    this.problem = problem;
  }
}

/** A value that does not parse; thrown by the value parsers, which know neither file nor line. */
export class BadValue extends Error {
  constructor(problem: string) {
    super(problem);
    this.name = 'BadValue';
  }
}
