// The scheduler: runs the stages a spec asks for, in dependency order, up to `jobs` at a time.
// Each stage is either found in the cache (same key, outputs present) or run in a private temp
// folder by its executor and committed to the store. A failure stops its dependents; the rest
// finish (keepGoing) or are stopped at once.
import { SECRET_PREFIX } from '../secrets.ts';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { outsTargetProblem } from '../paths.ts';
import { sameSignature, signature } from '../cache/signature.ts';
import { isDiskFull } from '../fsutil.ts';
import { formatDuration } from '../spec/duration.ts';
import { executorFor } from '../executors/index.ts';
import { DiskFull, StageFailure, type StageJob } from '../executors/types.ts';
import { withUpstream } from './graph.ts';
import { Planner, renderTemplate, type Evaluated } from './plan.ts';
import { hasResult, type Reporter, type StageState } from './progress.ts';
import type { OutputRef, Pipeline, StageNode } from '../spec/model.ts';
import type { CachedRun, Store } from '../cache/store.ts';
import { pipelineStatus } from './status.ts';
import type { SlurmSession } from '../executors/slurm.ts';
import { UsageError } from '../diagnostics.ts';
import { gitState, type GitState } from '../provenance.ts';
import { markRunning } from '../cache/running.ts';

export interface RunOptions {
  /** Stage ids or spec keys (a key names all its variants); empty: every stage. */
  targets: string[];
  force: string[];
  forceAll: boolean;
  jobs: number;
  keepGoing: boolean;
  reporter: Reporter;
  signal: AbortSignal;
  /** Rehash the objects of every cache hit (slow; `run --verify`), beyond the stat checks. */
  verify?: boolean;
  /** Where `executor: slurm` stages are submitted and followed. */
  slurm?: SlurmSession;
  /** A name for this run's results (`run --name`): recorded with each run, and kept past gc. */
  name?: string;
  /** `run --pull`: a stage the local cache lacks is looked for on a remote before it is computed. */
  fetch?: RemoteFetch;
  /** `pipeline pull <spec>`: what neither the cache nor the remote has is not computed ('absent'). */
  fetchOnly?: boolean;
}

/**
 * Fetches one stage run by key from a remote cache into the local one (the remote's own door is
 * src/remote/; the scheduler knows only this). 'refused' and 'unreachable' say why in `why`: the
 * stage is then computed here (or, fetching only, reported), never served from what was refused.
 */
export type RemoteFetch = (key: string, progress: (text: string, fraction: number) => void) => Promise<{ state: 'pulled' | 'absent' } | { state: 'refused' | 'unreachable'; why: string }>;

/** What one run shares between its stages. */
interface RunContext {
  planner: Planner;
  records: Map<string, CachedRun | undefined>;
  latest: Map<string, CachedRun>;
  reporter: Reporter;
  /** Workspace path -> digest of what this engine published there (see Store.readPublished). */
  published: Record<string, string>;
  verify: boolean;
  slurm?: SlurmSession;
  /** What each run records of where it came from (its git state settles while the first stages run). */
  git: Promise<GitState | undefined>;
  name?: string;
  fetch?: RemoteFetch;
  fetchOnly: boolean;
}

export interface StageResult {
  id: string;
  state: StageState;
  key?: string;
  record?: CachedRun;
  error?: string;
  /** Failed stages: where the full log was kept, and its last lines. */
  logFile?: string;
  logTail?: string[];
  durationMs?: number;
}

export interface RunSummary {
  ok: boolean;
  results: Map<string, StageResult>;
}

/** Resolves CLI stage names (ids or keys) to stage ids; an unknown name is a usage error. */
export function resolveStageNames(p: Pipeline, names: string[]): string[] {
  const out: string[] = [];
  for (const name of names) {
    const ids = p.stages.has(name) ? [name] : [...p.stages.values()].filter((n) => n.key === name).map((n) => n.id);
    if (!ids.length) throw new UsageError(`no stage named '${name}' in ${p.specRel} (stages: ${[...new Set([...p.stages.values()].map((n) => n.key))].join(', ')})`);
    out.push(...ids);
  }
  return out;
}

