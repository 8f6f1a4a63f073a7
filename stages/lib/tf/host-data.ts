// Direct access to tensor data on backends that keep it in host memory (the WASM heap, plain JS
// arrays), so host-side kernels and the host optimizer neither copy nor allocate fresh JavaScript
// buffers. Fresh memory is what costs on a VM: first touch of a page faults (about 300 ms per
// 75 MB on this project's machines, against 5 ms to rewrite memory already touched), while the
// WASM heap reuses pages it has touched before.
import * as tf from '@tensorflow/tfjs-core';
import type { KernelBackend, TensorInfo } from '@tensorflow/tfjs-core';

interface HeapBackend {
  typedArrayFromHeap(info: TensorInfo): Float32Array;
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
}

function heap(backend: KernelBackend): HeapBackend | undefined {
  return 'typedArrayFromHeap' in backend && 'makeOutput' in backend ? (backend as unknown as HeapBackend) : undefined;
}

/**
 * A float32 tensor's values: a view of the WASM heap, the plain-JS backend's own array, or a copy on
 * other backends. Read-only, and valid only until the backend next allocates (the heap may grow).
 */
export function readHost(t: TensorInfo, backend: KernelBackend = tf.backend()): Float32Array {
  if (t.dtype !== 'float32') throw new Error(`readHost: ${t.dtype} tensor, float32 expected`);
  return heap(backend)?.typedArrayFromHeap(t) ?? (backend.readSync(t.dataId) as Float32Array);
}

/**
 * A new float32 tensor of `shape` on the backend, and its values to fill in place (the same validity
 * rule as readHost: allocate every output first, then take views of the inputs).
 */
export function allocHost(shape: number[], backend: KernelBackend = tf.backend()): { info: TensorInfo; data: Float32Array } {
  const h = heap(backend);
  if (h) {
    const info = h.makeOutput(shape, 'float32');
    return { info, data: h.typedArrayFromHeap(info) };
  }
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  return { info: { dataId: backend.write(data, shape, 'float32'), shape, dtype: 'float32' }, data };
}
