// Data-parallel training over worker threads. TensorFlow.js's WASM backend runs on one thread under
// Node, so the second core is reached by replicas: the main thread and each worker hold a copy of
// the model (same seed, same initial weights); each step every replica computes gradients on its
// share of the batch, the main thread averages them (weighted by share) with the batch-norm running
// statistics, and every replica applies the same AdamW update, so they stay identical.
// Gradients travel through shared memory allocated once: CNN14's are 320 MB a step, and copying
// them into fresh buffers would cost more in page faults than the copy itself (host-data.ts).
import * as tf from '@tensorflow/tfjs-core';
import { Worker } from 'node:worker_threads';
import { startBackend, type BackendName } from './backend.ts';
import { Model, type ModelSpec } from './models.ts';
import { HostAdamW, optimizerFor, type Optimizer } from './optimizers.ts';
import { allocHost, readHost } from './host-data.ts';

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

/** New tensors holding consecutive runs of `flat`, one per variable, shaped like it. */
function tensorsFrom(flat: Float32Array, vars: tf.Variable[]): tf.Tensor[] {
  let o = 0;
  return vars.map((v) => {
    const { info, data } = allocHost(v.shape);
    data.set(flat.subarray(o, (o += v.size)));
    return tf.engine().makeTensorFromTensorInfo(info);
  });
}

/** One replica: a model, its optimizer, and the step it runs on a shard. */
export class Replica {
  readonly model: Model;
  private readonly opt: Optimizer;
  private readonly runningNames: string[];
  /** Floats in a flat gradient buffer: trainable variables, then running statistics. */
  private readonly trainableSize: number;
  readonly flatSize: number;

  constructor(spec: ReplicaSpec, private readonly loss: LossFn) {
    this.model = new Model(spec.model, spec.seed);
    this.opt = optimizerFor(tf.getBackend() as BackendName, spec.lr, spec.weightDecay);
    this.runningNames = [...this.model.variables.keys()].filter((n) => n.endsWith('.running_mean') || n.endsWith('.running_var'));
    this.trainableSize = this.model.parameterCount();
    this.flatSize = this.trainableSize + this.running().reduce((n, v) => n + v.size, 0);
  }

  private running(): tf.Variable[] {
    return this.runningNames.map((n) => this.model.variables.get(n)!);
  }

  /** Computes gradients on a shard and writes them, then the running statistics, into `out`; returns the loss. */
  gradients(s: Shard, out: Float32Array): number {
    return tf.tidy(() => {
      const x = tf.tensor4d(s.x, [s.n, s.frames, s.mels, 1]);
      const y = s.y ? tf.tensor(s.y, [s.n, s.y.length / s.n]) : undefined;
      const { value, grads } = tf.variableGrads(() => this.loss(this.model, x, y), this.model.trainable);
      let o = 0;
      for (const t of [...this.model.trainable.map((v) => grads[v.name]!), ...this.running()]) {
        out.set(readHost(t), o);
        o += t.size;
      }
      return value.dataSync()[0]!;
    });
  }

