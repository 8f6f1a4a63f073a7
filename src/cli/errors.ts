// How the command line reports what went wrong: a user's mistake in their terms (exit 2), a file
// or folder this user may not write (exit 77, with what to do), a full disk (exit 74), anything
// else as one line plus the file the full trace was written to (exit 70).
import { statSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { formatDiagnostic, SpecError, UsageError } from '../diagnostics.ts';
import { isDiskFull } from '../fsutil.ts';
import { RemoteError } from '../remote/remote.ts';

/** Exit code of a permission problem (sysexits' EX_NOPERM). */
export const EXIT_NO_PERMISSION = 77;
/** Exit code of a full disk (sysexits' EX_IOERR). */
export const EXIT_DISK_FULL = 74;

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
  if (e instanceof RemoteError) {
    process.stderr.write(`pipeline: ${e.message}\n`);
    return 1;
  }
  if (isDiskFull(e)) {
    const err = e as NodeJS.ErrnoException;
    process.stderr.write(`pipeline: the disk is full (${err.code}${err.syscall ? ` on ${err.syscall}` : ''}${err.path ? ` of ${err.path}` : ''}): free space on it, or move the cache to a larger disk (--cache-dir, PIPELINE_CACHE_DIR); nothing half-written was kept\n`);
    return EXIT_DISK_FULL;
  }
  const denied = permissionProblem(e);
  if (denied) {
    process.stderr.write(`pipeline: ${denied}\n`);
    return EXIT_NO_PERMISSION;
  }
  return internalError(e);
}

/**
 * A filesystem error this user can fix by permissions (another user's or a read-only cache, say),
 * in words: what could not be written, whose it is, and what to do. Undefined for other errors.
 */
export function permissionProblem(e: unknown): string | undefined {
  const err = e as NodeJS.ErrnoException;
  if (!err || !['EACCES', 'EPERM', 'EROFS'].includes(err.code ?? '') || typeof err.path !== 'string') return undefined;
  // Named by the nearest part that exists: a temp file's name says nothing to the user.
  let at = err.path;
  while (!statSync(at, { throwIfNoEntry: false }) && dirname(at) !== at) at = dirname(at);
  const st = statSync(at, { throwIfNoEntry: false });
  const what = at === err.path ? `${err.syscall ?? 'write'} ${at}` : `write in ${at}`;
  const owner = st ? ` (it belongs to uid ${st.uid}, gid ${st.gid}, mode ${(st.mode & 0o7777).toString(8)}; you are ${userInfo().username}, uid ${process.getuid?.() ?? '?'})` : '';
  const own = 'use a cache of your own: --cache-dir DIR or PIPELINE_CACHE_DIR';
  if (err.code === 'EROFS') return `cannot ${what}: the filesystem is read-only. The cache must be writable (runs take locks and record what they compute): mount it read-write, or ${own}.`;
  return `cannot ${what}: permission denied${owner}. A cache several users share must be writable by all of them: give it their group (chgrp -R GROUP; chmod -R g+rwX; chmod g+s on its folders) and have each user run with umask 002, so that what one writes the others can replace. Otherwise ${own}.`;
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
