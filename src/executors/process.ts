// Runs a stage in a child process (execa): commands as given (an argument list, no shell unless the
// spec says shell: true), module stages through worker.ts. Output goes to the stage's log, the
// last line doubles as its progress line, and the abort signal kills the process tree. Each stage
// is a process group of its own, watched by the reaper (groups.ts): when the stage's main process
// ends, or the pipeline dies, whatever it left running is killed with it.
import { existsSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clearOwner, evictLeftover, killGroup, ownerRecord, recordOwner, unwatchGroup, watchGroup, watchTag } from './groups.ts';
import { stageEnvironment } from './environment.ts';
import { openStageLog } from './log.ts';
import { signalTagged, TAG_VAR } from './tags.ts';
import { StageFailure, type Executor, type JobEvents, type StageJob } from './types.ts';
import { tempName } from '../fsutil.ts';

// The bundled worker (dist/, built by bin/pipeline.js); from sources (tests), through tsx.
const SRC_WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const DIST_WORKER = join(dirname(SRC_WORKER), '..', '..', 'dist', 'worker.mjs');
const PROGRESS_LINE = /^::progress\s+([0-9.]+)(?:\s+(.*))?$/;
/** How long a stage asked to stop (SIGTERM) has before it is killed. */
const STOP_GRACE_MS = 3000;
/** How long the rest of a finished stage's output may take to be read into its log. */
const DRAIN_MS = 10_000;

/** The command line that runs a job in a fresh process (also used by cluster executors). */
export async function jobCommand(job: StageJob): Promise<{ file: string; args: string[]; shell: boolean }> {
  if (job.kind === 'command') {
    if (job.shell) return { file: job.argv!.join(' '), args: [], shell: true };
    return { file: job.argv![0]!, args: job.argv!.slice(1), shell: false };
  }
  const jobFile = join(job.workDir, '..', 'job.json');
  await writeFile(jobFile, JSON.stringify(job));
  const args = existsSync(DIST_WORKER) ? ['--enable-source-maps', DIST_WORKER, jobFile] : ['--import', import.meta.resolve('tsx'), SRC_WORKER, jobFile];
  return { file: process.execPath, args, shell: false };
}

/**
 * Splits output into lines for the progress display without holding more than the current
 * unfinished line's last few KB (a 32 MB line costs one pass, not one per chunk).
 */
class LastLine {
  private partial = '';
  constructor(private readonly onLine: (line: string) => void) {}
  push(chunk: string): void {
    const nl = Math.max(chunk.lastIndexOf('\n'), chunk.lastIndexOf('\r'));
    if (nl < 0) {
      this.partial = (this.partial + chunk).slice(-4096);
      return;
    }
    const done = (this.partial + chunk.slice(Math.max(0, nl - 4096), nl)).split(/\r?\n|\r/);
    this.partial = chunk.slice(nl + 1).slice(-4096);
    for (let i = done.length - 1; i >= 0; i--) {
      if (done[i]!.trim()) {
        this.onLine(done[i]!.trim());
        return;
      }
    }
  }
}

