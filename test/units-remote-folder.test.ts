// The folder remote and the remote's layout at their edges: no file descriptor left open by any
// read or write, however it ends; errors that are not about the remote's content (a name too long,
// a folder where a file is removed) thrown as they are, not taken for damage; listings read by the
// layout's exact names only.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FolderRemote } from '../src/remote/folder.ts';
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
