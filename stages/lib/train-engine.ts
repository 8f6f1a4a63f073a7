// What runs twin-train's steps and predictions: the tfjs path (any backend: one op at a time,
// autodiff, an optimizer per backend) or the compiled WebGPU step (stages/lib/gpu/: one command
// buffer of this project's kernels a step, the losses read back once an epoch). Both keep a tfjs
// Model as the record of the weights, so model.bin, checkpoints and resumes are the same files
// whichever ran them: a run killed on one resumes on the other.
import type * as TF from '@tensorflow/tfjs-core';
import type { Random } from '../../src/random.ts';
import type { Model } from './tf/models.ts';
import type { Optimizer, OptimizerState } from './tf/optimizers.ts';
import type { TwinObjective } from './twin-loss.ts';

export interface StepLosses {
  total: number;
  l1: number;
  l2: number;
  bt: number;
}

/** Fills step `step`'s batch: both views [B, T, M] (x2 unused for vanilla) and the labels [B, E]. */
export type FillBatch = (step: number, x1: Float32Array, x2: Float32Array, y: Float32Array) => void;

export interface TrainEngine {
  /** `tfjs-<backend>` or `webgpu-compiled`. */
  readonly name: string;
  readonly summary: string;
  /** Runs `steps` steps (numbered from `first` across epochs); `onStep` hears each as it is queued. */
  epoch(first: number, steps: number, fill: FillBatch, onStep: (step: number, loss?: number) => void, signal: AbortSignal): Promise<StepLosses[]>;
  /** Clean-branch predictions [clips, E] for clips given as [frames, mels] arrays. */
  predict(clips: Float32Array[]): Promise<Float32Array>;
  /** RUWL's s now. */
  s(): Promise<number[] | undefined>;
  /** Brings the tfjs Model (and s) up to date, for saving. */
  sync(): Promise<void>;
  /** The optimizer's state keyed by the tfjs variables' names. */
  optimizerState(): Promise<OptimizerState>;
  /** Resumes: weights already in the Model; optimizer state keyed by plain tensor names. */
  resume(step: number, moments: Record<string, [Float32Array, Float32Array]>, s?: number[]): void;
  dispose(): void;
}

export interface EngineSetup {
  tf: typeof TF;
  model: Model;
  /** RUWL's learnable s (a tfjs variable either way: the checkpoint format holds it). */
  s?: TF.Variable;
  objective: TwinObjective;
  batch: number;
  frames: number;
  mels: number;
  outputs: number;
  lr: number;
  weightDecay: number;
  seed: number;
  rng: Random;
}

