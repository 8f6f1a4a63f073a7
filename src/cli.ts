// The `pipeline` command line. Exit codes: 0 success, 1 a stage failed, 2 bad spec or usage.
import { availableParallelism } from 'node:os';
import { existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { collectGarbage, formatSize, parseSize } from './cache/gc.ts';
import { renderDag } from './run/dag.ts';
import { DigestCache } from './cache/digests.ts';
import { formatDiagnostic, SpecError, UsageError } from './diagnostics.ts';
import { forgetCodeClosures, PACKAGE_ROOT, PACKAGE_VERSION, packageFilesRead } from './cache/fingerprint.ts';
import { ChangeWatcher, watchedPaths } from './run/watch.ts';
import { initProject } from './init.ts';
import { collectExperiments, sortByMetric } from './experiments/collect.ts';
import { diffRows, renderDiff, renderShow } from './experiments/render.ts';
import { explainChange } from './run/explain.ts';
import { dropAllSnapshots, dropSnapshot, signature, snapshotPath, unchangedSince, writeSnapshot } from './cache/snapshot.ts';
import type { StatSignature } from './cache/digests.ts';
import { acquireLock, type HeldLock } from './cache/lock.ts';
import { startReaper } from './executors/groups.ts';
import { pickReporter } from './run/progress.ts';
import { resolveStageNames, runPipeline } from './run/scheduler.ts';
import { compilePipeline } from './spec/compile.ts';
import { parseDuration } from './spec/duration.ts';
import { StageModules } from './modules.ts';
import { Planner } from './run/plan.ts';
import { pipelineStatus, type StageStatus } from './run/status.ts';
import { Store } from './cache/store.ts';

/** Signals that stop a run cleanly (SIGHUP: the terminal went away). */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
/** process.exit as it was at start (an inline stage's run replaces it while it runs). */
const exitNow = process.exit.bind(process);

const COMMON = {
  workspace: { type: 'string', short: 'C' },
  'cache-dir': { type: 'string' },
  set: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

const COMMON_HELP = `  -C, --workspace DIR   workspace root (default: the current folder)
      --cache-dir DIR   cache folder (default: <workspace>/cache, or $PIPELINE_CACHE_DIR)
      --set KEY=VALUE   override a parameter: \`lr=0.001\` sets params.lr;
                        \`stages.train.params.epochs=3\` sets a stage's param (repeatable)
  -h, --help            this help`;

const HELP: Record<string, string> = {
  main: `pipeline — run machine-learning experiments written as YAML pipelines, with a content-hash cache.

Usage: pipeline <command> [options]

Commands:
  run <spec> [stage...]   run the pipeline (or the named stages and what they need)
  status <spec>           say for each stage whether it is cached or would rerun, and why
  validate <spec>         check the spec and every stage's params; run nothing
  dag <spec>              print the stage graph (Mermaid or dot)
  gc                      remove cache entries no spec's latest run uses
  verify                  rehash the cache's contents and drop what is corrupt
  exp show <spec>         every run of the stages with metrics, side by side (variants and past runs)
  exp diff <spec> A B     params and metrics of two runs, with deltas
  init [dir]              start a new project (a spec, a TypeScript stage, a command stage)
  help <command>          the options of a command
  --version               the installed version

Run \`pipeline help <command>\` (or \`pipeline <command> --help\`) for its options.
Exit codes: 0 success, 1 a stage failed, 2 bad spec or usage, 70 internal error, 130 interrupted.`,
  run: `Usage: pipeline run <spec> [stage...] [options]

Runs every stage whose fingerprint (code, params, inputs, upstream outputs) has no cached run.
Named stages run with everything they need; a sweep's name runs all its variants.

  -j, --jobs N          stages run at once (default: number of cores, ${availableParallelism()})
      --force STAGE     rerun STAGE even if cached (repeatable)
      --force-all       rerun every stage
  -k, --keep-going      after a failure, finish the stages that do not depend on it
  -n, --dry-run         say what would run, run nothing
      --verify          rehash every cached output before trusting it (see \`pipeline verify\`)
      --json            print one JSON summary on stdout (stage states, keys, errors); the rest on stderr
  -w, --watch           stay up: run again when the spec, a stage's code or an input changes
${COMMON_HELP}`,
  verify: `Usage: pipeline verify

Rehashes every object in the cache and removes each whose content no longer matches its digest
(a disk fault, an edit through a hardlink). Stages whose outputs used one rerun on the next run.
Every cache hit already checks each object's kind, size and write stamp; this checks the bytes.
${COMMON_HELP}`,
  status: `Usage: pipeline status <spec> [--json]

For each stage: cached, or stale with every reason (param lr 0.001 -> 0.0003; file stages/logmel.ts
changed; input data/x.wav changed; upstream features changed).

      --json            machine-readable output
${COMMON_HELP}`,
  validate: `Usage: pipeline validate <spec> [--json]

Checks the spec against schemas/pipeline.schema.json and each stage's params against its module's
schema; prints every problem as file:line:col: path: message.
      --json            the result as JSON: { valid, stages, diagnostics: [{ file, line, col, path, message }] }
${COMMON_HELP}`,
  dag: `Usage: pipeline dag <spec> [--format mermaid|dot]

      --format F        mermaid (default) or dot
${COMMON_HELP}`,
  exp: `Usage: pipeline exp show <spec> [--json|--csv|--md] [--sort-by METRIC] [--only-changed]
       pipeline exp diff <spec> A B [--json]

show: one row per recorded run of each stage that declares \`metrics:\` (every variant of a sweep,
and earlier runs still in the cache, marked past, with what changed since), columns = the params
that differ between rows and the numbers of the metrics files; * marks the best of each metric
(higher is better, lower for names like loss, error, p). Reads run records only: nothing reruns.
diff: A and B are run ids from \`exp show\` (key prefixes) or stage variants (their current run).

      --json | --csv | --md   output format (default: an aligned table)
      --sort-by METRIC        best first by METRIC
      --only-changed          leave out metrics that are the same in every row
${COMMON_HELP}`,
  init: `Usage: pipeline init [dir]

Writes a new project into dir (default: the current folder), ready to run: pipeline.yaml (built-in
RRTN stages by package name, then your own), stages/summary.ts (a TypeScript stage importing the
stage API from 'rrtn-pipeline'), scripts/report.sh (a command stage). Never replaces a file.
  -h, --help            this help`,
  gc: `Usage: pipeline gc [--dry-run] [--max-size SIZE] [--forget-after DURATION]

Removes cached runs and objects that no latest run of any workspace using this cache needs (a cache
can be shared: each workspace registers when it runs). A workspace whose folder has been gone for
--forget-after (default 14d) is forgotten, saying so, and the runs only it used become removable.
      --max-size SIZE   count every byte the cache holds (objects, checkpoints, compiled modules,
                        logs, memos) and remove unused entries, oldest first, only until it is
                        under SIZE (e.g. 20G): unused runs, then checkpoints, then compiled modules
      --forget-after D  how long a workspace may be gone before it is forgotten (14d, 12h, 0)
  -n, --dry-run         list what would be removed and why; remove nothing
${COMMON_HELP}`,
};

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(command: string, argv: string[], options: ParseArgsConfig['options']): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { ...COMMON, ...options }, allowPositionals: true, strict: true });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split('\n')[0]}\n\n${HELP[command]}`);
  }
}

interface Env {
  workspace: string;
  store: Store;
  digests: DigestCache;
  modules: StageModules;
}

async function openWorkspace(values: Values): Promise<Env> {
  const workspace = resolve((values.workspace as string | undefined) ?? process.cwd());
  const cacheDir = resolve(workspace, (values['cache-dir'] as string | undefined) ?? process.env.PIPELINE_CACHE_DIR ?? 'cache');
  const problem = makeCacheDir(cacheDir);
  if (problem) throw new UsageError(`cannot use ${cacheDir} as the cache folder: ${problem} (pick another with --cache-dir or $PIPELINE_CACHE_DIR)`);
  const store = new Store(cacheDir);
  const digests = new DigestCache(resolve(cacheDir, 'state.json'));
  await digests.load();
  return { workspace, store, digests, modules: new StageModules(cacheDir, workspace, digests) };
}

/**
 * Creates the cache folder one level at a time from its nearest existing parent (Node's recursive
 * mkdir spins forever under /proc), on a real filesystem only. Returns why it cannot, or undefined.
 */
function makeCacheDir(dir: string): string | undefined {
  const missing: string[] = [];
  let p = dir;
  while (!existsSync(p)) {
    missing.unshift(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  const real = realpathSync(p);
  if (/^\/(proc|sys|dev)(\/|$)/.test(real)) return `${real} is a virtual filesystem, not storage`;
  if (!statSync(real).isDirectory()) return `${p} is not a folder`;
  for (const m of missing) {
    try {
      mkdirSync(m);
    } catch (e) {
      return (e as Error).message;
    }
  }
  return undefined;
}

async function loadSpec(values: Values, positionals: string[], command: string, env: Env): Promise<Planner> {
  const spec = positionals[0];
  if (!spec) throw new UsageError(`missing <spec>\n\n${HELP[command]}`);
  const pipeline = await compilePipeline(spec, { workspace: env.workspace, sets: (values.set as string[] | undefined) ?? [], builtinRoot: PACKAGE_ROOT, modules: env.modules, cacheDir: env.store.root });
  return new Planner(pipeline, env.store, env.digests, env.modules);
}

/**
 * `run --watch`: runs, then waits for a change to what the stage keys depend on and runs again
 * (debounced; a change during a run queues one more). A bad edit of the spec is reported and
 * watched like any other. Ctrl-C stops the run in progress, or the waiting.
 */
async function watchRuns(argv: string[], values: Values, positionals: string[]): Promise<number> {
  const spec = positionals[0];
  if (!spec) throw new UsageError(`missing <spec>\n\n${HELP.run}`);
  const watcher = new ChangeWatcher();
  const workspace = resolve((values.workspace as string | undefined) ?? process.cwd());
  const specAbs = resolve(workspace, spec);
  const paths = async (): Promise<string[]> => {
    forgetCodeClosures(); // a long-lived process: stage code may have changed since the last look
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
      forgetCodeClosures();
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
const WATCH_QUIET_MS = 300;

async function cmdRun(argv: string[]): Promise<number> {
  const { values, positionals } = parse('run', argv, {
    jobs: { type: 'string', short: 'j' },
    force: { type: 'string', multiple: true },
    'force-all': { type: 'boolean' },
    'keep-going': { type: 'boolean', short: 'k' },
    'dry-run': { type: 'boolean', short: 'n' },
    verify: { type: 'boolean' },
    json: { type: 'boolean' },
    watch: { type: 'boolean', short: 'w' },
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
  const fullRun = !targets.length && !force.length && !values['force-all'] && !values.verify;
  const specAbs = positionals[0] ? resolve(env.workspace, positionals[0]) : '';
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
    if (interrupts > 1) exitNow(130);
    process.stderr.write(`\n${sig}: stopping running stages and cleaning up (again to quit at once)\n`);
    ac.abort(new Error(`interrupted by ${sig}`));
  };
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  const started = Date.now();
  let lock: HeldLock | undefined;
  try {
    try {
      lock = await acquireLock(env.store.root, `pipeline run ${positionals.join(' ')}`, (o) => {
        process.stderr.write(`waiting for another run on this workspace to finish (pid ${o.pid} on ${o.host}, since ${o.since}: ${o.command})\n`);
      }, ac.signal);
    } catch (e) {
      if (!ac.signal.aborted) throw e;
      process.stderr.write('stopped while waiting for the other run: nothing was run\n');
      return 130;
    }
    for (const line of await env.store.clearTemp()) process.stderr.write(`${line}\n`);
    startReaper();
    await dropSnapshot(snapshotFile);
    const reporter = await pickReporter();
    const summary = await runPipeline(planner, {
      targets,
      force,
      forceAll: !!values['force-all'],
      jobs,
      keepGoing: !!values['keep-going'],
      reporter,
      signal: ac.signal,
      verify: !!values.verify,
    });
    await reporter.close();
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
          ...[...packageFilesRead].map((p) => [p, signature(p)] as [string, StatSignature]),
          ...pipeline.absent.map((p) => [p, null] as [string, StatSignature]),
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
    for (const f of headlines) say(`\n${readFileSync(f, 'utf8').trimEnd()}\n`);
    if (values.json) writeRunJson(pipeline.name, pipeline.specRel, summary.ok && !ac.signal.aborted, started, pipeline.order.flatMap((id) => {
      const r = summary.results.get(id);
      return r ? [{ id, state: r.state, key: r.key, durationMs: r.durationMs, error: r.error, log: r.logFile }] : [];
    }));
    if (ac.signal.aborted) return 130;
    return summary.ok ? 0 : 1;
  } finally {
    for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
    await env.digests.save().catch(() => undefined);
    await lock?.release();
  }
}

/** `run --json`: one object on stdout (stage states in run order; undefined fields left out). */
function writeRunJson(name: string, spec: string, ok: boolean, started: number, stages: Array<{ id: string; state: string; key?: string; durationMs?: number; error?: string; log?: string }>): void {
  process.stdout.write(`${JSON.stringify({ name, spec, ok, durationMs: Date.now() - started, stages }, null, 2)}\n`);
}

/** The fast path's report: each stage cached, in one write (plain) or one line (terminal). */
function reportAllCached(stages: string[]): void {
  if (!process.stdout.isTTY || process.env.CI) process.stderr.write(stages.map((id) => `[   0.0s] ✔ ${id} cached\n`).join(''));
}

function printStatus(st: StageStatus[], json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(st, null, 2)}\n`);
    return;
  }
  const w = Math.max(...st.map((s) => s.stage.length));
  for (const s of st) {
    const head = `${s.stage.padEnd(w)}  ${s.state}`;
    if (!s.reasons.length) process.stdout.write(`${head}\n`);
    else process.stdout.write(`${head}: ${s.reasons[0]!.text}\n${s.reasons.slice(1).map((r) => `${' '.repeat(w + 2 + s.state.length + 2)}${r.text}\n`).join('')}`);
  }
}

