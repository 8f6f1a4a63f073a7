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
import { PACKAGE_ROOT, packageFilesRead } from './cache/fingerprint.ts';
import { dropAllSnapshots, dropSnapshot, signature, snapshotPath, unchangedSince, writeSnapshot } from './cache/snapshot.ts';
import type { StatSignature } from './cache/digests.ts';
import { acquireLock, type HeldLock } from './cache/lock.ts';
import { startReaper } from './executors/groups.ts';
import { pickReporter } from './run/progress.ts';
import { resolveStageNames, runPipeline } from './run/scheduler.ts';
import { compilePipeline } from './spec/compile.ts';
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

Run \`pipeline <command> --help\` for its options.
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
  validate: `Usage: pipeline validate <spec>

Checks the spec against schemas/pipeline.schema.json and each stage's params against its module's
schema; prints every problem as file:line:col: path: message.
${COMMON_HELP}`,
  dag: `Usage: pipeline dag <spec> [--format mermaid|dot]

      --format F        mermaid (default) or dot
${COMMON_HELP}`,
  gc: `Usage: pipeline gc [--dry-run] [--max-size SIZE]

Removes cached runs and objects that no spec's latest run uses.
      --max-size SIZE   remove unused entries, oldest first, only until the cache is under SIZE (e.g. 20G)
  -n, --dry-run         say what would be removed
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

async function cmdRun(argv: string[]): Promise<number> {
  const { values, positionals } = parse('run', argv, {
    jobs: { type: 'string', short: 'j' },
    force: { type: 'string', multiple: true },
    'force-all': { type: 'boolean' },
    'keep-going': { type: 'boolean', short: 'k' },
    'dry-run': { type: 'boolean', short: 'n' },
    verify: { type: 'boolean' },
  });
  if (values.help) return help('run');
  const jobs = values.jobs === undefined ? availableParallelism() : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`--jobs must be a whole number of at least 1, got '${values.jobs}'`);
  const env = await openWorkspace(values);
  const targets = positionals.slice(1);
  const force = (values.force as string[] | undefined) ?? [];
  const sets = (values.set as string[] | undefined) ?? [];
  const fullRun = !targets.length && !force.length && !values['force-all'] && !values.verify;
  const specAbs = positionals[0] ? resolve(env.workspace, positionals[0]) : '';
  const snapshotFile = snapshotPath(env.store, relative(env.workspace, specAbs));
  if (fullRun && !values['dry-run'] && specAbs && !existsSync(join(env.store.root, 'lock'))) {
    const started = Date.now();
    const same = await unchangedSince(snapshotFile, specAbs, sets, process.env);
    if (same) {
      reportAllCached(same.stages);
      for (const f of same.headlines) if (existsSync(f)) process.stdout.write(`\n${readFileSync(f, 'utf8').trimEnd()}\n`);
      process.stdout.write(`${same.name}: ${same.stages.length} stages: ${same.stages.length} cached (nothing changed since the last run) in ${((Date.now() - started) / 1000).toFixed(2)} s\n`);
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
    printStatus(st, false);
    const n = st.filter((s) => s.state === 'stale').length;
    process.stdout.write(`dry run: ${n} of ${st.length} stages would run\n`);
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
    process.stdout.write(`${pipeline.name}: ${summary.results.size} stages: ${parts} in ${((Date.now() - started) / 1000).toFixed(2)} s\n`);
    for (const f of headlines) process.stdout.write(`\n${readFileSync(f, 'utf8').trimEnd()}\n`);
    if (ac.signal.aborted) return 130;
    return summary.ok ? 0 : 1;
  } finally {
    for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
    await env.digests.save().catch(() => undefined);
    await lock?.release();
  }
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
    else process.stdout.write(`${head}: ${s.reasons[0]}\n${s.reasons.slice(1).map((r) => `${' '.repeat(w + 2 + s.state.length + 2)}${r}\n`).join('')}`);
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
  const { values, positionals } = parse('validate', argv, {});
  if (values.help) return help('validate');
  const env = await openWorkspace(values);
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
  const { values } = parse('gc', argv, { 'dry-run': { type: 'boolean', short: 'n' }, 'max-size': { type: 'string' } });
  if (values.help) return help('gc');
  let maxSize: number | undefined;
  try {
    maxSize = values['max-size'] === undefined ? undefined : parseSize(values['max-size'] as string);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const env = await openWorkspace(values);
  const lock = await acquireLock(env.store.root, 'pipeline gc', (o) => process.stderr.write(`waiting for pid ${o.pid} (${o.command})\n`));
  try {
    const r = await collectGarbage(env.store, { dryRun: !!values['dry-run'], maxSize });
    await env.digests.prune();
    await env.digests.save();
    const verb = values['dry-run'] ? 'would remove' : 'removed';
    process.stdout.write(`gc: ${verb} ${r.runsRemoved} runs and ${r.objectsRemoved} objects (${formatSize(r.bytesFreed)}); ${formatSize(r.bytesKept)} kept\n`);
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
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        return help('main');
      default:
        throw new UsageError(`unknown command '${command}'\n\n${HELP.main}`);
    }
  } catch (e) {
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
