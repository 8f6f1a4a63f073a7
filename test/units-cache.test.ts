// The cache as units, in-process on real files: canonical JSON and the key, the code closure, the
// digest cache, and the store's checks of what it serves (records, objects, manifests, views,
// indexes). Exact values, milliseconds each: `npm run mutate` runs these against src/cache/.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';
import { DigestCache, dirDigest, digestFresh } from '../src/cache/digests.ts';
import { CodeClosures } from '../src/cache/closure.ts';
import { codeLabel, ENGINE_VERSION, FINGERPRINT_FORMAT, fingerprintKey, PACKAGE_ROOT, type Fingerprint } from '../src/cache/fingerprint.ts';
import { canonicalJson, hashBytes, hashFile, hashJson, jsonExact } from '../src/cache/hash.ts';
import { OBJECT_MTIME_MS, Store, workspaceId, type RunRecord } from '../src/cache/store.ts';
import { readSealed, writeSealed } from '../src/fsutil.ts';
import { signature, trustworthy } from '../src/cache/signature.ts';
import { writeSnapshot } from '../src/cache/snapshot.ts';
import { acquireLease, sessionId, withFileLock } from '../src/cache/lock.ts';
import { put, scratch } from './helpers/engine.ts';
import { aged } from './helpers/workspace.ts';

const HEX32 = /^[0-9a-f]{32}$/;

test('canonical JSON: keys sorted at every depth, arrays kept in order, non-finite numbers tagged apart from null', async () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [2, { y: 2, x: 1 }], c: null } }), '{"a":{"c":null,"d":[2,{"x":1,"y":2}]},"b":1}');
  assert.equal(canonicalJson([Infinity, -Infinity, NaN, null]), '[{"$number":"Infinity"},{"$number":"-Infinity"},{"$number":"NaN"},null]');
  assert.equal(canonicalJson('s'), '"s"');
  assert.equal(await hashJson({ a: 1, b: 2 }), await hashJson({ b: 2, a: 1 }));
  assert.notEqual(await hashJson({ a: [1, 2] }), await hashJson({ a: [2, 1] }));
  assert.notEqual(await hashJson({ a: Infinity }), await hashJson({ a: null }));
  assert.equal(await hashJson({ a: 1 }), await hashBytes('{"a":1}'));
  for (const v of [1, 'x', null, true, [1, { a: [2] }], { a: { b: 'c' } }]) assert.equal(jsonExact(v), true, JSON.stringify(v));
  for (const v of [NaN, Infinity, undefined, () => 1, 1n, Symbol('s'), [1, NaN], { a: undefined }, { a: 1, b: NaN }, { a: { b: -Infinity } }]) assert.equal(jsonExact(v), false, String(v));
});

test('file hashes equal the hash of the same bytes, across the 4 MiB chunk boundary and for concurrent reads', async (t) => {
  const d = scratch(t);
  const sizes = [0, 1, 4 << 20, (4 << 20) + 3, (8 << 20) + 1];
  const bytes = sizes.map((n) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = (i * 2654435761) >>> 24;
    writeFileSync(join(d, `f${n}`), b);
    return b;
  });
  const got = await Promise.all(sizes.map((n) => hashFile(join(d, `f${n}`))));
  for (let i = 0; i < sizes.length; i++) {
    assert.equal(got[i]!.size, sizes[i]);
    assert.equal(got[i]!.digest, await hashBytes(bytes[i]!), `size ${sizes[i]}`);
    assert.match(got[i]!.digest, HEX32);
  }
  assert.notEqual(got[2]!.digest, got[3]!.digest);
  await assert.rejects(hashFile(join(d, 'none')), /ENOENT/);
  assert.equal((await hashFile(join(d, 'f1'))).digest, got[1]!.digest, 'a failed read leaves the hasher usable');
  // Each file is closed once hashed (a store hashes thousands: no descriptor may wait for the GC).
  const open = () => readdirSync('/proc/self/fd').length;
  const before = open();
  for (let i = 0; i < 20; i++) await hashFile(join(d, 'f1'));
  assert.equal(open(), before);
});

const FP: Fingerprint = {
  engine: ENGINE_VERSION,
  kind: 'command',
  code: { 'a.py': 'd1' },
  packages: { p: '1.0.0' },
  command: { argv: ['python3', 'a.py'], shell: false },
  params: { lr: 0.1, layers: [1, 2] },
  inputs: { 'data.csv': 'd2' },
  upstream: { 'prep.o': 'd3' },
  env: { A: '1' },
  shellEnv: { B: null },
  seed: 1,
  version: null,
  outputs: ['o'],
  extras: { backend: 'cpu' },
};

test('the cache key: a 128-bit hex digest over every fingerprint field, blind to key order', async () => {
  assert.match(ENGINE_VERSION, new RegExp(`^\\d+\\.\\d+\\.\\d+.*/f${FINGERPRINT_FORMAT}$`));
  const key = await fingerprintKey(FP);
  assert.match(key, HEX32);
  const reordered = Object.fromEntries(Object.entries(FP).reverse()) as unknown as Fingerprint;
  assert.equal(await fingerprintKey(reordered), key);
  const changes: Array<Partial<Fingerprint>> = [
    { engine: '0.0.0/f1' },
    { kind: 'module' },
    { code: { 'a.py': 'd9' } },
    { packages: { p: '1.0.1' } },
    { command: { argv: ['python3', 'a.py'], shell: true } },
    { params: { lr: 0.2, layers: [1, 2] } },
    { params: { lr: 0.1, layers: [2, 1] } },
    { inputs: { 'data.csv': 'd9' } },
    { upstream: { 'prep.o': 'd9' } },
    { env: { A: '2' } },
    { shellEnv: { B: '' } },
    { seed: 2 },
    { version: 1 },
    { outputs: ['o', 'p'] },
    { extras: { backend: 'webgpu' } },
  ];
  const keys = new Set([key]);
  for (const c of changes) keys.add(await fingerprintKey({ ...FP, ...c }));
  assert.equal(keys.size, changes.length + 1, 'each field changes the key');
});

test('code labels: workspace files by relative path, the tool\'s own files as pipeline:<path>', () => {
  assert.equal(codeLabel('/w/stages/a.ts', '/w'), 'stages/a.ts');
  assert.equal(codeLabel(join(PACKAGE_ROOT, 'src', 'stage-api.ts'), '/elsewhere'), 'pipeline:src/stage-api.ts');
});

test('the code closure is what esbuild compiled: local files by the bytes compiled, packages by version or (linked) by content; kept between commands, bundled again on an edit', async (t) => {
  const w = scratch(t, {
    'stages/m.ts': "import { a } from './lib/a.js';\nimport { i } from './dir';\nimport fs from 'node:fs';\nimport path from 'path';\nimport q from 'q';\nimport deep from '@s/p/deep.js';\nimport { v } from 'linked';\nimport { defineStage } from 'rrtn-pipeline';\nexport const all = [a, i, fs, path, q, deep, v, defineStage, new URL('./lib/k.bin', import.meta.url)];\n",
    'stages/lib/a.ts': "export { b } from '../../b.ts';\nexport const a = 1;\n",
    'b.ts': 'export const b = 1;\n',
    'stages/dir/index.ts': 'export const i = 1;\n',
    'stages/lib/k.bin': 'kernel',
    'node_modules/q/package.json': '{"name":"q","version":"2.0.1","main":"index.js"}',
    'node_modules/q/index.js': 'module.exports = 1;\n',
    'node_modules/@s/p/package.json': '{"name":"@s/p","version":"1.2.3"}',
    'node_modules/@s/p/deep.js': 'export default 1;\n',
    'lib-src/package.json': '{"name":"linked","version":"1.0.0","main":"index.js"}',
    'lib-src/index.js': 'exports.v = 1;\n',
    'lib-src/node_modules/dep/x.js': 'ignored\n',
  });
  symlinkSync('../lib-src', join(w, 'node_modules', 'linked'));
  const cache = join(w, 'cache');
  const digests = new DigestCache(join(cache, 'state.json'));
  const first = await new CodeClosures(cache, w, digests).of(join(w, 'stages/m.ts'));
  assert.deepEqual(Object.keys(first.code).filter((f) => !f.startsWith('pipeline:')).sort(), ['b.ts', 'stages/dir/index.ts', 'stages/lib/a.ts', 'stages/lib/k.bin', 'stages/m.ts']);
  assert.ok('pipeline:src/stage-api.ts' in first.code && 'pipeline:src/random.ts' in first.code, 'the stage API and what it imports: ' + Object.keys(first.code).join(' '));
  assert.equal(first.code['b.ts'], await hashBytes(readFileSync(join(w, 'b.ts'))));
  assert.equal(first.code['stages/lib/k.bin'], await hashBytes('kernel'), 'a file read by the module\'s own URL');
  assert.equal(first.packages.q, '2.0.1');
  assert.equal(first.packages['@s/p'], '1.2.3');
  assert.match(first.packages.linked!, /^linked:[0-9a-f]{32}$/, 'a linked package by content');
  assert.ok(first.compiled?.size, 'found by bundling: the compiled module comes with it');
  // The next command checks the kept list by digest: no bundling.
  const again = await new CodeClosures(cache, w, new DigestCache(join(cache, 'state.json'))).of(join(w, 'stages/m.ts'));
  assert.deepEqual(again.code, first.code);
  assert.deepEqual(again.packages, first.packages);
  assert.equal(again.compiled, undefined, 'taken from what was kept');
  // An edit (here one that adds an import) is bundled again.
  writeFileSync(join(w, 'stages/lib/a.ts'), "export { b } from '../../b.ts';\nexport { c as a } from './c.ts';\n");
  put(w, 'stages/lib/c.ts', 'export const c = 2;\n');
  const edited = await new CodeClosures(cache, w, new DigestCache(join(cache, 'state.json'))).of(join(w, 'stages/m.ts'));
  assert.ok(edited.compiled, 'bundled again');
  assert.ok('stages/lib/c.ts' in edited.code, 'the new import is in');
  // The linked package's content, not its version: an edit moves it; its own node_modules do not.
  writeFileSync(join(w, 'lib-src/node_modules/dep/x.js'), 'still ignored\n');
  assert.equal((await new CodeClosures(cache, w, new DigestCache(join(cache, 'state.json'))).of(join(w, 'stages/m.ts'))).packages.linked, first.packages.linked);
  writeFileSync(join(w, 'lib-src/index.js'), 'exports.v = 2;\n');
  assert.notEqual((await new CodeClosures(cache, w, new DigestCache(join(cache, 'state.json'))).of(join(w, 'stages/m.ts'))).packages.linked, first.packages.linked);
  // Memoized within a command.
  const c = new CodeClosures(cache, w, digests);
  const once = c.of(join(w, 'b.ts'));
  assert.equal(c.of(join(w, 'b.ts')), once);
  await once;
});

