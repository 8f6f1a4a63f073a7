// The compiled twin training step on a WebGPU device: every pipeline, buffer and bind group made
// once for a model, batch and crop; each step writes one upload (its scalars, the labels and both
// views of the batch), encodes the whole dispatch list into one command buffer, submits it, and
// returns without waiting. Losses land in a ring on the GPU, read back once an epoch (or when asked),
// so the host assembles the next batch while the GPU runs this one. Weights, running statistics and
// AdamW's moments move in and out by tensor name, in the tfjs Model's formats.
/// <reference types="@webgpu/types" />
import type { Gpu } from './device.ts';
import { INPUT, buildInference, buildTwin, type InferenceNet, type Net, type TwinSpec } from './net.ts';
import { lossLayout, LOSSES, UPLOAD } from './loss.ts';
import { Runner, type Dispatch, type StagingRing } from './runner.ts';
import { BUF, bufferOf } from './wgsl.ts';

export interface WeightsManifestEntry {
  name: string;
  shape: number[];
  offset: number;
}

export interface AdamOptions {
  lr: number;
  weightDecay: number;
  beta1?: number;
  beta2?: number;
}

/** Upload buffers per program: the steps the trainer keeps in flight (2), plus one being filled. */
const STAGING = 3;

export class CompiledTwinStep {
  readonly net: Net;
  readonly runner: Runner;
  readonly list: Dispatch[];
  private readonly buffers = new Map<string, GPUBuffer>();
  private readonly staging: StagingRing;
  /** AdamW steps taken (bias corrections count from 1). */
  adamStep = 0;

  constructor(readonly gpu: Gpu, readonly spec: TwinSpec, readonly seed: number, readonly opt: AdamOptions) {
    this.net = buildTwin(spec);
    this.runner = new Runner(gpu);
    const n = this.net;
    const sizes = new Map<string, number>([
      [BUF.params, n.layout.params],
      [BUF.grads, n.layout.params],
      [BUF.moment1, n.layout.params],
      [BUF.moment2, n.layout.params],
      [BUF.running, Math.max(4, n.layout.running)],
      [BUF.saved, n.saved],
      [BUF.scratch, n.scratch],
      [BUF.upload, n.upload.floats],
      [LOSSES, n.losses],
      ...n.tensors,
    ]);
    for (const [name, floats] of sizes) this.buffers.set(name, this.runner.buffer(floats));
    this.list = n.kernels.map((k) => this.runner.dispatch(k, k.buffers.map((b) => this.buffer(bufferOf(b)))));
    this.staging = this.runner.stagingRing(n.upload.floats, STAGING);
  }

  buffer(name: string): GPUBuffer {
    const b = this.buffers.get(name);
    if (!b) throw new Error(`internal: no buffer '${name}'`);
    return b;
  }

  /** Dispatches per step (the copy of the batch into place not counted). */
  get dispatches(): number {
    return this.list.length;
  }

  /** Weights and running statistics from a Model's manifest and data (exportWeights()); AdamW starts afresh. */
  setWeights(manifest: WeightsManifestEntry[], data: Float32Array): void {
    const params = new Float32Array(this.net.layout.params);
    const running = new Float32Array(Math.max(4, this.net.layout.running));
    for (const e of manifest) {
      const slot = this.net.layout.byName.get(e.name);
      if (!slot) throw new Error(`weights hold '${e.name}', which the compiled step does not have`);
      (slot.trainable ? params : running).set(data.subarray(e.offset, e.offset + slot.size), slot.offset);
    }
    this.runner.write(this.buffer(BUF.params), params);
    this.runner.write(this.buffer(BUF.running), running);
  }

  /** RUWL's learnable s (it is no Model variable). */
  setExtra(name: string, values: number[]): void {
    const slot = this.net.layout.byName.get(name);
    if (!slot) throw new Error(`no parameter '${name}'`);
    this.runner.write(this.buffer(BUF.params), Float32Array.from(values), slot.offset);
  }

  /**
   * One training step: `x` holds the batch's views one after the other ([G*B, T, M]), `labels`
   * [B, E]. `index` is the step's number (from 0, across epochs: it picks the dropout masks and
   * the loss ring's slot). Resolves once the work is submitted (waiting only when STAGING steps
   * are still running).
   */
  async step(x: Float32Array, labels: Float32Array, index: number): Promise<void> {
    const n = this.net;
    this.adamStep++;
    const b1 = this.opt.beta1 ?? 0.9;
    const b2 = this.opt.beta2 ?? 0.999;
    const bc1 = 1 - b1 ** this.adamStep;
    const bc2 = 1 - b2 ** this.adamStep;
    await this.staging.submit(
      (u) => {
        u[UPLOAD.step] = index;
        u[UPLOAD.seed] = this.seed;
        u[UPLOAD.lr] = this.opt.lr;
        u[UPLOAD.decay] = 1 - this.opt.lr * this.opt.weightDecay;
        u[UPLOAD.bc1] = bc1;
        u[UPLOAD.bc2] = bc2;
        u.set(labels, n.upload.labels);
        u.set(x, n.upload.input);
      },
      (enc, from) => {
        enc.copyBufferToBuffer(from, 0, this.buffer(BUF.upload), 0, n.upload.input * 4);
        enc.copyBufferToBuffer(from, n.upload.input * 4, this.buffer(INPUT), 0, x.byteLength);
        this.runner.encode(enc, this.list);
      },
    );
  }

  /** Waits for the submitted steps. */
  done(): Promise<undefined> {
    return this.runner.device.queue.onSubmittedWorkDone();
  }

