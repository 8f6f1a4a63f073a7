// `pipeline run`: the no-op fast path, the locked run with progress, Ctrl-C, headlines and the
// snapshot for the next no-op check; `--json`; `--watch` (run again on each change).
import { checkName, saveName } from '../cache/names.ts';
import { availableParallelism } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { UsageError } from '../diagnostics.ts';
import { ChangeWatcher, watchedPaths } from '../run/watch.ts';
import { dropSnapshot, snapshotPath, unchangedSince, writeSnapshot } from '../cache/snapshot.ts';
import { signature } from '../cache/signature.ts';
import type { Observation } from '../cache/digests.ts';
import { acquireLease, type HeldLock } from '../cache/lock.ts';
import { startReaper } from '../executors/groups.ts';
import { onPath, saveDetached, SlurmSession } from '../executors/slurm.ts';
import type { Planner } from '../run/plan.ts';
import { pickReporter } from '../run/progress.ts';
import { resolveStageNames, runPipeline, selectedStages, staleStages, type RemoteFetch } from '../run/scheduler.ts';
import { connectRemote } from '../remote/config.ts';
import { pullRuns } from '../remote/pull.ts';
import { RemoteError, type Remote } from '../remote/remote.ts';
import { TRANSFER_JOBS } from '../remote/pool.ts';
import type { Store } from '../cache/store.ts';
import { pipelineStatus } from '../run/status.ts';
import { inWorkspace } from '../paths.ts';
import { STOP_SIGNALS, quitBySignal, type Values, parse, openWorkspace, loadSpec, sayWaiting, workspaceRoot } from './args.ts';
import { HELP, help } from './help.ts';
import { printStatus } from './inspect.ts';
import { reportError } from './errors.ts';

/**
 * `run --watch`: runs, then waits for a change to what the stage keys depend on and runs again
 * (debounced; a change during a run queues one more). A bad edit of the spec is reported and
 * watched like any other. Ctrl-C stops the run in progress, or the waiting.
 */
export async function watchRuns(argv: string[], values: Values, positionals: string[]): Promise<number> {
  const spec = positionals[0];
  if (!spec) throw new UsageError(`missing <spec>\n\n${HELP.run}`);
  const watcher = new ChangeWatcher();
  const workspace = workspaceRoot(values);
  const specAbs = inWorkspace(workspace, spec);
  const paths = async (): Promise<string[]> => {
    try {
      const env = await openWorkspace(values);
      return await watchedPaths(await loadSpec(values, positionals, 'run', env), specAbs);
    } catch {
      return [specAbs]; // a spec that does not compile: its fix is the change to wait for
    }
  };
  try {
    for (;;) {
      // What this run depends on is watched from before it starts: an edit during it is not lost.
      const list = await paths();
      watcher.watch(list);
      watcher.clear();
      let code: number;
      try {
        code = await cmdRun(argv);
      } catch (e) {
        code = reportError(e);
      }
      if (code === 130 || code === 70) return code;
      process.stderr.write(`watching ${list.length} files and folders for changes (Ctrl-C to stop)\n`);
      const idle = new AbortController();
      const stop = () => idle.abort();
      for (const sig of STOP_SIGNALS) process.on(sig, stop);
      const changed = await watcher.next(WATCH_QUIET_MS, idle.signal);
      for (const sig of STOP_SIGNALS) process.off(sig, stop);
      if (!changed) return 130;
      const rel = changed.map((c) => relative(workspace, c) || '.');
      process.stderr.write(`\nchanged: ${rel.slice(0, 3).join(', ')}${rel.length > 3 ? ` and ${rel.length - 3} more` : ''}: running again\n`);
    }
  } finally {
    watcher.close();
  }
}

/** How long `run --watch` waits after a change for things to settle (an editor saving several files). */
export const WATCH_QUIET_MS = 300;

