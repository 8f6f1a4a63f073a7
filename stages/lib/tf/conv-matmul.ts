// Convolutions with few output pixels and many weights (CNN14's last blocks: 72 pixels a replica
// against 37.7 M weights) as matrix products on host-memory backends (WASM, plain JS).
//
// Why: the WASM backend's convolution re-packs its filter whenever the filter tensor is new, which
// in training is every step (the optimizer writes new weights), at about 21 ns a weight, forward
// and again for the input gradient; its matrix product packs at about 6 ns a weight. When the
// image-to-column matrix (pixels x taps*Ci) is smaller than the filter (taps*Ci x Co), gathering
// it costs less than the packing it saves.
//   forward:      y[M, Co]   = col(x)[M, K] . W[K, Co]          (W in HWIO is already [K, Co])
//   input grad:   dx         = col2im(dy[M, Co] . W^T[Co, K])
//   filter grad:  dW[K, Co]  = col(x)^T[K, M] . dy[M, Co]
// with M = N*Ho*Wo and K = kh*kw*Ci; stride 1, dilation 1 (every convolution of our backbones).
import { backend_util, type KernelBackend, type TensorInfo } from '@tensorflow/tfjs-core';
import { allocHost, readHost } from './host-data.ts';

type RunKernel = (kernel: string, inputs: Record<string, TensorInfo>, attrs: Record<string, unknown>) => TensorInfo;

export interface ConvGeometry {
  n: number;
  h: number;
  w: number;
  ci: number;
  kh: number;
  kw: number;
  co: number;
  ho: number;
  wo: number;
  top: number;
  left: number;
}

/** The geometry of a stride-1, dilation-1 NHWC convolution, or undefined for anything else. */
export function geometry(xShape: number[], filterShape: number[], strides: unknown, pad: unknown, dilations: unknown = 1, dimRoundingMode?: unknown): ConvGeometry | undefined {
  const info = backend_util.computeConv2DInfo(xShape as [number, number, number, number], filterShape as [number, number, number, number], strides as [number, number], dilations as [number, number], pad as 'same', dimRoundingMode as 'floor' | undefined);
  if (info.strideHeight !== 1 || info.strideWidth !== 1 || info.dilationHeight !== 1 || info.dilationWidth !== 1) return undefined;
  return { n: info.batchSize, h: info.inHeight, w: info.inWidth, ci: info.inChannels, kh: info.filterHeight, kw: info.filterWidth, co: info.outChannels, ho: info.outHeight, wo: info.outWidth, top: info.padInfo.top, left: info.padInfo.left };
}

/** Worth it when the column matrix is smaller than the filter: fewer output pixels than output channels. */
export function preferMatMul(g: ConvGeometry): boolean {
  return g.n * g.ho * g.wo < g.co;
}

/** dst[c, r] = src[r, c] for an R x C block, in tiles that stay in L1 on both sides. */
export function transpose2d(src: Float32Array, srcOffset: number, rows: number, cols: number, dst: Float32Array, dstOffset: number): void {
  const T = 32;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(rows, r0 + T);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(cols, c0 + T);
      for (let r = r0; r < r1; r++) {
        const row = srcOffset + r * cols;
        for (let c = c0; c < c1; c++) dst[dstOffset + c * rows + r] = src[row + c]!;
      }
    }
  }
}

/**
 * Visits every (output pixel, tap) pair: the offset of its Ci-long run in the column matrix, and of
 * the matching run in the image, or -1 where the tap falls in the padding.
 */
function eachTap(g: ConvGeometry, visit: (colOffset: number, imageOffset: number) => void): void {
  const K = g.kh * g.kw * g.ci;
  let row = 0;
  for (let n = 0; n < g.n; n++) {
    for (let oh = 0; oh < g.ho; oh++) {
      for (let ow = 0; ow < g.wo; ow++, row++) {
        let o = row * K;
        for (let i = 0; i < g.kh; i++) {
          const ih = oh + i - g.top;
          for (let j = 0; j < g.kw; j++, o += g.ci) {
            const iw = ow + j - g.left;
            visit(o, ih < 0 || ih >= g.h || iw < 0 || iw >= g.w ? -1 : ((n * g.h + ih) * g.w + iw) * g.ci);
          }
        }
      }
    }
  }
}