export const processExecutor: Executor = {
  name: 'process',
  async run(job: StageJob, events: JobEvents, signal: AbortSignal): Promise<void> {
    await mkdir(dirname(job.logFile), { recursive: true });
    await mkdir(job.workDir, { recursive: true });
    await mkdir(dirname(job.checkpointDir), { recursive: true });
    const evicted = await evictLeftover(job.checkpointDir);
    const { file, args, shell } = await jobCommand(job);
    let stopOnLogError = () => undefined as void;
    const log = openStageLog(job.logFile, () => stopOnLogError());
    if (evicted) log.write(`${evicted}\n`);
    const { execa } = await import('execa'); // loaded on first use: it costs ~0.15 s to import
    // Carried by every process the stage starts, also one that leaves its process group (tags.ts).
    const tag = tempName('stage');
    watchTag(tag);
    const child = execa(file, args, {
      cwd: job.workspace,
      env: { ...stageEnvironment(process.env, job.passEnv), ...job.env, PIPELINE_STAGE: job.stageId, PIPELINE_SEED: String(job.seed), [TAG_VAR]: tag },
      extendEnv: false, // not the caller's environment as it is: see environment.ts
      shell,
      stdin: 'ignore',
      buffer: false,
      reject: false,
      ipc: job.kind === 'module',
      serialization: 'json',
      // Its own process group, so that stopping the stage stops everything it started
      // (a shell's children too), not only the direct child.
      detached: true,
      cleanup: true,
    });
    const pgid = child.pid;
    if (pgid) {
      // Recorded at once (synchronously, before anything can interrupt): if the pipeline dies
      // before the reaper hears of this group, the next run finds it here and ends it.
      writeFileSync(join(job.workDir, '..', 'pgid'), JSON.stringify(ownerRecord(pgid, tag)));
      watchGroup(pgid, tag);
    }
    // When the stage's main process ends, whatever it left running ends with it, in its group or
    // out of it (a background job holding stdout open would otherwise keep the stage from finishing).
    child.on('exit', () => {
      killGroup(pgid, 'SIGKILL');
      signalTagged(tag, 'SIGKILL');
    });
    const stopGroup = () => {
      killGroup(pgid, 'SIGTERM');
      signalTagged(tag, 'SIGTERM');
      setTimeout(() => {
        killGroup(pgid, 'SIGKILL');
        signalTagged(tag, 'SIGKILL');
      }, STOP_GRACE_MS).unref();
    };
    signal.addEventListener('abort', stopGroup, { once: true });
    stopOnLogError = stopGroup;
    let finished = false;
    child.on('message', (m: unknown) => {
      const msg = m as { type?: string; fraction?: number; message?: string };
      if (msg?.type === 'progress') events.progress(msg.fraction, msg.message);
      if (msg?.type === 'notice' && msg.message) events.notice?.(msg.message);
      if (msg?.type === 'done') finished = true;
    });
    let lastErrLine = '';
    const errLines = new LastLine((l) => (lastErrLine = l));
    const lines = new LastLine((l) => {
      // A command can report a fraction by printing `::progress 0.4 message`.
      const m = PROGRESS_LINE.exec(l);
      if (m) events.progress(Number(m[1]), m[2]);
      else events.progress(undefined, l.slice(0, 120));
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      log.write(chunk);
      lines.push(chunk.toString('utf8'));
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      log.write(chunk);
      const text = chunk.toString('utf8');
      errLines.push(text);
      lines.push(text);
    });
    // The end of each output stream: the process can exit (and the promise settle) before the last
    // of a long output (a 32 MB line) has been read, and the log is closed after it, not before. A
    // stream something outside the stage still holds open is not waited for past a bound.
    const drained = Promise.all([child.stdout, child.stderr].map((s) => (s ? new Promise<void>((r) => (s.readableEnded || s.destroyed ? r() : (s.once('end', () => r()), s.once('close', () => r())))) : undefined)));
    // Only now (listeners attached synchronously above, so no output is missed).
    if (pgid) await recordOwner(job.checkpointDir, pgid, tag);
    const result = await child;
    await Promise.race([drained, new Promise((r) => setTimeout(r, DRAIN_MS).unref())]);
    unwatchGroup(pgid, tag);
    await clearOwner(job.checkpointDir);
    signal.removeEventListener('abort', stopGroup);
    await log.close();
    if (signal.aborted) throw signal.reason;
    const logFailure = log.failure();
    if (logFailure) throw logFailure;
    if (result.failed) {
      const why = result.exitCode !== undefined ? `exited with code ${result.exitCode}` : result.signal ? `killed by ${result.signal}` : (result.originalMessage ?? 'failed');
      // A module stage's worker ends with the error's message on stderr: that says more than a code.
      if (job.kind === 'module' && lastErrLine) throw new StageFailure(lastErrLine, result.exitCode);
      throw new StageFailure(`${job.kind === 'command' ? `command '${(job.argv ?? []).join(' ').slice(0, 80)}'` : 'stage'} ${why}`, result.exitCode);
    }
    // A module stage that ends its process itself (process.exit(0) mid-run) has not finished.
    if (job.kind === 'module' && !finished) throw new StageFailure('the stage module ended its process before run() finished (process.exit() in a stage ends it early: return from run() instead)');
  },
};
