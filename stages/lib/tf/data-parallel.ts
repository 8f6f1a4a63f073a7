// Data-parallel training over worker threads. TensorFlow.js's WASM backend runs on one thread under
// Node, so the second core is reached by replicas: the main thread and each worker hold a copy of
// the model (same seed, same initial weights); each step every replica computes gradients on its
// share of the batch, the main thread averages them (weighted by share) with the batch-norm running
// statistics, and every replica applies the same AdamW update, so they stay identical.
import * as tf from '@tensorflow/tfjs-core';
import { Worker } from 'node:worker_threads';
import { startBackend, type BackendName } from './backend.ts';
import { AdamW, Model, type ModelSpec } from './models.ts';

export interface ReplicaSpec {
  model: ModelSpec;
  seed: number;
  lr: number;
  weightDecay: number;
  backend: BackendName | 'auto';
}

/** A batch: inputs [n, frames, mels, 1] row-major, and what the loss needs (targets). */
export interface Shard {
  x: Float32Array;
  n: number;
  frames: number;
  mels: number;
  y?: Float32Array;
}

/** loss(model, shard) -> scalar; must be the same function on every replica (keep it in one module). */
export type LossFn = (model: Model, x: tf.Tensor4D, y: tf.Tensor | undefined) => tf.Scalar;

/** One replica: a model, its optimizer, and the step it runs on a shard. */
export class Replica {
  readonly model: Model;
  private readonly opt: AdamW;
  private readonly runningNames: string[];

  constructor(spec: ReplicaSpec, private readonly loss: LossFn) {
    this.model = new Model(spec.model, spec.seed);
    this.opt = new AdamW(spec.lr, spec.weightDecay);
    this.runningNames = [...this.model.variables.keys()].filter((n) => n.endsWith('.running_mean') || n.endsWith('.running_var'));
  }

  /** Gradients (in trainable order) and running statistics after the forward pass, and the loss. */
  gradients(s: Shard): { grads: Float32Array[]; running: Float32Array[]; loss: number } {
    return tf.tidy(() => {
      const x = tf.tensor4d(s.x, [s.n, s.frames, s.mels, 1]);
      const y = s.y ? tf.tensor(s.y, [s.n, s.y.length / s.n]) : undefined;
      const { value, grads } = tf.variableGrads(() => this.loss(this.model, x, y), this.model.trainable);
      return {
        grads: this.model.trainable.map((v) => grads[v.name]!.dataSync() as Float32Array),
        running: this.runningNames.map((n) => this.model.variables.get(n)!.dataSync() as Float32Array),
        loss: value.dataSync()[0]!,
      };
    });
  }

  apply(grads: Float32Array[], running: Float32Array[]): void {
    const named: Record<string, tf.Tensor> = {};
    this.model.trainable.forEach((v, i) => (named[v.name] = tf.tensor(grads[i]!, v.shape)));
    this.opt.apply(named, this.model.trainable);
    tf.dispose(Object.values(named));
    this.runningNames.forEach((n, i) => {
      const v = this.model.variables.get(n)!;
      tf.tidy(() => v.assign(tf.tensor(running[i]!, v.shape)));
    });
  }

  dispose(): void {
    this.model.dispose();
    this.opt.dispose();
  }
}

interface WorkerInit {
  dataParallelReplica: true;
  spec: ReplicaSpec;
}

/**
 * Worker side: call from the top level of the module the workers run (it returns at once when this
 * thread is not a replica worker). `loss` must be the same function the main thread uses.
 */
export async function serveReplica(workerData: unknown, port: import('node:worker_threads').MessagePort | null, loss: LossFn): Promise<void> {
  const init = workerData as WorkerInit | undefined;
  if (!init?.dataParallelReplica || !port) return;
  await startBackend(init.spec.backend);
  const replica = new Replica(init.spec, loss);
  port.on('message', (m: { type: 'grads'; shard: Shard } | { type: 'apply'; grads: Float32Array[]; running: Float32Array[] } | { type: 'weights' }) => {
    if (m.type === 'grads') port.postMessage(replica.gradients(m.shard));
    else if (m.type === 'apply') replica.apply(m.grads, m.running);
    else port.postMessage(replica.model.trainable.map((v) => v.dataSync() as Float32Array));
  });
  port.postMessage('ready');
}

export class DataParallel {
  private constructor(readonly main: Replica, private readonly workers: Worker[]) {}

  /** `workers` extra threads (0: single-threaded) running `workerModule`, which calls serveReplica. */
  static async start(spec: ReplicaSpec, loss: LossFn, workers: number, workerModule: string): Promise<DataParallel> {
    const ws = Array.from({ length: workers }, () => new Worker(workerModule, { workerData: { dataParallelReplica: true, spec } satisfies WorkerInit }));
    await Promise.all(ws.map((w) => new Promise<void>((resolve, reject) => {
      w.once('error', reject);
      w.once('message', () => resolve());
    })));
    return new DataParallel(new Replica(spec, loss), ws);
  }

  get replicas(): number {
    return this.workers.length + 1;
  }

  /** One training step on a batch; returns the batch's mean loss. */
  async step(batch: Shard): Promise<number> {
    const per = batch.x.length / batch.n;
    const yPer = batch.y ? batch.y.length / batch.n : 0;
    const k = Math.min(this.replicas, batch.n);
    const shards: Shard[] = [];
    for (let i = 0, start = 0; i < k; i++) {
      const n = Math.floor(batch.n / k) + (i < batch.n % k ? 1 : 0);
      shards.push({ x: batch.x.subarray(start * per, (start + n) * per), n, frames: batch.frames, mels: batch.mels, y: batch.y?.subarray(start * yPer, (start + n) * yPer) });
      start += n;
    }
    const pending = shards.slice(1).map((shard, i) => new Promise<ReturnType<Replica['gradients']>>((resolve, reject) => {
      const w = this.workers[i]!;
      w.once('message', resolve);
      w.once('error', reject);
      w.postMessage({ type: 'grads', shard: { ...shard, x: shard.x.slice(), y: shard.y?.slice() } });
    }));
    const mine = this.main.gradients(shards[0]!);
    const all = [mine, ...(await Promise.all(pending))];
    // Weighted average: each replica's gradient is the mean over its own shard.
    const weights = shards.map((s) => s.n / batch.n);
    const avg = (pick: (r: (typeof all)[number]) => Float32Array[]) =>
      pick(all[0]!).map((_, j) => {
        const out = new Float32Array(pick(all[0]!)[j]!.length);
        all.forEach((r, i) => {
          const a = pick(r)[j]!;
          for (let q = 0; q < out.length; q++) out[q] += weights[i]! * a[q]!;
        });
        return out;
      });
    const grads = avg((r) => r.grads);
    const running = avg((r) => r.running);
    for (const w of this.workers) w.postMessage({ type: 'apply', grads, running }); // all, used or not: replicas stay identical
    this.main.apply(grads, running);
    return all.reduce((s, r, i) => s + weights[i]! * r.loss, 0);
  }

  /** Every replica's trainable weights (to check they stay identical). */
  async replicaWeights(): Promise<Float32Array[][]> {
    const others = await Promise.all(this.workers.map((w) => new Promise<Float32Array[]>((resolve) => {
      w.once('message', resolve);
      w.postMessage({ type: 'weights' });
    })));
    return [this.main.model.trainable.map((v) => v.dataSync() as Float32Array), ...others];
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.main.dispose();
  }
}
