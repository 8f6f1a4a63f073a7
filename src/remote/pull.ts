// Fetching runs from a remote cache into the local one. Nothing fetched is trusted: a record must
// carry its seal, be filed under its own fingerprint's key, have its names in the spec's grammar and
// be signed by a key this user trusts (trust.ts); a manifest must be a well-formed file list
// (entries.ts: no path leaving its folder) that hashes to its name; every object is hashed on
// arrival against its digest before it becomes a stored object; every read is bounded in size and
// opens only plain files. A bad one is refused and named (with the stage that needs it), never
// served, and noted (damage.ts) so that a push from a good copy repairs the remote. A run's record
// is installed last, after every object and manifest of its outputs: a pull cut short leaves
// objects only, which the next one reuses.
//
// One pool of transfers serves every run at once: a run's objects are asked for as soon as its
// record (and its folders' file lists) arrive, so the transfers never wait at a phase boundary.
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fingerprintKey } from '../cache/fingerprint.ts';
import { hashBytes, hashFile } from '../cache/hash.ts';
import { dirDigest } from '../cache/digests.ts';
import type { FileEntry } from '../cache/digests.ts';
import { isRunRecordFor, manifestProblem, type OutputDigest, type Store } from '../cache/store.ts';
import { CORRUPT, parseSealed, tempName } from '../fsutil.ts';
import { printable } from '../text.ts';
import { updateDamage } from './damage.ts';
import { Meter } from './meter.ts';
import { eachLimited, limiter } from './pool.ts';
import { BadObject, logName, manifestName, MAX_BYTES, objectName, runName, type Remote } from './remote.ts';
import { dropCatalogued, indexName, packName, packRanges, parseIndex, type PackRange } from './pack.ts';
import { IN_MEMORY, type TransferOptions } from './push.ts';
import { acceptedKeys, signatureProblem } from './trust.ts';

/** Objects of one pack written at once (each a create, write, sync and rename: latency, not bandwidth). */
const INSTALLS_AT_ONCE = 8;

export interface PullResult {
  /** Runs installed now. */
  pulled: string[];
  /** Runs the remote does not have. */
  absent: string[];
  /** Runs refused: what on the remote is bad. */
  refused: Array<{ key: string; why: string }>;
  objects: number;
  bytes: number;
  seconds: number;
}

