// Backbones for emotion regression on log-mel input [batch, frames, mels, 1] (NHWC), written as
// plain TensorFlow.js ops over named variables, so the same description can be rebuilt in PyTorch
// (bench/train_torch.py, and the parity fixtures): batch norm in training mode uses the batch's
// statistics and updates running ones (momentum 0.1, eps 1e-5, as torch.nn.BatchNorm2d).
import * as tf from '@tensorflow/tfjs-core';
import { Random } from '../../../src/random.ts';
import { RESNET14_CHANNELS, resnetConvs, resnetForward } from './resnet.ts';

export type Backbone = 'small' | 'cnn6' | 'cnn10' | 'cnn14' | 'resnet14';

export interface ModelSpec {
  backbone: Backbone;
  mels: number;
  outputs: number;
  /** Channels per block (defaults: small 16/32/64/128; CNN6 and CNN10 64..512; CNN14 64..2048; ResNet14 64..512 per stage). */
  channels?: number[];
  /** Embedding size before the output layer (PANNs: fc1 keeps the last block's width; ResNet14 has no fc1: its pooled features). */
  embedding?: number;
  dropout?: number;
  /** Dropout on the pooled features before fc1 (PANNs: 0.5, the default; the RRTN authors' CNN14: 0). */
  headDropout?: number;
  /** Twin training: a projector Linear(embedding, projector) + BatchNorm on the embedding (0: none). */
  projector?: number;
}

interface BN {
  gamma: tf.Variable;
  beta: tf.Variable;
  mean: tf.Variable;
  variance: tf.Variable;
}

let instances = 0;

export class Model {
  /** Whether a training-mode pass moves the BatchNorm running statistics (off: batch statistics only, for a view whose statistics must not reach inference). */
  updateStats = true;
  readonly variables = new Map<string, tf.Variable>();
  /** Trainable variables (batch-norm running statistics excluded). */
  readonly trainable: tf.Variable[] = [];
  private readonly bns = new Map<string, BN>();
  private readonly instance = ++instances;

