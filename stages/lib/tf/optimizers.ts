// Optimizers: torch.optim.AdamW's arithmetic (decoupled weight decay) in three placements, because
// what is fast differs by backend: per-variable tensors (native TensorFlow), flat moments in a few
// kernels (WebGPU, bound by kernel launches), and moments in JavaScript memory (WASM and plain JS,
// where the WASM heap is the scarce resource and element-wise loops cost the same either way).
import * as tf from '@tensorflow/tfjs-core';
import type { BackendName } from './backend.ts';
import { allocHost, readHost } from './host-data.ts';

export type OptimizerState = { step: number; moments: Record<string, [Float32Array, Float32Array]> };

export interface Optimizer {
  apply(grads: Record<string, tf.Tensor>, vars: tf.Variable[]): void;
  exportState(): OptimizerState;
  importState(state: OptimizerState, vars: tf.Variable[]): void;
  dispose(): void;
}

/**
 * AdamW with its moments kept flat, over all variables at once: one concat of the gradients, the
 * update in a handful of element-wise kernels, one split, and one assign per variable: about 4
 * kernels a variable plus 12 in all, where per-variable AdamW launches about 15 a variable. On
 * WebGPU a training step is bound by kernel launches (bench/RESULTS.md), so this counts there.
 * Same arithmetic as AdamW below up to float32 rounding.
 */
export class FusedAdamW implements Optimizer {
  private step = 0;
  private layout?: { names: string[]; sizes: number[] };
  private m?: tf.Variable;
  private s?: tf.Variable;

  constructor(private readonly lr: number, private readonly weightDecay = 0.01, private readonly beta1 = 0.9, private readonly beta2 = 0.999, private readonly eps = 1e-8) {}

  apply(grads: Record<string, tf.Tensor>, vars: tf.Variable[]): void {
    const present = vars.filter((v) => grads[v.name]);
    if (!present.length) return;
    if (!this.layout) {
      this.layout = { names: present.map((v) => v.name), sizes: present.map((v) => v.size) };
      const total = this.layout.sizes.reduce((a, b) => a + b, 0);
      const zeros = tf.zeros([total]);
      this.m = tf.variable(zeros, false);
      this.s = tf.variable(zeros, false);
      zeros.dispose();
    } else if (present.map((v) => v.name).join('\0') !== this.layout.names.join('\0')) {
      throw new Error('FusedAdamW: the set of variables with gradients changed between steps');
    }
    this.step++;
    const bc1 = 1 - this.beta1 ** this.step;
    const bc2 = 1 - this.beta2 ** this.step;
    const m = this.m!;
    const s = this.s!;
    tf.tidy(() => {
      const g = tf.concat(present.map((v) => tf.reshape(grads[v.name]!, [-1])));
      m.assign(tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1)));
      s.assign(tf.add(tf.mul(s, this.beta2), tf.mul(tf.square(g), 1 - this.beta2)));
      const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(s, bc2)), this.eps));
      const parts = tf.split(tf.mul(update, this.lr), this.layout!.sizes);
      present.forEach((v, i) => v.assign(tf.sub(tf.mul(v, 1 - this.lr * this.weightDecay), tf.reshape(parts[i]!, v.shape))));
    });
  }

  exportState(): OptimizerState {
    const moments: Record<string, [Float32Array, Float32Array]> = {};
    if (this.layout) {
      const [m, s] = [this.m!.dataSync() as Float32Array, this.s!.dataSync() as Float32Array];
      let o = 0;
      this.layout.names.forEach((name, i) => {
        const n = this.layout!.sizes[i]!;
        moments[name] = [m.slice(o, o + n), s.slice(o, o + n)];
        o += n;
      });
    }
    return { step: this.step, moments };
  }

  importState(state: OptimizerState, vars: tf.Variable[]): void {
    const present = vars.filter((v) => state.moments[v.name]);
    this.step = state.step;
    this.layout = { names: present.map((v) => v.name), sizes: present.map((v) => v.size) };
    const total = this.layout.sizes.reduce((a, b) => a + b, 0);
    const [mf, sf] = [new Float32Array(total), new Float32Array(total)];
    let o = 0;
    for (const v of present) {
      mf.set(state.moments[v.name]![0], o);
      sf.set(state.moments[v.name]![1], o);
      o += v.size;
    }
    this.dispose();
    const [mt, st] = [tf.tensor1d(mf), tf.tensor1d(sf)];
    this.m = tf.variable(mt, false);
    this.s = tf.variable(st, false);
    tf.dispose([mt, st]);
  }

  dispose(): void {
    this.m?.dispose();
    this.s?.dispose();
  }
}

/** AdamW (decoupled weight decay), as torch.optim.AdamW: one tidy update per variable. */
export class AdamW implements Optimizer {
  private step = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly s = new Map<string, tf.Variable>();

  constructor(private readonly lr: number, private readonly weightDecay = 0.01, private readonly beta1 = 0.9, private readonly beta2 = 0.999, private readonly eps = 1e-8) {}

