// Picks the fastest TensorFlow.js backend present, in this order unless asked otherwise: native
// TensorFlow (@tensorflow/tfjs-node-gpu, then @tensorflow/tfjs-node), WebGPU (Dawn's `webgpu`
// package with @tensorflow/tfjs-backend-webgpu), WASM (@tensorflow/tfjs-backend-wasm), plain JS.
// The native packages download libtensorflow in their install script, which fails where only the
// npm registry is reachable: they are optional dependencies, detected by loading them. tfjs stays on
// 'cpu' without a word when a backend fails to start, so each choice is checked with getBackend().
import * as tf from '@tensorflow/tfjs-core';
import { readdirSync } from 'node:fs';
// tfjs-core alone registers no gradients; the union package's Node build registers them all.
import '@tensorflow/tfjs';
import { registerTrainingKernels } from './kernels.ts';

// tfjs prints a banner on first use under Node ("Hi, looks like you are running TensorFlow.js in
// Node.js...") and platform notices through its warn(), which PROD turns off (in tfjs 4 the flag
// gates only these messages). The stage's log says which backend runs and why instead.
tf.env().set('PROD', true);

export type BackendName = 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export const BACKEND_ORDER: BackendName[] = ['tensorflow', 'webgpu', 'wasm', 'cpu'];

export interface BackendChoice {
  name: BackendName;
  /** One line: which backend runs and why the ones before it did not. */
  summary: string;
  /** Why each faster backend was passed over. */
  skipped: Array<{ name: BackendName; why: string }>;
}

function firstLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return (m.split('\n')[0] ?? m).slice(0, 160);
}

function hasGpuDevice(): boolean {
  try {
    return readdirSync('/dev').some((d) => d.startsWith('nvidia') || d === 'dri' || d === 'kfd');
  } catch {
    return true; // cannot tell (not Linux): let Dawn look
  }
}

async function tryStart(name: BackendName, asked: boolean): Promise<string | undefined> {
  try {
    switch (name) {
      case 'tensorflow': {
        let loaded = false;
        for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
          try {
            await import(pkg);
            loaded = true;
            break;
          } catch (e) {
            if (pkg === '@tensorflow/tfjs-node') return `neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node loads (${firstLine(e)})`;
          }
        }
        if (!loaded) return 'not installed';
        break;
      }
      case 'webgpu': {
        // Loading Dawn probes Vulkan and logs its failures where there is no GPU: look first.
        // (Asked for by name, it is tried anyway: a CPU Vulkan driver such as lavapipe has no device node.)
        if (!asked && !hasGpuDevice()) return 'no GPU device (no /dev/nvidia*, /dev/dri or /dev/kfd)';
        const webgpu = (await import('webgpu')) as unknown as { create(flags: string[]): { requestAdapter(): Promise<unknown> }; globals: object };
        Object.assign(globalThis, webgpu.globals);
        const gpu = webgpu.create([]);
        if (!(await gpu.requestAdapter())) return 'no WebGPU adapter (no GPU, or no Vulkan driver)';
        (globalThis as { navigator?: unknown }).navigator = { gpu };
        // Registers itself only if navigator.gpu exists when it is imported.
        await import('@tensorflow/tfjs-backend-webgpu');
        break;
      }
      case 'wasm':
        await import('@tensorflow/tfjs-backend-wasm');
        break;
      case 'cpu':
        await import('@tensorflow/tfjs-backend-cpu');
        break;
    }
    if (!(await tf.setBackend(name))) return 'setBackend refused it';
    await tf.ready();
    if (tf.getBackend() !== name) return `tfjs fell back to '${tf.getBackend()}'`;
    return undefined;
  } catch (e) {
    return firstLine(e);
  }
}

/**
 * Starts the backend asked for, or with 'auto' the first that works from the top, and registers
 * this project's training kernels for it.
 */
export async function startBackend(preferred: BackendName | 'auto' = 'auto'): Promise<BackendChoice> {
  // A backend asked for by name runs or is an error: falling back would run something else than
  // the stage's cache key (and the user) say.
  if (preferred !== 'auto') {
    const why = await tryStart(preferred, true);
    if (why !== undefined) throw new Error(`backend '${preferred}' was asked for by name and cannot start: ${why} (use backend: auto to take the fastest one present)`);
    registerTrainingKernels(preferred);
    return { name: preferred, summary: `backend ${preferred} (asked for by name)`, skipped: [] };
  }
  const skipped: BackendChoice['skipped'] = [];
  for (const name of BACKEND_ORDER) {
    const why = await tryStart(name, false);
    if (why === undefined) {
      registerTrainingKernels(name);
      const summary = `backend ${name}${skipped.length ? ` (${skipped.map((s) => `${s.name}: ${s.why}`).join('; ')})` : ''}`;
      return { name, summary, skipped };
    }
    skipped.push({ name, why });
  }
  throw new Error(`no TensorFlow.js backend starts: ${skipped.map((s) => `${s.name}: ${s.why}`).join('; ')}`);
}

/**
 * A clearer error for a training run that exhausted the WASM heap: tfjs-wasm fails there with a bare
 * "memory access out of bounds" or "Aborted()" (it addresses about 2 GB in practice). Other errors
 * come back unchanged.
 */
export function explainBackendFailure(e: unknown, run: { backend: string; backbone: string; batch: number; frames: number }): unknown {
  const message = e instanceof Error ? e.message : String(e);
  const outOfHeap = e instanceof WebAssembly.RuntimeError || /memory access out of bounds|^Aborted\(/.test(message);
  if (run.backend !== 'wasm' || !outOfHeap) return e;
  return new Error(
    `the WASM backend ran out of memory (${firstLine(e)}): ${run.backbone} at batch ${run.batch} x ${run.frames} frames needs more than ` +
      `the ~2 GB of heap tfjs-wasm can address. Lower 'batch' or 'crop' in the spec (CNN14 trains at batch 4 x 304 frames there), ` +
      `or run where the native TensorFlow or WebGPU backend starts.`,
    { cause: e },
  );
}
