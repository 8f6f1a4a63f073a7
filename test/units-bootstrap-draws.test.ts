// The bootstrap's resamples draw from every clip, the first and the last included: a model wrong on
// only one clip has a perfect CCC on every resample that misses that clip, so the share of
// resamples below 1 is the share that drew it (1 - (1 - 1/n)^n, about 64 %). An off-by-one in
// the index range (never the last clip, or never the first) leaves that model's interval at [1, 1]
// while the full-data figure says otherwise, the kind of plausible result no other test notices.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Random } from '../src/random.ts';
import { bootstrap, perEmotionCcc } from '../stages/lib/stats.ts';

test('bootstrap resamples draw the first and the last clip: a model wrong on only that clip is imperfect in about 64 % of resamples', () => {
  const n = 30;
  const truth = [Float64Array.from({ length: n }, (_, i) => i / n)];
  const wrongAt = (k: number) => [Float64Array.from(truth[0]!, (v, i) => (i === k ? v + 5 : v))];
  const models = [wrongAt(0), wrongAt(n - 1), wrongAt(n >> 1)];
  const resamples = 2000;
  const b = bootstrap(models, truth, -1, resamples, new Random(7));
  for (const [m, where] of ['first', 'last', 'middle'].entries()) {
    const full = perEmotionCcc(models[m]!, truth)[0]!;
    assert.ok(full < 0.9, `${where}: the full data set is imperfect (${full})`);
    const [lo, hi] = b.models[m]!.ci;
    assert.ok(lo < 0.9, `${where} clip drawn: the interval's low end falls (${lo})`);
    assert.equal(hi, 1, `${where}: resamples missing it are perfect`);
  }
  // The share of resamples that draw a given clip: 1 - (1 - 1/n)^n, within the sampling error of 2,000.
  const drawn = 1 - (1 - 1 / n) ** n;
  for (let m = 0; m < models.length; m++) {
    const imperfect = shareBelowOne(models[m]!, truth, resamples, m);
    assert.ok(Math.abs(imperfect - drawn) < 0.04, `model ${m}: ${imperfect} of resamples drew its clip, expected ${drawn.toFixed(3)}`);
  }
});

/**
 * The share of resamples in which a model is imperfect: bootstrap() one resample at a time (its
 * interval is then that one resample's mean), drawing from one random source throughout.
 */
function shareBelowOne(model: Float64Array[], truth: Float64Array[], resamples: number, seed: number): number {
  let below = 0;
  const rng = new Random(100 + seed);
  for (let r = 0; r < resamples; r++) {
    const one = bootstrap([model], truth, -1, 1, rng);
    if (one.models[0]!.ci[0] < 1) below++;
  }
  return below / resamples;
}
