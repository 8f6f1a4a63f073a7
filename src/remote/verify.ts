// `pipeline remote verify [--repair]`: every run on a remote checked as a pull would check it, without
// installing anything: its record (seal, key, names, a trusted signature), its folders' file lists,
// and every object it needs, loose or packed, hashed against its digest. Packs are read once each
// (every claim on a pack, from its list and from runs' indexes, checked against the same bytes).
//
// --repair: what is bad is taken off the remote (bad loose objects and file lists, the lists of
// packs that lie, so no push leans on them), runs this cache holds good copies of are sent again
// (push.ts, whole), and the records of the others are removed: a damaged run is worse than none,
// and its stage is then computed by whoever needs it. Everything found is also noted (damage.ts).
import { dirDigest, type FileEntry } from '../cache/digests.ts';
import { fingerprintKey } from '../cache/fingerprint.ts';
import { hashBytes } from '../cache/hash.ts';
import { isRunRecordFor, manifestProblem, type OutputDigest, type Store } from '../cache/store.ts';
import { CORRUPT, parseSealed } from '../fsutil.ts';
import { printable } from '../text.ts';
import { updateDamage } from './damage.ts';
import { eachLimited } from './pool.ts';
import { indexName, listedPacks, listName, packName, parseIndex, parseList, PACK_BYTES } from './pack.ts';
import { BadObject, manifestName, MAX_BYTES, objectName, objectsIn, runKeysIn, runName, type Remote } from './remote.ts';
import { pushRuns, type TransferOptions } from './push.ts';
import { acceptedKeys, signatureProblem } from './trust.ts';

export interface VerifyResult {
  runs: number;
  objects: number;
  /** Run key -> why it cannot be served (stage named when the record says it). */
  badRuns: Map<string, string>;
  /** Runs validly signed, but by keys not trusted here: not damage (trust the key to use them). */
  untrusted: Map<string, string>;
  badObjects: Set<string>;
  badPacks: Set<string>;
  badManifests: Set<string>;
  /** --repair: runs sent again from this cache, and runs whose records were removed. */
  resent: string[];
  removed: string[];
}

const bytesOrBad = async (remote: Remote, name: string, max: number): Promise<Buffer | 'bad' | undefined> => {
  try {
    return await remote.getBytes(name, max);
  } catch (e) {
    if (e instanceof BadObject) return 'bad';
    throw e;
  }
};

