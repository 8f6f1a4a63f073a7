// Training on the WASM backend: the models learn, leak no tensors, and data-parallel replicas
// (main thread + a worker) stay identical while the loss falls.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { bundle } from '../src/bundle.js';
import { startBackend } from '../stages/lib/tf/backend.ts';
import { DataParallel } from '../stages/lib/tf/data-parallel.ts';
import { Model } from '../stages/lib/tf/models.ts';
import { AdamW } from '../stages/lib/tf/optimizers.ts';
import { ROOT } from './helpers/workspace.ts';
import { regressTo } from './helpers/replica.ts';

const SPEC = { backbone: 'small' as const, mels: 16, outputs: 2, channels: [4, 8] };

function batch(n: number, seed: number) {
  const x = new Float32Array(n * 32 * 16);
  const y = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    const a = ((i * 7 + seed) % 10) / 10;
    for (let j = 0; j < 32 * 16; j++) x[i * 512 + j] = a * Math.sin(j * 0.3) + 0.1 * Math.cos(j * (seed + 1));
    y[i * 2] = a;
    y[i * 2 + 1] = 1 - a;
  }
  return { x, y, n, frames: 32, mels: 16 };
}

// The small CNN, and the RRTN authors' ResNet14 (stride-2 convolutions with explicit padding, a max-pool, shortcuts).
for (const spec of [SPEC, { ...SPEC, backbone: 'resnet14' as const, channels: [4, 8, 8, 8] }]) test(`${spec.backbone} learns on wasm with AdamW, every trainable variable gets a gradient, and the tensor count is stable across steps`, async () => {
  const choice = await startBackend('wasm');
  assert.equal(choice.name, 'wasm');
  const model = new Model(spec, 3);
  const opt = new AdamW(3e-3, 0);
  const b = batch(16, 1);
  const x = tf.tensor4d(b.x, [16, 32, 16, 1]);
  const y = tf.tensor2d(b.y, [16, 2]);
  const losses: number[] = [];
  const counts: number[] = [];
  for (let i = 0; i < 40; i++) {
    const { value, grads } = tf.variableGrads(() => regressTo(model, x, y), model.trainable);
    if (i === 0) for (const v of model.trainable) assert.ok(tf.tidy(() => tf.max(tf.abs(grads[v.name]!)).dataSync()[0]!) > 0, `no gradient reaches ${v.name}`);
    opt.apply(grads, model.trainable);
    losses.push(value.dataSync()[0]!);
    tf.dispose([value, ...Object.values(grads)]);
    counts.push(tf.memory().numTensors);
  }
  assert.ok(losses[39]! < 0.5 * losses[0]!, `loss ${losses[0]} -> ${losses[39]}`);
  assert.equal(counts[39], counts[1], 'no tensor leak from step to step');
  tf.dispose([x, y]);
  model.dispose();
  opt.dispose();
});

test('data-parallel replicas stay identical and the loss falls', async () => {
  await startBackend('wasm');
  const dir = join(tmpdir(), `replica-${process.pid}`);
  const { files } = await bundle({ replica: join(ROOT, 'test', 'helpers', 'replica.ts') }, dir);
  const [path, bytes] = [...files][0]!;
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path, bytes);
  const dp = await DataParallel.start({ model: SPEC, seed: 5, lr: 3e-3, weightDecay: 0, backend: 'wasm' }, regressTo, 1, path);
  try {
    const b = batch(9, 2); // odd size: unequal shards
    const losses: number[] = [];
    for (let i = 0; i < 30; i++) losses.push(await dp.step(b));
    assert.ok(losses[29]! < 0.5 * losses[0]!, `loss ${losses[0]} -> ${losses[29]}`);
    const [a, w] = await dp.replicaWeights();
    a!.forEach((v, i) => assert.deepEqual(v, w![i], `variable ${i} differs between replicas`));
  } finally {
    await dp.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const kind of ['FusedAdamW', 'HostAdamW'] as const) {
  test(`${kind} makes the same updates as per-variable AdamW, and its state round-trips`, async () => {
    const optimizers = await import('../stages/lib/tf/optimizers.ts');
    const make = () => new optimizers[kind](3e-3, 0.01);
    await startBackend('wasm');
    const a = new Model(SPEC, 9);
    const b = new Model(SPEC, 9);
    const optA = new AdamW(3e-3, 0.01);
    const optB = make();
    const bt = batch(8, 4);
    const x = tf.tensor4d(bt.x, [8, 32, 16, 1]);
    const y = tf.tensor2d(bt.y, [8, 2]);
    for (let i = 0; i < 5; i++) {
      for (const [m, opt] of [[a, optA], [b, optB]] as const) {
        const { value, grads } = tf.variableGrads(() => regressTo(m, x, y), m.trainable);
        opt.apply(grads, m.trainable);
        tf.dispose([value, ...Object.values(grads)]);
      }
    }
    a.trainable.forEach((v, i) => {
      const p = v.dataSync();
      const q = b.trainable[i]!.dataSync();
      const worst = Math.max(...Array.from(p, (x, k) => Math.abs(x - q[k]!)));
      assert.ok(worst < 1e-5, `${v.name}: ${worst}`);
    });
    // Its state round-trips through a checkpoint, and matches per-variable AdamW's moments.
    const state = optB.exportState();
    const first = b.trainable[0]!.name;
    const reference = optA.exportState().moments[a.trainable[0]!.name]!;
    assert.ok(Math.max(...Array.from(state.moments[first]![1], (s, k) => Math.abs(s - reference[1][k]!))) < 1e-6, 'second moments agree');
    const c = make();
    c.importState(state, b.trainable);
    assert.deepEqual(c.exportState().moments[first]![0], state.moments[first]![0]);
    assert.equal(c.exportState().step, 5);
    tf.dispose([x, y]);
    [a, b].forEach((m) => m.dispose());
    [optA, optB, c].forEach((o) => o.dispose());
  });
}
