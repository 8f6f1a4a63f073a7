// twin-train: RRTN twin training (../shared/reference/rrtn.md). One network, two views of each clip
// (the clean log-mel and a distorted copy from the distort stage's policy) through shared weights;
// a projector (Linear + BatchNorm) on the embedding; the Barlow Twins loss on the projections and a
// CCC loss on both branches' ten outputs, weighted by mode:
//   vanilla  L1 only (the clean branch alone; the baseline)
//   joint    w1 L1 + w2 L2 + w3 L_BT  (fixed weights, default [1, 1, 0.001])
//   ruwl     Restrained Uncertainty Weight Loss, learnable s initialised [1, 1, 0.001]
// AdamW; random crops for training, whole clips for the dev evaluation after each epoch; the best
// epoch by dev mean CCC is kept. A checkpoint after each epoch (ctx.checkpointDir) lets a killed run
// resume from its last finished epoch; every random choice follows the seed, so a resumed run
// computes what an uninterrupted one would.
//
// Output `result/`: metrics.jsonl (one line per epoch: losses, dev CCC per emotion and mean, time),
// info.json (mode, backend, best epoch, parameter count), model.json + model.bin (best weights),
// predictions.json (best epoch's dev and test predictions by clip id).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { appendFile, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defineStage, type StageContext } from '../src/stage-api.ts';
import { ClipReader, readIndex, type ClipEntry } from './lib/batches.ts';
import { distort, viewRandom, type DistortionPolicy } from './lib/distort.ts';
import type { Random } from '../src/random.ts';
import { inSelectionHalf, NO_BEST, offerEpoch, type Best } from './lib/selection.ts';

interface Params {
  mode: 'vanilla' | 'joint' | 'ruwl';
  weights: [number, number, number];
  lambda: number;
  cccForm: 'pooled' | 'per-emotion';
  backbone: 'small' | 'cnn6' | 'cnn10' | 'cnn14' | 'resnet14';
  channels: number[];
  projector: number;
  epochs: number;
  batch: number;
  lr: number;
  weightDecay: number;
  crop: number;
  padDb: number;
  headDropout: number;
  btCorrelation: 'normalized' | 'affine';
  bnStats: 'both' | 'clean';
  devScoring: 'whole' | 'crops';
  selectOn: 'dev' | 'half';
  backend: 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
  /** Stop an epoch after this many batches (0: all): for quick runs. */
  maxStepsPerEpoch: number;
}

/** Which backend `auto` will pick, judged without starting one (cheap enough for every status). */
function predictedBackend(wanted: Params['backend']): string {
  if (wanted !== 'auto') return wanted;
  const require = createRequire(import.meta.url);
  const resolvable = (name: string) => {
    try {
      require.resolve(name);
      return true;
    } catch {
      return false;
    }
  };
  if (resolvable('@tensorflow/tfjs-node-gpu') || resolvable('@tensorflow/tfjs-node')) return 'tensorflow?';
  if (existsSync('/dev/nvidia0') || existsSync('/dev/dri')) return 'webgpu?';
  return 'wasm';
}

