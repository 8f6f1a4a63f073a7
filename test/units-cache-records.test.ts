// What the cache trusts of a record or a file list read back (from its own disk, or fetched from a
// remote): the checks of src/cache/entries.ts, case by case at their edges.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCachedRun, isManifest, isRunRecordFor, manifestProblem, MANIFEST_MAX_ENTRIES } from '../src/cache/entries.ts';

const D = 'a'.repeat(32);
const out = (o: Record<string, unknown> = {}) => ({ kind: 'file', digest: D, size: 3, files: 1, ...o });
const rec = (o: Record<string, unknown> = {}) => ({ key: D, committedAt: 1, outputs: { result: out() }, fingerprint: {}, stage: 'train', spec: 'p.yaml', ...o });

test('a cached run: a 32-hex key, a number for committedAt, outputs whose names are one path segment of the grammar and whose digests are well formed', () => {
  assert.equal(isCachedRun(rec()), true);
  assert.equal(isCachedRun(rec({ outputs: {} })), true, 'a stage with no outputs');
  for (const [why, bad] of [
    ['not an object', 'x'],
    ['key too short', rec({ key: 'a'.repeat(31) })],
    ['key with a capital', rec({ key: `A${'a'.repeat(31)}` })],
    ['key with more around it', rec({ key: `${D}x` })],
    ['committedAt a string', rec({ committedAt: '1' })],
    ['outputs a list', rec({ outputs: [out()] })],
    ['an output name with a slash', rec({ outputs: { 'a/b': out() } })],
    ['an output name ..', rec({ outputs: { '..': out() } })],
    ['an output name starting with -', rec({ outputs: { '-x': out() } })],
    ['an output name of 129 characters', rec({ outputs: { [`a${'b'.repeat(128)}`]: out() } })],
    ['an output name with a control character', rec({ outputs: { 'a\u001b': out() } })],
    ['an output of another kind', rec({ outputs: { r: out({ kind: 'link' }) } })],
    ['a digest of 31', rec({ outputs: { r: out({ digest: 'a'.repeat(31) }) } })],
    ['a digest with text after', rec({ outputs: { r: out({ digest: `${D}\n` }) } })],
    ['a size as text', rec({ outputs: { r: out({ size: '3' }) } })],
    ['files missing', rec({ outputs: { r: out({ files: undefined }) } })],
  ] as const) assert.equal(isCachedRun(bad), false, why);
  for (const good of ['_x', '0', 'a-b_c', `a${'b'.repeat(127)}`]) assert.equal(isCachedRun(rec({ outputs: { [good]: out() } })), true, good);
  assert.equal(isCachedRun(rec({ outputs: { d: out({ kind: 'dir' }) } })), true);
});

test('a run record fetched for a key: filed under its own key, a stage id and a spec path in the grammar', () => {
  assert.equal(isRunRecordFor(rec(), D), true);
  assert.equal(isRunRecordFor(rec(), 'b'.repeat(32)), false, 'filed under another key');
  for (const stage of ['train', '_t', 'train[mode=joint,w=0.1]', 't-1', 'a[x]']) assert.equal(isRunRecordFor(rec({ stage }), D), true, stage);
  for (const stage of ['', '1train', 'train[]', 'train[a\u001bb]', 'train[a\u0085b]', 'tr ain', 'train[x]y', 'train[x', `t[${'x'.repeat(1001)}]`, 'a\nb']) assert.equal(isRunRecordFor(rec({ stage }), D), false, JSON.stringify(stage));
  assert.equal(isRunRecordFor(rec({ stage: `t[${'x'.repeat(1000)}]` }), D), true, 'a matrix part of 1000 characters');
  for (const spec of ['p.yaml', 'pipelines/a.yaml', 'a/b/c.yml']) assert.equal(isRunRecordFor(rec({ spec }), D), true, spec);
  for (const spec of ['', '/etc/p.yaml', '../p.yaml', 'a/../../p.yaml', 'a//p.yaml', 'a/', 'p\u0007.yaml', 'a\\p.yaml', 'x'.repeat(1001), 'p\u009b.yaml']) assert.equal(isRunRecordFor(rec({ spec }), D), false, JSON.stringify(spec));
  assert.equal(isRunRecordFor(rec({ spec: 'x'.repeat(1000) }), D), true, 'a spec path of 1000 characters');
  assert.equal(isRunRecordFor(rec({ stage: 3 }), D), false);
  assert.equal(isRunRecordFor(rec({ spec: 3 }), D), false);
  assert.equal(isRunRecordFor(rec({ fingerprint: 'x' }), D), false);
  assert.equal(isRunRecordFor(rec({ fingerprint: undefined }), D), false);
  assert.equal(isRunRecordFor({ ...rec(), key: 3 }, D), false);
});

