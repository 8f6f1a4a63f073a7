// This project's convolution kernels (gradients as forward convolutions on transposed or rotated
// tensors; few-pixel convolutions as matrix products in all three directions) against
// TensorFlow.js's own kernels, on random shapes, strides and paddings: within 1e-4 relative.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Random } from '../src/random.ts';
import { registerTrainingKernels } from '../stages/lib/tf/kernels.ts';
import { geometry, preferMatMul } from '../stages/lib/tf/conv-matmul.ts';
import { startBackend } from '../stages/lib/tf/backend.ts';
import { relErr } from './helpers/compare.ts';

interface Case {
  x: [number, number, number, number];
  k: [number, number];
  co: number;
  strides: [number, number];
  /** A number: that many rows and columns on every side (torch's padding; the ResNet14 stem and stride-2 blocks). */
  pad: 'same' | 'valid' | number;
}

// tfjs's own plain-JS AvgPoolGrad, kept before registerTrainingKernels replaces it.
const tfjsAvgPoolGrad = tf.getKernel('AvgPoolGrad', 'cpu').kernelFunc;

const rng = new Random(11);
const cases: Case[] = [
  { x: [2, 9, 7, 3], k: [3, 3], co: 4, strides: [1, 1], pad: 'same' },
  { x: [2, 9, 7, 3], k: [3, 3], co: 4, strides: [2, 2], pad: 'same' },
  { x: [1, 10, 11, 2], k: [3, 3], co: 5, strides: [2, 1], pad: 'valid' },
  { x: [3, 8, 8, 4], k: [1, 1], co: 6, strides: [1, 1], pad: 'valid' },
  { x: [2, 13, 6, 3], k: [5, 3], co: 2, strides: [3, 2], pad: 'same' },
  { x: [2, 12, 9, 1], k: [7, 7], co: 4, strides: [2, 2], pad: 3 },
  { x: [2, 10, 7, 3], k: [3, 3], co: 4, strides: [2, 2], pad: 1 },
  { x: [1, 9, 8, 2], k: [3, 3], co: 3, strides: [1, 1], pad: 1 },
];
// Fewer output pixels than output channels: the matrix-product path on cpu and wasm (conv-matmul.ts).
const matMulCases: Case[] = [
  { x: [1, 2, 3, 5], k: [3, 3], co: 12, strides: [1, 1], pad: 'same' },
  { x: [2, 1, 2, 4], k: [3, 3], co: 16, strides: [1, 1], pad: 'same' },
  { x: [1, 3, 3, 3], k: [1, 1], co: 20, strides: [1, 1], pad: 'valid' },
  { x: [1, 4, 3, 6], k: [3, 3], co: 8, strides: [1, 1], pad: 'valid' },
  { x: [1, 3, 2, 7], k: [5, 3], co: 9, strides: [1, 1], pad: 'same' },
];
for (let i = 0; i < 6; i++) {
  const s = (1 + rng.int(3)) as 1 | 2 | 3;
  const kh = 1 + rng.int(4);
  const kw = 1 + rng.int(4);
  cases.push({ x: [1 + rng.int(3), kh + 4 + rng.int(8), kw + 4 + rng.int(8), 1 + rng.int(5)], k: [kh, kw], co: 1 + rng.int(6), strides: [s, 1 + rng.int(2)], pad: rng.float() < 0.5 ? 'same' : 'valid' });
}

cases.push(...matMulCases);

function forward(c: Case, x: Float32Array, w: Float32Array): Float32Array {
  return tf.tidy(() => tf.conv2d(tf.tensor4d(x, c.x), tf.tensor4d(w, [c.k[0], c.k[1], c.x[3], c.co]), c.strides, c.pad).dataSync() as Float32Array);
}

function backpropFilter(c: Case, x: Float32Array, dy: Float32Array, dyShape: number[]): Float32Array {
  return tf.tidy(() => {
    const out = tf.engine().runKernel('Conv2DBackpropFilter', { x: tf.tensor4d(x, c.x), dy: tf.tensor(dy, dyShape) }, { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape: [c.k[0], c.k[1], c.x[3], c.co] } as never) as tf.Tensor;
    return out.dataSync() as Float32Array;
  });
}

