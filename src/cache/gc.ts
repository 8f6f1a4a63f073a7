// `pipeline gc`: removes cache entries no latest run of any workspace using this cache needs. A
// cache may be shared by several workspaces (a team's, a cluster's): each registers when it runs,
// and gc keeps what each one's latest runs use; a workspace whose folder has been gone for
// `forgetAfterMs` is forgotten (saying so), and its runs become removable. With maxSize, every
// byte the cache holds counts (objects, checkpoints, compiled modules, logs, memos), and removable
// entries go oldest first only until the cache fits, keeping recent history for quick switch-backs.
import { SavedNames } from './names.ts';
import { existsSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunRecord, Store } from './store.ts';

export interface GcResult {
  runsRemoved: number;
  objectsRemoved: number;
  bytesFreed: number;
  bytesKept: number;
  /** Everything removed (or that a dry run would remove), with why. */
  removed: Array<{ what: string; bytes: number; why: string }>;
  /** What gc has to say about workspaces (gone, forgotten). */
  notes: string[];
}

export interface GcOptions {
  dryRun: boolean;
  maxSize?: number;
  /** How long a workspace folder may be missing before its runs stop being kept (default 14 days). */
  forgetAfterMs?: number;
}

export const FORGET_WORKSPACES_AFTER_MS = 14 * 24 * 3600 * 1000;

/** Bytes under a path (files only; hardlinked views count where they are). */
async function bytesUnder(path: string): Promise<number> {
  const st = await stat(path).catch(() => undefined);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  let n = 0;
  for (const e of await readdir(path)) n += await bytesUnder(join(path, e));
  return n;
}

/** Entries of a cache folder, oldest first: [path, mtimeMs]. */
async function entriesByAge(dir: string): Promise<Array<[string, number]>> {
  const out: Array<[string, number]> = [];
  for (const e of await readdir(dir).catch(() => [] as string[])) {
    const st = await stat(join(dir, e)).catch(() => undefined);
    if (st) out.push([join(dir, e), st.mtimeMs]);
  }
  return out.sort((a, b) => a[1] - b[1]);
}

/** Gone workspaces: marked when first seen missing, forgotten once missing for forgetAfterMs. */
async function reviewWorkspaces(store: Store, opts: GcOptions, notes: string[]): Promise<Set<string>> {
  const forgotten = new Set<string>();
  const now = Date.now();
  const after = opts.forgetAfterMs ?? FORGET_WORKSPACES_AFTER_MS;
  for (const [id, w] of await store.workspaces()) {
    if (existsSync(w.workspace)) {
      if (w.goneSince && !opts.dryRun) await store.updateWorkspace({ workspace: w.workspace, lastRun: w.lastRun });
      continue;
    }
    const since = w.goneSince ? Date.parse(w.goneSince) : now;
    if (!w.goneSince && !opts.dryRun) await store.updateWorkspace({ ...w, goneSince: new Date(now).toISOString() });
    if (now - since >= after) {
      forgotten.add(id);
      notes.push(`${opts.dryRun ? 'would forget' : 'forgot'} workspace ${w.workspace}: gone since ${new Date(since).toISOString()}; the runs only it used are no longer kept`);
      if (!opts.dryRun) await store.forgetWorkspace(id);
    } else {
      notes.push(`workspace ${w.workspace} is gone (since ${new Date(since).toISOString()}): its latest runs are kept until ${new Date(since + after).toISOString()}`);
    }
  }
  return forgotten;
}

