// Training and evaluation batches from the log-mel store (stages/logmel.ts): random crops of a fixed
// number of frames for training, whole clips for evaluation; rows read from the .npy per clip.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Random } from '../../src/random.ts';
import { readNpyRows } from './npy.ts';

export interface ClipEntry {
  id: string;
  offset: number;
  frames: number;
  labels: number[] | null;
}

export interface FeatureIndex {
  config: { nMels: number; sampleRate: number; hop: number };
  emotions: string[];
  splits: Record<string, { file: string; frames: number; clips: ClipEntry[] }>;
}

export function readIndex(dir: string): FeatureIndex {
  return JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as FeatureIndex;
}

export class ClipReader {
  constructor(private readonly dir: string, private readonly index: FeatureIndex) {}

  get mels(): number {
    return this.index.config.nMels;
  }

  clips(split: string): ClipEntry[] {
    return this.index.splits[split]?.clips ?? [];
  }

  /** A whole clip: frames x mels. */
  read(split: string, c: ClipEntry): Float32Array {
    return readNpyRows(join(this.dir, this.index.splits[split]!.file), c.offset, c.frames, this.mels);
  }

  /**
   * A crop of `frames` frames at a random start (clips shorter than that are padded at the end
   * with `padDb`: the log-mel floor, -100 dB, by default).
   */
  crop(split: string, c: ClipEntry, frames: number, rng: Random, out: Float32Array, at: number, padDb = -100): void {
    const mels = this.mels;
    if (c.frames >= frames) {
      const start = rng.int(c.frames - frames + 1);
      out.set(readNpyRows(join(this.dir, this.index.splits[split]!.file), c.offset + start, frames, mels), at);
    } else {
      out.set(this.read(split, c), at);
      out.fill(padDb, at + c.frames * mels, at + frames * mels);
    }
  }
}
