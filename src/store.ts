// The cache folder: content-addressed objects, one run record per stage key, and the latest run
// of each stage of each spec (what `status` compares against and what `gc` keeps).
//
//   objects/ab/<digest>        every output file, read-only, stored once by content
//   runs/<key>.json            a completed stage run: its fingerprint and output digests
//   views/<key>/<output>       outputs as the stage wrote them (hardlinks of objects), read by downstream stages
//   manifests/<digest>.json    a folder output's file list
//   latest/<spec>.json         stage -> key of its latest run, for each spec
//   logs/<key>.log             the log of the run that produced a record
//   tmp/                       private folders of stages in flight (stale ones are removed on the next run)
//   checkpoints/<key>/         a stage's checkpoints, kept until that key succeeds (resume after a kill)
//
// A run record is written last, after its outputs are in place: a record exists only for a run
// that completed, so a crash at any point leaves nothing that claims to be complete.
import { chmod, mkdir, readdir, rename, rm, stat, unlink, link } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { statSync } from 'node:fs';
import { digestFresh, type FileEntry, type PathDigest } from './digests.ts';
import type { Fingerprint } from './fingerprint.ts';
import { exists, fsyncDir, isErrno, linkOrCopy, readJsonIfExists, tempName, writeFileAtomic } from './fsutil.ts';

export interface OutputDigest {
  kind: 'file' | 'dir';
  digest: string;
  size: number;
  files: number;
}

export interface RunRecord {
  key: string;
  stage: string;
  spec: string;
  fingerprint: Fingerprint;
  outputs: Record<string, OutputDigest>;
  startedAt: string;
  durationMs: number;
  /** When the record was written (ms since epoch): no object it uses may be modified after. */
  committedAt: number;
}

/** What downstream stages and the cache check need of a run: kept in the latest index too. */
export type CachedRun = Pick<RunRecord, 'key' | 'outputs' | 'committedAt'>;

export interface LatestPointer extends CachedRun {
  at: string;
}

export class Store {
  constructor(readonly root: string) {}

  get tmpDir(): string {
    return join(this.root, 'tmp');
  }

  runPath(key: string): string {
    return join(this.root, 'runs', `${key}.json`);
  }

  viewPath(key: string, output?: string): string {
    return output ? join(this.root, 'views', key, output) : join(this.root, 'views', key);
  }

  /** Checkpoints of a stage run in progress, kept across failed attempts of the same key. */
  checkpointPath(key: string): string {
    return join(this.root, 'checkpoints', key);
  }

  logPath(key: string): string {
    return join(this.root, 'logs', `${key}.log`);
  }

  objectPath(digest: string): string {
    return join(this.root, 'objects', digest.slice(0, 2), digest.slice(2));
  }

  async readRun(key: string): Promise<RunRecord | undefined> {
    return readJsonIfExists<RunRecord>(this.runPath(key));
  }

  private latestPath(spec: string): string {
    return join(this.root, 'latest', `${encodeURIComponent(spec)}.json`);
  }

  /**
   * Stage id -> its latest run, for one spec: one small file per spec, read once per command, so
   * a no-op rerun need not open one record per stage.
   */
  async readLatest(spec: string): Promise<Map<string, LatestPointer>> {
    const index = await readJsonIfExists<Record<string, LatestPointer>>(this.latestPath(spec));
    return new Map(Object.entries(index ?? {}));
  }

  async writeLatest(spec: string, latest: Map<string, CachedRun>): Promise<void> {
    const path = this.latestPath(spec);
    const cur = (await readJsonIfExists<Record<string, LatestPointer>>(path)) ?? {};
    let changed = false;
    const at = new Date().toISOString();
    for (const [stage, run] of latest) {
      if (cur[stage]?.key === run.key && cur[stage]?.committedAt === run.committedAt) continue;
      cur[stage] = { key: run.key, outputs: run.outputs, committedAt: run.committedAt, at };
      changed = true;
    }
    if (changed) await writeFileAtomic(path, JSON.stringify(cur));
  }

  /** Every latest pointer: spec -> stage -> key. */
  async allLatest(): Promise<Map<string, Map<string, LatestPointer>>> {
    const out = new Map<string, Map<string, LatestPointer>>();
    for (const f of await readdirIfExists(join(this.root, 'latest'))) {
      if (!f.endsWith('.json')) continue;
      const spec = decodeURIComponent(f.slice(0, -5));
      out.set(spec, await this.readLatest(spec));
    }
    return out;
  }

