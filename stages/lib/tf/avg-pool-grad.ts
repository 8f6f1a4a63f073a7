// AvgPoolGrad on host-memory backends (WASM, plain JS): each output gradient spread evenly over its
// window, in one pass. tfjs's plain-JS kernel took 29 s of an 80 s small-CNN step (B=32).
import { backend_util, type KernelBackend, type TensorInfo } from '@tensorflow/tfjs-core';
import { allocHost, readHost } from './host-data.ts';

export interface AvgPoolGradAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** dx for a 2-D average pool without padding; undefined where the pool pads (the backend's own runs). */
export function avgPoolGradOnHost(dy: TensorInfo, input: TensorInfo, attrs: AvgPoolGradAttrs, backend: KernelBackend): TensorInfo | undefined {
  const info = backend_util.computePool2DInfo(input.shape as [number, number, number, number], attrs.filterSize, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
  const { top, bottom, left, right } = info.padInfo;
  if (top || bottom || left || right) return undefined;
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: ho, outWidth: wo, filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
  const out = allocHost([n, h, w, c], backend);
  const dx = out.data;
  const g = readHost(dy, backend); // after the allocation: the heap may have moved
  dx.fill(0);
  const scale = 1 / (fh * fw);
  for (let b = 0; b < n; b++) {
    for (let oh = 0; oh < ho; oh++) {
      for (let ow = 0; ow < wo; ow++) {
        const from = ((b * ho + oh) * wo + ow) * c;
        for (let i = 0; i < fh; i++) {
          for (let j = 0; j < fw; j++) {
            const to = ((b * h + oh * sh + i) * w + ow * sw + j) * c;
            for (let k = 0; k < c; k++) dx[to + k] += g[from + k]! * scale;
          }
        }
      }
    }
  }
  return out.info;
}
