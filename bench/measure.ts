// Step and inference time of a backbone on the current TensorFlow.js backend (bench/train.ts, bench/gpu.ts).
import * as tf from '@tensorflow/tfjs-core';
import { Model, type ModelSpec } from '../stages/lib/tf/models.ts';
import { AdamW, FusedAdamW, HostAdamW, optimizerFor } from '../stages/lib/tf/optimizers.ts';
import type { BackendName } from '../stages/lib/tf/backend.ts';

/** Which AdamW: the backend's default placement (optimizerFor), or one named. */
export type OptimizerKind = 'default' | 'tensors' | 'flat' | 'host';

const log = (s: string) => process.stderr.write(`${s}\n`);

export interface Timing {
  stepMs: number;
  inferMs: number;
  params: number;
}

export async function measure(spec: ModelSpec, batch: number, frames: number, steps: number, optimizer: OptimizerKind = 'default'): Promise<Timing> {
  const model = new Model(spec, 0);
  const opt = { default: () => optimizerFor(tf.getBackend() as BackendName, 1e-3), tensors: () => new AdamW(1e-3), flat: () => new FusedAdamW(1e-3), host: () => new HostAdamW(1e-3) }[optimizer]();
  const x = tf.randomNormal([batch, frames, 64, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
  const times: number[] = [];
  const tensors0 = tf.memory().numTensors;
  for (let i = 0; i <= steps; i++) {
    const t0 = performance.now();
    const { value, grads } = tf.variableGrads(() => tf.mean(model.forward(x, true).output) as tf.Scalar, model.trainable);
    opt.apply(grads, model.trainable);
    await value.data(); // wait for the step (matters on GPU backends)
    tf.dispose([value, ...Object.values(grads)]);
    if (i) times.push(performance.now() - t0);
  }
  const leaked = tf.memory().numTensors - tensors0;
  const infer = async () => {
    const t0 = performance.now();
    const out = tf.tidy(() => model.forward(x, false).output);
    await out.data();
    out.dispose();
    return performance.now() - t0;
  };
  await infer();
  const inferMs = Math.min(await infer(), await infer(), await infer());
  const params = model.parameterCount();
  model.dispose();
  opt.dispose();
  x.dispose();
  times.sort((a, b) => a - b);
  // AdamW keeps two moment tensors per trainable variable (FusedAdamW two in all, HostAdamW none); more is a leak.
  if (leaked > 2 * model.trainable.length) log(`warning: ${leaked - 2 * model.trainable.length} tensors leaked`);
  return { stepMs: times[Math.floor(times.length / 2)]!, inferMs, params };
}

