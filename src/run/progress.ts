// What a run shows while it works. On a terminal: listr2, one line per stage (cached / running
// with its own progress line / done / failed). Elsewhere (pipes, CI): plain timestamped lines.
import type { Listr, ListrTaskWrapper } from 'listr2';

export type StageState = 'cached' | 'pulled' | 'done' | 'failed' | 'blocked' | 'stopped' | 'absent';

/** States whose stage has its result (dependents may run). */
export const hasResult = (s: StageState): boolean => s === 'cached' || s === 'pulled' || s === 'done';

export interface Reporter {
  /** Stages this run will look at, in order. */
  plan(ids: string[]): void;
  start(id: string): void;
  progress(id: string, fraction: number | undefined, message?: string): void;
  /** A change of state told from outside (a Slurm job's): shown each time, never throttled. */
  status(id: string, text: string): void;
  finish(id: string, state: StageState, detail?: string): void;
  message(text: string): void;
  close(): Promise<void>;
}

function fmtProgress(fraction: number | undefined, message?: string): string {
  const pct = fraction === undefined ? '' : `${Math.round(Math.max(0, Math.min(1, fraction)) * 100)}%`;
  return [pct, message].filter(Boolean).join(' ');
}

const STATE_LABEL: Record<StageState, string> = {
  cached: 'cached',
  pulled: 'pulled from the remote',
  done: 'done',
  failed: 'FAILED',
  blocked: 'not run (an upstream stage failed)',
  stopped: 'stopped',
  absent: 'not in the cache or on the remote',
};

/** Plain lines: one when a stage starts, finishes, and at most every 2 s of progress per stage. */
export class LineReporter implements Reporter {
  private readonly lastProgress = new Map<string, number>();
  private readonly t0 = Date.now();
  constructor(private readonly out: NodeJS.WritableStream = process.stderr) {}
  private line(text: string): void {
    const s = ((Date.now() - this.t0) / 1000).toFixed(1).padStart(6);
    this.out.write(`[${s}s] ${text}\n`);
  }
  plan(): void {}
  start(id: string): void {
    this.line(`▶ ${id} running`);
  }
  progress(id: string, fraction: number | undefined, message?: string): void {
    const now = Date.now();
    if (now - (this.lastProgress.get(id) ?? 0) < 2000) return;
    this.lastProgress.set(id, now);
    this.line(`  ${id}: ${fmtProgress(fraction, message)}`);
  }
  status(id: string, text: string): void {
    this.line(`  ${id}: ${text}`);
  }
  finish(id: string, state: StageState, detail?: string): void {
    const mark = state === 'failed' ? '✖' : hasResult(state) ? '✔' : '•';
    this.line(`${mark} ${id} ${STATE_LABEL[state]}${detail ? ` (${detail})` : ''}`);
  }
  message(text: string): void {
    this.line(text);
  }
  async close(): Promise<void> {}
}

interface Deferred {
  task?: ListrTaskWrapper<unknown, never, never>;
  /** The stage's latest title, kept for a task listr2 has not started yet. */
  title: string;
  /** Set for stages that did not run (blocked, stopped): the task ends as skipped. */
  skip?: string;
  resolve(): void;
  reject(e: Error): void;
  promise: Promise<void>;
}

/**
 * listr2's task list as the renderer of the scheduler's events: one task per stage, settled when the
 * scheduler settles the stage. The scheduler can settle a stage (cached, blocked) before listr2 has
 * started its task, so each stage's latest title is kept here and applied when the task starts.
 */
export class ListrReporter implements Reporter {
  constructor(
    private readonly listr2: typeof import('listr2'),
    private readonly renderer: 'default' | 'silent' = 'default',
  ) {}
  private readonly tasks = new Map<string, Deferred>();
  private runner: Promise<unknown> | undefined;
  private list: Listr | undefined;

  private setTitle(id: string, title: string): void {
    const d = this.tasks.get(id);
    if (!d) return;
    d.title = title;
    if (d.task) d.task.title = title;
  }

  plan(ids: string[]): void {
    for (const id of ids) {
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.tasks.set(id, { resolve, reject, promise, title: `${id}: waiting` });
    }
    this.list = new this.listr2.Listr(
      ids.map((id) => ({
        title: `${id}: waiting`,
        task: async (_ctx: unknown, task: ListrTaskWrapper<unknown, never, never>) => {
          const d = this.tasks.get(id)!;
          d.task = task;
          task.title = d.title;
          await d.promise;
          if (d.skip) task.skip(d.skip);
        },
      })),
      { concurrent: true, exitOnError: false, renderer: this.renderer, rendererOptions: { collapseErrors: false, showErrorMessage: true } } as never,
    );
    this.runner = this.list.run().catch(() => undefined);
  }
  start(id: string): void {
    this.setTitle(id, `${id}: running`);
  }
  progress(id: string, fraction: number | undefined, message?: string): void {
    const t = this.tasks.get(id)?.task;
    if (t) t.output = fmtProgress(fraction, message);
  }
  status(id: string, text: string): void {
    this.progress(id, undefined, text);
  }
  finish(id: string, state: StageState, detail?: string): void {
    const d = this.tasks.get(id);
    if (!d) return;
    this.setTitle(id, `${id}: ${STATE_LABEL[state]}${detail ? ` (${detail})` : ''}`);
    if (state === 'failed') d.reject(new Error(detail ?? 'failed'));
    else {
      if (state === 'blocked' || state === 'stopped' || state === 'absent') d.skip = d.title;
      d.resolve();
    }
  }
  message(text: string): void {
    process.stderr.write(`${text}\n`);
  }
  async close(): Promise<void> {
    for (const d of this.tasks.values()) d.resolve();
    await this.runner;
  }
  /** Each stage's task title as listr2 holds it (what its renderer shows). */
  titles(): string[] {
    return (this.list?.tasks ?? []).map((t) => String(t.title));
  }
}

export async function pickReporter(): Promise<Reporter> {
  const plain = !process.stdout.isTTY || !!process.env.CI || process.env.TERM === 'dumb';
  return plain ? new LineReporter() : new ListrReporter(await import('listr2'));
}
