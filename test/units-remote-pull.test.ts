// Pull in-process at its less travelled paths: an object too large to hold in memory (streamed
// through a temp file, hashed there), the run's log coming with it, damage notes struck off once a
// run arrives whole, and each thing a remote can lack or hold wrong named in the refusal: a loose
// object (small or large) missing or changed, a pack missing, a file list missing or not matching
// its name, an index that is not one, a record not sealed; nothing of a refused run installed.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readDamage, updateDamage } from '../src/remote/damage.ts';
import { pullRuns } from '../src/remote/pull.ts';
import { IN_MEMORY, pushRuns } from '../src/remote/push.ts';
import { scratch } from './helpers/engine.ts';
import { commitRun, quiet, quietStore, storeAndRemote } from './helpers/remote-runs.ts';

process.env.XDG_CONFIG_HOME = join(scratch({ after: (f) => process.on('exit', f) }), 'me');

const looseFile = (root: string) => {
  const [sub] = readdirSync(join(root, 'objects'));
  const [name] = readdirSync(join(root, 'objects', sub!));
  return { path: join(root, 'objects', sub!, name!), digest: `${sub}${name}` };
};

test('a large object is streamed through a temp file and hashed there; the log comes with the run; damage noted against the run is struck off once it arrives', async (t) => {
  const { d, store, root, remote } = storeAndRemote(t);
  const big = Buffer.alloc(IN_MEMORY + 4096, 5);
  big[17] = 9;
  const k = await commitRun(store, d, 'big', { f: big });
  await pushRuns(store, remote, [k], quiet);
  const other = quietStore(join(d, 'other'));
  await updateDamage(other.root, remote.where, { runs: new Set([k]) });
  const r = await pullRuns(other, remote, [k], quiet);
  assert.deepEqual([r.pulled, r.refused, r.objects, r.bytes], [[k], [], 1, big.length]);
  assert.ok(r.seconds >= 0 && r.seconds < 600, `seconds: ${r.seconds}`);
  assert.deepEqual(readFileSync(await other.ensureView((await other.readRun(k))!, 'f')), big);
  assert.equal(readFileSync(other.logPath(k), 'utf8'), 'log of big\n');
  assert.deepEqual([...(await readDamage(other.root, remote.where)).runs], [], 'struck off');
  assert.deepEqual(readdirSync(other.tmpDir).filter((f) => f.startsWith('pull')), [], 'no temp file left');

  // The same object changed on the remote (same size): refused, named, nothing installed, no temp left.
  const o = looseFile(root);
  const bytes = readFileSync(o.path);
  bytes[100] ^= 1;
  writeFileSync(o.path, bytes);
  const third = quietStore(join(d, 'third'));
  const bad = await pullRuns(third, remote, [k], quiet);
  assert.deepEqual(bad.refused, [{ key: k, why: `stage big: objects/${o.digest.slice(0, 2)}/${o.digest.slice(2)} on ${root} does not match its digest (${big.length} bytes, ${big.length} recorded): refused` }]);
  assert.equal(await third.readRun(k), undefined);
  assert.deepEqual(readdirSync(third.tmpDir).filter((f) => f.startsWith('pull')), []);
  rmSync(o.path);
  assert.deepEqual((await pullRuns(third, remote, [k], quiet)).refused, [{ key: k, why: `stage big: objects/${o.digest.slice(0, 2)}/${o.digest.slice(2)} is missing on ${root}` }]);
});

