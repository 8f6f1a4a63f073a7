// The GPU part of the training benchmark, run on a lent GPU machine through WebGPU (Dawn's `webgpu`
// package): small CNN (B=32, 256 x 64) and CNN14 (B=32, 304 x 64) step and inference times, and a
// kernel profile of the small step with FusedAdamW (kernel time against wall time). Prints JSON.
// Built and shipped by bench/gpu-prepare.sh; PyTorch on the same GPU runs beside it (train_torch.py).
import * as tf from '@tensorflow/tfjs-core';
import { startBackend } from '../stages/lib/tf/backend.ts';
import { Model } from '../stages/lib/tf/models.ts';
import { FusedAdamW } from '../stages/lib/tf/optimizers.ts';
import { measure } from './measure.ts';

const steps = Number(process.env.BENCH_STEPS ?? 5);
const choice = await startBackend('webgpu');
process.stderr.write(`${choice.summary}\n`);
if (choice.name !== 'webgpu') {
  process.stdout.write(`${JSON.stringify({ backend: choice.name, summary: choice.summary })}\n`);
  process.exit(1);
}
const small = await measure({ backbone: 'small', mels: 64, outputs: 10 }, 32, 256, steps, 'tensors');
process.stderr.write(`small: ${JSON.stringify(small)}\n`);
const smallFused = await measure({ backbone: 'small', mels: 64, outputs: 10 }, 32, 256, steps, 'flat');
process.stderr.write(`small, FusedAdamW: ${JSON.stringify(smallFused)}\n`);

// Kernel time against wall time for one small step.
const model = new Model({ backbone: 'small', mels: 64, outputs: 10 }, 0);
const opt = new FusedAdamW(1e-3);
const x = tf.randomNormal([32, 256, 64, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
const step = async () => {
  const { value, grads } = tf.variableGrads(() => tf.mean(model.forward(x, true).output) as tf.Scalar, model.trainable);
  opt.apply(grads, model.trainable);
  await value.data();
  tf.dispose([value, ...Object.values(grads)]);
};
await step();
const t0 = performance.now();
const prof = await tf.profile(step);
const wall = performance.now() - t0;
let kernelMs = 0;
const byKernel = new Map<string, number>();
for (const k of prof.kernels) {
  const ms = Number(await k.kernelTimeMs) || 0;
  kernelMs += ms;
  byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + ms);
}
const top = [...byKernel].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([n, ms]) => ({ kernel: n, ms: Math.round(ms * 10) / 10 }));
model.dispose();
opt.dispose();
x.dispose();

let cnn14: unknown;
try {
  cnn14 = await measure({ backbone: 'cnn14', mels: 64, outputs: 10 }, 32, 304, Math.max(2, steps - 2), 'flat');
} catch (e) {
  cnn14 = { error: (e as Error).message.slice(0, 200) };
}
process.stdout.write(`${JSON.stringify({ backend: choice.name, summary: choice.summary, small, smallFused, smallProfile: { wallMs: wall, kernelMs, kernels: prof.kernels.length, top }, cnn14 })}\n`);
