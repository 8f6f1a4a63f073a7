// The compiled WebGPU training step (stages/lib/gpu/) against the tfjs path on WASM, one whole twin
// step from the same weights and batch: the losses, every gradient, the running statistics and the
// weights after AdamW, for every backbone (narrow widths, short crops: Dawn runs on lavapipe, Mesa's
// CPU Vulkan driver) and every mode and option (vanilla / joint / RUWL, both CCC forms, both Barlow
// Twins readings, both bnStats choices, dropout fed the same masks on both paths).
//
// Agreement is 1e-4, relative to each tensor's largest value (with a floor of 1e-3 of the step's
// largest gradient). The objective does not depend on some tensors at all: the projector's bias
// (batch norm removes it) and, under the renormalised Barlow Twins reading, the projector batch
// norm's affine. Their gradients are rounding noise on both paths: both must be below 1e-5 of the
// largest gradient, and AdamW, which turns any gradient into a step of about lr, may move them (and
// any weight whose gradient is below the floor) by up to 2 lr.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { Random } from '../src/random.ts';
import { openGpu } from '../stages/lib/gpu/device.ts';
import type { NetModel } from '../stages/lib/gpu/layout.ts';
import { dropoutKeepHost } from '../stages/lib/gpu/random.ts';
import { CompiledInference, CompiledTwinStep } from '../stages/lib/gpu/step.ts';
import { BUF } from '../stages/lib/gpu/wgsl.ts';
import { startBackend } from '../stages/lib/tf/backend.ts';
import { Model } from '../stages/lib/tf/models.ts';
import { optimizerFor } from '../stages/lib/tf/optimizers.ts';
import { twinLoss, type TwinObjective } from '../stages/lib/twin-loss.ts';
import { useLavapipe } from './helpers/lavapipe.ts';
import { needs } from './helpers/provision.ts';

const LR = 1e-3;
const SEED = 17;
const STEP = 5;

interface Case {
  label: string;
  model: NetModel;
  obj: TwinObjective;
  b: number;
  t: number;
}

const joint: TwinObjective = { mode: 'joint', weights: [1, 1, 0.01], lambda: 0.005, cccForm: 'pooled', btCorrelation: 'normalized', bnStats: 'both' };
const M = 16;
const CASES: Case[] = [
  { label: 'small CNN, vanilla', model: { backbone: 'small', mels: M, outputs: 10, channels: [4, 8, 8, 16] }, obj: { ...joint, mode: 'vanilla' }, b: 6, t: 32 },
  { label: 'small CNN, joint, renormalised Barlow Twins, pooled CCC', model: { backbone: 'small', mels: M, outputs: 10, channels: [4, 8, 8, 16], projector: 12 }, obj: joint, b: 6, t: 32 },
  { label: 'small CNN, RUWL, affine Barlow Twins, per-emotion CCC, clean-view statistics', model: { backbone: 'small', mels: M, outputs: 10, channels: [4, 8, 8, 16], projector: 12 }, obj: { ...joint, mode: 'ruwl', btCorrelation: 'affine', cccForm: 'per-emotion', bnStats: 'clean' }, b: 6, t: 32 },
  { label: 'CNN6, joint, dropout on (the same masks)', model: { backbone: 'cnn6', mels: M, outputs: 10, channels: [4, 8, 8, 8], projector: 8, dropout: 0.2, headDropout: 0.5 }, obj: joint, b: 4, t: 32 },
  { label: 'CNN10, vanilla, dropout on', model: { backbone: 'cnn10', mels: M, outputs: 10, channels: [4, 8, 8, 8], dropout: 0.2, headDropout: 0.5 }, obj: { ...joint, mode: 'vanilla' }, b: 4, t: 32 },
  { label: 'narrow CNN14, joint, dropout on', model: { backbone: 'cnn14', mels: 32, outputs: 10, channels: [4, 4, 8, 8, 8, 16], projector: 16, dropout: 0.2, headDropout: 0.5 }, obj: joint, b: 4, t: 64 },
  { label: 'narrow ResNet14, RUWL', model: { backbone: 'resnet14', mels: M, outputs: 10, channels: [4, 8, 8, 16], projector: 12 }, obj: { ...joint, mode: 'ruwl' }, b: 4, t: 32 },
];

/** Largest difference over the scale of `want` (with a floor): see the header. */
function err(got: ArrayLike<number>, want: ArrayLike<number>, floor = 0): number {
  let d = 0;
  let s = floor;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i]! - want[i]!));
    s = Math.max(s, Math.abs(want[i]!));
  }
  return s === 0 ? d : d / s;
}

