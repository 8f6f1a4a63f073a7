// Comparing numerical results: the largest absolute difference relative to the reference's largest magnitude.
import assert from 'node:assert/strict';

export function relErr(got: ArrayLike<number>, reference: ArrayLike<number>): number {
  assert.equal(got.length, reference.length, 'lengths differ');
  let num = 0;
  let den = 0;
  for (let i = 0; i < got.length; i++) {
    num = Math.max(num, Math.abs(got[i]! - reference[i]!));
    den = Math.max(den, Math.abs(reference[i]!));
  }
  return num / (den || 1);
}
