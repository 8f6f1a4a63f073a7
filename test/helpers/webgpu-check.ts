// Child process of test/tf-webgpu.test.ts: runs the given cases on the WebGPU backend (Dawn on
// lavapipe, set up by the parent's environment) and prints what it computed as JSON.
import * as tf from '@tensorflow/tfjs-core';
import { readFileSync } from 'node:fs';
import { startBackend } from '../../stages/lib/tf/backend.ts';
import { computeCases, type CheckInput } from './webgpu-cases.ts';

const choice = await startBackend('webgpu');
const input = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as CheckInput;
const out = { backend: tf.getBackend(), summary: choice.summary, results: tf.getBackend() === 'webgpu' ? await computeCases(input) : [] };
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0); // Dawn's device keeps the event loop alive
