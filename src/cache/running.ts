// Stages running now, found through the cache: each running stage's private folder (tmp/<session>/
// <stage folder>/, see Store.makeTemp) holds running.json naming it, next to the outputs it is
// writing (out/<output>). `plots show --live` reads declared series from there while a stage trains,
// in this process or another (a Slurm job on another node sharing the cache). Sessions whose lease
// is gone are skipped: their folders are leftovers the next run clears.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../fsutil.ts';
import { sessionLive } from './lock.ts';
import { isRecord } from '../records.ts';

export interface RunningStage {
  stage: string;
  spec: string;
  workspace: string;
  key: string;
  startedAt: string;
}

const MARK = 'running.json';

/** Marks `tmp` (a stage's private folder) as the running stage `info` describes. */
export async function markRunning(tmp: string, info: RunningStage): Promise<void> {
  await writeFileAtomic(join(tmp, MARK), JSON.stringify(info));
}

/** Stages running now in live sessions on the cache at `cacheRoot`, each with the folder its outputs are written in. */
export async function runningStages(cacheRoot: string): Promise<Array<RunningStage & { outDir: string }>> {
  const out: Array<RunningStage & { outDir: string }> = [];
  const root = join(cacheRoot, 'tmp');
  for (const session of await readdir(root).catch(() => [] as string[])) {
    if (!(await sessionLive(cacheRoot, session))) continue;
    for (const folder of await readdir(join(root, session)).catch(() => [] as string[])) {
      const dir = join(root, session, folder);
      let info: unknown;
      try {
        info = JSON.parse(await readFile(join(dir, MARK), 'utf8'));
      } catch {
        continue; // not a stage folder, or one just ending
      }
      if (isRecord(info) && typeof info.stage === 'string' && typeof info.spec === 'string' && typeof info.workspace === 'string' && typeof info.key === 'string' && typeof info.startedAt === 'string') {
        out.push({ stage: info.stage, spec: info.spec, workspace: info.workspace, key: info.key, startedAt: info.startedAt, outDir: join(dir, 'out') });
      }
    }
  }
  return out;
}