  apply(grads: Record<string, tf.Tensor>, vars: tf.Variable[]): void {
    this.step++;
    const bc1 = 1 - this.beta1 ** this.step;
    const bc2 = 1 - this.beta2 ** this.step;
    for (const v of vars) {
      const g = grads[v.name];
      if (!g) continue;
      if (!this.m.has(v.name)) {
        const zeros = tf.zerosLike(v);
        this.m.set(v.name, tf.variable(zeros, false));
        this.s.set(v.name, tf.variable(zeros, false));
        zeros.dispose(); // the variables hold their own reference
      }
      const m = this.m.get(v.name)!;
      const s = this.s.get(v.name)!;
      tf.tidy(() => {
        m.assign(tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1)));
        s.assign(tf.add(tf.mul(s, this.beta2), tf.mul(tf.square(g), 1 - this.beta2)));
        const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(s, bc2)), this.eps));
        v.assign(tf.sub(tf.mul(v, 1 - this.lr * this.weightDecay), tf.mul(update, this.lr)));
      });
    }
  }

  /** Optimizer state for a checkpoint: step count and moments by variable name. */
  exportState(): OptimizerState {
    const moments: Record<string, [Float32Array, Float32Array]> = {};
    for (const [name, m] of this.m) moments[name] = [m.dataSync() as Float32Array, this.s.get(name)!.dataSync() as Float32Array];
    return { step: this.step, moments };
  }

  importState(state: OptimizerState, vars: tf.Variable[]): void {
    this.step = state.step;
    for (const v of vars) {
      const mom = state.moments[v.name];
      if (!mom) continue;
      const [m, sq] = [tf.tensor(mom[0], v.shape), tf.tensor(mom[1], v.shape)];
      this.m.set(v.name, tf.variable(m, false));
      this.s.set(v.name, tf.variable(sq, false));
      tf.dispose([m, sq]);
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.s.values()]) t.dispose();
  }
}

/**
 * AdamW with its moments in JavaScript memory: per variable, the gradient and the weights are read
 * out, updated in one loop, and the weights written back. On WASM this keeps 2x the parameters out
 * of the backend's heap, which tops out near 2 GB in practice (CNN14's moments alone are 640 MB), and
 * replaces about 15 kernels a variable, each allocating in that heap, with one pass over the data.
 */
export class HostAdamW implements Optimizer {
  private step = 0;
  private readonly moments = new Map<string, [Float32Array, Float32Array]>();

  constructor(private readonly lr: number, private readonly weightDecay = 0.01, private readonly beta1 = 0.9, private readonly beta2 = 0.999, private readonly eps = 1e-8) {}

  apply(grads: Record<string, tf.Tensor>, vars: tf.Variable[]): void {
    // Gradient views are taken per variable: the heap may move when the previous one allocates.
    this.update(vars.filter((v) => grads[v.name]).map((v) => [v, () => readHost(grads[v.name]!)]));
  }

  /** The same step from gradients laid out flat, variable after variable (data-parallel replicas). */
  applyFlat(flat: Float32Array, vars: tf.Variable[]): void {
    let o = 0;
    this.update(vars.map((v) => {
      const at = o;
      o += v.size;
      return [v, () => flat.subarray(at, at + v.size)];
    }));
  }

  private update(items: Array<[tf.Variable, () => Float32Array]>): void {
    this.step++;
    const { lr, beta1, beta2, eps } = this;
    const bc1 = 1 - beta1 ** this.step;
    const bc2 = 1 - beta2 ** this.step;
    const decay = 1 - lr * this.weightDecay;
    for (const [v, grad] of items) {
      let mom = this.moments.get(v.name);
      if (!mom) this.moments.set(v.name, (mom = [new Float32Array(v.size), new Float32Array(v.size)]));
      const [m, s] = mom;
      // Views of the backend's memory (no copies); the new weights go to a fresh tensor, since
      // the backend may cache work keyed by a tensor's data (WASM's packed convolution filters).
      const next = allocHost(v.shape);
      adamwUpdate(readHost(v), grad(), m, s, next.data, beta1, beta2, lr / bc1, 1 / bc2, eps, decay);
      tf.tidy(() => v.assign(tf.engine().makeTensorFromTensorInfo(next.info)));
    }
  }

  exportState(): OptimizerState {
    const moments: OptimizerState['moments'] = {};
    for (const [name, [m, s]] of this.moments) moments[name] = [m.slice(), s.slice()];
    return { step: this.step, moments };
  }

  importState(state: OptimizerState, vars: tf.Variable[]): void {
    this.step = state.step;
    this.moments.clear();
    for (const v of vars) {
      const mom = state.moments[v.name];
      if (mom) this.moments.set(v.name, [Float32Array.from(mom[0]), Float32Array.from(mom[1])]);
    }
  }

  dispose(): void {
    this.moments.clear();
  }
}

/** One AdamW step over flat arrays: m, s updated in place, the new weights written to `out`. */
function adamwUpdate(w: Float32Array, g: Float32Array, m: Float32Array, s: Float32Array, out: Float32Array, beta1: number, beta2: number, lrOverBc1: number, invBc2: number, eps: number, decay: number): void {
  const c1 = 1 - beta1;
  const c2 = 1 - beta2;
  for (let i = 0; i < out.length; i++) {
    const gi = g[i]!;
    const mi = (m[i] = beta1 * m[i]! + c1 * gi);
    const si = (s[i] = beta2 * s[i]! + c2 * gi * gi);
    out[i] = w[i]! * decay - (lrOverBc1 * mi) / (Math.sqrt(si * invBc2) + eps);
  }
}

/** The placement that is fastest (and fits) on each backend; see the header. */
export function optimizerFor(backend: BackendName, lr: number, weightDecay = 0.01): Optimizer {
  switch (backend) {
    case 'webgpu':
      return new FusedAdamW(lr, weightDecay);
    case 'wasm':
    case 'cpu':
      return new HostAdamW(lr, weightDecay);
    case 'tensorflow':
      return new AdamW(lr, weightDecay);
  }
}
