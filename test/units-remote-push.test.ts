// Push in-process at its less travelled paths: a run pushed after another leans on the packs the
// first left (each pack's list fetched once and kept), a damaged local object or record sends
// nothing of its run, a run whose outputs are gone is skipped, logs travel with their runs, a
// stopped push leaves no record, and a pack list that is not one makes the next push send again;
// and the damage notes a push reads, at their edges.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { OBJECT_MTIME_MS, Store } from '../src/cache/store.ts';
import { readDamage, updateDamage } from '../src/remote/damage.ts';
import { pullRuns } from '../src/remote/pull.ts';
import { sealedText } from '../src/fsutil.ts';
import { pushRuns } from '../src/remote/push.ts';
import { objectsIn, runKeysIn } from '../src/remote/remote.ts';
import { scratch } from './helpers/engine.ts';
import { commitRun, quiet, storeAndRemote } from './helpers/remote-runs.ts';

process.env.XDG_CONFIG_HOME = join(scratch({ after: (f) => process.on('exit', f) }), 'me');

const setup = storeAndRemote;
const packs = (root: string) => readdirSync(join(root, 'packs')).filter((f) => f.endsWith('.pack'));

test('a run pushed after another leans on the packs already there: only its own objects are sent, its index points into the older pack; the pack list is fetched once and kept', async (t) => {
  const { d, store, root, remote } = setup(t);
  const a = await commitRun(store, d, 'a', { shared: 'shared bytes\n', own: 'a only\n' });
  const b = await commitRun(store, d, 'b', { shared: 'shared bytes\n', mine: 'b only, longer\n' });
  const first = await pushRuns(store, remote, [a], quiet);
  assert.deepEqual([first.sent, first.objects, first.bytes], [[a], 2, 13 + 7]);
  const second = await pushRuns(store, remote, [b], quiet);
  assert.deepEqual([second.sent, second.objects, second.bytes], [[b], 1, 15], 'the shared object is not sent again');
  const none = await pushRuns(store, remote, [a, b], quiet);
  assert.ok(none.seconds >= 0 && none.seconds < 60 && second.seconds >= 0 && second.seconds < 60, `seconds, not milliseconds: ${none.seconds}, ${second.seconds}`);
  assert.equal(packs(root).length, 2);
  const index = JSON.parse(readFileSync(join(root, 'packs', `${b}.idx`), 'utf8')) as { objects: Array<[string, string, number, number]> };
  assert.equal(new Set(index.objects.map((o) => o[1])).size, 2, "b's index points into both packs");
  assert.equal(readdirSync(join(store.root, 'remote-packs')).length, 1, "the first pack's list, kept");
  // Kept lists are read from the cache, not fetched again: the remote's copy spoilt now, a third push still leans on the pack.
  const c = await commitRun(store, d, 'c', { shared: 'shared bytes\n' });
  writeFileSync(join(root, 'packs', readdirSync(join(store.root, 'remote-packs'))[0]!), 'spoilt');
  const third = await pushRuns(store, remote, [c], quiet);
  assert.deepEqual([third.sent, third.objects], [[c], 0]);
  const other = new Store(join(d, 'other'));
  other.onCorrupt = () => undefined;
  const pulled = await pullRuns(other, remote, [b, c], quiet);
  assert.deepEqual([pulled.pulled.sort(), pulled.refused], [[b, c].sort(), []]);
  assert.equal(readFileSync(await other.ensureView((await other.readRun(b))!, 'mine'), 'utf8'), 'b only, longer\n');
  assert.equal(readFileSync(join(root, 'logs', `${b}.log`), 'utf8'), 'log of b\n', 'the log travelled with its run');
});

test('a pack list on the remote that is not one is not leaned on: the next push sends those objects again', async (t) => {
  const { d, store, root, remote } = setup(t);
  const a = await commitRun(store, d, 'a', { shared: 'shared bytes\n' });
  await pushRuns(store, remote, [a], quiet);
  const [list] = readdirSync(join(root, 'packs')).filter((f) => f.endsWith('.list'));
  writeFileSync(join(root, 'packs', list!), '[["not a digest", 0, 1]]');
  const fresh = new Store(join(d, 'fresh'));
  fresh.onCorrupt = () => undefined;
  const b = await commitRun(fresh, d, 'b', { shared: 'shared bytes\n' });
  const r = await pushRuns(fresh, remote, [b], quiet);
  assert.deepEqual([r.sent, r.objects], [[b], 1], 'sent again');
  assert.equal(packs(root).length, 1, 'the same bytes: the same pack, named by content');
  assert.deepEqual(JSON.parse(readFileSync(join(root, 'packs', list!), 'utf8')), [[JSON.parse(readFileSync(join(root, 'packs', `${b}.idx`), 'utf8')).objects[0][0], 0, 13]], 'its list written again, whole');
  assert.equal(existsSync(join(fresh.root, 'remote-packs', list!)), false, 'a bad list is not kept');
});