test('a kept code closure that is damaged is dropped, saying so, and found again by bundling', async (t) => {
  const w = scratch(t, { 'm.ts': 'export const x = 1;\n' });
  const cache = join(w, 'cache');
  await new CodeClosures(cache, w, new DigestCache(join(cache, 'state.json'))).of(join(w, 'm.ts'));
  const [kept] = readdirSync(join(cache, 'closures'));
  writeFileSync(join(cache, 'closures', kept!), '{"seal":"0","files":{}}');
  let c: Awaited<ReturnType<CodeClosures['of']>> | undefined;
  const said = await stderrDuring(async () => {
    c = await new CodeClosures(cache, w, new DigestCache(join(cache, 'state.json'))).of(join(w, 'm.ts'));
  });
  assert.deepEqual(said, [`cache: dropped a corrupt code closure (${join(cache, 'closures', kept!)}); it will be rebuilt\n`]);
  assert.ok(c!.compiled, 'bundled again');
  assert.deepEqual(Object.keys(c!.code), ['m.ts']);
});

test('digest cache: trusts a file by size, mtime, inode and ctime; rehashes on any change; never remembers a file written this second', async (t) => {
  const w = scratch(t, { 'f.txt': 'aaaa', 'new.txt': 'n' });
  const f = join(w, 'f.txt');
  const old = new Date(Date.now() - 60_000);
  await aged([f]);
  const state = join(w, 'cache', 'state.json');
  const one = new DigestCache(state);
  const d1 = (await one.file(f)).digest;
  assert.equal(d1, await hashBytes('aaaa'));
  writeFileSync(join(w, 'new.txt'), 'n');
  await one.file(join(w, 'new.txt')); // just written: racy, not kept
  await one.save();
  const saved = (await readSealed<{ files: Record<string, unknown[]> }>(state)) as { files: Record<string, unknown[]> };
  assert.deepEqual(Object.keys(saved.files), [f]);
  assert.deepEqual(saved.files[f]!, [4, statSync(f).mtimeMs, statSync(f).ino, statSync(f).ctimeMs, d1]);

  // Nothing moved: the remembered digest (the contents are not read: a rewrite through a path the
  // signature cannot see would show here, and there is none).
  const two = new DigestCache(state);
  await two.load();
  assert.equal((await two.file(f)).digest, d1);
  // Rewritten at the same size with its mtime put back (cp -p, shutil.copy2): the ctime moved.
  writeFileSync(f, 'bbbb');
  utimesSync(f, old, old);
  assert.equal(statSync(f).mtimeMs, saved.files[f]![1], 'the mtime is as it was');
  assert.equal((await two.file(f)).digest, await hashBytes('bbbb'));
  // An edit in place with the same size and a new mtime: rehashed.
  writeFileSync(f, 'cccc');
  const later = new Date(old.getTime() + 1000);
  utimesSync(f, later, later);
  assert.equal((await two.file(f)).digest, await hashBytes('cccc'));
  assert.deepEqual(two.observed.get(f)!.sig, [4, statSync(f).mtimeMs, statSync(f).ino, statSync(f).ctimeMs]);

  // A damaged state file is dropped: every file is hashed again.
  writeFileSync(state, '{"version":1,"files":{},"imports":{}}');
  const three = new DigestCache(state);
  await three.load();
  assert.ok(!existsSync(state), "!existsSync(state)");
  writeFileSync(f, 'dddd');
  utimesSync(f, old, old);
  assert.equal((await three.file(f)).digest, await hashBytes('dddd'));
  // A state file of another shape, sealed: dropped too.
  await writeSealed(state, { version: 3, files: {}, imports: {} });
  await new DigestCache(state).load();
  assert.ok(!existsSync(state), "!existsSync(state)");
});

test('digest cache: folders by their file list, missing paths as missing, forget() drops a folder and what is inside only', async (t) => {
  const w = scratch(t, { 'd/a.txt': 'a', 'd/sub/b.txt': 'bb', 'd2/c.txt': 'c' });
  const c = new DigestCache(join(w, 'state.json'));
  const d = await c.path(join(w, 'd'));
  assert.equal(d.kind, 'dir');
  assert.equal(d.files, 2);
  assert.equal(d.size, 3);
  assert.deepEqual(d.manifest, [
    { path: 'a.txt', size: 1, digest: await hashBytes('a') },
    { path: 'sub/b.txt', size: 2, digest: await hashBytes('bb') },
  ]);
  assert.deepEqual(d, await digestFresh(join(w, 'd')));
  assert.equal(d.digest, (await dirDigest(d.manifest!)).digest);
  assert.deepEqual(await c.path(join(w, 'none')), { kind: 'missing', digest: '', size: 0, files: 0 });
  assert.deepEqual(await c.path(join(w, 'd', 'a.txt', 'x')), { kind: 'missing', digest: '', size: 0, files: 0 });
  const f = await c.path(join(w, 'd', 'a.txt'));
  assert.deepEqual(f, { kind: 'file', digest: await hashBytes('a'), size: 1, files: 1 });
  const d2 = await c.path(join(w, 'd2'));
  // Memoized within a command until forgotten.
  writeFileSync(join(w, 'd', 'a.txt'), 'A');
  writeFileSync(join(w, 'd2', 'c.txt'), 'C');
  assert.equal((await c.path(join(w, 'd'))).digest, d.digest);
  c.forget(join(w, 'd'));
  assert.notEqual((await c.path(join(w, 'd'))).digest, d.digest);
  assert.notEqual((await c.path(join(w, 'd', 'a.txt'))).digest, f.digest, 'a file inside is forgotten with its folder');
  assert.equal((await c.path(join(w, 'd2'))).digest, d2.digest, "a sibling whose name starts the same is not forgotten");
  // The folder's order and the file names are part of the digest.
  const m = d.manifest!;
  assert.notEqual((await dirDigest([m[1]!, m[0]!])).digest, d.digest);
  assert.notEqual((await dirDigest([{ ...m[0]!, path: 'z.txt' }, m[1]!])).digest, d.digest);
  // prune() forgets files that are gone.
  const p = new DigestCache(join(w, 'state.json'));
  writeFileSync(join(w, 'gone.txt'), 'g');
  await aged([join(w, 'd2', 'c.txt'), join(w, 'gone.txt')]);
  await p.file(join(w, 'd2', 'c.txt'));
  assert.equal(await p.prune(), 0);
  await p.file(join(w, 'gone.txt'));
  (await import('node:fs')).rmSync(join(w, 'gone.txt'));
  assert.equal(await p.prune(), 1);
});

// --- The store -----------------------------------------------------------------------------------

const base = (key: string): Omit<RunRecord, 'outputs' | 'committedAt'> => ({ key, stage: 's', spec: 'p.yaml', fingerprint: FP, startedAt: 'now', durationMs: 1 });

/** Commits a run with one file output `f` ("file body") and one folder output `d` (two files). */
async function commitSample(store: Store, w: string, key: string, body = 'file body') {
  const out = join(w, `out-${key.slice(0, 4)}-${Math.random().toString(36).slice(2)}`);
  put(out, 'f', body);
  put(out, 'd/x.txt', 'x');
  put(out, 'd/sub/y.txt', 'yy');
  return store.commit(out, ['f', 'd'], base(key));
}

/** What `body` wrote to stderr, in pieces as written (and kept off the test's output). */
async function stderrDuring(body: () => Promise<unknown>): Promise<string[]> {
  const said: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => (said.push(String(s)), true)) as typeof process.stderr.write;
  try {
    await body();
  } finally {
    process.stderr.write = write;
  }
  return said;
}

function storeIn(t: { after(f: () => void): void }) {
  const w = scratch(t);
  const store = new Store(join(w, 'cache'));
  const dropped: string[] = [];
  store.onCorrupt = (what) => dropped.push(what);
  return { w, store, dropped };
}