  /** Applies averaged gradients and running statistics laid out as `gradients` writes them. */
  apply(avg: Float32Array): void {
    const trainable = this.model.trainable;
    const grads = avg.subarray(0, this.trainableSize);
    if (this.opt instanceof HostAdamW) this.opt.applyFlat(grads, trainable); // straight from shared memory
    else {
      const tensors = tensorsFrom(grads, trainable);
      this.opt.apply(Object.fromEntries(trainable.map((v, i) => [v.name, tensors[i]!])), trainable);
      tf.dispose(tensors);
    }
    const running = this.running();
    tensorsFrom(avg.subarray(this.trainableSize), running).forEach((t, i) => {
      running[i]!.assign(t);
      t.dispose();
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
  /** This worker's gradient buffer and the averaged one, shared with the main thread. */
  grads: SharedArrayBuffer;
  avg: SharedArrayBuffer;
}

type ToWorker = { type: 'grads'; shard: Shard } | { type: 'apply' } | { type: 'weights' };

/**
 * Worker side: call from the top level of the module the workers run (it returns at once when this
 * thread is not a replica worker). `loss` must be the same function the main thread uses.
 */
export async function serveReplica(workerData: unknown, port: import('node:worker_threads').MessagePort | null, loss: LossFn): Promise<void> {
  const init = workerData as WorkerInit | undefined;
  if (!init?.dataParallelReplica || !port) return;
  await startBackend(init.spec.backend);
  const replica = new Replica(init.spec, loss);
  const [grads, avg] = [new Float32Array(init.grads), new Float32Array(init.avg)];
  port.on('message', (m: ToWorker) => {
    try {
      if (m.type === 'grads') port.postMessage({ loss: replica.gradients(m.shard, grads) });
      else if (m.type === 'apply') {
        replica.apply(avg);
        port.postMessage({ applied: true });
      } else port.postMessage(replica.model.trainable.map((v) => v.dataSync() as Float32Array));
    } catch (e) {
      port.postMessage({ error: e instanceof Error ? e.message : String(e) });
    }
  });
  port.postMessage('ready');
}

/**
 * How a batch of n examples is cut into k shards (sizes differ by at most one), and each shard's
 * weight in the averaged gradient: its share of the batch (each replica's gradient is the mean over
 * its own shard, so the weights sum to one).
 */
export function shardPlan(n: number, k: number): { sizes: number[]; weights: number[] } {
  const sizes = Array.from({ length: Math.min(k, n) }, (_, i) => Math.floor(n / Math.min(k, n)) + (i < n % Math.min(k, n) ? 1 : 0));
  return { sizes, weights: sizes.map((s) => s / n) };
}

/** out = sum of weights[r] * parts[r], in one pass for the usual two replicas. */
export function averageInto(out: Float32Array, parts: Float32Array[], weights: number[]): void {
  if (parts.length === 1) return out.set(parts[0]!);
  const [a, b, wa, wb] = [parts[0]!, parts[1]!, weights[0]!, weights[1]!];
  for (let q = 0; q < out.length; q++) out[q] = wa * a[q]! + wb * b[q]!;
  for (let r = 2; r < parts.length; r++) {
    const [g, w] = [parts[r]!, weights[r]!];
    for (let q = 0; q < out.length; q++) out[q]! += w * g[q]!;
  }
}

export class DataParallel {
  private constructor(
    readonly main: Replica,
    private readonly workers: Worker[],
    private readonly grads: Float32Array[],
    private readonly avg: Float32Array,
  ) {}

  /** `workers` extra threads (0: single-threaded) running `workerModule`, which calls serveReplica. */
  static async start(spec: ReplicaSpec, loss: LossFn, workers: number, workerModule: string): Promise<DataParallel> {
    await startBackend(spec.backend); // the main thread's replica runs where the workers' do
    const main = new Replica(spec, loss);
    const bytes = main.flatSize * 4;
    const shared = Array.from({ length: workers + 1 }, () => new SharedArrayBuffer(bytes));
    const avg = new SharedArrayBuffer(bytes);
    const ws = shared.slice(1).map((grads) => new Worker(workerModule, { workerData: { dataParallelReplica: true, spec, grads, avg } satisfies WorkerInit }));
    try {
      await Promise.all(ws.map((w) => new Promise<void>((resolve, reject) => {
        w.once('error', reject);
        w.once('message', () => resolve());
      })));
    } catch (e) {
      await Promise.all(ws.map((w) => w.terminate()));
      main.dispose();
      throw e;
    }
    return new DataParallel(main, ws, shared.map((b) => new Float32Array(b)), new Float32Array(avg));
  }

  get replicas(): number {
    return this.workers.length + 1;
  }

  private ask<T>(w: Worker, m: ToWorker): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      w.once('error', onError);
      w.once('message', (r: T & { error?: string }) => {
        w.off('error', onError);
        if (r && typeof r === 'object' && 'error' in r && r.error) reject(new Error(`data-parallel replica: ${r.error}`));
        else resolve(r);
      });
      w.postMessage(m);
    });
  }

  /** One training step on a batch; returns the batch's mean loss. */
  async step(batch: Shard): Promise<number> {
    const per = batch.x.length / batch.n;
    const yPer = batch.y ? batch.y.length / batch.n : 0;
    const plan = shardPlan(batch.n, this.replicas);
    const k = plan.sizes.length;
    const shards: Shard[] = [];
    for (let i = 0, start = 0; i < k; i++) {
      const n = plan.sizes[i]!;
      shards.push({ x: batch.x.subarray(start * per, (start + n) * per), n, frames: batch.frames, mels: batch.mels, y: batch.y?.subarray(start * yPer, (start + n) * yPer) });
      start += n;
    }
    const pending = shards.slice(1).map((shard, i) => this.ask<{ loss: number }>(this.workers[i]!, { type: 'grads', shard: { ...shard, x: shard.x.slice(), y: shard.y?.slice() } }));
    const losses = [this.main.gradients(shards[0]!, this.grads[0]!), ...(await Promise.all(pending)).map((r) => r.loss)];
    // Weighted average: each replica's gradient is the mean over its own shard.
    const weights = plan.weights;
    averageInto(this.avg, this.grads.slice(0, k), weights);
    // Every replica applies, used this step or not, so that all stay identical.
    const applied = this.workers.map((w) => this.ask(w, { type: 'apply' }));
    this.main.apply(this.avg);
    await Promise.all(applied);
    return losses.reduce((s, l, i) => s + weights[i]! * l, 0);
  }

  /** Every replica's trainable weights (to check they stay identical). */
  async replicaWeights(): Promise<Float32Array[][]> {
    const others = await Promise.all(this.workers.map((w) => this.ask<Float32Array[]>(w, { type: 'weights' })));
    return [this.main.model.trainable.map((v) => v.dataSync() as Float32Array), ...others];
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.main.dispose();
  }
}
