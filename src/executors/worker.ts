// Child-process entry for module stages: `node --import tsx worker.ts <job.json>`. Progress goes
// to the parent over IPC when there is one (local runs) and to stderr otherwise (cluster jobs).
// The parent counts the stage as finished only on the 'done' message, sent after stdout and
// stderr are flushed, so that a stage calling process.exit() early cannot pass for a success and
// no line of its output is lost.
import { readFile } from 'node:fs/promises';
import { runModuleJob } from './inline.ts';
import type { StageJob } from './types.ts';

const job = JSON.parse(await readFile(process.argv[2]!, 'utf8')) as StageJob;
// A stage outlives no pipeline: if the pipeline process dies (the worker is handed to another
// parent), the worker ends at once, whatever the stage is doing.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(1);
}, 250).unref();
const ac = new AbortController();
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => ac.abort(new Error(`stopped by ${sig}`)));

const flushed = (s: NodeJS.WriteStream) => new Promise<void>((r) => s.write('', () => r()));
async function end(code: number): Promise<never> {
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  if (code === 0 && process.send) await new Promise<void>((r) => process.send!({ type: 'done' }, undefined, {}, () => r()));
  process.exit(code);
}

// The worker runs nothing else: an error escaping the stage's own promises is the stage's failure.
process.on('uncaughtException', (e) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  void end(1);
});
process.on('unhandledRejection', (e) => {
  process.stderr.write(`unhandled rejection in the stage: ${e instanceof Error ? e.message : String(e)}\n`);
  void end(1);
});

try {
  await runModuleJob(
    job,
    {
      progress: (fraction, message) => {
        if (process.send) process.send({ type: 'progress', fraction, message });
      },
      notice: (message) => {
        if (process.send) process.send({ type: 'notice', message });
        else process.stderr.write(`${message}\n`);
      },
    },
    ac.signal,
  );
  await end(0);
} catch (e) {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  await end(1);
}
