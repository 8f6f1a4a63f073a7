// `remote verify` in-process, at what units-remote does not reach: a folder's file list damaged or
// missing on the remote, an index that lies about a good pack (the run is condemned, not the pack),
// an index or record that is not one, a pack list that is not one, a loose object of the wrong size;
// each said per run, the objects counted once, and what --repair does with each.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readDamage } from '../src/remote/damage.ts';
import { pullRuns } from '../src/remote/pull.ts';
import { pushRuns } from '../src/remote/push.ts';
import { MAX_BYTES, runKeysIn } from '../src/remote/remote.ts';
import { verifyRemote } from '../src/remote/verify.ts';
import { scratch } from './helpers/engine.ts';
import { commitRun, quiet, quietStore, storeAndRemote } from './helpers/remote-runs.ts';

process.env.XDG_CONFIG_HOME = join(scratch({ after: (f) => process.on('exit', f) }), 'me');

const check = (store: Parameters<typeof verifyRemote>[0], remote: Parameters<typeof verifyRemote>[1], repair = false) => verifyRemote(store, remote, { ...quiet, repair });
const only = (root: string, dir: string, suffix: string) => readdirSync(join(root, dir)).filter((f) => f.endsWith(suffix));

test('a folder\'s file list damaged or missing on the remote condemns its run, named; --repair removes the bad list and sends the run again', async (t) => {
  const { d, store, root, remote } = storeAndRemote(t);
  const k = await commitRun(store, d, 'folder', { data: { 'a.txt': 'a\n', 'b.txt': 'bb\n' } });
  const plain = await commitRun(store, d, 'plain', { f: 'plain\n' });
  await pushRuns(store, remote, [k, plain], quiet);
  const intact = await check(store, remote);
  assert.deepEqual([intact.runs, intact.objects, intact.badRuns.size], [2, 3, 0], 'two runs, three objects, each counted once');
  const [list] = only(root, 'manifests', '.json');
  writeFileSync(join(root, 'manifests', list!), '[{"path": "a.txt", "size": 2, "digest": "0123456789abcdef0123456789abcdef"}]');
  const v = await check(store, remote);
  assert.deepEqual([...v.badRuns], [[k, `stage folder: manifests/${list} is damaged`]]);
  assert.deepEqual([...v.badManifests], [list!.replace('.json', '')]);
  assert.deepEqual([...(await readDamage(store.root, remote.where)).runs], [k], 'noted for the next push');
  rmSync(join(root, 'manifests', list!));
  assert.deepEqual([...(await check(store, remote)).badRuns], [[k, `stage folder: manifests/${list} is missing`]]);
  writeFileSync(join(root, 'manifests', list!), 'not json');
  const fixed = await check(store, remote, true);
  assert.deepEqual([fixed.resent, fixed.removed], [[k], []]);
  assert.equal((await check(store, remote)).badRuns.size, 0);
  const other = quietStore(join(d, 'other'));
  assert.deepEqual((await pullRuns(other, remote, [k], quiet)).pulled, [k]);
});

test('an index that lies about a good pack condemns its run, not the pack; a pack list that is not one condemns the pack; repair keeps what is good', async (t) => {
  const { d, store, root, remote } = storeAndRemote(t);
  const a = await commitRun(store, d, 'a', { f: 'first object\n', g: 'second object\n' });
  const b = await commitRun(store, d, 'b', { f: 'first object\n' });
  await pushRuns(store, remote, [a, b], quiet);
  const idx = join(root, 'packs', `${b}.idx`);
  const index = JSON.parse(readFileSync(idx, 'utf8')) as { objects: Array<[string, string, number, number]> };
  const [pack] = only(root, 'packs', '.pack');
  // b's index now says its object starts one byte later: the pack is fine, the claim false.
  writeFileSync(idx, JSON.stringify({ objects: index.objects.map(([o, p, off, size]) => [o, p, off + 1, size]) }));
  const v = await check(store, remote);
  assert.deepEqual([...v.badRuns.keys()], [b]);
  assert.match(v.badRuns.get(b)!, new RegExp(`^stage b: object [0-9a-f]{32} in packs/${pack} is missing or does not match its digest$`));
  assert.deepEqual([v.badPacks.size, v.badObjects.size], [0, 0], 'the pack and its list are good');
  const fixed = await check(store, remote, true);
  assert.deepEqual(fixed.resent, [b]);
  assert.ok(only(root, 'packs', '.list').includes(pack!.replace('.pack', '.list')), "the pack's list is kept");
  assert.equal((await check(store, remote)).badRuns.size, 0);

  // An index that is not one, and a pack list that is not one.
  writeFileSync(idx, '{"objects": 3}');
  assert.deepEqual([...(await check(store, remote)).badRuns], [[b, `stage b: packs/${b}.idx is damaged`]]);
  rmSync(idx);
  mkdirSync(idx);
  assert.deepEqual([...(await check(store, remote)).badRuns], [[b, `stage b: packs/${b}.idx is not a plain file of bounded size`]]);
  rmSync(idx, { recursive: true });
  writeFileSync(join(root, 'packs', pack!.replace('.pack', '.list')), 'nope');
  const badList = await check(store, remote);
  assert.deepEqual([...badList.badPacks], [pack!.replace('.pack', '')]);
  await check(store, remote, true);
  assert.equal(only(root, 'packs', '.list').includes(pack!.replace('.pack', '.list')), false, 'the bad list is removed');
});

test('a record past its size bound, or not sealed, or a loose object of the wrong size: each said; a repair from a cache without the run removes the record', async (t) => {
  const { d, store, root, remote } = storeAndRemote(t);
  const big = await commitRun(store, d, 'big', { f: Buffer.alloc((1 << 20) + 10, 3) });
  const small = await commitRun(store, d, 'small', { f: 'small\n' });
  await pushRuns(store, remote, [big, small], quiet);
  const [sub] = readdirSync(join(root, 'objects'));
  const [obj] = readdirSync(join(root, 'objects', sub!));
  writeFileSync(join(root, 'objects', sub!, obj!), Buffer.alloc(10, 3));
  const v = await check(store, remote);
  assert.deepEqual([...v.badObjects], [`${sub}${obj}`]);
  assert.match(v.badRuns.get(big)!, /^stage big: object [0-9a-f]{32} loose is missing or does not match its digest$/);
  // Past the bound a record may have (a folder, link or FIFO there is not listed: no run at all).
  writeFileSync(join(root, 'runs', `${small}.json`), Buffer.alloc(MAX_BYTES.record + 1, 32));
  const w = await check(store, remote);
  assert.equal(w.badRuns.get(small), `runs/${small}.json is not a plain file of bounded size`);
  writeFileSync(join(root, 'runs', `${small}.json`), '{"key": "x"}');
  assert.equal((await check(store, remote)).badRuns.get(small), `runs/${small}.json is damaged (its seal or shape is wrong)`);
  const elsewhere = quietStore(join(d, 'elsewhere'));
  const r = await check(elsewhere, remote, true);
  assert.deepEqual([r.resent, r.removed.sort()], [[], [big, small].sort()]);
  assert.deepEqual(runKeysIn(await remote.list('runs/')), new Set());
});