/** col[(n, ho, wo), (i, j, ci)] = x[n, ho + i - top, wo + j - left, ci], zero outside the image. */
function im2col(x: Float32Array, g: ConvGeometry, col: Float32Array): void {
  eachTap(g, (o, at) => (at < 0 ? col.fill(0, o, o + g.ci) : col.set(x.subarray(at, at + g.ci), o)));
}

/** The adjoint of im2col: dx[n, ho + i - top, wo + j - left, ci] += col[(n, ho, wo), (i, j, ci)]. */
function col2im(col: Float32Array, g: ConvGeometry, dx: Float32Array): void {
  dx.fill(0);
  eachTap(g, (o, at) => {
    if (at >= 0) for (let c = 0; c < g.ci; c++) dx[at + c] += col[o + c]!;
  });
}

/** A view of the same data under another shape (for the matrix product's [1, rows, cols] operands). */
function as(t: TensorInfo, shape: number[]): TensorInfo {
  return { dataId: t.dataId, shape, dtype: t.dtype };
}

function matMul(run: RunKernel, a: TensorInfo, b: TensorInfo): TensorInfo {
  return run('BatchMatMul', { a, b }, { transposeA: false, transposeB: false });
}

export function conv2dViaMatMul(x: TensorInfo, filter: TensorInfo, g: ConvGeometry, run: RunKernel, backend: KernelBackend): TensorInfo {
  const [M, K] = [g.n * g.ho * g.wo, g.kh * g.kw * g.ci];
  const col = allocHost([1, M, K], backend);
  im2col(readHost(x, backend), g, col.data);
  try {
    return as(matMul(run, col.info, as(filter, [1, K, g.co])), [g.n, g.ho, g.wo, g.co]);
  } finally {
    backend.disposeData(col.info.dataId);
  }
}

export function conv2dBackpropInputViaMatMul(dy: TensorInfo, filter: TensorInfo, g: ConvGeometry, run: RunKernel, backend: KernelBackend): TensorInfo {
  const [M, K] = [g.n * g.ho * g.wo, g.kh * g.kw * g.ci];
  const wt = allocHost([1, g.co, K], backend);
  transpose2d(readHost(filter, backend), 0, K, g.co, wt.data, 0);
  let dcol: TensorInfo | undefined;
  try {
    dcol = matMul(run, as(dy, [1, M, g.co]), wt.info);
    const dx = allocHost([g.n, g.h, g.w, g.ci], backend);
    col2im(readHost(dcol, backend), g, dx.data); // views taken after the last allocation
    return dx.info;
  } finally {
    backend.disposeData(wt.info.dataId);
    if (dcol) backend.disposeData(dcol.dataId);
  }
}

export function conv2dBackpropFilterViaMatMul(x: TensorInfo, dy: TensorInfo, g: ConvGeometry, run: RunKernel, backend: KernelBackend): TensorInfo {
  const [M, K] = [g.n * g.ho * g.wo, g.kh * g.kw * g.ci];
  const col = allocHost([M, K], backend);
  const colT = allocHost([1, K, M], backend);
  im2col(readHost(x, backend), g, readHost(col.info, backend)); // views after both allocations
  transpose2d(readHost(col.info, backend), 0, M, K, readHost(colT.info, backend), 0);
  backend.disposeData(col.info.dataId);
  try {
    return as(matMul(run, colT.info, as(dy, [1, M, g.co])), [g.kh, g.kw, g.ci, g.co]);
  } finally {
    backend.disposeData(colT.info.dataId);
  }
}