const maxAbs = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, x) => Math.max(a, Math.abs(x)), 0);

async function compare(c: Case): Promise<string[]> {
  const twin = c.obj.mode !== 'vanilla';
  const views = twin ? 2 : 1;
  const rng = new Random(8);
  const E = c.model.outputs;
  const per = c.t * c.model.mels;
  const x = Float32Array.from({ length: views * c.b * per }, () => rng.normal() * 3 - 20);
  const labels = Float32Array.from({ length: c.b * E }, () => rng.float());
  const model = new Model(c.model, 3);
  const w0 = model.exportWeights();
  const s = c.obj.mode === 'ruwl' ? tf.variable(tf.tensor1d([1, 1, 0.001]), true, `s-${c.label}`) : undefined;
  const trainable = s ? [...model.trainable, s] : model.trainable;
  // The compiled step's masks, fed to the tfjs path: view g's elements follow view 0's in its buffers.
  const masks = (view: number) => (layer: number, shape: number[]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const rate = layer === 100 ? (c.model.headDropout ?? 0.5) : (c.model.dropout ?? 0.2);
    return Float32Array.from({ length: size }, (_, i) => (dropoutKeepHost(view * size + i, layer, rate, STEP, SEED) ? 1 : 0));
  };
  let parts = { l1: 0, l2: 0, bt: 0 };
  const { value, grads } = tf.variableGrads(() => {
    const r = twinLoss(tf, model, tf.tensor4d(x.subarray(0, c.b * per), [c.b, c.t, c.model.mels, 1]), twin ? tf.tensor4d(x.subarray(c.b * per), [c.b, c.t, c.model.mels, 1]) : undefined, tf.tensor2d(labels, [c.b, E]), c.obj, s, undefined, masks);
    parts = r.parts;
    return r.total;
  }, trainable);
  const total = value.dataSync()[0]!;
  const want = new Map(trainable.map((v) => [v === s ? 'ruwl.s' : v.name.replace(/^m\d+\//, ''), Float32Array.from(grads[v.name]!.dataSync())]));
  const opt = optimizerFor('wasm', LR, 0.01);
  opt.apply(grads, trainable);
  const w1 = model.exportWeights();
  tf.dispose([value, ...Object.values(grads)]);

  const gpu = await openGpu();
  const step = new CompiledTwinStep(gpu, { model: c.model, mode: c.obj.mode, batch: c.b, frames: c.t, form: c.obj.cccForm, weights: c.obj.weights, lambda: c.obj.lambda, btCorrelation: c.obj.btCorrelation, bnStats: c.obj.bnStats, ring: 8 }, SEED, { lr: LR, weightDecay: 0.01 });
  try {
    step.setWeights(w0.manifest, w0.data);
    if (s) step.setExtra('ruwl.s', [1, 1, 0.001]);
    await step.step(x, labels, STEP);
    const problems: string[] = [];
    const got = await step.losses(STEP, 1);
    for (const [k, i, v] of [['total', 0, total], ['L1', 1, parts.l1], ['L2', 2, parts.l2], ['L_BT', 3, parts.bt]] as const) {
      const e = Math.abs(got[i]! - v) / Math.max(Math.abs(v), 1e-6);
      if (e > 1e-4) problems.push(`loss ${k}: ${got[i]} against ${v} (${e.toExponential(1)})`);
    }
    const g = await step.read(BUF.grads);
    const floor = 1e-3 * Math.max(...[...want.values()].map(maxAbs));
    const noise = new Set(twin ? ['proj.bias', ...(c.obj.btCorrelation === 'normalized' ? ['proj.bn.gamma', 'proj.bn.beta'] : [])] : []);
    for (const t of step.net.layout.tensors.filter((t) => t.trainable)) {
      const w = want.get(t.name);
      if (!w) {
        problems.push(`no tfjs gradient for ${t.name}`);
        continue;
      }
      const mine = g.subarray(t.offset, t.offset + t.size);
      if (noise.has(t.name)) {
        if (Math.max(maxAbs(mine), maxAbs(w)) > 1e-2 * floor) problems.push(`gradient of ${t.name}, zero in exact arithmetic: ${maxAbs(mine)} here, ${maxAbs(w)} on WASM`);
        continue;
      }
      const e = err(mine, w, floor);
      if (e > 1e-4) problems.push(`gradient of ${t.name}: ${e.toExponential(1)}`);
      if (maxAbs(w) < floor) noise.add(t.name); // (a stationary point at these weights: AdamW steps on noise)
    }
    const after = await step.exportWeights(w1.manifest);
    for (const m of w1.manifest) {
      const n = m.shape.reduce((a, b) => a * b, 1);
      const [gotW, wantW] = [after.subarray(m.offset, m.offset + n), w1.data.subarray(m.offset, m.offset + n)];
      if (m.name.endsWith('running_mean')) {
        // In units of the batch's spread: a mean near 0 has no relative precision of its own.
        const v = m.name.replace('running_mean', 'running_var');
        const vm = w1.manifest.find((x) => x.name === v)!;
        const spread = Math.sqrt(maxAbs(w1.data.subarray(vm.offset, vm.offset + n)));
        const e = err(gotW, wantW, spread);
        if (e > 1e-4) problems.push(`${m.name} after the step: ${e.toExponential(1)}`);
      } else if (noise.has(m.name)) {
        const d = maxAbs(gotW.map((v, i) => v - wantW[i]!));
        if (d > 2.5 * LR) problems.push(`${m.name} (noise gradient) moved ${d} apart`);
      } else {
        const e = err(gotW, wantW);
        if (e > 1e-4) problems.push(`${m.name} after the step: ${e.toExponential(1)}`);
      }
    }
    return problems;
  } finally {
    step.destroy();
    model.dispose();
    s?.dispose();
  }
}

test('the compiled WebGPU twin step agrees with the tfjs path on WASM: losses, every gradient, running statistics, weights after AdamW', needs('webgpu'), async (t) => {
  useLavapipe();
  await startBackend('wasm');
  for (const c of CASES) {
    await t.test(c.label, async () => {
      const problems = await compare(c);
      assert.deepEqual(problems, [], `${c.label}:\n${problems.join('\n')}`);
    });
  }
});

test('prediction on the same buffers: clips of several lengths in one batch score as each would alone on WASM', needs('webgpu'), async (t) => {
  useLavapipe();
  await startBackend('wasm');
  const gpu = await openGpu();
  for (const model of [
    { backbone: 'small', mels: M, outputs: 10, channels: [4, 8, 8, 16] },
    { backbone: 'cnn14', mels: 32, outputs: 10, channels: [4, 4, 8, 8, 8, 16] },
    { backbone: 'resnet14', mels: M, outputs: 10, channels: [4, 8, 8, 16] },
  ] as NetModel[]) {
    await t.test(model.backbone, async () => {
      const m = new Model(model, 5);
      const rng = new Random(2);
      // Running statistics away from (0, 1), so that inference's normalisation is tested.
      const w = m.exportWeights();
      for (const e of w.manifest) {
        const n = e.shape.reduce((a, b) => a * b, 1);
        if (e.name.endsWith('running_mean')) for (let i = 0; i < n; i++) w.data[e.offset + i] = rng.normal() * (e.name === 'bn0.running_mean' ? 3 : 0.3) - (e.name === 'bn0.running_mean' ? 20 : 0);
        if (e.name.endsWith('running_var')) for (let i = 0; i < n; i++) w.data[e.offset + i] = 0.5 + rng.float() * (e.name === 'bn0.running_var' ? 9 : 1);
      }
      m.importWeights(w.manifest, w.data);
      const step = new CompiledTwinStep(gpu, { model, mode: 'vanilla', batch: 2, frames: 64, form: 'pooled', weights: [1, 1, 0], lambda: 0, btCorrelation: 'normalized', bnStats: 'both', ring: 2 }, 0, { lr: LR, weightDecay: 0 });
      try {
        step.setWeights(w.manifest, w.data);
        const inference = new CompiledInference(step, 3, 70);
        const lengths = [70, 33, 64, 47, 32];
        const clips = lengths.map((L) => Float32Array.from({ length: L * model.mels }, () => rng.normal() * 3 - 20));
        const got = await inference.predict(clips);
        clips.forEach((clip, i) => {
          const want = tf.tidy(() => m.forward(tf.tensor4d(clip, [1, lengths[i]!, model.mels, 1]), false).output.dataSync());
          const e = err(got.subarray(i * 10, (i + 1) * 10), want);
          assert.ok(e < 1e-4, `${model.backbone}, a clip of ${lengths[i]} frames: ${e.toExponential(1)}`);
        });
      } finally {
        step.destroy();
        m.dispose();
      }
    });
  }
});
