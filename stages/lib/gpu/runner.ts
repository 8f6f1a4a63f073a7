// A fixed list of compute dispatches on one device: buffers, pipelines and bind groups are made once
// (pipelines cached by their WGSL text), and each run encodes the whole list into one compute pass
// of one command buffer and submits it once. What the host does per run is therefore a few
// microseconds per dispatch (Dawn's own cost), not the per-op bookkeeping of a tensor library.
/// <reference types="@webgpu/types" />
import type { Gpu } from './device.ts';

/** A WGSL kernel: its source (entry point `main`) and the buffers it binds, in binding order. */
export interface KernelSource {
  name: string;
  code: string;
  /** Workgroups to dispatch (x, y, z). */
  groups: [number, number, number];
  /** Floating-point operations one dispatch does (for achieved TFLOP/s), when known. */
  flops?: number;
}

export interface Dispatch {
  name: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  groups: [number, number, number];
  flops: number;
}

/** WebGPU's cap on workgroups per dimension. */
export const MAX_GROUPS = 65535;

/** Workgroups for `count` items of `per` each, folded into (x, y) when x alone would exceed the cap. */
export function groupsFor(count: number, per: number, z = 1): [number, number, number] {
  const n = Math.max(1, Math.ceil(count / per));
  if (n <= MAX_GROUPS) return [n, 1, z];
  return [MAX_GROUPS, Math.ceil(n / MAX_GROUPS), z];
}

export class Runner {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  readonly buffers: GPUBuffer[] = [];
  private bytes = 0;

  constructor(readonly gpu: Gpu) {}

  get device(): GPUDevice {
    return this.gpu.device;
  }

  /** Bytes of GPU memory this runner allocated. */
  get allocated(): number {
    return this.bytes;
  }

  /** A storage buffer of `floats` 32-bit values (zeroed), optionally filled with `data`. */
  buffer(floats: number, data?: Float32Array | Uint32Array): GPUBuffer {
    const size = Math.max(16, Math.ceil((floats * 4) / 16) * 16);
    if (size > this.gpu.limits.storageBinding) throw new Error(`a buffer of ${size} bytes is over this adapter's storage binding limit (${this.gpu.limits.storageBinding})`);
    const b = this.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
    this.buffers.push(b);
    this.bytes += size;
    if (data) this.write(b, data);
    return b;
  }

  /** A ring of `count` upload buffers of `floats` values each (see StagingRing); destroyed with the runner. */
  stagingRing(floats: number, count: number): StagingRing {
    const ring = new StagingRing(this.device, floats, count);
    this.buffers.push(...ring.buffers);
    return ring;
  }

  /** A one-off write (weights, moments): Dawn stages it. Per-step uploads go through a StagingRing. */
  write(b: GPUBuffer, data: Float32Array | Uint32Array, offsetFloats = 0): void {
    this.device.queue.writeBuffer(b, offsetFloats * 4, data.buffer, data.byteOffset, data.byteLength);
  }