function backpropInput(c: Case, dy: Float32Array, dyShape: number[], w: Float32Array): Float32Array {
  return tf.tidy(() => {
    const out = tf.engine().runKernel('Conv2DBackpropInput', { dy: tf.tensor(dy, dyShape), filter: tf.tensor4d(w, [c.k[0], c.k[1], c.x[3], c.co]) }, { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', inputShape: c.x } as never) as tf.Tensor;
    return out.dataSync() as Float32Array;
  });
}

test('convolution kernels (gradients via forward convolutions, few-pixel ones as matrix products) match tfjs on cpu and wasm within 1e-4 relative', async () => {
  // The few-pixel cases do take the matrix-product path.
  for (const c of matMulCases) assert.ok(preferMatMul(geometry(c.x, [c.k[0], c.k[1], c.x[3], c.co], c.strides, c.pad)!), JSON.stringify(c));
  await tf.setBackend('cpu');
  const inputs = cases.map((c) => {
    const outShape = tf.tidy(() => tf.conv2d(tf.zeros(c.x) as tf.Tensor4D, tf.zeros([c.k[0], c.k[1], c.x[3], c.co]) as tf.Tensor4D, c.strides, c.pad).shape);
    const n = (s: number[]) => s.reduce((a, b) => a * b, 1);
    return {
      x: Float32Array.from({ length: n(c.x) }, () => rng.normal()),
      dy: Float32Array.from({ length: n(outShape) }, () => rng.normal()),
      dyShape: outShape,
      w: Float32Array.from({ length: c.k[0] * c.k[1] * c.x[3] * c.co }, () => rng.normal()),
    };
  });
  // tfjs's own cpu kernels, before ours replace them.
  const reference = cases.map((c, i) => backpropFilter(c, inputs[i]!.x, inputs[i]!.dy, inputs[i]!.dyShape));
  const referenceDx = cases.map((c, i) => backpropInput(c, inputs[i]!.dy, inputs[i]!.dyShape, inputs[i]!.w));
  const referenceY = cases.map((c, i) => forward(c, inputs[i]!.x, inputs[i]!.w));
  const check = (label: string) =>
    cases.forEach((c, i) => {
      const e = relErr(backpropFilter(c, inputs[i]!.x, inputs[i]!.dy, inputs[i]!.dyShape), reference[i]!);
      assert.ok(e < 1e-4, `${label} Conv2DBackpropFilter case ${i} ${JSON.stringify(c)}: relative error ${e}`);
      const ex = relErr(backpropInput(c, inputs[i]!.dy, inputs[i]!.dyShape, inputs[i]!.w), referenceDx[i]!);
      assert.ok(ex < 1e-4, `${label} Conv2DBackpropInput case ${i} ${JSON.stringify(c)}: relative error ${ex}`);
      // Forward: ours only replaces the few-pixel cases; the rest is the backend's own kernel (and
      // tfjs-wasm's own is wrong for some uneven strides, e.g. [3, 2] 'same' on one channel: all zeros).
      if (!matMulCases.includes(c)) return;
      const ey = relErr(forward(c, inputs[i]!.x, inputs[i]!.w), referenceY[i]!);
      assert.ok(ey < 1e-4, `${label} Conv2D case ${i} ${JSON.stringify(c)}: relative error ${ey}`);
    });
  registerTrainingKernels('cpu');
  check('cpu');
  const choice = await startBackend('wasm');
  assert.equal(choice.name, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  check('wasm');
});

test('a training step through tf.grads works on wasm (no missing gradient kernel) and leaks no tensors', async () => {
  await startBackend('wasm');
  const w = tf.variable(tf.randomNormal([3, 3, 2, 4], 0, 0.1, 'float32', 1));
  const x = tf.randomNormal([2, 8, 8, 2], 0, 1, 'float32', 2) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.relu(tf.conv2d(x, w as tf.Tensor4D, 1, 'same'))) as tf.Scalar);
    assert.ok(Number.isFinite(value.dataSync()[0]!), "Number.isFinite(value.dataSync()[0]!)");
    assert.deepEqual(grads[w.name]!.shape, [3, 3, 2, 4]);
    tf.dispose([value, ...Object.values(grads)]);
  }
  assert.equal(tf.memory().numTensors, before);
});

test('AvgPoolGrad in one host pass matches tfjs on cpu and wasm within 1e-5 relative (padded pools left to tfjs)', async () => {
  const pools: Array<{ x: [number, number, number, number]; f: [number, number]; s: [number, number]; pad: 'valid' | 'same' }> = [
    { x: [2, 8, 6, 3], f: [2, 2], s: [2, 2], pad: 'valid' }, // the backbones' pool
    { x: [1, 9, 7, 2], f: [3, 3], s: [2, 2], pad: 'valid' }, // overlapping windows, odd sizes
    { x: [3, 5, 8, 4], f: [2, 3], s: [1, 3], pad: 'valid' },
    { x: [1, 7, 5, 2], f: [3, 2], s: [2, 2], pad: 'same' }, // padded: tfjs's own kernel
  ];
  const cpu = tf.findBackend('cpu')!;
  const data = pools.map((p) => {
    const outShape = tf.tidy(() => tf.avgPool(tf.zeros(p.x) as tf.Tensor4D, p.f, p.s, p.pad).shape);
    return { input: tf.randomNormal(p.x, 0, 1, 'float32', 5), dy: tf.randomNormal(outShape, 0, 1, 'float32', 6) };
  });
  await tf.setBackend('cpu');
  const reference = pools.map((p, i) => {
    const out = tfjsAvgPoolGrad({ inputs: { dy: data[i]!.dy, input: data[i]!.input }, backend: cpu, attrs: { filterSize: p.f, strides: p.s, pad: p.pad } as never }) as tf.TensorInfo;
    return tf.engine().makeTensorFromTensorInfo(out).dataSync() as Float32Array;
  });
  const values = data.map((d) => ({ input: d.input.dataSync() as Float32Array, dy: d.dy.dataSync() as Float32Array, dyShape: d.dy.shape }));
  for (const backend of ['cpu', 'wasm'] as const) {
    await startBackend(backend);
    pools.forEach((p, i) => {
      const got = tf.tidy(() => (tf.engine().runKernel('AvgPoolGrad', { dy: tf.tensor(values[i]!.dy, values[i]!.dyShape), input: tf.tensor4d(values[i]!.input, p.x) }, { filterSize: p.f, strides: p.s, pad: p.pad } as never) as tf.Tensor).dataSync() as Float32Array);
      const e = relErr(got, reference[i]!);
      assert.ok(e < 1e-5, `${backend} AvgPoolGrad ${JSON.stringify(p)}: relative error ${e}`);
    });
  }
});
