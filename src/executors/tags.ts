// Processes a stage started, found by a tag they inherit: every stage process runs with its own
// PIPELINE_PROCESS_TAG in its environment, which its children keep wherever they go -- out of its
// process group and session too (`setsid sleep 30 &`, Python's start_new_session=True, Node's
// spawn({ detached: true })), where a kill of the group no longer reaches them. When the stage
// ends, or the pipeline dies, whatever still carries the tag is ended. (A process that clears its
// own environment, `env -i`, leaves the tag behind; one that does so on purpose is not a stage's
// accident.) Linux: read from /proc; elsewhere no process is found and the group kill stands alone.
import { readdirSync, readFileSync } from 'node:fs';

export const TAG_VAR = 'PIPELINE_PROCESS_TAG';

/** Pids of the processes (other than this one) whose environment carries `tag`. */
export function taggedPids(tag: string): number[] {
  const needle = Buffer.from(`${TAG_VAR}=${tag}\0`);
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let env: Buffer;
    try {
      env = readFileSync(`/proc/${name}/environ`);
    } catch {
      continue; // gone, or not ours to read (then not a stage's either)
    }
    const at = env.indexOf(needle);
    if (at === 0 || (at > 0 && env[at - 1] === 0)) out.push(Number(name));
  }
  return out;
}

/**
 * Sends `sig` to every process carrying `tag`; with SIGKILL, looks again until none is left (one
 * may fork while the others die). Returns how many were signalled.
 */
export function signalTagged(tag: string, sig: NodeJS.Signals): number {
  let sent = 0;
  for (let round = 0; round < 20; round++) {
    const pids = taggedPids(tag);
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
        sent++;
      } catch {
        // gone meanwhile
      }
    }
    if (!pids.length || sig !== 'SIGKILL') break;
  }
  return sent;
}
