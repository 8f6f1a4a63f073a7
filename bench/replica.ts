// The benchmark's data-parallel replica: worker entry and the loss every replica shares.
import * as tf from '@tensorflow/tfjs-core';
import { parentPort, workerData } from 'node:worker_threads';
import { serveReplica, type LossFn } from '../stages/lib/tf/data-parallel.ts';

/** The benchmark's loss: the mean output (its cost is negligible next to the network's). */
export const meanOutput: LossFn = (model, x) => tf.mean(model.forward(x, true).output) as tf.Scalar;

await serveReplica(workerData, parentPort, meanOutput);
