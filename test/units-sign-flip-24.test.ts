// The test over seeds at its limit, 24 paired differences (2^24 sign assignments, about 2 s): a file
// of its own, so that `npm run mutate` runs it only for the mutants it reaches (perTest coverage is
// by test file), not for every mutant of the evaluation area.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { signFlipTest } from '../stages/lib/stats.ts';

test('the test over seeds takes up to 24 differences (2^24 sign assignments), not 25', () => {
  // 16 differences of +0.02 and 8 of -0.01: mean 0.01. An assignment flipping a of the first and b
  // of the second sums to 0.24 - 0.04a + 0.02b; counting those with |sum| >= 0.24 by hand
  // (sum of C(16,a) C(8,b)) gives 92616 of 2^24.
  const diffs = Array.from({ length: 24 }, (_, i) => (i % 3 === 0 ? -0.01 : 0.02));
  const r = signFlipTest(diffs);
  assert.ok(Math.abs(r.mean - 0.01) < 1e-15, `mean ${r.mean}`);
  assert.equal(r.p, 92616 / 2 ** 24);
  assert.throws(() => signFlipTest([...diffs, 0.01]), /needs 1 to 24 paired differences, got 25/);
});
