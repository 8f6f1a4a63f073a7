// The distortions checked cell by cell over many views (features-distort checks one view of each):
// the circular shift moves every frame by exactly the shift drawn, and every shift in the range is
// drawn; the gain adds exactly the gain drawn to every cell, of either sign; the noise adds power
// at the SNR asked for (measured over the clip); stripes start anywhere they fit, not only at 0.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { distort, viewRandom, type DistortionPolicy } from '../stages/lib/distort.ts';

const OFF: DistortionPolicy = { seed: 7, time: { enabled: false, stripes: 2, width: 8 }, freq: { enabled: false, stripes: 2, width: 4 }, noiseSnrDb: null, gainDb: 0, maxShift: 0 };
const F = 40;
const M = 16;
/** A clip whose every cell differs (frame t, band m): -60 + t + m / 100 dB. */
const clip = () => Float32Array.from({ length: F * M }, (_, i) => -60 + Math.floor(i / M) + (i % M) / 100);

test('the shift: every frame moved circularly by exactly the shift drawn, every shift from -max to max drawn over views', () => {
  const policy = { ...OFF, maxShift: 3 };
  const seen = new Set<number>();
  for (let c = 0; c < 120; c++) {
    const x = clip();
    const rec = distort(x, F, M, policy, viewRandom(policy, 0, c));
    seen.add(rec.shift);
    const src = clip();
    for (let t = 0; t < F; t++) {
      const from = (((t - rec.shift) % F) + F) % F;
      for (let m = 0; m < M; m++) assert.equal(x[t * M + m], src[from * M + m], `view ${c}: frame ${t} band ${m} comes from frame ${from}`);
    }
  }
  assert.deepEqual([...seen].sort((a, b) => a - b), [-3, -2, -1, 0, 1, 2, 3]);
  // No shift asked for: none drawn, the clip as it was.
  const x = clip();
  assert.equal(distort(x, F, M, OFF, viewRandom(OFF, 0, 0)).shift, 0);
  assert.deepEqual(x, clip());
});

test('the gain: exactly the gain drawn added to every cell, drawn over the whole range of either sign', () => {
  const policy = { ...OFF, gainDb: 6 };
  const gains: number[] = [];
  for (let c = 0; c < 60; c++) {
    const x = clip();
    const rec = distort(x, F, M, policy, viewRandom(policy, 1, c));
    gains.push(rec.gainDb);
    const src = clip();
    for (let i = 0; i < F * M; i++) assert.ok(Math.abs(x[i]! - (src[i]! + rec.gainDb)) < 1e-4, `view ${c} cell ${i}`);
  }
  assert.ok(gains.every((g) => Math.abs(g) <= 6), 'within +-6 dB');
  assert.ok(Math.min(...gains) < -4 && Math.max(...gains) > 4, `both ends reached: ${Math.min(...gains)} .. ${Math.max(...gains)}`);
});

test('the noise: power added at the SNR asked for, relative to the clip\'s mean power, never taken away', () => {
  for (const snr of [0, 10, 20]) {
    const policy = { ...OFF, noiseSnrDb: snr };
    // A clip of two levels: its mean power is what the noise is scaled to.
    const level = (i: number) => (i % 2 ? 0 : -3);
    const x = Float32Array.from({ length: F * M * 8 }, (_, i) => level(i));
    distort(x, F * 8, M, policy, viewRandom(policy, 2, snr));
    const meanPower = (1 + 10 ** -0.3) / 2;
    let added = 0;
    for (let i = 0; i < x.length; i++) {
      const extra = 10 ** (x[i]! / 10) - 10 ** (level(i) / 10);
      assert.ok(extra >= -1e-5, `cell ${i}: noise adds power`);
      added += extra;
    }
    const ratio = added / x.length / (meanPower / 10 ** (snr / 10));
    assert.ok(Math.abs(ratio - 1) < 0.05, `SNR ${snr} dB: noise power ${ratio.toFixed(3)} x what the SNR asks`);
  }
});

test('stripes start anywhere they fit: over views, starts beyond 0 for both axes, and never past the end', () => {
  const policy: DistortionPolicy = { ...OFF, time: { enabled: true, stripes: 2, width: 8 }, freq: { enabled: true, stripes: 2, width: 4 } };
  const timeStarts: number[] = [];
  const freqStarts: number[] = [];
  for (let c = 0; c < 40; c++) {
    const rec = distort(clip(), F, M, policy, viewRandom(policy, 3, c));
    for (const [s, w] of rec.timeStripes) {
      timeStarts.push(s);
      assert.ok(s + w <= F && s >= 0, `time stripe ${s}+${w}`);
    }
    for (const [s, w] of rec.freqStripes) {
      freqStarts.push(s);
      assert.ok(s + w <= M && s >= 0, `freq stripe ${s}+${w}`);
    }
  }
  assert.ok(Math.max(...timeStarts) > F / 2, `time stripes reach the second half: ${Math.max(...timeStarts)}`);
  assert.ok(Math.max(...freqStarts) > M / 2, `freq stripes reach the upper bands: ${Math.max(...freqStarts)}`);
});
