// The command line's shared parts: options every command takes, argument parsing, opening a
// workspace and its cache, compiling the spec a command names.
import { existsSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DigestCache } from '../cache/digests.ts';
import { UsageError } from '../diagnostics.ts';
import { PACKAGE_ROOT } from '../cache/fingerprint.ts';
import { compilePipeline } from '../spec/compile.ts';
import type { ExecutorName } from '../spec/model.ts';
import { StageModules } from '../modules.ts';
import { Planner } from '../run/plan.ts';
import { Store } from '../cache/store.ts';
import type { Owner } from '../cache/lock.ts';
import { HELP } from './help.ts';

/** Signals that stop a run cleanly (SIGHUP: the terminal went away). */
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** process.kill as it was at start (an inline stage may replace what it can reach). */
const killNow = process.kill.bind(process);

/**
 * Ends the process at once, as `sig` would have with no handler (a shell sees 128 + its number:
 * 130 for Ctrl-C). Not process.exit: it joins the thread pool on the way out, and a thread blocked
 * in a read (of a FIFO, a hung network mount) never returns, so the process would never end.
 */
export function quitBySignal(sig: NodeJS.Signals): void {
  for (const s of STOP_SIGNALS) process.removeAllListeners(s);
  killNow(process.pid, sig);
}

export const COMMON = {
  workspace: { type: 'string', short: 'C' },
  'cache-dir': { type: 'string' },
  set: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

export type Values = Record<string, string | boolean | string[] | undefined>;

export function parse(command: string, argv: string[], options: ParseArgsConfig['options']): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { ...COMMON, ...options }, allowPositionals: true, strict: true });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split('\n')[0]}\n\n${HELP[command]}`);
  }
}

export interface Env {
  workspace: string;
  store: Store;
  digests: DigestCache;
  modules: StageModules;
}

/**
 * The workspace folder by its real path: reached through a link or directly, it is one workspace
 * (one latest-run index, one record of what was published), not two.
 */
export function workspaceRoot(values: Values): string {
  const given = resolve((values.workspace as string | undefined) ?? process.cwd());
  try {
    return realpathSync(given);
  } catch {
    throw new UsageError(`the workspace folder ${given} does not exist`);
  }
}

export async function openWorkspace(values: Values): Promise<Env> {
  const workspace = workspaceRoot(values);
  const cacheDir = resolve(workspace, (values['cache-dir'] as string | undefined) ?? process.env.PIPELINE_CACHE_DIR ?? 'cache');
  const problem = makeCacheDir(cacheDir);
  if (problem) throw new UsageError(`cannot use ${cacheDir} as the cache folder: ${problem} (pick another with --cache-dir or $PIPELINE_CACHE_DIR)`);
  const store = new Store(cacheDir);
  const digests = new DigestCache(resolve(cacheDir, 'state.json'));
  return { workspace, store, digests, modules: new StageModules(cacheDir, workspace, digests) };
}

/**
 * Creates the cache folder one level at a time from its nearest existing parent (Node's recursive
 * mkdir spins forever under /proc), on a real filesystem only. Returns why it cannot, or undefined.
 */
export function makeCacheDir(dir: string): string | undefined {
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

const EXECUTORS: ExecutorName[] = ['inline', 'process', 'slurm'];

export async function loadSpec(values: Values, positionals: string[], command: string, env: Env): Promise<Planner> {
  const spec = positionals[0];
  if (!spec) throw new UsageError(`missing <spec>\n\n${HELP[command]}`);
  const executor = values.executor as string | undefined;
  if (executor !== undefined && !EXECUTORS.includes(executor as ExecutorName)) throw new UsageError(`--executor must be one of ${EXECUTORS.join(', ')}, got '${executor}'`);
  const pipeline = await compilePipeline(spec, { workspace: env.workspace, sets: (values.set as string[] | undefined) ?? [], builtinRoot: PACKAGE_ROOT, modules: env.modules, cacheDir: env.store.root, executor: executor as ExecutorName | undefined });
  return new Planner(pipeline, env.store, env.digests, env.modules);
}

/** A command waiting for the cache: who holds it, since when. */
export function sayWaiting(o: Owner): void {
  process.stderr.write(`waiting for '${o.command}' to finish with the cache (pid ${o.pid} on ${o.host}, since ${o.since})\n`);
}
