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
// The step runs behind one engine interface (lib/train-engine.ts): TensorFlow.js op by op on any
// backend, or, on WebGPU, the step compiled to this project's WGSL kernels (lib/gpu/: one command
// buffer a step; `gpuStep: tfjs` opts out). Both give the same numbers within float32 rounding, and a
// checkpoint from one resumes on the other.
//
// Output `result/`: metrics.jsonl (one line per epoch: losses, dev CCC per emotion and mean, time),
// info.json (mode, backend, best epoch, parameter count), model.json + model.bin (best weights),
// predictions.json (best epoch's dev and test predictions by clip id).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defineStage, type StageContext } from '../src/stage-api.ts';
import { ClipReader, readIndex, type ClipEntry } from './lib/batches.ts';
import { distort, viewRandom, type DistortionPolicy } from './lib/distort.ts';
import type { Random } from '../src/random.ts';
import { resumeCheckpoint, saveCheckpoint, type Checkpoint } from './lib/checkpoint.ts';
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
  gpuStep: 'compiled' | 'tfjs';
  /** Stop an epoch after this many batches (0: all): for quick runs. */
  maxStepsPerEpoch: number;
}

/** Which backend (and, on WebGPU, which step) will run, judged without starting one (cheap enough for every status). */
function predictedBackend(p: Pick<Params, 'backend' | 'gpuStep'>): string {
  const named = backendGuess(p.backend);
  return named.startsWith('webgpu') && p.gpuStep === 'compiled' ? named.replace('webgpu', 'webgpu-compiled') : named;
}