/** Fetches the runs `keys` (those the local cache lacks); what the remote lacks or holds damaged is reported, not thrown. */
export async function pullRuns(store: Store, remote: Remote, keys: string[], opts: TransferOptions): Promise<PullResult> {
  const t0 = Date.now();
  const result: PullResult = { pulled: [], absent: [], refused: [], objects: 0, bytes: 0, seconds: 0 };
  const gate = limiter(opts.jobs);
  // One Ctrl-C stops the pull: no transfer starts once the run is stopping.
  const slot = <T>(task: () => Promise<T>): Promise<T> => gate(() => {
    opts.signal?.throwIfAborted();
    return task();
  });
  const accepted = acceptedKeys();
  // What was found bad, noted against the remote at the end (see damage.ts).
  const bad = { runs: new Set<string>(), packs: new Set<string>(), objects: new Set<string>() };
  const meter = new Meter(`pull from ${remote.where}`, 0, 0, opts.out);
  await mkdir(store.tmpDir, { recursive: true });
  // Each manifest and object is fetched once however many runs need it; the answer is why it is bad, or undefined.
  const manifests = new Map<string, Promise<string | undefined>>();
  const objects = new Map<string, Promise<string | undefined>>();

  const manifest = (digest: string) => {
    let p = manifests.get(digest);
    if (!p) manifests.set(digest, (p = fetchManifest(store, remote, digest, slot).catch(refusal)));
    return p;
  };
  /** Objects about to come, for the progress line and the result. */
  const expect = (files: number, bytes: number) => {
    meter.grow(files, bytes);
    result.objects += files;
    result.bytes += bytes;
  };
  const object = (digest: string, size: number) => {
    let p = objects.get(digest);
    if (!p) {
      expect(1, size);
      objects.set(digest, (p = slot(() => fetchObject(store, remote, digest, size, meter)).catch(refusal).then((why) => {
        if (why) bad.objects.add(digest);
        return why;
      })));
    }
    return p;
  };

  /**
   * The run's index of packed objects (what its push packed), when the remote has one: each object
   * the run still lacks is fetched by byte range from its pack (neighbours in one request) and
   * joins the memo, so `object` below finds it. Why the index is bad, or undefined.
   */
  const fromPacks = async (key: string, wanted: Map<string, number>): Promise<string | undefined> => {
    const text = await slot(() => remote.getBytes(indexName(key), MAX_BYTES.index));
    if (!text) return undefined;
    const entries = parseIndex(text.toString('utf8'));
    if (!entries) return `${indexName(key)} on ${remote.where} is damaged: refused`;
    const mine = entries.filter(([d, , , size]) => wanted.get(d) === size && !objects.has(d));
    for (const range of packRanges(mine)) {
      expect(range.objects.length, range.objects.reduce((a, o) => a + o.size, 0));
      const done = slot(() => fetchRange(store, remote, range, meter))
        .catch((e: unknown) => new Map(range.objects.map((o) => [o.digest, refusal(e)])))
        .then(async (problems) => {
          // A pack that holds bad bytes is no longer leaned on: its list leaves the local catalogue,
          // and a push sends its objects again (damage.ts).
          if (problems.size) {
            bad.packs.add(range.pack);
            await dropCatalogued(store.root, range.pack);
          }
          return problems;
        });
      for (const o of range.objects) objects.set(o.digest, done.then((problems) => problems.get(o.digest)));
    }
    return undefined;
  };

  const pullOne = async (key: string): Promise<void> => {
    const refuse = (why: string, damage = true) => {
      result.refused.push({ key, why });
      if (damage) bad.runs.add(key);
    };
    const sealed = await slot(() => remote.getBytes(runName(key), MAX_BYTES.record));
    if (!sealed) return void result.absent.push(key);
    const rec = await parseSealed<unknown>(sealed.toString('utf8'));
    if (rec === CORRUPT || !isRunRecordFor(rec, key)) return refuse(`${runName(key)} is damaged (its seal or shape is wrong)`);
    if ((await fingerprintKey(rec.fingerprint)) !== key) return refuse(`${runName(key)} is filed under a key its fingerprint does not have`);
    const stage = `stage ${printable(rec.stage)}`;
    // A teammate's run signed by a key not trusted here is refused, but it is no damage: a push must not replace it.
    const unsigned = signatureProblem(rec as unknown as Record<string, unknown>, accepted);
    if (unsigned) return refuse(`${stage}: ${runName(key)} on ${remote.where}: ${unsigned.why}`, unsigned.kind === 'forged');
    const outs = Object.values(rec.outputs) as OutputDigest[];
    const listProblems = (await Promise.all(outs.filter((o) => o.kind === 'dir').map((o) => manifest(o.digest)))).filter((w) => w !== undefined);
    if (listProblems.length) return refuse(`${stage}: ${listProblems[0]!}`);
    const files = (await Promise.all(outs.map((o) => store.outputObjectSizes(o)))).flat();
    const wanted = new Map(files.filter(([d, size]) => !store.objectIntact(d, size)));
    const packProblem = wanted.size ? await fromPacks(key, wanted).catch(refusal) : undefined;
    if (packProblem) return refuse(`${stage}: ${packProblem}`);
    // What the packs did not bring is fetched loose (object() finds the packed ones in the memo).
    const problems = (await Promise.all([...wanted].map(([d, size]) => object(d, size)))).filter((w) => w !== undefined);
    if (problems.length) return refuse(`${stage}: ${problems[0]!}`);
    // Its log, best effort; then the record, once every object of it is in and intact.
    await slot(() => fetchLog(store, remote, key));
    if (!(await store.hasOutputs(rec))) return refuse(`${stage}: its outputs did not arrive intact`);
    await store.installRun(key, sealed);
    result.pulled.push(key);
  };
  /** What a remote holds that is not what it should be (too large, not a plain file) refuses the run that needs it; other failures stay failures. */
  const pullChecked = (key: string) => pullOne(key).catch((e: unknown) => {
    if (!(e instanceof BadObject)) throw e;
    result.refused.push({ key, why: e.message });
    bad.runs.add(key);
  });
  try {
    await Promise.all([...new Set(keys)].map(pullChecked));
  } finally {
    meter.end();
    await updateDamage(store.root, remote.where, bad, { runs: new Set(result.pulled) });
  }
  return { ...result, seconds: (Date.now() - t0) / 1000 };
}

