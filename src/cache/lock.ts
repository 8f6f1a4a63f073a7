// Locks on a cache that several processes share: two users' runs, the jobs of a Slurm array, hosts
// on one cluster filesystem. Every lock is a directory (mkdir is atomic, also on NFS) holding its
// owner; a heartbeat keeps its mtime fresh, and whoever waits breaks a lock whose owner died (same
// host and the pid is gone, or no heartbeat for STALE_MS from another host).
//  - a run lease (shared, `leases/<host>-<pid>`): every run holds one; any number at once.
//  - the cache lock (exclusive, `lock/`): gc and verify; granted once no lease is held, and no lease
//    is granted while it is held.
//  - a stage-key lock (exclusive, `keys/<key>`): one process computes a given stage at a time; the
//    others wait, then take its result from the store.
//  - an index lock (`<file>.lock`): the read-modify-write of one shared index file.
import { hostname } from 'node:os';
import { mkdir, readFile, readdir, rm, utimes, writeFile, stat, rename } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { isErrno, tempName } from '../fsutil.ts';

const HEARTBEAT_MS = 2000;
const STALE_MS = 30_000;

export interface Owner {
  pid: number;
  host: string;
  since: string;
  command: string;
}

export interface HeldLock {
  release(): Promise<void>;
  /** Whether someone else held it first (what they made may now exist). */
  waited: boolean;
}

interface WaitOptions {
  /** Called once, when the lock is found held by someone else. */
  onWait?: (owner: Owner) => void;
  signal?: AbortSignal;
  pollMs?: number;
}

/** This process's name among a cache's users: `<host>-<pid>` (its lease, its temp folder). */
export function sessionId(): string {
  return `${hostname()}-${process.pid}`;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return isErrno(e, 'EPERM');
  }
}

/** Takes the exclusive lock `dir`, waiting while a live owner holds it. */
export async function lockDir(dir: string, command: string, opts: WaitOptions = {}): Promise<HeldLock> {
  let told = false;
  for (let attempt = 0; ; attempt++) {
    opts.signal?.throwIfAborted();
    const held = await tryHold(dir, command, false);
    if (held) return { ...held, waited: attempt > 0 };
    const owner = await readOwner(dir);
    if (await breakIfStale(dir, owner)) continue;
    if (!told && owner) {
      opts.onWait?.(owner);
      told = true;
    }
    await delay(opts.pollMs ?? 150, undefined, { signal: opts.signal });
  }
}

/** Runs `fn` holding `<file>.lock`: for read-modify-write of an index others update too. */
export async function withFileLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(join(file, '..'), { recursive: true });
  const lock = await lockDir(`${file}.lock`, 'index update', { pollMs: 20 });
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/** A run's shared lease on the cache: waits while gc or verify holds the cache lock. */
export async function acquireLease(root: string, command: string, opts: WaitOptions = {}): Promise<HeldLock> {
  const exclusive = join(root, 'lock');
  await mkdir(join(root, 'leases'), { recursive: true });
  let told = false;
  for (;;) {
    opts.signal?.throwIfAborted();
    if (!(await liveLock(exclusive))) {
      const lease = join(root, 'leases', sessionId());
      await rm(lease, { recursive: true, force: true }); // an earlier lease of this pid (a run before, or a dead process's)
      const held = (await tryHold(lease, command, true))!;
      // gc may have taken the cache lock between the check and the lease: it did not see this
      // lease when it looked, so this run steps back.
      if (!(await liveLock(exclusive))) return held;
      await held.release();
    }
    const owner = await readOwner(exclusive);
    if (!told && owner) {
      opts.onWait?.(owner);
      told = true;
    }
    await delay(opts.pollMs ?? 150, undefined, { signal: opts.signal });
  }
}

/** The cache lock, for gc and verify: first the lock, then every run's lease ended. */
export async function acquireExclusive(root: string, command: string, opts: WaitOptions = {}): Promise<HeldLock> {
  await mkdir(root, { recursive: true });
  const lock = await lockDir(join(root, 'lock'), command, opts);
  let told = false;
  try {
    for (;;) {
      const live = [];
      for (const id of await readdir(join(root, 'leases')).catch(() => [] as string[])) {
        const lease = join(root, 'leases', id);
        if (await liveLock(lease)) live.push(lease);
      }
      if (!live.length) return lock;
      const owner = await readOwner(live[0]!);
      if (!told && owner) {
        opts.onWait?.(owner);
        told = true;
      }
      await delay(opts.pollMs ?? 150, undefined, { signal: opts.signal });
    }
  } catch (e) {
    await lock.release();
    throw e;
  }
}

/** Whether the session that named a temp folder or lease still runs (its lease is live). */
export async function sessionLive(root: string, session: string): Promise<boolean> {
  return liveLock(join(root, 'leases', session));
}

/** Whether `dir` is held by a live owner; a dead owner's lock is broken on the way. */
async function liveLock(dir: string): Promise<boolean> {
  if (!(await stat(dir).catch(() => undefined))) return false;
  return !(await breakIfStale(dir, await readOwner(dir)));
}

async function tryHold(dir: string, command: string, recursive: boolean): Promise<HeldLock | undefined> {
  try {
    await mkdir(dir, { recursive });
  } catch (e) {
    if (isErrno(e, 'EEXIST')) return undefined;
    throw e;
  }
  const me: Owner = { pid: process.pid, host: hostname(), since: new Date().toISOString(), command };
  // Written aside then renamed in: a reader never sees half an owner. If it cannot be written (a
  // full disk), the lock is not held: left without an owner, it would stop everyone until it aged.
  const tmp = join(dir, `.${tempName('owner')}`);
  try {
    await writeFile(tmp, JSON.stringify(me));
    await rename(tmp, join(dir, 'owner.json'));
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  const timer = setInterval(() => {
    const now = new Date();
    utimes(dir, now, now).catch(() => undefined);
  }, HEARTBEAT_MS);
  timer.unref();
  return {
    waited: false,
    release: async () => {
      clearInterval(timer);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function readOwner(dir: string): Promise<Owner | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'owner.json'), 'utf8')) as Owner;
  } catch {
    return undefined;
  }
}

/** Breaks the lock if its owner died; true when it was broken (or is gone). */
async function breakIfStale(dir: string, owner: Owner | undefined): Promise<boolean> {
  const st = await stat(dir).catch(() => undefined);
  if (!st) return true; // released meanwhile
  const dead = owner && owner.host === hostname() ? !pidAlive(owner.pid) : Date.now() - st.mtimeMs > STALE_MS; // no owner yet (being written) or another host: the heartbeat says
  if (!dead) return false;
  // Moved aside first: of two waiters breaking the same stale lock, only one rename wins.
  const aside = join(dir, '..', tempName('.stale'));
  if (await rename(dir, aside).then(() => true, () => false)) await rm(aside, { recursive: true, force: true });
  return true;
}
