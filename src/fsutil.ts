// Filesystem helpers shared by the store, the state file and the stages.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, open, rename, mkdir, rm, readdir, stat, link, copyFile, lstat, readlink, realpath, utimes } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { hashBytes } from './cache/hash.ts';

/** Writes a file that readers either see whole or not at all: temp file, fsync, rename, fsync dir. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    // Half a temp file (a full disk) is not left behind to fill it further.
    await rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(dirname(path));
}

export async function fsyncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic there.
  }
}

/** The one line said when damaged engine state is dropped (`what`: 'a corrupt run record', ...). */
export function sayDropped(what: string, where: string, then = 'it will be rebuilt'): void {
  process.stderr.write(`cache: dropped ${what} (${where}); ${then}\n`);
}

/** What readSealed returns for a file that is there but not as written (a torn or edited file). */
export const CORRUPT = Symbol('corrupt');

/**
 * Engine state others read back (records, indexes, memos): JSON with a `seal`, the digest of the
 * rest, so that a file damaged or edited into something plausible is detected, not trusted.
 * Written atomically. `seal` is a reserved key of the value.
 */
export async function writeSealed(path: string, value: object): Promise<void> {
  await writeFileAtomic(path, await sealedText(value));
}

/** A value as a sealed file holds it (what writeSealed writes). */
export async function sealedText(value: object): Promise<string> {
  const { seal: _drop, ...rest } = value as Record<string, unknown>;
  const body = JSON.stringify(rest);
  const seal = `{"seal":"${await hashBytes(body)}"`;
  return body === '{}' ? `${seal}}` : `${seal},${body.slice(1)}`;
}

/**
 * A sealed file's value; undefined when absent; CORRUPT when its seal does not match. The read is
 * synchronous on purpose: a no-op rerun reads many small files, where a sync read is several times
 * faster than a round trip through the thread pool.
 */
export async function readSealed<T>(path: string): Promise<T | undefined | typeof CORRUPT> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return undefined;
    throw e;
  }
  return parseSealed<T>(text);
}

/** A sealed file's text -> its value, or CORRUPT when it is not JSON or its seal does not match. */
export async function parseSealed<T>(text: string): Promise<T | typeof CORRUPT> {
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    if (typeof v !== 'object' || v === null || Array.isArray(v) || typeof v.seal !== 'string') return CORRUPT;
    const { seal, ...rest } = v;
    return (await hashBytes(JSON.stringify(rest))) === seal ? (rest as T) : CORRUPT;
  } catch {
    return CORRUPT;
  }
}

/** A write that failed because the disk (or the user's quota on it) is full. */
export function isDiskFull(e: unknown): boolean {
  return isErrno(e, 'ENOSPC') || isErrno(e, 'EDQUOT');
}

export function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === code;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return false;
    throw e;
  }
}

/** A problem with the files under a folder the user gave (a link loop, a broken link): said plainly. */
export class PathProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PathProblem';
  }
}

/** What a path that is neither a regular file nor a folder is, in words; undefined for those two. */
export function specialKind(st: { isFile(): boolean; isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string | undefined {
  if (st.isFile() || st.isDirectory()) return undefined;
  return st.isFIFO() ? 'a FIFO (named pipe)' : st.isSocket() ? 'a socket' : st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : 'not a regular file';
}

/**
 * Refuses a special file where data is read: a FIFO blocks the reader until someone writes, and a
 * device like /dev/zero never ends. Either would hang a status or a run, and hold it past Ctrl-C.
 */
export function refuseSpecial(path: string, st: Parameters<typeof specialKind>[0]): void {
  const kind = specialKind(st);
  if (kind) throw new PathProblem(`${path} is ${kind}: inputs and the files in an input folder must be regular files (or links to them)`);
}

/**
 * Relative paths (with '/') of every regular file under dir, sorted, so digests are order-stable.
 * `onDir` sees every folder walked (to note its mtime: a file added or removed changes it).
 * Symbolic links are followed (a data set linked in on purpose is read through its link), a loop or
 * a broken link is a PathProblem; with `followLinks: false` a link is listed as it is, not entered.
 */
export async function listFiles(dir: string, onDir?: (abs: string) => void, opts: { followLinks?: boolean } = {}): Promise<string[]> {
  const follow = opts.followLinks ?? true;
  const out: string[] = [];
  async function walk(d: string, chain: Set<string>): Promise<void> {
    onDir?.(d);
    for (const ent of await readdir(d, { withFileTypes: true })) {
      const p = join(d, ent.name);
      const rel = () => relative(dir, p).split(sep).join('/');
      if (ent.isDirectory()) await walk(p, chain);
      else if (ent.isFile()) out.push(rel());
      else if (!ent.isSymbolicLink()) refuseSpecial(p, ent);
      else {
        if (!follow) {
          out.push(rel());
          continue;
        }
        const st = await stat(p).catch(async (e: unknown) => {
          const to = await readlink(p).catch(() => '?');
          if (isErrno(e, 'ELOOP')) throw new PathProblem(`symbolic link loop at ${p} (-> ${to})`);
          if (isErrno(e, 'ENOENT')) throw new PathProblem(`broken symbolic link ${p} (-> ${to}): its target does not exist`);
          throw e;
        });
        if (st.isDirectory()) {
          const real = await realpath(p);
          if (chain.has(real)) throw new PathProblem(`symbolic link loop: ${p} (-> ${await readlink(p)}) leads back into a folder it is inside (${real})`);
          await walk(p, new Set([...chain, real]));
        } else {
          refuseSpecial(p, st);
          out.push(rel());
        }
      }
    }
  }
  await walk(dir, new Set([await realpath(dir)]));
  return out.sort();
}

/**
 * Why a path a stage wrote cannot be stored, or undefined: a symbolic link (it could lead outside
 * the workspace), or something that is neither a file nor a folder (a fifo, a socket, a device).
 */
export async function unstorableEntry(path: string): Promise<string | undefined> {
  const st = await lstat(path);
  if (st.isSymbolicLink()) return `${path} is a symbolic link (-> ${await readlink(path)}); write the file itself, not a link`;
  if (st.isFile()) return undefined;
  if (!st.isDirectory()) return `${path} is neither a file nor a folder`;
  for (const ent of await readdir(path)) {
    const why = await unstorableEntry(join(path, ent));
    if (why) return why;
  }
  return undefined;
}

/**
 * Hardlinks src to dest, or copies where a link is impossible (another filesystem, no support).
 * A copy keeps src's mode and mtime: the store tells an intact object or view from one written
 * since by that stamp, so a copy without it would be dropped as modified at every hit.
 */
export async function linkOrCopy(src: string, dest: string): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  try {
    await link(src, dest);
  } catch (e) {
    if (isErrno(e, 'EEXIST')) {
      await rm(dest, { force: true });
      return linkOrCopy(src, dest);
    }
    await copyFile(src, dest);
    const st = await stat(src);
    await utimes(dest, st.atime, st.mtime);
    await chmod(dest, st.mode & 0o7777);
  }
}

export function tempName(prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** A folder's entries; none when it does not exist (or is not a folder). */
export async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR')) return [];
    throw e;
  }
}
