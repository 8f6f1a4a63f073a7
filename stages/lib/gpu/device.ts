// The WebGPU device the compiled training step runs on: Dawn through the `webgpu` package (an
// optional dependency; Mesa's lavapipe stands in for a GPU in the tests). Limits are raised to what
// the adapter offers (WebGPU's defaults: 128 MiB per storage binding, 8 storage buffers per stage),
// and timestamp queries are enabled where the adapter has them, for per-kernel GPU time.
/// <reference types="@webgpu/types" />

export interface Gpu {
  device: GPUDevice;
  /** The adapter in words: vendor, architecture, device, driver. */
  adapter: string;
  /** Whether kernels can be timed on the GPU (timestamp-query). */
  timestamps: boolean;
  /** Mesa's CPU Vulkan driver: correct, not fast (timings say nothing of a GPU). */
  software: boolean;
  limits: { storageBinding: number; buffer: number; storageBuffersPerStage: number; workgroupStorage: number };
  /** Dawn's instance: held for as long as the device is used (collected, it takes the device's event loop with it). */
  instance: GPU;
}

let opened: Promise<Gpu> | undefined;

/** The process's device (opened once). Throws with a reason when there is no WebGPU adapter. */
export function openGpu(): Promise<Gpu> {
  opened ??= open();
  return opened;
}

async function open(): Promise<Gpu> {
  let webgpu: { create(flags: string[]): GPU; globals: object };
  try {
    webgpu = (await import('webgpu')) as unknown as typeof webgpu;
  } catch (e) {
    throw new Error(`the 'webgpu' package (Dawn) is not installed or cannot load: ${(e as Error).message.split('\n')[0]}`);
  }
  Object.assign(globalThis, webgpu.globals);
  // Timestamps unquantised (Dawn rounds them to 65.5 us by default).
  const gpu = webgpu.create(['disable-dawn-features=timestamp_quantization']);
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter (no GPU, or no Vulkan driver)');
  const a = adapter.limits;
  const timestamps = adapter.features.has('timestamp-query');
  const device = await adapter.requestDevice({
    requiredFeatures: timestamps ? ['timestamp-query'] : [],
    requiredLimits: {
      maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
      maxBufferSize: a.maxBufferSize,
      maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: Math.min(a.maxComputeInvocationsPerWorkgroup, 1024),
      maxComputeWorkgroupSizeX: a.maxComputeWorkgroupSizeX,
    },
  });
  const info = adapter.info as GPUAdapterInfo & { driver?: string };
  const name = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ') || 'unnamed adapter';
  return {
    instance: gpu,
    device,
    adapter: name,
    timestamps,
    software: /llvmpipe|lavapipe|swiftshader/i.test(`${name} ${info.description ?? ''}`) || !info.vendor || info.vendor === 'mesa',
    limits: { storageBinding: a.maxStorageBufferBindingSize, buffer: a.maxBufferSize, storageBuffersPerStage: a.maxStorageBuffersPerShaderStage, workgroupStorage: a.maxComputeWorkgroupStorageSize },
  };
}
