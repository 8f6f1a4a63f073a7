// The store's objects and views on real files, at the paths the engine's own runs rarely take:
// objects fetched from elsewhere (bytes and files installed read-only, stamped, whole), an output
// hard-linked to a file outside (stored as a checked copy, its view built from the objects), a
// commit that finds a view already there (kept when intact, replaced when damaged), the views of a
// forced rerun pruned, and what is hashed (regular files only).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';
import { DigestCache, dirDigest } from '../src/cache/digests.ts';
import { writeSealed } from '../src/fsutil.ts';
import { hashBytes, hashFile } from '../src/cache/hash.ts';
import { OBJECT_MTIME_MS, Store } from '../src/cache/store.ts';
import { scratch } from './helpers/engine.ts';

const base = (key: string) => ({ key, stage: 's', spec: 'p.yaml', fingerprint: {} as never, startedAt: 'now', durationMs: 1 });

function store(d: string): Store {
  const s = new Store(join(d, 'cache'));
  s.onCorrupt = () => undefined;
  return s;
}

/** A stage's output folder with one file output `r` and one folder output `f`. */
function outputs(d: string, name: string, text: string): string {
  const dir = join(d, name);
  mkdirSync(join(dir, 'f', 'sub'), { recursive: true });
  writeFileSync(join(dir, 'r'), text);
  writeFileSync(join(dir, 'f', 'sub', 'x'), `${text} inside`);
  return dir;
}

test('objects from elsewhere: fetched bytes and files are installed read-only, stamped and whole, beside others in the same folder', async (t) => {
  const d = scratch(t);
  const s = store(d);
  const bytes = Buffer.from('fetched bytes\n');
  const digest = await hashBytes(bytes);
  await s.installObjectBytes(bytes, digest);
  const obj = s.objectPath(digest);
  assert.equal(readFileSync(obj, 'utf8'), 'fetched bytes\n');
  assert.equal(statSync(obj).mode & 0o777, 0o444);
  assert.equal(statSync(obj).mtimeMs, OBJECT_MTIME_MS);
  assert.equal(s.objectIntact(digest, bytes.length), true);
  assert.equal(s.objectIntact(digest, bytes.length + 1), false, 'another size');
  assert.equal(s.objectIntact('f'.repeat(32), 1), false, 'absent');
  // Installing the same object again, and another one in the same folder.
  await s.installObjectBytes(bytes, digest);
  let other = Buffer.from('x');
  let od = await hashBytes(other);
  for (let i = 0; od.slice(0, 2) !== digest.slice(0, 2); i++) od = await hashBytes((other = Buffer.from(`x${i}`)));
  await s.installObjectBytes(other, od);
  assert.equal(readFileSync(s.objectPath(od), 'utf8'), other.toString());
  assert.deepEqual(readdirSync(dirname(obj)).filter((f) => f.includes('.')), [], 'no temp file left');

  // A file fetched to a temp path: moved in as the object.
  const tmpFile = join(d, 'fetched.tmp');
  writeFileSync(tmpFile, 'a fetched file\n');
  const fd = await hashBytes(Buffer.from('a fetched file\n'));
  await s.installObject(tmpFile, fd);
  assert.equal(existsSync(tmpFile), false);
  assert.equal(statSync(s.objectPath(fd)).mode & 0o777, 0o444);
  assert.equal(statSync(s.objectPath(fd)).mtimeMs, OBJECT_MTIME_MS);
  // A fetched file list (named by the folder's digest).
  const list = [{ path: 'a', size: 15, digest: fd }];
  const ld = (await dirDigest(list)).digest;
  await s.installManifest(ld, list);
  assert.deepEqual(await s.readManifest(ld), list);
});

test('an output hard-linked to a file outside is stored as a copy: the outside file keeps its mode and time, the view is built from the objects; a copy that no longer matches is refused', async (t) => {
  const d = scratch(t);
  const s = store(d);
  const outDir = join(d, 'out');
  mkdirSync(join(outDir, 'f'), { recursive: true });
  const outside = join(d, 'outside.txt');
  writeFileSync(outside, 'linked\n');
  const before = statSync(outside);
  linkSync(outside, join(outDir, 'r'));
  linkSync(outside, join(outDir, 'f', 'in-folder'));
  const rec = await s.commit(outDir, ['r', 'f'], base('c'.repeat(32)));
  const obj = s.objectPath(rec.outputs.r!.digest);
  assert.notEqual(statSync(obj).ino, before.ino, 'the object is not the outside file');
  assert.equal(statSync(outside).mode, before.mode);
  assert.equal(statSync(outside).mtimeMs, before.mtimeMs);
  assert.equal(statSync(outside).nlink, 1, 'the stage folder is gone, nothing else links to it');
  assert.equal(statSync(obj).mode & 0o777, 0o444);
  assert.equal(statSync(obj).mtimeMs, OBJECT_MTIME_MS);
  for (const [name, file] of [['r', ''], ['f', 'in-folder']] as const) {
    const view = join(s.viewPath(rec, name), file);
    assert.equal(readFileSync(view, 'utf8'), 'linked\n', `${name}: the view holds the bytes`);
    assert.notEqual(statSync(view).ino, before.ino, `${name}: the view is not the outside file`);
  }
  assert.equal(existsSync(outDir), false);
  // The copy is checked against the digest the stage's output had: a file written meanwhile is refused, no temp left.
  const again = join(d, 'again');
  mkdirSync(again);
  linkSync(outside, join(again, 'r'));
  await assert.rejects(s.objects.ingest(join(again, 'r'), { kind: 'file', digest: 'e'.repeat(32), size: 7, files: 1 } as never), /again\/r changed while it was stored \(it is linked to another file, which was written meanwhile\): rerun the stage/);
  await assert.rejects(s.objects.ingest(join(again, 'r'), { kind: 'file', digest: rec.outputs.r!.digest, size: 8, files: 1 } as never), /changed while it was stored/);
  assert.equal(existsSync(s.objectPath('e'.repeat(32))), false);
  assert.deepEqual(readdirSync(dirname(obj)).filter((f) => f !== basename(obj)), [], 'no temp copy left');
});

