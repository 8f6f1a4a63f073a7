// Backend choice on this kind of machine: no native TensorFlow (its install script cannot fetch
// libtensorflow), no GPU adapter, so WASM, with the reasons said in one line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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
  // Asked for by name, a backend that cannot start is an error, never a silent fallback (the
  // stage's cache key would name one backend while another ran).
  if (choice.skipped.some((s) => s.name === 'tensorflow')) {
    await assert.rejects(startBackend('tensorflow'), /backend 'tensorflow' was asked for by name and cannot start: .+use backend: auto/);
    assert.equal(tf.getBackend(), 'cpu', 'the failed request left the running backend alone');
  }
});

test('running out of the WASM heap during training is explained with what to change; other errors pass through', async () => {
  const { explainBackendFailure } = await import('../stages/lib/tf/backend.ts');
  // A real trap from a real module: a load past the end of a one-page memory.
  // (module (memory 1) (func (export "f") (result i32) i32.const 100000 i32.load))
  const bytes = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 127, 3, 2, 1, 0, 5, 3, 1, 0, 1, 7, 5, 1, 1, 102, 0, 0, 10, 11, 1, 9, 0, 65, 160, 141, 6, 40, 2, 0, 11]);
  const { instance } = await WebAssembly.instantiate(bytes);
  let trap: unknown;
  try {
    (instance.exports.f as () => number)();
  } catch (e) {
    trap = e;
  }
  assert.ok(trap instanceof WebAssembly.RuntimeError, String(trap));
  const run = { backend: 'wasm', backbone: 'cnn14', batch: 32, frames: 304 };
  const explained = explainBackendFailure(trap, run) as Error;
  assert.match(explained.message, /WASM backend ran out of memory \(memory access out of bounds\)/);
  assert.match(explained.message, /cnn14 at batch 32 x 304 frames/);
  assert.match(explained.message, /Lower 'batch' or 'crop'/);
  assert.equal(explained.cause, trap);
  assert.match((explainBackendFailure(new Error('Aborted(). Build with -sASSERTIONS for more info.'), run) as Error).message, /ran out of memory/);
  const other = new Error('no labelled Val clips');
  assert.equal(explainBackendFailure(other, run), other);
  assert.equal(explainBackendFailure(trap, { ...run, backend: 'webgpu' }), trap);
});

test("tfjs's Node banner and platform notices stay off the console", () => {
  const script = `const { startBackend } = await import(${JSON.stringify(new URL('../stages/lib/tf/backend.ts', import.meta.url).href)});
const tf = await import('@tensorflow/tfjs-core');
const choice = await startBackend('cpu');
tf.add(tf.tensor([1, 2]), tf.tensor([3, 4])).dataSync();
console.log('backend', choice.name);`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', cwd: new URL('..', import.meta.url).pathname });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(`${r.stdout}${r.stderr}`.trim(), 'backend cpu');
});
