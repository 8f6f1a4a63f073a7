// Child-process entry for module stages: `node --import tsx worker.ts <job.json>`. Progress goes
// to the parent over IPC when there is one (local runs) and to stderr otherwise (cluster jobs).
import { readFile } from 'node:fs/promises';
import { runModuleJob } from './inline.ts';
import type { StageJob } from './types.ts';

const job = JSON.parse(await readFile(process.argv[2]!, 'utf8')) as StageJob;
const ac = new AbortController();
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => ac.abort(new Error(`stopped by ${sig}`)));
try {
  await runModuleJob(
    job,
    {
      progress: (fraction, message) => {
        if (process.send) process.send({ type: 'progress', fraction, message });
      },
    },
    ac.signal,
  );
  process.exit(0);
} catch (e) {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