test('store: the record of a commit names each output by kind, digest, size and file count', async (t) => {
  const { w, store } = storeIn(t);
  const before = Date.now();
  const rec = await commitSample(store, w, 'a'.repeat(32));
  assert.ok(rec.committedAt >= before && rec.committedAt <= Date.now(), "rec.committedAt >= before && rec.committedAt <= Date.now()");
  assert.deepEqual(rec.outputs.f, { kind: 'file', digest: await hashBytes('file body'), size: 9, files: 1 });
  assert.equal(rec.outputs.d!.kind, 'dir');
  assert.equal(rec.outputs.d!.size, 3);
  assert.equal(rec.outputs.d!.files, 2);
  assert.equal(store.objectPath(rec.outputs.f!.digest), join(store.root, 'objects', rec.outputs.f!.digest.slice(0, 2), rec.outputs.f!.digest.slice(2)));
  assert.equal(readFileSync(store.objectPath(rec.outputs.f!.digest), 'utf8'), 'file body');
  assert.deepEqual(await store.readManifest(rec.outputs.d!.digest), [
    { path: 'sub/y.txt', size: 2, digest: await hashBytes('yy') },
    { path: 'x.txt', size: 1, digest: await hashBytes('x') },
  ].sort((a, b) => (a.path < b.path ? -1 : 1)));
  assert.deepEqual(await store.runKeys(), ['a'.repeat(32)]);
  assert.equal(readFileSync(store.viewPath(rec, 'f'), 'utf8'), 'file body');
  assert.deepEqual(await store.outputObjectSizes(rec.outputs.d!), (await store.readManifest(rec.outputs.d!.digest))!.map((f) => [f.digest, f.size]));
  assert.deepEqual(await store.outputObjects(rec.outputs.f!), [rec.outputs.f!.digest]);
});

test('store: a record is served only when sealed, well formed and filed under its own key', async (t) => {
  const { w, store, dropped } = storeIn(t);
  const key = 'a'.repeat(32);
  const rec = await commitSample(store, w, key);
  assert.deepEqual((await store.readRun(key))?.outputs, rec.outputs);
  assert.equal(await store.readRun('b'.repeat(32)), undefined);
  assert.deepEqual(dropped, [], 'a record that does not exist is not corrupt');
  const bad: Array<[string, unknown]> = [
    ['another key', { ...rec, key: 'c'.repeat(32) }],
    ['a key that is not a digest', { ...rec, key: 'zz' }],
    ['no fingerprint', { ...rec, fingerprint: 'x' }],
    ['no commit time', { ...rec, committedAt: 'now' }],
    ['an output of no kind', { ...rec, outputs: { f: { ...rec.outputs.f, kind: 'link' } } }],
    ['an output digest of the wrong form', { ...rec, outputs: { f: { ...rec.outputs.f, digest: 'XYZ' } } }],
    ['an output without a size', { ...rec, outputs: { f: { ...rec.outputs.f, size: '9' } } }],
    ['an output without a file count', { ...rec, outputs: { f: { ...rec.outputs.f, files: undefined } } }],
    ['outputs as a list', { ...rec, outputs: [rec.outputs.f] }],
  ];
  for (const [why, value] of bad) {
    await writeSealed(store.runPath(key), value as object);
    dropped.length = 0;
    assert.equal(await store.readRun(key), undefined, why);
    assert.deepEqual(dropped, ['a corrupt run record'], why);
    assert.ok(!existsSync(store.runPath(key)), `${why}: dropped`);
  }
  // Not sealed (hand-written or cut short): dropped too.
  writeFileSync(store.runPath(key), JSON.stringify(rec));
  assert.equal(await store.readRun(key), undefined);
});

test('store: a hit checks every object by stat (missing, resized, written since, not a file); --verify rehashes', async (t) => {
  const { w, store, dropped } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  const fObj = store.objectPath(rec.outputs.f!.digest);
  const xObj = store.objectPath((await store.readManifest(rec.outputs.d!.digest))!.find((f) => f.path === 'x.txt')!.digest);
  assert.equal(await store.hasOutputs(rec), true);
  assert.equal(await store.hasOutputs(rec, true), true);
  const recommit = () => commitSample(store, w, 'a'.repeat(32));

  // Written since it was stored (mtime moved): dropped, not served.
  utimesSync(xObj, new Date(), new Date());
  assert.equal(await store.hasOutputs(rec), false);
  assert.match(dropped.pop()!, /^a corrupt object \(modified after it was stored\)$/);
  assert.ok(!existsSync(xObj), "!existsSync(xObj)");
  // Missing: not served, nothing to drop.
  assert.equal(await store.hasOutputs(rec), false);
  assert.deepEqual(dropped, []);
  await recommit();
  assert.equal(await store.hasOutputs(rec), true);
  assert.equal(statSync(xObj).mtimeMs, OBJECT_MTIME_MS, 'a rerun stores a fresh, stamped object');

  // Resized (the stamp put back by hand).
  chmodSync(fObj, 0o644);
  truncateSync(fObj, 3);
  utimesSync(fObj, OBJECT_MTIME_MS / 1000, OBJECT_MTIME_MS / 1000);
  assert.equal(await store.hasOutputs(rec), false);
  assert.match(dropped.pop()!, /size 3, recorded 9/);
  await recommit();

  // Same size, stamp put back: only a rehash tells.
  chmodSync(fObj, 0o644);
  writeFileSync(fObj, 'FILE BODY');
  utimesSync(fObj, OBJECT_MTIME_MS / 1000, OBJECT_MTIME_MS / 1000);
  assert.equal(await store.hasOutputs(rec), true);
  assert.equal(await store.hasOutputs(rec, true), false);
  assert.match(dropped.pop()!, /content does not match its digest/);
  await recommit();
  assert.equal(readFileSync(fObj, 'utf8'), 'file body', 'the damaged object was replaced by fresh bytes');

  // A folder where an object should be.
  (await import('node:fs')).rmSync(fObj);
  mkdirSync(fObj);
  assert.equal(await store.hasOutputs(rec), false);
  assert.match(dropped.pop()!, /not a regular file/);

  // A folder output whose manifest is gone or lists another number of files.
  await recommit();
  (await import('node:fs')).rmSync(store.manifestPath(rec.outputs.d!.digest));
  assert.equal(await store.hasOutputs(rec), false);
  await recommit();
  assert.equal(await store.hasOutputs({ ...rec, outputs: { d: { ...rec.outputs.d!, files: 3 } } }), false);
});

test('store: a stored object replaced under the same name by other bytes is refreshed on the next commit', async (t) => {
  const { w, store } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  const obj = store.objectPath(rec.outputs.f!.digest);
  const ino = statSync(obj).ino;
  // Same size, stamp intact, wrong bytes (what only `verify` could see): a rerun replaces it.
  chmodSync(obj, 0o644);
  writeFileSync(obj, 'XXXX BODY');
  utimesSync(obj, OBJECT_MTIME_MS / 1000, OBJECT_MTIME_MS / 1000);
  await commitSample(store, w, 'b'.repeat(32));
  assert.equal(readFileSync(obj, 'utf8'), 'file body');
  assert.notEqual(statSync(obj).ino, ino);
  assert.equal(statSync(obj).mtimeMs, OBJECT_MTIME_MS);
  assert.equal(statSync(obj).mode & 0o222, 0);
  assert.ok(!readdirSync(join(obj, '..')).some((f) => f.includes('.obj-')), 'no temp object left');
});

test('store: manifests are checked against the digest they are filed under', async (t) => {
  const { w, store, dropped } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  const digest = rec.outputs.d!.digest;
  const good = readFileSync(store.manifestPath(digest), 'utf8');
  const m = JSON.parse(good) as Array<{ path: string; size: number; digest: string }>;
  const bad: Array<[string, string]> = [
    ['not JSON', '{'],
    ['not a list', '{}'],
    ['an entry without a size', JSON.stringify([{ path: 'x', digest: 'd' }])],
    ['an entry without a path', JSON.stringify([{ size: 1, digest: 'd' }])],
    ['an entry without a digest', JSON.stringify([{ path: 'x', size: 1 }])],
    ['a renamed file', JSON.stringify([{ ...m[0], path: 'renamed' }, m[1]])],
  ];
  for (const [why, text] of bad) {
    writeFileSync(store.manifestPath(digest), text);
    assert.equal(await store.readManifest(digest), undefined, why);
    assert.deepEqual(dropped.splice(0), ['a corrupt folder manifest'], why);
    assert.ok(!existsSync(store.manifestPath(digest)), "!existsSync(store.manifestPath(digest))");
  }
  // saveManifest writes one back (and leaves a good one alone).
  await store.saveManifest(await digestFresh(store.viewPath(rec, 'd')));
  assert.equal(readFileSync(store.manifestPath(digest), 'utf8'), good);
  await store.saveManifest({ kind: 'file', digest: 'f'.repeat(32), size: 1, files: 1 });
  assert.ok(!existsSync(store.manifestPath('f'.repeat(32))), 'files have no manifest');
});

