// Kernel profile of one training step on a backend (default wasm, small CNN, B=32): where the time goes.
//   node --import tsx bench/profile-step.ts [backend] [small|cnn14] [batch] [frames]
import * as tf from '@tensorflow/tfjs-core';
import { startBackend, type BackendName } from '../stages/lib/tf/backend.ts';
import { Model } from '../stages/lib/tf/models.ts';
import { optimizerFor } from '../stages/lib/tf/optimizers.ts';

const choice = await startBackend((process.argv[2] as BackendName | undefined) ?? 'wasm');
const [backbone, batch, frames] = [(process.argv[3] ?? 'small') as 'small' | 'cnn14', Number(process.argv[4] ?? 32), Number(process.argv[5] ?? 256)];
const model = new Model({ backbone, mels: 64, outputs: 10 }, 0);
const opt = optimizerFor(choice.name, 1e-3);
const x = tf.randomNormal([batch, frames, 64, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
let optimizerMs = 0;
const step = () => {
  const { value, grads } = tf.variableGrads(() => tf.mean(model.forward(x, true).output) as tf.Scalar, model.trainable);
  const t = performance.now();
  opt.apply(grads, model.trainable);
  optimizerMs = performance.now() - t;
  tf.dispose([value, ...Object.values(grads)]);
};
step(); // warm-up
const t0 = performance.now();
const info = await tf.profile(step);
const wall = performance.now() - t0;
const byKernel = new Map<string, { ms: number; n: number }>();
for (const k of info.kernels) {
  const e = byKernel.get(k.name) ?? { ms: 0, n: 0 };
  e.ms += Number(k.kernelTimeMs) || 0;
  e.n++;
  byKernel.set(k.name, e);
}
const total = [...byKernel.values()].reduce((s, e) => s + e.ms, 0);
console.log(`${choice.summary}, ${backbone} B=${batch}: profiled step ${wall.toFixed(0)} ms wall, ${total.toFixed(0)} ms in ${info.kernels.length} kernels; optimizer ${optimizerMs.toFixed(0)} ms (${opt.constructor.name})`);
for (const [name, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15)) console.log(`  ${name.padEnd(24)} ${e.ms.toFixed(0).padStart(6)} ms  ${String(e.n).padStart(4)} calls`);
if (process.env.PROFILE_TOP) {
  for (const k of [...info.kernels].sort((a, b) => Number(b.kernelTimeMs) - Number(a.kernelTimeMs)).slice(0, Number(process.env.PROFILE_TOP))) {
    console.log(`  ${k.name.padEnd(24)} ${Number(k.kernelTimeMs).toFixed(0).padStart(6)} ms  ${JSON.stringify(k.inputShapes)}`);
  }
}
