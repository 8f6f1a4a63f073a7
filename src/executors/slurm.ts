// The Slurm executor. Stale stages become batch jobs that run this same engine on one stage (with
// the process executor) against the shared workspace and cache, so what a job commits is exactly
// what a local run would. A sweep of one stage is one job array; dependencies are `afterok` with
// `--kill-on-invalid-dep=yes` (a failed stage's dependents are cancelled by Slurm, also with no
// driver attached). The driver (the `pipeline run` that submitted) follows the jobs' state and takes
// each finished stage's result from the cache, as it would a cached stage.
// Job state comes from squeue (`-t all`: finished jobs stay listed for MinJobAge) and scontrol,
// so no accounting database is needed.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { accessSync, constants } from 'node:fs';
import { delimiter, join, relative } from 'node:path';
import { PACKAGE_ROOT } from '../cache/fingerprint.ts';
import { shellQuote } from '../spec/shell.ts';
import type { Pipeline, StageNode } from '../spec/model.ts';
import { CORRUPT, readSealed, tempName, writeSealed } from '../fsutil.ts';
import { workspaceId } from '../cache/store.ts';

/** Slurm states after which a job does nothing more. */
const ENDED = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'OUT_OF_MEMORY', 'NODE_FAIL', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE', 'SPECIAL_EXIT', 'REVOKED']);
/** A job squeue listed once and lists no more, never seen ending: whether it made its result, the cache tells. */
const GONE = { state: 'GONE', reason: 'no longer listed by squeue' };

export interface SlurmOptions {
  pipeline: Pipeline;
  /** The spec as the driver was given it (relative to the workspace) and its --set overrides. */
  spec: string;
  sets: string[];
  cacheDir: string;
  /** Stages the driver forces: their jobs force them too. */
  forced: Set<string>;
  pollMs?: number;
}

export interface SlurmJob {
  /** `123`, or `123_4` for task 4 of array 123. */
  name: string;
  log: string;
}

export interface SlurmOutcome {
  job: SlurmJob;
  /** Slurm's final state (COMPLETED, FAILED, TIMEOUT, ...), or GONE when it left the queue unseen. */
  state: string;
  reason: string;
  exitCode?: string;
}

