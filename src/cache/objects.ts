// The cache's objects and the file lists that name them: every output file stored once by
// content (objects/ab/<digest>, read-only, stamped with one fixed mtime), and each folder output's
// manifest (manifests/<digest>.json, checked against its own digest when read). A cache hit checks
// each object by stat alone (a regular file, the recorded size, the stamp: a write through any
// hardlink moves the mtime); `verify` rehashes contents for the rest.
import { chmod, constants, copyFile, mkdir, open, rename, rm, stat, link, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { lstatSync, readFileSync } from 'node:fs';
import { dirDigest, type FileEntry, type PathDigest } from './digests.ts';
import { hashFile } from './hash.ts';
import { isManifest, type CachedRun, type OutputDigest } from './entries.ts';
import { CORRUPT, isErrno, linkOrCopy, readdirIfExists, tempName, writeFileAtomic } from '../fsutil.ts';

/** The mtime every stored object has (2001-09-09): any other mtime means it was written since. */
export const OBJECT_MTIME_MS = 1_000_000_000_000;
const OBJECT_MTIME = new Date(OBJECT_MTIME_MS);

/** What is wrong with one object, or undefined when it looks intact (stat only). */
export function objectProblem(path: string, size: number): string | undefined {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) return 'missing';
  if (!st.isFile()) return 'not a regular file';
  if (st.size !== size) return `size ${st.size}, recorded ${size}`;
  if (st.mtimeMs !== OBJECT_MTIME_MS) return 'modified after it was stored';
  return undefined;
}

export class ObjectStore {
  /** `corrupt`: drops a damaged file and says so (the store's one way of doing it). */
  constructor(
    readonly root: string,
    private readonly corrupt: (path: string, what: string) => Promise<void>,
  ) {}

  objectPath(digest: string): string {
    return join(this.root, 'objects', digest.slice(0, 2), digest.slice(2));
  }

  /**
   * Stores each file of an output as a read-only object (a hardlink: no copy of the bytes), stamped
   * with OBJECT_MTIME. An object already stored under the same digest is replaced by these fresh,
   * just-hashed bytes (unless it is this very file): a damaged copy that passed the stat checks
   * never outlives a rerun of a stage that produces it.
   *
   * A file with other links (a stage that staged data with `ln`, `cp -al`, os.link) shares its
   * inode with a file elsewhere, maybe outside the workspace: it is copied into the store, and
   * neither its mode nor its times are touched (chmod and utimes act on the inode, so on the
   * user's original too). Returns true when such a file was copied: the output as the stage left
   * it then still holds the shared inode, and must not become a view (see Store.commit).
   */
  async ingest(path: string, d: PathDigest): Promise<boolean> {
    let shared = false;
    const files: Array<[string, string, number]> = d.kind === 'file' ? [[path, d.digest, d.size]] : d.manifest!.map((f) => [join(path, f.path), f.digest, f.size]);
    for (const [file, digest, size] of files) {
      const obj = this.objectPath(digest);
      const st = lstatSync(file);
      const had = lstatSync(obj, { throwIfNoEntry: false });
      if (had && had.ino === st.ino && had.dev === st.dev && !objectProblem(obj, size)) continue; // this very object
      if (st.nlink > 1) {
        await this.ingestCopy(file, digest, size);
        shared = true;
        continue;
      }
      await chmod(file, 0o444);
      await utimes(file, OBJECT_MTIME, OBJECT_MTIME);
      if (had) {
        if (!had.isFile()) await rm(obj, { recursive: true, force: true });
        const tmp = `${obj}.${tempName('obj')}`;
        await linkOrCopy(file, tmp);
        await rename(tmp, obj);
        continue;
      }
      await mkdir(dirname(obj), { recursive: true });
      try {
        await link(file, obj);
      } catch (e) {
        if (isErrno(e, 'EEXIST')) continue;
        const tmp = `${obj}.${tempName('obj')}`;
        await linkOrCopy(file, tmp);
        await rename(tmp, obj);
      }
    }
    if (d.kind === 'dir') await this.saveManifest(d);
    return shared;
  }

