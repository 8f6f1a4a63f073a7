// Process groups of running stages: registered with the reaper (reaper.ts), so that they die with
// the pipeline however it ends, and recorded beside a stage's checkpoint folder, so that a rerun
// never shares that folder with a leftover process of an earlier run.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signalTagged } from './tags.ts';

const SRC_REAPER = fileURLToPath(new URL('./reaper.ts', import.meta.url));
const DIST_REAPER = join(dirname(SRC_REAPER), '..', '..', 'dist', 'reaper.mjs');

let reaper: ChildProcess | undefined;

function reaperProcess(): ChildProcess {
  if (!reaper) {
    const args = existsSync(DIST_REAPER) ? [DIST_REAPER] : ['--import', import.meta.resolve('tsx'), SRC_REAPER];
    reaper = spawn(process.execPath, args, { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    reaper.unref();
    (reaper.stdin as unknown as { unref(): void }).unref();
    reaper.stdin!.on('error', () => undefined);
  }
  return reaper;
}

/** Registers a stage's process group, and the tag its processes carry (see tags.ts). */
export function watchGroup(pgid: number, tag?: string): void {
  reaperProcess().stdin!.write(`+${pgid}${tag ? ` ${tag}` : ''}\n`);
}

/**
 * Registers a stage's tag before its process starts: the stage may start processes (and leave its
 * group) before the pipeline, busy elsewhere, hears its process id back; if the pipeline dies in
 * that moment, the reaper still ends everything carrying the tag.
 */
export function watchTag(tag: string): void {
  reaperProcess().stdin!.write(`+0 ${tag}\n`);
}

export function unwatchGroup(pgid: number | undefined, tag?: string): void {
  if (pgid) reaper?.stdin?.write(`-${pgid}\n`);
  if (tag) reaper?.stdin?.write(`-0 ${tag}\n`);
}

export function killGroup(pgid: number | undefined, sig: NodeJS.Signals): void {
  if (!pgid) return;
  try {
    process.kill(-pgid, sig);
  } catch {
    // already gone
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Start time of a process (clock ticks since boot), to tell a reused pid from the one recorded. */
function startTime(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[19];
  } catch {
    return undefined;
  }
}

/** A stage's process group as recorded on disk: host, group id, and its leader's start time. */
export interface Owner {
  host: string;
  pgid: number;
  started?: string;
  /** The environment tag of the stage's processes (tags.ts): reaches those that left the group. */
  tag?: string;
}

export function ownerRecord(pgid: number, tag?: string): Owner {
  return { host: hostname(), pgid, started: startTime(pgid), tag };
}

const ownerFile = (checkpointDir: string) => `${checkpointDir}.owner`;

/**
 * Kills the process group recorded in `file` if it still lives on this host (the same process,
 * not a reused pid) and waits for it. Returns its id when it did.
 */
export async function killRecorded(file: string): Promise<number | undefined> {
  let owner: Owner;
  try {
    owner = JSON.parse(readFileSync(file, 'utf8')) as Owner;
  } catch {
    return undefined;
  }
  if (owner.host !== hostname() || !Number.isInteger(owner.pgid) || owner.pgid <= 1) return undefined;
  // Processes that left the group are found by their tag, whether or not the group still lives.
  const escaped = typeof owner.tag === 'string' && owner.tag ? signalTagged(owner.tag, 'SIGKILL') : 0;
  if (!groupAlive(owner.pgid) || (owner.started && startTime(owner.pgid) !== undefined && startTime(owner.pgid) !== owner.started)) return escaped ? owner.pgid : undefined;
  killGroup(owner.pgid, 'SIGKILL');
  for (let i = 0; i < 100 && groupAlive(owner.pgid); i++) await new Promise((r) => setTimeout(r, 50));
  return owner.pgid;
}

/**
 * Before a stage starts: a process group of an earlier run of the same stage that still lives
 * (its pipeline died) is killed and waited for. Returns a line saying so, or undefined.
 */
export async function evictLeftover(checkpointDir: string): Promise<string | undefined> {
  const pgid = await killRecorded(ownerFile(checkpointDir));
  return pgid === undefined ? undefined : `stopped process group ${pgid}, left running by an earlier run of this stage, before reusing its checkpoint folder`;
}

export async function recordOwner(checkpointDir: string, pgid: number, tag?: string): Promise<void> {
  await writeFile(ownerFile(checkpointDir), JSON.stringify(ownerRecord(pgid, tag)));
}

/** Starts the reaper now, so that it is there before the first stage. */
export function startReaper(): void {
  reaperProcess();
}

export async function clearOwner(checkpointDir: string): Promise<void> {
  await rm(ownerFile(checkpointDir), { force: true });
}
