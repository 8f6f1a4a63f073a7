// `pipeline status` and `run --dry-run`: for each stage, cached or stale and exactly why.
import { join } from 'node:path';
import type { DigestCache } from '../cache/digests.ts';
import { explainChange, stateReason, type Reason } from './explain.ts';
import type { Evaluated, Planner } from './plan.ts';
import type { Pipeline } from '../spec/model.ts';
import type { CachedRun } from '../cache/store.ts';

export interface StageStatus {
  stage: string;
  state: 'cached' | 'stale';
  /** Why it would rerun, each once; empty when cached. */
  reasons: Reason[];
  /** The cache key, when it can be known before upstream stages rerun. */
  key: string | null;
  /** Its Slurm job's state, when a detached run submitted it. */
  slurm?: string;
}

export async function pipelineStatus(planner: Planner, forced: Set<string> = new Set()): Promise<StageStatus[]> {
  const { pipeline: p, store, digests } = planner;
  const known = new Map<string, CachedRun | undefined>();
  const out: StageStatus[] = [];
  const latestKeys = await store.readLatest(p.workspace, p.specRel);
  for (const id of p.order) {
    const node = p.stages.get(id)!;
    const staleUp = node.upstream.filter((u) => !known.get(u));
    let ev: Evaluated;
    try {
      ev = (await planner.evaluate(node, planner.upstreamOf(node, known), true))!;
    } catch (e) {
      out.push({ stage: id, state: 'stale', reasons: [stateReason('error', `cannot compute its cache key: ${e instanceof Error ? e.message : String(e)}`)], key: null });
      continue;
    }
    const reasons: Reason[] = [];
    if (!staleUp.length) {
      const last = latestKeys.get(id);
      const rec = last?.key === ev.key ? last : await store.readRun(ev.key);
      if (rec && (await store.hasOutputs(rec))) {
        if (forced.has(id)) reasons.push(stateReason('forced', 'forced'));
        else {
          known.set(id, rec);
          out.push({ stage: id, state: 'cached', reasons, key: ev.key });
          continue;
        }
      } else if (rec) reasons.push(stateReason('outputs-missing', 'outputs missing from the cache, or damaged there'));
    }
    for (const u of staleUp) reasons.push({ kind: 'upstream', name: u, text: `upstream ${u} will rerun` });
    for (const [rel, d] of Object.entries(ev.fingerprint.inputs)) if (d === 'missing') reasons.push({ kind: 'input', name: rel, old: null, new: null, text: `input ${rel} does not exist` });
    const latestKey = latestKeys.get(id)?.key;
    const latest = latestKey ? await store.readRun(latestKey) : undefined;
    if (!latest) reasons.push(stateReason('never-run', 'never run'));
    else if (latest.key !== ev.key || reasons.length === 0) {
      const diff = await explainChange(latest.fingerprint, ev.fingerprint, {
        manifest: async (digest) => (await store.readManifest(digest)) ?? (await currentManifest(p, digests, ev.fingerprint.inputs, digest)),
      });
      // Upstream outputs not known yet show up as '?': "will rerun" above says it better.
      reasons.push(...diff.filter((r) => !staleUp.some((u) => r.text.startsWith(`upstream ${u} `))));
    }
    if (!reasons.length) reasons.push(stateReason('no-cached-run', 'no cached run with this fingerprint'));
    const seen = new Set<string>();
    out.push({ stage: id, state: 'stale', reasons: reasons.filter((r) => (seen.has(r.text) ? false : (seen.add(r.text), true))), key: staleUp.length ? null : ev.key });
  }
  return out;
}

/** The manifest of a workspace input folder as it is now (from the digest cache). */
async function currentManifest(p: Pipeline, digests: DigestCache, inputs: Record<string, string>, digest: string) {
  for (const [rel, d] of Object.entries(inputs)) {
    if (d === digest) return (await digests.path(join(p.workspace, rel))).manifest;
  }
  return undefined;
}