export async function collectGarbage(store: Store, opts: GcOptions): Promise<GcResult> {
  const result: GcResult = { runsRemoved: 0, objectsRemoved: 0, bytesFreed: 0, bytesKept: 0, removed: [], notes: [] };
  const forgotten = await reviewWorkspaces(store, opts, result.notes);
  const keepRuns = new Set<string>();
  for (const [index, stages] of await store.allLatest()) {
    if (forgotten.has(index.split('/')[0]!)) continue; // (a dry run has not deleted them yet)
    for (const run of stages.values()) keepRuns.add(run.key);
  }
  // Named experiments are kept whatever their age or workspace.
  for (const e of await new SavedNames(store.root).all()) for (const key of Object.values(e.runs)) keepRuns.add(key);
  const runs = await store.runKeys();
  // Unused runs, oldest first: with maxSize they go one by one until the cache fits.
  const unused: Array<{ key: string; mtimeMs: number }> = [];
  for (const key of runs) {
    if (keepRuns.has(key)) continue;
    const st = await stat(store.runPath(key)).catch(() => undefined);
    unused.push({ key, mtimeMs: st?.mtimeMs ?? 0 });
  }
  unused.sort((a, b) => a.mtimeMs - b.mtimeMs);
  const objects = await store.objectDigests();
  // One read of each record: the objects its outputs use, and the manifests worth keeping with it
  // (its folder outputs, and its input folders, with which status names the files that changed).
  const objectsOf = async (key: string): Promise<{ objects: string[]; manifests: string[]; stage: string; rec?: RunRecord }> => {
    const rec = await store.readRun(key);
    if (!rec) return { objects: [], manifests: [], stage: '?' };
    const objs: string[] = [];
    const manifests: string[] = Object.values(rec.fingerprint.inputs);
    for (const out of Object.values(rec.outputs)) {
      objs.push(...(await store.outputObjects(out)));
      if (out.kind === 'dir') manifests.push(out.digest);
    }
    return { objects: objs, manifests, stage: `${rec.spec}: ${rec.stage}`, rec };
  };
  const refCount = new Map<string, number>();
  const perRun = new Map<string, { objects: string[]; manifests: string[]; stage: string; rec?: RunRecord }>();
  for (const key of runs) {
    const o = await objectsOf(key);
    perRun.set(key, o);
    for (const d of new Set(o.objects)) refCount.set(d, (refCount.get(d) ?? 0) + 1);
  }
  // Every byte the cache holds counts against maxSize; views are hardlinks of objects (no bytes).
  const checkpoints = await entriesByAge(join(store.root, 'checkpoints'));
  const modules = await entriesByAge(join(store.root, 'modules'));
  let other = 0;
  for (const d of ['checkpoints', 'modules', 'logs', 'specs', 'runs', 'manifests', 'latest', 'snapshots', 'published', 'workspaces', 'names', 'remote-packs']) other += await bytesUnder(join(store.root, d));
  let total = [...objects.values()].reduce((sum, o) => sum + o.size, 0) + other;
  const over = () => opts.maxSize !== undefined && total > opts.maxSize;
  let otherFreed = 0;
  const removedRuns = new Set<string>();
  for (const { key, mtimeMs } of unused) {
    if (opts.maxSize !== undefined && !over()) break;
    removedRuns.add(key);
    result.runsRemoved++;
    const recBytes = (await bytesUnder(store.runPath(key))) + (await bytesUnder(store.logPath(key)));
    total -= recBytes;
    otherFreed += recBytes;
    for (const d of new Set(perRun.get(key)!.objects)) {
      const n = (refCount.get(d) ?? 1) - 1;
      refCount.set(d, n);
      if (n === 0 && objects.has(d)) total -= objects.get(d)!.size;
    }
    result.removed.push({ what: `run ${key.slice(0, 8)} (${perRun.get(key)!.stage}, ${new Date(mtimeMs).toISOString().slice(0, 10)})`, bytes: recBytes, why: 'no latest run of any workspace uses it' });
    if (!opts.dryRun) await store.deleteRun(key);
  }
  // Still over: checkpoints of runs that never finished, then compiled stage modules, oldest first
  // (a checkpoint only saves recomputing; a module is compiled again when used).
  for (const [list, kind] of [[checkpoints, 'checkpoint of an unfinished run'], [modules, 'compiled stage module (rebuilt when used)']] as const) {
    for (const [path, mtimeMs] of list) {
      if (!over()) break;
      const bytes = await bytesUnder(path);
      total -= bytes;
      otherFreed += bytes;
      result.removed.push({ what: `${path.slice(store.root.length + 1)} (${new Date(mtimeMs).toISOString().slice(0, 10)})`, bytes, why: `${kind}: over --max-size` });
      if (!opts.dryRun) await rm(path, { recursive: true, force: true });
    }
  }
  // Objects no remaining run uses (also orphans from runs that died before their record).
  for (const [d, o] of objects) {
    if ((refCount.get(d) ?? 0) > 0) {
      result.bytesKept += o.size;
      continue;
    }
    result.objectsRemoved++;
    result.bytesFreed += o.size;
    result.removed.push({ what: `object ${d.slice(0, 8)}`, bytes: o.size, why: 'no kept run uses it' });
    if (!opts.dryRun) await rm(o.path, { force: true });
  }
  result.bytesFreed += otherFreed;
  result.bytesKept += other - otherFreed;
  if (!opts.dryRun) {
    // Views of kept runs that their records no longer name (a forced rerun wrote other bytes).
    for (const key of keepRuns) {
      const rec = perRun.get(key)?.rec;
      if (rec) await store.pruneViews(rec);
    }
    const keepManifests = new Set<string>();
    for (const [key, o] of perRun) if (!removedRuns.has(key)) o.manifests.forEach((m) => keepManifests.add(m));
    await store.deleteManifestsExcept(keepManifests);
  }
  return result;
}

export function parseSize(s: string): number {
  const m = /^\s*([0-9.]+)\s*([kmgt]?)i?b?\s*$/i.exec(s);
  if (!m) throw new Error(`bad size '${s}' (use e.g. 500M, 20G)`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.round(Number(m[1]) * mult);
}

export function formatSize(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