/** A BadObject (something on the remote that is not what its name says) as the reason a run is refused; anything else is thrown on. */
function refusal(e: unknown): string {
  if (e instanceof BadObject) return e.message;
  throw e;
}


/** One byte range of a pack: each object in it hashed, then written; digest -> why it is bad (absent when it is in). */
async function fetchRange(store: Store, remote: Remote, range: PackRange, meter: Meter): Promise<Map<string, string>> {
  const problems = new Map<string, string>();
  const buf = await remote.getRange(packName(range.pack), range.start, range.end);
  const good: Array<{ digest: string; bytes: Buffer }> = [];
  for (const o of range.objects) {
    const bytes = buf?.subarray(o.offset - range.start, o.offset - range.start + o.size);
    if (!bytes) problems.set(o.digest, `${packName(range.pack)} is missing on ${remote.where}`);
    else if (bytes.length !== o.size || (await hashBytes(bytes)) !== o.digest) problems.set(o.digest, `${objectName(o.digest)} in ${packName(range.pack)} on ${remote.where} does not match its digest (${bytes.length} bytes, ${o.size} recorded): refused`);
    else good.push({ digest: o.digest, bytes });
  }
  // Written several at once: each is a create, write, sync and rename (latency, not bandwidth).
  await eachLimited(good, INSTALLS_AT_ONCE, async ({ digest, bytes }) => {
    await store.installObjectBytes(bytes, digest);
    meter.addBytes(bytes.length);
    meter.fileDone();
  });
  return problems;
}

/** A folder output's file list, checked against the digest it is named by; why it is bad, or undefined once it is in. */
async function fetchManifest(store: Store, remote: Remote, digest: string, slot: <T>(f: () => Promise<T>) => Promise<T>): Promise<string | undefined> {
  if (await store.readManifest(digest)) return undefined;
  const bytes = await slot(() => remote.getBytes(manifestName(digest), MAX_BYTES.manifest));
  let m: unknown;
  try {
    m = bytes && JSON.parse(bytes.toString('utf8'));
  } catch {
    m = undefined;
  }
  if (!bytes) return `${manifestName(digest)} is missing on ${remote.where}`;
  const shape = manifestProblem(m);
  if (shape) return `${manifestName(digest)} on ${remote.where} is not a folder's file list (${printable(shape)}): refused`;
  if ((await dirDigest(m as FileEntry[])).digest !== digest) return `${manifestName(digest)} on ${remote.where} does not match its digest: refused`;
  await store.installManifest(digest, m as FileEntry[]);
  return undefined;
}

/** One object, hashed on arrival; why it is bad, or undefined once it is a stored object. */
async function fetchObject(store: Store, remote: Remote, digest: string, size: number, meter: Meter): Promise<string | undefined> {
  const bad = (got: { digest: string; size: number } | undefined) =>
    !got ? `${objectName(digest)} is missing on ${remote.where}` : got.digest !== digest || got.size !== size ? `${objectName(digest)} on ${remote.where} does not match its digest (${got.size} bytes, ${size} recorded): refused` : undefined;
  if (size <= IN_MEMORY) {
    // Small objects (most of a cache) arrive as one buffer, hashed before they touch the disk.
    const bytes = await remote.getBytes(objectName(digest), size);
    if (bytes) meter.addBytes(bytes.length);
    const why = bad(bytes && { digest: await hashBytes(bytes), size: bytes.length });
    if (why) return why;
    await store.installObjectBytes(bytes!, digest);
  } else {
    const tmp = join(store.tmpDir, tempName('pull'));
    try {
      const got = await remote.get(objectName(digest), tmp, (n) => meter.addBytes(n), size);
      const why = bad(got ? await hashFile(tmp) : undefined);
      if (why) return why;
      await store.installObject(tmp, digest);
    } finally {
      await rm(tmp, { force: true });
    }
  }
  meter.fileDone();
  return undefined;
}

/** The log of the run that produced a record, when the remote has it (nothing depends on it). */
async function fetchLog(store: Store, remote: Remote, key: string): Promise<void> {
  const tmp = join(store.tmpDir, tempName('log'));
  try {
    if (await remote.get(logName(key), tmp, () => undefined, MAX_BYTES.log)) {
      await mkdir(join(store.root, 'logs'), { recursive: true });
      await rename(tmp, store.logPath(key));
    }
  } catch {
    // a log is a convenience: its absence or a failed fetch changes nothing
  } finally {
    await rm(tmp, { force: true });
  }
}
