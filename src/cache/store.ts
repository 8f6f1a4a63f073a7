// The cache folder: content-addressed objects, one run record per stage key, and the latest run
// of each stage of each spec (what `status` compares against and what `gc` keeps).
//
//   objects/ab/<digest>        every output file, read-only, stored once by content
//   runs/<key>.json            a completed stage run: its fingerprint and output digests
//   views/<key>/<d>/<output>   outputs as the stage wrote them (hardlinks of objects), read by downstream
//                              stages; <d> starts the output's digest, so a forced rerun never replaces a view in use
//   manifests/<digest>.json    a folder output's file list
//   latest/<ws>/<spec>.json    stage -> key of its latest run, for each workspace and spec
//   workspaces/<ws>.json       each workspace that ran with this cache (a cache may be shared)
//   logs/<key>.log             the log of the run that produced a record
//   tmp/                       private folders of stages in flight (stale ones are removed on the next run)
//   checkpoints/<key>/         a stage's checkpoints, kept until that key succeeds (resume after a kill)
//   names/<name>.json          runs kept under a name of the user's, past gc (names.ts)
//
// A run record is written last, after its outputs are in place: a record exists only for a run
// that completed, so a crash at any point leaves nothing that claims to be complete.
//
// Every object carries one fixed mtime (OBJECT_MTIME_MS), set when it is stored. A write through
// any hardlink of it (root ignores the read-only mode) moves that mtime, so a cache hit checks, by
// stat alone, that each object is a regular file of the recorded size with the stamp; `verify`
// rehashes contents for the rest. Engine state read back (records, manifests, indexes) is checked
// for shape and, for manifests, against their own digest: anything corrupt is dropped and rebuilt.
import { createHash } from 'node:crypto';
import { chmod, copyFile, constants, mkdir, open, readdir, rename, rm, stat, unlink, link, utimes } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { lstatSync, readFileSync } from 'node:fs';
import { dirDigest, digestFresh, type FileEntry, type PathDigest } from './digests.ts';
import type { Fingerprint } from './fingerprint.ts';
import { killRecorded } from '../executors/groups.ts';
import { lockDir, sessionId, sessionLive, withFileLock, type HeldLock, type Owner } from './lock.ts';
import { hashBytes, hashFile } from './hash.ts';
import { isRecord } from '../records.ts';
import type { Provenance } from '../provenance.ts';
import { CORRUPT, sayDropped, exists, fsyncDir, isErrno, linkOrCopy, listFiles, readSealed, tempName, unstorableEntry, writeFileAtomic, writeSealed } from '../fsutil.ts';

/** The mtime every stored object has (2001-09-09): any other mtime means it was written since. */
export const OBJECT_MTIME_MS = 1_000_000_000_000;
const OBJECT_MTIME = new Date(OBJECT_MTIME_MS);


function isOutputDigest(v: unknown): v is OutputDigest {
  return isRecord(v) && (v.kind === 'file' || v.kind === 'dir') && typeof v.digest === 'string' && /^[0-9a-f]{32}$/.test(v.digest) && typeof v.size === 'number' && typeof v.files === 'number';
}

/** A run record or latest pointer as read from disk: the fields the engine relies on, well formed. */
function isCachedRun(v: unknown): v is CachedRun {
  return isRecord(v) && typeof v.key === 'string' && /^[0-9a-f]{32}$/.test(v.key) && typeof v.committedAt === 'number' && isRecord(v.outputs) && Object.values(v.outputs).every(isOutputDigest);
}

/** A run record fetched from elsewhere (a remote cache): well formed and filed under its own key. */
export function isRunRecordFor(v: unknown, key: string): v is RunRecord {
  return isCachedRun(v) && v.key === key && isRecord((v as Record<string, unknown>).fingerprint) && typeof (v as Record<string, unknown>).stage === 'string' && typeof (v as Record<string, unknown>).spec === 'string';
}

export function isManifest(v: unknown): v is FileEntry[] {
  return Array.isArray(v) && v.every((f) => isRecord(f) && typeof f.path === 'string' && typeof f.size === 'number' && typeof f.digest === 'string');
}

