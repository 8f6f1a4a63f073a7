// RRTN's losses (../shared/reference/rrtn.md), in TensorFlow.js ops:
//   CCC(x, y) = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2)   (population moments)
//   L_CCC = 1 - CCC, pooled over the whole batch x 10 tensor as the reference code does, or the mean
//   of per-emotion CCCs ('per-emotion', the evaluation's form)
//   Barlow Twins: z1, z2 batch-normalised per feature (no affine); C = z1^T z2 / B;
//   L_BT = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2
//   RUWL: L1/s1^2 + log(1+s1^2) + L2/s2^2 + log(1+s2^2) + 1e-8 L_BT/s3^2 + log(1+s3^2) + |2 - sum|s||
// Checked against PyTorch on committed fixtures (test/reference/losses_reference.py).
import * as tf from '@tensorflow/tfjs-core';

/** CCC of two tensors, pooled over all their elements. */
export function cccPooled(x: tf.Tensor, y: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const mx = tf.mean(x);
    const my = tf.mean(y);
    const dx = tf.sub(x, mx);
    const dy = tf.sub(y, my);
    const cov = tf.mean(tf.mul(dx, dy));
    const vx = tf.mean(tf.square(dx));
    const vy = tf.mean(tf.square(dy));
    return tf.div(tf.mul(2, cov), tf.add(tf.add(vx, vy), tf.square(tf.sub(mx, my)))) as tf.Scalar;
  });
}

/** CCC per column of [batch, k] tensors. */
export function cccPerColumn(x: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    const mx = tf.mean(x, 0);
    const my = tf.mean(y, 0);
    const dx = tf.sub(x, mx);
    const dy = tf.sub(y, my);
    const cov = tf.mean(tf.mul(dx, dy), 0);
    const vx = tf.mean(tf.square(dx), 0);
    const vy = tf.mean(tf.square(dy), 0);
    return tf.div(tf.mul(2, cov), tf.add(tf.add(vx, vy), tf.square(tf.sub(mx, my)))) as tf.Tensor1D;
  });
}

export type CccLossForm = 'pooled' | 'per-emotion';

export function cccLoss(pred: tf.Tensor2D, target: tf.Tensor2D, form: CccLossForm = 'pooled'): tf.Scalar {
  return tf.tidy(() => tf.sub(1, form === 'pooled' ? cccPooled(pred, target) : tf.mean(cccPerColumn(pred, target))) as tf.Scalar);
}

/**
 * Barlow Twins on projector outputs [B, D]. `renormalize` (default): each feature normalised again
 * over the batch (eps 1e-5), so the projector BatchNorm's affine weight and bias cancel; false: C
 * taken from the outputs as they are (the authors' code, from BatchNorm1d's affine output).
 */
export function barlowTwinsLoss(z1: tf.Tensor2D, z2: tf.Tensor2D, lambda: number, renormalize = true): tf.Scalar {
  return tf.tidy(() => {
    const norm = (z: tf.Tensor2D) => {
      if (!renormalize) return z;
      const { mean, variance } = tf.moments(z, 0);
      return tf.div(tf.sub(z, mean), tf.sqrt(tf.add(variance, 1e-5)));
    };
    const b = z1.shape[0];
    const c = tf.div(tf.matMul(norm(z1), norm(z2), true, false), b) as tf.Tensor2D;
    const d = c.shape[0];
    const eye = tf.eye(d);
    const onDiag = tf.sum(tf.square(tf.sub(tf.mul(c, eye), eye)));
    const offDiag = tf.sum(tf.square(tf.mul(c, tf.sub(1, eye))));
    return tf.add(onDiag, tf.mul(lambda, offDiag)) as tf.Scalar;
  });
}

/** Restrained Uncertainty Weight Loss total for losses (L1, L2, L_BT) and learnable s = (s1, s2, s3). */
export function ruwlTotal(l1: tf.Scalar, l2: tf.Scalar, lbt: tf.Scalar, s: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const [s1, s2, s3] = tf.unstack(s) as [tf.Scalar, tf.Scalar, tf.Scalar];
    const term = (l: tf.Scalar, si: tf.Scalar, scale = 1) => tf.add(tf.div(tf.mul(l, scale), tf.square(si)), tf.log1p(tf.square(si)));
    const restraint = tf.abs(tf.sub(2, tf.sum(tf.abs(s))));
    return tf.addN([term(l1, s1), term(l2, s2), term(lbt, s3, 1e-8), restraint]) as tf.Scalar;
  });
}