test('each thing a remote can lack or hold wrong is named in the refusal: a small loose object, a pack, a file list, an index, a record', async (t) => {
  const { d, store, root, remote } = storeAndRemote(t);
  const loose = await commitRun(store, d, 'loose', { f: Buffer.alloc((1 << 20) + 1, 1) });
  const packed = await commitRun(store, d, 'packed', { f: 'packed bytes\n' });
  const folder = await commitRun(store, d, 'folder', { dir: { 'a.txt': 'a\n' } });
  await pushRuns(store, remote, [loose, packed, folder], quiet);
  const fresh = (n: string) => quietStore(join(d, n));
  const why = async (key: string, n: string) => {
    const s = fresh(n);
    const r = await pullRuns(s, remote, [key], quiet);
    assert.equal(await s.readRun(key), undefined, `${n}: nothing installed`);
    return r.refused.map((x) => x.why);
  };

  const o = looseFile(root);
  writeFileSync(o.path, Buffer.alloc((1 << 20) + 1, 2));
  assert.deepEqual(await why(loose, 'l1'), [`stage loose: objects/${o.digest.slice(0, 2)}/${o.digest.slice(2)} on ${root} does not match its digest (${(1 << 20) + 1} bytes, ${(1 << 20) + 1} recorded): refused`]);
  writeFileSync(o.path, Buffer.alloc(10, 1));
  assert.match((await why(loose, 'l2'))[0]!, /does not match its digest \(10 bytes, 1048577 recorded\): refused$/);

  const [pack] = readdirSync(join(root, 'packs')).filter((f) => f.endsWith('.pack'));
  const packBytes = readFileSync(join(root, 'packs', pack!));
  rmSync(join(root, 'packs', pack!));
  assert.deepEqual(await why(packed, 'p1'), [`stage packed: packs/${pack} is missing on ${root}`]);
  writeFileSync(join(root, 'packs', pack!), Buffer.concat([packBytes.subarray(0, 3), Buffer.from('X'), packBytes.subarray(4)]));
  assert.match((await why(packed, 'p2'))[0]!, new RegExp(`^stage packed: objects/\\w\\w/\\w+ in packs/${pack} on ${root} does not match its digest \\(13 bytes, 13 recorded\\): refused$`));
  writeFileSync(join(root, 'packs', pack!), packBytes);

  const [list] = readdirSync(join(root, 'manifests'));
  const listText = readFileSync(join(root, 'manifests', list!), 'utf8');
  rmSync(join(root, 'manifests', list!));
  assert.deepEqual(await why(folder, 'm1'), [`stage folder: manifests/${list} is missing on ${root}`]);
  writeFileSync(join(root, 'manifests', list!), listText.replace('"size":2', '"size":3'));
  assert.deepEqual(await why(folder, 'm2'), [`stage folder: manifests/${list} on ${root} does not match its digest: refused`]);
  writeFileSync(join(root, 'manifests', list!), 'not json');
  assert.deepEqual(await why(folder, 'm3'), [`stage folder: manifests/${list} on ${root} is not a folder's file list (not a list): refused`]);
  writeFileSync(join(root, 'manifests', list!), listText);

  writeFileSync(join(root, 'packs', `${packed}.idx`), '{"objects": "x"}');
  assert.deepEqual(await why(packed, 'i1'), [`stage packed: packs/${packed}.idx on ${root} is damaged: refused`]);
  writeFileSync(join(root, 'runs', `${folder}.json`), '{"key": 1}');
  assert.deepEqual(await why(folder, 'r1'), [`runs/${folder}.json is damaged (its seal or shape is wrong)`]);
  // A file list the pulling cache has already is not fetched again: gone from the remote, the run still arrives.
  const has = fresh('has');
  const other = await commitRun(has, d, 'folder', { dir: { 'a.txt': 'a\n' } });
  assert.equal(other, folder);
  rmSync(join(root, 'manifests', list!));
  const twin = await commitRun(has, d, 'twin', { dir: { 'a.txt': 'a\n' } });
  await pushRuns(has, remote, [twin], quiet);
  rmSync(join(root, 'manifests', list!), { force: true });
  rmSync(has.runPath(twin));
  assert.deepEqual((await pullRuns(has, remote, [twin], quiet)).pulled, [twin]);
  assert.ok(statSync(has.manifestPath(list!.replace('.json', ''))).isFile(), 'the local list served');
});