test('a damaged local object or record sends nothing of its run; a run whose outputs are gone is skipped, saying why; a stopped push leaves no record', async (t) => {
  const { d, store, root, remote } = setup(t);
  const small = await commitRun(store, d, 'small', { f: 'small object\n' });
  const large = await commitRun(store, d, 'large', { f: Buffer.alloc(9 << 20, 7) });
  // Same size, same stamp, other bytes: only the push's own check finds it.
  for (const key of [small, large]) {
    const obj = store.objectPath((await store.readRun(key))!.outputs.f!.digest);
    chmodSync(obj, 0o644);
    const bytes = readFileSync(obj);
    bytes[0] ^= 1;
    writeFileSync(obj, bytes);
    utimesSync(obj, OBJECT_MTIME_MS / 1000, OBJECT_MTIME_MS / 1000);
    await assert.rejects(pushRuns(store, remote, [key], quiet), /the local object .* does not match its digest: nothing of its runs was sent/);
  }
  assert.deepEqual(runKeysIn(await remote.list('runs/')), new Set());
  assert.equal(objectsIn(await remote.list('objects/')).size, 0);

  const rec = await commitRun(store, d, 'rec', { f: 'fine\n' });
  writeFileSync(store.runPath(rec), `${readFileSync(store.runPath(rec), 'utf8').slice(0, -5)}xx\n`);
  const gone = await commitRun(store, d, 'gone', { f: 'soon gone\n' });
  rmSync(store.objectPath((await store.readRun(gone))!.outputs.f!.digest));
  const r = await pushRuns(store, remote, [gone], quiet);
  assert.deepEqual(r.skipped, [{ key: gone, why: 'its outputs are missing from the local cache, or damaged there (rerun the stage)' }]);
  assert.deepEqual(r.sent, []);
  // A damaged record: not in the cache as far as push can tell (the store drops what fails its seal).
  assert.deepEqual((await pushRuns(store, remote, [rec], quiet)).skipped, [{ key: rec, why: 'not in the local cache' }]);

  const ok = await commitRun(store, d, 'ok', { f: 'ok\n' });
  const ac = new AbortController();
  ac.abort(new Error('stopped'));
  await assert.rejects(pushRuns(store, remote, [ok], { ...quiet, signal: ac.signal }), /stopped/);
  assert.deepEqual(runKeysIn(await remote.list('runs/')), new Set(), 'no record of a stopped push');
  assert.deepEqual((await pushRuns(store, remote, [ok], quiet)).sent, [ok], 'the next push completes it');
  assert.ok(existsSync(join(root, 'runs', `${ok}.json`)), 'the record is there');
});

test('damage notes at their edges: striking off what is not noted writes nothing; only what is noted is struck off; kept sorted; only digests are read back', async (t) => {
  const d = scratch(t);
  const h = (i: number) => i.toString(16).padStart(32, '0');
  await updateDamage(d, '/r', {}, { runs: new Set([h(1)]) });
  assert.equal(existsSync(join(d, 'remote-damage')), false, 'nothing noted, nothing to strike off: no file');
  await updateDamage(d, '/r', { runs: new Set([h(3), h(1), h(2)]), packs: new Set([h(9), h(8)]), objects: new Set([h(6), h(5)]) });
  let n = await readDamage(d, '/r');
  assert.deepEqual([[...n.runs], [...n.packs], [...n.objects]], [[h(1), h(2), h(3)], [h(8), h(9)], [h(5), h(6)]], 'sorted');
  await updateDamage(d, '/r', {}, { runs: new Set([h(2), h(7)]) });
  n = await readDamage(d, '/r');
  assert.deepEqual([...n.runs], [h(1), h(3)], 'one noted among those struck off is enough to rewrite');
  const [file] = readdirSync(join(d, 'remote-damage'));
  writeFileSync(join(d, 'remote-damage', file!), await sealedText({ where: '/r', runs: [`x${h(1)}`, `${h(2)}x`, 3, h(4)], packs: 'x', objects: [] }));
  n = await readDamage(d, '/r');
  assert.deepEqual([[...n.runs], [...n.packs]], [[h(4)], []], 'what is not a digest is not read back');
});