export async function cmdRun(argv: string[]): Promise<number> {
  const { values, positionals } = parse('run', argv, {
    jobs: { type: 'string', short: 'j' },
    force: { type: 'string', multiple: true },
    'force-all': { type: 'boolean' },
    'keep-going': { type: 'boolean', short: 'k' },
    'dry-run': { type: 'boolean', short: 'n' },
    verify: { type: 'boolean' },
    json: { type: 'boolean' },
    watch: { type: 'boolean', short: 'w' },
    executor: { type: 'string' },
    detach: { type: 'boolean' },
    name: { type: 'string' },
    pull: { type: 'boolean' },
    remote: { type: 'string', short: 'r' },
    // `pipeline pull <spec>` is a run that fetches and never computes.
    'pull-only': { type: 'boolean' },
  });
  if (values.help) return help('run');
  if (values.watch) {
    if (values['dry-run'] || values.json) throw new UsageError('--watch runs again on every change: it does not combine with --dry-run or --json');
    return watchRuns(argv.filter((a) => a !== '--watch' && a !== '-w'), values, positionals);
  }
  // --json: stdout is one JSON summary for scripts; what people read goes to stderr.
  const say = (text: string) => (values.json ? process.stderr : process.stdout).write(text);
  const jobs = values.jobs === undefined ? availableParallelism() : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`--jobs must be a whole number of at least 1, got '${values.jobs}'`);
  const env = await openWorkspace(values);
  const targets = positionals.slice(1);
  const force = (values.force as string[] | undefined) ?? [];
  const sets = (values.set as string[] | undefined) ?? [];
  const name = values.name === undefined ? undefined : checkName(values.name as string);
  const fullRun = !targets.length && !force.length && !values['force-all'] && !values.verify && name === undefined;
  const specAbs = positionals[0] ? inWorkspace(env.workspace, positionals[0]) : '';
  const snapshotFile = snapshotPath(env.store, env.workspace, relative(env.workspace, specAbs));
  if (fullRun && !values['dry-run'] && specAbs && !existsSync(join(env.store.root, 'lock'))) {
    const started = Date.now();
    const same = await unchangedSince(snapshotFile, specAbs, sets, process.env);
    if (same) {
      reportAllCached(same.stages);
      for (const f of same.headlines) if (existsSync(f)) say(`\n${readFileSync(f, 'utf8').trimEnd()}\n`);
      say(`${same.name}: ${same.stages.length} stages: ${same.stages.length} cached (nothing changed since the last run) in ${((Date.now() - started) / 1000).toFixed(2)} s\n`);
      if (values.json) {
        const latest = await env.store.readLatest(env.workspace, relative(env.workspace, specAbs));
        writeRunJson(same.name, relative(env.workspace, specAbs), true, started, same.stages.map((id) => ({ id, state: 'cached', key: latest.get(id)?.key })));
      }
      return 0;
    }
  }
  const planner = await loadSpec(values, positionals, 'run', env);
  const { pipeline } = planner;
  if (values['dry-run']) {
    resolveStageNames(pipeline, [...targets, ...force]);
    const forced = new Set(values['force-all'] ? pipeline.order : resolveStageNames(pipeline, force));
    const st = await pipelineStatus(planner, forced);
    await env.digests.save();
    printStatus(st, !!values.json);
    const n = st.filter((s) => s.state === 'stale').length;
    if (!values.json) process.stdout.write(`dry run: ${n} of ${st.length} stages would run\n`);
    return 0;
  }

  const ac = new AbortController();
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupts++;
    if (interrupts > 1) {
      quitBySignal(sig);
      return;
    }
    process.stderr.write(`\n${sig}: stopping running stages and cleaning up (again to quit at once)\n`);
    ac.abort(new Error(`interrupted by ${sig}`));
  };
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  const started = Date.now();
  let lock: HeldLock | undefined;
  let slurm: SlurmSession | undefined;
  let remote: { name: string; remote: Remote } | undefined;
  try {
    try {
      lock = await acquireLease(env.store.root, `pipeline run ${positionals.join(' ')}`, {
        onWait: sayWaiting,
        signal: ac.signal,
      });
    } catch (e) {
      if (!ac.signal.aborted) throw e;
      process.stderr.write('stopped while waiting for the cache: nothing was run\n');
      return 130;
    }
    for (const line of await env.store.clearTemp()) process.stderr.write(`${line}\n`);
    startReaper();
    await dropSnapshot(snapshotFile);
    if (values.detach) return await detachRun(planner, positionals[0]!, sets, values['force-all'] ? pipeline.order : resolveStageNames(pipeline, force), targets);
    if (values.pull || values['pull-only']) remote = await connectRemote(values.remote as string | undefined, env.workspace, env.store.root);
    else if (values.remote !== undefined) throw new UsageError('--remote names where `run --pull` fetches from: add --pull');
    const reporter = await pickReporter();
    // Fetching only (`pipeline pull <spec>`): nothing is computed, so nothing is submitted either.
    slurm = values['pull-only'] ? undefined : await slurmSession(planner, positionals[0]!, sets, values['force-all'] ? pipeline.order : resolveStageNames(pipeline, force), targets);
    const summary = await runPipeline(planner, {
      slurm,
      targets,
      force,
      forceAll: !!values['force-all'],
      jobs,
      keepGoing: !!values['keep-going'],
      reporter,
      signal: ac.signal,
      verify: !!values.verify,
      name,
      fetch: remote && fetchFrom(env.store, remote.remote, remote.name, ac.signal),
      fetchOnly: !!values['pull-only'],
    });
    await reporter.close();
    if (name !== undefined && summary.ok && !ac.signal.aborted) {
      const runs = Object.fromEntries(pipeline.order.flatMap((id) => { const k = summary.results.get(id)?.key; return k ? [[id, k]] : []; }));
      await saveName(env.store.root, { spec: pipeline.specRel, workspace: pipeline.workspace }, name, runs);
      say(`saved as experiment '${name}' (${Object.keys(runs).length} runs; kept past gc; \`pipeline exp forget ${name}\` lets them go)\n`);
    }
    const counts = new Map<string, number>();
    for (const r of summary.results.values()) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
    const parts = [...counts].map(([s, n]) => `${n} ${s}`).join(', ');
    for (const r of summary.results.values()) {
      if (r.state !== 'failed') continue;
      process.stderr.write(`\nstage ${r.id} failed: ${r.error}\n`);
      if (r.logTail?.length) process.stderr.write(`${r.logTail.map((l) => `  | ${l}`).join('\n')}\n`);
      if (r.logFile) process.stderr.write(`  full log: ${r.logFile}\n`);
    }
    // Headlines: the text a stage names as its summary (e.g. the evaluation's table), after the run.
    const headlines: string[] = [];
    for (const id of pipeline.order) {
      const r = summary.results.get(id);
      const node = pipeline.stages.get(id)!;
      if (!r?.record || !node.module) continue;
      const def = await env.modules.load(node.module.abs);
      if (!def.summary) continue;
      const [out, ...rest] = def.summary.split('/');
      if (!out || !r.record.outputs[out]) continue;
      const file = join(await env.store.ensureView(r.record, out), ...rest);
      if (existsSync(file)) headlines.push(file);
    }
    if (summary.ok && fullRun) {
      const outs = [...pipeline.stages.values()].flatMap((n) => Object.values(n.outs).map((p) => join(pipeline.workspace, p)));
      const published = (p: string) => outs.some((o) => p === o || p.startsWith(`${o}/`));
      await writeSnapshot({
        file: snapshotFile,
        workspace: pipeline.workspace,
        specRel: pipeline.specRel,
        name: pipeline.name,
        spec: specAbs,
        sets,
        env: pipeline.envRead,
        observed: [
          ...[...env.digests.observed].filter(([p]) => !published(p)),
          ...[...env.modules.closures.packageFiles].map((p) => [p, { sig: signature(p), at: started }] as [string, Observation]),
          ...pipeline.absent.map((p) => [p, { sig: null, at: started }] as [string, Observation]),
        ],
        outs,
        runs: [...summary.results.values()].flatMap((r) => (r.record ? [r.record] : [])),
        stages: pipeline.order,
        store: env.store,
        headlines,
        facts: planner.facts,
      });
    }
    say(`${pipeline.name}: ${summary.results.size} stages: ${parts} in ${((Date.now() - started) / 1000).toFixed(2)} s\n`);
    const notFetched = pipeline.order.filter((id) => { const r = summary.results.get(id); return r?.state === 'absent' && !r.error?.startsWith('needs '); });
    // Refused (damaged, or signed by no key trusted here: said on the stage's line) apart from absent.
    const refused = notFetched.filter((id) => summary.results.get(id)!.error !== undefined);
    const absent = notFetched.filter((id) => summary.results.get(id)!.error === undefined);
    if (refused.length) process.stderr.write(`refused from ${remote?.name ?? 'the remote'}: ${refused.join(', ')} (and what needs ${refused.length > 1 ? 'them' : 'it'}; why is said above): \`pipeline run --pull ${positionals[0]}\` computes ${refused.length > 1 ? 'them' : 'it'} here\n`);
    if (absent.length) process.stderr.write(`not on ${remote?.name ?? 'the remote'}: ${absent.join(', ')} (and what needs ${absent.length > 1 ? 'them' : 'it'}): run the spec here (\`pipeline run --pull ${positionals[0]}\` computes only what is missing), or push ${absent.length > 1 ? 'them' : 'it'} from where ${absent.length > 1 ? 'they' : 'it'} ran\n`);
    for (const f of headlines) say(`\n${readFileSync(f, 'utf8').trimEnd()}\n`);
    if (values.json) writeRunJson(pipeline.name, pipeline.specRel, summary.ok && !ac.signal.aborted, started, pipeline.order.flatMap((id) => {
      const r = summary.results.get(id);
      return r ? [{ id, state: r.state, key: r.key, durationMs: r.durationMs, error: r.error, log: r.logFile }] : [];
    }));
    if (ac.signal.aborted) return 130;
    return summary.ok ? 0 : 1;
  } finally {
    for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
    // Jobs of stages this run will not follow (it stopped, a stage failed) are cancelled.
    const cancelled = await slurm?.finish().catch(() => []);
    if (cancelled?.length) process.stderr.write(`cancelled Slurm job${cancelled.length > 1 ? 's' : ''} ${cancelled.join(', ')}\n`);
    remote?.remote.close();
    await env.digests.save().catch(() => undefined);
    if (lock) await env.store.dropOwnTemp();
    await lock?.release();
  }
}

