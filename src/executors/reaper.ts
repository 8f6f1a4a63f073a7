// The reaper: a tiny process that outlives the pipeline only to end its stages. Each stage runs in
// its own process group (so stopping it stops what it started); the pipeline tells the reaper each
// group it starts ("+PGID") and ends ("-PGID") over a pipe. When that pipe closes -- the pipeline
// ended, or was killed (kill -9 of its group, SIGHUP, out of memory) -- every group still
// registered is killed at once, so no stage outlives its run or shares a folder with a rerun. A
// normal end has unregistered every group first, so the reaper then just exits.
// Started detached (its own session), so the signal that killed the pipeline does not reach it.
const groups = new Set<number>();
let buffered = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  buffered += chunk;
  const lines = buffered.split('\n');
  buffered = lines.pop() ?? '';
  for (const line of lines) {
    const pgid = Number(line.slice(1));
    if (!Number.isInteger(pgid) || pgid <= 1) continue;
    if (line[0] === '+') groups.add(pgid);
    else if (line[0] === '-') groups.delete(pgid);
  }
});
process.stdin.on('close', () => {
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  process.exit(0);
});
// SIGHUP/SIGINT from a terminal session the reaper no longer belongs to: keep watching.
for (const sig of ['SIGHUP', 'SIGINT', 'SIGTERM'] as const) process.on(sig, () => undefined);
