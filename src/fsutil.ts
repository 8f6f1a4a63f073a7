// Filesystem helpers shared by the store, the state file and the stages.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, rename, mkdir, rm, readdir, stat, link, copyFile, lstat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';

/** Writes a file that readers either see whole or not at all: temp file, fsync, rename, fsync dir. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (e) {
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

/**
 * Reads a small JSON file, or undefined when it is absent. Synchronous on purpose: a no-op rerun
 * reads one record per stage, and for small files a sync read is several times faster than a
 * round trip through the thread pool.
 */
export async function readJsonIfExists<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return undefined;
    if (e instanceof SyntaxError) return undefined; // never written whole (writes are atomic): treat as absent
    throw e;
  }
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

/**
 * Relative paths (with '/') of every regular file under dir, sorted, so digests are order-stable.
 * `onDir` sees every folder walked (to note its mtime: a file added or removed changes it).
 */
export async function listFiles(dir: string, onDir?: (abs: string) => void): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string): Promise<void> {
    onDir?.(d);
    for (const ent of await readdir(d, { withFileTypes: true })) {
      const p = join(d, ent.name);
      if (ent.isDirectory()) await walk(p);
      else if (ent.isFile()) out.push(relative(dir, p).split(sep).join('/'));
      else if (ent.isSymbolicLink()) {
        const st = await stat(p);
        if (st.isDirectory()) await walk(p);
        else out.push(relative(dir, p).split(sep).join('/'));
      }
    }
  }
  await walk(dir);
  return out.sort();
}

/** Hardlinks src to dest, or copies where a link is impossible (another filesystem, no support). */
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
  }
}

export function tempName(prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(6).toString('hex')}`;
}
