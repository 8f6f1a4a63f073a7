// The WebGPU backend without a GPU: Dawn on Mesa's lavapipe (a CPU Vulkan driver), admitted by a
// small Vulkan layer built here (test/helpers/lavapipe-layer; lavapipe 22.3 does not advertise two
// image-array features Dawn insists on and WebGPU compute never uses). What runs on WebGPU in a
// child process (this project's convolution kernels, a small CNN's loss, gradients and a FusedAdamW
// step) must agree with the WASM backend within 1e-4 relative. Needs gcc, libvulkan-dev and
// mesa-vulkan-drivers (`npm test` installs them as root: test/helpers/provision.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Random } from '../src/random.ts';
import { startBackend } from '../stages/lib/tf/backend.ts';
import { computeCases, type CheckInput, type ConvCase } from './helpers/webgpu-cases.ts';
import { relErr } from './helpers/compare.ts';
import { lavapipeEnv } from './helpers/lavapipe.ts';
import { NEEDS, needs } from './helpers/provision.ts';

const ROOT = join(import.meta.dirname, '..');

function inputs(): CheckInput {
  const rng = new Random(23);
  const normal = (n: number) => Array.from({ length: n }, () => rng.normal());
  const shapes: Array<Pick<ConvCase, 'x' | 'k' | 'co' | 'strides' | 'pad'>> = [
    { x: [2, 9, 7, 3], k: [3, 3], co: 4, strides: [1, 1], pad: 'same' },
    { x: [2, 9, 7, 3], k: [3, 3], co: 4, strides: [2, 2], pad: 'same' },
    { x: [1, 6, 5, 4], k: [1, 1], co: 6, strides: [1, 1], pad: 'valid' },
    { x: [1, 2, 3, 5], k: [3, 3], co: 12, strides: [1, 1], pad: 'same' }, // matrix products on WASM
  ];
  const convs = shapes.map((s) => {
    const dyShape: number[] = tf.tidy(() => tf.conv2d(tf.zeros(s.x) as tf.Tensor4D, tf.zeros([s.k[0], s.k[1], s.x[3]!, s.co]) as tf.Tensor4D, s.strides, s.pad).shape);
    const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
    return { ...s, xs: normal(size(s.x)), dy: normal(size(dyShape)), dyShape, w: normal(s.k[0] * s.k[1] * s.x[3]! * s.co) };
  });
  return { convs, batch: normal(4 * 32 * 16) };
}

test('WebGPU (Dawn on lavapipe): convolution kernels and a FusedAdamW training step agree with WASM within 1e-4 relative', needs('webgpu'), async () => {
  assert.ok(NEEDS.webgpu.present(), `no lavapipe Vulkan driver, Vulkan headers or gcc: apt-get install ${NEEDS.webgpu.packages.join(' ')}`);
  const dir = mkdtempSync(join(tmpdir(), 'webgpu-check-'));
  try {
    const input = inputs();
    writeFileSync(join(dir, 'input.json'), JSON.stringify(input));
    const child = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'helpers', 'webgpu-check.ts'), join(dir, 'input.json')], {
      encoding: 'utf8',
      timeout: 240_000,
      maxBuffer: 64 << 20,
      env: { ...process.env, ...lavapipeEnv() },
    });
    assert.equal(child.status, 0, child.stderr);
    const got = JSON.parse(child.stdout.trim().split('\n').pop()!) as { backend: string; summary: string; results: number[][] };
    assert.equal(got.backend, 'webgpu', got.summary);
    await startBackend('wasm');
    const expected = await computeCases(input);
    assert.equal(got.results.length, expected.length);
    const labels = [...input.convs.flatMap((c) => ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'Conv2D'].map((k) => `${k} ${JSON.stringify({ x: c.x, k: c.k, co: c.co, strides: c.strides, pad: c.pad })}`)), 'loss'];
    expected.forEach((e, i) => {
      const err = relErr(got.results[i]!, e);
      assert.ok(err < 1e-4, `${labels[i] ?? `model output ${i - labels.length} (gradients, then weights after FusedAdamW)`}: relative error ${err}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
