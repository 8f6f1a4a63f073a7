// Training kernels this project registers on top of TensorFlow.js.
//
// Conv2DBackpropFilter (the weight gradient of a convolution): the WASM backend ships none (it cannot
// train a CNN at all), and the plain-JS and WebGPU ones are the slowest kernels of a training step.
// Here it is a *forward* convolution of transposed tensors, so it runs on each backend's fastest
// kernel (XNNPACK on WASM):
//   dW[i, j, ci, co] = sum over n, ho, wo of xpad[n, ho*s + i, wo*s + j, ci] * dy[n, ho, wo, co]
//   = conv_valid(input = xpad^T [Ci, Hp, Wp, N], filter = dy^T [Ho, Wo, N, Co], dilation = s)
// giving [Ci, kh', kw', Co] (cropped to kh x kw), transposed back to [kh, kw, Ci, Co].
// Conv2DBackpropInput (stride 1) likewise becomes a forward convolution with the rotated filter.
import * as tf from '@tensorflow/tfjs-core';
import { backend_util, type KernelBackend, type TensorInfo } from '@tensorflow/tfjs-core';

type Run = (kernel: string, inputs: Record<string, TensorInfo>, attrs: Record<string, unknown>) => TensorInfo;

interface ConvGradAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

interface BackpropFilterAttrs extends ConvGradAttrs {
  filterShape: [number, number, number, number];
}

export function conv2dBackpropFilterViaForward(x: TensorInfo, dy: TensorInfo, attrs: BackpropFilterAttrs, run: Run, dispose: (t: TensorInfo) => void): TensorInfo {
  if (attrs.dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter: only NHWC is supported');
  const info = backend_util.computeConv2DInfo(x.shape as [number, number, number, number], attrs.filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
  const { top, bottom, left, right } = info.padInfo;
  const [kh, kw, ci, co] = attrs.filterShape;
  const temps: TensorInfo[] = [];
  const keep = (t: TensorInfo) => (temps.push(t), t);
  try {
    const xp = top || bottom || left || right ? keep(run('PadV2', { x }, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 })) : x;
    const xt = keep(run('Transpose', { x: xp }, { perm: [3, 1, 2, 0] }));
    const dyt = keep(run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] }));
    let c = keep(run('Conv2D', { x: xt, filter: dyt }, { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [info.strideHeight, info.strideWidth] }));
    if (c.shape[1] !== kh || c.shape[2] !== kw) c = keep(run('Slice', { x: c }, { begin: [0, 0, 0, 0], size: [ci, kh, kw, co] }));
    return run('Transpose', { x: c }, { perm: [1, 2, 0, 3] });
  } finally {
    temps.forEach(dispose);
  }
}

interface BackpropInputAttrs extends ConvGradAttrs {
  inputShape: [number, number, number, number];
}

/**
 * Conv2DBackpropInput for stride 1 (every convolution of this project's backbones), as a forward
 * convolution: dx = conv_valid(pad(dy), W rotated 180 degrees with in/out channels swapped), where
 * dy is padded by (k - 1 - forward padding) on each side. Other strides return undefined (the
 * backend's own kernel runs).
 */
export function conv2dBackpropInputViaForward(dy: TensorInfo, filter: TensorInfo, attrs: BackpropInputAttrs, run: Run, dispose: (t: TensorInfo) => void): TensorInfo | undefined {
  if (attrs.dataFormat === 'NCHW') return undefined;
  const info = backend_util.computeConv2DInfo(attrs.inputShape, filter.shape as [number, number, number, number], attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
  if (info.strideHeight !== 1 || info.strideWidth !== 1) return undefined;
  const [kh, kw] = filter.shape as [number, number, number, number];
  const { top, bottom, left, right } = info.padInfo;
  const temps: TensorInfo[] = [];
  const keep = (t: TensorInfo) => (temps.push(t), t);
  try {
    const pads = [kh - 1 - top, kh - 1 - bottom, kw - 1 - left, kw - 1 - right];
    if (pads.some((p) => p < 0)) return undefined;
    const dyp = pads.some((p) => p > 0) ? keep(run('PadV2', { x: dy }, { paddings: [[0, 0], [pads[0], pads[1]], [pads[2], pads[3]], [0, 0]], constantValue: 0 })) : dy;
    const rot = keep(run('Reverse', { x: filter }, { dims: [0, 1] }));
    const wt = keep(run('Transpose', { x: rot }, { perm: [0, 1, 3, 2] }));
    return run('Conv2D', { x: dyp, filter: wt }, { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [1, 1] });
  } finally {
    temps.forEach(dispose);
  }
}

const registered = new Set<string>();

/** Registers (or replaces) this project's kernels for a backend; idempotent. */
export function registerTrainingKernels(backendName: string): void {
  if (backendName === 'tensorflow' || registered.has(backendName)) return; // native TF has its own
  registered.add(backendName);
  const kernelOf = (name: string) => {
    const k = tf.getKernel(name, backendName);
    if (!k) throw new Error(`backend ${backendName} has no ${name} kernel`);
    return k.kernelFunc;
  };
  if (tf.getKernel('Conv2DBackpropFilter', backendName)) tf.unregisterKernel('Conv2DBackpropFilter', backendName);
  tf.registerKernel({
    kernelName: 'Conv2DBackpropFilter',
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const run: Run = (k, i, a) => kernelOf(k)({ inputs: i, backend, attrs: a as never }) as TensorInfo;
      const dispose = (t: TensorInfo) => (backend as KernelBackend).disposeData(t.dataId);
      return conv2dBackpropFilterViaForward(inputs.x as TensorInfo, inputs.dy as TensorInfo, attrs as unknown as BackpropFilterAttrs, run, dispose);
    },
  });
  // The WASM backend's own Conv2DBackpropInput is its slowest kernel in a training step.
  const original = tf.getKernel('Conv2DBackpropInput', backendName);
  if (original) {
    tf.unregisterKernel('Conv2DBackpropInput', backendName);
    tf.registerKernel({
      kernelName: 'Conv2DBackpropInput',
      backendName,
      kernelFunc: (args) => {
        const { inputs, backend, attrs } = args;
        const run: Run = (k, i, a) => kernelOf(k)({ inputs: i, backend, attrs: a as never }) as TensorInfo;
        const dispose = (t: TensorInfo) => (backend as KernelBackend).disposeData(t.dataId);
        return conv2dBackpropInputViaForward(inputs.dy as TensorInfo, inputs.filter as TensorInfo, attrs as unknown as BackpropInputAttrs, run, dispose) ?? original.kernelFunc(args);
      },
    });
  }
}
