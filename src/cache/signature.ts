// A file's stat signature: what says, without reading it, that a file is as it was. Size, mtime,
// inode and ctime: the ctime too, because a rewrite at the same size with its mtime put back
// (`cp -p`, Python's shutil.copy2) keeps the first three but not the ctime, which no user call can
// set. And a signature is trusted only if it was taken well after its times: on a filesystem with
// 1-second timestamps, an edit in the same second as the read keeps every field.
import { statSync, type Stats } from 'node:fs';

/** [size, mtimeMs, inode, ctimeMs] for a file, [-1, mtimeMs, inode, ctimeMs] for a folder; null when missing. */
export type StatSignature = [number, number, number, number] | null;

/** How recent a time may be, when a signature is taken, for an edit in the same tick to hide behind it. */
export const RACY_MS = 1000;

export function signatureOf(st: Stats): Exclude<StatSignature, null> {
  return [st.isDirectory() ? -1 : st.size, st.mtimeMs, st.ino, st.ctimeMs];
}

/** The signature of `path` now (following links). */
export function signature(path: string): StatSignature {
  const st = statSync(path, { throwIfNoEntry: false });
  return st ? signatureOf(st) : null;
}

export function sameSignature(a: StatSignature, b: StatSignature): boolean {
  return a === null ? b === null : b !== null && a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3];
}

/**
 * Whether a signature taken at `takenAt` (ms, before the stat) can vouch for the content read
 * then: both its times must be older than RACY_MS at that moment, not at some later one.
 */
export function trustworthy(sig: StatSignature, takenAt: number): boolean {
  return sig === null || (takenAt - sig[1] > RACY_MS && takenAt - sig[3] > RACY_MS);
}