/** Whether `command` is an executable on the PATH (sbatch: whether this machine can submit). */
export function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => {
    try {
      accessSync(join(d, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export class SlurmSession {
  private readonly jobs = new Map<string, SlurmJob>();
  private readonly arrays = new Set<string>();
  private readonly scripts: string[] = [];
  private readonly states = new Map<string, { state: string; reason: string }>();
  private refreshing?: Promise<void>;
  private lastRefresh = 0;
  private readonly pollMs: number;
  /** Told each submission ("submitted train (4 variants) as Slurm job 12, after 11"). */
  onSubmit: (text: string) => void = () => {};

  constructor(private readonly opts: SlurmOptions) {
    this.pollMs = opts.pollMs ?? 500;
  }

  has(id: string): boolean {
    return this.jobs.has(id);
  }

  /** Every job id submitted (arrays by their array id). */
  jobIds(): string[] {
    return [...new Set([...this.jobs.values()].map((j) => j.name.split('_')[0]!))];
  }

  /**
   * Submits, in dependency order, each stale Slurm stage whose stale upstream stages are all
   * submitted too (the others are submitted when the driver reaches them, their inputs then made).
   * The variants of one sweep that go together become one job array.
   */
  async submitPlanned(stale: Set<string>): Promise<void> {
    const p = this.opts.pipeline;
    const groups = new Map<string, StageNode[]>();
    for (const id of p.order) {
      const n = p.stages.get(id)!;
      if (!stale.has(id) || n.executor !== 'slurm') continue;
      if (!n.upstream.every((u) => !stale.has(u) || this.jobs.has(u) || groups.get(p.stages.get(u)!.key)?.some((v) => v.id === u))) continue;
      groups.set(n.key, [...(groups.get(n.key) ?? []), n]);
    }
    // Groups in order; a group only after those it depends on (their job ids are known then).
    for (const nodes of groups.values()) await this.submit(nodes);
  }

  /**
   * Submits `nodes` (variants of one stage) as one job, or one array; `chained`: after the jobs of
   * their upstream stages (afterok). A stage submitted when the driver reaches it has its inputs
   * made already: no dependency (an old job id may have left Slurm's memory, failing sbatch).
   */
  async submit(nodes: StageNode[], chained = true): Promise<void> {
    const { pipeline: p, cacheDir } = this.opts;
    const first = nodes[0]!;
    const after = chained ? [...new Set(nodes.flatMap((n) => n.upstream.flatMap((u) => (this.jobs.has(u) ? [this.jobs.get(u)!.name.split('_')[0]!] : []))))] : [];
    const dir = join(cacheDir, 'slurm', 'jobs');
    await mkdir(dir, { recursive: true });
    const label = first.key.replace(/[^\w.-]+/g, '_');
    const script = join(dir, `${tempName(label)}.sh`);
    await writeFile(script, this.script(nodes), { mode: 0o755 });
    this.scripts.push(script);
    const array = nodes.length > 1;
    const logPattern = join(dir, array ? `${label}-%A_%a.log` : `${label}-%j.log`);
    const r = first.resources;
    const args = [
      '--parsable',
      `--job-name=pipeline:${first.key}`,
      `--chdir=${p.workspace}`,
      `--output=${logPattern}`,
      '--kill-on-invalid-dep=yes',
      ...(after.length ? [`--dependency=afterok:${after.join(':')}`] : []),
      ...(array ? [`--array=0-${nodes.length - 1}${typeof r.arrayLimit === 'number' ? `%${r.arrayLimit}` : ''}`] : []),
      ...(typeof r.cpus === 'number' ? [`--cpus-per-task=${r.cpus}`] : []),
      ...(typeof r.mem === 'string' ? [`--mem=${r.mem}`] : []),
      ...(typeof r.gpus === 'number' && r.gpus > 0 ? [`--gpus=${r.gpus}`] : []),
      ...(first.timeLimitMs !== undefined ? [`--time=${Math.max(1, Math.ceil(first.timeLimitMs / 60_000))}`] : []),
      ...(typeof r.partition === 'string' ? [`--partition=${r.partition}`] : []),
      ...(typeof r.account === 'string' ? [`--account=${r.account}`] : []),
      ...(Array.isArray(r.sbatch) ? (r.sbatch as string[]) : []),
      script,
    ];
    const out = await (await loadExeca())('sbatch', args, { reject: false, stdin: 'ignore' });
    const what = array ? first.key : first.id; // a sweep by its stage, a lone variant by its own id
    if (out.exitCode !== 0) throw new Error(`sbatch failed for stage ${what}: ${(out.stderr || out.stdout).trim() || `exit code ${out.exitCode}`}`);
    const jobId = out.stdout.trim().split(';')[0]!;
    if (!/^\d+$/.test(jobId)) throw new Error(`sbatch printed no job id for stage ${what}: '${out.stdout.trim()}'`);
    if (array) this.arrays.add(jobId);
    this.onSubmit(`submitted ${first.key}${array ? ` (${nodes.length} variants, one array)` : ''} as Slurm job ${jobId}${after.length ? `, after ${after.join(', ')}` : ''}`);
    nodes.forEach((n, i) => {
      const name = array ? `${jobId}_${i}` : jobId;
      this.jobs.set(n.id, { name, log: logPattern.replace('%A', jobId).replace('%a', String(i)).replace('%j', jobId) });
    });
  }

  /** The job script: this engine on one variant (picked by the array task id), every word quoted. */
  private script(nodes: StageNode[]): string {
    const { pipeline: p, spec, sets, cacheDir, forced } = this.opts;
    const q = (s: string) => shellQuote(s, 'bare');
    const cpus = typeof nodes[0]!.resources.cpus === 'number' ? nodes[0]!.resources.cpus : 1;
    const cases = nodes.map((n, i) => `  ${i}) target=${q(n.id)}${forced.has(n.id) ? `; force=${q(n.id)}` : ''} ;;`);
    const cmd = [process.execPath, join(PACKAGE_ROOT, 'bin', 'pipeline.js'), 'run', spec, '-C', p.workspace, '--cache-dir', cacheDir, '--executor', 'process', '--jobs', String(cpus), ...sets.flatMap((s) => ['--set', s])];
    return [
      '#!/bin/sh',
      // As JSON: a spec path holding a line break must not end the comment and start a command.
      `# pipeline: stage ${JSON.stringify(nodes[0]!.key)} of ${JSON.stringify(relative(p.workspace, join(p.workspace, spec)))}, ${nodes.length} variant(s)`,
      'force=',
      `case "\${SLURM_ARRAY_TASK_ID:-0}" in`,
      ...cases,
      '  *) echo "no variant for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;',
      'esac',
      `exec ${cmd.map(q).join(' ')} "$target" \${force:+--force "$force"}`,
      '',
    ].join('\n');
  }

  /**
   * Follows stage `id`'s job until it ends (submitting it now if it was not submitted with the
   * plan); `onState` hears each change ("slurm job 12_3: pending (Dependency)").
   */
  async wait(node: StageNode, signal: AbortSignal, onState: (text: string) => void): Promise<SlurmOutcome> {
    if (!this.jobs.has(node.id)) await this.submit([node], false);
    const job = this.jobs.get(node.id)!;
    let said = '';
    const since = Date.now();
    for (;;) {
      signal.throwIfAborted();
      await this.refresh();
      const st = this.states.get(job.name);
      if (st === GONE) return { job, ...GONE };
      if (st) {
        const text = `slurm job ${job.name}: ${stateText(st)}`;
        if (text !== said) onState((said = text));
        if (ENDED.has(st.state)) return { job, ...st, exitCode: st.state === 'COMPLETED' ? undefined : await this.exitCode(job.name) };
      } else if (Date.now() - since > 60_000) {
        // Never listed in a minute: the cache tells whether it made its result.
        return { job, ...GONE };
      }
      await delay(this.pollMs, undefined, { signal });
    }
  }

  /**
   * At the end of the driver's run: cancels every job that has not ended (Ctrl-C, a failed
   * stage, stages never reached) and removes the job scripts. Returns the jobs cancelled.
   */
  async finish(): Promise<string[]> {
    await this.refresh(true);
    const open = [...this.jobs.values()]
      .filter((j) => {
        const st = this.states.get(j.name);
        return st !== GONE && !ENDED.has(st?.state ?? 'PENDING');
      })
      .map((j) => j.name);
    if (open.length) await (await loadExeca())('scancel', open, { reject: false });
    await Promise.all(this.scripts.map((f) => rm(f, { force: true })));
    return open;
  }

  /** A job whose stage is in the cache: its Slurm log is not needed (the stage's own log is kept). */
  async done(job: SlurmJob): Promise<void> {
    await rm(job.log, { force: true });
  }

  /** The jobs of stages submitted so far, by stage id. */
  submittedJobs(): Record<string, SlurmJob> {
    return Object.fromEntries(this.jobs);
  }

  /** One squeue call for every job, shared by all waiters and at most once per poll interval. */
  private async refresh(now = false): Promise<void> {
    if (this.refreshing) return this.refreshing;
    if (!now && Date.now() - this.lastRefresh < this.pollMs / 2) return;
    const ids = this.jobIds();
    if (!ids.length) return;
    this.refreshing = (async () => {
      const listed = await queueStates(ids);
      this.lastRefresh = Date.now();
      if (!listed) return; // squeue failed (the controller busy or down): asked again at the next poll
      for (const job of this.jobs.values()) {
        const st = listed.get(job.name);
        const last = this.states.get(job.name);
        if (st) this.states.set(job.name, st);
        // Listed before, now not, without having been seen to end: it left the queue (ended longer
        // ago than MinJobAge). Its last state would otherwise be kept, and followed, forever.
        else if (last && !ENDED.has(last.state)) this.states.set(job.name, GONE);
      }
    })().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async exitCode(name: string): Promise<string | undefined> {
    const r = await (await loadExeca())('scontrol', ['-o', 'show', 'job', name], { reject: false });
    return /\bExitCode=(\d+:\d+)/.exec(r.stdout)?.[1];
  }
}

/** Where `run --detach` leaves the jobs it submitted for a spec, for `pipeline status` to follow. */
function detachedPath(cacheDir: string, workspace: string, spec: string): string {
  return join(cacheDir, 'slurm', 'detached', workspaceId(workspace), `${encodeURIComponent(spec)}.json`);
}

export async function saveDetached(cacheDir: string, workspace: string, spec: string, jobs: Record<string, SlurmJob>): Promise<void> {
  await writeSealed(detachedPath(cacheDir, workspace, spec), { submittedAt: new Date().toISOString(), jobs });
}

/** Stage id -> "slurm job 12_3: running" for the jobs a detached run submitted (those squeue still lists). */
export async function detachedStates(cacheDir: string, workspace: string, spec: string): Promise<Map<string, string>> {
  const v = await readSealed<{ jobs: Record<string, SlurmJob> }>(detachedPath(cacheDir, workspace, spec));
  const out = new Map<string, string>();
  if (!v || v === CORRUPT || typeof v.jobs !== 'object' || !onPath('squeue')) return out;
  const states = (await queueStates([...new Set(Object.values(v.jobs).map((j) => String(j.name).split('_')[0]!))])) ?? new Map();
  for (const [id, job] of Object.entries(v.jobs)) {
    const st = states.get(job.name);
    if (st) out.set(id, `slurm job ${job.name}: ${stateText(st)}`);
  }
  return out;
}

/** Each listed job's (or array task's, `12_3`) state and reason; undefined when squeue fails. */
async function queueStates(ids: string[]): Promise<Map<string, { state: string; reason: string }> | undefined> {
  const out = new Map<string, { state: string; reason: string }>();
  const r = await (await loadExeca())('squeue', ['-h', '-r', '-t', 'all', '-j', ids.join(','), '-o', '%i|%T|%r'], { reject: false });
  // Asked for a single job that has left the queue, squeue fails saying so (asked for several, it
  // lists those it has): that job is not listed. Any other failure tells nothing.
  if (r.exitCode !== 0) return ids.length === 1 && /invalid job id/i.test(r.stderr) ? out : undefined;
  for (const line of r.stdout.split('\n')) {
    const [name, state, reason] = line.trim().split('|');
    if (name && state) out.set(name, { state, reason: reason ?? '' });
  }
  return out;
}

/** `running`, `pending (Dependency)`: a state as the progress lines and status show it. */
function stateText(st: { state: string; reason: string }): string {
  return `${st.state.toLowerCase()}${st.reason && st.reason !== 'None' ? ` (${st.reason})` : ''}`;
}

/** execa, loaded on first use: importing it costs ~70 ms, which a run without Slurm need not pay. */
async function loadExeca(): Promise<typeof import('execa').execa> {
  return (await import('execa')).execa;
}
