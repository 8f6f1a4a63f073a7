// Backbones against PyTorch built from the same description (test/reference/models_reference.py;
// ResNet14 from torchvision's ResNet, as the RRTN authors build it): parameter counts at full size,
// and a forward pass with shared weights within 1e-4 relative.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { startBackend } from '../stages/lib/tf/backend.ts';
import { Model, type Backbone } from '../stages/lib/tf/models.ts';
import { ROOT } from './helpers/workspace.ts';
import { Random } from '../src/random.ts';

const f = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'models.json'), 'utf8'));

test('parameter counts match PyTorch for the small CNN, CNN6, CNN10, CNN14 and the RRTN authors\' ResNet14 (torchvision)', async () => {
  await startBackend('cpu');
  for (const [backbone, count] of Object.entries(f.params) as Array<[Backbone, number]>) {
    const m = new Model({ backbone, mels: 64, outputs: 10 }, 0);
    assert.equal(m.parameterCount(), count, `${backbone}: ours ${m.parameterCount()} vs torch ${count}`);
    m.dispose();
  }
});

for (const c of f.cases as Array<{ backbone: Backbone; channels: number[]; mels: number; x: number[]; x_shape: number[]; weights: Record<string, { shape: number[]; data: number[] }>; embedding: number[]; output: number[] }>) {
  test(`forward pass matches PyTorch within 1e-4 relative: ${c.backbone} (channels ${c.channels.join('/')}, input ${c.x_shape.slice(1, 3).join('x')})`, async () => {
    await startBackend('cpu');
    const m = new Model({ backbone: c.backbone, mels: c.mels, outputs: 10, channels: c.channels }, 0);
    const names = [...m.variables.keys()];
    assert.deepEqual(names.sort(), Object.keys(c.weights).sort(), 'same variables');
    let offset = 0;
    const manifest = names.map((name) => {
      const e = { name, shape: c.weights[name]!.shape, offset };
      offset += c.weights[name]!.data.length;
      return e;
    });
    const data = new Float32Array(offset);
    for (const e of manifest) data.set(c.weights[e.name]!.data, e.offset);
    m.importWeights(manifest, data);
    const { embedding, output } = tf.tidy(() => {
      const r = m.forward(tf.tensor4d(c.x, c.x_shape as [number, number, number, number]), false);
      return { embedding: r.embedding.dataSync(), output: r.output.dataSync() };
    });
    const rel = (a: ArrayLike<number>, b: number[]) => Math.max(...b.map((v, i) => Math.abs(a[i]! - v))) / Math.max(1e-6, ...b.map(Math.abs));
    assert.ok(rel(embedding, c.embedding) < 1e-4, `embedding: ${rel(embedding, c.embedding)}`);
    assert.ok(rel(output, c.output) < 1e-4, `output: ${rel(output, c.output)}`);
    m.dispose();
  });
}

test('head dropout: 0.5 before fc1 by default (PANNs), none when asked (the RRTN authors\' CNN14)', async () => {
  await startBackend('cpu');
  const x = tf.randomNormal([4, 32, 16, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
  const out = (headDropout: number | undefined, seed: number) => {
    const m = new Model({ backbone: 'cnn6', mels: 16, outputs: 3, channels: [4, 4, 4, 4], dropout: 0, ...(headDropout === undefined ? {} : { headDropout }) }, 1);
    const y = Array.from(m.forward(x, true, new Random(seed)).output.dataSync());
    m.dispose();
    return y;
  };
  assert.deepEqual(out(0, 1), out(0, 2), 'no dropout anywhere: the random stream does not matter');
  assert.notDeepEqual(out(undefined, 1), out(undefined, 2), 'the default drops units before fc1');
  assert.notDeepEqual(out(0.5, 1), out(0.5, 2));
});

test('BatchNorm running statistics move with a training pass unless told not to (bnStats: clean keeps the distorted view out)', async () => {
  await startBackend('cpu');
  const m = new Model({ backbone: 'small', mels: 16, outputs: 3, channels: [4, 4, 4, 4] }, 1);
  const stats = () => [...m.variables].filter(([n]) => /running|mean|variance/.test(n)).map(([, v]) => Array.from(v.dataSync()));
  const x = tf.randomNormal([4, 32, 16, 1], 0, 1, 'float32', 5) as tf.Tensor4D;
  const before = stats();
  assert.ok(before.length > 0, 'the model has running statistics');
  m.updateStats = false;
  const frozen = m.forward(x, true).output.dataSync();
  assert.deepEqual(stats(), before, 'no update');
  m.updateStats = true;
  const moving = m.forward(x, true).output.dataSync();
  assert.notDeepEqual(stats(), before, 'updated');
  assert.deepEqual(Array.from(frozen), Array.from(moving), 'the pass itself normalises by batch statistics either way');
  m.dispose();
});
