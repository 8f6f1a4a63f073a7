// How a reference from a variant is matched to its target's variants when they share several matrix
// keys and the consumer has keys of its own, and how a failed match is named. A file of its own
// beside units-compile.test.ts so that `npm run mutate` (incremental) tests again only the mutants
// it reaches that had survived, not the whole spec area.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Engine, scratch } from './helpers/engine.ts';

const SPEC = `stages:
  train:
    matrix: { w: [a, b], k: [1, 2] }
    run: [echo, '\${outputs.m}']
    outs: { m: 'm-\${matrix.w}-\${matrix.k}.txt' }
  score:
    matrix: { w: [c], k: [2], z: [q] }
    run: [cat, '\${stages.train.outputs.m}']
`;

test('a variant matches on every key it shares with its target; a miss names the shared keys only, each with its value', async (t) => {
  const e = new Engine(scratch(t, { 'p.yaml': SPEC }));
  assert.deepEqual(await e.problems(), [
    "8:16 stages.score.run[1]: no variant of stage 'train' has w=c, k=2, as score[w=c,k=2,z=q] needs (its variants: train[w=a,k=1], train[w=a,k=2], train[w=b,k=1], train[w=b,k=2]); name one, as ${stages.train[w=a,k=1].outputs.m}",
  ]);
  const ok = await new Engine(scratch(t, { 'p.yaml': SPEC.replace('w: [c]', 'w: [b]') })).compile();
  assert.deepEqual(ok.stages.get('score[w=b,k=2,z=q]')!.upstream, ['train[w=b,k=2]'], 'both shared keys pick the one variant; z, the consumer own, picks nothing');
});
