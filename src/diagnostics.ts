// A user's mistake is reported as `file:line:col: path: message`, every one of them, with exit
// code 2 and no stack trace. SpecError carries the whole list.

export interface Diagnostic {
  file: string;
  line: number;
  col: number;
  /** Dotted path into the spec, e.g. `stages.train.params.lr`. */
  path: string;
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.path || '(root)'}: ${d.message}`;
}

export class SpecError extends Error {
  constructor(readonly diagnostics: Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join('\n'));
    this.name = 'SpecError';
  }
}

/** A mistake in how the CLI was called (exit code 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function dottedPath(path: ReadonlyArray<string | number>): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`))
    .join('');
}