/** What is wrong with one object, or undefined when it looks intact (stat only). */
function objectProblem(path: string, size: number): string | undefined {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) return 'missing';
  if (!st.isFile()) return 'not a regular file';
  if (st.size !== size) return `size ${st.size}, recorded ${size}`;
  if (st.mtimeMs !== OBJECT_MTIME_MS) return 'modified after it was stored';
  return undefined;
}

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
  /** The `--set` values, git commit and name it ran with (records from before 2026-12 have none). */
  provenance?: Provenance;
}

/** What downstream stages and the cache check need of a run: kept in the latest index too. */
export type CachedRun = Pick<RunRecord, 'key' | 'outputs' | 'committedAt'>;

export interface LatestPointer extends CachedRun {
  at: string;
}

/** A workspace that runs with this cache: where it is, when it last ran, since when it is gone. */
export interface WorkspaceEntry {
  workspace: string;
  lastRun: string;
  /** Set by gc when the folder is found missing (cleared if it comes back). */
  goneSince?: string;
}

/** A short, stable name for a workspace folder in cache paths: several workspaces may share a cache. */
export function workspaceId(workspace: string): string {
  return createHash('sha256').update(workspace).digest('hex').slice(0, 16);
}

export class Store {
  constructor(readonly root: string) {}

  /** This process's temp folder: runs sharing the cache clear only the folders of runs that died. */
  get tmpDir(): string {
    return join(this.root, 'tmp', sessionId());
  }

  runPath(key: string): string {
    return join(this.root, 'runs', `${key}.json`);
  }

  /** Every view of a run's outputs (views/<key>/). */
  viewFolder(key: string): string {
    return join(this.root, 'views', key);
  }