test('a commit that finds the same view there keeps it (it may be being read); a damaged one is replaced; views are 16 hex digits of the digest; the views of a forced rerun are pruned', async (t) => {
  const d = scratch(t);
  const s = store(d);
  const key = 'd'.repeat(32);
  const first = await s.commit(outputs(d, 'o1', 'one'), ['r', 'f'], base(key));
  const view = s.viewPath(first, 'f');
  assert.match(basename(dirname(view)), /^[0-9a-f]{16}$/);
  assert.equal(basename(dirname(view)), first.outputs.f!.digest.slice(0, 16));
  assert.equal(s.viewPath(first, 'absent'), join(d, 'cache', 'views', key, 'none', 'absent'));
  const ino = statSync(join(view, 'sub', 'x')).ino;
  // The same bytes again (a forced rerun): the view is kept as it is, the new folder dropped.
  const again = await s.commit(outputs(d, 'o2', 'one'), ['r', 'f'], base(key));
  assert.equal(s.viewPath(again, 'f'), view);
  assert.equal(statSync(join(view, 'sub', 'x')).ino, ino, 'the view was kept');
  assert.equal(existsSync(join(d, 'o2')), false);
  // A damaged view (a file added to it): replaced by the new output.
  writeFileSync(join(view, 'stray'), 'x');
  await s.commit(outputs(d, 'o3', 'one'), ['r', 'f'], base(key));
  assert.equal(existsSync(join(view, 'stray')), false, 'the damaged view was replaced');
  assert.equal(readFileSync(join(view, 'sub', 'x'), 'utf8'), 'one inside');
  // Other bytes under the same key: a view of their own; pruning keeps only the record's.
  const other = await s.commit(outputs(d, 'o4', 'two'), ['r', 'f'], base(key));
  assert.notEqual(s.viewPath(other, 'f'), view);
  assert.equal(readdirSync(s.viewFolder(key)).length, 4, 'each output digest names its own folder: two for each bytes');
  assert.equal(await s.pruneViews(other), 2);
  assert.deepEqual(readdirSync(s.viewFolder(key)).sort(), [other.outputs.r!.digest.slice(0, 16), other.outputs.f!.digest.slice(0, 16)].sort());
  assert.equal(await s.pruneViews(other), 0, 'nothing more to prune');
  assert.equal(readFileSync(join(s.viewPath(other, 'f'), 'sub', 'x'), 'utf8'), 'two inside');
});

test('only regular files are hashed: a FIFO or a device is refused at once, not read', async (t) => {
  const d = scratch(t);
  const fifo = join(d, 'fifo');
  execFileSync('mkfifo', [fifo]);
  await assert.rejects(hashFile(fifo), new RegExp(`^Error: ${fifo} is not a regular file: only regular files are hashed$`));
  await assert.rejects(hashFile('/dev/zero'), /\/dev\/zero is not a regular file/);
  writeFileSync(join(d, 'f'), 'abc');
  assert.deepEqual(await hashFile(join(d, 'f')), { digest: await hashBytes(Buffer.from('abc')), size: 3 });
});

test('a digest state an older engine wrote (version 1, no ctime) is set aside quietly, not called corrupt; a damaged one is dropped and said', async (t) => {
  const d = scratch(t);
  const path = join(d, 'state.json');
  const said: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => said.push(String(s)) > 0) as typeof process.stderr.write;
  t.after(() => {
    process.stderr.write = write;
  });
  await writeSealed(path, { version: 1, files: { '/x': [1, 2, 3, 'a'.repeat(32)] } });
  await new DigestCache(path).load();
  assert.deepEqual(said, [], 'nothing said of an older engine\'s state');
  assert.equal(existsSync(path), true, 'left for the next save to replace');
  writeFileSync(path, '{"version": 2, "files": ');
  await new DigestCache(path).load();
  assert.equal(existsSync(path), false, 'a damaged state is removed');
  assert.match(said.join(''), /cache: dropped a corrupt digest state file \(.*state\.json\); files are hashed again/);
});
