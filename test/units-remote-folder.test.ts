// The folder remote and the remote's layout at their edges: no file descriptor left open by any
// read or write, however it ends; errors that are not about the remote's content (a name too long,
// a folder where a file is removed) thrown as they are, not taken for damage; listings read by the
// layout's exact names only; pack indexes, lists and ranges at their edges.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FolderRemote } from '../src/remote/folder.ts';
import { listedPacks, PACK_BYTES, packRanges, parseIndex, parseList } from '../src/remote/pack.ts';
import { BadObject, logName, objectsIn, runKeysIn, savedName } from '../src/remote/remote.ts';
import { scratch } from './helpers/engine.ts';

const openFiles = () => readdirSync('/proc/self/fd').length;
const H = 'a'.repeat(32);

test('no read or write leaves a file descriptor open, whether it succeeds or is refused', async (t) => {
  const d = scratch(t);
  const remote = new FolderRemote(join(d, 'r'));
  mkdirSync(join(d, 'r', 'runs'), { recursive: true });
  writeFileSync(join(d, 'src'), 'x'.repeat(100));
  await remote.put('objects/aa/bb', join(d, 'src'), 100, () => undefined);
  await remote.putBytes('runs/a.json', Buffer.from('0123456789'));
  const before = openFiles();
  for (let i = 0; i < 20; i++) {
    await remote.put('objects/aa/bb', join(d, 'src'), 100, () => undefined);
    await remote.getBytes('runs/a.json', 10);
    await remote.getBytes('runs/a.json', 5).catch(() => undefined);
    await remote.getRange('runs/a.json', 1, 3);
    await remote.get('objects/aa/bb', join(d, `got${i}`), () => undefined, 100);
    await remote.get('objects/aa/bb', join(d, `big${i}`), () => undefined, 10).catch(() => undefined);
  }
  assert.equal(openFiles(), before, 'as many descriptors open as before');
});

test('errors that are not the remote\'s content are thrown as they are: a name too long to open, a folder where a file is removed', async (t) => {
  const d = scratch(t);
  const remote = new FolderRemote(d);
  mkdirSync(join(d, 'runs'));
  await assert.rejects(remote.getBytes(`runs/${'a'.repeat(300)}.json`, 10), (e: NodeJS.ErrnoException) => !(e instanceof BadObject) && e.code === 'ENAMETOOLONG');
  mkdirSync(join(d, 'runs', 'x.json', 'inside'), { recursive: true });
  await assert.rejects(remote.remove('runs/x.json'), (e: NodeJS.ErrnoException) => e.code === 'EISDIR' || e.code === 'EPERM');
  await remote.remove('runs/absent.json');
  // A listing under a file: nothing, not an error.
  writeFileSync(join(d, 'runs', 'f.json'), '');
  assert.deepEqual([...(await remote.list('runs/f.json/'))], []);
  // A name that only holds what a temp name looks like, not at its end, is listed.
  writeFileSync(join(d, 'runs', 'a.part-12-ab.json'), 'x');
  writeFileSync(join(d, 'runs', 'b.json.part-12-ab'), 'x');
  assert.deepEqual([...(await remote.list('runs/'))].map(([n]) => n).sort(), ['runs/a.part-12-ab.json', 'runs/f.json']);
});

test('the layout: run records and loose objects are read from listings by their exact names only', () => {
  const listing = new Map<string, number>([
    [`runs/${H}.json`, 1],
    [`runs/${H}.json.bak`, 1],
    [`xruns/${H}.json`, 1],
    [`runs/${H}0.json`, 1],
    [`objects/ab/${'c'.repeat(30)}`, 5],
    [`objects/ab/${'c'.repeat(30)}x`, 5],
    [`xobjects/ab/${'c'.repeat(30)}`, 5],
    [`objects/ab/${'c'.repeat(31)}`, 5],
    [`objects/AB/${'c'.repeat(30)}`, 5],
  ]);
  assert.deepEqual([...runKeysIn(listing)], [H]);
  assert.deepEqual([...objectsIn(listing)], [[`ab${'c'.repeat(30)}`, 5]]);
  assert.equal(logName(H), `logs/${H}.log`);
  assert.equal(savedName('best'), 'names/best.json');
});

test('pack indexes and lists read back at their edges: every entry checked (not only some), digests whole, sizes of 0 allowed; ranges of unsorted entries sorted; a range never past a pack\'s size', () => {
  const h = (i: number) => i.toString(16).padStart(32, '0');
  const p = h(9);
  const idx = (objects: unknown[]) => JSON.stringify({ objects });
  assert.deepEqual(parseIndex(idx([[h(1), p, 0, 0]])), [[h(1), p, 0, 0]], 'an empty object');
  for (const bad of [[[h(1), p, 0, 1], [h(2), p, 0]], [[h(1), p, 0, 1, 5]], [[1, p, 0, 1]], [[`x${h(1)}`, p, 0, 1]], [[`${h(1)}x`, p, 0, 1]], [[h(1), `x${p}`, 0, 1]], [[h(1), `${p}x`, 0, 1]], [[h(1), p, 0, -1]], [[h(1), 3, 0, 1]]]) assert.equal(parseIndex(idx(bad)), undefined, JSON.stringify(bad));
  assert.deepEqual(parseList(JSON.stringify([[h(1), 0, 0]])), [[h(1), 0, 0]]);
  for (const bad of [[[h(1), 0, 1], [h(2), 0]], [[h(1), 0, 1, 2]], [[1, 0, 1]], [[`x${h(1)}`, 0, 1]], [[`${h(1)}x`, 0, 1]], [[h(1), 0, -1]]]) assert.equal(parseList(JSON.stringify(bad)), undefined, JSON.stringify(bad));
  assert.deepEqual(listedPacks([`packs/${h(1)}.list`, `xpacks/${h(2)}.list`, `packs/${h(3)}.list.tmp`]), [h(1)]);
  const ranges = packRanges([[h(2), p, 100, 10], [h(1), p, 0, 10], [h(3), p, 50, 10]]);
  assert.deepEqual(ranges.map((r) => [r.start, r.end, r.objects.map((o) => o.digest)]), [[0, 110, [h(1), h(3), h(2)]]], 'sorted by offset, one range');
  // Within the gap, but the range would exceed a pack's size by one byte: a new range.
  assert.equal(packRanges([[h(1), p, 0, PACK_BYTES - 10], [h(2), p, PACK_BYTES - 10, 11]]).length, 2);
  assert.equal(packRanges([[h(1), p, 0, PACK_BYTES - 10], [h(2), p, PACK_BYTES - 10, 10]]).length, 1, 'exactly a pack: one range');
  assert.equal(packRanges([[h(1), p, 100, 10], [h(2), p, 120, PACK_BYTES - 120]]).length, 1, 'a range from 100 to the pack\'s end fits');
});