test('store: a view that differs from the run is named file by file and rebuilt from the objects', async (t) => {
  const { w, store } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  const view = store.viewPath(rec, 'd');
  assert.deepEqual(await store.viewProblems(rec, 'd'), []);
  assert.deepEqual(await store.viewProblems(rec, 'f'), []);
  (await import('node:fs')).rmSync(join(view, 'x.txt'));
  writeFileSync(join(view, 'extra.txt'), 'e');
  assert.deepEqual((await store.viewProblems(rec, 'd')).sort(), ['d/extra.txt: added', 'd/x.txt: removed']);
  const rebuilt = await store.ensureView(rec, 'd');
  assert.equal(rebuilt, view);
  assert.deepEqual(readdirSync(view, { recursive: true }).map(String).sort(), ['sub', 'sub/y.txt', 'x.txt']);
  assert.equal(readFileSync(join(view, 'x.txt'), 'utf8'), 'x');
  // A view that is a file where a folder was, or gone.
  (await import('node:fs')).rmSync(view, { recursive: true });
  writeFileSync(view, 'oops');
  assert.deepEqual(await store.viewProblems(rec, 'd'), ['d: not a folder']);
  (await import('node:fs')).rmSync(view);
  assert.deepEqual(await store.viewProblems(rec, 'd'), ['d: missing']);
  assert.equal(await store.ensureView(rec, 'd'), view);
  // A file output's view checked like an object.
  (await import('node:fs')).rmSync(store.viewPath(rec, 'f'));
  assert.deepEqual(await store.viewProblems(rec, 'f'), ['f: missing']);
  assert.equal(readFileSync(await store.ensureView(rec, 'f'), 'utf8'), 'file body');
  await assert.rejects(store.ensureView(rec, 'nope'), /has no output 'nope'/);
  // Without its manifest the view cannot be checked or rebuilt.
  (await import('node:fs')).rmSync(store.manifestPath(rec.outputs.d!.digest));
  assert.deepEqual(await store.viewProblems(rec, 'd'), ['d: the cache lost its file list']);
});

test('store: a stage that wrote into a view it read loses that view and the objects it changed, nothing else', async (t) => {
  const { w, store } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  assert.deepEqual(await store.dropWrittenView(rec, 'd'), []);
  const view = store.viewPath(rec, 'd');
  const yObj = store.objectPath((await store.readManifest(rec.outputs.d!.digest))!.find((f) => f.path === 'sub/y.txt')!.digest);
  const xObj = store.objectPath((await store.readManifest(rec.outputs.d!.digest))!.find((f) => f.path === 'x.txt')!.digest);
  chmodSync(join(view, 'sub', 'y.txt'), 0o644);
  writeFileSync(join(view, 'sub', 'y.txt'), 'YY'); // through the hardlink: the object changed too
  assert.deepEqual(await store.dropWrittenView(rec, 'd'), ['d/sub/y.txt: modified after it was stored']);
  assert.ok(!existsSync(view), "!existsSync(view)");
  assert.ok(!existsSync(yObj), "!existsSync(yObj)");
  assert.ok(existsSync(xObj), "existsSync(xObj)");
  assert.ok(existsSync(store.viewPath(rec, 'f')), 'the other output stays');
});

test('store: the latest-run index keeps well-formed entries and is rewritten only when something changed', async (t) => {
  const { w, store, dropped } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  assert.deepEqual(await store.readLatest('/w', 'p.yaml'), new Map());
  await store.writeLatest('/w', 'dir/p.yaml', new Map([['s', rec]]));
  const path = store.latestPath('/w', 'dir/p.yaml');
  assert.equal(path, join(store.root, 'latest', workspaceId('/w'), 'dir%2Fp.yaml.json'));
  const got = await store.readLatest('/w', 'dir/p.yaml');
  assert.deepEqual({ ...got.get('s'), at: undefined }, { key: rec.key, outputs: rec.outputs, committedAt: rec.committedAt, at: undefined });
  const ino = statSync(path).ino;
  await store.writeLatest('/w', 'dir/p.yaml', new Map([['s', rec]]));
  assert.equal(statSync(path).ino, ino, 'nothing changed: not rewritten');
  await store.writeLatest('/w', 'dir/p.yaml', new Map([['s', { ...rec, committedAt: rec.committedAt + 1 }]]));
  assert.notEqual(statSync(path).ino, ino);
  // Other stages' entries are kept; a malformed entry is left out.
  const rec2 = { ...rec, key: 'b'.repeat(32) };
  await store.writeLatest('/w', 'dir/p.yaml', new Map([['t', rec2]]));
  assert.deepEqual([...(await store.readLatest('/w', 'dir/p.yaml')).keys()], ['s', 't']);
  await writeSealed(path, { s: { ...rec, at: 'x' }, t: { key: 'bad' } });
  assert.deepEqual([...(await store.readLatest('/w', 'dir/p.yaml')).keys()], ['s']);
  assert.deepEqual([...(await store.allLatest()).keys()], [`${workspaceId('/w')}/dir/p.yaml`]);
  // Not an index (a list, or a seal that does not match): dropped.
  writeFileSync(path, '[]');
  assert.deepEqual(await store.readLatest('/w', 'dir/p.yaml'), new Map());
  assert.deepEqual(dropped.splice(0), ['a corrupt latest-run index']);
  writeFileSync(path, readFileSync(store.runPath(rec.key), 'utf8').replace('"stage":"s"', '"stage":"t"'));
  assert.deepEqual(await store.readLatest('/w', 'dir/p.yaml'), new Map());
  assert.deepEqual(dropped, ['a corrupt latest-run index']);
  assert.ok(!existsSync(path), "!existsSync(path)");
});

test('store: the published-outputs index belongs to one workspace', async (t) => {
  const { store, dropped } = storeIn(t);
  assert.deepEqual(await store.readPublished('/w1'), {});
  await store.writePublished('/w1', { 'a.txt': 'd1' });
  await store.writePublished('/w2', { 'a.txt': 'd2' });
  assert.deepEqual(await store.readPublished('/w1'), { 'a.txt': 'd1' });
  assert.deepEqual(await store.readPublished('/w2'), { 'a.txt': 'd2' });
  const file = join(store.root, 'published', `${await hashBytes('/w1')}.json`);
  for (const v of [{ workspace: '/w2', paths: {} }, { workspace: '/w1', paths: { a: 1 } }, { workspace: '/w1' }]) {
    await writeSealed(file, v);
    assert.deepEqual(await store.readPublished('/w1'), {});
    assert.deepEqual(dropped.splice(0), ['a corrupt published-outputs index']);
  }
});

test('store: runs publishing into one workspace at once each keep what they recorded (the index is merged under its lock)', async (t) => {
  const { store } = storeIn(t);
  await store.writePublished('/w', { kept: 'd0' });
  // Each write reads the index, merges its paths and writes it back: without the lock, writers that
  // read before another wrote drop that one's paths.
  await Promise.all(Array.from({ length: 6 }, (_, i) => store.writePublished('/w', { [`p${i}`]: `d${i + 1}`, kept: 'd0' })));
  const expected = Object.fromEntries([['kept', 'd0'], ...Array.from({ length: 6 }, (_, i) => [`p${i}`, `d${i + 1}`])]);
  assert.deepEqual(await store.readPublished('/w'), expected);
  assert.ok(!existsSync(join(store.root, 'published', `${await hashBytes('/w')}.json.lock`)), 'the index lock is let go');
});

test('store: publish swaps in a copy (never a link to an object), replaces a folder whole, leaves no temp files', async (t) => {
  const { w, store } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  const dest = join(w, 'ws', 'res');
  await store.publish(rec.outputs.d!, dest);
  assert.deepEqual(readdirSync(dest, { recursive: true }).map(String).sort(), ['sub', 'sub/y.txt', 'x.txt']);
  const obj = store.objectPath(rec.outputs.f!.digest);
  await store.publish(rec.outputs.f!, join(w, 'ws', 'f'));
  assert.notEqual(statSync(join(w, 'ws', 'f')).ino, statSync(obj).ino);
  assert.equal(statSync(join(w, 'ws', 'f')).mode & 0o777, 0o644);
  // A folder replaced by another holds exactly the new files; a folder replaced by a file.
  writeFileSync(join(dest, 'stale.txt'), 's');
  writeFileSync(join(w, 'ws', '.res.new-123'), 'left by a killed run');
  put(join(w, 'ws', '.res.old-456'), 'x.txt', 'moved aside by a run killed before it removed it');
  await store.publish(rec.outputs.d!, dest);
  assert.ok(!existsSync(join(dest, 'stale.txt')), "!existsSync(join(dest, 'stale.txt'))");
  await store.publish(rec.outputs.f!, dest);
  assert.equal(readFileSync(dest, 'utf8'), 'file body');
  assert.deepEqual(readdirSync(join(w, 'ws')).sort(), ['f', 'res']);
  // materializeInto without copy: hardlinks of the objects (views).
  await store.materializeInto(rec.outputs.f!, join(w, 'linked'));
  assert.equal(statSync(join(w, 'linked')).ino, statSync(obj).ino);
  (await import('node:fs')).rmSync(store.manifestPath(rec.outputs.d!.digest));
  await assert.rejects(store.materializeInto(rec.outputs.d!, join(w, 'x')), /the cache lost the file list .*`pipeline run --force`/);
});

test('store: verify removes objects whose bytes or stamp are wrong and the views built on them', async (t) => {
  const { w, store } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  const all = await store.objectDigests();
  assert.equal(all.size, 3);
  for (const [d, o] of all) assert.equal(o.path, store.objectPath(d));
  const fObj = store.objectPath(rec.outputs.f!.digest);
  chmodSync(fObj, 0o644);
  writeFileSync(fObj, 'FILE BODY');
  utimesSync(fObj, OBJECT_MTIME_MS / 1000, OBJECT_MTIME_MS / 1000);
  const xObj = [...all.values()].find((o) => o.size === 1)!.path;
  utimesSync(xObj, new Date(), new Date());
  const seen: number[] = [];
  const r = await store.verifyObjects((done, total) => seen.push(done * 10 + total));
  assert.equal(r.checked, 3);
  assert.deepEqual(r.corrupt.sort(), [rec.outputs.f!.digest, [...all].find(([, o]) => o.path === xObj)![0]].sort());
  assert.deepEqual(seen, [13, 23, 33]);
  assert.ok(!existsSync(fObj) && !existsSync(xObj), "!existsSync(fObj) && !existsSync(xObj)");
  assert.ok(!existsSync(join(store.root, 'views')), "!existsSync(join(store.root, 'views'))");
  assert.equal((await store.objectDigests()).size, 1);
});

