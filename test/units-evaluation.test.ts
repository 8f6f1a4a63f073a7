// Evaluation and selection, as small pure functions with exact values: CCC, the mean over all ten
// emotions, the paired bootstrap, the best epoch, and the data-parallel gradient average.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Random } from '../src/random.ts';
import { readFileSync } from 'node:fs';
import { bootstrap, ccc, columns, meanSd, perEmotionCcc, quantile, signFlipTest } from '../stages/lib/stats.ts';
import { inSelectionHalf, NO_BEST, offerEpoch } from '../stages/lib/selection.ts';
import { modelLabel, overSeeds, runLabel, type ModelOverSeeds } from '../stages/lib/replicates.ts';
import { averageInto, shardPlan } from '../stages/lib/tf/data-parallel.ts';

test('CCC of known series, by hand: 0.4 for y = 2x over 1..4, 1 for identity, 0 when both are constant', () => {
  // mx 2.5, my 5, var x 1.25, var y 5, cov 2.5: 2 * 2.5 / (1.25 + 5 + 2.5^2) = 0.4
  assert.equal(ccc([1, 2, 3, 4], [2, 4, 6, 8]), 0.4);
  assert.equal(ccc([0.1, 0.7, 0.3], [0.1, 0.7, 0.3]), 1);
  assert.equal(ccc([1, 1], [1, 1]), 0);
  // Over a subset of indices, with repeats (a bootstrap resample): [1, 3, 3] against [2, 6, 6].
  assert.equal(ccc([1, 2, 3, 4], [2, 4, 6, 8], [0, 2, 2]), ccc([1, 3, 3], [2, 6, 6]));
});

/** Ten emotions, each predicted with a different, known quality. */
function tenEmotions(n: number, rng: Random): { truth: Float64Array[]; pred: Float64Array[] } {
  const truth = Array.from({ length: 10 }, () => Float64Array.from({ length: n }, () => rng.float()));
  const pred = truth.map((t, j) => Float64Array.from(t, (v) => v + (j + 1) * 0.05 * rng.normal()));
  return { truth, pred };
}

test('quantiles interpolate linearly between order statistics', () => {
  const xs = [1, 2, 4, 8, 16];
  assert.equal(quantile(xs, 0), 1);
  assert.equal(quantile(xs, 1), 16);
  assert.equal(quantile(xs, 0.5), 4);
  assert.equal(quantile(xs, 0.625), 6); // position 2.5: halfway from 4 to 8
  assert.equal(quantile(xs, 0.1), 1.4); // position 0.4
  assert.equal(quantile([3], 0.975), 3);
});

test('the mean CCC is over all ten emotions, each counted once', () => {
  const { truth, pred } = tenEmotions(300, new Random(3));
  const per = perEmotionCcc(pred, truth);
  assert.equal(per.length, 10);
  const b = bootstrap([pred], truth, -1, 20, new Random(1));
  assert.equal(b.models[0]!.mean, per.reduce((a, x) => a + x, 0) / 10);
  assert.deepEqual(b.models[0]!.perEmotion, per);
  // Each emotion moves the mean: leaving any one out would give another number.
  for (let j = 0; j < 10; j++) assert.notEqual((per.reduce((a, x) => a + x, 0) - per[j]!) / 9, b.models[0]!.mean);
});

test('the bootstrap test is paired: a model better on every clip by a hair is significant, the same model is not', () => {
  const rng = new Random(5);
  const { truth, pred } = tenEmotions(200, rng);
  // B pulls each prediction 1 % of the way to the truth: better on any resample of the clips, but by
  // far less than the spread of the mean CCC across resamples (so only pairing can see it).
  const better = pred.map((p, j) => Float64Array.from(p, (v, i) => v + 0.01 * (truth[j]![i]! - v)));
  const b = bootstrap([pred, better, pred], truth, 0, 1000, new Random(9));
  const spread = b.models[0]!.ci[1] - b.models[0]!.ci[0];
  assert.ok(b.models[1]!.mean - b.models[0]!.mean < spread / 4, 'the gain is small against the resampling spread');
  assert.equal(b.pVsBaseline[1], 1 / 1000, 'better on every paired resample: p at its floor');
  assert.equal(b.pVsBaseline[2], 1, 'identical to the baseline: every paired difference is 0');
  assert.equal(b.pVsBaseline[0], null);
  assert.ok(b.models[0]!.ci[0] < b.models[0]!.mean && b.models[0]!.mean < b.models[0]!.ci[1], "b.models[0]!.ci[0] < b.models[0]!.mean && b.models[0]!.mean < b.models[0]!.ci[1]");
  // Per-emotion intervals: ordered, around each emotion's own CCC, narrower for the better-predicted.
  const m0 = b.models[0]!;
  m0.perEmotionCi.forEach(([lo, hi], j) => assert.ok(lo < m0.perEmotion[j]! && m0.perEmotion[j]! < hi, `emotion ${j}: ${lo} < ${m0.perEmotion[j]} < ${hi}`));
  assert.ok(m0.perEmotionCi[0]![1] - m0.perEmotionCi[0]![0] < m0.perEmotionCi[9]![1] - m0.perEmotionCi[9]![0], "m0.perEmotionCi[0]![1] - m0.perEmotionCi[0]![0] < m0.perEmotionCi[9]![1] - m0.perEmotionCi[9]![0]");
  assert.equal(b.resamples, 1000);
});

