// Content digests of workspace files and folders, cached by stat signature (size, mtime, inode,
// ctime: see signature.ts) in a persistent state file, so that checking gigabytes of unchanged data
// reads no file contents.
import { statSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { hashFile, hashJson } from './hash.ts';
import { signatureOf, trustworthy, type StatSignature } from './signature.ts';
import { isRecord } from '../records.ts';
import { CORRUPT, sayDropped, isErrno, listFiles, readSealed, refuseSpecial, writeSealed } from '../fsutil.ts';

export type { StatSignature } from './signature.ts';

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

/** A path as it was seen: its signature, and when (ms) the stat that took it began. */
export interface Observation {
  sig: StatSignature;
  at: number;
}

interface StateFile {
  version: 2;
  /** abs path -> [size, mtimeMs, inode, ctimeMs, digest] */
  files: Record<string, [number, number, number, number, string]>;
}

export class DigestCache {
  /** Every path this process took a digest of, as it was then (the no-op snapshot checks them). */
  readonly observed = new Map<string, Observation>();
  private state: StateFile = { version: 2, files: {} };
  private dirty = false;
  /** Path -> its digest, within this command (the digest state vouches across commands). */
  private readonly memo = new Map<string, PathDigest>();
  /**
   * Path -> every file and folder its digest was read from, with the signature then: a stage whose
   * input moved while it ran is not committed under a key computed from the old content.
   */
  private readonly sources = new Map<string, Array<[string, StatSignature]>>();

  private loading: Promise<void> | undefined;

  constructor(private readonly statePath: string) {}

  /**
   * Reads the state file, once, when a digest is first asked for (a no-op rerun that never asks
   * does not read it); a damaged one would hand out wrong digests, so it is dropped (all rehashed).
   */
  load(): Promise<void> {
    this.loading ??= this.read();
    return this.loading;
  }

  private async read(): Promise<void> {
    const s = await readSealed<StateFile>(this.statePath);
    if (s !== undefined && s !== CORRUPT && (s as { version?: number }).version === 1) return; // an older engine's (no ctime): rebuilt as files are read
    if (s === CORRUPT || (s !== undefined && (s.version !== 2 || !isRecord(s.files)))) {
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
    this.memo.delete(abs);
    this.sources.delete(abs);
    for (const k of this.memo.keys()) {
      if (!k.startsWith(`${abs}/`)) continue;
      this.memo.delete(k);
      this.sources.delete(k);
    }
  }

  /** What the digest of `abs` (taken by path()) was read from: [path, signature then] of each file and folder. */
  sourcesOf(abs: string): Array<[string, StatSignature]> {
    return this.sources.get(abs) ?? [];
  }

  async file(abs: string): Promise<{ digest: string; size: number; sig: StatSignature }> {
    await this.load();
    const at = Date.now(); // before the stat: an edit after this moment shows in some field
    const st = await stat(abs);
    const sig = signatureOf(st);
    this.observed.set(abs, { sig, at });
    const known = this.state.files[abs];
    if (known && known[0] === sig[0] && known[1] === sig[1] && known[2] === sig[2] && known[3] === sig[3]) {
      return { digest: known[4], size: st.size, sig };
    }
    const { digest, size } = await hashFile(abs);
    if (trustworthy(sig, at)) {
      this.state.files[abs] = [sig[0], sig[1], sig[2], sig[3], digest];
      this.dirty = true;
    }
    return { digest, size, sig };
  }

  async path(abs: string): Promise<PathDigest> {
    const hit = this.memo.get(abs);
    if (hit) return hit;
    const sources: Array<[string, StatSignature]> = [];
    const result = await this.compute(abs, sources);
    this.memo.set(abs, result);
    this.sources.set(abs, sources);
    return result;
  }

  private async compute(abs: string, sources: Array<[string, StatSignature]>): Promise<PathDigest> {
    let st;
    const at = Date.now();
    try {
      st = await stat(abs);
    } catch (e) {
      if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR')) {
        this.observed.set(abs, { sig: null, at });
        sources.push([abs, null]);
        return { kind: 'missing', digest: '', size: 0, files: 0 };
      }
      throw e;
    }
    if (!st.isDirectory()) {
      refuseSpecial(abs, st);
      const f = await this.file(abs);
      sources.push([abs, f.sig]);
      return { kind: 'file', digest: f.digest, size: f.size, files: 1 };
    }
    const manifest: FileEntry[] = [];
    const noteDir = (d: string) => {
      const seen = { sig: signatureOf(statSync(d)), at: Date.now() };
      this.observed.set(d, seen);
      sources.push([d, seen.sig]);
    };
    for (const rel of await listFiles(abs, noteDir)) {
      const f = await this.file(join(abs, rel));
      manifest.push({ path: rel, size: f.size, digest: f.digest });
      sources.push([join(abs, rel), f.sig]);
    }
    return dirDigest(manifest);
  }

  /** Drops entries of files that no longer exist, so the state file does not grow forever. */
  async prune(): Promise<number> {
    await this.load();
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