  /** A copy of a file shared with another path, checked against its digest (the original may change meanwhile), stored as the object. */
  private async ingestCopy(file: string, digest: string, size: number): Promise<void> {
    const obj = this.objectPath(digest);
    await mkdir(dirname(obj), { recursive: true });
    const tmp = `${obj}.${tempName('obj')}`;
    try {
      await copyFile(file, tmp, constants.COPYFILE_FICLONE);
      const h = await hashFile(tmp);
      if (h.digest !== digest || h.size !== size) throw new Error(`${file} changed while it was stored (it is linked to another file, which was written meanwhile): rerun the stage`);
      await this.installObject(tmp, digest);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Keeps a folder's file list by digest (outputs, and inputs so status can name changed files). */
  async saveManifest(d: PathDigest): Promise<void> {
    if (d.kind !== 'dir' || !d.manifest) return;
    // Written unless a good one is there (a damaged one is dropped by readManifest).
    if (!(await this.readManifest(d.digest))) await writeFileAtomic(this.manifestPath(d.digest), JSON.stringify(d.manifest));
  }

  manifestPath(digest: string): string {
    return join(this.root, 'manifests', `${digest}.json`);
  }

  /** A folder's file list, checked against the digest it is filed under (a corrupt one is dropped). */
  async readManifest(digest: string): Promise<FileEntry[] | undefined> {
    const path = this.manifestPath(digest);
    let m: unknown;
    try {
      m = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return undefined;
      m = CORRUPT;
    }
    if (isManifest(m) && (await dirDigest(m)).digest === digest) return m;
    await this.corrupt(path, 'folder manifest');
    return undefined;
  }

  /** Every file of an output: [path inside the output ('' for a file output), object digest, size]. */
  async outputFiles(out: OutputDigest): Promise<Array<[string, string, number]> | undefined> {
    if (out.kind === 'file') return [['', out.digest, out.size]];
    const m = await this.readManifest(out.digest);
    if (!m || m.length !== out.files) return undefined;
    return m.map((f) => [f.path, f.digest, f.size]);
  }

  /**
   * True when every object of a run's outputs is in the store, untouched. Objects are hardlinked
   * into the workspace and into stages' input views; a write through such a link (root ignores the
   * read-only mode) shows as an mtime after the run was committed. Such an object is deleted, so
   * the stage reruns and stores a clean copy.
   */
  async hasOutputs(rec: CachedRun, verifyContent = false): Promise<boolean> {
    for (const out of Object.values(rec.outputs)) {
      const files = await this.outputFiles(out);
      if (!files) return false;
      for (const [, d, size] of files) {
        const obj = this.objectPath(d);
        const problem = objectProblem(obj, size) ?? (verifyContent ? await this.contentProblem(obj, d) : undefined);
        if (problem) {
          if (problem !== 'missing') await this.corrupt(obj, `object (${problem})`);
          return false;
        }
      }
    }
    return true;
  }

  private async contentProblem(obj: string, digest: string): Promise<string | undefined> {
    const h = await hashFile(obj);
    return h.digest === digest ? undefined : 'content does not match its digest';
  }

  /** True when the object is in the store, untouched since it was stored (stat only). */
  objectIntact(digest: string, size: number): boolean {
    return objectProblem(this.objectPath(digest), size) === undefined;
  }

  /**
   * Takes a file fetched from elsewhere whose content the caller has hashed to `digest` as a stored
   * object: read-only, stamped, renamed into place (so never seen half-written).
   */
  async installObject(file: string, digest: string): Promise<void> {
    await chmod(file, 0o444);
    await utimes(file, OBJECT_MTIME, OBJECT_MTIME);
    const obj = this.objectPath(digest);
    await mkdir(dirname(obj), { recursive: true });
    await rename(file, obj);
  }

  /**
   * Stores bytes fetched from elsewhere whose digest the caller has checked: written read-only and
   * stamped beside the object's name, synced, renamed into place (never seen half-written).
   */
  async installObjectBytes(bytes: Uint8Array, digest: string): Promise<void> {
    const obj = this.objectPath(digest);
    const dir = dirname(obj);
    if (!this.madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.madeDirs.add(dir);
    }
    const tmp = `${obj}.${tempName('obj')}`;
    const fh = await open(tmp, 'wx', 0o444);
    try {
      await fh.writeFile(bytes);
      await fh.utimes(OBJECT_MTIME, OBJECT_MTIME);
      await fh.sync();
    } catch (e) {
      await fh.close();
      await rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    await rename(tmp, obj);
  }

  /** Object folders known to exist (installs skip their mkdir). */
  private readonly madeDirs = new Set<string>();

  /** Keeps a folder's file list fetched from elsewhere; the caller checked it against its digest. */
  async installManifest(digest: string, entries: FileEntry[]): Promise<void> {
    await writeFileAtomic(this.manifestPath(digest), JSON.stringify(entries));
  }

  /** Every object in the store: digest -> path, size and mtime (for gc). */
  async objectDigests(): Promise<Map<string, { path: string; size: number; mtimeMs: number }>> {
    const out = new Map<string, { path: string; size: number; mtimeMs: number }>();
    const root = join(this.root, 'objects');
    for (const pre of await readdirIfExists(root)) {
      for (const f of await readdirIfExists(join(root, pre))) {
        const p = join(root, pre, f);
        const st = await stat(p).catch(() => undefined);
        if (st) out.set(pre + f, { path: p, size: st.size, mtimeMs: st.mtimeMs });
      }
    }
    return out;
  }

  /** The stored object of one file inside an output ('' for a file output), if the store has its list. */
  async objectIn(out: OutputDigest, inside: string): Promise<string | undefined> {
    const hit = (await this.outputFiles(out))?.find(([rel]) => rel === inside);
    return hit && this.objectPath(hit[1]);
  }

  /** Object digests an output uses. */
  async outputObjects(out: OutputDigest): Promise<string[]> {
    return ((await this.outputFiles(out)) ?? []).map(([, d]) => d);
  }

  /** [digest, size] of each object an output uses. */
  async outputObjectSizes(out: OutputDigest): Promise<Array<[string, number]>> {
    return ((await this.outputFiles(out)) ?? []).map(([, d, size]) => [d, size]);
  }

  /**
   * `pipeline verify`: rehashes every stored object; one whose content does not match its name is
   * removed (every run using it then reruns). Returns what was checked and what was removed.
   */
  async verifyObjects(onProgress?: (done: number, total: number) => void): Promise<{ checked: number; corrupt: string[] }> {
    const all = [...(await this.objectDigests())];
    const corrupt: string[] = [];
    let done = 0;
    for (const [digest, o] of all) {
      const st = lstatSync(o.path, { throwIfNoEntry: false });
      const bad = !st?.isFile() || st.mtimeMs !== OBJECT_MTIME_MS || (await hashFile(o.path)).digest !== digest;
      if (bad) {
        corrupt.push(digest);
        await rm(o.path, { recursive: true, force: true });
      }
      onProgress?.(++done, all.length);
    }
    return { checked: all.length, corrupt };
  }

  async deleteManifestsExcept(keep: Set<string>): Promise<number> {
    let n = 0;
    const root = join(this.root, 'manifests');
    for (const f of await readdirIfExists(root)) {
      if (!keep.has(f.replace(/\.json$/, ''))) {
        await rm(join(root, f), { force: true });
        n++;
      }
    }
    return n;
  }
}
