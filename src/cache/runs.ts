// The run index: one sealed record per completed stage run (runs/<key>.json) and its log
// (logs/<key>.log); for each workspace and spec, the latest run of each stage (latest/<ws>/<spec>.json,
// what `status` compares against and `gc` keeps); the workspaces that use the cache
// (workspaces/<ws>.json, a cache may be shared); and what the engine published into each workspace.
import { rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { withFileLock } from './lock.ts';
import { hashBytes } from './hash.ts';
import { isRecord } from '../records.ts';
import { isCachedRun, workspaceId, type CachedRun, type LatestPointer, type RunRecord, type WorkspaceEntry } from './entries.ts';
import { CORRUPT, readdirIfExists, readSealed, writeFileAtomic, writeSealed } from '../fsutil.ts';

export class RunIndex {
  /** `corrupt`: drops a damaged file and says so (the store's one way of doing it). */
  constructor(
    readonly root: string,
    private readonly corrupt: (path: string, what: string) => Promise<void>,
  ) {}

  runPath(key: string): string {
    return join(this.root, 'runs', `${key}.json`);
  }

  logPath(key: string): string {
    return join(this.root, 'logs', `${key}.log`);
  }

  /** A completed run's record; a corrupt one is deleted (the stage reruns) and reported once. */
  async readRun(key: string): Promise<RunRecord | undefined> {
    const rec = await readSealed<RunRecord>(this.runPath(key));
    if (rec === undefined) return undefined;
    if (rec !== CORRUPT && isCachedRun(rec) && rec.key === key && isRecord(rec.fingerprint)) return rec;
    await this.corrupt(this.runPath(key), 'run record');
    return undefined;
  }

  /** Files a run record fetched from elsewhere (sealed bytes, checked by the caller): last, after its objects. */
  async installRun(key: string, sealed: Uint8Array): Promise<void> {
    await writeFileAtomic(this.runPath(key), sealed);
  }

  async runKeys(): Promise<string[]> {
    return (await readdirIfExists(join(this.root, 'runs'))).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));
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
      await this.corrupt(path, 'latest-run index');
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
        await this.corrupt(join(dir, f), 'workspace record');
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
    await this.corrupt(path, 'published-outputs index');
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

  private async publishedPath(workspace: string): Promise<string> {
    return join(this.root, 'published', `${await hashBytes(workspace)}.json`);
  }

  /** Deletes a run record (gc: first, so nothing claims the run while its view and log go). */
  async deleteRecord(key: string): Promise<void> {
    await unlink(this.runPath(key)).catch(() => undefined);
  }
}