test('store: deleting a run removes its record, view and log; temp folders are cleared', async (t) => {
  const { w, store } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  put(join(store.root, 'logs'), `${rec.key}.log`, 'log');
  await store.deleteRun(rec.key);
  assert.ok(!existsSync(store.runPath(rec.key)), "!existsSync(store.runPath(rec.key))");
  assert.ok(!existsSync(store.viewFolder(rec.key)), "!existsSync(store.viewFolder(rec.key))");
  assert.ok(!existsSync(store.logPath(rec.key)), "!existsSync(store.logPath(rec.key))");
  assert.deepEqual(await store.runKeys(), []);
  const tmp = await store.makeTemp('stage[a=1/b]');
  assert.equal(dirname(tmp), join(store.root, 'tmp', sessionId()));
  assert.match(basename(tmp), /^stage_a_1_b_-\d+-/);
  assert.deepEqual(await store.clearTemp(), []);
  assert.ok(!existsSync(store.tmpDir), "!existsSync(store.tmpDir)");
  assert.equal(await store.deleteManifestsExcept(new Set()), 1);
  assert.equal(await store.deleteManifestsExcept(new Set()), 0);
});

test('store: a commit whose log cannot be moved still commits; the log lands beside the record', async (t) => {
  const { w, store } = storeIn(t);
  const out = join(w, 'o1');
  put(out, 'f', 'x');
  put(w, 'stage.log', 'line\n');
  const rec = await store.commit(out, ['f'], base('d'.repeat(32)), join(w, 'stage.log'));
  assert.equal(readFileSync(store.logPath(rec.key), 'utf8'), 'line\n');
  const out2 = join(w, 'o2');
  put(out2, 'f', 'x');
  const rec2 = await store.commit(out2, ['f'], base('e'.repeat(32)), join(w, 'no.log'));
  assert.ok(await store.readRun(rec2.key), "await store.readRun(rec2.key)");
});

test('digest cache: a changed size or a new inode alone is a change; folders are observed as folders; the state file is written only when it changed', async (t) => {
  const w = scratch(t, { 'f.txt': 'aaaa', 'd/x.txt': 'x' });
  const f = join(w, 'f.txt');
  const old = new Date(Date.now() - 60_000);
  await aged([f]);
  const state = join(w, 'cache', 'state.json');
  const c = new DigestCache(state);
  await c.file(f);
  // Same mtime and inode, other size.
  writeFileSync(f, 'aaaaa');
  utimesSync(f, old, old);
  assert.equal((await c.file(f)).digest, await hashBytes('aaaaa'));
  // Same size and mtime, another inode (a file renamed over it).
  put(w, 'g.txt', 'bbbbb');
  utimesSync(join(w, 'g.txt'), old, old);
  renameSync(join(w, 'g.txt'), f);
  assert.equal((await c.file(f)).digest, await hashBytes('bbbbb'));
  await c.path(join(w, 'd'));
  assert.equal(c.observed.get(join(w, 'd'))!.sig![0], -1, 'a folder is observed by mtime and inode, never by size');

  await c.save();
  assert.ok(existsSync(state), "existsSync(state)");
  rmSync(state);
  await c.save();
  assert.ok(!existsSync(state), 'nothing changed since the last save: not written again');
  writeFileSync(join(w, 'h.txt'), 'h');
  await aged([join(w, 'h.txt')]);
  await c.file(join(w, 'h.txt'));
  await c.save();
  assert.ok(existsSync(state), 'a newly remembered file is a change');
  const again = new DigestCache(state);
  await again.load();
  assert.equal(await again.prune(), 0);
  rmSync(state);
  await again.save();
  assert.ok(!existsSync(state), 'a prune that removed nothing is no change');
  rmSync(f);
  assert.equal(await again.prune(), 1);
  await again.save();
  const saved = (await readSealed<{ files: Record<string, unknown> }>(state)) as { files: Record<string, unknown> };
  assert.ok(!(f in saved.files), 'a pruned file is gone from the saved state');
  const fresh = new DigestCache(join(w, 'none', 'state.json'));
  await fresh.save();
  assert.ok(!existsSync(join(w, 'none')), 'a cache that learned nothing writes nothing');
});

test('store: deleting a run twice, or one with no view or log, is fine; manifests kept are kept; run keys are the records only', async (t) => {
  const { w, store } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  const view = await store.ensureView(rec, 'd');
  assert.ok(existsSync(join(view, 'sub', 'y.txt')), "existsSync(join(view, 'sub', 'y.txt'))");
  put(join(store.root, 'runs'), 'junk.tmp', 'x');
  assert.deepEqual(await store.runKeys(), [rec.key]);
  await store.deleteRun(rec.key);
  assert.ok(!existsSync(store.viewFolder(rec.key)), "!existsSync(store.viewFolder(rec.key))");
  await store.deleteRun(rec.key);
  const manifests = readdirSync(join(store.root, 'manifests'));
  assert.equal(manifests.length, 1);
  assert.equal(await store.deleteManifestsExcept(new Set([rec.outputs.d!.digest])), 0);
  assert.deepEqual(readdirSync(join(store.root, 'manifests')), manifests);
});

test('store: clearing temp folders leaves live runs alone (their lease is fresh), clears dead ones and an older engine\'s', async (t) => {
  const { store } = storeIn(t);
  const tmp = join(store.root, 'tmp');
  put(tmp, 'otherhost-77/s-77-aa/out/f', 'live run');
  put(join(store.root, 'leases', 'otherhost-77'), 'owner.json', JSON.stringify({ pid: 77, host: 'otherhost', since: 'now', command: 'pipeline run' }));
  put(tmp, 'otherhost-78/s-78-bb/out/f', 'no lease: died');
  put(tmp, 'x-1-abc/out/f', 'older engine');
  put(tmp, 'stray-file', 'a file');
  const stale = join(store.root, 'leases', 'otherhost-79');
  put(stale, 'owner.json', JSON.stringify({ pid: 79, host: 'otherhost', since: 'then', command: 'pipeline run' }));
  put(tmp, 'otherhost-79/s/out/f', 'heartbeat stopped');
  const old = new Date(Date.now() - 120_000);
  utimesSync(stale, old, old);
  await store.makeTemp('mine');
  assert.deepEqual(await store.clearTemp(), []);
  assert.deepEqual(readdirSync(tmp), ['otherhost-77']);
  assert.ok(!existsSync(stale), 'a lease without heartbeat is broken');
});

test('digest cache: a sealed state file whose files are not a map is dropped, saying so', async (t) => {
  const w = scratch(t);
  const state = join(w, 'state.json');
  const said = await stderrDuring(async () => {
    for (const bad of [{ version: 2, files: 'x' }, { version: 2, files: [1] }]) {
      await writeSealed(state, bad);
      await new DigestCache(state).load();
      assert.ok(!existsSync(state), JSON.stringify(bad));
    }
  });
  assert.deepEqual(said, [`cache: dropped a corrupt digest state file (${state}); files are hashed again\n`, `cache: dropped a corrupt digest state file (${state}); files are hashed again\n`]);
});

test('store: a dead run\'s stage process group still running is stopped when its temp folder is cleared, and said', async (t) => {
  const { store } = storeIn(t);
  const child = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  const pgid = child.pid!;
  const dead = join(store.root, 'tmp', `${hostname()}-999999`);
  put(join(dead, 'train-999999-ab'), 'pgid', JSON.stringify({ pid: pgid, pgid, host: hostname(), since: 'then', command: 'stage' }));
  // An engine before sessions recorded the group in the run's folder itself: that folder is named.
  const legacy = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
  t.after(() => legacy.kill('SIGKILL'));
  put(join(store.root, 'tmp', 'x-1-abc'), 'pgid', JSON.stringify({ pid: legacy.pid!, pgid: legacy.pid!, host: hostname(), since: 'then', command: 'stage' }));
  const exited = Promise.all([child, legacy].map((c) => new Promise((r) => c.once('exit', r))));
  assert.deepEqual((await store.clearTemp()).sort(), [`stopped process group ${pgid}, left running by a run that died (train-999999-ab)`, `stopped process group ${legacy.pid}, left running by a run that died (x-1-abc)`].sort());
  await exited;
  assert.ok(!existsSync(dead), "!existsSync(dead)");
});

test('store: an output that is a link, or holds something neither file nor folder, is refused by name', async (t) => {
  const { w, store } = storeIn(t);
  const out = join(w, 'out');
  put(out, 'd/a.txt', 'a');
  symlinkSync('/etc/hostname', join(out, 'd', 'link'));
  await assert.rejects(store.commit(out, ['d'], base('a'.repeat(32))), /^Error: output 'd' cannot be stored: d\/link is a symbolic link \(-> \/etc\/hostname\); write the file itself, not a link$/);
  assert.deepEqual(await store.runKeys(), [], 'nothing committed');
});

test('store: an object replaced by a folder is refused at a hit, replaced by the next commit, and removed by verify', async (t) => {
  const { w, store, dropped } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  const fObj = store.objectPath(rec.outputs.f!.digest);
  const asFolder = () => {
    rmSync(fObj, { force: true });
    put(fObj, 'inside', 'not an object');
  };
  asFolder();
  assert.equal(await store.hasOutputs(rec), false);
  assert.deepEqual(dropped, ['a corrupt object (not a regular file)']);
  assert.ok(!existsSync(fObj), 'the folder is gone');
  asFolder();
  await commitSample(store, w, 'a'.repeat(32));
  assert.equal(readFileSync(fObj, 'utf8'), 'file body');
  assert.equal(await store.hasOutputs(rec), true);
  asFolder();
  const r = await store.verifyObjects();
  assert.deepEqual(r.corrupt, [rec.outputs.f!.digest]);
  assert.ok(!existsSync(fObj), "!existsSync(fObj)");
});

