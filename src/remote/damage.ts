// What this machine has found wrong on a remote, so that a push from a good copy repairs it. A push
// trusts what a remote says it holds (a run's record, a pack's list, a loose object's size): checking
// every byte there would make each push a download. So when a pull refuses something (a record that
// fails its checks, a packed or loose object that does not hash to its name, a pack whose list lies)
// or `remote verify` finds it, it is written down here, per remote:
//
//   <cache>/remote-damage/<digest of the remote's place>.json   {runs: [key], packs: [digest], objects: [digest]}
//
// and the next push re-sends those runs whole, sends no object into a pack noted bad or leans on its
// list, and sends noted loose objects again over the bad ones. What a push repaired is struck off.
import { join } from 'node:path';
import { hashBytes } from '../cache/hash.ts';
import { withFileLock } from '../cache/lock.ts';
import { CORRUPT, readSealed, writeSealed } from '../fsutil.ts';
import { isRecord } from '../records.ts';

export interface Damage {
  runs: Set<string>;
  packs: Set<string>;
  objects: Set<string>;
}

const DIGEST = /^[0-9a-f]{32}$/;

async function damagePath(cacheRoot: string, where: string): Promise<string> {
  return join(cacheRoot, 'remote-damage', `${await hashBytes(where)}.json`);
}

function digests(v: unknown): Set<string> {
  return new Set(Array.isArray(v) ? v.filter((d): d is string => typeof d === 'string' && DIGEST.test(d)) : []);
}

/** What is noted against a remote (nothing, when the file is absent or damaged: a push then trusts the remote, as before). */
export async function readDamage(cacheRoot: string, where: string): Promise<Damage> {
  const v = await readSealed<unknown>(await damagePath(cacheRoot, where));
  if (v === undefined || v === CORRUPT || !isRecord(v)) return { runs: new Set(), packs: new Set(), objects: new Set() };
  return { runs: digests(v.runs), packs: digests(v.packs), objects: digests(v.objects) };
}

/** Adds to (`add`) and strikes off (`repaired`) what is noted against a remote, under its lock. */
export async function updateDamage(cacheRoot: string, where: string, add: Partial<Damage>, repaired: Partial<Damage> = {}): Promise<void> {
  const path = await damagePath(cacheRoot, where);
  const size = (d: Partial<Damage>) => (d.runs?.size ?? 0) + (d.packs?.size ?? 0) + (d.objects?.size ?? 0);
  if (!size(add) && !size(repaired)) return;
  // Only striking off: nothing to do unless some of it is noted (the common case: nothing is).
  if (!size(add)) {
    const cur = await readDamage(cacheRoot, where);
    const noted = (['runs', 'packs', 'objects'] as const).some((k) => [...(repaired[k] ?? [])].some((d) => cur[k].has(d)));
    if (!noted) return;
  }
  await withFileLock(path, async () => {
    const cur = await readDamage(cacheRoot, where);
    for (const k of ['runs', 'packs', 'objects'] as const) {
      for (const d of add[k] ?? []) cur[k].add(d);
      for (const d of repaired[k] ?? []) cur[k].delete(d);
    }
    await writeSealed(path, { where, runs: [...cur.runs].sort(), packs: [...cur.packs].sort(), objects: [...cur.objects].sort() });
  });
}
