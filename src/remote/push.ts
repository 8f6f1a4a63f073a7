// Sending runs to a remote cache. Content-addressed: one listing of the remote's run records
// settles a push with nothing new (a record there means everything it names was sent before it);
// for the rest, one listing of its objects, and only the objects it lacks go, many at once, each
// rehashed first so a damaged local copy is never sent under a good name: large ones loose, small
// ones in packs (pack.ts) with an index per run. Records go last, after every object, pack, index,
// manifest and log of theirs: a push cut short leaves only unnamed files behind, and no run. Two
// machines pushing at once write content-named files and indexes that each point at packs already there.
// Each record leaves signed with this user's key (trust.ts): what another machine accepts from the
// remote is what a key it trusts vouched for, not whatever someone with write access put there.
// What a pull or `remote verify` found damaged on the remote (damage.ts) is sent again.
import { readFile } from 'node:fs/promises';
import { CORRUPT, parseSealed, sealedText, writeFileAtomic } from '../fsutil.ts';
import { statSync } from 'node:fs';
import { hashBytes, hashFile } from '../cache/hash.ts';
import type { RunRecord, Store } from '../cache/store.ts';
import { readDamage, updateDamage } from './damage.ts';
import { Meter, type ProgressSink } from './meter.ts';
import { eachLimited } from './pool.ts';
import { PACK_OBJECT_MAX, catalogPath, indexName, layoutPacks, listName, listedPacks, packName, parseList, type IndexEntry } from './pack.ts';
import { BadObject, logName, manifestName, MAX_BYTES, objectName, objectsIn, runKeysIn, runName, RemoteError, type Remote } from './remote.ts';
import { signedByMe, signRecord } from './trust.ts';

/** Objects up to this size move as one buffer (hashed from the same bytes); larger ones stream from and to files. */
export const IN_MEMORY = 8 << 20;

export interface PushResult {
  /** Runs sent now. */
  sent: string[];
  /** Runs the remote had already. */
  had: string[];
  /** Runs not sent, and why (not in the local cache, damaged there). */
  skipped: Array<{ key: string; why: string }>;
  objects: number;
  bytes: number;
  seconds: number;
}

export interface TransferOptions {
  /** Files moved at once. */
  jobs: number;
  /** Where progress goes (default stderr). */
  out?: ProgressSink;
  /** Stops the transfer between files (one Ctrl-C). */
  signal?: AbortSignal;
  /** Runs to send again although the remote has their records (`remote verify --repair`). */
  resend?: Set<string>;
}

