// `pipeline gc`: removes cache entries no spec's latest run uses. With maxSize, unused entries are
// removed oldest first only until the cache fits, keeping recent history for quick switch-backs.
import { rm, stat } from 'node:fs/promises';
import type { Store } from './store.ts';

export interface GcResult {
  runsRemoved: number;
  objectsRemoved: number;
  bytesFreed: number;
  bytesKept: number;
}

export async function collectGarbage(store: Store, opts: { dryRun: boolean; maxSize?: number }): Promise<GcResult> {
  const keepRuns = new Set<string>();
  for (const stages of (await store.allLatest()).values()) for (const run of stages.values()) keepRuns.add(run.key);
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
  const objectsOf = async (key: string): Promise<{ objects: string[]; manifests: string[] }> => {
    const rec = await store.readRun(key);
    if (!rec) return { objects: [], manifests: [] };
    const objs: string[] = [];
    const manifests: string[] = Object.values(rec.fingerprint.inputs);
    for (const out of Object.values(rec.outputs)) {
      objs.push(...(await store.outputObjects(out)));
      if (out.kind === 'dir') manifests.push(out.digest);
    }
    return { objects: objs, manifests };
  };
  const refCount = new Map<string, number>();
  const perRun = new Map<string, { objects: string[]; manifests: string[] }>();
  for (const key of runs) {
    const o = await objectsOf(key);
    perRun.set(key, o);
    for (const d of new Set(o.objects)) refCount.set(d, (refCount.get(d) ?? 0) + 1);
  }
  let total = [...objects.values()].reduce((s, o) => s + o.size, 0);
  const result: GcResult = { runsRemoved: 0, objectsRemoved: 0, bytesFreed: 0, bytesKept: 0 };
  const removedRuns = new Set<string>();
  for (const { key } of unused) {
    if (opts.maxSize !== undefined && total <= opts.maxSize) break;
    removedRuns.add(key);
    result.runsRemoved++;
    for (const d of new Set(perRun.get(key)!.objects)) {
      const n = (refCount.get(d) ?? 1) - 1;
      refCount.set(d, n);
      if (n === 0 && objects.has(d)) total -= objects.get(d)!.size;
    }
    if (!opts.dryRun) await store.deleteRun(key);
  }
  // Objects no remaining run uses (also orphans from runs that died before their record).
  for (const [d, o] of objects) {
    if ((refCount.get(d) ?? 0) > 0) {
      result.bytesKept += o.size;
      continue;
    }
    result.objectsRemoved++;
    result.bytesFreed += o.size;
    if (!opts.dryRun) await rm(o.path, { force: true });
  }
  if (!opts.dryRun) {
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