test('the best epoch is the highest dev score, the earlier on a tie, never a NaN', () => {
  const scores = [0.3, 0.6, 0.5, 0.6, Number.NaN, 0.1];
  let best = NO_BEST;
  const improvedAt: number[] = [];
  scores.forEach((s, epoch) => {
    const o = offerEpoch(best, epoch, s);
    best = o.best;
    if (o.improved) improvedAt.push(epoch);
  });
  assert.deepEqual(best, { epoch: 1, ccc: 0.6 });
  assert.deepEqual(improvedAt, [0, 1]);
  // Before any epoch, and after only NaN scores: no best epoch (-1), whatever the score.
  assert.deepEqual(NO_BEST, { epoch: -1, ccc: -Infinity });
  assert.deepEqual(offerEpoch(NO_BEST, 0, Number.NaN), { best: { epoch: -1, ccc: -Infinity }, improved: false });
});

test('data parallel: shards cover the batch, and gradients are averaged by share (not summed)', () => {
  assert.deepEqual(shardPlan(7, 2), { sizes: [4, 3], weights: [4 / 7, 3 / 7] });
  assert.deepEqual(shardPlan(8, 3).sizes, [3, 3, 2]);
  assert.deepEqual(shardPlan(1, 4), { sizes: [1], weights: [1] });
  for (const [n, k] of [[32, 2], [33, 4], [5, 3]] as const) {
    const p = shardPlan(n, k);
    assert.equal(p.sizes.reduce((a, b) => a + b, 0), n);
    assert.ok(Math.abs(p.weights.reduce((a, b) => a + b, 0) - 1) < 1e-12, "Math.abs(p.weights.reduce((a, b) => a + b, 0) - 1) < 1e-12");
  }
  const out = new Float32Array(2);
  averageInto(out, [Float32Array.from([1, 2]), Float32Array.from([3, 6])], [0.5, 0.5]);
  assert.deepEqual([...out], [2, 4]);
  averageInto(out, [Float32Array.from([4, 4]), Float32Array.from([8, 0]), Float32Array.from([0, 8])], [0.5, 0.25, 0.25]);
  assert.deepEqual([...out], [4, 4]);
  averageInto(out, [Float32Array.from([7, -1])], [1]);
  assert.deepEqual([...out], [7, -1]);
});

test('the test over seeds is SciPy\'s exact paired permutation test (test/reference/sign_flip_reference.py), to 1e-12', () => {
  const ref = JSON.parse(readFileSync(new URL('./fixtures/sign-flip.json', import.meta.url), 'utf8')) as { cases: Array<{ diffs: number[]; mean: number; p: number }> };
  for (const c of ref.cases) {
    const r = signFlipTest(c.diffs);
    assert.ok(Math.abs(r.mean - c.mean) < 1e-12, `${c.diffs}: mean ${r.mean} vs ${c.mean}`);
    assert.ok(Math.abs(r.p - c.p) < 1e-12, `${c.diffs}: p ${r.p} vs ${c.p}`);
  }
  assert.throws(() => signFlipTest([]), /needs 1 to 24/);
  const ms = meanSd([0.7, 0.8, 0.9]);
  assert.ok(Math.abs(ms.mean - 0.8) < 1e-15 && Math.abs(ms.sd - 0.1) < 1e-15, JSON.stringify(ms));
  assert.deepEqual(meanSd([0.5]), { mean: 0.5, sd: 0 });
});

