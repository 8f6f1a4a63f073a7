// The reaper: a tiny process that outlives the pipeline only to end its stages. Each stage runs in
// its own process group (so stopping it stops what it started); the pipeline tells the reaper each
// group it starts ("+PGID TAG") and ends ("-PGID") over a pipe. When that pipe closes -- the pipeline
// ended, or was killed (kill -9 of its group, SIGHUP, out of memory) -- every group still
// registered is killed at once, so no stage outlives its run or shares a folder with a rerun. A
// normal end has unregistered every group first, so the reaper then just exits.
// Each stage's processes also carry an environment tag ("+PGID TAG"), which reaches those that
// left the group (setsid): they are ended by it too. A tag alone ("+0 TAG", "-0 TAG") is registered
// before a stage's process starts, so that nothing it starts escapes while the pipeline has not yet
// learnt its process id. Started detached (its own session), so the signal that killed the pipeline
// does not reach it.
import { signalTagged } from './tags.ts';

const groups = new Map<number, string | undefined>();
const tags = new Set<string>();
let buffered = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  buffered += chunk;
  const lines = buffered.split('\n');
  buffered = lines.pop() ?? '';
  for (const line of lines) {
    const [id, tag] = line.slice(1).split(' ');
    const pgid = Number(id);
    if (pgid === 0 && tag) {
      if (line[0] === '+') tags.add(tag);
      else if (line[0] === '-') tags.delete(tag);
      continue;
    }
    if (!Number.isInteger(pgid) || pgid <= 1) continue;
    if (line[0] === '+') groups.set(pgid, tag || undefined);
    else if (line[0] === '-') groups.delete(pgid);
  }
});
process.stdin.on('close', () => {
  for (const [pgid, tag] of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
    if (tag) signalTagged(tag, 'SIGKILL');
  }
  for (const tag of tags) signalTagged(tag, 'SIGKILL');
  process.exit(0);
});
// SIGHUP/SIGINT from a terminal session the reaper no longer belongs to: keep watching.
for (const sig of ['SIGHUP', 'SIGINT', 'SIGTERM'] as const) process.on(sig, () => undefined);
