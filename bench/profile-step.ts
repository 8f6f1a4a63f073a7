// Kernel profile of one small-CNN training step on a backend (default wasm): where the time goes.
//   node --import tsx bench/profile-step.ts [backend]
import * as tf from '@tensorflow/tfjs-core';
import { startBackend, type BackendName } from '../stages/lib/tf/backend.ts';
import { AdamW, Model } from '../stages/lib/tf/models.ts';

const choice = await startBackend((process.argv[2] as BackendName | undefined) ?? 'wasm');
const model = new Model({ backbone: 'small', mels: 64, outputs: 10 }, 0);
const opt = new AdamW(1e-3);
const x = tf.randomNormal([32, 256, 64, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
const step = () => {
  const { value, grads } = tf.variableGrads(() => tf.mean(model.forward(x, true).output) as tf.Scalar, model.trainable);
  opt.apply(grads, model.trainable);
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
console.log(`${choice.summary}: profiled step ${wall.toFixed(0)} ms wall, ${total.toFixed(0)} ms in ${info.kernels.length} kernels`);
for (const [name, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15)) console.log(`  ${name.padEnd(24)} ${e.ms.toFixed(0).padStart(6)} ms  ${String(e.n).padStart(4)} calls`);
