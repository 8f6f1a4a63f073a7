// One run at a time per cache folder. The lock is a directory (mkdir is atomic, also on NFS, which a
// Slurm cluster's shared workspace needs) holding its owner; a heartbeat keeps its mtime fresh.
// A waiter takes over a lock whose owner died: same host and the pid is gone, or no heartbeat for
// STALE_MS (another host).
import { hostname } from 'node:os';
import { mkdir, readFile, rm, utimes, writeFile, stat, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { isErrno, tempName } from '../fsutil.ts';

const HEARTBEAT_MS = 2000;
const STALE_MS = 30_000;

interface Owner {
  pid: number;
  host: string;
  since: string;
  command: string;
}

export interface HeldLock {
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return isErrno(e, 'EPERM');
  }
}

export async function acquireLock(cacheDir: string, command: string, onWait: (owner: Owner) => void, signal?: AbortSignal): Promise<HeldLock> {
  await mkdir(cacheDir, { recursive: true });
  const dir = join(cacheDir, 'lock');
  let told = false;
  for (;;) {
    signal?.throwIfAborted();
    try {
      await mkdir(dir);
      const me: Owner = { pid: process.pid, host: hostname(), since: new Date().toISOString(), command };
      await writeFile(join(dir, 'owner.json'), JSON.stringify(me));
      const timer = setInterval(() => {
        const now = new Date();
        utimes(dir, now, now).catch(() => undefined);
      }, HEARTBEAT_MS);
      timer.unref();
      return {
        release: async () => {
          clearInterval(timer);
          await rm(dir, { recursive: true, force: true });
        },
      };
    } catch (e) {
      if (!isErrno(e, 'EEXIST')) throw e;
    }
    const owner = await readOwner(dir);
    if (await isStale(dir, owner)) {
      // Move it aside first: of two waiters breaking the same stale lock, only one rename wins.
      const aside = join(cacheDir, tempName('lock.stale'));
      if (await rename(dir, aside).then(() => true, () => false)) await rm(aside, { recursive: true, force: true });
      continue;
    }
    if (!told && owner) {
      onWait(owner);
      told = true;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

async function readOwner(dir: string): Promise<Owner | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'owner.json'), 'utf8')) as Owner;
  } catch {
    return undefined;
  }
}

async function isStale(dir: string, owner: Owner | undefined): Promise<boolean> {
  const st = await stat(dir).catch(() => undefined);
  if (!st) return false; // released meanwhile: retry mkdir
  if (owner && owner.host === hostname()) return !alive(owner.pid);
  // No owner file yet (being written) or another host: trust the heartbeat.
  return Date.now() - st.mtimeMs > STALE_MS;
}
