// How the command line reports what went wrong: a user's mistake in their terms (exit 2), anything
// else as one line plus the file the full trace was written to (exit 70).
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatDiagnostic, SpecError, UsageError } from '../diagnostics.ts';

/** Says what went wrong in the user's terms; the exit code for it. */
export function reportError(e: unknown): number {
  if (e instanceof SpecError) {
    process.stderr.write(`${e.diagnostics.map(formatDiagnostic).join('\n')}\n${e.diagnostics.length} problem${e.diagnostics.length > 1 ? 's' : ''} in the spec\n`);
    return 2;
  }
  if (e instanceof UsageError) {
    process.stderr.write(`pipeline: ${e.message}\n`);
    return 2;
  }
  return internalError(e);
}

/** A bug or an environment the engine did not expect: one line, the trace kept in a file. */
export function internalError(e: unknown): number {
  const file = join(tmpdir(), `pipeline-error-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}.log`);
  const text = e instanceof Error ? (e.stack ?? e.message) : String(e);
  try {
    writeFileSync(file, `${process.argv.join(' ')}\n${text}\n`);
  } catch {
    // nowhere to keep it: the line below still says what happened
  }
  process.stderr.write(`pipeline: internal error: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]} (full trace: ${file})\n`);
  return 70;
}
