// Dropout masks from a counter-based generator: keep(element) is a hash of (the stage's seed, the
// step, the layer, the element's index), so the backward pass regenerates the forward's mask instead
// of storing it, and a resumed run draws what an uninterrupted one would. The seed and the step
// live in the per-step upload (`upload[0]` the step, `upload[1]` the seed, both as exact floats).
import { BUF } from './wgsl.ts';

/** PCG's output permutation over a 32-bit state (Jarzynski & Olano, "Hash Functions for GPU Rendering", 2020). */
export const RANDOM_WGSL = `
fn pcg_hash(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}`;

export const dropoutKeep = `
fn dropout_keep(index: u32, layer: u32, rate: f32) -> bool {
  let step = u32(${BUF.upload}[0]);
  let seed = u32(${BUF.upload}[1]);
  let h = pcg_hash(index ^ pcg_hash(layer ^ pcg_hash(step ^ pcg_hash(seed))));
  return f32(h >> 8u) * ${1 / 16777216} >= rate;
}`;

/** The same test on the host (for the references and for feeding one mask to both paths). */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

export function dropoutKeepHost(index: number, layer: number, rate: number, step: number, seed: number): boolean {
  const h = pcgHash((index ^ pcgHash((layer ^ pcgHash((step ^ pcgHash(seed >>> 0)) >>> 0)) >>> 0)) >>> 0);
  return (h >>> 8) * (1 / 16777216) >= rate;
}