export default defineStage<Params>({
  description: 'RRTN twin training: vanilla, joint weights or RUWL; best epoch by dev mean CCC.',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      mode: { enum: ['vanilla', 'joint', 'ruwl'], default: 'joint' },
      weights: { type: 'array', items: { type: 'number', minimum: 0 }, minItems: 3, maxItems: 3, default: [1, 1, 0.001] },
      lambda: { type: 'number', minimum: 0, default: 0.001, description: 'Barlow Twins off-diagonal weight.' },
      cccForm: { enum: ['pooled', 'per-emotion'], default: 'pooled' },
      backbone: { enum: ['small', 'cnn6', 'cnn10', 'cnn14', 'resnet14'], default: 'small', description: 'small CNN; PANNs CNN6/10/14; or the RRTN authors\' ResNet14 (torchvision ResNet, BasicBlocks [2, 2, 2, 2], their training scripts\' default).' },
      channels: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 1, default: [16, 32, 64, 128] },
      projector: { type: 'integer', minimum: 1, default: 128 },
      epochs: { type: 'integer', minimum: 1, default: 5 },
      batch: { type: 'integer', minimum: 2, default: 32 },
      lr: { type: 'number', exclusiveMinimum: 0, default: 0.001 },
      weightDecay: { type: 'number', minimum: 0, default: 0.01 },
      crop: { type: 'integer', minimum: 8, default: 250 },
      selectOn: { enum: ['dev', 'half'], default: 'dev', description: 'Clips that pick the best epoch: all dev clips (the authors), or a fixed half of them by clip id, leaving the other half for the final score (evaluate then scores on that half only).' },
      devScoring: { enum: ['whole', 'crops'], default: 'whole', description: 'Dev score (and the best epoch) on whole clips (default: one number per model, no crop noise), or on random crops of `crop` frames redrawn each epoch (the authors\' code).' },
      bnStats: { enum: ['both', 'clean'], default: 'both', description: 'Which views move the BatchNorm running statistics used at inference: both (the authors\' code; the distorted view shifts them) or the clean view only.' },
      btCorrelation: { enum: ['normalized', 'affine'], default: 'normalized', description: 'The Barlow Twins correlation from the projections normalised again over the batch (default: the projector BatchNorm\'s affine weight and bias cancel), or from its affine output as is (the authors\' code).' },
      headDropout: { type: 'number', minimum: 0, maximum: 0.9, default: 0.5, description: 'Dropout before fc1 in CNN6/10/14 (PANNs: 0.5; the RRTN authors\' CNN14 has none: 0).' },
      padDb: { type: 'number', default: -100, description: 'Value (dB) that fills a crop past the end of a shorter clip: the log-mel floor, -100 (default), or 0 as the authors\' code does (the value its masks write).' },
      backend: { enum: ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'], default: 'auto' },
      maxStepsPerEpoch: { type: 'integer', minimum: 0, default: 0 },
    },
  },
  inputs: ['features', 'policy'],
  outputs: ['result'],
  fingerprint: (p) => ({ backend: predictedBackend(p.backend) }),
  run: async (ctx) => {
    try {
      await train(ctx);
    } catch (e) {
      const tf = await import('@tensorflow/tfjs-core');
      const { explainBackendFailure } = await import('./lib/tf/backend.ts');
      let backend = 'none';
      try {
        backend = tf.getBackend();
      } catch {
        // no backend started: nothing to explain
      }
      throw explainBackendFailure(e, { backend, backbone: ctx.params.backbone, batch: ctx.params.batch, frames: ctx.params.crop });
    }
  },
});

