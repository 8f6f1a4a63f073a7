// The cache: what reruns after each kind of change, and what `status` says about it.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { hashBytes } from '../src/cache/hash.ts';
import { numbersWorkspace } from './helpers/fixtures.ts';
import { ran } from './helpers/workspace.ts';

test('reruns exactly what a change touches, and status says why', async (t) => {
  const ws = numbersWorkspace();
  t.after(() => ws.dispose());

  await t.test('cold run executes every stage and publishes outputs', () => {
    const r = ws.run('run', 'pipeline.yaml');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(ran(r), ['other', 'scale', 'sum']);
    assert.equal(ws.read('results/total.txt'), '12');
    assert.equal(ws.read('results/count.txt').trim(), '6');
  });

  await t.test('a rerun with no change skips everything', () => {
    const r = ws.run('run', 'pipeline.yaml');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(ran(r), []);
    assert.deepEqual([...r.states.values()], ['cached', 'cached', 'cached']);
    const st = ws.run('status', 'pipeline.yaml', '--json');
    assert.deepEqual(JSON.parse(st.stdout).map((s: { state: string }) => s.state), ['cached', 'cached', 'cached']);
  });

  await t.test('a param change reruns the stage and its dependents, and status names the param', () => {
    ws.write('pipeline.yaml', ws.read('pipeline.yaml').replace('factor: 2', 'factor: 3'));
    const st = ws.run('status', 'pipeline.yaml');
    assert.match(st.stdout, /scale\s+stale: param factor 2 -> 3/);
    const json = JSON.parse(ws.run('status', 'pipeline.yaml', '--json').stdout) as Array<{ stage: string; reasons: unknown[] }>;
    assert.deepEqual(json.find((s) => s.stage === 'scale')!.reasons, [{ kind: 'param', name: 'factor', old: 2, new: 3, text: 'param factor 2 -> 3' }]);
    assert.deepEqual(json.find((s) => s.stage === 'sum')!.reasons, [{ kind: 'upstream', name: 'scale', text: 'upstream scale will rerun' }]);
    assert.match(st.stdout, /sum\s+stale: upstream scale will rerun/);
    assert.match(st.stdout, /other\s+cached/);
    const r = ws.run('run', 'pipeline.yaml');
    assert.deepEqual(ran(r), ['scale', 'sum']);
    assert.equal(ws.read('results/total.txt'), '18');
  });

  await t.test('--set overrides a param for one run', () => {
    const r = ws.run('run', 'pipeline.yaml', '--set', 'factor=10');
    assert.deepEqual(ran(r), ['scale', 'sum']);
    assert.equal(ws.read('results/total.txt'), '60');
    // Back to the spec's value: that run is still cached.
    const back = ws.run('run', 'pipeline.yaml');
    assert.deepEqual(ran(back), []);
    assert.equal(ws.read('results/total.txt'), '18');
  });

  await t.test('editing the stage module reruns it and what depends on it', async () => {
    ws.write('stages/scale.ts', ws.read('stages/scale.ts').replace('const OFFSET = 0;', 'const OFFSET = 1;'));
    const st = ws.run('status', 'pipeline.yaml');
    assert.match(st.stdout, /scale\s+stale: file stages\/scale.ts changed/);
    const code = (JSON.parse(ws.run('status', 'pipeline.yaml', '--json').stdout) as Array<{ stage: string; reasons: Array<Record<string, unknown>> }>).find((s) => s.stage === 'scale')!.reasons;
    assert.deepEqual(code.map((r) => [r.kind, r.name, r.new]), [['code', 'stages/scale.ts', await hashBytes(ws.read('stages/scale.ts'))]]);
    const r = ws.run('run', 'pipeline.yaml');
    assert.deepEqual(ran(r), ['scale', 'sum']);
    assert.equal(ws.read('results/total.txt'), '21');
  });

  await t.test('editing a file the stage imports reruns it', () => {
    ws.write('stages/lib/format.ts', ws.read('stages/lib/format.ts').replace('toFixed(2)', 'toFixed(1)'));
    const st = ws.run('status', 'pipeline.yaml');
    assert.match(st.stdout, /scale\s+stale: file stages\/lib\/format.ts changed/);
    const r = ws.run('run', 'pipeline.yaml');
    // The numbers print with one decimal instead of two: new bytes, so sum reruns too.
    assert.deepEqual(ran(r), ['scale', 'sum']);
  });

  await t.test('an input change reruns its readers only', async () => {
    ws.write('data/numbers.txt', '1 2 3 4\n');
    const st = ws.run('status', 'pipeline.yaml');
    assert.match(st.stdout, /scale\s+stale: input data\/numbers.txt changed/);
    const [reason] = (JSON.parse(ws.run('status', 'pipeline.yaml', '--json').stdout) as Array<{ stage: string; reasons: Array<Record<string, unknown>> }>).find((s) => s.stage === 'scale')!.reasons;
    assert.deepEqual({ ...reason, old: typeof reason!.old, new: reason!.new }, { kind: 'input', name: 'data/numbers.txt', old: 'string', new: await hashBytes('1 2 3 4\n'), text: 'input data/numbers.txt changed' });
    assert.notEqual(reason!.old, reason!.new);
    const r = ws.run('run', 'pipeline.yaml');
    assert.deepEqual(ran(r), ['scale', 'sum']);
    assert.equal(ws.read('results/total.txt'), '34');
    ws.write('data/other.txt', 'hello world\n');
    const r2 = ws.run('run', 'pipeline.yaml');
    assert.deepEqual(ran(r2), ['other']);
    assert.equal(ws.read('results/count.txt').trim(), '12');
  });

  await t.test('early cutoff: a rerun with byte-identical outputs leaves dependents cached', () => {
    ws.write('pipeline.yaml', ws.read('pipeline.yaml').replace('tag: a', 'tag: b'));
    const r = ws.run('run', 'pipeline.yaml');
    assert.deepEqual(ran(r), ['scale']);
    assert.equal(r.states.get('sum'), 'cached');
  });

  await t.test('--force reruns a cached stage; a deleted workspace output is restored from the cache', () => {
    rmSync(ws.path('results/total.txt'));
    const r = ws.run('run', 'pipeline.yaml', '--force', 'other');
    assert.deepEqual(ran(r), ['other']);
    assert.equal(ws.read('results/total.txt'), '34');
  });

  await t.test('a published output is a copy: editing it never reaches the cache, and the edit is kept aside when the stage output is put back', () => {
    writeFileSync(ws.path('results/total.txt'), 'tampered');
    const st = ws.run('status', 'pipeline.yaml');
    assert.match(st.stdout, /sum\s+cached/);
    const r = ws.run('run', 'pipeline.yaml');
    assert.deepEqual(ran(r), []);
    assert.equal(ws.read('results/total.txt'), '34');
    assert.match(r.stderr, /results\/total\.txt was changed since the pipeline wrote it: your version is kept as (results\/total\.txt\.edited-\d+T\d+)/);
    const aside = /kept as (\S+),/.exec(r.stderr)![1]!;
    assert.equal(ws.read(aside), 'tampered');
    assert.deepEqual(ran(ws.run('run', 'pipeline.yaml')), []);
  });

  await t.test('version: forces a rerun by hand', () => {
    ws.write('pipeline.yaml', ws.read('pipeline.yaml').replace('    uses: stages/sum.ts', '    uses: stages/sum.ts\n    version: 2'));
    const st = ws.run('status', 'pipeline.yaml');
    assert.match(st.stdout, /sum\s+stale: version null -> 2/);
    assert.deepEqual(ran(ws.run('run', 'pipeline.yaml')), ['sum']);
  });
});
