// distort: the twins' second view. This stage writes a seeded distortion *policy* (policy.json)
// that training applies to each batch (stages/lib/distort.ts), rather than K materialized views
// per clip: a fresh view every epoch (as the reference code draws one per batch) at no storage
// cost, and still reproducible, since each view's random stream is fixed by (seed, epoch, clip).
// It also writes preview.png: a few training clips, clean (left) beside distorted (right).
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encode } from 'fast-png';
import { defineStage } from '../src/stage-api.ts';
import { distort, viewRandom, type DistortionPolicy } from './lib/distort.ts';
import { readNpyRows } from './lib/npy.ts';

interface Params {
  timeMask: boolean;
  timeStripes: number;
  timeWidth: number;
  timeWidthForFrames: number | null;
  freqMask: boolean;
  freqStripes: number;
  freqWidth: number;
  noiseSnrDb: number | null;
  gainDb: number;
  maxShift: number;
  previewClips: number;
  previewFrames: number;
}

interface FeatureIndex {
  config: { nMels: number };
  splits: Record<string, { file: string; clips: Array<{ id: string; offset: number; frames: number }> }>;
}

export default defineStage<Params>({
  description: 'Seeded SpecAugment-style distortion policy for the second twin view, with a preview image.',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      timeMask: { type: 'boolean', default: true },
      timeStripes: { type: 'integer', minimum: 0, default: 2 },
      timeWidth: { type: 'integer', minimum: 1, default: 64, description: 'Stripe width is uniform in [0, timeWidth) frames.' },
      timeWidthForFrames: { type: ['integer', 'null'], minimum: 1, default: null, description: 'timeWidth is meant for crops this many frames long (the reference: 64 for 250): each crop scales it by its own length over this. null: frames as given, whatever the crop.' },
      freqMask: { type: 'boolean', default: true },
      freqStripes: { type: 'integer', minimum: 0, default: 2 },
      freqWidth: { type: 'integer', minimum: 1, default: 8, description: 'Stripe width is uniform in [0, freqWidth) mel bands.' },
      noiseSnrDb: { type: ['number', 'null'], default: null },
      gainDb: { type: 'number', minimum: 0, default: 0 },
      maxShift: { type: 'integer', minimum: 0, default: 0 },
      previewClips: { type: 'integer', minimum: 1, maximum: 16, default: 4 },
      previewFrames: { type: 'integer', minimum: 16, default: 300 },
    },
  },
  inputs: ['features'],
  outputs: ['policy', 'preview'],
  async run(ctx) {
    const p = ctx.params;
    const policy: DistortionPolicy = {
      seed: ctx.seed,
      time: { enabled: p.timeMask, stripes: p.timeStripes, width: p.timeWidth, ...(p.timeWidthForFrames ? { forFrames: p.timeWidthForFrames } : {}) },
      freq: { enabled: p.freqMask, stripes: p.freqStripes, width: p.freqWidth },
      noiseSnrDb: p.noiseSnrDb,
      gainDb: p.gainDb,
      maxShift: p.maxShift,
    };
    await writeFile(ctx.outputs.policy!, `${JSON.stringify(policy, null, 2)}\n`);

    const dir = ctx.inputs.features as string;
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as FeatureIndex;
    const split = index.splits.Train ?? Object.values(index.splits)[0];
    if (!split) throw new Error(`${dir}/index.json lists no split`);
    const mels = index.config.nMels;
    const clips = split.clips.slice(0, p.previewClips);
    const W = p.previewFrames;
    const gap = 4;
    const width = 2 * W + gap;
    const height = clips.length * (mels + gap) - gap;
    const img = new Uint8Array(width * height * 3).fill(255);
    let lo = Infinity;
    let hi = -Infinity;
    const views = clips.map((c, i) => {
      const clean = readNpyRows(join(dir, split.file), c.offset, c.frames, mels);
      const noisy = clean.slice();
      distort(noisy, c.frames, mels, policy, viewRandom(policy, 0, i));
      for (const v of clean) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      return { clean, noisy, frames: c.frames };
    });
    const paint = (data: Float32Array, frames: number, x0: number, y0: number) => {
      for (let t = 0; t < Math.min(frames, W); t++) {
        for (let m = 0; m < mels; m++) {
          const v = Math.max(0, Math.min(1, (data[t * mels + m]! - lo) / (hi - lo || 1)));
          const o = ((y0 + mels - 1 - m) * width + x0 + t) * 3; // low bands at the bottom
          img[o] = Math.round(255 * Math.min(1, 1.5 * v)); // a simple dark-blue -> yellow map
          img[o + 1] = Math.round(255 * v * v);
          img[o + 2] = Math.round(255 * (0.4 + 0.6 * v) * (1 - v));
        }
      }
    };
    views.forEach((v, i) => {
      paint(v.clean, v.frames, 0, i * (mels + gap));
      paint(v.noisy, v.frames, W + gap, i * (mels + gap));
    });
    await mkdir(ctx.outputs.preview!, { recursive: true });
    await writeFile(join(ctx.outputs.preview!, 'preview.png'), encode({ width, height, data: img, channels: 3, depth: 8 }));
  },
});
