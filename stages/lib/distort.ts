// The second view of the twins: SpecAugment-style distortion of a log-mel (frames x mels,
// row-major), applied by training per batch from a seeded policy (see stages/distort.ts).
import { Random } from '../../src/random.ts';

export interface DistortionPolicy {
  seed: number;
  /** DropStripes along time: `stripes` stripes, each of width uniform in [0, width) frames. */
  time: { enabled: boolean; stripes: number; width: number; forFrames?: number };
  /** DropStripes along frequency: width uniform in [0, width) mel bands. */
  freq: { enabled: boolean; stripes: number; width: number };
  /** Additive noise at this SNR in dB (null: none). */
  noiseSnrDb: number | null;
  /** Random gain, uniform in [-gainDb, gainDb] dB (0: none). */
  gainDb: number;
  /** Circular time shift, uniform in [-maxShift, maxShift] frames (0: none). */
  maxShift: number;
}

/** What was done to one view (for tests and previews). */
export interface DistortionRecord {
  timeStripes: Array<[start: number, width: number]>;
  freqStripes: Array<[start: number, width: number]>;
  gainDb: number;
  shift: number;
}

/** The random stream of one clip's view in one epoch: same policy, epoch and clip, same view. */
export function viewRandom(policy: DistortionPolicy, epoch: number, clip: number): Random {
  return new Random(policy.seed).fork(`view-${epoch}-${clip}`);
}

/**
 * The time stripes' width bound for a crop of `frames`: `width` as given, or, when the policy says
 * the width was meant for crops of `forFrames` (the reference's 64 for 250 frames), scaled to this
 * crop, so that a shorter crop loses the same share of its frames.
 */
export function timeWidthFor(policy: DistortionPolicy, frames: number): number {
  const f = policy.time.forFrames;
  return f ? Math.max(1, Math.round((policy.time.width * frames) / f)) : policy.time.width;
}

/** Distorts `x` in place; returns what it did. */
export function distort(x: Float32Array, frames: number, mels: number, policy: DistortionPolicy, rng: Random): DistortionRecord {
  const rec: DistortionRecord = { timeStripes: [], freqStripes: [], gainDb: 0, shift: 0 };
  if (policy.maxShift > 0) {
    rec.shift = rng.int(2 * policy.maxShift + 1) - policy.maxShift;
    if (rec.shift !== 0) {
      const copy = x.slice(0, frames * mels);
      for (let t = 0; t < frames; t++) {
        const src = (((t - rec.shift) % frames) + frames) % frames;
        x.set(copy.subarray(src * mels, (src + 1) * mels), t * mels);
      }
    }
  }
  if (policy.gainDb > 0) {
    rec.gainDb = rng.uniform(-policy.gainDb, policy.gainDb);
    for (let i = 0; i < frames * mels; i++) x[i] = x[i]! + rec.gainDb;
  }
  if (policy.noiseSnrDb !== null) {
    // Noise power per cell is exponential (a noise periodogram), scaled to the clip's mean power.
    let mean = 0;
    for (let i = 0; i < frames * mels; i++) mean += 10 ** (x[i]! / 10);
    mean /= frames * mels;
    const level = mean / 10 ** (policy.noiseSnrDb / 10);
    for (let i = 0; i < frames * mels; i++) {
      const n = -Math.log(1 - rng.float()) * level;
      x[i] = 10 * Math.log10(10 ** (x[i]! / 10) + n);
    }
  }
  // DropStripes (torchlibrosa): width = randint(0, w), start = randint(0, total - width), zeroed.
  if (policy.time.enabled) {
    const widthMax = timeWidthFor(policy, frames);
    for (let s = 0; s < policy.time.stripes; s++) {
      const width = rng.int(widthMax);
      const start = rng.int(Math.max(1, frames - width));
      rec.timeStripes.push([start, width]);
      x.fill(0, start * mels, Math.min(frames, start + width) * mels);
    }
  }
  if (policy.freq.enabled) {
    for (let s = 0; s < policy.freq.stripes; s++) {
      const width = rng.int(policy.freq.width);
      const start = rng.int(Math.max(1, mels - width));
      rec.freqStripes.push([start, width]);
      for (let t = 0; t < frames; t++) x.fill(0, t * mels + start, t * mels + Math.min(mels, start + width));
    }
  }
  return rec;
}