async function cmdStatus(argv: string[]): Promise<number> {
  const { values, positionals } = parse('status', argv, { json: { type: 'boolean' } });
  if (values.help) return help('status');
  const env = await openWorkspace(values);
  const st = await pipelineStatus(await loadSpec(values, positionals, 'status', env));
  await env.digests.save();
  printStatus(st, !!values.json);
  return 0;
}

async function cmdValidate(argv: string[]): Promise<number> {
  const { values, positionals } = parse('validate', argv, { json: { type: 'boolean' } });
  if (values.help) return help('validate');
  const env = await openWorkspace(values);
  if (values.json) {
    // Every problem as data, for editors and scripts; the exit code still says valid (0) or not (2).
    try {
      const { pipeline } = await loadSpec(values, positionals, 'validate', env);
      await env.digests.save();
      process.stdout.write(`${JSON.stringify({ spec: positionals[0], valid: true, stages: pipeline.order, diagnostics: [] }, null, 2)}\n`);
      return 0;
    } catch (e) {
      if (!(e instanceof SpecError)) throw e;
      process.stdout.write(`${JSON.stringify({ spec: positionals[0], valid: false, stages: [], diagnostics: e.diagnostics }, null, 2)}\n`);
      return 2;
    }
  }
  const { pipeline } = await loadSpec(values, positionals, 'validate', env);
  await env.digests.save();
  process.stdout.write(`${positionals[0]}: valid (${pipeline.stages.size} stages)\n`);
  return 0;
}