/**
 * `run --pull`: a stage run fetched from a remote by key. What the remote lacks is computed; what
 * it holds damaged is refused and computed; a remote that cannot be reached is said once per stage.
 */
function fetchFrom(store: Store, remote: Remote, name: string, signal: AbortSignal): RemoteFetch {
  return async (key, progress) => {
    try {
      const r = await pullRuns(store, remote, [key], { jobs: TRANSFER_JOBS, out: progress, signal });
      if (r.pulled.length) return { state: 'pulled' };
      if (r.refused.length) return { state: 'refused', why: `refused what ${name} holds: ${r.refused[0]!.why}` };
      return { state: 'absent' };
    } catch (e) {
      if (e instanceof RemoteError) return { state: 'unreachable', why: e.message };
      throw e;
    }
  };
}

/** `run --json`: one object on stdout (stage states in run order; undefined fields left out). */
export function writeRunJson(name: string, spec: string, ok: boolean, started: number, stages: Array<{ id: string; state: string; key?: string; durationMs?: number; error?: string; log?: string }>): void {
  process.stdout.write(`${JSON.stringify({ name, spec, ok, durationMs: Date.now() - started, stages }, null, 2)}\n`);
}

/** The fast path's report: each stage cached, in one write (plain) or one line (terminal). */
export function reportAllCached(stages: string[]): void {
  if (!process.stdout.isTTY || process.env.CI) process.stderr.write(stages.map((id) => `[   0.0s] ✔ ${id} cached\n`).join(''));
}