export async function verifyRemote(store: Store, remote: Remote, opts: TransferOptions & { repair: boolean }): Promise<VerifyResult> {
  const [runKeys, looseSizes, packFiles] = await Promise.all([remote.list('runs/').then(runKeysIn), remote.list('objects/').then(objectsIn), remote.list('packs/')]);
  const accepted = acceptedKeys();
  const r: VerifyResult = { runs: runKeys.size, objects: 0, badRuns: new Map(), untrusted: new Map(), badObjects: new Set(), badPacks: new Set(), badManifests: new Set(), resent: [], removed: [] };
  const manifests = new Map<string, Promise<FileEntry[] | undefined>>();
  const manifest = (digest: string) => {
    let p = manifests.get(digest);
    if (!p) {
      p = (async () => {
        const b = await bytesOrBad(remote, manifestName(digest), MAX_BYTES.manifest);
        let m: unknown;
        try {
          m = b && b !== 'bad' ? JSON.parse(b.toString('utf8')) : undefined;
        } catch {
          m = undefined;
        }
        if (b !== undefined && (manifestProblem(m) !== undefined || (await dirDigest(m as FileEntry[])).digest !== digest)) r.badManifests.add(digest);
        return b === undefined || r.badManifests.has(digest) ? undefined : (m as FileEntry[]);
      })();
      manifests.set(digest, p);
    }
    return p;
  };
  // Pack digest -> claims on it: [object digest, offset, size, made by its own list?] from its list and runs' indexes.
  const claims = new Map<string, Array<[string, number, number, boolean]>>();
  const claim = (pack: string, c: [string, number, number, boolean]) => claims.set(pack, [...(claims.get(pack) ?? []), c]);
  // What each run needs: run -> [digest, size] of its objects, and which of them its index places in packs.
  const needs = new Map<string, { stage: string; objects: Array<[string, number]>; packed: Map<string, { pack: string; offset: number }> }>();

  await eachLimited([...runKeys], opts.jobs, async (key) => {
    opts.signal?.throwIfAborted();
    const bad = (why: string) => void r.badRuns.set(key, why);
    const b = await bytesOrBad(remote, runName(key), MAX_BYTES.record);
    if (b === 'bad' || b === undefined) return bad(`${runName(key)} is not a plain file of bounded size`);
    const rec = await parseSealed<unknown>(b.toString('utf8'));
    if (rec === CORRUPT || !isRunRecordFor(rec, key)) return bad(`${runName(key)} is damaged (its seal or shape is wrong)`);
    if ((await fingerprintKey(rec.fingerprint)) !== key) return bad(`${runName(key)} is filed under a key its fingerprint does not have`);
    const stage = `stage ${printable(rec.stage)}`;
    const unsigned = signatureProblem(rec as unknown as Record<string, unknown>, accepted);
    if (unsigned?.kind === 'forged') return bad(`${stage}: ${unsigned.why}`);
    // Someone else's: its content is checked all the same (damage is damage), but it is not this machine's to replace.
    if (unsigned) r.untrusted.set(key, `${stage}: ${unsigned.why}`);
    const objects: Array<[string, number]> = [];
    for (const out of Object.values(rec.outputs) as OutputDigest[]) {
      if (out.kind === 'file') objects.push([out.digest, out.size]);
      else {
        const m = await manifest(out.digest);
        if (!m) return bad(`${stage}: ${manifestName(out.digest)} is ${r.badManifests.has(out.digest) ? 'damaged' : 'missing'}`);
        objects.push(...m.map((f): [string, number] => [f.digest, f.size]));
      }
    }
    const packed = new Map<string, { pack: string; offset: number }>();
    const idx = await bytesOrBad(remote, indexName(key), MAX_BYTES.index);
    if (idx === 'bad') return bad(`${stage}: ${indexName(key)} is not a plain file of bounded size`);
    if (idx) {
      const entries = parseIndex(idx.toString('utf8'));
      if (!entries) return bad(`${stage}: ${indexName(key)} is damaged`);
      for (const [d, pack, offset, size] of entries) {
        if (offset + size > PACK_BYTES) continue;
        packed.set(d, { pack, offset });
        claim(pack, [d, offset, size, false]);
      }
    }
    needs.set(key, { stage, objects, packed });
  });
  // Every pack's own list, claimed too (a push leans on it).
  const lists = listedPacks(packFiles.keys());
  await eachLimited(lists, opts.jobs, async (pack) => {
    const b = await bytesOrBad(remote, listName(pack), MAX_BYTES.list);
    const list = b && b !== 'bad' ? parseList(b.toString('utf8')) : undefined;
    if (!list) return void r.badPacks.add(pack);
    for (const [d, offset, size] of list) claim(pack, [d, offset, size, true]);
  });
  // Each pack read once; each claim hashed from its bytes. A false claim of its own list makes the
  // pack's list bad (pushes lean on it); a false claim of an index makes only that run bad.
  const badInPack = new Map<string, Set<string>>();
  await eachLimited([...claims], Math.min(opts.jobs, 4), async ([pack, cs]) => {
    opts.signal?.throwIfAborted();
    const bytes = await bytesOrBad(remote, packName(pack), PACK_BYTES);
    const wrong = new Set<string>();
    for (const [d, offset, size, own] of cs) {
      const piece = bytes && bytes !== 'bad' ? bytes.subarray(offset, offset + size) : undefined;
      if (piece && piece.length === size && (await hashBytes(piece)) === d) continue;
      wrong.add(`${d}@${offset}`);
      if (own) r.badPacks.add(pack);
    }
    r.objects += new Set(cs.map(([d]) => d)).size;
    if (wrong.size) badInPack.set(pack, wrong);
  });
  // Loose objects: each one a run needs and no pack of its index holds, downloaded and hashed.
  const loose = new Map<string, number>();
  for (const n of needs.values()) for (const [d, size] of n.objects) if (!n.packed.has(d)) loose.set(d, size);
  await eachLimited([...loose], opts.jobs, async ([d, size]) => {
    opts.signal?.throwIfAborted();
    if (looseSizes.get(d) !== size) return void r.badObjects.add(d);
    const b = await bytesOrBad(remote, objectName(d), size);
    if (!b || b === 'bad' || b.length !== size || (await hashBytes(b)) !== d) r.badObjects.add(d);
    r.objects++;
  });
  for (const [key, n] of needs) {
    const falseClaim = (d: string) => {
      const at = n.packed.get(d);
      return at ? !!badInPack.get(at.pack)?.has(`${d}@${at.offset}`) : r.badObjects.has(d);
    };
    const wrong = n.objects.find(([d]) => falseClaim(d));
    if (wrong) {
      const at = n.packed.get(wrong[0]);
      r.badRuns.set(key, `${n.stage}: object ${wrong[0]} ${at ? `in ${packName(at.pack)}` : 'loose'} is missing or does not match its digest`);
      r.untrusted.delete(key);
    }
  }
  await updateDamage(store.root, remote.where, { runs: new Set(r.badRuns.keys()), packs: r.badPacks, objects: r.badObjects });
  if (opts.repair) await repair(store, remote, r, opts);
  return r;
}

async function repair(store: Store, remote: Remote, r: VerifyResult, opts: TransferOptions): Promise<void> {
  // What lies goes first, so the push below neither trusts it nor is shadowed by it.
  await eachLimited([...r.badObjects].map(objectName).concat([...r.badManifests].map(manifestName), [...r.badPacks].map(listName)), opts.jobs, (name) => remote.remove(name));
  const local = new Set(await store.runKeys());
  const mine = [...r.badRuns.keys()].filter((k) => local.has(k));
  if (mine.length) {
    const pushed = await pushRuns(store, remote, mine, { ...opts, resend: new Set(mine) });
    r.resent.push(...pushed.sent);
  }
  const sent = new Set(r.resent);
  const gone = [...r.badRuns.keys()].filter((k) => !sent.has(k));
  await eachLimited(gone, opts.jobs, (k) => remote.remove(runName(k)));
  r.removed.push(...gone);
  await updateDamage(store.root, remote.where, {}, { runs: new Set(gone) });
}