  /** A fresh private folder for a stage run (under tmp/, so the same filesystem as the store). */
  async makeTemp(label: string): Promise<string> {
    const dir = join(this.tmpDir, tempName(label.replace(/[^\w.-]+/g, '_').slice(0, 60)));
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /** Removes leftovers of runs that died (called while holding the workspace lock). */
  async clearTemp(): Promise<void> {
    await rm(this.tmpDir, { recursive: true, force: true });
  }

  /**
   * Moves a successful stage's outputs into the store and writes its run record, in that order.
   * `outDir` holds one entry per output name.
   */
  async commit(outDir: string, outputs: string[], base: Omit<RunRecord, 'outputs' | 'committedAt'>, logFile?: string): Promise<RunRecord> {
    const digests: Record<string, OutputDigest> = {};
    for (const name of outputs) {
      const p = join(outDir, name);
      if (!(await exists(p))) throw new Error(`the stage did not write its output '${name}'`);
      const d = await digestFresh(p);
      digests[name] = { kind: d.kind as 'file' | 'dir', digest: d.digest, size: d.size, files: d.files };
      await this.ingest(p, d);
    }
    const view = this.viewPath(base.key);
    await rm(view, { recursive: true, force: true });
    await mkdir(dirname(view), { recursive: true });
    await rename(outDir, view);
    if (logFile) {
      await mkdir(join(this.root, 'logs'), { recursive: true });
      await rename(logFile, this.logPath(base.key)).catch(() => undefined);
    }
    const record: RunRecord = { ...base, outputs: digests, committedAt: Date.now() };
    await writeFileAtomic(this.runPath(base.key), JSON.stringify(record, null, 1));
    return record;
  }

  /** Stores each file of an output as a read-only object (a hardlink: no copy of the bytes). */
  private async ingest(path: string, d: PathDigest): Promise<void> {
    const files: Array<[string, string]> = d.kind === 'file' ? [[path, d.digest]] : d.manifest!.map((f) => [join(path, f.path), f.digest]);
    for (const [file, digest] of files) {
      await chmod(file, 0o444);
      const obj = this.objectPath(digest);
      if (await exists(obj)) continue;
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
  }

  /** Keeps a folder's file list by digest (outputs, and inputs so status can name changed files). */
  async saveManifest(d: PathDigest): Promise<void> {
    if (d.kind !== 'dir' || !d.manifest) return;
    const p = join(this.root, 'manifests', `${d.digest}.json`);
    if (!(await exists(p))) await writeFileAtomic(p, JSON.stringify(d.manifest));
  }

  async readManifest(digest: string): Promise<FileEntry[] | undefined> {
    return readJsonIfExists<FileEntry[]>(join(this.root, 'manifests', `${digest}.json`));
  }

  /** The path downstream stages read an output from, rebuilt from objects if the view is gone. */
  async ensureView(record: CachedRun, output: string): Promise<string> {
    const p = this.viewPath(record.key, output);
    if (await exists(p)) return p;
    const out = record.outputs[output];
    if (!out) throw new Error(`run ${record.key} has no output '${output}'`);
    const tmp = join(this.tmpDir, tempName('view'));
    await this.materializeInto(out, tmp);
    await mkdir(dirname(p), { recursive: true });
    await rename(tmp, p).catch(async (e) => {
      await rm(tmp, { recursive: true, force: true });
      if (!(await exists(p))) throw e;
    });
    return p;
  }

  /**
   * True when every object of a run's outputs is in the store, untouched. Objects are hardlinked
   * into the workspace and into stages' input views; a write through such a link (root ignores the
   * read-only mode) shows as an mtime after the run was committed. Such an object is deleted, so
   * the stage reruns and stores a clean copy.
   */
  async hasOutputs(rec: CachedRun): Promise<boolean> {
    for (const out of Object.values(rec.outputs)) {
      const files = out.kind === 'file' ? [out.digest] : (await this.readManifest(out.digest))?.map((f) => f.digest);
      if (!files) return false;
      for (const d of files) {
        const st = statSync(this.objectPath(d), { throwIfNoEntry: false }); // sync: many tiny calls
        if (!st) return false;
        if (st.mtimeMs > rec.committedAt) {
          await unlink(this.objectPath(d)).catch(() => undefined);
          return false;
        }
      }
    }
    return true;
  }

  /** Writes an output at `dest` (which must not exist) as hardlinks of its objects. */
  async materializeInto(out: OutputDigest, dest: string): Promise<void> {
    if (out.kind === 'file') {
      await linkOrCopy(this.objectPath(out.digest), dest);
      return;
    }
    const manifest = await this.readManifest(out.digest);
    if (!manifest) throw new Error(`the cache lost the file list of output ${out.digest}; run \`pipeline run --force\` on the stage`);
    await mkdir(dest, { recursive: true });
    for (const f of manifest) await linkOrCopy(this.objectPath(f.digest), join(dest, f.path));
  }

  /**
   * Makes a workspace path hold an output: built beside it, then swapped in by rename, so the path
   * is never seen half-written.
   */
  async publish(out: OutputDigest, dest: string): Promise<void> {
    const tmp = join(dirname(dest), `.${basename(dest)}.${tempName('new')}`);
    await mkdir(dirname(dest), { recursive: true });
    await this.materializeInto(out, tmp);
    if (out.kind === 'dir' && (await exists(dest))) {
      const old = join(dirname(dest), `.${basename(dest)}.${tempName('old')}`);
      await rename(dest, old);
      await rename(tmp, dest);
      await rm(old, { recursive: true, force: true });
    } else {
      if (out.kind === 'file' && (await stat(dest).catch(() => undefined))?.isDirectory()) await rm(dest, { recursive: true });
      await rename(tmp, dest);
    }
    await fsyncDir(dirname(dest));
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

  async runKeys(): Promise<string[]> {
    return (await readdirIfExists(join(this.root, 'runs'))).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));
  }

  /** Deletes a run record first (so nothing claims it), then its view and log. */
  async deleteRun(key: string): Promise<void> {
    await unlink(this.runPath(key)).catch(() => undefined);
    await rm(this.viewPath(key), { recursive: true, force: true });
    await rm(this.logPath(key), { force: true });
  }

  /** Object digests an output uses. */
  async outputObjects(out: OutputDigest): Promise<string[]> {
    if (out.kind === 'file') return [out.digest];
    return ((await this.readManifest(out.digest)) ?? []).map((f) => f.digest);
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

async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return [];
    throw e;
  }
}

