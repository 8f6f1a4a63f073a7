// Content digests of workspace files and folders, cached by (path, size, mtime, inode) in a
// persistent state file so that checking gigabytes of unchanged data reads no file contents.
import NodeCache from 'node-cache';
import { statSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hashFile, hashJson } from './hash.ts';
import { CORRUPT, sayDropped, isErrno, listFiles, readSealed, refuseSpecial, writeSealed } from '../fsutil.ts';

export interface FileEntry {
  path: string;
  size: number;
  digest: string;
}

/** Digest of a file, a folder (hash of its manifest) or a path that does not exist. */
export interface PathDigest {
  kind: 'file' | 'dir' | 'missing';
  digest: string;
  size: number;
  files: number;
  /** Folders only: every file with its digest, for saying which file changed. */
  manifest?: FileEntry[];
}

interface StateFile {
  version: 1;
  /** abs path -> [size, mtimeMs, inode, digest] */
  files: Record<string, [number, number, number, string]>;
  /** file digest -> its import specifiers (see fingerprint.ts), so unchanged code is not re-parsed */
  imports: Record<string, string[]>;
}

/** A file modified this recently may change again within the same mtime tick: never trust it. */
const RACY_MS = 1000;

/** What a path looked like when it was read: [size, mtimeMs, inode] for a file, [-1, mtimeMs, inode] for a folder, null when missing. */
export type StatSignature = [number, number, number] | null;

export class DigestCache {
  /** Every path this process took a digest of, as it was then (the no-op snapshot checks them). */
  readonly observed = new Map<string, StatSignature>();
  private state: StateFile = { version: 1, files: {}, imports: {} };
  private dirty = false;
  private readonly memo = new NodeCache({ stdTTL: 0, useClones: false });

  constructor(private readonly statePath: string) {}

  /** Reads the state file; a damaged one would hand out wrong digests, so it is dropped (all rehashed). */
  async load(): Promise<void> {
    const s = await readSealed<StateFile>(this.statePath);
    if (s === CORRUPT || (s !== undefined && (s.version !== 1 || typeof s.files !== 'object' || typeof s.imports !== 'object'))) {
      await rm(this.statePath, { force: true });
      sayDropped('a corrupt digest state file', this.statePath, 'files are hashed again');
      return;
    }
    if (s) this.state = s;
  }

  async save(): Promise<void> {
    if (!this.dirty) return;
    await writeSealed(this.statePath, this.state);
    this.dirty = false;
  }

  /** Forget what is known of a path (after the engine itself wrote it). */
  forget(abs: string): void {
    this.memo.del(abs);
    for (const k of this.memo.keys()) if (k.startsWith(`${abs}/`)) this.memo.del(k);
  }

  async file(abs: string): Promise<{ digest: string; size: number }> {
    const st = await stat(abs);
    this.observed.set(abs, [st.size, st.mtimeMs, st.ino]);
    const known = this.state.files[abs];
    if (known && known[0] === st.size && known[1] === st.mtimeMs && known[2] === st.ino) {
      return { digest: known[3], size: st.size };
    }
    const { digest, size } = await hashFile(abs);
    if (Date.now() - st.mtimeMs > RACY_MS) {
      this.state.files[abs] = [st.size, st.mtimeMs, st.ino, digest];
      this.dirty = true;
    }
    return { digest, size };
  }

  async path(abs: string): Promise<PathDigest> {
    const hit = this.memo.get<PathDigest>(abs);
    if (hit) return hit;
    const result = await this.compute(abs);
    this.memo.set(abs, result);
    return result;
  }

  private async compute(abs: string): Promise<PathDigest> {
    let st;
    try {
      st = await stat(abs);
    } catch (e) {
      if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR')) {
        this.observed.set(abs, null);
        return { kind: 'missing', digest: '', size: 0, files: 0 };
      }
      throw e;
    }
    if (!st.isDirectory()) {
      refuseSpecial(abs, st);
      const f = await this.file(abs);
      return { kind: 'file', digest: f.digest, size: f.size, files: 1 };
    }
    const manifest: FileEntry[] = [];
    const noteDir = (d: string) => {
      const s = statSync(d);
      this.observed.set(d, [-1, s.mtimeMs, s.ino]);
    };
    for (const rel of await listFiles(abs, noteDir)) {
      const f = await this.file(join(abs, rel));
      manifest.push({ path: rel, size: f.size, digest: f.digest });
    }
    return dirDigest(manifest);
  }

  cachedImports(digest: string): string[] | undefined {
    return this.state.imports[digest];
  }

  rememberImports(digest: string, specifiers: string[]): void {
    this.state.imports[digest] = specifiers;
    this.dirty = true;
  }

  /** Drops entries of files that no longer exist, so the state file does not grow forever. */
  async prune(): Promise<number> {
    let n = 0;
    for (const p of Object.keys(this.state.files)) {
      try {
        await stat(p);
      } catch {
        delete this.state.files[p];
        n++;
      }
    }
    if (n) this.dirty = true;
    return n;
  }
}

export async function dirDigest(manifest: FileEntry[]): Promise<PathDigest> {
  const digest = await hashJson(manifest.map((f) => [f.path, f.size, f.digest]));
  return { kind: 'dir', digest, size: manifest.reduce((s, f) => s + f.size, 0), files: manifest.length, manifest };
}

/** Digest of a path from its content alone (no state): for outputs a stage just wrote. */
export async function digestFresh(abs: string): Promise<PathDigest> {
  const st = await stat(abs);
  if (!st.isDirectory()) {
    const f = await hashFile(abs);
    return { kind: 'file', digest: f.digest, size: f.size, files: 1 };
  }
  const manifest: FileEntry[] = [];
  for (const rel of await listFiles(abs)) {
    const f = await hashFile(join(abs, rel));
    manifest.push({ path: rel, size: f.size, digest: f.digest });
  }
  return dirDigest(manifest);
}
