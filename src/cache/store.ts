// The cache folder: content-addressed objects, one run record per stage key, and the latest run
// of each stage of each spec (what `status` compares against and what `gc` keeps). Store is the
// one door to it: the layout below, a stage run's commit (objects, then views, then the record),
// temp folders and key locks here; the rest in one module a job (objects.ts, views.ts, runs.ts),
// which Store composes and answers for.
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
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { digestFresh } from './digests.ts';
import { killRecorded } from '../executors/groups.ts';
import { lockDir, sessionId, sessionLive, type HeldLock, type Owner } from './lock.ts';
import type { FileEntry, PathDigest } from './digests.ts';
import { ObjectStore } from './objects.ts';
import { RunIndex } from './runs.ts';
import { Views } from './views.ts';
import type { CachedRun, LatestPointer, OutputDigest, RunRecord, WorkspaceEntry } from './entries.ts';
import { sayDropped, exists, readdirIfExists, tempName, unstorableEntry, writeSealed } from '../fsutil.ts';

export { OBJECT_MTIME_MS } from './objects.ts';
export { isCachedRun, isManifest, isRunRecordFor, manifestProblem, workspaceId } from './entries.ts';
export type { CachedRun, LatestPointer, OutputDigest, RunRecord, WorkspaceEntry } from './entries.ts';

export class Store {
  readonly objects: ObjectStore;
  readonly views: Views;
  readonly runs: RunIndex;

  constructor(readonly root: string) {
    const corrupt = (path: string, what: string) => this.dropCorrupt(path, what);
    this.objects = new ObjectStore(root, corrupt);
    this.views = new Views(root, this.objects, () => this.tmpDir);
    this.runs = new RunIndex(root, corrupt);
  }

  /** This process's temp folder: runs sharing the cache clear only the folders of runs that died. */
  get tmpDir(): string {
    return join(this.root, 'tmp', sessionId());
  }

  /** Checkpoints of a stage run in progress, kept across failed attempts of the same key. */
  checkpointPath(key: string): string {
    return join(this.root, 'checkpoints', key);
  }

  /** Called each time corrupt engine state is dropped (default: one line on stderr). */
  onCorrupt: (what: string, path: string) => void = (what, path) => sayDropped(what, path);

  private async dropCorrupt(path: string, what: string): Promise<void> {
    await rm(path, { recursive: true, force: true });
    this.onCorrupt(`a corrupt ${what}`, path);
  }

