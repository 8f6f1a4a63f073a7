// The no-op fast path. After a complete, successful run of a spec, a snapshot records what every
// stage's cache key was computed from, as stat signatures (signature.ts): the spec, the
// stage code and the packages it imports, each input file and folder, the environment the spec
// read. It also records the objects the runs use and the outputs published into the workspace.
// A later `run` of the same spec with the same --set values checks those signatures with stat
// alone; when nothing moved, every stage is still cached, and the spec need not even be compiled.
// Anything that differs, is recent, or was never recorded sends the run down the normal path, which
// decides stage by stage.
import { keyedValue } from '../secrets.ts';
import { lstatSync, readdirSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Observation } from './digests.ts';
import { ENGINE_VERSION } from './fingerprint.ts';
import { sameSignature as same, signature, trustworthy, type StatSignature } from './signature.ts';
import { canonicalJson } from './hash.ts';
import { importStageDefinition } from '../modules.ts';
import { CORRUPT, readSealed, sayDropped, writeSealed } from '../fsutil.ts';
import { OBJECT_MTIME_MS, workspaceId, type CachedRun, type Store } from './store.ts';

/** What a snapshot is valid for: the pipeline, its spec file, the --set overrides and the environment read. */
interface SnapshotScope {
  name: string;
  spec: string;
  sets: string[];
  env: Record<string, string | null>;
}

interface Snapshot extends SnapshotScope {
  engine: string;
  /** Everything the stage keys were computed from. */
  paths: Array<[string, StatSignature]>;
  /** Published workspace outputs as they were after the run. */
  outs: Array<[string, StatSignature]>;
  /** Objects the runs use, with their sizes: each must still be intact (see store.ts). */
  objects: Array<[string, number]>;
  stages: string[];
  /** Headline files to print (in the cache's views). */
  headlines: string[];
  /** Facts stages report of themselves (e.g. the backend), asked again at each check. */
  facts: Array<{ compiled: string; params: Record<string, unknown>; extras: Record<string, unknown> }>;
}

export function snapshotPath(store: Store, workspace: string, specRel: string): string {
  return join(store.root, 'snapshots', workspaceId(workspace), `${encodeURIComponent(specRel)}.json`);
}

/**
 * The stage ids of the spec when nothing its last complete run depended on has moved; undefined
 * when the normal path must decide.
 */
export async function unchangedSince(file: string, spec: string, sets: string[], env: Record<string, string | undefined>): Promise<{ name: string; stages: string[]; headlines: string[] } | undefined> {
  try {
    return await checkSnapshot(file, spec, sets, env);
  } catch (e) {
    // A snapshot that is not what this engine writes (damaged, edited): dropped, the normal path decides.
    await dropSnapshot(file);
    sayDropped('a corrupt no-op snapshot', `${file}: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

async function checkSnapshot(file: string, spec: string, sets: string[], env: Record<string, string | undefined>): Promise<{ name: string; stages: string[]; headlines: string[] } | undefined> {
  const snap = await readSealed<Snapshot>(file);
  if (snap === CORRUPT) throw new Error('its seal does not match');
  if (!snap || snap.engine !== ENGINE_VERSION || snap.spec !== spec || JSON.stringify(snap.sets) !== JSON.stringify(sets)) return undefined;
  for (const [name, value] of Object.entries(snap.env)) if (keyedValue(name, env[name]) !== value) return undefined;
  for (const [p, sig] of snap.paths) if (!same(sig, signature(p))) return undefined;
  for (const [p, sig] of snap.outs) if (!same(sig, signature(p))) return undefined;
  for (const [obj, size] of snap.objects) {
    const st = lstatSync(obj, { throwIfNoEntry: false });
    if (!st?.isFile() || st.size !== size || st.mtimeMs !== OBJECT_MTIME_MS) return undefined;
  }
  for (const f of snap.facts ?? []) {
    if (!statSync(f.compiled, { throwIfNoEntry: false })) return undefined;
    const def = await importStageDefinition(f.compiled);
    if (!def.fingerprint || canonicalJson(await def.fingerprint(f.params)) !== canonicalJson(f.extras)) return undefined;
  }
  if (typeof snap.name !== 'string' || !Array.isArray(snap.stages) || !Array.isArray(snap.headlines)) throw new Error('not a snapshot');
  return { name: snap.name, stages: snap.stages, headlines: snap.headlines };
}

export async function dropSnapshot(file: string): Promise<void> {
  await rm(file, { force: true });
}

/** After the cache's contents changed under every spec (verify): the next runs check stage by stage. */
export async function dropAllSnapshots(store: Store): Promise<void> {
  await rm(join(store.root, 'snapshots'), { recursive: true, force: true });
}

export interface SnapshotInput extends SnapshotScope {
  file: string;
  /** The workspace and the spec's path in it (name its latest-run index). */
  workspace: string;
  specRel: string;
  /** Paths read while computing keys, with their signatures then and when each was taken. */
  observed: Iterable<[string, Observation]>;
  /** Workspace paths the stages publish. */
  outs: string[];
  runs: CachedRun[];
  stages: string[];
  store: Store;
  headlines: string[];
  facts: Snapshot['facts'];
}

/** Writes a snapshot, unless some input changed too recently to be trusted by its signature. */
export async function writeSnapshot(s: SnapshotInput): Promise<boolean> {
  const seen: Array<[string, Observation]> = [[s.spec, { sig: signature(s.spec), at: Date.now() }], ...s.observed];
  for (const [p, { sig, at }] of seen) {
    // Judged at the moment it was read: an edit in the same timestamp tick after that leaves the
    // signature as it was, however long ago the read is by now.
    if (!trustworthy(sig, at)) return false;
    if (!same(sig, signature(p))) return false; // moved during the run
  }
  const paths: Array<[string, StatSignature]> = seen.map(([p, o]) => [p, o.sig]);
  // The engine state a cache hit rests on: records, folder manifests, the latest-run index. Any
  // change to them (damage included) sends the next run down the path that checks them. Written
  // by rename (a new inode each time), they need no racy-mtime margin.
  const state = s.runs.flatMap((run) => [s.store.runPath(run.key), ...Object.values(run.outputs).flatMap((o) => (o.kind === 'dir' ? [s.store.manifestPath(o.digest)] : []))]);
  for (const p of [...state, s.store.latestPath(s.workspace, s.specRel)]) paths.push([p, signature(p)]);
  const outs: Array<[string, StatSignature]> = [];
  const walk = (p: string) => {
    const sig = signature(p);
    outs.push([p, sig]);
    if (sig && sig[0] === -1) for (const e of readdirSync(p)) walk(join(p, e));
  };
  s.outs.forEach(walk);
  const objects: Array<[string, number]> = [];
  for (const run of s.runs) {
    for (const out of Object.values(run.outputs)) {
      for (const [d, size] of await s.store.outputObjectSizes(out)) objects.push([s.store.objectPath(d), size]);
    }
  }
  await writeSealed(s.file, { engine: ENGINE_VERSION, name: s.name, spec: s.spec, sets: s.sets, env: s.env, paths, outs, objects, stages: s.stages, headlines: s.headlines, facts: s.facts } satisfies Snapshot);
  return true;
}