/** The stages a run covers: the targets with everything they need, or all. */
export function selectedStages(p: Pipeline, targets: string[]): Set<string> {
  return targets.length ? withUpstream(p.stages, resolveStageNames(p, targets)) : new Set(p.order);
}

/** Of `selected`, those that would run (not in the cache, or forced), in run order. */
export async function staleStages(planner: Planner, selected: Set<string>, forced: Set<string>): Promise<string[]> {
  return (await pipelineStatus(planner, forced)).filter((s) => s.state === 'stale' && selected.has(s.stage)).map((s) => s.stage);
}

export async function runPipeline(planner: Planner, opts: RunOptions): Promise<RunSummary> {
  const { pipeline: p, digests } = planner;
  const selected = selectedStages(p, opts.targets);
  const forced = new Set(resolveStageNames(p, opts.force));
  const order = p.order.filter((id) => selected.has(id));
  const results = new Map<string, StageResult>();
  const records = new Map<string, CachedRun | undefined>();
  const latest = await planner.store.readLatest(p.workspace, p.specRel);
  await planner.store.registerWorkspace(p.workspace);
  // The commit as the run starts (the code it runs), recorded with each stage it computes.
  const git = gitState(p.workspace);
  const rc: RunContext = { planner, records, latest, reporter: opts.reporter, published: await planner.store.readPublished(p.workspace), verify: !!opts.verify, slurm: opts.slurm, git, name: opts.name, fetch: opts.fetch, fetchOnly: !!opts.fetchOnly };
  const publishedBefore = { ...rc.published };
  const running = new Map<string, { promise: Promise<void>; abort: AbortController }>();
  // Stages with the same fingerprint are the same computation: the later ones take its result.
  const byKey = new Map<string, Promise<unknown>>();
  let stopAll = false;
  opts.reporter.plan(order);
  if (opts.slurm) {
    opts.slurm.onSubmit = (text) => opts.reporter.message(text);
    // Checked here first: only stale stages are submitted, all at once, chained by afterok.
    await opts.slurm.submitPlanned(new Set(await staleStages(planner, selected, new Set([...forced, ...(opts.forceAll ? order : [])]))));
  }

  const finish = (r: StageResult, detail?: string) => {
    results.set(r.id, r);
    if (r.record) records.set(r.id, r.record);
    opts.reporter.finish(r.id, r.state, detail);
  };

  // Each stage waits on a count of unfinished upstream stages; a finished stage releases its
  // dependents, a failed one blocks everything downstream of it.
  const waiting = new Map(order.map((id) => [id, p.stages.get(id)!.upstream.length]));
  const dependents = new Map<string, string[]>(order.map((id) => [id, []]));
  for (const id of order) for (const u of p.stages.get(id)!.upstream) dependents.get(u)!.push(id);
  const queue = order.filter((id) => waiting.get(id) === 0);
  const settle = (first: StageResult, detail?: string) => {
    // Iterative: a failure blocks a chain of dependents that may be thousands long.
    const todo: Array<[StageResult, string | undefined]> = [[first, detail]];
    while (todo.length) {
      const [r, d] = todo.pop()!;
      if (results.has(r.id)) continue;
      finish(r, d);
      const ok = hasResult(r.state);
      for (const dep of dependents.get(r.id)!) {
        // Fetching only, what follows a stage the remote lacks cannot be known: absent too.
        if (!ok) todo.push(r.state === 'absent' ? [{ id: dep, state: 'absent', error: `needs ${r.id}` }, `needs ${r.id}`] : [{ id: dep, state: 'blocked' }, undefined]);
        else if (waiting.set(dep, waiting.get(dep)! - 1).get(dep) === 0) queue.push(dep);
      }
    }
  };

  const start = (id: string) => {
    const abort = new AbortController();
    const onAbort = () => abort.abort(opts.signal.reason);
    opts.signal.addEventListener('abort', onAbort, { once: true });
    const promise = runStage(p.stages.get(id)!, rc, forced.has(id) || opts.forceAll, abort.signal, byKey)
      .then((r) => {
        if (r.state === 'failed' && !opts.keepGoing) stopAll = true;
        settle(r, r.state === 'failed' ? r.error : r.durationMs !== undefined ? `${(r.durationMs / 1000).toFixed(1)} s` : undefined);
      })
      .finally(() => {
        opts.signal.removeEventListener('abort', onAbort);
        running.delete(id);
      });
    running.set(id, { promise, abort });
  };

  while (results.size < order.length) {
    if (opts.signal.aborted) stopAll = true;
    if (stopAll) {
      for (const r of running.values()) r.abort.abort(new Error('the run was stopped'));
      for (const id of order) if (!running.has(id)) settle({ id, state: 'stopped' });
    }
    // --jobs bounds the stages computed here; a Slurm stage only waits for its job.
    const local = () => [...running.keys()].filter((id) => p.stages.get(id)!.executor !== 'slurm').length;
    while (!stopAll && queue.length && (p.stages.get(queue[0]!)!.executor === 'slurm' || local() < opts.jobs)) start(queue.shift()!);
    if (running.size) await Promise.race([...running.values()].map((r) => r.promise));
    else if (results.size < order.length && !queue.length && !stopAll) {
      throw new Error(`internal: no stage can start (${order.filter((id) => !results.has(id)).join(', ')})`);
    }
  }
  await digests.save();
  await planner.store.writePublished(p.workspace, Object.fromEntries(Object.entries(rc.published).filter(([rel, d]) => publishedBefore[rel] !== d)));
  await planner.store.writeLatest(p.workspace, p.specRel, new Map([...results.values()].flatMap((r) => (r.record ? [[r.id, r.record] as const] : []))));
  const ok = [...results.values()].every((r) => hasResult(r.state));
  return { ok, results };
}

