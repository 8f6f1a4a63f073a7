import * as tf from '@tensorflow/tfjs-core';
import { startBackend } from '../stages/lib/tf/backend.ts';
import { Model } from '../stages/lib/tf/models.ts';
import { FusedAdamW } from '../stages/lib/tf/optimizers.ts';
const c = await startBackend('webgpu');
console.log(c.summary, tf.getBackend());
const m = new Model({ backbone: 'small', mels: 16, outputs: 2, channels: [4, 8] }, 1);
const opt = new FusedAdamW(1e-3);
const x = tf.randomNormal([4, 32, 16, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
const t0 = performance.now();
for (let i = 0; i < 3; i++) {
  const { value, grads } = tf.variableGrads(() => tf.mean(m.forward(x, true).output) as tf.Scalar, m.trainable);
  opt.apply(grads, m.trainable);
  console.log('loss', (await value.data())[0], (performance.now() - t0).toFixed(0), 'ms');
  tf.dispose([value, ...Object.values(grads)]);
}
process.exit(0);
