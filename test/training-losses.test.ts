// RRTN's losses against PyTorch on a committed fixture (test/reference/losses_reference.py), 1e-5 relative
// (gradients 1e-4: float32 here, float64 there), RUWL also where learned values went negative.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { startBackend } from '../stages/lib/tf/backend.ts';
import { barlowTwinsLoss, cccLoss, cccPerColumn, ruwlTotal } from '../stages/lib/losses.ts';
import { ROOT } from './helpers/workspace.ts';

const f = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'losses.json'), 'utf8'));
const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

test('CCC, CCC loss (pooled and per emotion), Barlow Twins and RUWL match PyTorch within 1e-5 relative', async () => {
  await startBackend('cpu'); // float32 everywhere; the check is the formula, not a backend
  tf.tidy(() => {
    const pred = tf.tensor2d(f.pred);
    const target = tf.tensor2d(f.target);
    const per = cccPerColumn(pred, target).dataSync();
    f.ccc_per_emotion.forEach((v: number, i: number) => close(per[i]!, v, `CCC of emotion ${i}`));
    const l1 = cccLoss(pred, target, 'pooled');
    close(l1.dataSync()[0]!, f.ccc_loss_pooled, 'pooled CCC loss');
    close(cccLoss(pred, target, 'per-emotion').dataSync()[0]!, f.ccc_loss_per_emotion, 'per-emotion CCC loss');
    const l2 = cccLoss(tf.reverse(pred, 0) as tf.Tensor2D, target, 'pooled');
    close(l2.dataSync()[0]!, f.ccc_loss_pooled_flipped, 'CCC loss of the second view');
    const z1 = tf.tensor2d(f.z1);
    const z2 = tf.tensor2d(f.z2);
    const bt = barlowTwinsLoss(z1, z2, 0.001);
    close(bt.dataSync()[0]!, f.barlow_0001, 'Barlow Twins, lambda 0.001');
    close(barlowTwinsLoss(z1, z2, 0.005).dataSync()[0]!, f.barlow_0005, 'Barlow Twins, lambda 0.005');
    close(ruwlTotal(l1, l2, bt, tf.tensor1d(f.s)).dataSync()[0]!, f.ruwl_total, 'RUWL total');
    // The authors' reading: C from BatchNorm1d's affine output as is (gamma, beta from the fixture).
    const affine = (z: tf.Tensor2D) => {
      const { mean, variance } = tf.moments(z, 0);
      return tf.add(tf.mul(tf.div(tf.sub(z, mean), tf.sqrt(tf.add(variance, 1e-5))), tf.tensor1d(f.gamma)), tf.tensor1d(f.beta)) as tf.Tensor2D;
    };
    close(barlowTwinsLoss(affine(z1), affine(z2), 0.001, false).dataSync()[0]!, f.barlow_affine_0001, 'Barlow Twins from the affine BatchNorm output');
    assert.ok(Math.abs(barlowTwinsLoss(affine(z1), affine(z2), 0.001).dataSync()[0]! - f.barlow_0001) < 1e-4 * f.barlow_0001, 'renormalising cancels the affine parameters');
  });
});

test('RUWL where learned values went negative (the restraint takes |s|): totals within 1e-5 and gradients within 1e-4 relative of PyTorch', async () => {
  await startBackend('cpu');
  const l1 = tf.scalar(f.ccc_loss_pooled);
  const l2 = tf.scalar(f.ccc_loss_pooled_flipped);
  const bt = tf.scalar(f.barlow_0001);
  for (const c of f.ruwl_negative as Array<{ s: number[]; total: number; grad: number[] }>) {
    const s = tf.tensor1d(c.s);
    close(ruwlTotal(l1, l2, bt, s).dataSync()[0]!, c.total, `RUWL total at s = ${c.s}`);
    const g = tf.grad((x: tf.Tensor) => ruwlTotal(l1, l2, bt, x as tf.Tensor1D))(s).dataSync();
    c.grad.forEach((v, i) => assert.ok(Math.abs(g[i]! - v) <= 1e-4 * Math.max(1, Math.abs(v)), `d total / d s${i + 1} at s = ${c.s}: ${g[i]} vs ${v}`));
  }
});
