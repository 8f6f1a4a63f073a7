// The remote cache in-process, on real folders: push, pull and verify between two local caches
// through a folder remote, with what an attacker or a bad disk leaves there (a changed record, a
// record signed by a stranger, a flipped byte in a pack or a loose object, a file list that climbs
// out of its folder, a FIFO). The CLI tests (remote-cache, trust-remote) check the same through
// `pipeline`; these call the remote's own functions, so that mutation testing sees them.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { hashBytes } from '../src/cache/hash.ts';
import { ENGINE_VERSION, fingerprintKey, type Fingerprint } from '../src/cache/fingerprint.ts';
import type { RunRecord } from '../src/cache/entries.ts';
import { Store } from '../src/cache/store.ts';
import { CORRUPT, parseSealed, sealedText } from '../src/fsutil.ts';
import { readDamage, updateDamage } from '../src/remote/damage.ts';
import { FolderRemote } from '../src/remote/folder.ts';
import { layoutPacks, listedPacks, PACK_BYTES, PACK_OBJECT_MAX, packRanges, parseIndex, parseList, RANGE_GAP } from '../src/remote/pack.ts';
import { pullRuns } from '../src/remote/pull.ts';
import { pushRuns } from '../src/remote/push.ts';
import { BadObject, MAX_BYTES, objectsIn, runKeysIn } from '../src/remote/remote.ts';
import { setTrusted, signingKey, signRecord } from '../src/remote/trust.ts';
import { verifyRemote } from '../src/remote/verify.ts';
import { scratch } from './helpers/engine.ts';
import { signAs } from './helpers/forge.ts';

// This process signs as the user of a config folder of its own (never the tester's real key).
const CONFIG = scratch({ after: (f) => process.on('exit', f) });
process.env.XDG_CONFIG_HOME = join(CONFIG, 'me');

const quiet = { jobs: 4, out: () => undefined };
// A run's key is its fingerprint's digest (a pull checks it): two stages told apart by a parameter.
const FP_A = { engine: ENGINE_VERSION, params: { stage: 'train' } } as unknown as Fingerprint;
const FP_B = { engine: ENGINE_VERSION, params: { stage: 'evaluate' } } as unknown as Fingerprint;
const KEY_A = await fingerprintKey(FP_A);
const KEY_B = await fingerprintKey(FP_B);
const BOTH = [KEY_A, KEY_B].sort();

/** Deterministic bytes of a given size (not all alike: a flipped byte must change the digest). */
const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 255));

/**
 * A cache with two runs: A has a small file, a large one (past the pack limit: sent loose) and a
 * folder (two files, one two levels down); B shares A's small file and has one of its own.
 */
async function twoRuns(dir: string): Promise<Store> {
  const store = new Store(join(dir, 'cache'));
  store.onCorrupt = () => undefined;
  const a = join(dir, 'out-a');
  mkdirSync(join(a, 'folder', 'sub', 'deep'), { recursive: true });
  writeFileSync(join(a, 'small'), 'shared small file\n');
  writeFileSync(join(a, 'large'), bytes(PACK_OBJECT_MAX + 4096, 1));
  writeFileSync(join(a, 'folder', 'top.txt'), 'top\n');
  writeFileSync(join(a, 'folder', 'sub', 'deep', 'x.bin'), bytes(5000, 2));
  await store.commit(a, ['small', 'large', 'folder'], { key: KEY_A, stage: 'train', spec: 'p.yaml', fingerprint: FP_A, startedAt: 'now', durationMs: 1 });
  const b = join(dir, 'out-b');
  mkdirSync(b, { recursive: true });
  writeFileSync(join(b, 'small'), 'shared small file\n');
  writeFileSync(join(b, 'own'), bytes(3000, 3));
  await store.commit(b, ['small', 'own'], { key: KEY_B, stage: 'evaluate', spec: 'p.yaml', fingerprint: FP_B, startedAt: 'now', durationMs: 1 });
  return store;
}