/** A Slurm session when a stage this run selects has `executor: slurm` (sbatch must be there). */
async function slurmSession(planner: Planner, spec: string, sets: string[], forced: string[], targets: string[]): Promise<SlurmSession | undefined> {
  const p = planner.pipeline;
  const uses = [...selectedStages(p, targets)].filter((id) => p.stages.get(id)!.executor === 'slurm');
  if (!uses.length) return undefined;
  if (!onPath('sbatch')) throw new UsageError(`stage ${uses[0]} runs on Slurm (executor: slurm), but sbatch is not on the PATH: run on a cluster login node, start a local cluster with \`npm run slurm:up\`, or run here with --executor process`);
  return new SlurmSession({ pipeline: p, spec, sets, cacheDir: planner.store.root, forced: new Set(forced) });
}

/**
 * `run --detach`: submits every stale stage as a Slurm job and returns; the jobs run on their own
 * (afterok chains), each commits to the cache and publishes its outputs into the workspace.
 * `pipeline status` shows their state. Every stale stage must run on Slurm.
 */
async function detachRun(planner: Planner, spec: string, sets: string[], forced: string[], targets: string[]): Promise<number> {
  const p = planner.pipeline;
  const session = await slurmSession(planner, spec, sets, forced, targets);
  const stale = await staleStages(planner, selectedStages(p, targets), new Set(forced));
  const local = stale.filter((id) => p.stages.get(id)!.executor !== 'slurm');
  if (local.length) throw new UsageError(`--detach needs every stage that will run on Slurm, but ${local.join(', ')} ${local.length > 1 ? 'run' : 'runs'} here (executor ${p.stages.get(local[0]!)!.executor}): give ${local.length > 1 ? 'them' : 'it'} executor: slurm, or run attached`);
  if (!session || !stale.length) {
    process.stdout.write(`${p.name}: nothing to submit: every stage is cached\n`);
    return 0;
  }
  session.onSubmit = (text) => process.stdout.write(`${text}\n`);
  await session.submitPlanned(new Set(stale));
  await saveDetached(planner.store.root, p.workspace, p.specRel, session.submittedJobs());
  process.stdout.write(`${p.name}: ${stale.length} stage${stale.length > 1 ? 's' : ''} submitted; \`pipeline status ${spec}\` shows their jobs, and results reach the workspace as they finish\n`);
  return 0;
}