  /** Holds a stage key while this process computes it: another process computing the same key waits. */
  async lockKey(key: string, onWait: (owner: Owner) => void, signal: AbortSignal): Promise<HeldLock> {
    await mkdir(join(this.root, 'keys'), { recursive: true });
    return lockDir(join(this.root, 'keys', key), `computing ${key}`, { onWait, signal });
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
      // An output holding a file linked from elsewhere was stored as a copy: its view is built from the objects.
      if (await this.objects.ingest(p, d)) await rm(p, { recursive: true, force: true });
    }
    const stored = { key: base.key, outputs: digests, committedAt: 0 };
    for (const name of outputs) {
      if (!(await exists(join(outDir, name)))) {
        await this.views.ensureView(stored, name);
        continue;
      }
      const view = this.views.viewPath(stored, name);
      if (await exists(view)) {
        if (!(await this.views.viewProblems(stored, name)).length) continue; // the same bytes, maybe being read: kept
        await rm(view, { recursive: true, force: true }); // damaged: replaced
      }
      await mkdir(dirname(view), { recursive: true });
      await rename(join(outDir, name), view).catch(async (e: unknown) => {
        if (!(await exists(view)) || (await this.views.viewProblems(stored, name)).length) throw e; // another process put the same view in
      });
    }
    await rm(outDir, { recursive: true, force: true }); // what is left: outputs whose view was there already
    if (logFile) {
      await mkdir(join(this.root, 'logs'), { recursive: true });
      await rename(logFile, this.runs.logPath(base.key)).catch(() => undefined);
    }
    const record: RunRecord = { ...base, outputs: digests, committedAt: Date.now() };
    await writeSealed(this.runs.runPath(base.key), record);
    return record;
  }

  /** Deletes a run record first (so nothing claims it), then its views and log. */
  async deleteRun(key: string): Promise<void> {
    await this.runs.deleteRecord(key);
    await rm(this.views.viewFolder(key), { recursive: true, force: true });
    await rm(this.runs.logPath(key), { force: true });
  }

  /**
   * `pipeline verify`: rehashes every stored object; one whose content does not match its name is
   * removed (every run using it then reruns). Views are hardlinks that may hold an inode an object
   * no longer is: they go too, rebuilt from the checked objects on use.
   */
  async verifyObjects(onProgress?: (done: number, total: number) => void): Promise<{ checked: number; corrupt: string[] }> {
    const result = await this.objects.verifyObjects(onProgress);
    await rm(join(this.root, 'views'), { recursive: true, force: true });
    return result;
  }

  // Objects and manifests (objects.ts).
  objectPath(digest: string): string {
    return this.objects.objectPath(digest);
  }

  saveManifest(d: PathDigest): Promise<void> {
    return this.objects.saveManifest(d);
  }

  manifestPath(digest: string): string {
    return this.objects.manifestPath(digest);
  }

  readManifest(digest: string): Promise<FileEntry[] | undefined> {
    return this.objects.readManifest(digest);
  }

  hasOutputs(rec: CachedRun, verifyContent = false): Promise<boolean> {
    return this.objects.hasOutputs(rec, verifyContent);
  }

  objectIntact(digest: string, size: number): boolean {
    return this.objects.objectIntact(digest, size);
  }

  installObject(file: string, digest: string): Promise<void> {
    return this.objects.installObject(file, digest);
  }

  installObjectBytes(bytes: Uint8Array, digest: string): Promise<void> {
    return this.objects.installObjectBytes(bytes, digest);
  }

  installManifest(digest: string, entries: FileEntry[]): Promise<void> {
    return this.objects.installManifest(digest, entries);
  }

  objectDigests(): Promise<Map<string, { path: string; size: number; mtimeMs: number }>> {
    return this.objects.objectDigests();
  }

  objectIn(out: OutputDigest, inside: string): Promise<string | undefined> {
    return this.objects.objectIn(out, inside);
  }

  outputObjects(out: OutputDigest): Promise<string[]> {
    return this.objects.outputObjects(out);
  }

  outputObjectSizes(out: OutputDigest): Promise<Array<[string, number]>> {
    return this.objects.outputObjectSizes(out);
  }

  deleteManifestsExcept(keep: Set<string>): Promise<number> {
    return this.objects.deleteManifestsExcept(keep);
  }

  // Views and published copies (views.ts).
  viewFolder(key: string): string {
    return this.views.viewFolder(key);
  }

  viewPath(record: Pick<CachedRun, 'key' | 'outputs'>, output: string): string {
    return this.views.viewPath(record, output);
  }

  ensureView(record: CachedRun, output: string): Promise<string> {
    return this.views.ensureView(record, output);
  }

  viewProblems(record: CachedRun, output: string): Promise<string[]> {
    return this.views.viewProblems(record, output);
  }

  dropWrittenView(record: CachedRun, output: string): Promise<string[]> {
    return this.views.dropWrittenView(record, output);
  }

  materializeInto(out: OutputDigest, dest: string, copy = false): Promise<void> {
    return this.views.materializeInto(out, dest, copy);
  }

  publish(out: OutputDigest, dest: string): Promise<void> {
    return this.views.publish(out, dest);
  }

  pruneViews(record: CachedRun): Promise<number> {
    return this.views.pruneViews(record);
  }

  // Run records, latest runs, workspaces, published paths (runs.ts).
  runPath(key: string): string {
    return this.runs.runPath(key);
  }

  logPath(key: string): string {
    return this.runs.logPath(key);
  }

  readRun(key: string): Promise<RunRecord | undefined> {
    return this.runs.readRun(key);
  }

  installRun(key: string, sealed: Uint8Array): Promise<void> {
    return this.runs.installRun(key, sealed);
  }

  runKeys(): Promise<string[]> {
    return this.runs.runKeys();
  }

  latestPath(workspace: string, spec: string): string {
    return this.runs.latestPath(workspace, spec);
  }

  readLatest(workspace: string, spec: string): Promise<Map<string, LatestPointer>> {
    return this.runs.readLatest(workspace, spec);
  }

  writeLatest(workspace: string, spec: string, latest: Map<string, CachedRun>): Promise<void> {
    return this.runs.writeLatest(workspace, spec, latest);
  }

  allLatest(): Promise<Map<string, Map<string, LatestPointer>>> {
    return this.runs.allLatest();
  }

  registerWorkspace(workspace: string): Promise<void> {
    return this.runs.registerWorkspace(workspace);
  }

  workspaces(): Promise<Map<string, WorkspaceEntry>> {
    return this.runs.workspaces();
  }

  updateWorkspace(entry: WorkspaceEntry): Promise<void> {
    return this.runs.updateWorkspace(entry);
  }

  forgetWorkspace(id: string): Promise<void> {
    return this.runs.forgetWorkspace(id);
  }

  readPublished(workspace: string): Promise<Record<string, string>> {
    return this.runs.readPublished(workspace);
  }

  writePublished(workspace: string, changes: Record<string, string>): Promise<void> {
    return this.runs.writePublished(workspace, changes);
  }
}