async function runStage(node: StageNode, rc: RunContext, force: boolean, signal: AbortSignal, byKey: Map<string, Promise<unknown>>): Promise<StageResult> {
  let ev: Evaluated | undefined;
  try {
    ev = await rc.planner.evaluate(node, rc.planner.upstreamOf(node, rc.records));
  } catch (e) {
    // A stage's fingerprint() hook that throws, an input folder with a link loop, ...
    return { id: node.id, state: 'failed', error: `cannot compute the stage's cache key: ${errorText(e)}` };
  }
  if (!ev) return { id: node.id, state: 'failed', error: 'internal: upstream outputs unknown' };
  // A run computes a key once: a stage whose key an earlier stage of this run has (its twin)
  // waits for it and takes its result, even when forced. Kept for the whole run, so a twin that
  // starts after the first one ended (--jobs 1) is served too.
  const twin = byKey.get(ev.key);
  if (twin) {
    await twin;
    force = false;
  }
  const work = runEvaluated(node, ev, rc, force, signal).catch((e: unknown): StageResult => ({ id: node.id, state: 'failed', key: ev.key, error: errorText(e) }));
  byKey.set(ev.key, work);
  return work;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function runEvaluated(node: StageNode, ev: Evaluated, rc: RunContext, force: boolean, signal: AbortSignal): Promise<StageResult> {
  const { reporter } = rc;
  const { store } = rc.planner;
  const missing = Object.entries(ev.fingerprint.inputs).filter(([, d]) => d === 'missing').map(([rel]) => rel);
  if (missing.length) return { id: node.id, state: 'failed', key: ev.key, error: `input ${missing.map((m) => `'${m}'`).join(', ')} does not exist in the workspace` };

  let fetched: 'pulled' | 'absent' | string | undefined;
  const served = async (): Promise<StageResult | undefined> => {
    const last = rc.latest.get(node.id);
    const rec = last?.key === ev.key ? last : await store.readRun(ev.key);
    if (rec && (await store.hasOutputs(rec, rc.verify))) {
      await publishOuts(node, rec, rc);
      return { id: node.id, state: fetched === 'pulled' ? 'pulled' : 'cached', key: rec.key, record: rec };
    }
    // Not here: from the remote, once a run (what it fetches is checked before it is installed).
    if (!rc.fetch || fetched !== undefined) return undefined;
    reporter.status(node.id, 'looking on the remote');
    const got = await rc.fetch(ev.key, (text, fraction) => reporter.progress(node.id, fraction, text));
    fetched = 'why' in got ? got.why : got.state;
    if ('why' in got) reporter.message(`${node.id}: ${got.why}${rc.fetchOnly ? '' : '; computing it here'}`);
    return got.state === 'pulled' ? served() : undefined;
  };
  // A stage this run submitted is followed to its job's end, even if its result is already in
  // the cache (the job's own, committed before we looked): it is reported done, not cached.
  const ownJob = node.executor === 'slurm' && rc.slurm?.has(node.id);
  if (!force && !ownJob) {
    const hit = await served();
    if (hit) return hit;
  }
  if (rc.fetchOnly) {
    if (!force && !ownJob) return { id: node.id, state: 'absent', key: ev.key, error: fetched === 'absent' || fetched === undefined ? undefined : fetched };
    return { id: node.id, state: 'failed', key: ev.key, error: 'a forced stage cannot be pulled' };
  }
  if (node.executor === 'slurm') return followSlurmJob(node, rc, signal, served);
  // One process computes a key at a time (users and Slurm jobs share the cache): a run that
  // waited takes the other's result.
  let keyLock;
  try {
    keyLock = await store.lockKey(ev.key, (o) => reporter.message(`${node.id}: waiting for pid ${o.pid} on ${o.host}, computing the same stage (${o.since})`), signal);
  } catch (e) {
    if (signal.aborted) return { id: node.id, state: 'stopped', key: ev.key };
    throw e;
  }
  try {
    if (!force || keyLock.waited) {
      const hit = await served();
      if (hit) return hit;
    }
    return await computeStage(node, ev, rc, signal);
  } finally {
    await keyLock.release();
  }
}

/** A stage run as a Slurm job: its result is taken from the cache once the job has ended. */
async function followSlurmJob(node: StageNode, rc: RunContext, signal: AbortSignal, served: () => Promise<StageResult | undefined>): Promise<StageResult> {
  if (!rc.slurm) return { id: node.id, state: 'failed', error: 'executor slurm: this run cannot submit jobs (run it with `pipeline run`)' };
  rc.reporter.start(node.id);
  const started = Date.now();
  let outcome;
  try {
    outcome = await rc.slurm.wait(node, signal, (text) => rc.reporter.status(node.id, text));
  } catch (e) {
    if (signal.aborted) return { id: node.id, state: 'stopped' };
    return { id: node.id, state: 'failed', error: errorText(e) };
  }
  const hit = await served();
  if (hit && (outcome.state === 'COMPLETED' || outcome.state === 'GONE')) {
    await rc.slurm.done(outcome.job);
    return { ...hit, state: 'done', durationMs: Date.now() - started };
  }
  const logTail = await tail(outcome.job.log, 20).catch(() => undefined);
  // The job's own run says why its stage failed, on the line `stage <id> failed: ...`.
  const why = logTail?.find((l) => l.startsWith(`stage ${node.id} failed: `))?.slice(`stage ${node.id} failed: `.length);
  const how = `slurm job ${outcome.job.name} ${outcome.state}${outcome.reason && outcome.reason !== 'None' ? ` (${outcome.reason})` : ''}${outcome.exitCode && outcome.exitCode !== '0:0' ? `, exit code ${outcome.exitCode}` : ''}`;
  const error = outcome.state === 'COMPLETED' ? `${how} but its result is not in the cache (did the spec or its inputs change after it was submitted?)` : why ? `${how}: ${why}` : how;
  return { id: node.id, state: 'failed', error, logFile: logTail ? outcome.job.log : undefined, logTail };
}

async function computeStage(node: StageNode, ev: Evaluated, rc: RunContext, signal: AbortSignal): Promise<StageResult> {
  const { planner, records, reporter } = rc;
  const { pipeline: p, store, digests } = planner;
  reporter.start(node.id);
  const started = Date.now();
  const tmp = await store.makeTemp(node.id);
  const outDir = join(tmp, 'out');
  await mkdir(outDir);
  const logFile = join(tmp, 'stage.log');
  // resources.time: past it the stage is stopped and fails, saying so.
  const limit = new AbortController();
  const onAbort = () => limit.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  const timer = node.timeLimitMs === undefined ? undefined : setTimeout(() => limit.abort(new TimeLimitExceeded(node.timeLimitMs!)), node.timeLimitMs);
  const readViews: Array<{ rec: CachedRun; output: string; ref: OutputRef }> = [];
  try {
    // Found by `plots show --live` while it runs (cache/running.ts).
    await markRunning(tmp, { stage: node.id, spec: p.specRel, workspace: p.workspace, key: ev.key, startedAt: new Date(started).toISOString() });
    const job = await buildJob(node, planner, records, tmp, outDir, logFile, ev, readViews);
    let failure: unknown;
    await executorFor(node)
      .run(job, { progress: (f, m) => reporter.progress(node.id, f, m), notice: (m) => reporter.message(`${node.id}: ${m}`) }, limit.signal)
      .catch((e: unknown) => (failure = e));
    // A stage must not change what it reads: a write into another stage's output would poison
    // every later reader. The changed view and objects are dropped (their producer reruns).
    const written: string[] = [];
    for (const v of readViews) written.push(...(await store.dropWrittenView(v.rec, v.output)).map((w) => `${v.ref.stage}.${w}`));
    if (written.length) {
      throw new StageFailure(`the stage wrote into its input (${written.slice(0, 3).join('; ')}${written.length > 3 ? `; ${written.length - 3} more` : ''}): stages must not modify what they read; the damaged copy was dropped and its producer will rerun`);
    }
    if (failure !== undefined) throw failure;
    // The key says what the stage read: an input or code file edited while it ran (even one put
    // back after, as `cp -p` does) shows in its signature, and its result is not kept under that key.
    const moved = ev.sources.filter(([path, sig]) => !sameSignature(sig, signature(path)));
    if (moved.length) {
      for (const [path] of moved) digests.forget(path);
      const names = [...new Set(moved.map(([path]) => relative(p.workspace, path) || '.'))];
      throw new StageFailure(`${names.slice(0, 3).map((n) => `'${n}'`).join(', ')}${names.length > 3 ? ` and ${names.length - 3} more` : ''} changed while the stage ran: what it read may not be what its cache key says, so its result was not kept; run it again`);
    }
    const record = await store.commit(outDir, node.outputs, {
      key: ev.key,
      stage: node.id,
      spec: p.specRel,
      fingerprint: ev.fingerprint,
      startedAt: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      provenance: { sets: p.sets, ...((g) => (g ? { git: g } : {}))(await rc.git), ...(rc.name ? { name: rc.name } : {}) },
    }, logFile);
    // Input folders' file lists (deps, and folders its arguments name), so status can name the file that changed.
    for (const rel of Object.keys(ev.fingerprint.inputs)) await store.saveManifest(await digests.path(join(p.workspace, rel)));
    await rm(store.checkpointPath(ev.key), { recursive: true, force: true }); // done: nothing to resume
    await publishOuts(node, record, rc);
    return { id: node.id, state: 'done', key: ev.key, record, durationMs: Date.now() - started };
  } catch (e) {
    const timedOut = limit.signal.reason instanceof TimeLimitExceeded;
    if (signal.aborted && !timedOut) return { id: node.id, state: 'stopped', key: ev.key };
    const kept = await keepFailedLog(store, node.id, logFile, e instanceof DiskFull || isDiskFull(e));
    return {
      id: node.id,
      state: 'failed',
      key: ev.key,
      error: timedOut ? (limit.signal.reason as Error).message : errorText(e),
      logFile: kept,
      logTail: kept ? await tail(kept, 20) : undefined,
    };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
    await rm(tmp, { recursive: true, force: true });
  }
}

class TimeLimitExceeded extends Error {
  constructor(ms: number) {
    super(`the stage ran past its time limit of ${formatDuration(ms)} (resources.time) and was stopped`);
  }
}

/** Paths a stage sees: upstream outputs as read-only views in the store, its own outputs in tmp. */
async function buildJob(node: StageNode, planner: Planner, records: Map<string, CachedRun | undefined>, tmp: string, outDir: string, logFile: string, ev: Evaluated, readViews: Array<{ rec: CachedRun; output: string; ref: OutputRef }>): Promise<StageJob> {
  const { key } = ev;
  const { store } = planner;
  const workspace = planner.pipeline.workspace;
  const views = new Map<string, string>();
  for (const ref of allRefs(node)) {
    const rec = records.get(ref.stage);
    if (!rec) throw new Error(`internal: no record of upstream stage ${ref.stage}`);
    const k = `${ref.stage}\0${ref.output}`;
    if (views.has(k)) continue;
    views.set(k, await store.ensureView(rec, ref.output));
    readViews.push({ rec, output: ref.output, ref });
  }
  const viewOf = (r: OutputRef) => [views.get(`${r.stage}\0${r.output}`)!];
  const outputs = Object.fromEntries(node.outputs.map((o) => [o, join(outDir, o)]));
  const own = (o: string) => outputs[o]!;
  const inputs: Record<string, string | string[]> = {};
  const variants: StageJob['variants'] = {};
  for (const [name, spec] of Object.entries(node.inputs)) {
    const paths = spec.items.map((i) => (i.kind === 'path' ? join(workspace, i.path) : viewOf(i.ref)[0]!));
    inputs[name] = spec.list ? paths : paths[0]!;
    const made = spec.items.flatMap((i) => (i.kind === 'output' ? [{ stage: i.ref.stage, matrix: planner.pipeline.stages.get(i.ref.stage)?.matrix ?? {}, path: viewOf(i.ref)[0]! }] : []));
    if (made.length) variants[name] = made;
  }
  return {
    stageId: node.id,
    kind: node.kind,
    module: node.module?.abs,
    compiled: node.module ? await planner.modules.compiled(node.module.abs) : undefined,
    argv: node.command?.argv.flatMap((t) => renderTemplate(t, viewOf, own)),
    shell: node.command?.shell,
    params: node.params,
    inputs,
    variants,
    outputs,
    workDir: join(tmp, 'work'),
    checkpointDir: store.checkpointPath(key),
    workspace,
    seed: node.seed,
    env: {
      // What its shell line reads ($LR), with the values its key has (an unset one stays unset); a
      // secret's key holds its digest, so its value comes from the environment it was digested from.
      ...Object.fromEntries(Object.entries(ev.fingerprint.shellEnv).flatMap(([k, v]) => (v === null ? [] : [[k, v.startsWith(SECRET_PREFIX) ? (process.env[k] ?? '') : v]]))),
      ...Object.fromEntries(Object.entries(node.env).map(([k, t]) => [k, renderTemplate(t, viewOf, own).join(' ')])),
    },
    passEnv: node.passEnv,
    logFile,
    resources: node.resources,
    storeRoot: store.root,
  };
}

function allRefs(node: StageNode): OutputRef[] {
  const refs: OutputRef[] = [];
  for (const spec of Object.values(node.inputs)) for (const i of spec.items) if (i.kind === 'output') refs.push(i.ref);
  const fromTemplate = (t: StageNode['env'][string]) => {
    for (const part of t) if (typeof part === 'object' && 'ref' in part) refs.push(...part.ref);
  };
  node.command?.argv.forEach(fromTemplate);
  Object.values(node.env).forEach(fromTemplate);
  return refs;
}

/**
 * Makes each declared workspace path (`outs`) hold the stage's output, unless it already does.
 * Only where the write really lands inside the workspace; never over a file or folder no stage
 * wrote (unless the spec says `overwrite: true`); a user's edit of a published output is kept
 * aside, with a line saying where.
 */
async function publishOuts(node: StageNode, rec: CachedRun, rc: RunContext): Promise<void> {
  const { store, digests } = rc.planner;
  const workspace = rc.planner.pipeline.workspace;
  for (const [name, rel] of Object.entries(node.outs)) {
    const out = rec.outputs[name];
    if (!out) continue;
    const abs = join(workspace, rel);
    const escape = outsTargetProblem(workspace, store.root, abs);
    if (escape) throw new StageFailure(`cannot publish output '${name}': ${escape}`);
    const cur = await digests.path(abs);
    if (cur.kind === out.kind && cur.digest === out.digest) {
      rc.published[rel] = out.digest;
      continue;
    }
    const ours = rc.published[rel];
    if (cur.kind !== 'missing' && ours === undefined && !node.overwrite.includes(name)) {
      throw new StageFailure(`outs path '${rel}' already exists and no stage of this pipeline wrote it: move it away, or let the stage replace it with \`outs: { ${name}: { path: ${rel}, overwrite: true } }\``);
    }
    if (cur.kind !== 'missing' && ours !== undefined && ours !== cur.digest) {
      const aside = `${abs}.edited-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}`;
      await rename(abs, aside);
      rc.reporter.message(`${rel} was changed since the pipeline wrote it: your version is kept as ${relative(workspace, aside)}, and stage ${node.id}'s output put back`);
    }
    await store.publish(out, abs);
    digests.forget(abs);
    rc.published[rel] = out.digest;
  }
}

/** How much of a failed log is kept when the disk is full: its end, which says what went wrong. */
const FULL_DISK_LOG_TAIL = 64 * 1024;

async function keepFailedLog(store: Store, id: string, logFile: string, diskFull: boolean): Promise<string | undefined> {
  const dest = join(store.root, 'logs', 'failed', `${id.replace(/[^\w.=,-]+/g, '_')}.log`);
  try {
    // On a full disk the log is cut to its end first: keeping all of it would keep the disk full.
    if (diskFull) await cutToTail(logFile, FULL_DISK_LOG_TAIL);
    await mkdir(join(store.root, 'logs', 'failed'), { recursive: true });
    await rename(logFile, dest);
    return dest;
  } catch {
    return undefined; // no log (the stage wrote none), or it cannot be kept: the stage's own error still stands
  }
}

/** Keeps only the last `bytes` of a file (in place: no second copy on a full disk). */
async function cutToTail(file: string, bytes: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const { size } = await fh.stat();
    if (size <= bytes) return;
    const buf = Buffer.alloc(bytes);
    await fh.read(buf, 0, bytes, size - bytes);
    await fh.write(buf, 0, bytes, 0);
    await fh.truncate(bytes);
  } finally {
    await fh.close();
  }
}

async function tail(file: string, n: number): Promise<string[]> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const len = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    return buf.toString('utf8').split('\n').filter((l) => l.length).slice(-n);
  } finally {
    await fh.close();
  }
}
