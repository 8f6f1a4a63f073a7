// A data-parallel replica for tests: worker entry, and the loss both sides share.
import * as tf from '@tensorflow/tfjs-core';
import { parentPort, workerData } from 'node:worker_threads';
import { serveReplica, type LossFn } from '../../stages/lib/tf/data-parallel.ts';

/** Mean squared error of the outputs against the targets. */
export const regressTo: LossFn = (model, x, y) => tf.mean(tf.square(tf.sub(model.forward(x, true).output, y!))) as tf.Scalar;

await serveReplica(workerData, parentPort, regressTo);