/** A scratch folder with twoRuns' cache under a/ and an empty folder remote beside. */
async function twoRunsAndRemote(t: { after(f: () => void): void }): Promise<{ d: string; src: Store; root: string; remote: FolderRemote }> {
  const d = scratch(t);
  const root = join(d, 'remote');
  return { d, src: await twoRuns(join(d, 'a')), root, remote: new FolderRemote(root) };
}

function freshStore(dir: string): Store {
  const s = new Store(join(dir, 'cache'));
  s.onCorrupt = () => undefined;
  return s;
}

/** Every file of a run's view, path -> content, as the pulling cache built it. */
async function viewFiles(store: Store, key: string): Promise<Map<string, string>> {
  const rec = await store.readRun(key);
  assert.ok(rec, `run ${key.slice(0, 4)} is in the cache`);
  const out = new Map<string, string>();
  for (const name of Object.keys(rec!.outputs)) {
    const p = await store.ensureView(rec!, name);
    if (statSync(p).isDirectory()) {
      for (const f of readdirSync(p, { recursive: true }).map(String)) if (statSync(join(p, f)).isFile()) out.set(`${name}/${f}`, readFileSync(join(p, f)).toString('base64'));
    } else out.set(name, readFileSync(p).toString('base64'));
  }
  return out;
}

/** A fresh cache at `dir` pulls run `key` whole: the same files as in `src`. */
async function pulledWhole(src: Store, remote: FolderRemote, dir: string, key: string): Promise<void> {
  const fresh = freshStore(dir);
  const r = await pullRuns(fresh, remote, [key], quiet);
  assert.deepEqual([r.pulled, r.refused], [[key], []]);
  assert.deepEqual(await viewFiles(fresh, key), await viewFiles(src, key));
}

const remoteFiles = (root: string, under: string) => (existsSync(join(root, under)) ? readdirSync(join(root, under), { recursive: true }).map(String).filter((f) => statSync(join(root, under, f)).isFile()) : []);