test('store: a publish that fails half-way leaves only a .NAME.new-* folder, which the next publish clears; an intact view is served as it is', async (t) => {
  const { w, store } = storeIn(t);
  assert.deepEqual(await store.runKeys(), [], 'a fresh store has no runs (and no runs folder)');
  assert.equal((await store.objectDigests()).size, 0);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  const y = (await store.readManifest(rec.outputs.d!.digest))!.find((f) => f.path === 'sub/y.txt')!;
  const yObj = store.objectPath(y.digest);
  rmSync(yObj);
  const dest = join(w, 'ws', 'res');
  await assert.rejects(store.publish(rec.outputs.d!, dest), /ENOENT/);
  const left = readdirSync(join(w, 'ws'));
  assert.equal(left.length, 1);
  assert.match(left[0]!, /^\.res\.new-/);
  await commitSample(store, w, 'a'.repeat(32));
  await store.publish(rec.outputs.d!, dest);
  assert.deepEqual(readdirSync(join(w, 'ws')), ['res']);
  // A view that matches its run is not rebuilt (the same folder, not a new one renamed in).
  const view = await store.ensureView(rec, 'd');
  const made = statSync(view).ctimeMs;
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(await store.ensureView(rec, 'd'), view);
  assert.equal(statSync(view).ctimeMs, made);
});

test('store: digests and keys must be exactly 32 hex digits, every output well formed, every index entry an object', async (t) => {
  const { w, store, dropped } = storeIn(t);
  const key = 'a'.repeat(32);
  const rec = await commitSample(store, w, key);
  const f = rec.outputs.f!;
  const bad: Array<[string, unknown]> = [
    ['a digest one digit too long', { ...rec, outputs: { f: { ...f, digest: `${f.digest}0` } } }],
    ['a digest behind a stray letter', { ...rec, outputs: { f: { ...f, digest: `g${f.digest}` } } }],
    ['one good output, one bad', { ...rec, outputs: { f, d: { ...rec.outputs.d!, kind: 'link' } } }],
  ];
  for (const [why, value] of bad) {
    await writeSealed(store.runPath(key), value as object);
    assert.equal(await store.readRun(key), undefined, why);
    assert.deepEqual(dropped.splice(0), ['a corrupt run record'], why);
  }
  // A record filed under a name that is not a key, naming that same non-key: not served either.
  for (const k of [`${key}0`, `g${key}`]) {
    await writeSealed(store.runPath(k), { ...rec, key: k });
    assert.equal(await store.readRun(k), undefined, k);
    assert.deepEqual(dropped.splice(0), ['a corrupt run record'], k);
  }
  // A latest index entry that is null, or of a non-key: left out, the rest served.
  const path = store.latestPath('/w', 'p.yaml');
  await writeSealed(path, { s: { ...rec, at: 'x' }, n: null, k: { ...rec, key: `${key}0` } });
  assert.deepEqual([...(await store.readLatest('/w', 'p.yaml')).keys()], ['s']);
  // A published index with one path that is not a digest string: dropped whole.
  const pub = join(store.root, 'published', `${await hashBytes('/w')}.json`);
  await writeSealed(pub, { workspace: '/w', paths: { a: 'd1', b: 2 } });
  assert.deepEqual(await store.readPublished('/w'), {});
  assert.deepEqual(dropped.splice(0), ['a corrupt published-outputs index']);
});

test('store: a manifest filed under its own digest but with a field of the wrong type, or one bad entry, is dropped', async (t) => {
  const { store, dropped } = storeIn(t);
  const good = { path: 'a.txt', size: 1, digest: 'b'.repeat(32) };
  const cases: Array<[string, unknown[]]> = [
    ['a size as text', [{ ...good, size: '1' }]],
    ['a path as a number', [{ ...good, path: 7 }]],
    ['a digest as a number', [{ ...good, digest: 7 }]],
    ['a good entry then a bad one', [good, { ...good, path: 'b.txt', size: '2' }]],
  ];
  for (const [why, m] of cases) {
    // Filed under the digest of exactly these entries, so only the shape check can refuse it.
    const digest = await hashJson((m as Array<Record<string, unknown>>).map((e) => [e.path, e.size, e.digest]));
    put(join(store.root, 'manifests'), `${digest}.json`, JSON.stringify(m));
    assert.equal(await store.readManifest(digest), undefined, why);
    assert.deepEqual(dropped.splice(0), ['a corrupt folder manifest'], why);
  }
  // The same check passes a well-formed one, so the cases above fail on their shape alone.
  const digest = await hashJson([[good.path, good.size, good.digest]]);
  put(join(store.root, 'manifests'), `${digest}.json`, JSON.stringify([good]));
  assert.deepEqual(await store.readManifest(digest), [good]);
  // A manifest path that is a folder (not readable as a file) is corrupt too, and removed whole.
  const d2 = 'c'.repeat(32);
  put(store.manifestPath(d2), 'x', 'y');
  assert.equal(await store.readManifest(d2), undefined);
  assert.deepEqual(dropped.splice(0), ['a corrupt folder manifest']);
  assert.ok(!existsSync(store.manifestPath(d2)), "!existsSync(store.manifestPath(d2))");
});

test('store: corrupt state is reported on stderr by default, naming what and where', async (t) => {
  const w = scratch(t);
  const store = new Store(join(w, 'cache'));
  const key = 'a'.repeat(32);
  put(join(store.root, 'runs'), `${key}.json`, '{"not":"sealed"}');
  const said = await stderrDuring(async () => assert.equal(await store.readRun(key), undefined));
  assert.deepEqual(said, [`cache: dropped a corrupt run record (${store.runPath(key)}); it will be rebuilt\n`]);
});

test('store: the cache layout (logs, checkpoints, runs, latest) as gc and other tools read it', async (t) => {
  const { w, store } = storeIn(t);
  const key = 'a'.repeat(32);
  assert.equal(store.logPath(key), join(store.root, 'logs', `${key}.log`));
  assert.equal(store.checkpointPath(key), join(store.root, 'checkpoints', key));
  assert.equal(store.runPath(key), join(store.root, 'runs', `${key}.json`));
  assert.equal(store.viewFolder(key), join(store.root, 'views', key));
  // runs/ may hold temp files of a record being written: only *.json are runs.
  const rec = await commitSample(store, w, key);
  put(join(store.root, 'runs'), `.${key}.json.tmp-1`, 'x');
  put(join(store.root, 'runs'), `${'b'.repeat(32)}.json.part`, 'x');
  assert.deepEqual(await store.runKeys(), [key]);
  // An older engine's index (latest/<spec>.json) beside this engine's (latest/<workspace>/<spec>.json).
  await store.writeLatest('/w', 'p.yaml', new Map([['s', rec]]));
  await writeSealed(join(store.root, 'latest', 'old.yaml.json'), { s: { ...rec, at: 'x' } });
  const all = await store.allLatest();
  assert.deepEqual([...all.keys()].sort(), [`${workspaceId('/w')}/p.yaml`, 'old.yaml'].sort());
  assert.deepEqual([...all.get('old.yaml')!.keys()], ['s']);
  assert.deepEqual([...all.get(`${workspaceId('/w')}/p.yaml`)!.keys()], ['s']);
  // Another run's entry with the same commit time but another key replaces the old one.
  await store.writeLatest('/w', 'p.yaml', new Map([['s', { ...rec, key: 'b'.repeat(32) }]]));
  assert.equal((await store.readLatest('/w', 'p.yaml')).get('s')!.key, 'b'.repeat(32));
  // A stage label longer than a file name may be is cut (a sweep's variant labels can be long).
  const tmp = await store.makeTemp(`train[${'lr=0.001,'.repeat(40)}]`);
  assert.ok(basename(tmp).length < 100, basename(tmp));
  assert.ok(existsSync(tmp), "existsSync(tmp)");
});

type Fsp = typeof fsp;
/**
 * Runs `body` with one fs/promises function replaced by `fake` (given the real one), then puts it
 * back. The store's named imports see the fake: builtin ESM bindings follow syncBuiltinESMExports.
 */
async function withFs<K extends 'link' | 'rename' | 'rm' | 'readdir' | 'stat', T>(name: K, fake: (real: Fsp[K]) => Fsp[K], body: () => Promise<T>): Promise<T> {
  const real = fsp[name];
  fsp[name] = fake(real);
  syncBuiltinESMExports();
  try {
    return await body();
  } finally {
    fsp[name] = real;
    syncBuiltinESMExports();
  }
}

const failure = (code: string, what = 'injected') => Object.assign(new Error(`${code}: ${what}`), { code });

/** Makes fs/promises' link fail with `code` while `f` runs. */
const withLinkFailing = <T>(code: string, f: () => Promise<T>): Promise<T> =>
  withFs('link', () => async () => {
    throw failure(code);
  }, f);

