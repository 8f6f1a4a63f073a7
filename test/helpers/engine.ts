// The engine in-process, on a real temp workspace: compile a spec, plan and run it without the CLI
// (no child Node process per call), so unit tests of the cache, the compiler and the scheduler run
// in milliseconds and mutation testing can afford them.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DigestCache } from '../../src/cache/digests.ts';
import { acquireLease } from '../../src/cache/lock.ts';
import { Store } from '../../src/cache/store.ts';
import { SpecError } from '../../src/diagnostics.ts';
import { SlurmSession } from '../../src/executors/slurm.ts';
import { StageModules } from '../../src/modules.ts';
import { Planner } from '../../src/run/plan.ts';
import type { Reporter, StageState } from '../../src/run/progress.ts';
import { runPipeline, type RunOptions, type RunSummary } from '../../src/run/scheduler.ts';
import { compilePipeline, type CompileOptions } from '../../src/spec/compile.ts';
import type { Pipeline } from '../../src/spec/model.ts';

/** A temp folder removed after the test. */
export function scratch(t: { after(f: () => void): void }, files: Record<string, string> = {}): string {
  const d = mkdtempSync(join(tmpdir(), 'pipeline-unit-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  for (const [p, c] of Object.entries(files)) put(d, p, c);
  return d;
}

export function put(dir: string, path: string, content: string): void {
  mkdirSync(dirname(join(dir, path)), { recursive: true });
  writeFileSync(join(dir, path), content);
}

/** What a run told its reporter: each stage's final state and every message. */
export class RecordingReporter implements Reporter {
  readonly states = new Map<string, StageState>();
  readonly details = new Map<string, string | undefined>();
  readonly started: string[] = [];
  readonly messages: string[] = [];
  planned: string[] = [];
  plan(ids: string[]): void {
    this.planned = ids;
  }
  start(id: string): void {
    this.started.push(id);
  }
  readonly progressed: Array<[string, number | undefined, string | undefined]> = [];
  progress(id: string, fraction: number | undefined, message?: string): void {
    this.progressed.push([id, fraction, message]);
  }
  status(id: string, text: string): void {
    this.messages.push(`${id}: ${text}`);
  }
  finish(id: string, state: StageState, detail?: string): void {
    this.states.set(id, state);
    this.details.set(id, detail);
  }
  message(text: string): void {
    this.messages.push(text);
  }
  async close(): Promise<void> {}
}

/** The engine over one workspace and its cache (`<dir>/cache`), as the CLI wires it. */
export class Engine {
  readonly cache: string;
  readonly store: Store;
  readonly corrupt: string[] = [];
  constructor(readonly dir: string) {
    this.cache = join(dir, 'cache');
    this.store = new Store(this.cache);
    this.store.onCorrupt = (what) => this.corrupt.push(what);
  }

  /** Fresh digests and modules each call, as a new CLI process would have. */
  private parts() {
    const digests = new DigestCache(join(this.cache, 'state.json'));
    return { digests, modules: new StageModules(this.cache, this.dir, digests) };
  }

  async compile(spec = 'p.yaml', opts: Partial<CompileOptions> = {}): Promise<Pipeline> {
    const { modules } = this.parts();
    return compilePipeline(spec, { workspace: this.dir, modules, cacheDir: this.cache, displayName: spec, env: {}, ...opts });
  }

  /** The diagnostics compiling a spec gives, as `line:col path: message` (it must fail to compile). */
  async problems(spec = 'p.yaml', opts: Partial<CompileOptions> = {}): Promise<string[]> {
    const err = await this.compile(spec, opts).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(err instanceof SpecError)) throw new Error(`expected a SpecError, got ${String(err)}`);
    return err.diagnostics.map((d) => `${d.line}:${d.col} ${d.path}: ${d.message}`);
  }

  async planner(spec = 'p.yaml', opts: Partial<CompileOptions> = {}): Promise<Planner> {
    const { digests, modules } = this.parts();
    await digests.load();
    const p = await compilePipeline(spec, { workspace: this.dir, modules, cacheDir: this.cache, displayName: spec, env: {}, ...opts });
    return new Planner(p, this.store, digests, modules);
  }

  /**
   * One `pipeline run`: returns the summary and what the reporter was told. `slurm`: with a Slurm
   * session on this pipeline (polling every `pollMs`), finished at the end as the CLI does; `cancelled`
   * lists the jobs it cancelled then.
   */
  async run(spec = 'p.yaml', run: Partial<RunOptions> = {}, compile: Partial<CompileOptions> = {}, slurm?: { pollMs: number; reporter?: RecordingReporter }): Promise<RunSummary & { reporter: RecordingReporter; cancelled?: string[] }> {
    const planner = await this.planner(spec, compile);
    const reporter = slurm?.reporter ?? new RecordingReporter();
    // Leased as `pipeline run` leases it: this session's temp folders are then live to other
    // processes on the cache (a Slurm job's own run clears the temp folders of dead sessions only).
    const lease = await acquireLease(this.store.root, `test engine: run ${spec}`);
    try {
      await this.store.clearTemp();
      const session = slurm && new SlurmSession({ pipeline: planner.pipeline, spec, sets: [], cacheDir: this.cache, forced: new Set(run.force ?? []), pollMs: slurm.pollMs });
      try {
        const summary = await runPipeline(planner, { targets: [], force: [], forceAll: false, jobs: 2, keepGoing: false, reporter, signal: new AbortController().signal, slurm: session, ...run });
        return { ...summary, reporter, cancelled: await session?.finish() };
      } catch (e) {
        await session?.finish();
        throw e;
      }
    } finally {
      await lease.release();
    }
  }
}