  /**
   * Where downstream stages read a run's output: views/<key>/<digest>/<output>. Named by content
   * too, so a forced rerun that writes other bytes under the same key makes a view of its own,
   * and one that writes the same bytes finds its view there: a view another run is reading is
   * never replaced under it (gc removes those no record uses).
   */
  viewPath(record: Pick<CachedRun, 'key' | 'outputs'>, output: string): string {
    const digest = record.outputs[output]?.digest ?? 'none';
    return join(this.root, 'views', record.key, digest.slice(0, 16), output);
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

  /** A completed run's record; a corrupt one is deleted (the stage reruns) and reported once. */
  async readRun(key: string): Promise<RunRecord | undefined> {
    const rec = await readSealed<RunRecord>(this.runPath(key));
    if (rec === undefined) return undefined;
    if (rec !== CORRUPT && isCachedRun(rec) && rec.key === key && isRecord(rec.fingerprint)) return rec;
    await this.dropCorrupt(this.runPath(key), 'run record');
    return undefined;
  }

  /** Called each time corrupt engine state is dropped (default: one line on stderr). */
  onCorrupt: (what: string, path: string) => void = (what, path) => sayDropped(what, path);

  private async dropCorrupt(path: string, what: string): Promise<void> {
    await rm(path, { recursive: true, force: true });
    this.onCorrupt(`a corrupt ${what}`, path);
  }

  /** The latest-run index of one spec in one workspace (a shared cache holds many workspaces). */
  latestPath(workspace: string, spec: string): string {
    return join(this.root, 'latest', workspaceId(workspace), `${encodeURIComponent(spec)}.json`);
  }

  /**
   * Stage id -> its latest run, for one spec of one workspace: one small file per spec, read once
   * per command, so a no-op rerun need not open one record per stage.
   */
  async readLatest(workspace: string, spec: string): Promise<Map<string, LatestPointer>> {
    return new Map(Object.entries(await this.readLatestIndex(this.latestPath(workspace, spec))));
  }

  /** A latest index with its malformed entries left out (and the file dropped if it is not an index). */
  private async readLatestIndex(path: string): Promise<Record<string, LatestPointer>> {
    const index = await readSealed<unknown>(path);
    if (index === undefined) return {};
    if (index === CORRUPT || !isRecord(index)) {
      await this.dropCorrupt(path, 'latest-run index');
      return {};
    }
    return Object.fromEntries(Object.entries(index).filter(([, v]) => isCachedRun(v))) as Record<string, LatestPointer>;
  }

  /** Updates the stages a run settled (under the index's lock: runs of other stages may update it too). */
  async writeLatest(workspace: string, spec: string, latest: Map<string, CachedRun>): Promise<void> {
    const path = this.latestPath(workspace, spec);
    await withFileLock(path, async () => {
      const cur = await this.readLatestIndex(path);
      let changed = false;
      const at = new Date().toISOString();
      for (const [stage, run] of latest) {
        if (cur[stage]?.key === run.key && cur[stage]?.committedAt === run.committedAt) continue;
        cur[stage] = { key: run.key, outputs: run.outputs, committedAt: run.committedAt, at };
        changed = true;
      }
      if (changed) await writeSealed(path, cur);
    });
  }

  private workspacePath(workspace: string): string {
    return join(this.root, 'workspaces', `${workspaceId(workspace)}.json`);
  }

  /** Records that a workspace runs with this cache (gc keeps what its latest runs use). */
  async registerWorkspace(workspace: string): Promise<void> {
    await writeSealed(this.workspacePath(workspace), { workspace, lastRun: new Date().toISOString() } satisfies WorkspaceEntry);
  }

  /** Every registered workspace, by id. */
  async workspaces(): Promise<Map<string, WorkspaceEntry>> {
    const out = new Map<string, WorkspaceEntry>();
    const dir = join(this.root, 'workspaces');
    for (const f of await readdirIfExists(dir)) {
      if (!f.endsWith('.json')) continue;
      const v = await readSealed<WorkspaceEntry>(join(dir, f));
      if (v === undefined) continue;
      if (v === CORRUPT || !isRecord(v) || typeof v.workspace !== 'string' || workspaceId(v.workspace) !== f.slice(0, -5)) {
        await this.dropCorrupt(join(dir, f), 'workspace record');
        continue;
      }
      out.set(f.slice(0, -5), v);
    }
    return out;
  }

  /** Marks a workspace gone (first time seen missing), or back. */
  async updateWorkspace(entry: WorkspaceEntry): Promise<void> {
    await writeSealed(this.workspacePath(entry.workspace), entry);
  }

  /** Forgets a workspace: its latest-run indexes and its record (gc, once it has been gone a while). */
  async forgetWorkspace(id: string): Promise<void> {
    await rm(join(this.root, 'latest', id), { recursive: true, force: true });
    await rm(join(this.root, 'workspaces', `${id}.json`), { force: true });
  }

  /**
   * What this engine published into a workspace: workspace path -> digest of what it put there.
   * Tells an outs path the engine wrote (replaceable) from a user's own file (left alone unless the
   * spec allows overwriting), and a user's edit of a published output (kept aside when replaced).
   */
  async readPublished(workspace: string): Promise<Record<string, string>> {
    const path = await this.publishedPath(workspace);
    const v = await readSealed<unknown>(path);
    if (v === undefined) return {};
    if (v !== CORRUPT && isRecord(v) && v.workspace === workspace && isRecord(v.paths) && Object.values(v.paths).every((d) => typeof d === 'string')) return v.paths as Record<string, string>;
    await this.dropCorrupt(path, 'published-outputs index');
    return {};
  }

  /** Records what a run put in the workspace, merged into what other runs recorded meanwhile. */
  async writePublished(workspace: string, changes: Record<string, string>): Promise<void> {
    if (!Object.keys(changes).length) return;
    const path = await this.publishedPath(workspace);
    await withFileLock(path, async () => {
      await writeSealed(path, { workspace, paths: { ...(await this.readPublished(workspace)), ...changes } });
    });
  }

  /** Holds a stage key while this process computes it: another process computing the same key waits. */
  async lockKey(key: string, onWait: (owner: Owner) => void, signal: AbortSignal): Promise<HeldLock> {
    await mkdir(join(this.root, 'keys'), { recursive: true });
    return lockDir(join(this.root, 'keys', key), `computing ${key}`, { onWait, signal });
  }

  private async publishedPath(workspace: string): Promise<string> {
    return join(this.root, 'published', `${await hashBytes(workspace)}.json`);
  }

  /**
   * Every latest pointer, by index (`<workspace id>/<spec>`): what gc keeps. Indexes an older
   * engine wrote per spec only (`latest/<spec>.json`) are kept too: whose they are is not known.
   */
  async allLatest(): Promise<Map<string, Map<string, LatestPointer>>> {
    const out = new Map<string, Map<string, LatestPointer>>();
    const root = join(this.root, 'latest');
    for (const f of await readdirIfExists(root)) {
      const p = join(root, f);
      if (f.endsWith('.json')) {
        out.set(decodeURIComponent(f.slice(0, -5)), new Map(Object.entries(await this.readLatestIndex(p))));
        continue;
      }
      for (const g of await readdirIfExists(p)) {
        if (g.endsWith('.json')) out.set(`${f}/${decodeURIComponent(g.slice(0, -5))}`, new Map(Object.entries(await this.readLatestIndex(join(p, g)))));
      }
    }
    return out;
  }

  /** A fresh private folder for a stage run (under tmp/, so the same filesystem as the store). */
  async makeTemp(label: string): Promise<string> {
    const dir = join(this.tmpDir, tempName(label.replace(/[^\w.-]+/g, '_').slice(0, 60)));
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /** At the end of a run: this process's temp folder goes (each stage already removed its own). */
  async dropOwnTemp(): Promise<void> {
    await rm(this.tmpDir, { recursive: true, force: true });
  }

  /**
   * Removes the temp folders of runs that died (no live lease), first ending any stage process
   * group such a run left recorded there (see executors/process.ts); this process's own too (a
   * run before this one in the same process). Other live runs' folders are left alone.
   */
  async clearTemp(): Promise<string[]> {
    const said: string[] = [];
    const root = join(this.root, 'tmp');
    for (const session of await readdirIfExists(root)) {
      if (session !== sessionId() && (await sessionLive(this.root, session))) continue;
      // `<session>/<stage folder>/pgid`; a folder left by an engine before sessions holds `pgid` itself.
      for (const d of ['.', ...(await readdirIfExists(join(root, session)))]) {
        const pgid = await killRecorded(join(root, session, d, 'pgid'));
        if (pgid !== undefined) said.push(`stopped process group ${pgid}, left running by a run that died (${d === '.' ? session : d})`);
      }
      await rm(join(root, session), { recursive: true, force: true });
    }
    return said;
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
      const why = await unstorableEntry(p);
      if (why) throw new Error(`output '${name}' cannot be stored: ${why.replace(`${outDir}/`, '')}`);
      const d = await digestFresh(p);
      digests[name] = { kind: d.kind as 'file' | 'dir', digest: d.digest, size: d.size, files: d.files };
      await this.ingest(p, d);
    }
    const stored = { key: base.key, outputs: digests, committedAt: 0 };
    for (const name of outputs) {
      const view = this.viewPath(stored, name);
      if (await exists(view)) {
        if (!(await this.viewProblems(stored, name)).length) continue; // the same bytes, maybe being read: kept
        await rm(view, { recursive: true, force: true }); // damaged: replaced
      }
      await mkdir(dirname(view), { recursive: true });
      await rename(join(outDir, name), view).catch(async (e: unknown) => {
        if (!(await exists(view)) || (await this.viewProblems(stored, name)).length) throw e; // another process put the same view in
      });
    }
    await rm(outDir, { recursive: true, force: true }); // what is left: outputs whose view was there already
    if (logFile) {
      await mkdir(join(this.root, 'logs'), { recursive: true });
      await rename(logFile, this.logPath(base.key)).catch(() => undefined);
    }
    const record: RunRecord = { ...base, outputs: digests, committedAt: Date.now() };
    await writeSealed(this.runPath(base.key), record);
    return record;
  }

  /**
   * Stores each file of an output as a read-only object (a hardlink: no copy of the bytes), stamped
   * with OBJECT_MTIME. An object already stored under the same digest is replaced by these fresh,
   * just-hashed bytes (unless it is this very file): a damaged copy that passed the stat checks
   * never outlives a rerun of a stage that produces it.
   */
  private async ingest(path: string, d: PathDigest): Promise<void> {
    const files: Array<[string, string, number]> = d.kind === 'file' ? [[path, d.digest, d.size]] : d.manifest!.map((f) => [join(path, f.path), f.digest, f.size]);
    for (const [file, digest, size] of files) {
      await chmod(file, 0o444);
      await utimes(file, OBJECT_MTIME, OBJECT_MTIME);
      const obj = this.objectPath(digest);
      const had = lstatSync(obj, { throwIfNoEntry: false });
      if (had) {
        if (had.ino === lstatSync(file).ino && !objectProblem(obj, size)) continue;
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
    await this.dropCorrupt(path, 'folder manifest');
    return undefined;
  }

  /** Every file of an output: [path inside the output ('' for a file output), object digest, size]. */
  private async outputFiles(out: OutputDigest): Promise<Array<[string, string, number]> | undefined> {
    if (out.kind === 'file') return [['', out.digest, out.size]];
    const m = await this.readManifest(out.digest);
    if (!m || m.length !== out.files) return undefined;
    return m.map((f) => [f.path, f.digest, f.size]);
  }

  /** The path downstream stages read an output from, rebuilt from objects if the view is gone. */
  async ensureView(record: CachedRun, output: string): Promise<string> {
    const p = this.viewPath(record, output);
    const out = record.outputs[output];
    if (!out) throw new Error(`run ${record.key} has no output '${output}'`);
    if (await exists(p)) {
      if (!(await this.viewProblems(record, output)).length) return p;
      await rm(p, { recursive: true, force: true }); // damaged or changed: rebuilt from the objects
    }
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
  async hasOutputs(rec: CachedRun, verifyContent = false): Promise<boolean> {
    for (const out of Object.values(rec.outputs)) {
      const files = await this.outputFiles(out);
      if (!files) return false;
      for (const [, d, size] of files) {
        const obj = this.objectPath(d);
        const problem = objectProblem(obj, size) ?? (verifyContent ? await this.contentProblem(obj, d) : undefined);
        if (problem) {
          if (problem !== 'missing') await this.dropCorrupt(obj, `object (${problem})`);
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

  /**
   * How a view of an output differs from what the run stored: files added, missing, or changed
   * (by stat: kind, size, the objects' mtime stamp). Empty when it is intact.
   */
  async viewProblems(record: CachedRun, output: string): Promise<string[]> {
    const out = record.outputs[output];
    const p = this.viewPath(record, output);
    const files = out && (await this.outputFiles(out));
    if (!files) return [`${output}: the cache lost its file list`];
    const problems: string[] = [];
    if (out.kind === 'file') {
      const why = objectProblem(p, out.size);
      return why ? [`${output}: ${why}`] : [];
    }
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (!st?.isDirectory()) return [`${output}: ${st ? 'not a folder' : 'missing'}`];
    const want = new Map(files.map(([f, , size]) => [f, size]));
    for (const f of await listFiles(p, undefined, { followLinks: false })) {
      const size = want.get(f);
      if (size === undefined) problems.push(`${output}/${f}: added`);
      else {
        const why = objectProblem(join(p, f), size);
        if (why) problems.push(`${output}/${f}: ${why}`);
        want.delete(f);
      }
    }
    for (const f of want.keys()) problems.push(`${output}/${f}: removed`);
    return problems;
  }

  /**
   * After a stage ran: if it wrote into an output of another stage it read, that view and every
   * object it changed are dropped (their producer reruns), and the changes are returned.
   */
  async dropWrittenView(record: CachedRun, output: string): Promise<string[]> {
    const problems = await this.viewProblems(record, output);
    if (!problems.length) return [];
    const out = record.outputs[output]!;
    for (const [, d, size] of (await this.outputFiles(out)) ?? []) {
      const obj = this.objectPath(d);
      const why = objectProblem(obj, size);
      if (why && why !== 'missing') await rm(obj, { recursive: true, force: true });
    }
    await rm(this.viewPath(record, output), { recursive: true, force: true });
    return problems;
  }

  /**
   * Writes an output at `dest` (which must not exist): as hardlinks of its objects (views in the
   * cache), or as copies (`copy`: workspace outputs, so an edit there never reaches the cache;
   * a reflink where the filesystem has them, so no bytes are copied).
   */
  async materializeInto(out: OutputDigest, dest: string, copy = false): Promise<void> {
    const files = await this.outputFiles(out);
    if (!files) throw new Error(`the cache lost the file list of output ${out.digest}; run \`pipeline run --force\` on the stage`);
    if (out.kind === 'dir') await mkdir(dest, { recursive: true });
    for (const [rel, d] of files) {
      const target = rel ? join(dest, rel) : dest;
      if (!copy) await linkOrCopy(this.objectPath(d), target);
      else {
        await mkdir(dirname(target), { recursive: true });
        await copyFile(this.objectPath(d), target, constants.COPYFILE_FICLONE);
        await chmod(target, 0o644);
      }
    }
  }

  /**
   * Makes a workspace path hold an output (a copy, see materializeInto): built beside it, then
   * swapped in by rename, so the path is never seen half-written.
   */
  async publish(out: OutputDigest, dest: string): Promise<void> {
    const tmp = join(dirname(dest), `.${basename(dest)}.${tempName('new')}`);
    await mkdir(dirname(dest), { recursive: true });
    // What a run killed half-way through a publish left beside it (runs hold the lock: none is live).
    for (const f of await readdirIfExists(dirname(dest))) {
      if (f.startsWith(`.${basename(dest)}.new-`) || f.startsWith(`.${basename(dest)}.old-`)) await rm(join(dirname(dest), f), { recursive: true, force: true });
    }
    await this.materializeInto(out, tmp, true);
    if (out.kind === 'dir' && (await exists(dest))) {
      const old = join(dirname(dest), `.${basename(dest)}.${tempName('old')}`);
      await rename(dest, old);
      // If the new folder cannot go in, the old one goes back: the path is never left empty.
      await rename(tmp, dest).catch(async (e: unknown) => {
        await rename(old, dest);
        throw e;
      });
      await rm(old, { recursive: true, force: true });
    } else {
      if (out.kind === 'file' && (await stat(dest).catch(() => undefined))?.isDirectory()) await rm(dest, { recursive: true });
      await rename(tmp, dest);
    }
    await fsyncDir(dirname(dest));
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

  /** Files a run record fetched from elsewhere (sealed bytes, checked by the caller): last, after its objects. */
  async installRun(key: string, sealed: Uint8Array): Promise<void> {
    await writeFileAtomic(this.runPath(key), sealed);
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

  /**
   * gc, under the cache lock: views of a kept run that its record no longer names (the bytes of a
   * forced rerun before this one). Returns how many were removed.
   */
  async pruneViews(record: CachedRun): Promise<number> {
    const keep = new Set(Object.values(record.outputs).map((o) => o.digest.slice(0, 16)));
    let n = 0;
    for (const d of await readdirIfExists(this.viewFolder(record.key))) {
      if (keep.has(d)) continue;
      await rm(join(this.viewFolder(record.key), d), { recursive: true, force: true });
      n++;
    }
    return n;
  }

  /** Deletes a run record first (so nothing claims it), then its view and log. */
  async deleteRun(key: string): Promise<void> {
    await unlink(this.runPath(key)).catch(() => undefined);
    await rm(this.viewFolder(key), { recursive: true, force: true });
    await rm(this.logPath(key), { force: true });
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
    // Views are hardlinks that may hold an inode an object no longer is: rebuilt from the checked objects.
    await rm(join(this.root, 'views'), { recursive: true, force: true });
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

async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR')) return [];
    throw e;
  }
}

