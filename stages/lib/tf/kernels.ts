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
// On host-memory backends, convolutions with fewer output pixels than output channels become
// matrix products instead, all three directions (conv-matmul.ts), and AvgPoolGrad is one host pass.
import * as tf from '@tensorflow/tfjs-core';
import { backend_util, type KernelBackend, type TensorInfo } from '@tensorflow/tfjs-core';
import { allocHost, readHost } from './host-data.ts';
import { avgPoolGradOnHost, type AvgPoolGradAttrs } from './avg-pool-grad.ts';
import { conv2dBackpropFilterViaMatMul, conv2dBackpropInputViaMatMul, conv2dViaMatMul, geometry, preferMatMul, transpose2d } from './conv-matmul.ts';

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
export function conv2dBackpropInputViaForward(dy: TensorInfo, filter: TensorInfo, attrs: BackpropInputAttrs, run: Run, dispose: (t: TensorInfo) => void, rotate?: (filter: TensorInfo) => TensorInfo): TensorInfo | undefined {
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
    const wt = keep(rotate ? rotate(filter) : run('Transpose', { x: keep(run('Reverse', { x: filter }, { dims: [0, 1] })) }, { perm: [0, 1, 3, 2] }));
    return run('Conv2D', { x: dyp, filter: wt }, { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [1, 1] });
  } finally {
    temps.forEach(dispose);
  }
}

/**
 * The filter rotated 180 degrees with in/out channels swapped ([kh, kw, ci, co] -> [kh, kw, co, ci],
 * spatially reversed), in one blocked pass on the host. For backends whose data lives in host memory
 * (WASM, plain JS): their Reverse and Transpose kernels cost 30-60 ns an element, over a second a step
 * on CNN14's 80 M weights; reversing both spatial axes is reversing the flat kh*kw index.
 */
export function rotateFilterOnHost(filter: TensorInfo, backend: KernelBackend): TensorInfo {
  const [kh, kw, ci, co] = filter.shape as [number, number, number, number];
  const { info, data: out } = allocHost([kh, kw, co, ci], backend);
  const src = readHost(filter, backend);
  const taps = kh * kw;
  for (let p = 0; p < taps; p++) transpose2d(src, p * ci * co, ci, co, out, (taps - 1 - p) * ci * co);
  return info;
}

const registered = new Set<string>();

type KernelFunc = tf.KernelConfig['kernelFunc'];

/** Replaces a backend's kernel, keeping the original for the cases ours leaves to it. */
function replaceKernel(kernelName: string, backendName: string, make: (original: KernelFunc | undefined) => KernelFunc): void {
  const original = (tf.getKernel(kernelName, backendName) as tf.KernelConfig | undefined)?.kernelFunc;
  if (original) tf.unregisterKernel(kernelName, backendName);
  tf.registerKernel({ kernelName, backendName, kernelFunc: make(original) });
}

/** Registers (or replaces) this project's kernels for a backend; idempotent. */
export function registerTrainingKernels(backendName: string): void {
  if (backendName === 'tensorflow' || registered.has(backendName)) return; // native TF has its own
  registered.add(backendName);
  const kernelOf = (name: string) => {
    const k = tf.getKernel(name, backendName);
    if (!k) throw new Error(`backend ${backendName} has no ${name} kernel`);
    return k.kernelFunc;
  };
  // Ours call the backend's own forward convolution, whatever replaces Conv2D below.
  const conv2d = kernelOf('Conv2D');
  const runOn = (backend: unknown): Run => (k, i, a) => (k === 'Conv2D' ? conv2d : kernelOf(k))({ inputs: i, backend: backend as KernelBackend, attrs: a as never }) as TensorInfo;
  const disposeOn = (backend: unknown) => (t: TensorInfo) => (backend as KernelBackend).disposeData(t.dataId);
  const hostMemory = backendName === 'wasm' || backendName === 'cpu';
  // Few pixels, many weights: a matrix product instead (conv-matmul.ts), where data is in host memory.
  const matMulGeometry = (xShape: number[], filterShape: number[], attrs: Record<string, unknown>) => {
    if (!hostMemory || attrs.dataFormat === 'NCHW') return undefined;
    const g = geometry(xShape, filterShape, attrs.strides, attrs.pad, attrs.dilations ?? 1, attrs.dimRoundingMode);
    return g && preferMatMul(g) ? g : undefined;
  };
  if (hostMemory) {
    replaceKernel('Conv2D', backendName, (original) => (args) => {
      const { x, filter } = args.inputs as { x: TensorInfo; filter: TensorInfo };
      const g = matMulGeometry(x.shape, filter.shape, args.attrs as Record<string, unknown>);
      return g ? conv2dViaMatMul(x, filter, g, runOn(args.backend), args.backend as KernelBackend) : original!(args);
    });
    replaceKernel('AvgPoolGrad', backendName, (original) => (args) => {
      const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
      return avgPoolGradOnHost(dy, input, args.attrs as unknown as AvgPoolGradAttrs, args.backend as KernelBackend) ?? original!(args);
    });
  }
  replaceKernel('Conv2DBackpropFilter', backendName, () => ({ inputs, backend, attrs }) => {
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    const a = attrs as unknown as BackpropFilterAttrs;
    const g = matMulGeometry(x.shape, a.filterShape, a as unknown as Record<string, unknown>);
    if (g) return conv2dBackpropFilterViaMatMul(x, dy, g, runOn(backend), backend as KernelBackend);
    return conv2dBackpropFilterViaForward(x, dy, a, runOn(backend), disposeOn(backend));
  });
  // The WASM backend's own Conv2DBackpropInput is its slowest kernel in a training step.
  replaceKernel('Conv2DBackpropInput', backendName, (original) => (args) => {
    const { inputs, backend, attrs } = args;
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    const a = attrs as unknown as BackpropInputAttrs;
    const g = matMulGeometry(a.inputShape, filter.shape, a as unknown as Record<string, unknown>);
    if (g) return conv2dBackpropInputViaMatMul(dy, filter, g, runOn(backend), backend as KernelBackend);
    const rotate = hostMemory ? (f: TensorInfo) => rotateFilterOnHost(f, backend as KernelBackend) : undefined;
    const viaForward = conv2dBackpropInputViaForward(dy, filter, a, runOn(backend), disposeOn(backend), rotate);
    if (viaForward) return viaForward;
    if (!original) throw new Error(`backend ${backendName} has no Conv2DBackpropInput kernel for strides ${JSON.stringify(a.strides)}`);
    return original(args);
  });
}