/** A remote record parsed, changed by `edit`, sealed again (its seal is then right; its signature not, unless `resign`). */
async function editRecord(root: string, key: string, edit: (r: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
  const path = join(root, 'runs', `${key}.json`);
  const rec = await parseSealed<Record<string, unknown>>(readFileSync(path, 'utf8'));
  assert.notEqual(rec, CORRUPT);
  writeFileSync(path, await sealedText(edit(rec as Record<string, unknown>)));
}

test('push then pull: both runs arrive whole (shared object packed once, the large one loose, the folder with its deep file); a second push sends nothing; unknown keys are absent or skipped', async (t) => {
  const d = scratch(t);
  const src = await twoRuns(join(d, 'a'));
  const remote = new FolderRemote(join(d, 'remote'));
  const pushed = await pushRuns(src, remote, [KEY_A, KEY_B, KEY_A, 'c'.repeat(32)], quiet);
  assert.deepEqual(pushed.sent.sort(), BOTH);
  assert.deepEqual(pushed.skipped, [{ key: 'c'.repeat(32), why: 'not in the local cache' }]);
  assert.deepEqual(pushed.had, []);
  // The large object is loose, nothing else is; small objects are in one pack with its list, one index per run.
  const loose = objectsIn(await remote.list('objects/'));
  assert.deepEqual([...loose.values()], [PACK_OBJECT_MAX + 4096]);
  const packs = remoteFiles(join(d, 'remote'), 'packs').sort();
  assert.deepEqual(packs.filter((f) => f.endsWith('.idx')).sort(), BOTH.map((k) => `${k}.idx`));
  assert.equal(packs.filter((f) => f.endsWith('.pack')).length, 1);
  assert.deepEqual(listedPacks(packs.map((f) => `packs/${f}`)).length, 1);
  const packFile = join(d, 'remote', 'packs', packs.find((f) => f.endsWith('.pack'))!);
  // small (18) + top.txt (4) + x.bin (5000) + own (3000), the shared one once; the folder's file list is a manifest.
  assert.equal(statSync(packFile).size, 18 + 4 + 5000 + 3000);
  assert.deepEqual(runKeysIn(await remote.list('runs/')), new Set([KEY_A, KEY_B]));
  assert.equal(pushed.objects, 5);

  const again = await pushRuns(src, remote, [KEY_A, KEY_B], quiet);
  assert.deepEqual([again.sent, again.had.sort(), again.objects, again.bytes], [[], BOTH, 0, 0]);

  const dst = freshStore(join(d, 'b'));
  const pulled = await pullRuns(dst, remote, [KEY_A, 'c'.repeat(32)], quiet);
  assert.deepEqual([pulled.pulled, pulled.absent, pulled.refused], [[KEY_A], ['c'.repeat(32)], []]);
  assert.equal(pulled.objects, 4, 'small, large and the folder\'s two files');
  assert.equal(pulled.bytes, 18 + PACK_OBJECT_MAX + 4096 + 4 + 5000);
  assert.deepEqual(await viewFiles(dst, KEY_A), await viewFiles(src, KEY_A));
  assert.ok((await viewFiles(dst, KEY_A)).has('folder/sub/deep/x.bin'), 'the deep file arrived');
  // B alone: its index finds the shared object in the pack A's push made.
  const onlyB = await pullRuns(dst, remote, [KEY_B], quiet);
  assert.deepEqual(onlyB.pulled, [KEY_B]);
  assert.deepEqual(await viewFiles(dst, KEY_B), await viewFiles(src, KEY_B));
  const { signatures, ...pulledB } = (await dst.readRun(KEY_B)) as RunRecord & { signatures?: unknown[] };
  assert.deepEqual(pulledB, await src.readRun(KEY_B), 'the record as pushed, with the signature it travelled with');
  assert.equal(signatures?.length, 1);
  assert.equal((await verifyRemote(dst, remote, { ...quiet, repair: false })).badRuns.size, 0);
});

test('a record changed on the remote after it was signed is refused naming its stage, noted as damage, re-sent whole by the next push', async (t) => {
  const { d, src, root, remote } = await twoRunsAndRemote(t);
  await pushRuns(src, remote, [KEY_A, KEY_B], quiet);
  // The forger points B's output at A's large file (a real object there), seal recomputed.
  const large = (await src.readRun(KEY_A))!.outputs.large!;
  await editRecord(root, KEY_B, (r) => ({ ...r, outputs: { ...(r.outputs as object), own: large } }));

  const dst = freshStore(join(d, 'b'));
  const r = await pullRuns(dst, remote, [KEY_B, KEY_A], quiet);
  assert.deepEqual(r.pulled, [KEY_A]);
  assert.equal(r.refused.length, 1);
  assert.equal(r.refused[0]!.key, KEY_B);
  assert.match(r.refused[0]!.why, /evaluate/);
  assert.match(r.refused[0]!.why, /does not match its content/);
  assert.equal(await dst.readRun(KEY_B), undefined, 'nothing installed for the refused run');
  assert.deepEqual([...(await readDamage(dst.root, remote.where)).runs], [KEY_B]);

  // verify from the pulling side says the same; its repair cannot send (no good copy there): the record goes.
  const v = await verifyRemote(dst, remote, { ...quiet, repair: false });
  assert.deepEqual([...v.badRuns.keys()], [KEY_B]);
  // The good copy's push: the damage is this cache's note, so it re-sends on its own note only.
  await updateDamage(src.root, remote.where, { runs: new Set([KEY_B]) });
  const p = await pushRuns(src, remote, [KEY_A, KEY_B], quiet);
  assert.deepEqual([p.sent, p.had], [[KEY_B], [KEY_A]]);
  assert.deepEqual([...(await readDamage(src.root, remote.where)).runs], [], 'struck off once repaired');
  await pulledWhole(src, remote, join(d, 'c'), KEY_B);
});

test('a record validly signed by a key not trusted here is refused as untrusted (not damage); trusting the key lets it in', async (t) => {
  const { d, src, root, remote } = await twoRunsAndRemote(t);
  await pushRuns(src, remote, [KEY_B], quiet);
  const stranger = join(CONFIG, 'stranger');
  const path = join(root, 'runs', `${KEY_B}.json`);
  const rec = (await parseSealed<Record<string, unknown>>(readFileSync(path, 'utf8'))) as Record<string, unknown>;
  const { signatures: _mine, ...unsigned } = rec;
  writeFileSync(path, signAs(stranger, unsigned));

  const dst = freshStore(join(d, 'b'));
  const r = await pullRuns(dst, remote, [KEY_B], quiet);
  assert.equal(r.refused.length, 1);
  assert.match(r.refused[0]!.why, /signed by .*a key this machine does not trust/);
  assert.deepEqual([...(await readDamage(dst.root, remote.where)).runs], [], 'an untrusted signer is not damage');
  const v = await verifyRemote(dst, remote, { ...quiet, repair: false });
  assert.deepEqual([[...v.badRuns.keys()], [...v.untrusted.keys()]], [[], [KEY_B]]);

  // An unsigned record: refused as not signed.
  writeFileSync(path, await sealedText(unsigned));
  assert.match((await pullRuns(dst, remote, [KEY_B], quiet)).refused[0]!.why, /not signed/);

  // The stranger's key trusted: accepted.
  writeFileSync(path, signAs(stranger, unsigned));
  const theirs = JSON.parse(readFileSync(join(stranger, 'rrtn-pipeline', 'signing-key.json'), 'utf8')) as { name: string; public: string };
  await setTrusted([`${theirs.name}:${theirs.public}`]);
  t.after(() => setTrusted([]));
  const ok = await pullRuns(dst, remote, [KEY_B], quiet);
  assert.deepEqual([ok.pulled, ok.refused], [[KEY_B], []]);
  assert.ok(signingKey().publicKey !== `${theirs.name}:${theirs.public}`, 'the stranger is not this user');
});

test('a flipped byte in a pack: pull refuses the runs that need it, notes the pack; the next push does not lean on it; verify --repair finds and fixes it', async (t) => {
  const { d, src, root, remote } = await twoRunsAndRemote(t);
  await pushRuns(src, remote, [KEY_A, KEY_B], quiet);
  const packFile = join(root, 'packs', remoteFiles(root, 'packs').find((f) => f.endsWith('.pack'))!);
  const pack = readFileSync(packFile);
  pack[pack.length - 10] ^= 0xff; // inside B's own file, the last object packed
  writeFileSync(packFile, pack);

  const dst = freshStore(join(d, 'b'));
  const r = await pullRuns(dst, remote, [KEY_A, KEY_B], quiet);
  assert.deepEqual(r.pulled, [KEY_A], 'A needs no byte of the damaged object');
  assert.deepEqual(r.refused.map((x) => x.key), [KEY_B]);
  assert.match(r.refused[0]!.why, /evaluate/);
  assert.equal(await dst.readRun(KEY_B), undefined);
  const noted = await readDamage(dst.root, remote.where);
  assert.deepEqual([...noted.packs], [packFile.split('/').pop()!.replace('.pack', '')]);

  // verify finds it from a cache that has the good copy, and --repair sends the run again.
  const v = await verifyRemote(src, remote, { ...quiet, repair: false });
  assert.deepEqual([[...v.badRuns.keys()], v.badPacks.size], [[KEY_B], 1]);
  const fixed = await verifyRemote(src, remote, { ...quiet, repair: true });
  assert.deepEqual(fixed.resent, [KEY_B]);
  assert.deepEqual(fixed.removed, []);
  assert.equal((await verifyRemote(src, remote, { ...quiet, repair: false })).badRuns.size, 0, 'all intact after the repair');
  await pulledWhole(src, remote, join(d, 'c'), KEY_B);
});

test('a damaged loose object: refused by pull, found by verify; a repair from a cache without the run removes the record instead', async (t) => {
  const { d, src, root, remote } = await twoRunsAndRemote(t);
  await pushRuns(src, remote, [KEY_A], quiet);
  const [obj] = remoteFiles(root, 'objects');
  const path = join(root, 'objects', obj!);
  const b = readFileSync(path);
  b[100] ^= 1;
  writeFileSync(path, b);
  const dst = freshStore(join(d, 'b'));
  const r = await pullRuns(dst, remote, [KEY_A], quiet);
  assert.deepEqual(r.refused.map((x) => x.key), [KEY_A]);
  assert.equal(await dst.readRun(KEY_A), undefined);
  assert.deepEqual([...(await readDamage(dst.root, remote.where)).objects], [obj!.replace('/', '')]);
  const v = await verifyRemote(dst, remote, { ...quiet, repair: true });
  assert.deepEqual([[...v.badObjects], v.removed], [[obj!.replace('/', '')], [KEY_A]]);
  assert.deepEqual(runKeysIn(await remote.list('runs/')), new Set(), 'the record of a run no one here can repair is removed');
  assert.equal(existsSync(path), false, 'and the bad object');
  // The good copy pushes it again (the run is gone from the remote: an ordinary push).
  assert.deepEqual((await pushRuns(src, remote, [KEY_A], quiet)).sent, [KEY_A]);
  assert.deepEqual((await pullRuns(dst, remote, [KEY_A], quiet)).pulled, [KEY_A]);
});

test('a file list that climbs out of its folder, signed by the user, is refused: nothing is written outside the cache', async (t) => {
  const { d, src, root, remote } = await twoRunsAndRemote(t);
  await pushRuns(src, remote, [KEY_A], quiet);
  const payload = Buffer.from('pwned\n');
  const digest = await hashBytes(payload);
  mkdirSync(join(root, 'objects', digest.slice(0, 2)), { recursive: true });
  writeFileSync(join(root, 'objects', digest.slice(0, 2), digest.slice(2)), payload);
  for (const bad of ['../../../../escaped.txt', 'a/../../x', '/abs', '', 'x\\y']) {
    const manifest = JSON.stringify([{ path: bad, size: payload.length, digest }]);
    const md = await hashBytes(manifest);
    writeFileSync(join(root, 'manifests', `${md}.json`), manifest);
    await editRecord(root, KEY_A, (r) => signRecord({ ...r, signatures: undefined, outputs: { ...(r.outputs as object), folder: { kind: 'dir', digest: md, size: payload.length, files: 1 } } }));
    const dst = freshStore(join(d, `b${bad.length}`));
    const r = await pullRuns(dst, remote, [KEY_A], quiet);
    assert.deepEqual(r.refused.map((x) => x.key), [KEY_A], `refused: ${JSON.stringify(bad)}`);
    assert.match(r.refused[0]!.why, /file list/);
    assert.equal(await dst.readRun(KEY_A), undefined);
  }
  assert.equal(existsSync(join(d, 'escaped.txt')), false);
  assert.equal(readdirSync(d).some((f) => f.includes('escaped')), false);
});

test('a FIFO where a record is, or a record past its size bound, is refused at once, never read', async (t) => {
  const { d, src, root, remote } = await twoRunsAndRemote(t);
  await pushRuns(src, remote, [KEY_A, KEY_B], quiet);
  rmSync(join(root, 'runs', `${KEY_A}.json`));
  execFileSync('mkfifo', [join(root, 'runs', `${KEY_A}.json`)]);
  await assert.rejects(remote.getBytes(`runs/${KEY_A}.json`, MAX_BYTES.record), BadObject);
  writeFileSync(join(root, 'runs', `${KEY_B}.json`), Buffer.alloc(MAX_BYTES.record + 1, 32));
  await assert.rejects(remote.getBytes(`runs/${KEY_B}.json`, MAX_BYTES.record), BadObject);
  const dst = freshStore(join(d, 'b'));
  const r = await pullRuns(dst, remote, [KEY_A, KEY_B], quiet);
  assert.deepEqual(r.refused.map((x) => x.key).sort(), BOTH);
});

test('packs: layout keeps each object once and starts a new pack at the byte bound; ranges merge neighbours within the gap; indexes and lists are checked', () => {
  const h = (i: number) => i.toString(16).padStart(32, '0');
  const { packs, placed } = layoutPacks([[[h(1), 10], [h(2), PACK_BYTES - 10]], [[h(1), 10], [h(3), 1]]]);
  assert.deepEqual(packs, [[[h(1), 10], [h(2), PACK_BYTES - 10]], [[h(3), 1]]]);
  assert.deepEqual(placed.get(h(3)), { pack: 1, offset: 0, size: 1 });
  assert.deepEqual(placed.get(h(2)), { pack: 0, offset: 10, size: PACK_BYTES - 10 });
  const p = h(9);
  const ranges = packRanges([[h(1), p, 0, 10], [h(2), p, 10 + RANGE_GAP, 5], [h(3), p, 16 + 2 * RANGE_GAP, 1], [h(4), h(8), 0, 3]]);
  assert.deepEqual(ranges.map((r) => [r.pack, r.start, r.end, r.objects.length]), [[p, 0, 15 + RANGE_GAP, 2], [p, 16 + 2 * RANGE_GAP, 17 + 2 * RANGE_GAP, 1], [h(8), 0, 3, 1]]);
  // A range never grows past a pack's size.
  assert.equal(packRanges([[h(1), p, 0, PACK_BYTES - 1], [h(2), p, PACK_BYTES - 1, 2]]).length, 2);
  assert.deepEqual(parseIndex(JSON.stringify({ objects: [[h(1), p, 0, 1]] })), [[h(1), p, 0, 1]]);
  for (const bad of ['{', '[]', JSON.stringify({ objects: [[h(1), p, -1, 1]] }), JSON.stringify({ objects: [[h(1), 'x', 0, 1]] }), JSON.stringify({ objects: [[h(1), p, 0]] }), JSON.stringify({ objects: [[h(1), p, 0, 1.5]] })]) assert.equal(parseIndex(bad), undefined, bad);
  assert.deepEqual(parseList(JSON.stringify([[h(1), 0, 4]])), [[h(1), 0, 4]]);
  for (const bad of ['x', '{}', JSON.stringify([[h(1), 0, -4]]), JSON.stringify([['G'.repeat(32), 0, 4]]), JSON.stringify([[h(1), 0]])]) assert.equal(parseList(bad), undefined, bad);
  assert.deepEqual(listedPacks([`packs/${h(1)}.list`, `packs/${h(2)}.pack`, `packs/${h(3)}.idx`, 'packs/x.list']), [h(1)]);
});

test('damage notes: added and struck off per remote, kept apart by place; a damaged notes file is read as none', async (t) => {
  const d = scratch(t);
  const h = (i: number) => i.toString(16).padStart(32, '0');
  await updateDamage(d, '/r1', { runs: new Set([h(1)]), packs: new Set([h(2)]), objects: new Set([h(3), 'not-a-digest']) });
  await updateDamage(d, '/r2', { runs: new Set([h(4)]) });
  let one = await readDamage(d, '/r1');
  assert.deepEqual([[...one.runs], [...one.packs], [...one.objects]], [[h(1)], [h(2)], [h(3)]]);
  await updateDamage(d, '/r1', {}, { runs: new Set([h(1)]), objects: new Set([h(9)]) });
  one = await readDamage(d, '/r1');
  assert.deepEqual([[...one.runs], [...one.packs], [...one.objects]], [[], [h(2)], [h(3)]]);
  assert.deepEqual([...(await readDamage(d, '/r2')).runs], [h(4)]);
  const [file] = readdirSync(join(d, 'remote-damage'));
  writeFileSync(join(d, 'remote-damage', file!), '{"runs": ["');
  const none = await readDamage(d, readFileSync(join(d, 'remote-damage', file!), 'utf8').length ? '/r-unknown' : '/r1');
  assert.equal(none.runs.size + none.packs.size + none.objects.size, 0);
});

test('a folder remote: a missing mount said as such; listings skip what a killed push left; links, FIFOs, folders and oversized files refused by every read; ranges read what is there', async (t) => {
  const d = scratch(t);
  const root = join(d, 'remote');
  await assert.rejects(new FolderRemote(root).check(), new RegExp(`the remote folder ${root} does not exist \\(is it mounted\\?\\)`));
  const remote = new FolderRemote(root);
  mkdirSync(root);
  await remote.check();
  assert.equal(remote.where, root);
  await remote.putBytes('runs/x.json', Buffer.from('0123456789'));
  const src = join(d, 'src.bin');
  writeFileSync(src, bytes(3000, 9));
  let moved = 0;
  await remote.put('objects/ab/cdef', src, 3000, (n) => (moved += n));
  assert.equal(moved, 3000);
  writeFileSync(join(root, 'runs', 'y.json.part-123-abcdef'), 'half a record');
  mkdirSync(join(root, 'runs', 'sub'));
  writeFileSync(join(root, 'runs', 'sub', 'z.json'), 'zz');
  assert.deepEqual([...(await remote.list('runs/'))].sort(), [['runs/sub/z.json', 2], ['runs/x.json', 10]]);
  assert.deepEqual([...(await remote.list('objects/'))], [['objects/ab/cdef', 3000]]);
  assert.deepEqual([...(await remote.list('nothing/'))], []);
  assert.equal(await remote.getBytes('runs/absent.json', 100), undefined);
  assert.equal(await remote.getBytes('runs/x.json/deeper', 100), undefined, 'a path through a file is absent');
  assert.deepEqual(await remote.getBytes('runs/x.json', 10), Buffer.from('0123456789'));
  await assert.rejects(remote.getBytes('runs/x.json', 9), /runs\/x\.json on .* holds 10 bytes, more than the 9 it may: refused/);
  assert.deepEqual(await remote.getRange('runs/x.json', 2, 5), Buffer.from('234'));
  assert.deepEqual(await remote.getRange('runs/x.json', 8, 20), Buffer.from('89'), 'a range past the end: what is there');
  assert.equal(await remote.getRange('runs/absent', 0, 1), undefined);
  const dest = join(d, 'got.bin');
  let got = 0;
  assert.equal(await remote.get('objects/ab/cdef', dest, (n) => (got += n), 3000), true);
  assert.deepEqual(readFileSync(dest), bytes(3000, 9));
  assert.equal(got, 3000);
  assert.equal(await remote.get('objects/ab/none', join(d, 'none'), () => undefined, 10), false);
  await assert.rejects(remote.get('objects/ab/cdef', join(d, 'big'), () => undefined, 2999), /holds 3000 bytes, more than the 2999 expected: refused/);
  assert.equal(existsSync(join(d, 'big')), false, 'nothing written for a refused object');
  symlinkSync('/etc/passwd', join(root, 'runs', 'link.json'));
  execFileSync('mkfifo', [join(root, 'runs', 'fifo.json')]);
  for (const [name, what] of [['runs/link.json', 'a symbolic link'], ['runs/fifo.json', 'a FIFO (named pipe)'], ['runs/sub', 'a folder']]) {
    await assert.rejects(remote.getBytes(name, 100), (e: unknown) => e instanceof BadObject && e.message.includes(`${name} on ${root} is ${what}, not a file: refused`), name);
    await assert.rejects(remote.getRange(name, 0, 1), BadObject);
    await assert.rejects(remote.get(name, join(d, 'x'), () => undefined, 100), BadObject);
  }
  assert.deepEqual([...(await remote.list('runs/'))].map(([n]) => n).sort(), ['runs/sub/z.json', 'runs/x.json'], 'links and FIFOs are not listed');
  await remote.remove('runs/x.json');
  await remote.remove('runs/x.json');
  assert.equal(await remote.getBytes('runs/x.json', 100), undefined);
});