function backendGuess(wanted: Params['backend']): string {
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
      gpuStep: { enum: ['compiled', 'tfjs'], default: 'compiled', description: 'On WebGPU: the training step compiled to this project\'s WGSL kernels (one command buffer a step), or tfjs\'s WebGPU backend op by op.' },
      maxStepsPerEpoch: { type: 'integer', minimum: 0, default: 0 },
    },
  },
  inputs: ['features', 'policy'],
  outputs: ['result'],
  fingerprint: (p) => ({ backend: predictedBackend(p) }),
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
  const { CompiledEngine, TfjsEngine } = await import('./lib/train-engine.ts');
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
  const steps = Math.floor(trainClips.length / p.batch);
  const stepsPerEpoch = p.maxStepsPerEpoch ? Math.min(steps, p.maxStepsPerEpoch) : steps;
  const frames = p.crop;
  // On WebGPU the step is compiled to this project's kernels; the tfjs Model then lives on the CPU
  // backend, as the record of the weights (its ops are not what trains).
  let compiled: string | undefined;
  if (choice.name === 'webgpu' && p.gpuStep === 'compiled') {
    await tf.setBackend('cpu');
    compiled = 'cpu';
  }
  const model = new Model({ backbone: p.backbone, mels, outputs: index.emotions.length, channels: p.channels, headDropout: p.headDropout, projector: twin ? p.projector : 0 }, ctx.seed);
  const s = p.mode === 'ruwl' ? tf.variable(tf.tensor1d([1, 1, 0.001]), true, `ruwl-s-${ctx.stageId}`) : undefined;
  const setup = { tf, model, s, objective: p, batch: p.batch, frames, mels, outputs: index.emotions.length, lr: p.lr, weightDecay: p.weightDecay, seed: ctx.seed, rng: ctx.random };
  let engine: import('./lib/train-engine.ts').TrainEngine | undefined;
  if (compiled) {
    try {
      engine = await CompiledEngine.open(setup, stepsPerEpoch);
      ctx.log.info(engine.summary);
    } catch (e) {
      // What cannot be compiled trains on the tfjs path, saying why in one line.
      ctx.notice(`the compiled WebGPU step cannot run (${e instanceof Error ? e.message.split('\n')[0] : String(e)}): training on tfjs's WebGPU backend instead`);
      await tf.setBackend('webgpu');
    }
  }
  engine ??= new TfjsEngine(setup, choice.name, choice.summary, optimizerFor(choice.name, p.lr, p.weightDecay));
  const out = ctx.outputs.result!;
  await mkdir(out, { recursive: true });

  // Resume from the last finished epoch, if a killed attempt left one (from either path).
  let start = 0;
  let best: Best = NO_BEST;
  let lastLoss: number | null = null;
  const resumed = await resumeCheckpoint(ctx.checkpointDir, out, (why) => ctx.notice(`the checkpoint of a killed attempt is damaged (${why}): training from the first epoch`));
  if (resumed) {
    const c = resumed.checkpoint;
    model.importWeights(c.manifest as Parameters<typeof model.importWeights>[0], c.weights);
    engine.resume(c.step, Object.fromEntries(c.moments.map(([name, m, v]) => [name, [m, v]])), c.s);
    start = c.epoch + 1;
    best = c.best;
    lastLoss = resumed.lastLoss;
    ctx.log.info(`resumed after epoch ${c.epoch + 1}`);
  }

  const baseline = tf.memory().numTensors;
  const E = index.emotions.length;
  try {
    for (let epoch = start; epoch < p.epochs; epoch++) {
      const t0 = Date.now();
      const order = ctx.random.fork(`epoch-${epoch}`).shuffle(trainClips.map((_, i) => i));
      const cropRng = ctx.random.fork(`crop-${epoch}`);
      // The batch of a step, assembled into the engine's reused buffers.
      const fill = (step: number, x1: Float32Array, x2: Float32Array, y: Float32Array) => {
        for (let b = 0; b < p.batch; b++) {
          const ci = order[step * p.batch + b]!;
          const clip = trainClips[ci]!;
          reader.crop('Train', clip, frames, cropRng, x1, b * frames * mels, p.padDb);
          y.set(clip.labels!, b * E);
          if (twin) {
            const view = x1.slice(b * frames * mels, (b + 1) * frames * mels);
            distort(view, frames, mels, policy, viewRandom(policy, epoch, ci));
            x2.set(view, b * frames * mels);
          }
        }
      };
      const losses = await engine.epoch(epoch * stepsPerEpoch, stepsPerEpoch, fill, (k, loss) => {
        const step = k - epoch * stepsPerEpoch;
        ctx.progress((epoch + (step + 1) / stepsPerEpoch) / p.epochs, `epoch ${epoch + 1}/${p.epochs} step ${step + 1}/${stepsPerEpoch}${loss === undefined ? '' : ` loss ${loss.toFixed(3)}`}`);
      }, ctx.signal);
      const sums = losses.reduce((a, l) => ({ total: a.total + l.total, l1: a.l1 + l.l1, l2: a.l2 + l.l2, bt: a.bt + l.bt }), { total: 0, l1: 0, l2: 0, bt: 0 });
      // Dev evaluation, clean branch only: whole clips, or a random crop of each redrawn every epoch.
      const dev = rows(await engine.predict(p.devScoring === 'whole' ? wholeClips(reader, 'Val', devClips, mels, p.padDb) : cropClips(reader, devClips, mels, p.crop, ctx.random.fork(`dev-crops-${epoch}`), p.padDb)), E);
      // The epoch is picked on the selection clips (all dev clips, or the selection half).
      const pick = devClips.flatMap((c, i) => (p.selectOn === 'dev' || inSelectionHalf(c.id) ? [i] : []));
      const perEmotion = tf.tidy(() => Array.from(cccPerColumn(tf.tensor2d(pick.flatMap((i) => dev(i)), [pick.length, E]), tf.tensor2d(pick.flatMap((i) => devClips[i]!.labels!), [pick.length, E])).dataSync()));
      const meanCcc = perEmotion.reduce((a, b) => a + b, 0) / perEmotion.length;
      const n = stepsPerEpoch;
      const line = { epoch: epoch + 1, loss: sums.total / n, l1: sums.l1 / n, l2: twin ? sums.l2 / n : null, bt: twin ? sums.bt / n : null, s: (await engine.s()) ?? null, devCcc: meanCcc, devCccPerEmotion: Object.fromEntries(index.emotions.map((e, i) => [e, perEmotion[i]])), seconds: (Date.now() - t0) / 1000, tensors: tf.memory().numTensors - baseline };
      await appendFile(join(out, 'metrics.jsonl'), `${JSON.stringify(line)}\n`);
      lastLoss = line.loss;
      ctx.log.info(`epoch ${epoch + 1}: loss ${line.loss.toFixed(4)} dev CCC ${meanCcc.toFixed(4)} (${line.seconds.toFixed(1)} s, ${line.tensors} tensors held)`);
      const offered = offerEpoch(best, epoch, meanCcc);
      best = offered.best;
      if (offered.improved && p.selectOn === 'half') {
        const held = devClips.flatMap((c, i) => (inSelectionHalf(c.id) ? [] : [i]));
        const cc = tf.tidy(() => Array.from(cccPerColumn(tf.tensor2d(held.flatMap((i) => dev(i)), [held.length, E]), tf.tensor2d(held.flatMap((i) => devClips[i]!.labels!), [held.length, E])).dataSync()));
        best = { ...best, heldout: cc.reduce((a, b) => a + b, 0) / cc.length };
      }
      await engine.sync();
      if (offered.improved) {
        const test = reader.clips('Test');
        const testPred = rows(await engine.predict(wholeClips(reader, 'Test', test, mels, p.padDb)), E);
        const w = model.exportWeights();
        await writeFile(join(out, 'model.bin'), new Uint8Array(w.data.buffer));
        await writeFile(join(out, 'model.json'), JSON.stringify({ spec: model.spec, variables: w.manifest }));
        await writeFile(join(out, 'predictions.json'), JSON.stringify({ emotions: index.emotions, epoch: epoch + 1, dev: Object.fromEntries(devClips.map((c, i) => [c.id, dev(i)])), test: Object.fromEntries(test.map((c, i) => [c.id, testPred(i)])) }));
      }
      const state = await engine.optimizerState();
      const w = model.exportWeights();
      // Moments by variable name without the model's instance prefix (m<N>/): a resumed run's model is another instance.
      const moments = (s ? [...model.trainable, s] : model.trainable).flatMap((v): Checkpoint['moments'] => (state.moments[v.name] ? [[v.name.replace(/^m\d+\//, ''), ...state.moments[v.name]!]] : []));
      await saveCheckpoint(ctx.checkpointDir, { epoch, best, manifest: w.manifest, weights: w.data, s: await engine.s(), step: state.step, moments }, out, offered.improved);
    }
  } finally {
    engine.dispose();
  }
  // The numbers `pipeline exp show` tabulates (declare `metrics: [result/metrics.json]`), named for
  // the clips they come from: `select_ccc` picked the best epoch (all dev clips, or the selection
  // half: an optimistic number), `heldout_ccc` is that epoch on the other half (selectOn: half only;
  // what the evaluation reports).
  await writeFile(join(out, 'metrics.json'), JSON.stringify({ select_ccc: best.ccc, ...(best.heldout === undefined ? {} : { heldout_ccc: best.heldout }), best_epoch: best.epoch + 1, final_train_loss: lastLoss }, null, 2));
  await writeFile(join(out, 'info.json'), JSON.stringify({ stage: ctx.stageId, mode: p.mode, weights: p.weights, lambda: p.lambda, backend: engine.name, backendSummary: engine.name === choice.name ? choice.summary : `${engine.summary}; ${choice.summary}`, bestEpoch: best.epoch + 1, bestDevCcc: best.ccc, selectOn: p.selectOn, parameters: model.parameterCount(), seed: ctx.seed }, null, 2));
  model.dispose();
  s?.dispose();
}

/** Row i of predictions [clips, k]. */
function rows(preds: Float32Array, k: number): (i: number) => number[] {
  return (i) => Array.from(preds.subarray(i * k, (i + 1) * k));
}

/** Whole clips as [frames, mels] arrays (at least 32 frames: the pooling needs a few; short ones padded). */
function wholeClips(reader: ClipReader, split: string, clips: ClipEntry[], mels: number, padDb: number): Float32Array[] {
  return clips.map((c) => {
    const x = reader.read(split, c);
    const frames = Math.max(c.frames, 32);
    if (frames === c.frames) return x;
    const z = new Float32Array(frames * mels).fill(padDb);
    z.set(x);
    return z;
  });
}

/** One random crop of `frames` per clip (the authors' dev score). */
function cropClips(reader: ClipReader, clips: ClipEntry[], mels: number, frames: number, rng: Random, padDb: number): Float32Array[] {
  return clips.map((c) => {
    const x = new Float32Array(frames * mels);
    reader.crop('Val', c, frames, rng, x, 0, padDb);
    return x;
  });
}
