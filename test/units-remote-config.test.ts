// Remote configuration in-process: a remote's URL checked and made absolute as `remote add` does,
// the remote a command uses picked (named, the default, the only one; the workspace's entry over
// the cache's), and a hand-edited or damaged remotes file said plainly. In a file of its own: the
// transfer tests (units-remote) are slower, and mutation testing runs every file that reaches a mutant.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { configPath, normalizeEntry, pickRemote, readConfig, writeConfig } from '../src/remote/config.ts';
import { scratch } from './helpers/engine.ts';

test('remote config: folder paths made absolute, S3 URLs checked, the default and the only remote picked, hand-edited files said plainly', async (t) => {
  const d = scratch(t);
  assert.deepEqual(normalizeEntry('origin', 'rel/store', {}, '/ws'), { url: '/ws/rel/store' });
  assert.deepEqual(normalizeEntry('origin', 'file:///srv/a%20b', {}, '/ws'), { url: '/srv/a b' });
  assert.deepEqual(normalizeEntry('s3', 's3://bucket.x/pre', { endpoint: 'http://h:9000', region: 'eu' }, '/ws'), { url: 's3://bucket.x/pre', endpoint: 'http://h:9000', region: 'eu' });
  for (const [name, url, opts, why] of [
    ['-bad', '/x', {}, /not a usable remote name/],
    ['o', 's3://key:secret@bucket/x', {}, /credentials or a port/],
    ['o', 's3://B/x', {}, /bucket name/],
    ['o', 's3://bucket/x', { endpoint: 'http://u:p@h' }, /must not carry credentials/],
    ['o', 's3://bucket/x', { endpoint: 'ftp://h' }, /http:\/\/ or https:\/\//],
    ['o', 's3://bucket/x', { endpoint: 'not a url' }, /is not a URL/],
    ['o', '/x', { region: 'eu' }, /are for s3:\/\/ remotes/],
    ['o', 'http://host/x', {}, /s3:\/\/bucket\/prefix or a folder/],
  ] as const) assert.throws(() => normalizeEntry(name, url, opts, '/ws'), why);

  const ws = join(d, 'ws');
  const cache = join(d, 'cache');
  mkdirSync(ws);
  assert.throws(() => pickRemote(undefined, ws, cache), /no remote is configured/);
  await writeConfig(configPath('cache', ws, cache), { remotes: { shared: { url: '/srv/shared' } } });
  assert.equal(pickRemote(undefined, ws, cache).name, 'shared', 'the only one');
  await writeConfig(configPath('workspace', ws, cache), { remotes: { mine: { url: '/srv/mine' } } });
  assert.throws(() => pickRemote(undefined, ws, cache), /several remotes are configured \(shared, mine\)/);
  assert.deepEqual(pickRemote('shared', ws, cache).entry, { url: '/srv/shared' });
  assert.throws(() => pickRemote('toString', ws, cache), /no remote 'toString'/);
  await writeConfig(configPath('workspace', ws, cache), { default: 'mine', remotes: { mine: { url: '/srv/mine' }, shared: { url: '/srv/override' } } });
  assert.deepEqual(pickRemote(undefined, ws, cache), { name: 'mine', entry: { url: '/srv/mine' } });
  assert.deepEqual(pickRemote('shared', ws, cache).entry, { url: '/srv/override' }, "the workspace's entry wins");

  const p = join(d, 'remotes.json');
  for (const [text, why] of [['{', /not valid JSON/], ['[]', /not a remotes file/], ['{"remotes": {}, "default": 3}', /not a remotes file/], ['{"remotes": {"a": {"url": "/x"}}, "default": "b"}', /default remote 'b' is not among/], ['{"remotes": {"a": {"url": 5}}}', /fix it, or remove it and add the remote again/]] as const) {
    writeFileSync(p, text);
    assert.throws(() => readConfig(p), why, text);
  }
  assert.deepEqual(readConfig(join(d, 'absent.json')), { remotes: {} });
});

test('remote config at its edges: where each scope keeps its file, names and URLs checked to their ends, entries in a file checked as `remote add` checks them', async (t) => {
  const d = scratch(t);
  assert.equal(configPath('workspace', '/ws', '/c'), '/ws/.pipeline/remotes.json');
  assert.equal(configPath('cache', '/ws', '/c'), '/c/remotes.json');
  assert.throws(() => normalizeEntry('abc!', '/x', {}, '/ws'), /'abc!' is not a usable remote name/);
  assert.throws(() => normalizeEntry(`a${'b'.repeat(64)}`, '/x', {}, '/ws'), /is not a usable remote name/);
  assert.deepEqual(normalizeEntry(`a${'b'.repeat(63)}`, '/x', {}, '/ws'), { url: '/x' });
  assert.throws(() => normalizeEntry('o', 's3://host:9000/x', {}, '/ws'), /credentials or a port/);
  assert.deepEqual(normalizeEntry('o', 's3://bucket/p/s3://u@x', {}, '/ws'), { url: 's3://bucket/p/s3://u@x' }, 'an @ after the bucket is part of the prefix');
  assert.deepEqual(normalizeEntry('o', 's3://bucket', {}, '/ws'), { url: 's3://bucket' }, 'no prefix');
  assert.throws(() => normalizeEntry('o', 's3://bucket!x', {}, '/ws'), /an S3 bucket name is 3-63 lowercase letters/);
  for (const endpoint of ['http://u@h', 'http://:p@h']) assert.throws(() => normalizeEntry('o', 's3://bucket', { endpoint }, '/ws'), /must not carry credentials/, endpoint);
  assert.deepEqual(normalizeEntry('o', 's3://bucket', { endpoint: 'https://h' }, '/ws'), { url: 's3://bucket', endpoint: 'https://h' });
  assert.throws(() => normalizeEntry('o', 'HTTP://host/x', {}, '/ws'), /a remote is s3:\/\/bucket\/prefix or a folder/);
  assert.deepEqual(normalizeEntry('o', '/srv/a://b', {}, '/ws'), { url: '/srv/a://b' }, 'a folder whose name holds ://');
  // A name asked for when none is configured: said with "none".
  assert.throws(() => pickRemote('x', join(d, 'none-ws'), join(d, 'none-cache')), /no remote 'x' \(configured: none; see `pipeline remote list`\)/);
  await writeConfig(join(d, 'c2', 'remotes.json'), { remotes: { a: { url: '/a' }, b: { url: '/b' } } });
  assert.throws(() => pickRemote('x', join(d, 'ws2'), join(d, 'c2')), /no remote 'x' \(configured: a, b;/);

  const p = join(d, 'remotes.json');
  const bad: Array<[unknown, RegExp]> = [
    [{ remotes: { 'bad name': { url: '/x' } } }, /'bad name' is not a usable remote name \(letters, digits/],
    [{ remotes: { a: { url: '/x', endpoint: 3 } } }, /remote 'a' is not \{"url": \.\.\., "endpoint"\?: \.\.\., "region"\?: \.\.\.\}/],
    [{ remotes: { a: { url: '/x', region: true } } }, /remote 'a' is not \{"url"/],
    [{ remotes: { a: { url: 'relative/x' } } }, /remote 'a': a folder remote's path must be absolute, got 'relative\/x'/],
    [{ remotes: { a: { url: '/x', endpoint: 'http://h' } } }, /remote 'a': --endpoint and --region are for s3:\/\/ remotes/],
    [{ remotes: { a: { url: '/x' } }, default: 'b\u001b' }, /the default remote 'b\\u001b' is not among its remotes/],
  ];
  for (const [v, why] of bad) {
    writeFileSync(p, JSON.stringify(v));
    assert.throws(() => readConfig(p), why, JSON.stringify(v));
  }
  writeFileSync(p, JSON.stringify({ remotes: { s: { url: 's3://bucket/x', endpoint: 'http://h:9', region: 'eu' }, f: { url: '/x' } } }));
  assert.deepEqual(readConfig(p), { remotes: { s: { url: 's3://bucket/x', endpoint: 'http://h:9', region: 'eu' }, f: { url: '/x' } } }, 'no default: none added');
  mkdirSync(join(d, 'a-folder.json'));
  assert.throws(() => readConfig(join(d, 'a-folder.json')), /EISDIR/, 'an unreadable file is an error, not "no remotes"');
});
