// Training speed: step time (forward + backward + AdamW) and inference time of the small CNN and
// CNN14 on each TensorFlow.js backend present, against PyTorch on the same machine in the same run.
// CPU part (this machine): Debian's python3-torch with 2 threads.
//   BENCH_SMALL_BATCH (32), BENCH_CNN14_BATCH (8 on CPU: 4 a replica; more exceeds what tfjs-wasm
//   addresses), BENCH_STEPS (3),
//   BENCH_BACKENDS (e.g. "wasm,cpu"; default: every backend that starts, cpu only for the small CNN).
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { bundle } from '../src/bundle.js';
import { DataParallel } from '../stages/lib/tf/data-parallel.ts';
import { meanOutput } from './replica.ts';
import { join } from 'node:path';
import { startBackend, type BackendName } from '../stages/lib/tf/backend.ts';
import { measure, type Timing } from './measure.ts';

const SMALL_B = Number(process.env.BENCH_SMALL_BATCH ?? 32);
const BIG_B = Number(process.env.BENCH_CNN14_BATCH ?? 8);
const STEPS = Number(process.env.BENCH_STEPS ?? 3);
const log = (s: string) => process.stderr.write(`${s}\n`);

// Data-parallel over both cores: the main thread and one worker each hold a WASM replica.
async function dataParallel(backbone: 'small' | 'cnn14', batch: number, frames: number, steps: number): Promise<number> {
  const { files } = await bundle({ replica: join(import.meta.dirname, 'replica.ts') }, tmpdir());
  const [workerPath, bytes] = [...files][0]!;
  writeFileSync(workerPath, bytes);
  const dp = await DataParallel.start({ model: { backbone, mels: 64, outputs: 10 }, seed: 0, lr: 1e-3, weightDecay: 0.01, backend: 'wasm' }, meanOutput, 1, workerPath);
  const x = new Float32Array(batch * frames * 64).map((_, i) => Math.sin(i * 0.37));
  const times: number[] = [];
  try {
    for (let i = 0; i <= steps; i++) {
      const t0 = performance.now();
      await dp.step({ x, n: batch, frames, mels: 64 });
      if (i) times.push(performance.now() - t0);
    }
  } finally {
    await dp.close();
    rmSync(workerPath, { force: true });
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

let parallel: number | undefined;
let parallel14: number | undefined;
const wanted = (process.env.BENCH_BACKENDS ?? 'tensorflow,webgpu,wasm,cpu').split(',') as BackendName[];
const results: Record<string, { small?: Timing; cnn14?: Timing; summary: string }> = {};
for (const name of wanted) {
  let choice;
  try {
    choice = await startBackend(name);
  } catch (e) {
    log(`${name}: ${(e as Error).message}`);
    continue;
  }
  if (choice.name !== name) {
    log(`${name}: not available (${choice.skipped.find((s) => s.name === name)?.why ?? 'skipped'})`);
    continue;
  }
  log(`${choice.summary}`);
  // Plain JS takes about a minute a step: one timed step there, and no variants.
  const steps = name === 'cpu' ? 1 : STEPS;
  const small = await measure({ backbone: 'small', mels: 64, outputs: 10 }, SMALL_B, 256, steps);
  log(`  small CNN (${small.params} params, B=${SMALL_B}, 256 x 64): step ${small.stepMs.toFixed(0)} ms, inference ${small.inferMs.toFixed(0)} ms`);
  results[name] = { small, summary: choice.summary };
  if (name === 'cpu') continue; // CNN14 on plain JS: hours a step
  const tensorsSmall = await measure({ backbone: 'small', mels: 64, outputs: 10 }, SMALL_B, 256, STEPS, 'tensors');
  log(`  small CNN with per-variable tensor AdamW instead of the backend's default: step ${tensorsSmall.stepMs.toFixed(0)} ms`);
  if (name === 'wasm') {
    parallel = await dataParallel('small', SMALL_B, 256, STEPS);
    log(`  small CNN, wasm data-parallel over 2 threads: step ${parallel.toFixed(0)} ms`);
  }
  // On WASM one replica holds half the batch (a whole B=8 passes 2 GB of heap, where tfjs-wasm's
  // kernels fail): measured alone on one thread, then both replicas data-parallel.
  const cnn14B = name === 'wasm' ? Math.ceil(BIG_B / 2) : BIG_B;
  try {
    const cnn14 = await measure({ backbone: 'cnn14', mels: 64, outputs: 10 }, cnn14B, 304, Math.max(1, STEPS - 1));
    log(`  CNN14 (${cnn14.params} params, B=${cnn14B}, 304 x 64): step ${cnn14.stepMs.toFixed(0)} ms, inference ${cnn14.inferMs.toFixed(0)} ms`);
    results[name]!.cnn14 = cnn14;
    if (name === 'wasm') {
      parallel14 = await dataParallel('cnn14', BIG_B, 304, Math.max(1, STEPS - 1));
      log(`  CNN14, wasm data-parallel over 2 threads (B=${BIG_B}): step ${parallel14.toFixed(0)} ms`);
    }
  } catch (e) {
    log(`  CNN14 (B=${cnn14B}, 304 x 64): failed: ${(e as Error).message.split('\n')[0]!.slice(0, 160)}`);
  }
}

const py = spawnSync('/usr/bin/python3', [join(import.meta.dirname, 'train_torch.py'), '2', String(SMALL_B), String(BIG_B), String(STEPS)], { encoding: 'utf8' });
if (py.status !== 0) {
  log(py.stderr);
  process.exit(1);
}
const torch = JSON.parse(py.stdout) as { torch: string; small: { step_ms: number; infer_ms: number; params: number }; cnn14: { step_ms: number; infer_ms: number; params: number } };
log(`PyTorch ${torch.torch}, 2 threads: small step ${torch.small.step_ms.toFixed(0)} ms (${torch.small.params} params), inference ${torch.small.infer_ms.toFixed(0)} ms; CNN14 step ${torch.cnn14.step_ms.toFixed(0)} ms (${torch.cnn14.params} params), inference ${torch.cnn14.infer_ms.toFixed(0)} ms`);
const best = ['tensorflow', 'webgpu', 'wasm', 'cpu'].find((b) => results[b]) ?? Object.keys(results)[0]!;
const r = results[best]!;
// On WASM the figures are the data-parallel ones (both cores, as PyTorch uses): CNN14 only counts
// at the whole batch PyTorch ran.
const dp = best === 'wasm' && parallel !== undefined;
const small = dp ? Math.min(parallel!, r.small!.stepMs) : r.small!.stepMs;
const cnn14 = best === 'wasm' ? parallel14 : r.cnn14?.stepMs;
const label = dp ? 'wasm, 2 threads data-parallel' : best;
process.stdout.write(`train: small ${(small / torch.small.step_ms).toFixed(1)} x torch, cnn14 ${cnn14 !== undefined ? (cnn14 / torch.cnn14.step_ms).toFixed(1) : 'n/a'} x torch (backend ${label})\n`);