  /**
   * The pipeline for a WGSL source (compiled once per text). Its layout is made from the storage
   * bindings the source declares, not inferred ('auto' drops a binding the code happens not to
   * use, and a bind group naming it would then be refused).
   */
  pipeline(code: string, name: string): GPUComputePipeline {
    let p = this.pipelines.get(code);
    if (!p) {
      const entries = [...code.matchAll(/@binding\((\d+)\) var<storage, (read|read_write)>/g)].map((m) => ({
        binding: Number(m[1]),
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: (m[2] === 'read' ? 'read-only-storage' : 'storage') as GPUBufferBindingType },
      }));
      const layout = this.device.createPipelineLayout({ bindGroupLayouts: [this.device.createBindGroupLayout({ entries, label: name })] });
      const module = this.device.createShaderModule({ code, label: name });
      p = this.device.createComputePipeline({ layout, compute: { module, entryPoint: 'main' }, label: name });
      this.pipelines.set(code, p);
    }
    return p;
  }

  /** Distinct pipelines compiled so far. */
  get pipelineCount(): number {
    return this.pipelines.size;
  }

  /** One dispatch of `k` over `buffers` (bound 0, 1, ... in order). */
  dispatch(k: KernelSource, buffers: GPUBuffer[]): Dispatch {
    const pipeline = this.pipeline(k.code, k.name);
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })), label: k.name });
    return { name: k.name, pipeline, bindGroup, groups: k.groups, flops: k.flops ?? 0 };
  }

  /** Encodes `list` into one compute pass of `encoder`. */
  encode(encoder: GPUCommandEncoder, list: Dispatch[]): void {
    const pass = encoder.beginComputePass();
    for (const d of list) {
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.groups[0], d.groups[1], d.groups[2]);
    }
    pass.end();
  }

  /** Encodes and submits `list` as one command buffer. */
  submit(list: Dispatch[]): void {
    const enc = this.device.createCommandEncoder();
    this.encode(enc, list);
    this.device.queue.submit([enc.finish()]);
  }

  /** Reads `floats` values of a buffer back (waits for the GPU). */
  async read(b: GPUBuffer, floats: number, offsetFloats = 0): Promise<Float32Array> {
    const bytes = Math.ceil((floats * 4) / 4) * 4;
    const staging = this.device.createBuffer({ size: Math.max(16, bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(b, offsetFloats * 4, staging, 0, bytes);
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0, floats * 4));
    staging.unmap();
    staging.destroy();
    return out;
  }

  /**
   * GPU time of each dispatch of `list` (ms), each in a pass of its own with timestamps; undefined
   * where the adapter has no timestamp queries.
   */
  async time(list: Dispatch[]): Promise<number[] | undefined> {
    if (!this.gpu.timestamps) return undefined;
    const out: number[] = [];
    for (let at = 0; at < list.length; at += 2048) {
      const chunk = list.slice(at, at + 2048);
      const querySet = this.device.createQuerySet({ type: 'timestamp', count: chunk.length * 2 });
      const resolve = this.device.createBuffer({ size: chunk.length * 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
      const staging = this.device.createBuffer({ size: chunk.length * 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const enc = this.device.createCommandEncoder();
      chunk.forEach((d, i) => {
        const pass = enc.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
        pass.setPipeline(d.pipeline);
        pass.setBindGroup(0, d.bindGroup);
        pass.dispatchWorkgroups(d.groups[0], d.groups[1], d.groups[2]);
        pass.end();
      });
      enc.resolveQuerySet(querySet, 0, chunk.length * 2, resolve, 0);
      enc.copyBufferToBuffer(resolve, 0, staging, 0, chunk.length * 16);
      this.device.queue.submit([enc.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const ts = new BigUint64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      for (let i = 0; i < chunk.length; i++) out.push(Number(ts[2 * i + 1]! - ts[2 * i]!) / 1e6);
      for (const x of [querySet, resolve, staging]) x.destroy();
    }
    return out;
  }

  destroy(): void {
    for (const b of this.buffers) b.destroy();
    this.buffers.length = 0;
    this.bytes = 0;
  }
}

/**
 * Per-step uploads through buffers the host writes while they are mapped, used in turn: a slot is
 * filled, unmapped, copied from by the command buffer that needs it, and mapped again for writing,
 * which completes once that command buffer has run. With more slots than steps in flight, the host
 * fills the next batch while the GPU runs this one and never waits, and the batch is copied once
 * (queue.writeBuffer would copy it again into staging memory Dawn allocates).
 */
export class StagingRing {
  readonly buffers: GPUBuffer[];
  private readonly ready: Array<Promise<unknown>>;
  private next = 0;

  constructor(private readonly device: GPUDevice, readonly floats: number, count: number) {
    const size = Math.max(16, Math.ceil(floats / 4) * 16);
    this.buffers = Array.from({ length: count }, () => device.createBuffer({ size, usage: GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC, mappedAtCreation: true }));
    this.ready = this.buffers.map(() => Promise.resolve());
  }

  /**
   * Takes the next slot (waiting, if the GPU still reads it), has `fill` write it, then submits one
   * command buffer that `encode` fills, copying from the slot (`from`) where it needs to.
   */
  async submit(fill: (view: Float32Array) => void, encode: (encoder: GPUCommandEncoder, from: GPUBuffer) => void): Promise<void> {
    const k = this.next;
    this.next = (k + 1) % this.buffers.length;
    await this.ready[k];
    const from = this.buffers[k]!;
    fill(new Float32Array(from.getMappedRange(), 0, this.floats));
    from.unmap();
    const enc = this.device.createCommandEncoder();
    encode(enc, from);
    this.device.queue.submit([enc.finish()]);
    const mapped = from.mapAsync(GPUMapMode.WRITE);
    mapped.catch(() => undefined); // destroyed while mapping: only a later submit (which awaits it) cares
    this.ready[k] = mapped;
  }
}