  constructor(readonly spec: ModelSpec, seed: number) {
    const rng = new Random(seed);
    const glorot = (name: string, shape: number[], fanIn: number, fanOut: number) => {
      const limit = Math.sqrt(6 / (fanIn + fanOut));
      const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.uniform(-limit, limit));
      this.add(name, tf.tensor(values, shape), true);
    };
    const conv = (name: string, k: number, cin: number, cout: number) => glorot(name, [k, k, cin, cout], k * k * cin, k * k * cout);
    const bn = (name: string, c: number) => {
      this.bns.set(name, {
        gamma: this.add(`${name}.gamma`, tf.ones([c]), true),
        beta: this.add(`${name}.beta`, tf.zeros([c]), true),
        mean: this.add(`${name}.running_mean`, tf.zeros([c]), false),
        variance: this.add(`${name}.running_var`, tf.ones([c]), false),
      });
    };
    const dense = (name: string, cin: number, cout: number) => {
      glorot(`${name}.weight`, [cin, cout], cin, cout);
      this.add(`${name}.bias`, tf.zeros([cout]), true);
    };
    if (spec.backbone === 'resnet14') {
      // torchvision's initialisation for its ResNets: Kaiming normal, fan-out, ReLU gain.
      for (const c of resnetConvs(this.blocks())) {
        const std = Math.sqrt(2 / (c.k * c.k * c.cout));
        this.add(c.name, tf.tensor(Float32Array.from({ length: c.k * c.k * c.cin * c.cout }, () => std * rng.normal()), [c.k, c.k, c.cin, c.cout]), true);
        bn(`${c.name}.bn`, c.cout);
      }
    } else {
      const { kernel, convs } = this.layout();
      bn('bn0', spec.mels);
      let cin = 1;
      for (const [b, cout] of this.blocks().entries()) {
        conv(`block${b}.conv1`, kernel, cin, cout);
        bn(`block${b}.bn1`, cout);
        if (convs === 2) {
          conv(`block${b}.conv2`, kernel, cout, cout);
          bn(`block${b}.bn2`, cout);
        }
        cin = cout;
      }
      dense('fc1', cin, this.embeddingSize());
    }
    const emb = this.embeddingSize();
    dense('fc_out', emb, spec.outputs);
    if (spec.projector) {
      dense('proj', emb, spec.projector);
      bn('proj.bn', spec.projector);
    }
  }

  /** Projector output (Linear + BatchNorm over the batch) of embeddings [B, E]. */
  project(embedding: tf.Tensor2D, training: boolean): tf.Tensor2D {
    const v = (n: string) => this.variables.get(n)! as tf.Tensor;
    const z = tf.add(tf.matMul(embedding, v('proj.weight') as tf.Tensor2D), v('proj.bias'));
    return this.batchNorm('proj.bn', z, training, [0]) as tf.Tensor2D;
  }

  /** Weights as one float32 buffer and a manifest (name, shape, offset), for saving. */
  exportWeights(): { manifest: Array<{ name: string; shape: number[]; offset: number }>; data: Float32Array } {
    const manifest: Array<{ name: string; shape: number[]; offset: number }> = [];
    let size = 0;
    for (const [name, v] of this.variables) {
      manifest.push({ name, shape: v.shape, offset: size });
      size += v.size;
    }
    const data = new Float32Array(size);
    for (const m of manifest) data.set(this.variables.get(m.name)!.dataSync() as Float32Array, m.offset);
    return { manifest, data };
  }

  importWeights(manifest: Array<{ name: string; shape: number[]; offset: number }>, data: Float32Array): void {
    for (const m of manifest) {
      const v = this.variables.get(m.name);
      if (!v) throw new Error(`weights hold '${m.name}', which this model does not have`);
      const n = m.shape.reduce((a, b) => a * b, 1);
      tf.tidy(() => v.assign(tf.tensor(data.subarray(m.offset, m.offset + n), m.shape)));
    }
  }

  private add(name: string, init: tf.Tensor, trainable: boolean): tf.Variable {
    // tfjs variable names are global to the process: prefix them per model instance.
    const v = tf.variable(init, trainable, `m${this.instance}/${name}`);
    init.dispose();
    this.variables.set(name, v);
    if (trainable) this.trainable.push(v);
    return v;
  }

  /** PANNs' block layouts: CNN6 one 5x5 conv per block, CNN10/CNN14 two 3x3; the small CNN one 3x3. */
  layout(): { kernel: number; convs: 1 | 2 } {
    if (this.spec.backbone === 'cnn6') return { kernel: 5, convs: 1 };
    if (this.spec.backbone === 'small') return { kernel: 3, convs: 1 };
    return { kernel: 3, convs: 2 };
  }

  blocks(): number[] {
    if (this.spec.channels) return this.spec.channels;
    switch (this.spec.backbone) {
      case 'small':
        return [16, 32, 64, 128];
      case 'cnn6':
        return [64, 128, 256, 512];
      case 'cnn10':
        return [64, 128, 256, 512];
      case 'cnn14':
        return [64, 128, 256, 512, 1024, 2048];
      case 'resnet14':
        return RESNET14_CHANNELS;
    }
  }

  embeddingSize(): number {
    if (this.spec.embedding && this.spec.backbone !== 'resnet14') return this.spec.embedding;
    // fc1 keeps the last block's width (PANNs: 512 for CNN6/CNN10, 2048 for CNN14).
    const b = this.blocks();
    return b[b.length - 1]!;
  }

  parameterCount(): number {
    return this.trainable.reduce((s, v) => s + v.size, 0);
  }

  private batchNorm(name: string, x: tf.Tensor, training: boolean, axes: number[]): tf.Tensor {
    const p = this.bns.get(name)!;
    if (!training) return tf.batchNorm(x, p.mean, p.variance, p.beta, p.gamma, 1e-5);
    const { mean, variance } = tf.moments(x, axes);
    // torch updates running_var with the unbiased batch variance.
    const n = axes.reduce((s, a) => s * x.shape[a]!, 1);
    if (this.updateStats) tf.tidy(() => {
      p.mean.assign(tf.add(tf.mul(p.mean, 0.9), tf.mul(mean, 0.1)));
      p.variance.assign(tf.add(tf.mul(p.variance, 0.9), tf.mul(variance, 0.1 * (n / Math.max(1, n - 1)))));
    });
    // Written out with broadcasting ops: tf.batchNorm's gradient tiles the statistics to the full
    // shape (the slowest kernel of a WASM training step); broadcasting gradients reduce instead.
    const scale = tf.mul(tf.rsqrt(tf.add(variance, 1e-5)), p.gamma);
    return tf.add(tf.mul(tf.sub(x, mean), scale), p.beta);
  }

  /**
   * Forward pass. x: [batch, frames, mels, 1]. Returns the embedding (after fc1 + ReLU) and the
   * outputs (linear, one per emotion).
   */
  forward(x: tf.Tensor4D, training: boolean, rng?: Random, masks?: DropoutMasks): { embedding: tf.Tensor2D; output: tf.Tensor2D } {
    const v = (n: string) => this.variables.get(n)! as tf.Tensor;
    if (this.spec.backbone === 'resnet14') {
      const embedding = resnetForward(x, this.blocks(), {
        kernel: (n) => v(n) as tf.Tensor4D,
        batchNorm: (n, h) => this.batchNorm(n, h, training, [0, 1, 2]),
      });
      return { embedding, output: this.head(embedding) };
    }
    // bn0 over mel bins: mels act as channels.
    let h: tf.Tensor = tf.transpose(x, [0, 1, 3, 2]); // [b, t, 1, mels]
    h = this.batchNorm('bn0', h, training, [0, 1, 2]);
    h = tf.transpose(h, [0, 1, 3, 2]);
    const blocks = this.blocks();
    const { convs } = this.layout();
    blocks.forEach((_, b) => {
      h = tf.relu(this.batchNorm(`block${b}.bn1`, tf.conv2d(h as tf.Tensor4D, v(`block${b}.conv1`) as tf.Tensor4D, 1, 'same'), training, [0, 1, 2]));
      if (convs === 2) {
        h = tf.relu(this.batchNorm(`block${b}.bn2`, tf.conv2d(h as tf.Tensor4D, v(`block${b}.conv2`) as tf.Tensor4D, 1, 'same'), training, [0, 1, 2]));
      }
      const last = b === blocks.length - 1;
      if (!(last && this.spec.backbone === 'cnn14')) h = tf.avgPool(h as tf.Tensor4D, 2, 2, 'valid');
      if (this.spec.backbone !== 'small' && training && (this.spec.dropout ?? 0.2) > 0) h = dropout(h, this.spec.dropout ?? 0.2, rng, masks && ((shape) => masks(b + 1, shape)));
    });
    // Mean over frequency, then max + mean over time.
    const f = tf.mean(h, 2); // [b, t, c]
    let e: tf.Tensor = tf.add(tf.max(f, 1), tf.mean(f, 1)); // [b, c]
    if (this.spec.backbone !== 'small' && training && (this.spec.headDropout ?? 0.5) > 0) e = dropout(e, this.spec.headDropout ?? 0.5, rng, masks && ((shape) => masks(100, shape)));
    const embedding = tf.relu(tf.add(tf.matMul(e as tf.Tensor2D, v('fc1.weight') as tf.Tensor2D), v('fc1.bias'))) as tf.Tensor2D;
    return { embedding, output: this.head(embedding) };
  }

  /** The output layer: one linear output per emotion from the embedding. */
  private head(embedding: tf.Tensor2D): tf.Tensor2D {
    return tf.add(tf.matMul(embedding, this.variables.get('fc_out.weight') as tf.Tensor2D), this.variables.get('fc_out.bias')!) as tf.Tensor2D;
  }

  dispose(): void {
    for (const v of this.variables.values()) v.dispose();
  }
}

/**
 * Keep-masks (1 keep, 0 drop) by dropout layer (blocks 1.., the head 100) and shape: given, they
 * replace the seeded draw (so that another implementation can be fed the very same masks).
 */
export type DropoutMasks = (layer: number, shape: number[]) => Float32Array;

/** Inverted dropout with a seeded mask (tf.dropout's seed would not follow our Random). */
function dropout(x: tf.Tensor, rate: number, rng?: Random, given?: (shape: number[]) => Float32Array): tf.Tensor {
  const seed = rng ? rng.nextUint32() : 0;
  const mask = given ? tf.tensor(given(x.shape), x.shape) : tf.cast(tf.greaterEqual(tf.randomUniform(x.shape, 0, 1, 'float32', seed), rate), 'float32');
  return tf.mul(x, tf.mul(mask, 1 / (1 - rate)));
}