  /** (total, L1, L2, L_BT) of steps first..first+count-1 (their ring slots must not have been overwritten). */
  async losses(first: number, count: number): Promise<Float32Array> {
    const L = lossLayout(this.net.loss);
    const all = await this.runner.read(this.buffer(LOSSES), L.size);
    const out = new Float32Array(count * 4);
    for (let i = 0; i < count; i++) out.set(all.subarray(L.ring + ((first + i) % this.spec.ring) * 4, L.ring + ((first + i) % this.spec.ring) * 4 + 4), i * 4);
    return out;
  }

  /** Reads a whole buffer back (for tests and checkpoints). */
  read(name: string): Promise<Float32Array> {
    const floats = name === BUF.params || name === BUF.grads || name === BUF.moment1 || name === BUF.moment2 ? this.net.layout.params : name === BUF.running ? this.net.layout.running : name === BUF.upload ? this.net.upload.floats : (this.net.tensors.get(name) ?? 0);
    return this.runner.read(this.buffer(name), floats);
  }

  /** Weights and running statistics in the Model's manifest order (for model.bin and checkpoints). */
  async exportWeights(manifest: WeightsManifestEntry[]): Promise<Float32Array> {
    const [params, running] = await Promise.all([this.read(BUF.params), this.read(BUF.running)]);
    const size = manifest.reduce((s, e) => Math.max(s, e.offset + e.shape.reduce((a, b) => a * b, 1)), 0);
    const data = new Float32Array(size);
    for (const e of manifest) {
      const slot = this.net.layout.byName.get(e.name)!;
      data.set((slot.trainable ? params : running).subarray(slot.offset, slot.offset + slot.size), e.offset);
    }
    return data;
  }

  /** AdamW's moments by tensor name, as the tfjs optimizers export them. */
  async exportMoments(): Promise<Record<string, [Float32Array, Float32Array]>> {
    const [m, v] = await Promise.all([this.read(BUF.moment1), this.read(BUF.moment2)]);
    const out: Record<string, [Float32Array, Float32Array]> = {};
    for (const t of this.net.layout.tensors) if (t.trainable) out[t.name] = [m.slice(t.offset, t.offset + t.size), v.slice(t.offset, t.offset + t.size)];
    return out;
  }

  importMoments(step: number, moments: Record<string, [Float32Array, Float32Array]>): void {
    const m = new Float32Array(this.net.layout.params);
    const v = new Float32Array(this.net.layout.params);
    for (const t of this.net.layout.tensors) {
      const mom = moments[t.name];
      if (!t.trainable || !mom) continue;
      m.set(mom[0], t.offset);
      v.set(mom[1], t.offset);
    }
    this.runner.write(this.buffer(BUF.moment1), m);
    this.runner.write(this.buffer(BUF.moment2), v);
    this.adamStep = step;
  }

  destroy(): void {
    this.runner.destroy();
  }
}

/**
 * Prediction on the same device and the same parameter and running-statistics buffers as a training
 * step: batches of up to `batch` clips of up to `frames` frames each (shorter ones are masked past
 * their end, so every clip is scored as it would be alone, at its own length).
 */
export class CompiledInference {
  readonly net: InferenceNet;
  private readonly buffers = new Map<string, GPUBuffer>();
  private readonly list: Dispatch[];
  private readonly staging: StagingRing;

  constructor(readonly train: CompiledTwinStep, readonly batch: number, readonly frames: number) {
    const m = train.spec.model;
    this.net = buildInference(m, train.net.layout, batch, frames);
    const r = train.runner;
    this.buffers.set(BUF.params, train.buffer(BUF.params));
    this.buffers.set(BUF.running, train.buffer(BUF.running));
    this.buffers.set(BUF.scratch, r.buffer(this.net.scratch));
    this.buffers.set(BUF.upload, r.buffer(this.net.upload.floats));
    for (const [name, floats] of this.net.tensors) this.buffers.set(name, r.buffer(floats));
    this.list = this.net.kernels.map((k) => r.dispatch(k, k.buffers.map((b) => this.buffers.get(bufferOf(b))!)));
    this.staging = r.stagingRing(this.net.upload.floats, 2);
  }

  /** Predictions [clips, E] for clips given as [frames, mels] arrays (each at most `frames` long). */
  async predict(clips: Float32Array[]): Promise<Float32Array> {
    const m = this.train.spec.model;
    const E = m.outputs;
    const out = new Float32Array(clips.length * E);
    const r = this.train.runner;
    for (let first = 0; first < clips.length; first += this.batch) {
      const part = clips.slice(first, first + this.batch);
      for (const clip of part) if (clip.length / m.mels > this.frames) throw new Error(`a clip of ${clip.length / m.mels} frames is longer than this program's ${this.frames}`);
      await this.staging.submit(
        (u) => {
          u.fill(0);
          part.forEach((clip, p) => {
            const L = clip.length / m.mels;
            this.net.validRows.forEach((rows, k) => (u[this.net.upload.valid + k * this.batch + p] = rows(L)));
            u.set(clip, this.net.upload.input + p * this.frames * m.mels);
          });
        },
        (enc, from) => {
          enc.copyBufferToBuffer(from, 0, this.buffers.get(BUF.upload)!, 0, this.net.upload.input * 4);
          enc.copyBufferToBuffer(from, this.net.upload.input * 4, this.buffers.get(INPUT)!, 0, this.batch * this.frames * m.mels * 4);
          r.encode(enc, this.list);
        },
      );
      const preds = await r.read(this.buffers.get(this.net.output)!, part.length * E);
      out.set(preds, first * E);
    }
    return out;
  }
}
