// The twin objective on the tfjs path, as twin-train computes it each step (and as the compiled
// WebGPU step is checked against): the clean view's CCC loss alone (vanilla), or both views through
// shared weights with the Barlow Twins term on the projections, weighted by mode (joint, RUWL).
import type * as TF from '@tensorflow/tfjs-core';
import type { Random } from '../../src/random.ts';
import { barlowTwinsLoss, cccLoss, ruwlTotal } from './losses.ts';
import type { DropoutMasks, Model } from './tf/models.ts';

export interface TwinObjective {
  mode: 'vanilla' | 'joint' | 'ruwl';
  weights: [number, number, number];
  lambda: number;
  cccForm: 'pooled' | 'per-emotion';
  btCorrelation: 'normalized' | 'affine';
  bnStats: 'both' | 'clean';
}

/** The total loss of one batch (to be differentiated), and its parts as numbers (read as it runs). */
/** `masks`: dropout masks per view (0 clean, 1 distorted), in place of the seeded draws. */
export function twinLoss(tf: typeof TF, model: Model, xa: TF.Tensor4D, xb: TF.Tensor4D | undefined, target: TF.Tensor2D, p: TwinObjective, s: TF.Variable | undefined, rng?: Random, masks?: (view: number) => DropoutMasks): { total: TF.Scalar; parts: { l1: number; l2: number; bt: number } } {
  const parts = { l1: 0, l2: 0, bt: 0 };
  const a = model.forward(xa, true, rng, masks?.(0));
  const l1 = cccLoss(a.output, target, p.cccForm);
  if (p.mode === 'vanilla' || !xb) {
    parts.l1 = l1.dataSync()[0]!;
    return { total: l1, parts };
  }
  // bnStats: clean keeps the distorted view's batch statistics out of the running ones.
  model.updateStats = p.bnStats === 'both';
  let bv;
  try {
    bv = model.forward(xb, true, rng, masks?.(1));
  } finally {
    model.updateStats = true;
  }
  const l2 = cccLoss(bv.output, target, p.cccForm);
  const bt = barlowTwinsLoss(model.project(a.embedding, true), model.project(bv.embedding, true), p.lambda, p.btCorrelation === 'normalized');
  parts.l1 = l1.dataSync()[0]!;
  parts.l2 = l2.dataSync()[0]!;
  parts.bt = bt.dataSync()[0]!;
  if (p.mode === 'ruwl') return { total: ruwlTotal(l1, l2, bt, s! as unknown as TF.Tensor1D), parts };
  const [w1, w2, w3] = p.weights;
  return { total: tf.addN([tf.mul(l1, w1), tf.mul(l2, w2), tf.mul(bt, w3)]) as TF.Scalar, parts };
}
