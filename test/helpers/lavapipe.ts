// Dawn on Mesa's lavapipe (a CPU Vulkan driver) for tests: the small Vulkan layer that admits it
// (lavapipe-layer/) is built once per process into a temp folder, and the environment that selects
// it is returned (and, with `use`, set on this process before Dawn first starts).
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAVAPIPE_ICD } from './provision.ts';
import { ROOT } from './workspace.ts';

let built: Record<string, string> | undefined;

/** The environment variables that make Dawn use lavapipe (the layer built on first call; removed at exit). */
export function lavapipeEnv(): Record<string, string> {
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), 'lavapipe-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const layer = join(ROOT, 'test', 'helpers', 'lavapipe-layer');
  const cc = spawnSync('gcc', ['-shared', '-fPIC', '-O2', '-fvisibility=hidden', '-o', join(dir, 'liblavapipe_compute.so'), join(layer, 'layer.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`building the Vulkan layer failed (needs gcc and libvulkan-dev): ${cc.error?.message ?? cc.stderr}`);
  copyFileSync(join(layer, 'layer.json'), join(dir, 'layer.json'));
  built = { VK_LAYER_PATH: dir, VK_INSTANCE_LAYERS: 'VK_LAYER_RRTN_lavapipe_compute', VK_DRIVER_FILES: LAVAPIPE_ICD, XDG_RUNTIME_DIR: dir };
  return built;
}

/** Sets the lavapipe environment on this process (before the first WebGPU device is opened). */
export function useLavapipe(): void {
  Object.assign(process.env, lavapipeEnv());
}