const plain = (name: string) => name.replace(/^m\d+\//, '');

/** The tfjs path, as twin-train always ran it. */
export class TfjsEngine implements TrainEngine {
  readonly name: string;
  private readonly trainable: TF.Variable[];
  private readonly x1: Float32Array;
  private readonly x2: Float32Array;
  private readonly y: Float32Array;

  constructor(private readonly e: EngineSetup, backend: string, readonly summary: string, private readonly opt: Optimizer) {
    this.name = backend;
    this.trainable = e.s ? [...e.model.trainable, e.s] : e.model.trainable;
    this.x1 = new Float32Array(e.batch * e.frames * e.mels);
    this.x2 = new Float32Array(e.batch * e.frames * e.mels);
    this.y = new Float32Array(e.batch * e.outputs);
  }

  async epoch(first: number, steps: number, fill: FillBatch, onStep: (step: number, loss?: number) => void, signal: AbortSignal): Promise<StepLosses[]> {
    const { tf, model, objective: p, batch: B, frames: T, mels: M, outputs: E } = this.e;
    const twin = p.mode !== 'vanilla';
    const out: StepLosses[] = [];
    const { twinLoss } = await import('./twin-loss.ts');
    for (let step = 0; step < steps; step++) {
      signal.throwIfAborted();
      fill(step, this.x1, this.x2, this.y);
      let parts = { l1: 0, l2: 0, bt: 0 };
      const { value, grads } = tf.variableGrads(() => {
        const target = tf.tensor2d(this.y, [B, E]);
        const xb = twin ? tf.tensor4d(this.x2, [B, T, M, 1]) : undefined;
        const r = twinLoss(tf, model, tf.tensor4d(this.x1, [B, T, M, 1]), xb, target, p, this.e.s, this.e.rng);
        parts = r.parts;
        return r.total;
      }, this.trainable);
      this.opt.apply(grads, this.trainable);
      const total = value.dataSync()[0]!;
      tf.dispose([value, ...Object.values(grads)]);
      out.push({ total, ...parts });
      onStep(first + step, total);
    }
    return out;
  }

  async predict(clips: Float32Array[]): Promise<Float32Array> {
    const { tf, model, mels, outputs } = this.e;
    const preds = new Float32Array(clips.length * outputs);
    clips.forEach((x, i) => tf.tidy(() => preds.set(model.forward(tf.tensor4d(x, [1, x.length / mels, mels, 1]), false).output.dataSync() as Float32Array, i * outputs)));
    return preds;
  }

  async s(): Promise<number[] | undefined> {
    return this.e.s ? Array.from(this.e.s.dataSync()) : undefined;
  }

  async sync(): Promise<void> {}

  async optimizerState(): Promise<OptimizerState> {
    return this.opt.exportState();
  }

  resume(step: number, moments: Record<string, [Float32Array, Float32Array]>, s?: number[]): void {
    const byPlain = new Map(this.trainable.map((v) => [plain(v.name), v.name]));
    this.opt.importState({ step, moments: Object.fromEntries(Object.entries(moments).map(([k, v]) => [byPlain.get(k) ?? k, v])) }, this.trainable);
    if (this.e.s && s) this.e.tf.tidy(() => this.e.s!.assign(this.e.tf.tensor1d(s)));
  }

  dispose(): void {
    this.opt.dispose();
  }
}

/** Steps in flight at once: the host prepares the next batch while the GPU runs these. */
const IN_FLIGHT = 2;

/** The compiled WebGPU step (stages/lib/gpu/step.ts). */
export class CompiledEngine implements TrainEngine {
  readonly name = 'webgpu-compiled';
  readonly summary: string;
  private readonly step: import('./gpu/step.ts').CompiledTwinStep;
  private inference?: import('./gpu/step.ts').CompiledInference;
  private readonly xs: Float32Array;
  private readonly y: Float32Array;
  private readonly sName: string | undefined;

  private constructor(private readonly e: EngineSetup, step: import('./gpu/step.ts').CompiledTwinStep, private readonly Inference: typeof import('./gpu/step.ts').CompiledInference) {
    this.step = step;
    this.summary = `webgpu-compiled: this project's WGSL kernels, ${step.dispatches} dispatches a step, on ${step.gpu.adapter}${step.gpu.software ? ' (a CPU driver: correct, not fast)' : ''}`;
    const views = e.objective.mode === 'vanilla' ? 1 : 2;
    this.xs = new Float32Array(views * e.batch * e.frames * e.mels);
    this.y = new Float32Array(e.batch * e.outputs);
    this.sName = e.s?.name;
  }

  /** The compiled step for this model and batch, or why there is none. */
  static async open(e: EngineSetup, ring: number): Promise<CompiledEngine> {
    const { openGpu } = await import('./gpu/device.ts');
    const { CompiledTwinStep, CompiledInference } = await import('./gpu/step.ts');
    const gpu = await openGpu();
    const p = e.objective;
    gpu.device.pushErrorScope('validation');
    const step = new CompiledTwinStep(gpu, { model: e.model.spec, mode: p.mode, batch: e.batch, frames: e.frames, form: p.cccForm, weights: p.weights, lambda: p.lambda, btCorrelation: p.btCorrelation, bnStats: p.bnStats, ring }, e.seed, { lr: e.lr, weightDecay: e.weightDecay });
    const problem = await gpu.device.popErrorScope();
    if (problem) {
      step.destroy();
      throw new Error(`the device refused a kernel: ${problem.message.split('\n')[0]}`);
    }
    const engine = new CompiledEngine(e, step, CompiledInference);
    engine.load();
    return engine;
  }

  /** The Model's weights (and s) onto the device. */
  private load(): void {
    const w = this.e.model.exportWeights();
    this.step.setWeights(w.manifest, w.data);
    if (this.e.s) this.step.setExtra('ruwl.s', Array.from(this.e.s.dataSync()));
  }

  async epoch(first: number, steps: number, fill: FillBatch, onStep: (step: number, loss?: number) => void, signal: AbortSignal): Promise<StepLosses[]> {
    const views = this.e.objective.mode === 'vanilla' ? 1 : 2;
    const per = this.e.batch * this.e.frames * this.e.mels;
    const x1 = this.xs.subarray(0, per);
    const x2 = views === 2 ? this.xs.subarray(per) : new Float32Array(0);
    const inFlight: Array<Promise<unknown>> = [];
    for (let step = 0; step < steps; step++) {
      signal.throwIfAborted();
      fill(step, x1, x2, this.y);
      if (inFlight.length >= IN_FLIGHT) await inFlight.shift();
      await this.step.step(this.xs, this.y, first + step);
      inFlight.push(this.step.done());
      onStep(first + step);
    }
    await Promise.all(inFlight);
    const l = await this.step.losses(first, steps);
    return Array.from({ length: steps }, (_, i) => ({ total: l[4 * i]!, l1: l[4 * i + 1]!, l2: l[4 * i + 2]!, bt: l[4 * i + 3]! }));
  }

  async predict(clips: Float32Array[]): Promise<Float32Array> {
    const frames = Math.max(...clips.map((c) => c.length / this.e.mels));
    // One program for the longest clip seen (rebuilt only if a longer one comes).
    if (!this.inference || this.inference.frames < frames) this.inference = new this.Inference(this.step, 16, frames);
    return this.inference.predict(clips);
  }

  async s(): Promise<number[] | undefined> {
    if (!this.e.s) return undefined;
    const params = await this.step.read('params');
    const at = this.step.net.layout.byName.get('ruwl.s')!.offset;
    return Array.from(params.subarray(at, at + 3));
  }

  async sync(): Promise<void> {
    const w = this.e.model.exportWeights();
    this.e.model.importWeights(w.manifest, await this.step.exportWeights(w.manifest));
    const s = await this.s();
    if (this.e.s && s) this.e.tf.tidy(() => this.e.s!.assign(this.e.tf.tensor1d(s)));
  }

  async optimizerState(): Promise<OptimizerState> {
    const moments = await this.step.exportMoments();
    const full = new Map(this.e.model.trainable.map((v) => [plain(v.name), v.name]));
    if (this.sName) full.set('ruwl.s', this.sName);
    return { step: this.step.adamStep, moments: Object.fromEntries(Object.entries(moments).map(([k, v]) => [full.get(k) ?? k, v])) };
  }

  resume(step: number, moments: Record<string, [Float32Array, Float32Array]>, s?: number[]): void {
    // Keyed by plain names; RUWL's s was saved under its variable's plain name.
    const byLayout: Record<string, [Float32Array, Float32Array]> = {};
    for (const [k, v] of Object.entries(moments)) byLayout[this.sName && k === plain(this.sName) ? 'ruwl.s' : k] = v;
    if (this.e.s && s) this.e.tf.tidy(() => this.e.s!.assign(this.e.tf.tensor1d(s)));
    this.load();
    this.step.importMoments(step, byLayout);
  }

  dispose(): void {
    this.step.destroy();
  }
}
