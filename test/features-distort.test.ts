// The distortion: masks within their bounds, seeded, and what the record says is what was done.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { distort, timeWidthFor, viewRandom, type DistortionPolicy } from '../stages/lib/distort.ts';

const POLICY: DistortionPolicy = { seed: 3, time: { enabled: true, stripes: 2, width: 64 }, freq: { enabled: true, stripes: 2, width: 8 }, noiseSnrDb: null, gainDb: 0, maxShift: 0 };

function clip(frames: number, mels: number): Float32Array {
  return Float32Array.from({ length: frames * mels }, (_, i) => -50.5 + (i % 97)); // never 0
}

test('DropStripes: two stripes per axis, widths within [0, 64) frames and [0, 8) bands, exactly those cells zeroed', () => {
  const frames = 250;
  const mels = 64;
  const widths = { t: new Set<number>(), f: new Set<number>() };
  for (let c = 0; c < 300; c++) {
    const x = clip(frames, mels);
    const rec = distort(x, frames, mels, POLICY, viewRandom(POLICY, 0, c));
    assert.equal(rec.timeStripes.length, 2);
    assert.equal(rec.freqStripes.length, 2);
    const zeroed = (t: number, m: number) => rec.timeStripes.some(([s, w]) => t >= s && t < s + w) || rec.freqStripes.some(([s, w]) => m >= s && m < s + w);
    for (const [s, w] of rec.timeStripes) {
      assert.ok(w >= 0 && w < 64 && s >= 0 && s + w <= frames, "w >= 0 && w < 64 && s >= 0 && s + w <= frames");
      widths.t.add(w);
    }
    for (const [s, w] of rec.freqStripes) {
      assert.ok(w >= 0 && w < 8 && s >= 0 && s + w <= mels, "w >= 0 && w < 8 && s >= 0 && s + w <= mels");
      widths.f.add(w);
    }
    for (let t = 0; t < frames; t++) for (let m = 0; m < mels; m++) assert.equal(x[t * mels + m] === 0, zeroed(t, m));
  }
  assert.ok(widths.t.size > 40 && widths.f.size === 8, 'widths cover their ranges');
});

test('seeded: same policy, epoch and clip give the same view; another epoch or seed another', () => {
  const view = (policy: DistortionPolicy, epoch: number, c: number) => {
    const x = clip(200, 64);
    distort(x, 200, 64, policy, viewRandom(policy, epoch, c));
    return x;
  };
  assert.deepEqual(view(POLICY, 1, 5), view(POLICY, 1, 5));
  assert.notDeepEqual(view(POLICY, 1, 5), view(POLICY, 2, 5));
  assert.notDeepEqual(view(POLICY, 1, 5), view({ ...POLICY, seed: 4 }, 1, 5));
});

test('switchable axes, noise at an SNR, gain and shift', () => {
  const off: DistortionPolicy = { ...POLICY, time: { ...POLICY.time, enabled: false }, freq: { ...POLICY.freq, enabled: false } };
  const x = clip(100, 64);
  const rec = distort(x, 100, 64, off, viewRandom(off, 0, 0));
  assert.deepEqual([rec.timeStripes, rec.freqStripes], [[], []]);
  assert.deepEqual(x, clip(100, 64));
  const gain: DistortionPolicy = { ...off, gainDb: 6, maxShift: 10 };
  const y = clip(100, 64);
  const r2 = distort(y, 100, 64, gain, viewRandom(gain, 0, 1));
  assert.ok(Math.abs(r2.gainDb) <= 6 && Math.abs(r2.shift) <= 10, "Math.abs(r2.gainDb) <= 6 && Math.abs(r2.shift) <= 10");
  const src = clip(100, 64);
  const t0 = (((0 - r2.shift) % 100) + 100) % 100;
  assert.ok(Math.abs(y[0]! - (src[t0 * 64]! + r2.gainDb)) < 1e-4, 'shifted and gained');
  const noisy: DistortionPolicy = { ...off, noiseSnrDb: 0 };
  const z = clip(100, 64);
  distort(z, 100, 64, noisy, viewRandom(noisy, 0, 2));
  const src2 = clip(100, 64);
  assert.ok(z.every((v, i) => v >= src2[i]! - 1e-4), 'adding noise power never lowers a cell');
  assert.ok(z.some((v, i) => v > src2[i]! + 1), 'at 0 dB SNR the noise shows');
});

test('time stripes sized for another crop length scale to this crop: the same share of frames masked (64 of 250 -> 25 of 96)', () => {
  const scaled: DistortionPolicy = { ...POLICY, time: { ...POLICY.time, forFrames: 250 }, freq: { ...POLICY.freq, enabled: false } };
  assert.equal(timeWidthFor(scaled, 96), 25);
  assert.equal(timeWidthFor(scaled, 250), 64);
  assert.equal(timeWidthFor(scaled, 2), 1, 'never below one frame');
  assert.equal(timeWidthFor(POLICY, 96), 64, 'without forFrames: frames as given');
  let widest = 0;
  for (let c = 0; c < 400; c++) {
    const x = clip(96, 64);
    const rec = distort(x, 96, 64, scaled, viewRandom(scaled, 0, c));
    for (const [, w] of rec.timeStripes) widest = Math.max(widest, w);
    assert.deepEqual(rec.freqStripes, []);
  }
  assert.equal(widest, 24, 'widths uniform in [0, 25)');
});

test('a crop past the end of a short clip is padded with the value asked for (-100 dB by default, 0 as the authors do)', async (t) => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { NpyWriter } = await import('../stages/lib/npy.ts');
  const { ClipReader } = await import('../stages/lib/batches.ts');
  const { Random } = await import('../src/random.ts');
  const dir = mkdtempSync(join(tmpdir(), 'crop-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const w = await NpyWriter.create(join(dir, 'train.npy'), [3, 2]);
  await w.write(Float32Array.from([1, 2, 3, 4, 5, 6]));
  await w.close();
  const reader = new ClipReader(dir, { config: { nMels: 2, sampleRate: 16000, hop: 160 }, emotions: [], splits: { Train: { file: 'train.npy', frames: 3, clips: [{ id: 'a', offset: 0, frames: 3, labels: null }] } } });
  const out = new Float32Array(10);
  reader.crop('Train', reader.clips('Train')[0]!, 5, new Random(1), out, 0);
  assert.deepEqual([...out], [1, 2, 3, 4, 5, 6, -100, -100, -100, -100]);
  reader.crop('Train', reader.clips('Train')[0]!, 5, new Random(1), out, 0, 0);
  assert.deepEqual([...out], [1, 2, 3, 4, 5, 6, 0, 0, 0, 0]);
});