test('a file list: relative normal paths, sorted and unique, no entry inside another, well-formed entries; each problem named', () => {
  const e = (path: string, o: Record<string, unknown> = {}) => ({ path, size: 1, digest: D, ...o });
  assert.equal(manifestProblem([]), undefined);
  assert.equal(manifestProblem([e('a'), e('b/c'), e('b/d'), e('bc')]), undefined);
  assert.equal(manifestProblem([e('a', { size: 0 })]), undefined, 'an empty file');
  assert.equal(isManifest([e('x.txt')]), true);
  assert.equal(manifestProblem('x'), 'not a list');
  assert.equal(manifestProblem({ length: 0 }), 'not a list');
  for (const bad of [[1], [{ path: 'a', size: 1 }], [e('a', { digest: 'A'.repeat(32) })], [e('a', { digest: `${D}0` })], [e('a', { size: -1 })], [e('a', { size: 1.5 })], [e('a', { size: '1' })], [e('a', { size: 2 ** 53 })], [{ ...e('a'), path: 3 }]]) {
    assert.equal(manifestProblem(bad), 'an entry is not {path, size, digest}', JSON.stringify(bad));
  }
  for (const path of ['', '/abs', 'a/', '/', 'a//b', '.', './a', 'a/.', '..', 'a/../b', '../a', 'a\\b', 'a\0b', 'x'.repeat(4097)]) {
    assert.equal(manifestProblem([e(path)]), `the entry ${JSON.stringify(path.slice(0, 200))} is not a relative path inside the folder`, JSON.stringify(path.slice(0, 20)));
  }
  assert.equal(manifestProblem([e('x'.repeat(4096))]), undefined, 'a path of 4096 characters');
  assert.equal(manifestProblem([e('.a'), e('a..b'), e('a/.b')]), undefined, 'dots inside names are names');
  assert.equal(manifestProblem([e('b'), e('a')]), 'the entries are not sorted and unique ("a")');
  assert.equal(manifestProblem([e('a'), e('a')]), 'the entries are not sorted and unique ("a")');
  assert.equal(manifestProblem([e('a'), e('a/b')]), 'the entry "a" is a file and a folder');
  assert.equal(manifestProblem([e('a/b'), e('a/b/c/d')]), 'the entry "a/b" is a file and a folder');
  assert.equal(manifestProblem([e('a/b/c'), e('a/bc')]), undefined);
  // Too many entries: said without reading them.
  const huge = new Array(MANIFEST_MAX_ENTRIES + 1); // holes: nothing allocated per entry
  assert.equal(manifestProblem(huge), `${MANIFEST_MAX_ENTRIES + 1} entries, more than ${MANIFEST_MAX_ENTRIES}`);
  assert.equal(manifestProblem(new Array(MANIFEST_MAX_ENTRIES)), 'an entry is not {path, size, digest}', 'exactly the bound: read, entry by entry');
  // Long paths are cut to 200 characters in what is said.
  const long = `${'d'.repeat(250)}/x`;
  assert.equal(manifestProblem([e('zz'), e(long)]), `the entries are not sorted and unique ("${'d'.repeat(200)}")`);
  assert.equal(manifestProblem([e('d'.repeat(250)), e(long)]), `the entry "${'d'.repeat(200)}" is a file and a folder`);
});