test('store: where hardlinks fail (EXDEV, EPERM), objects and views are copies that pass the same checks', async (t) => {
  for (const code of ['EXDEV', 'EPERM']) {
    const { w, store, dropped } = storeIn(t);
    const rec = await withLinkFailing(code, () => commitSample(store, w, 'a'.repeat(32)));
    const fObj = store.objectPath(rec.outputs.f!.digest);
    assert.equal(readFileSync(fObj, 'utf8'), 'file body', code);
    assert.equal(statSync(fObj).mtimeMs, OBJECT_MTIME_MS, `${code}: a copied object carries the stamp`);
    assert.equal(statSync(fObj).mode & 0o777, 0o444, `${code}: read-only`);
    assert.equal(await store.hasOutputs(rec), true, code);
    rmSync(store.viewFolder(rec.key), { recursive: true });
    const view = await withLinkFailing(code, () => store.ensureView(rec, 'd'));
    assert.equal(readFileSync(join(view, 'sub', 'y.txt'), 'utf8'), 'yy');
    assert.deepEqual(await store.viewProblems(rec, 'd'), [], `${code}: a copied view is intact`);
    assert.deepEqual(await store.dropWrittenView(rec, 'd'), [], code);
    assert.deepEqual(dropped, [], code);
  }
});

test('store: an object another process stored between our check and our link is kept as it is', async (t) => {
  const { w, store } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  const fObj = store.objectPath(rec.outputs.f!.digest);
  rmSync(fObj);
  // The other process links its copy in after our lstat found none: our link() meets EEXIST.
  const theirs = join(w, 'theirs');
  writeFileSync(theirs, 'file body');
  utimesSync(theirs, OBJECT_MTIME_MS / 1000, OBJECT_MTIME_MS / 1000);
  chmodSync(theirs, 0o444);
  const out = join(w, 'again');
  put(out, 'f', 'file body');
  const fake = (real: Fsp['link']): Fsp['link'] => async (src, dest) => {
    if (dest !== fObj) return real(src, dest);
    await real(theirs, fObj);
    throw failure('EEXIST');
  };
  const rec2 = await withFs('link', fake, () => store.commit(out, ['f'], base('b'.repeat(32))));
  assert.equal(statSync(fObj).ino, statSync(theirs).ino, 'theirs kept, not replaced by ours');
  assert.equal(await store.hasOutputs(rec2), true);
});

test('store: a view another process built while ours was being built is served, ours removed; a failed build says why and leaves nothing', async (t) => {
  const { w, store } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  const p = store.viewPath(rec, 'd');
  rmSync(store.viewFolder(rec.key), { recursive: true });
  let theirs = false;
  const fake = (real: Fsp['rename']): Fsp['rename'] => async (from, to) => {
    if (to !== p) return real(from, to);
    if (!theirs) throw failure('EACCES');
    await store.materializeInto(rec.outputs.d!, p); // the other process's rename landed first
    throw failure('ENOTEMPTY');
  };
  await withFs('rename', fake, async () => {
    await assert.rejects(store.ensureView(rec, 'd'), /EACCES: injected/);
    assert.ok(!existsSync(p), "!existsSync(p)");
    assert.deepEqual(readdirSync(store.tmpDir), [], 'the half-built view is removed');
    theirs = true;
    assert.equal(await store.ensureView(rec, 'd'), p);
  });
  assert.deepEqual(await store.viewProblems(rec, 'd'), []);
  assert.deepEqual(readdirSync(store.tmpDir), []);
});

test('store: a folder publish whose swap fails puts the old folder back; a stage\'s symbolic link in a view is named as added', async (t) => {
  const { w, store } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  const dest = join(w, 'ws', 'res');
  put(dest, 'mine.txt', 'the old result');
  const failSwap = (real: Fsp['rename']): Fsp['rename'] => async (from, to) => {
    if (to === dest && basename(String(from)).startsWith('.res.new-')) throw failure('EIO');
    return real(from, to);
  };
  await withFs('rename', failSwap, () => assert.rejects(store.publish(rec.outputs.d!, dest), /EIO: injected/));
  assert.equal(readFileSync(join(dest, 'mine.txt'), 'utf8'), 'the old result');
  await store.publish(rec.outputs.d!, dest);
  assert.deepEqual(readdirSync(join(w, 'ws')), ['res']);
  assert.deepEqual(readdirSync(dest).sort(), ['sub', 'x.txt']);
  // Killed after the swap, before the old folder was removed: the next publish removes it.
  const killedBeforeRm = (real: Fsp['rm']): Fsp['rm'] => async (path, opts) => {
    if (dirname(String(path)) === join(w, 'ws') && basename(String(path)).startsWith('.res.')) throw failure('EINTR', 'killed');
    return real(path, opts);
  };
  await withFs('rm', killedBeforeRm, () => assert.rejects(store.publish(rec.outputs.d!, dest), /killed/));
  assert.equal(readdirSync(join(w, 'ws')).length, 2);
  await store.publish(rec.outputs.d!, dest);
  assert.deepEqual(readdirSync(join(w, 'ws')), ['res']);
  // Links a stage left in a view it read are listed as they are, not followed.
  const view = store.viewPath(rec, 'd');
  put(w, 'elsewhere/a.txt', 'a');
  symlinkSync(join(w, 'elsewhere'), join(view, 'dirlink'));
  symlinkSync(join(w, 'gone'), join(view, 'broken'));
  assert.deepEqual((await store.viewProblems(rec, 'd')).sort(), ['d/broken: added', 'd/dirlink: added']);
});

test('store: saveManifest keeps a good manifest (same file), skips a folder digest without a list; a fresh store has nothing to delete', async (t) => {
  const { w, store } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  const path = store.manifestPath(rec.outputs.d!.digest);
  const ino = statSync(path).ino;
  await store.saveManifest(await digestFresh(store.viewPath(rec, 'd')));
  assert.equal(statSync(path).ino, ino, 'not rewritten');
  await store.saveManifest({ kind: 'dir', digest: 'e'.repeat(32), size: 1, files: 1 });
  assert.ok(!existsSync(store.manifestPath('e'.repeat(32))), "!existsSync(store.manifestPath('e'.repeat(32)))");
  const fresh = new Store(join(w, 'fresh'));
  assert.equal(await fresh.deleteManifestsExcept(new Set()), 0);
  assert.deepEqual(await fresh.clearTemp(), []);
  assert.deepEqual(await fresh.runKeys(), []);
  assert.deepEqual(await fresh.allLatest(), new Map());
  assert.deepEqual(await fresh.workspaces(), new Map());
});

test('store: a view whose object was replaced by a folder loses that folder too when a stage wrote into the view', async (t) => {
  const { w, store } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  const view = store.viewPath(rec, 'd');
  const xObj = store.objectPath((await store.readManifest(rec.outputs.d!.digest))!.find((f) => f.path === 'x.txt')!.digest);
  rmSync(xObj);
  put(xObj, 'inside', 'not an object');
  rmSync(join(view, 'x.txt'));
  assert.deepEqual(await store.dropWrittenView(rec, 'd'), ['d/x.txt: removed']);
  assert.ok(!existsSync(xObj), "!existsSync(xObj)");
  assert.ok(!existsSync(view), "!existsSync(view)");
});

test('store: the workspace registry gc reads: each workspace by its 16-hex id, marked gone and back, forgotten with its indexes; a malformed or misfiled record dropped', async (t) => {
  const { w, store, dropped } = storeIn(t);
  assert.deepEqual(await store.workspaces(), new Map(), 'none yet (no folder)');
  await store.registerWorkspace('/ws/a');
  await store.registerWorkspace('/ws/b');
  const a = workspaceId('/ws/a');
  assert.match(a, /^[0-9a-f]{16}$/);
  assert.deepEqual(readdirSync(join(store.root, 'workspaces')).sort(), [`${a}.json`, `${workspaceId('/ws/b')}.json`].sort());
  const all = await store.workspaces();
  assert.deepEqual([...all.keys()].sort(), [a, workspaceId('/ws/b')].sort());
  assert.equal(all.get(a)!.workspace, '/ws/a');
  assert.ok(Date.now() - Date.parse(all.get(a)!.lastRun) < 60_000, "Date.now() - Date.parse(all.get(a)!.lastRun) < 60_000");
  await store.updateWorkspace({ ...all.get(a)!, goneSince: '2026-01-01T00:00:00.000Z' });
  assert.equal((await store.workspaces()).get(a)!.goneSince, '2026-01-01T00:00:00.000Z');
  // Forgetting a workspace removes its record and its latest-run indexes, nothing of the others.
  const rec = await commitSample(store, w, 'a'.repeat(32));
  await store.writeLatest('/ws/a', 'p.yaml', new Map([['s', rec]]));
  await store.writeLatest('/ws/b', 'p.yaml', new Map([['s', rec]]));
  await store.forgetWorkspace(a);
  await store.forgetWorkspace(a);
  assert.deepEqual([...(await store.workspaces()).keys()], [workspaceId('/ws/b')]);
  assert.deepEqual([...(await store.allLatest()).keys()], [`${workspaceId('/ws/b')}/p.yaml`]);
  // Not sealed, not a record, or filed under another workspace's id: dropped; other files ignored.
  const dir = join(store.root, 'workspaces');
  writeFileSync(join(dir, `${a}.json`), '{"workspace":"/ws/a"}');
  await writeSealed(join(dir, 'ffffffffffffffff.json'), { workspace: '/ws/a', lastRun: 'x' });
  await writeSealed(join(dir, 'eeeeeeeeeeeeeeee.json'), { workspace: 7, lastRun: 'x' });
  writeFileSync(join(dir, 'notes.txt'), 'not a record');
  dropped.length = 0;
  assert.deepEqual([...(await store.workspaces()).keys()], [workspaceId('/ws/b')]);
  assert.deepEqual(dropped, ['a corrupt workspace record', 'a corrupt workspace record', 'a corrupt workspace record']);
  assert.deepEqual(readdirSync(dir).sort(), [`${workspaceId('/ws/b')}.json`, 'notes.txt'].sort());
  // A record removed between listing and reading it (another process forgetting it) is not corrupt.
  const listsGone = ((real: (d: string) => Promise<string[]>) => async (d: string) => [...(await real(d)), 'dddddddddddddddd.json']) as never;
  assert.deepEqual([...(await withFs('readdir', listsGone, () => store.workspaces())).keys()], [workspaceId('/ws/b')]);
  assert.deepEqual(dropped.slice(3), [], 'nothing dropped');
  // A file of an output, by its path inside it ('' for a file output).
  const y = (await store.readManifest(rec.outputs.d!.digest))!.find((f) => f.path === 'sub/y.txt')!;
  assert.equal(await store.objectIn(rec.outputs.d!, 'sub/y.txt'), store.objectPath(y.digest));
  assert.equal(await store.objectIn(rec.outputs.d!, 'nope'), undefined);
  assert.equal(await store.objectIn(rec.outputs.f!, ''), store.objectPath(rec.outputs.f!.digest));
});