test('seeds as replicates: runs differing only in seed are one model; each judged against vanilla paired by seed', () => {
  const run = (mode: string, seed: number, devMean: number) => ({ matrix: { mode, seed }, mode, devMean });
  const r = overSeeds([run('vanilla', 11, 0.70), run('vanilla', 10, 0.72), run('vanilla', 12, 0.74), run('joint', 10, 0.75), run('joint', 11, 0.72), run('joint', 12, 0.77), run('ruwl', 10, 0.70), run('ruwl', 13, 0.9)], 'vanilla')!;
  assert.deepEqual(r.map((m) => [m.model, m.seeds]), [['mode=vanilla', [10, 11, 12]], ['mode=joint', [10, 11, 12]], ['mode=ruwl', [10, 13]]]);
  const [v, j, u] = r as [ModelOverSeeds, ModelOverSeeds, ModelOverSeeds];
  assert.deepEqual([v.diffs, v.meanDiff, v.p], [[null, null, null], null, null]);
  const m = (0.75 + 0.72 + 0.77) / 3;
  assert.ok(Math.abs(j.mean - m) < 1e-12, `mean ${j.mean}`);
  assert.ok(Math.abs(j.sd - Math.sqrt(((0.75 - m) ** 2 + (0.72 - m) ** 2 + (0.77 - m) ** 2) / 2)) < 1e-12, `sd ${j.sd}`);
  assert.deepEqual(j.devMeans, [0.75, 0.72, 0.77], 'in seed order');
  assert.deepEqual(j.diffs.map((d) => Number(d!.toFixed(12))), [0.03, 0.02, 0.03]);
  assert.equal(j.p, 0.25, 'all three seeds better: the smallest p three seeds allow');
  assert.deepEqual(u.diffs.map((d) => (d === null ? null : Number(d.toFixed(12)))), [-0.02, null], 'seed 13 has no vanilla run to pair with');
  assert.equal(u.p, 1);
  assert.equal(overSeeds([run('vanilla', 10, 0.7), run('joint', 10, 0.8)], 'vanilla'), undefined, 'one seed each: nothing to say over seeds');
  assert.equal(modelLabel({ mode: 'joint', seed: 3, w3: 0.01 }, 'joint'), 'mode=joint,w3=0.01');
  assert.equal(modelLabel({ seed: 3 }, 'ruwl'), 'ruwl');
  assert.equal(runLabel({ mode: 'joint', seed: 3 }, 'joint'), 'mode=joint,seed=3');
});

test('the selection half is fixed by clip id: about half the clips, the same every time', () => {
  const ids = Array.from({ length: 400 }, (_, i) => `clip${String(i).padStart(5, '0')}`);
  const half = ids.filter(inSelectionHalf);
  assert.ok(half.length > 160 && half.length < 240, `${half.length} of 400`);
  assert.deepEqual(ids.filter(inSelectionHalf), half);
  assert.equal(inSelectionHalf('a'), inSelectionHalf('a'));
  assert.notEqual(ids.slice(0, 16).map(inSelectionHalf).join(), Array(16).fill(true).join(), 'not all on one side');
});

test('the bootstrap test takes each model\'s own baseline when given one per model (the baseline with its seed)', () => {
  const truth = [Float64Array.from({ length: 30 }, (_, i) => Math.sin(i))];
  const noisy = (k: number) => [Float64Array.from(truth[0]!, (v, i) => v + 0.3 * Math.cos(i * k))];
  const preds = [noisy(1), noisy(2), noisy(3), noisy(4)];
  const one = bootstrap(preds, truth, 0, 200, new Random(9));
  const per = bootstrap(preds, truth, [0, 0, 2, 2], 200, new Random(9));
  assert.deepEqual(per.pVsBaseline.map((p) => p === null), [true, false, true, false]);
  assert.equal(per.pVsBaseline[1], one.pVsBaseline[1], 'model 1 against model 0 either way');
  const three = bootstrap(preds, truth, 2, 200, new Random(9));
  assert.equal(per.pVsBaseline[3], three.pVsBaseline[3], 'model 3 against model 2');
});

/** An rng that returns a fixed list of indices (a scripted resample), counting the draws. */
function scripted(indices: number[]): Random & { draws: number } {
  const r = { draws: 0, int: () => indices[r.draws++]! };
  return r as unknown as Random & { draws: number };
}

test('the bootstrap p between its floor and 1: twice the smaller side over the resamples; each resample draws exactly n clips', () => {
  // One emotion, four clips. The model is right on clips 0-1 and reversed on 2-3; the baseline the
  // other way round: a resample of clips 0-1 favours the model (CCC 1 vs -1), one of 2-3 the baseline.
  const truth = [Float64Array.from([0, 1, 2, 3])];
  const model = [Float64Array.from([0, 1, 3, 2])];
  const base = [Float64Array.from([1, 0, 2, 3])];
  const rng = scripted([0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 3, 2, 3, 2, 2, 3]);
  const r = bootstrap([base, model], truth, 0, 4, rng);
  assert.equal(rng.draws, 16, '4 resamples of 4 clips');
  // Differences (model - baseline) per resample: +2, -2, -2, -2: below 3, above 1 -> p = 2 * 1 / 4.
  assert.deepEqual(r.pVsBaseline, [null, 0.5]);
  assert.deepEqual(r.models[1]!.ci, [quantile([-1, -1, -1, 1], 0.025), quantile([-1, -1, -1, 1], 0.975)]);
});

test('columns of a row-major matrix; none for no rows', () => {
  assert.deepEqual(columns([[1, 2], [3, 4], [5, 6]]).map((c) => [...c]), [[1, 3, 5], [2, 4, 6]]);
  assert.deepEqual(columns([]), []);
});

test('the selection half of a clip is the low bit of the first byte of its id\'s SHA-256 being 0, as Python\'s hashlib gives', () => {
  // python3 -c "import hashlib; print([hashlib.sha256(s.encode()).digest()[0] & 1 for s in ['10001','10002','10003','10004','abc']])"
  // -> [0, 0, 1, 1, 0]
  assert.deepEqual(['10001', '10002', '10003', '10004', 'abc'].map(inSelectionHalf), [true, true, false, false, true]);
});