async function cmdDag(argv: string[]): Promise<number> {
  const { values, positionals } = parse('dag', argv, { format: { type: 'string' } });
  if (values.help) return help('dag');
  const format = (values.format as string | undefined) ?? 'mermaid';
  if (format !== 'mermaid' && format !== 'dot') throw new UsageError(`--format must be mermaid or dot, got '${format}'`);
  const env = await openWorkspace(values);
  process.stdout.write(renderDag((await loadSpec(values, positionals, 'dag', env)).pipeline, format));
  return 0;
}

async function cmdGc(argv: string[]): Promise<number> {
  const { values } = parse('gc', argv, { 'dry-run': { type: 'boolean', short: 'n' }, 'max-size': { type: 'string' }, 'forget-after': { type: 'string' } });
  if (values.help) return help('gc');
  let maxSize: number | undefined;
  try {
    maxSize = values['max-size'] === undefined ? undefined : parseSize(values['max-size'] as string);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const forgetAfter = values['forget-after'] as string | undefined;
  const forgetAfterMs = forgetAfter === undefined ? undefined : /^0+$/.test(forgetAfter) ? 0 : parseDuration(forgetAfter);
  if (forgetAfter !== undefined && forgetAfterMs === undefined) throw new UsageError(`--forget-after: bad duration '${forgetAfter}' (e.g. 14d, 12h, 0)`);
  const env = await openWorkspace(values);
  const lock = await acquireLock(env.store.root, 'pipeline gc', (o) => process.stderr.write(`waiting for pid ${o.pid} (${o.command})\n`));
  try {
    const dryRun = !!values['dry-run'];
    const r = await collectGarbage(env.store, { dryRun, maxSize, forgetAfterMs });
    await env.digests.prune();
    await env.digests.save();
    for (const n of r.notes) process.stderr.write(`gc: ${n}\n`);
    if (dryRun) for (const x of r.removed) process.stdout.write(`would remove ${x.what}, ${formatSize(x.bytes)}: ${x.why}\n`);
    const verb = dryRun ? 'would remove' : 'removed';
    process.stdout.write(`gc: ${verb} ${r.runsRemoved} runs and ${r.objectsRemoved} objects (${formatSize(r.bytesFreed)} in all); ${formatSize(r.bytesKept)} kept\n`);
    return 0;
  } finally {
    await lock.release();
  }
}

async function cmdVerify(argv: string[]): Promise<number> {
  const { values } = parse('verify', argv, {});
  if (values.help) return help('verify');
  const env = await openWorkspace(values);
  const lock = await acquireLock(env.store.root, 'pipeline verify', (o) => process.stderr.write(`waiting for pid ${o.pid} (${o.command})\n`));
  try {
    let last = 0;
    const r = await env.store.verifyObjects((done, total) => {
      if (Date.now() - last < 2000) return;
      last = Date.now();
      process.stderr.write(`verify: ${done} of ${total} objects\n`);
    });
    await dropAllSnapshots(env.store);
    process.stdout.write(`verify: ${r.checked} objects checked, ${r.corrupt.length} corrupt${r.corrupt.length ? ` and removed (the stages that wrote them rerun on the next run): ${r.corrupt.slice(0, 5).join(', ')}${r.corrupt.length > 5 ? ', ...' : ''}` : ''}\n`);
    return r.corrupt.length ? 1 : 0;
  } finally {
    await lock.release();
  }
}

async function cmdExp(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse('exp', rest, {
    json: { type: 'boolean' },
    csv: { type: 'boolean' },
    md: { type: 'boolean' },
    'sort-by': { type: 'string' },
    'only-changed': { type: 'boolean' },
  });
  if (values.help || sub === '--help' || sub === '-h' || sub === undefined) return help('exp');
  if (sub !== 'show' && sub !== 'diff') throw new UsageError(`unknown exp command '${sub}' (show or diff)\n\n${HELP.exp}`);
  const formats = (['json', 'csv', 'md'] as const).filter((f) => values[f]);
  if (formats.length > 1) throw new UsageError(`choose one of --${formats.join(', --')}`);
  const env = await openWorkspace(values);
  const planner = await loadSpec(values, positionals, 'exp', env);
  const table = await collectExperiments(planner.pipeline, env.store);
  if (sub === 'show') {
    if (positionals.length > 1) throw new UsageError(`exp show takes one spec\n\n${HELP.exp}`);
    const by = values['sort-by'] as string | undefined;
    if (by !== undefined && !table.metrics.includes(by)) throw new UsageError(`--sort-by: no metric '${by}' (metrics: ${table.metrics.join(', ') || 'none recorded'})`);
    process.stdout.write(renderShow(table, by ? sortByMetric(table, by) : table.rows, formats[0] ?? 'table', !!values['only-changed']));
    return 0;
  }
  if (positionals.length !== 3) throw new UsageError(`exp diff needs a spec and two runs\n\n${HELP.exp}`);
  const [a, b] = positionals.slice(1).map((ref) => {
    const hits = table.rows.filter((r) => (r.stage === ref && r.current) || (/^[0-9a-f]{4,32}$/.test(ref) && r.key.startsWith(ref)));
    if (hits.length === 1) return hits[0]!;
    if (hits.length > 1) throw new UsageError(`'${ref}' names ${hits.length} runs (${hits.map((h) => h.id).join(', ')}): give more of the key`);
    throw new UsageError(`no run '${ref}' in ${table.spec} (see \`pipeline exp show ${positionals[0]}\`: a run id, or a stage variant for its current run)`);
  });
  const ra = (await env.store.readRun(a!.key))!;
  const rb = (await env.store.readRun(b!.key))!;
  const other = (await explainChange(ra.fingerprint, rb.fingerprint, { manifest: (d) => env.store.readManifest(d) })).filter((r) => r.kind !== 'param' && r.kind !== 'seed').map((r) => r.text);
  process.stdout.write(renderDiff(diffRows(table, a!, b!, other), !!values.json));
  return 0;
}

function cmdInit(argv: string[]): number {
  const { values, positionals } = parse('init', argv, {});
  if (values.help) return help('init');
  if (positionals.length > 1) throw new UsageError(`init takes one folder, got ${positionals.length}\n\n${HELP.init}`);
  const dir = positionals[0] ?? '.';
  const written = initProject(dir);
  const cd = dir === '.' ? '' : `cd ${dir} && `;
  process.stdout.write(`${written.map((f) => `  wrote ${f}`).join('\n')}\nNext: ${cd}pipeline run pipeline.yaml\n`);
  return 0;
}

function help(command: string): number {
  process.stdout.write(`${HELP[command]}\n`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await cmdRun(rest);
      case 'status':
        return await cmdStatus(rest);
      case 'validate':
        return await cmdValidate(rest);
      case 'dag':
        return await cmdDag(rest);
      case 'gc':
        return await cmdGc(rest);
      case 'verify':
        return await cmdVerify(rest);
      case 'init':
        return cmdInit(rest);
      case 'exp':
        return await cmdExp(rest);
      case '--version':
      case '-V':
      case 'version':
        process.stdout.write(`${PACKAGE_VERSION}\n`);
        return 0;
      case 'help':
        if (rest[0] && !HELP[rest[0]]) throw new UsageError(`no command '${rest[0]}'\n\n${HELP.main}`);
        return help(rest[0] ?? 'main');
      case undefined:
      case '-h':
      case '--help':
        return help('main');
      default:
        throw new UsageError(`unknown command '${command}'\n\n${HELP.main}`);
    }
  } catch (e) {
    return reportError(e);
  }
}

/** Says what went wrong in the user's terms; the exit code for it. */
function reportError(e: unknown): number {
  if (e instanceof SpecError) {
    process.stderr.write(`${e.diagnostics.map(formatDiagnostic).join('\n')}\n${e.diagnostics.length} problem${e.diagnostics.length > 1 ? 's' : ''} in the spec\n`);
    return 2;
  }
  if (e instanceof UsageError) {
    process.stderr.write(`pipeline: ${e.message}\n`);
    return 2;
  }
  return internalError(e);
}

/** A bug or an environment the engine did not expect: one line, the trace kept in a file. */
function internalError(e: unknown): number {
  const file = join(tmpdir(), `pipeline-error-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}.log`);
  const text = e instanceof Error ? (e.stack ?? e.message) : String(e);
  try {
    writeFileSync(file, `${process.argv.join(' ')}\n${text}\n`);
  } catch {
    // nowhere to keep it: the line below still says what happened
  }
  process.stderr.write(`pipeline: internal error: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]} (full trace: ${file})\n`);
  return 70;
}
