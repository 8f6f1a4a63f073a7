// Backend choice on this kind of machine: no native TensorFlow (its install script cannot fetch
// libtensorflow), no GPU adapter, so WASM, with the reasons said in one line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { startBackend } from '../stages/lib/tf/backend.ts';

test('auto picks the fastest backend that starts, checks it really runs, and says why the others did not', async () => {
  const choice = await startBackend('auto');
  assert.equal(tf.getBackend(), choice.name);
  const skipped = new Map(choice.skipped.map((s) => [s.name, s.why]));
  // Whatever this machine has, every faster backend than the chosen one is listed with a reason.
  const order = ['tensorflow', 'webgpu', 'wasm', 'cpu'];
  for (const name of order.slice(0, order.indexOf(choice.name))) assert.ok(skipped.get(name as never), `${name} skipped with a reason`);
  assert.match(choice.summary, new RegExp(`^backend ${choice.name}`));
  if (choice.name === 'wasm') assert.match(choice.summary, /tensorflow: .+; webgpu: .+/);
  // A forced choice: cpu starts, and tfjs really runs on it.
  const cpu = await startBackend('cpu');
  assert.equal(cpu.name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.equal(tf.tidy(() => tf.add(tf.scalar(2), tf.scalar(3)).dataSync()[0]), 5);
});
