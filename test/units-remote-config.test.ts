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
