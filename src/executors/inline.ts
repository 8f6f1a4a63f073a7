// Runs a stage module in the pipeline's own process: no start-up cost, but CPU-bound stages share
// one thread, so this suits light stages. Also what the child-process worker calls.
import { createWriteStream } from 'node:fs';
import { constants, copyFile, link, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { format } from 'node:util';
import { importStageDefinition } from '../modules.ts';
import { Random } from '../random.ts';
import type { StageContext } from '../stage-api.ts';
import { StageFailure, type Executor, type JobEvents, type StageJob } from './types.ts';

export async function runModuleJob(job: StageJob, events: JobEvents, signal: AbortSignal, echo = false): Promise<void> {
  if (job.kind !== 'module' || !job.compiled) throw new StageFailure(`inline executor runs module stages only (${job.stageId})`);
  await mkdir(dirname(job.logFile), { recursive: true });
  await mkdir(job.workDir, { recursive: true });
  await mkdir(job.checkpointDir, { recursive: true });
  const log = createWriteStream(job.logFile, { flags: 'a' });
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
  } catch (e) {
    write('error', e instanceof Error ? (e.stack ?? e.message) : String(e));
    if (signal.aborted) throw signal.reason;
    throw new StageFailure(e instanceof Error ? e.message : String(e));
  } finally {
    await new Promise<void>((r) => log.end(r));
  }
}

export const inlineExecutor: Executor = {
  name: 'inline',
  run: (job, events, signal) => runModuleJob(job, events, signal),
};
