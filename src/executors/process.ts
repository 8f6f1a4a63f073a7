// Runs a stage in a child process (execa): commands as given (an argument list, no shell unless the
// spec says shell: true), module stages through worker.ts. Output goes to the stage's log, the
// last line doubles as its progress line, and the abort signal kills the process tree.
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StageFailure, type Executor, type JobEvents, type StageJob } from './types.ts';

// The bundled worker (dist/, built by bin/pipeline.js); from sources (tests), through tsx.
const SRC_WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const DIST_WORKER = join(dirname(SRC_WORKER), '..', '..', 'dist', 'worker.mjs');
const PROGRESS_LINE = /^::progress\s+([0-9.]+)(?:\s+(.*))?$/;

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

export const processExecutor: Executor = {
  name: 'process',
  async run(job: StageJob, events: JobEvents, signal: AbortSignal): Promise<void> {
    await mkdir(dirname(job.logFile), { recursive: true });
    await mkdir(job.workDir, { recursive: true });
    const { file, args, shell } = await jobCommand(job);
    const log = createWriteStream(job.logFile, { flags: 'a' });
    const { execa } = await import('execa'); // loaded on first use: it costs ~0.15 s to import
    const child = execa(file, args, {
      cwd: job.workspace,
      env: { ...job.env, PIPELINE_STAGE: job.stageId, PIPELINE_SEED: String(job.seed) },
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
    const stopGroup = () => {
      killGroup(child.pid, 'SIGTERM');
      setTimeout(() => killGroup(child.pid, 'SIGKILL'), 3000).unref();
    };
    signal.addEventListener('abort', stopGroup, { once: true });
    const onExit = () => killGroup(child.pid, 'SIGKILL');
    process.once('exit', onExit);
    child.on('message', (m: unknown) => {
      const msg = m as { type?: string; fraction?: number; message?: string };
      if (msg?.type === 'progress') events.progress(msg.fraction, msg.message);
    });
    let partial = '';
    let lastErrLine = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      const line = chunk.toString('utf8').split('\n').filter((l) => l.trim()).pop();
      if (line) lastErrLine = line.trim();
    });
    const onData = (chunk: Buffer) => {
      log.write(chunk);
      const lines = (partial + chunk.toString('utf8')).split(/\r?\n|\r/);
      partial = lines.pop() ?? '';
      const last = lines.filter((l) => l.trim()).pop();
      if (!last) return;
      // A command can report a fraction by printing `::progress 0.4 message`.
      const m = PROGRESS_LINE.exec(last.trim());
      if (m) events.progress(Number(m[1]), m[2]);
      else events.progress(undefined, last.trim().slice(0, 120));
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    const result = await child;
    signal.removeEventListener('abort', stopGroup);
    process.off('exit', onExit);
    await new Promise<void>((r) => log.end(r));
    if (signal.aborted) throw signal.reason;
    if (result.failed) {
      const why = result.exitCode !== undefined ? `exited with code ${result.exitCode}` : result.signal ? `killed by ${result.signal}` : (result.originalMessage ?? 'failed');
      // A module stage's worker ends with the error's message on stderr: that says more than a code.
      if (job.kind === 'module' && lastErrLine) throw new StageFailure(lastErrLine, result.exitCode);
      throw new StageFailure(`${job.kind === 'command' ? `command '${(job.argv ?? []).join(' ').slice(0, 80)}'` : 'stage'} ${why}`, result.exitCode);
    }
  },
};

function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // already gone
  }
}
