// Seeds as replicates, end to end on a tiny corpus: `matrix: { seed: [...] }` reaches training (each
// seed trains a different model), and the evaluation groups the variants by everything but the seed
// and judges each model against vanilla over seeds, paired by seed, beside the clip bootstrap.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { signFlipTest } from '../stages/lib/stats.ts';
import { Workspace } from './helpers/workspace.ts';
import { tinyRrtnSpec } from './helpers/fixtures.ts';

const SPEC = tinyRrtnSpec('{ mode: [vanilla, joint], seed: [1, 2, 3] }', 60);

interface Metrics {
  models: Array<{ model: string; meanCcc: number; pVsBaseline: number | null }>;
  overSeeds: { test: string; models: Array<{ model: string; seeds: number[]; devMeans: number[]; diffs: Array<number | null>; meanDiff: number | null; p: number | null; mean: number }> };
}

test('seeds as replicates: each seed trains its own model; the evaluation judges models over seeds, paired by seed', { timeout: 300_000 }, (t) => {
  const ws = new Workspace({ 'p.yaml': SPEC });
  t.after(() => ws.dispose());
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(ws.read('results/report/metrics.json')) as Metrics;
  const dev = (mode: string, seed: number) => m.models.find((x) => x.model === `mode=${mode},seed=${seed}`)!.meanCcc;
  assert.equal(new Set([1, 2, 3].map((s) => dev('vanilla', s))).size, 3, 'each seed trains a different model');
  assert.match(m.overSeeds.test, /exact sign-flip permutation over seeds, paired by seed, two-tailed, against vanilla/);
  assert.deepEqual(m.overSeeds.models.map((x) => [x.model, x.seeds]), [['mode=vanilla', [1, 2, 3]], ['mode=joint', [1, 2, 3]]]);
  const joint = m.overSeeds.models[1]!;
  assert.deepEqual(joint.devMeans, [1, 2, 3].map((s) => dev('joint', s)));
  const diffs = [1, 2, 3].map((s) => dev('joint', s) - dev('vanilla', s));
  assert.deepEqual(joint.diffs, diffs);
  assert.equal(joint.p, signFlipTest(diffs).p);
  assert.ok(Math.abs(joint.mean - (dev('joint', 1) + dev('joint', 2) + dev('joint', 3)) / 3) < 1e-12, "Math.abs(joint.mean - (dev('joint', 1) + dev('joint', 2) + dev('joint', 3)) / 3) < 1e-12");
  const headline = ws.read('results/report/headline.txt');
  assert.match(headline, /Over training seeds: dev mean CCC as mean ± sd; the paired difference from vanilla per seed; p: exact sign-flip test over seeds, 2-tailed \(3 seeds: p is never below 0\.250\)/);
  assert.match(headline, /\nmode=joint +1,2,3 +\d\.\d{3} ± \d\.\d{3} +[+-]\d\.\d{3} +[+-]\d\.\d{3} +[+-]\d\.\d{3} +[+-]\d\.\d{3} +(0\.250|0\.500|0\.750|1\.000)\n?/);
});

test("the authors' options train end to end: dev on random crops, BatchNorm statistics from the clean view, Barlow Twins from the affine output, no head dropout, pad 0, the ResNet14 twin", { timeout: 300_000 }, (t) => {
  const ws = new Workspace({ 'p.yaml': tinyRrtnSpec('{ mode: [joint] }', 60) });
  t.after(() => ws.dispose());
  const curve = () => (JSON.parse(ws.read('results/report/metrics.json')) as Metrics).models[0]!.meanCcc;
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  const whole = curve();
  const sets = ['devScoring=crops', 'bnStats=clean', 'btCorrelation=affine', 'headDropout=0', 'padDb=0'].flatMap((s) => ['--set', `stages.train.params.${s}`]);
  const r = ws.run('run', 'p.yaml', ...sets);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.states.get('features'), 'cached');
  assert.equal(r.states.get('train[mode=joint]'), 'done');
  const ref = curve();
  assert.ok(Number.isFinite(ref) && ref !== whole, `a different model and score: ${whole} vs ${ref}`);
  // Their training scripts' backbone: the ResNet14 twin (its forward pass is checked against torchvision in training-models).
  const resnet = ws.run('run', 'p.yaml', ...sets, '--set', 'stages.train.params.backbone=resnet14');
  assert.equal(resnet.code, 0, resnet.stderr);
  assert.equal(resnet.states.get('train[mode=joint]'), 'done');
  assert.ok(Number.isFinite(curve()) && curve() !== ref, `the ResNet14 twin trains and scores: ${curve()}`);
  const bad = ws.run('run', 'p.yaml', '--set', 'stages.train.params.devScoring=clips');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /stages\.train\.params\.devScoring: must be one of: "whole", "crops"/);
});

test('selectOn: half picks the best epoch on one half of the dev clips and the evaluation scores on the other, saying so', { timeout: 300_000 }, (t) => {
  const ws = new Workspace({ 'p.yaml': tinyRrtnSpec('{ mode: [vanilla, joint] }', 60) });
  t.after(() => ws.dispose());
  const r = ws.run('run', 'p.yaml', '--set', 'stages.train.params.selectOn=half');
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(ws.read('results/report/metrics.json')) as { clips: number; selection: string };
  assert.match(m.selection, /^best epochs picked on the other (\d+) dev clips \(selectOn: half\)$/);
  const other = Number(/other (\d+)/.exec(m.selection)![1]);
  assert.ok(m.clips > 1 && other > 1, `${m.clips} scored, ${other} selected`);
  assert.match(ws.read('results/report/headline.txt'), /best epochs picked on the other \d+ dev clips \(selectOn: half\)/);
  // A model picked on other clips than the rest cannot be compared with them.
  const mixed = ws.run('run', 'p.yaml', '--set', 'stages.train.matrix={ mode: [vanilla, joint], selectOn: [dev, half] }', '--set', 'stages.train.params.selectOn=${matrix.selectOn}');
  assert.equal(mixed.code, 1);
  assert.match(mixed.stderr, /the models picked their best epoch on different dev clips \(selectOn: (dev and half|half and dev)\): train them all with the same selectOn/);
});
