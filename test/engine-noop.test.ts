// The no-op fast path: an unchanged workspace is recognised by stat alone, and any change that
// could move a cache key sends the run back to the stage-by-stage path.
import assert from 'node:assert/strict';
import { statSync, utimesSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { numbersWorkspace } from './helpers/fixtures.ts';
import { aged, ran, type Workspace } from './helpers/workspace.ts';

const FAST = /nothing changed since the last run/;

/** Files written just now are not trusted by signature: age them as a real workspace would be. */
function age(ws: Workspace, ...paths: string[]): Promise<void> {
  return aged(paths.map((p) => ws.path(p)));
}

const ALL = ['pipeline.yaml', 'stages/scale.ts', 'stages/lib/format.ts', 'stages/sum.ts', 'data/numbers.txt', 'data/other.txt'];

test('an unchanged workspace is recognised without compiling the spec, and every change is noticed', async (t) => {
  const ws = numbersWorkspace();
  t.after(() => ws.dispose());
  await age(ws, ...ALL);
  assert.deepEqual(ran(ws.run('run', 'pipeline.yaml')), ['other', 'scale', 'sum']);

  const fast = ws.run('run', 'pipeline.yaml');
  assert.equal(fast.code, 0);
  assert.match(fast.stdout, FAST);
  assert.deepEqual([...fast.states.values()], ['cached', 'cached', 'cached']);

  await t.test('an edited input', async () => {
    ws.write('data/numbers.txt', '5\n');
    await age(ws, 'data/numbers.txt');
    const r = ws.run('run', 'pipeline.yaml');
    assert.doesNotMatch(r.stdout, FAST);
    assert.deepEqual(ran(r), ['scale', 'sum']);
    assert.match(ws.run('run', 'pipeline.yaml').stdout, FAST);
  });

  await t.test('an input edited in place with its size unchanged (same inode, another mtime)', () => {
    const before = statSync(ws.path('data/numbers.txt'));
    writeFileSync(ws.path('data/numbers.txt'), '6\n'); // '5\n' -> '6\n': same size, same inode
    const t = before.mtimeMs / 1000 + 5;
    utimesSync(ws.path('data/numbers.txt'), t, t);
    assert.equal(statSync(ws.path('data/numbers.txt')).ino, before.ino);
    assert.equal(statSync(ws.path('data/numbers.txt')).size, before.size);
    const r = ws.run('run', 'pipeline.yaml');
    assert.doesNotMatch(r.stdout, FAST);
    assert.deepEqual(ran(r), ['scale', 'sum']);
    assert.equal(ws.read('results/total.txt'), '12');
  });

  await t.test('an edited helper the stage imports', async () => {
    ws.write('stages/lib/format.ts', ws.read('stages/lib/format.ts').replace('toFixed(2)', 'toFixed(3)'));
    await age(ws, 'stages/lib/format.ts');
    const r = ws.run('run', 'pipeline.yaml');
    assert.doesNotMatch(r.stdout, FAST);
    assert.deepEqual(ran(r), ['scale', 'sum']);
  });

  await t.test('a --set value, and a changed environment variable the spec reads', async () => {
    const again = ws.run('run', 'pipeline.yaml');
    assert.match(again.stdout, FAST, again.stderr);
    assert.doesNotMatch(ws.run('run', 'pipeline.yaml', '--set', 'factor=4').stdout, FAST);
    ws.write('pipeline.yaml', ws.read('pipeline.yaml').replace('tag: a', 'tag: "${env.PIPELINE_TEST_TAG:-a}"'));
    await age(ws, 'pipeline.yaml');
    assert.equal(ws.run('run', 'pipeline.yaml').code, 0);
    assert.match(ws.run('run', 'pipeline.yaml').stdout, FAST);
    process.env.PIPELINE_TEST_TAG = 'b';
    try {
      const r = ws.run('run', 'pipeline.yaml');
      assert.doesNotMatch(r.stdout, FAST);
      assert.deepEqual(ran(r), ['scale']); // the tag changes the params, not the output
    } finally {
      delete process.env.PIPELINE_TEST_TAG;
    }
  });

  await t.test('a deleted or rewritten published output', () => {
    ws.run('run', 'pipeline.yaml');
    assert.match(ws.run('run', 'pipeline.yaml').stdout, FAST);
    writeFileSync(ws.path('results/count.txt'), 'x');
    const r = ws.run('run', 'pipeline.yaml');
    assert.doesNotMatch(r.stdout, FAST);
    assert.equal(ws.read('results/count.txt').trim(), '6');
  });
});