test('store: every removal tolerates a path already gone (another run, or a user, removed it first)', async (t) => {
  const { w, store, dropped } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  const dest = join(w, 'ws', 'res');
  await store.publish(rec.outputs.d!, dest);
  // Whatever a step removes is gone just before it does: the removal finds nothing there.
  const goneFirst = (real: Fsp['rm']): Fsp['rm'] => async (path, opts) => {
    await real(path, { recursive: true, force: true });
    return real(path, opts);
  };
  const said: string[] = [];
  await withFs('rm', goneFirst, async () => {
    writeFileSync(store.runPath(rec.key), '{"not":"sealed"}');
    assert.equal(await store.readRun(rec.key), undefined, 'a corrupt record dropped');
    await commitSample(store, w, 'a'.repeat(32));
    put(join(store.root, 'tmp', `${hostname()}-999999`), 's-1-ab/f', 'a dead run\'s temp');
    assert.deepEqual(await store.clearTemp(), []);
    put(store.viewPath(rec, 'd'), 'extra.txt', 'a stage wrote here');
    assert.equal(await store.ensureView(rec, 'd'), store.viewPath(rec, 'd'), 'a changed view rebuilt');
    put(store.viewPath(rec, 'd'), 'extra.txt', 'again');
    assert.deepEqual(await store.dropWrittenView(rec, 'd'), ['d/extra.txt: added']);
    const x = join(await store.ensureView(rec, 'd'), 'x.txt');
    chmodSync(x, 0o644);
    writeFileSync(x, 'X'); // through the hardlink: the object changes too, and goes
    assert.deepEqual(await store.dropWrittenView(rec, 'd'), ['d/x.txt: modified after it was stored']);
    assert.equal(await store.hasOutputs(rec), false);
    await commitSample(store, w, 'a'.repeat(32));
    put(join(w, 'ws'), '.res.new-1-killed/x.txt', 'left by a killed publish');
    await store.publish(rec.outputs.d!, dest);
    assert.deepEqual(readdirSync(join(w, 'ws')), ['res']);
    const fObj = store.objectPath(rec.outputs.f!.digest);
    rmSync(fObj);
    put(fObj, 'inside', 'a folder where an object was');
    await commitSample(store, w, 'a'.repeat(32));
    assert.equal(readFileSync(fObj, 'utf8'), 'file body');
    chmodSync(fObj, 0o644);
    writeFileSync(fObj, 'FILE BODY');
    assert.equal((await store.verifyObjects()).corrupt.length, 1);
    assert.ok(!existsSync(join(store.root, 'views')), 'views dropped');
    assert.equal((await store.verifyObjects()).corrupt.length, 0, 'again, with no views folder at all');
    assert.equal(await store.deleteManifestsExcept(new Set()), 1);
    const state = join(w, 'state.json');
    writeFileSync(state, 'not json');
    said.push(...(await stderrDuring(() => new DigestCache(state).load())));
  });
  assert.deepEqual(dropped, ['a corrupt run record']);
  assert.equal(said.length, 1);
});

test('store: listing every latest index while a run holds one index\'s lock reads the indexes only and leaves the lock alone', async (t) => {
  const { w, store, dropped } = storeIn(t);
  const rec = await commitSample(store, w, 'a'.repeat(32));
  await store.writeLatest('/w', 'p.yaml', new Map([['s', rec]]));
  const path = store.latestPath('/w', 'p.yaml');
  await withFileLock(path, async () => {
    assert.deepEqual([...(await store.allLatest()).keys()], [`${workspaceId('/w')}/p.yaml`]);
    assert.ok(existsSync(`${path}.lock`), 'the lock is left alone');
  });
  assert.deepEqual(dropped, []);
});

test('store and digest cache: a listing or stat that fails for a reason other than "not there" is an error, not an empty folder or a missing file', async (t) => {
  const { w, store } = storeIn(t);
  await commitSample(store, w, 'a'.repeat(32));
  const eio = () => async () => {
    throw failure('EIO');
  };
  await withFs('readdir', eio as never, () => assert.rejects(store.runKeys(), /EIO: injected/));
  const digests = new DigestCache(join(w, 'state.json'));
  await withFs('stat', eio as never, () => assert.rejects(digests.path(join(w, 'anything')), /EIO: injected/));
  assert.deepEqual(await store.runKeys(), ['a'.repeat(32)]);
  assert.equal((await digests.path(join(w, 'nothing'))).kind, 'missing');
});

test('store: clearing temp folders inside a run (its lease live) clears this process\'s own earlier folders too', async (t) => {
  const { store } = storeIn(t);
  const lease = await acquireLease(store.root, 'pipeline run');
  t.after(() => lease.release());
  const mine = await store.makeTemp('earlier');
  assert.deepEqual(await store.clearTemp(), []);
  assert.ok(!existsSync(mine), 'the earlier temp folder is gone');
});

test('store: a stage key is held by one process at a time (the next waits, told by whom, or gives up when aborted); a run\'s own temp folder goes at its end', { timeout: 20_000 }, async (t) => {
  const { store } = storeIn(t);
  const key = 'c'.repeat(32);
  const first = await store.lockKey(key, () => assert.fail('nobody held it'), new AbortController().signal);
  assert.ok(existsSync(join(store.root, 'keys', key)), 'held as keys/<key>');
  const owners: string[] = [];
  const second = store.lockKey(key, (o) => owners.push(`${o.pid} ${o.command}`), new AbortController().signal);
  const gaveUp = new AbortController();
  const third = store.lockKey(key, () => gaveUp.abort(), gaveUp.signal);
  await assert.rejects(third, { name: 'AbortError' });
  await first.release();
  const held = await second;
  assert.deepEqual(owners, [`${process.pid} computing ${key}`]);
  assert.equal(held.waited, true);
  await held.release();
  const tmp = await store.makeTemp('stage');
  await store.dropOwnTemp();
  assert.ok(!existsSync(tmp) && !existsSync(store.tmpDir), 'this run\'s temp folder is gone');
  await store.dropOwnTemp();
});

test('store: an empty folder output is stored, viewed and published as an empty folder; a run that published nothing writes no index', async (t) => {
  const { w, store } = storeIn(t);
  const out = join(w, 'out');
  mkdirSync(join(out, 'e'), { recursive: true });
  const rec = await store.commit(out, ['e'], base('a'.repeat(32)));
  assert.deepEqual({ kind: rec.outputs.e!.kind, files: rec.outputs.e!.files }, { kind: 'dir', files: 0 });
  rmSync(store.viewFolder(rec.key), { recursive: true, force: true });
  const view = await store.ensureView(rec, 'e');
  assert.deepEqual(readdirSync(view), []);
  const dest = join(w, 'ws', 'e');
  await store.publish(rec.outputs.e!, dest);
  assert.ok(statSync(dest).isDirectory(), 'published as a folder');
  assert.deepEqual(readdirSync(dest), []);
  await store.writePublished('/w', {});
  assert.ok(!existsSync(join(store.root, 'published')), 'no index, no lock');
});

test('a signature vouches for what was read only if its times were past the racy window when it was taken, not when the snapshot is written', async (t) => {
  assert.equal(trustworthy([4, 10_000, 1, 10_000], 10_500), false, 'read in the second it was written: an edit right after keeps every field on a 1-second filesystem');
  assert.equal(trustworthy([4, 10_000, 1, 10_000], 11_001), true);
  assert.equal(trustworthy([4, 10_000, 1, 10_900], 11_500), false, 'a recent ctime (a rewrite with its mtime put back) is as racy');
  assert.equal(trustworthy(null, 0), true, 'a path that was missing');
  const w = scratch(t, { 'p.yaml': 'stages: {}\n', 'in.txt': 'x' });
  await aged([join(w, 'p.yaml'), join(w, 'in.txt')]);
  const store = new Store(join(w, 'cache'));
  const sig = signature(join(w, 'in.txt'))!;
  const snap = (at: number) => writeSnapshot({ file: join(w, 'cache', 'snap.json'), workspace: w, specRel: 'p.yaml', name: 'p', spec: join(w, 'p.yaml'), sets: [], env: {}, observed: [[join(w, 'in.txt'), { sig, at }]], outs: [], runs: [], stages: [], store, headlines: [], facts: [] });
  assert.equal(await snap(Math.max(sig[1], sig[3]) + 300), false, 'read 0.3 s after its last change: no snapshot, however long ago that read is now');
  assert.equal(await snap(Math.max(sig[1], sig[3]) + 1500), true);
});
