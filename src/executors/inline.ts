// Runs a stage module in the pipeline's own process: no start-up cost, but CPU-bound stages share
// one thread, so this suits light stages. Also what the child-process worker calls.
import { AsyncLocalStorage } from 'node:async_hooks';
import { constants, copyFile, link, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { format } from 'node:util';
import { importStageDefinition } from '../modules.ts';
import { Random } from '../random.ts';
import type { StageContext } from '../stage-api.ts';
import { openStageLog } from './log.ts';
import { StageFailure, type Executor, type JobEvents, type StageJob } from './types.ts';

export async function runModuleJob(job: StageJob, events: JobEvents, signal: AbortSignal, echo = false): Promise<void> {
  if (job.kind !== 'module' || !job.compiled) throw new StageFailure(`inline executor runs module stages only (${job.stageId})`);
  await mkdir(dirname(job.logFile), { recursive: true });
  await mkdir(job.workDir, { recursive: true });
  await mkdir(job.checkpointDir, { recursive: true });
  const log = openStageLog(job.logFile);
  const write = (level: string, msg: string) => {
    const line = `${new Date().toISOString()} ${level} ${msg}\n`;
    log.write(line);
    if (echo) process.stderr.write(line);
  };
  // Stage bundles carry inline source maps, so a failing stage's stack trace names its own lines.
  // Turned on only to run a stage: validating a spec need not scan packages for source maps.
  process.setSourceMapsEnabled(true);
  try {
    const def = await importStageDefinition(job.compiled);
    const ctx: StageContext = {
      stageId: job.stageId,
      params: job.params,
      inputs: job.inputs,
      variants: job.variants ?? {},
      outputs: job.outputs,
      workDir: job.workDir,
      checkpointDir: job.checkpointDir,
      workspace: job.workspace,
      seed: job.seed,
      random: new Random(job.seed),
      log: {
        info: (...a: unknown[]) => write('info', format(...a)),
        warn: (...a: unknown[]) => write('warn', format(...a)),
      },
      progress: (fraction, message) => events.progress(fraction, message),
      notice: (message) => {
        write('notice', message);
        events.notice?.(message);
      },
      signal,
      modulePath: job.compiled,
      importFile: async (src, dest) => {
        if (resolve(src).startsWith(`${resolve(job.storeRoot)}/`)) {
          try {
            await link(src, dest);
            return;
          } catch {
            // another filesystem: copy below
          }
        }
        await copyFile(src, dest, constants.COPYFILE_FICLONE);
      },
    };
    await def.run(ctx);
    signal.throwIfAborted();
    const logFailure = log.failure();
    if (logFailure) throw logFailure;
  } catch (e) {
    if (e instanceof StageFailure && e === log.failure()) throw e;
    write('error', e instanceof Error ? (e.stack ?? e.message) : String(e));
    if (signal.aborted) throw signal.reason;
    throw new StageFailure(e instanceof Error ? e.message : String(e));
  } finally {
    await log.close();
  }
}

/** How long a stage asked to stop has to return before its work is abandoned. */
const STOP_GRACE_MS = 3000;

interface Guarded {
  fail(e: Error): void;
}
const active = new Set<Guarded>();
/** Which inline stage the code running now belongs to (async context follows timers and promises). */
const owner = new AsyncLocalStorage<Guarded>();
let realExit: typeof process.exit | undefined;
const onStray = (e: unknown) => {
  const err = e instanceof Error ? e : new Error(String(e));
  const g = owner.getStore();
  // Blamed on the stage whose code it came from; if that cannot be told, on every inline stage.
  for (const s of g && active.has(g) ? [g] : [...active]) s.fail(new StageFailure(`an error escaped the stage's code (inline stages share the pipeline's process): ${err.message}`));
};

/**
 * An inline stage shares the pipeline's process, so what would end a process must end only the
 * stage: process.exit() throws instead, an uncaught exception or unhandled rejection while inline
 * stages run fails them, and a stage that ignores ctx.signal is abandoned STOP_GRACE_MS after it
 * was asked to stop (the pipeline exits when its run is over, and takes the abandoned work with it).
 */
function guarded(signal: AbortSignal, run: () => Promise<void>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const g: Guarded = { fail: (e) => settle(() => reject(e)) };
    const onAbort = () => {
      timer = setTimeout(() => g.fail(signal.reason instanceof Error ? signal.reason : new StageFailure('stopped')), STOP_GRACE_MS);
    };
    const settle = (how: () => void) => {
      if (!active.delete(g)) return;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (!active.size) {
        process.exit = realExit!;
        process.off('uncaughtException', onStray);
        process.off('unhandledRejection', onStray);
      }
      how();
    };
    if (!active.size) {
      realExit = process.exit;
      process.exit = ((code?: number) => {
        throw new StageFailure(`the stage called process.exit(${code ?? ''}): an inline stage shares the pipeline's process; return from run() or throw instead`);
      }) as typeof process.exit;
      process.on('uncaughtException', onStray);
      process.on('unhandledRejection', onStray);
    }
    active.add(g);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    owner.run(g, run).then(
      () => settle(resolve),
      (e: unknown) => settle(() => reject(e)),
    );
  });
}

export const inlineExecutor: Executor = {
  name: 'inline',
  run: (job, events, signal) => guarded(signal, () => runModuleJob(job, events, signal)),
};
