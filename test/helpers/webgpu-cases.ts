// What test/tf-webgpu.test.ts computes on each backend: this project's convolution kernels and one
// training step of a small CNN with FusedAdamW (the WebGPU optimizer), from the same inputs.
import * as tf from '@tensorflow/tfjs-core';
import { Model } from '../../stages/lib/tf/models.ts';
import { FusedAdamW } from '../../stages/lib/tf/optimizers.ts';

export interface ConvCase {
  x: [number, number, number, number];
  k: [number, number];
  co: number;
  strides: [number, number];
  pad: 'same' | 'valid';
  xs: number[];
  dy: number[];
  dyShape: number[];
  w: number[];
}

export interface CheckInput {
  convs: ConvCase[];
  batch: number[];
}

/**
 * Per case: Conv2DBackpropFilter, Conv2DBackpropInput, Conv2D; then the model's loss, gradients and
 * updated weights. Read back asynchronously (WebGPU's synchronous read needs a canvas Node lacks).
 */
export async function computeCases(input: CheckInput): Promise<number[][]> {
  const held: tf.Tensor[] = [];
  for (const c of input.convs) {
    const filterShape = [c.k[0], c.k[1], c.x[3], c.co];
    held.push(...tf.tidy(() => {
      const run = (kernel: string, inputs: Record<string, tf.Tensor>, attrs: object) => tf.engine().runKernel(kernel, inputs, attrs as never) as tf.Tensor;
      const x = tf.tensor(c.xs, c.x);
      const dy = tf.tensor(c.dy, c.dyShape);
      const w = tf.tensor(c.w, filterShape);
      return [
        run('Conv2DBackpropFilter', { x, dy }, { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape }),
        run('Conv2DBackpropInput', { dy, filter: w }, { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', inputShape: c.x }),
        tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad),
      ];
    }));
  }
  const model = new Model({ backbone: 'small', mels: 16, outputs: 2, channels: [4, 8] }, 7);
  const opt = new FusedAdamW(1e-2, 0.01);
  const x = tf.tensor4d(input.batch, [4, 32, 16, 1]);
  const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(model.forward(x, true).output)) as tf.Scalar, model.trainable);
  held.push(value, ...model.trainable.map((v) => grads[v.name]!));
  opt.apply(grads, model.trainable);
  held.push(...model.trainable.map((v) => tf.clone(v)));
  const out = await Promise.all(held.map(async (t) => Array.from(await t.data())));
  tf.dispose([x, ...held, ...Object.values(grads)]);
  model.dispose();
  opt.dispose();
  return out;
}