export async function pushRuns(store: Store, remote: Remote, keys: string[], opts: TransferOptions): Promise<PushResult> {
  const t0 = Date.now();
  const damage = await readDamage(store.root, remote.where);
  const onRemote = runKeysIn(await remote.list('runs/'));
  // A run noted damaged there (or named for resending) is sent again, whole.
  for (const k of [...damage.runs, ...(opts.resend ?? [])]) onRemote.delete(k);
  const wanted = [...new Set(keys)];
  const result: PushResult = { sent: [], had: wanted.filter((k) => onRemote.has(k)), skipped: [], objects: 0, bytes: 0, seconds: 0 };
  const todo: RunRecord[] = [];
  for (const key of wanted.filter((k) => !onRemote.has(k))) {
    const rec = await store.readRun(key);
    if (!rec) result.skipped.push({ key, why: 'not in the local cache' });
    else if (!(await store.hasOutputs(rec))) result.skipped.push({ key, why: 'its outputs are missing from the local cache, or damaged there (rerun the stage)' });
    else todo.push(rec);
  }
  if (!todo.length) return { ...result, seconds: (Date.now() - t0) / 1000 };

  const [objects, manifests, packFiles] = await Promise.all([remote.list('objects/').then(objectsIn), remote.list('manifests/'), remote.list('packs/')]);
  // Objects packed by earlier pushes: where they are (each pack's list read once per cache).
  const inPacks = await packCatalog(store, remote, listedPacks(packFiles.keys()).filter((p) => !damage.packs.has(p)), opts.jobs);
  // What each run needs sent, and what of it earlier packs hold.
  const needs = new Map<string, Array<[string, number]>>();
  const packedBefore = new Map<string, IndexEntry[]>();
  const sendManifests = new Set<string>();
  for (const rec of todo) {
    const mine = new Map<string, number>();
    const before = new Map<string, IndexEntry>();
    for (const out of Object.values(rec.outputs)) {
      if (out.kind === 'dir' && !manifests.has(manifestName(out.digest))) sendManifests.add(out.digest);
      for (const [d, size] of await store.outputObjectSizes(out)) {
        const at = inPacks.get(d);
        if (at && at[3] === size) before.set(d, at);
        else if (objects.get(d) !== size || damage.objects.has(d)) mine.set(d, size);
      }
    }
    needs.set(rec.key, [...mine]);
    packedBefore.set(rec.key, [...before.values()]);
  }
  // Small objects go in packs (laid out run by run), large ones loose.
  const { packs, placed } = layoutPacks([...needs.values()].map((list) => list.filter(([, size]) => size <= PACK_OBJECT_MAX)));
  const loose = new Map([...needs.values()].flat().filter(([d]) => !placed.has(d)));
  const count = loose.size + placed.size;
  const total = [...loose.values(), ...[...placed.values()].map((p) => p.size)].reduce((a, b) => a + b, 0);
  const meter = new Meter(`push to ${remote.where}`, count, total, opts.out);
  const damaged = (path: string) => new RemoteError(`the local object ${path} does not match its digest: nothing of its runs was sent; run \`pipeline verify\` (it drops the damaged copy) and rerun the stage`);
  /** An object's bytes, read once and checked against its digest before they go anywhere. */
  const readChecked = async (digest: string, size: number): Promise<Buffer> => {
    const bytes = await readFile(store.objectPath(digest));
    if (bytes.length !== size || (await hashBytes(bytes)) !== digest) throw damaged(store.objectPath(digest));
    return bytes;
  };
  const packNames: string[] = new Array(packs.length);
  type Item = { loose: [string, number] } | { pack: number } | { manifest: string } | { log: string };
  const items: Item[] = [...packs.keys()].map((pack): Item => ({ pack })).concat([...loose].map((o) => ({ loose: o })), [...sendManifests].map((manifest) => ({ manifest })), todo.map((r) => ({ log: r.key })));
  try {
    await eachLimited(items, opts.jobs, async (item) => {
      opts.signal?.throwIfAborted();
      if ('pack' in item) {
        const list = packs[item.pack]!;
        const contents: Buffer[] = new Array(list.length);
        await eachLimited([...list.keys()], 8, async (i) => {
          contents[i] = await readChecked(...list[i]!);
        });
        const bytes = Buffer.concat(contents);
        const digest = (packNames[item.pack] = await hashBytes(bytes));
        await remote.putBytes(packName(digest), bytes);
        // Its list after it: a list always names a pack that is there.
        let offset = 0;
        await remote.putBytes(listName(digest), Buffer.from(JSON.stringify(list.map(([d, size]) => [d, (offset += size) - size, size]))));
        meter.addBytes(bytes.length);
        for (let i = 0; i < list.length; i++) meter.fileDone();
      } else if ('loose' in item) {
        const [digest, size] = item.loose;
        if (size <= IN_MEMORY) {
          await remote.putBytes(objectName(digest), await readChecked(digest, size));
          meter.addBytes(size);
        } else {
          const path = store.objectPath(digest);
          const h = await hashFile(path);
          if (h.digest !== digest || h.size !== size) throw damaged(path);
          await remote.put(objectName(digest), path, size, (n) => meter.addBytes(n));
        }
        meter.fileDone();
      } else if ('manifest' in item) {
        await remote.putBytes(manifestName(item.manifest), await readFile(store.manifestPath(item.manifest)));
      } else {
        const log = store.logPath(item.log);
        const st = statSync(log, { throwIfNoEntry: false });
        if (st?.isFile()) await remote.put(logName(item.log), log, st.size, () => undefined);
      }
    });
  } finally {
    meter.end();
  }
  // Each run's index of its packed objects (in this push's packs and earlier ones), once every pack is in.
  await eachLimited([...needs], opts.jobs, async ([key, list]) => {
    const objects: IndexEntry[] = [
      ...packedBefore.get(key)!,
      ...list.flatMap(([d]) => {
        const at = placed.get(d);
        return at ? [[d, packNames[at.pack]!, at.offset, at.size] as IndexEntry] : [];
      }),
    ];
    if (objects.length) await remote.putBytes(indexName(key), Buffer.from(JSON.stringify({ objects })));
  });
  // Last: each record, signed, once everything it names is there.
  await eachLimited(todo, opts.jobs, async (rec) => {
    opts.signal?.throwIfAborted();
    await remote.putBytes(runName(rec.key), Buffer.from(await signedRecord(store, rec.key)));
    result.sent.push(rec.key);
  });
  await updateDamage(store.root, remote.where, {}, { runs: new Set(result.sent), objects: new Set(loose.keys()) });
  return { ...result, objects: count, bytes: total, seconds: (Date.now() - t0) / 1000 };
}

/** A run's record as it goes to a remote: the local one, with this user's signature (added if it lacks one). */
async function signedRecord(store: Store, key: string): Promise<string> {
  const text = await readFile(store.runPath(key), 'utf8');
  const rec = await parseSealed<Record<string, unknown>>(text);
  if (rec === CORRUPT) throw new RemoteError(`the local record ${store.runPath(key)} is damaged: nothing of it was sent; run \`pipeline verify\` and rerun the stage`);
  return signedByMe(rec) ? text : sealedText(signRecord(rec));
}

/**
 * Object digest -> where a pack on the remote holds it, from the lists of `packs`. A list never
 * changes (its pack is named by content), so each is fetched once and kept under
 * <cache>/remote-packs/; one that is not a list is left out (its objects are sent again).
 */
async function packCatalog(store: Store, remote: Remote, packs: string[], jobs: number): Promise<Map<string, IndexEntry>> {
  const out = new Map<string, IndexEntry>();
  await eachLimited(packs, jobs, async (pack) => {
    const kept = catalogPath(store.root, pack);
    let text = await readFile(kept, 'utf8').catch(() => undefined);
    let list = text === undefined ? undefined : parseList(text);
    if (!list) {
      // A list that is not a plain file of bounded size is no list: its pack's objects are sent again.
      text = (await remote.getBytes(listName(pack), MAX_BYTES.list).catch((e: unknown) => {
        if (e instanceof BadObject) return undefined;
        throw e;
      }))?.toString('utf8');
      list = text === undefined ? undefined : parseList(text);
      if (list) await writeFileAtomic(kept, text!);
    }
    for (const [d, offset, size] of list ?? []) out.set(d, [d, pack, offset, size]);
  });
  return out;
}