async function train(ctx: StageContext<Params>): Promise<void> {
  const tf = await import('@tensorflow/tfjs-core');
  const { startBackend } = await import('./lib/tf/backend.ts');
  const { Model } = await import('./lib/tf/models.ts');
  const { optimizerFor } = await import('./lib/tf/optimizers.ts');
  const { cccPerColumn } = await import('./lib/losses.ts');
  const { twinLoss } = await import('./lib/twin-loss.ts');
  const p = ctx.params;
  const choice = await startBackend(p.backend);
  ctx.log.info(choice.summary);
  const dir = ctx.inputs.features as string;
  const index = readIndex(dir);
  const reader = new ClipReader(dir, index);
  const policy = JSON.parse(readFileSync(ctx.inputs.policy as string, 'utf8')) as DistortionPolicy;
  const trainClips = reader.clips('Train').filter((c) => c.labels);
  const devClips = reader.clips('Val').filter((c) => c.labels);
  if (trainClips.length < p.batch) throw new Error(`only ${trainClips.length} labelled training clips for batch size ${p.batch}`);
  if (!devClips.length) throw new Error('no labelled Val clips to select the best epoch on');
  const selecting = devClips.filter((c) => p.selectOn === 'dev' || inSelectionHalf(c.id)).length;
  if (selecting < 2 || (p.selectOn === 'half' && devClips.length - selecting < 2)) throw new Error(`selectOn: half needs at least 2 labelled Val clips on each side, got ${selecting} to select on and ${devClips.length - selecting} to score on`);
  const mels = reader.mels;
  const twin = p.mode !== 'vanilla';
  const model = new Model({ backbone: p.backbone, mels, outputs: index.emotions.length, channels: p.channels, headDropout: p.headDropout, projector: twin ? p.projector : 0 }, ctx.seed);
  const s = p.mode === 'ruwl' ? tf.variable(tf.tensor1d([1, 1, 0.001]), true, `ruwl-s-${ctx.stageId}`) : undefined;
  const trainable = s ? [...model.trainable, s] : model.trainable;
  const opt = optimizerFor(choice.name, p.lr, p.weightDecay);
  const out = ctx.outputs.result!;
  await mkdir(out, { recursive: true });

  // Resume from the last finished epoch, if a killed attempt left one.
  let start = 0;
  let best: Best = NO_BEST;
  let lastLoss: number | null = null;
  const ckpt = join(ctx.checkpointDir, 'checkpoint.json');
  if (existsSync(ckpt)) {
    const c = JSON.parse(readFileSync(ckpt, 'utf8')) as { epoch: number; best: typeof best; manifest: never; s?: number[]; opt: { step: number; names: string[]; sizes: number[] } };
    const bin = new Float32Array(readFileSync(join(ctx.checkpointDir, 'weights.bin')).buffer.slice(0));
    model.importWeights(c.manifest, bin);
    const mom = new Float32Array(readFileSync(join(ctx.checkpointDir, 'optimizer.bin')).buffer.slice(0));
    const moments: Record<string, [Float32Array, Float32Array]> = {};
    let o = 0;
    c.opt.names.forEach((name, i) => {
      const n = c.opt.sizes[i]!;
      moments[name] = [mom.slice(o, o + n), mom.slice(o + n, o + 2 * n)];
      o += 2 * n;
    });
    const byPlainName = new Map(trainable.map((v) => [v.name.replace(/^m\d+\//, ''), v]));
    opt.importState({ step: c.opt.step, moments: Object.fromEntries(Object.entries(moments).map(([k, v]) => [byPlainName.get(k)?.name ?? k, v])) }, trainable);
    if (s && c.s) tf.tidy(() => s.assign(tf.tensor1d(c.s!)));
    start = c.epoch + 1;
    best = c.best;
    const done = readFileSync(join(ctx.checkpointDir, 'metrics.jsonl'), 'utf8');
    await writeFile(join(out, 'metrics.jsonl'), done);
    lastLoss = (JSON.parse(done.trim().split('\n').pop() ?? 'null') as { loss?: number } | null)?.loss ?? null;
    ctx.log.info(`resumed after epoch ${c.epoch + 1}`);
  }

  const steps = Math.floor(trainClips.length / p.batch);
  const stepsPerEpoch = p.maxStepsPerEpoch ? Math.min(steps, p.maxStepsPerEpoch) : steps;
  const frames = p.crop;
  const x1 = new Float32Array(p.batch * frames * mels);
  const x2 = new Float32Array(p.batch * frames * mels);
  const y = new Float32Array(p.batch * index.emotions.length);
  const baseline = tf.memory().numTensors;

  for (let epoch = start; epoch < p.epochs; epoch++) {
    const t0 = Date.now();
    const order = ctx.random.fork(`epoch-${epoch}`).shuffle(trainClips.map((_, i) => i));
    const cropRng = ctx.random.fork(`crop-${epoch}`);
    const sums = { total: 0, l1: 0, l2: 0, bt: 0 };
    for (let step = 0; step < stepsPerEpoch; step++) {
      ctx.signal.throwIfAborted();
      for (let b = 0; b < p.batch; b++) {
        const ci = order[step * p.batch + b]!;
        const clip = trainClips[ci]!;
        reader.crop('Train', clip, frames, cropRng, x1, b * frames * mels, p.padDb);
        y.set(clip.labels!, b * index.emotions.length);
        if (twin) {
          const view = x1.slice(b * frames * mels, (b + 1) * frames * mels);
          distort(view, frames, mels, policy, viewRandom(policy, epoch, ci));
          x2.set(view, b * frames * mels);
        }
      }
      let parts = { l1: 0, l2: 0, bt: 0 };
      const { value, grads } = tf.variableGrads(() => {
        const target = tf.tensor2d(y, [p.batch, index.emotions.length]);
        const xb = twin ? tf.tensor4d(x2, [p.batch, frames, mels, 1]) : undefined;
        const r = twinLoss(tf, model, tf.tensor4d(x1, [p.batch, frames, mels, 1]), xb, target, p, s, ctx.random);
        parts = r.parts;
        return r.total;
      }, trainable);
      opt.apply(grads, trainable);
      const total = value.dataSync()[0]!;
      tf.dispose([value, ...Object.values(grads)]);
      sums.total += total;
      sums.l1 += parts.l1;
      sums.l2 += parts.l2;
      sums.bt += parts.bt;
      ctx.progress((epoch + (step + 1) / stepsPerEpoch) / p.epochs, `epoch ${epoch + 1}/${p.epochs} step ${step + 1}/${stepsPerEpoch} loss ${total.toFixed(3)}`);
    }
    // Dev evaluation, clean branch only: whole clips, or a random crop of each redrawn every epoch.
    const dev = p.devScoring === 'whole' ? predict(tf, model, reader, 'Val', devClips, mels, p.padDb) : predictCrops(tf, model, reader, devClips, mels, p.crop, ctx.random.fork(`dev-crops-${epoch}`), p.padDb);
    // The epoch is picked on the selection clips (all dev clips, or the selection half).
    const pick = devClips.flatMap((c, i) => (p.selectOn === 'dev' || inSelectionHalf(c.id) ? [i] : []));
    const perEmotion = tf.tidy(() => Array.from(cccPerColumn(tf.tensor2d(pick.flatMap((i) => dev.row(i)), [pick.length, index.emotions.length]), tf.tensor2d(pick.flatMap((i) => devClips[i]!.labels!), [pick.length, index.emotions.length])).dataSync()));
    const meanCcc = perEmotion.reduce((a, b) => a + b, 0) / perEmotion.length;
    const n = stepsPerEpoch;
    const line = { epoch: epoch + 1, loss: sums.total / n, l1: sums.l1 / n, l2: twin ? sums.l2 / n : null, bt: twin ? sums.bt / n : null, s: s ? Array.from(s.dataSync()) : null, devCcc: meanCcc, devCccPerEmotion: Object.fromEntries(index.emotions.map((e, i) => [e, perEmotion[i]])), seconds: (Date.now() - t0) / 1000, tensors: tf.memory().numTensors - baseline };
    await appendFile(join(out, 'metrics.jsonl'), `${JSON.stringify(line)}\n`);
    lastLoss = line.loss;
    ctx.log.info(`epoch ${epoch + 1}: loss ${line.loss.toFixed(4)} dev CCC ${meanCcc.toFixed(4)} (${line.seconds.toFixed(1)} s, ${line.tensors} tensors held)`);
    const offered = offerEpoch(best, epoch, meanCcc);
    best = offered.best;
    if (offered.improved) {
      const test = reader.clips('Test');
      const testPred = predict(tf, model, reader, 'Test', test, mels, p.padDb);
      const w = model.exportWeights();
      await writeFile(join(out, 'model.bin'), new Uint8Array(w.data.buffer));
      await writeFile(join(out, 'model.json'), JSON.stringify({ spec: model.spec, variables: w.manifest }));
      await writeFile(join(out, 'predictions.json'), JSON.stringify({ emotions: index.emotions, epoch: epoch + 1, dev: Object.fromEntries(devClips.map((c, i) => [c.id, dev.row(i)])), test: Object.fromEntries(test.map((c, i) => [c.id, testPred.row(i)])) }));
    }
    await saveCheckpoint(ctx.checkpointDir, epoch, best, model, opt, trainable, s ? Array.from(s.dataSync()) : undefined, join(out, 'metrics.jsonl'));
  }
  // The numbers `pipeline exp show` tabulates (declare `metrics: [result/metrics.json]`).
  await writeFile(join(out, 'metrics.json'), JSON.stringify({ dev_ccc: best.ccc, best_epoch: best.epoch + 1, final_train_loss: lastLoss }, null, 2));
  await writeFile(join(out, 'info.json'), JSON.stringify({ stage: ctx.stageId, mode: p.mode, weights: p.weights, lambda: p.lambda, backend: choice.name, backendSummary: choice.summary, bestEpoch: best.epoch + 1, bestDevCcc: best.ccc, selectOn: p.selectOn, parameters: model.parameterCount(), seed: ctx.seed }, null, 2));
  model.dispose();
  opt.dispose();
  s?.dispose();
}

type Tf = typeof import('@tensorflow/tfjs-core');

/** Clean-branch dev predictions on one random crop of `frames` per clip (the authors' dev score). */
function predictCrops(tf: Tf, model: InstanceType<typeof import('./lib/tf/models.ts').Model>, reader: ClipReader, clips: ClipEntry[], mels: number, frames: number, rng: Random, padDb: number) {
  const k = model.spec.outputs;
  const preds = new Float32Array(clips.length * k);
  const x = new Float32Array(frames * mels);
  clips.forEach((c, i) => {
    reader.crop('Val', c, frames, rng, x, 0, padDb);
    tf.tidy(() => preds.set(model.forward(tf.tensor4d(x, [1, frames, mels, 1]), false).output.dataSync() as Float32Array, i * k));
  });
  return { preds, row: (i: number) => Array.from(preds.subarray(i * k, (i + 1) * k)) };
}

/** Clean-branch predictions for whole clips, one clip at a time (lengths differ). */
function predict(tf: Tf, model: InstanceType<typeof import('./lib/tf/models.ts').Model>, reader: ClipReader, split: string, clips: ClipEntry[], mels: number, padDb: number) {
  const k = model.spec.outputs;
  const preds = new Float32Array(clips.length * k);
  clips.forEach((c, i) => {
    const x = reader.read(split, c);
    const frames = Math.max(c.frames, 32); // the pooling needs a few frames
    const padded = frames === c.frames ? x : (() => {
      const z = new Float32Array(frames * mels).fill(padDb);
      z.set(x);
      return z;
    })();
    tf.tidy(() => preds.set(model.forward(tf.tensor4d(padded, [1, frames, mels, 1]), false).output.dataSync() as Float32Array, i * k));
  });
  return { preds, row: (i: number) => Array.from(preds.subarray(i * k, (i + 1) * k)) };
}

async function saveCheckpoint(dir: string, epoch: number, best: Best, model: InstanceType<typeof import('./lib/tf/models.ts').Model>, opt: Pick<import('./lib/tf/optimizers.ts').Optimizer, 'exportState'>, vars: Array<{ name: string }>, s: number[] | undefined, metrics: string): Promise<void> {
  const w = model.exportWeights();
  const state = opt.exportState();
  const names = vars.map((v) => v.name).filter((n) => state.moments[n]);
  const sizes = names.map((n) => state.moments[n]![0].length);
  const mom = new Float32Array(sizes.reduce((a, b) => a + 2 * b, 0));
  let o = 0;
  for (const n of names) {
    mom.set(state.moments[n]![0], o);
    mom.set(state.moments[n]![1], o + state.moments[n]![0].length);
    o += 2 * state.moments[n]![0].length;
  }
  // Written beside, then renamed: a kill mid-save leaves the previous checkpoint whole.
  const tmp = `${dir}.tmp`;
  await mkdir(tmp, { recursive: true });
  await writeFile(join(tmp, 'weights.bin'), new Uint8Array(w.data.buffer));
  await writeFile(join(tmp, 'optimizer.bin'), new Uint8Array(mom.buffer));
  await writeFile(join(tmp, 'metrics.jsonl'), readFileSync(metrics));
  await writeFile(join(tmp, 'checkpoint.json'), JSON.stringify({ epoch, best, manifest: w.manifest, s, opt: { step: state.step, names: names.map((n) => n.replace(/^m\d+\//, '')), sizes } }));
  const { rm } = await import('node:fs/promises');
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
}
