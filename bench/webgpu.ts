// `npm run bench:webgpu`: the compiled WebGPU twin step (stages/lib/gpu/) for the small CNN and CNN14,
// both as the joint twin with a projector, B=32 per view (256 and 304 frames x 64 mels):
//  - dispatches per step at those shapes;
//  - host time per step (the upload, encoding every dispatch, the submit) on tiny shapes, so that
//    kernel time cannot hide in it, against Dawn's own floor measured in the same rounds (as many
//    trivial dispatches, pipelines and bind groups made once: ../shared/tools/dawn-dispatch-cost.mjs);
//  - where the adapter has timestamp queries, GPU time per step and per kernel with achieved TFLOP/s
//    (the real shapes on a GPU; a moderate small-CNN shape on lavapipe, where it is CPU time);
//  - on a real GPU, the step's wall time against PyTorch fp32 and TF32 on the same GPU
//    (bench/twin_torch.py, run as a server), alternating rounds.
// Where there is no GPU device (and no Vulkan driver named in VK_DRIVER_FILES) it runs on Mesa's
// lavapipe, as the tests do. The last line is the summary the issue asks for.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { openGpu, type Gpu } from '../stages/lib/gpu/device.ts';
import type { NetModel } from '../stages/lib/gpu/layout.ts';
import { Runner, type Dispatch } from '../stages/lib/gpu/runner.ts';
import { CompiledTwinStep } from '../stages/lib/gpu/step.ts';
import { buildTwin, type TwinSpec } from '../stages/lib/gpu/net.ts';
import { median, range, summary } from './stats.ts';

const log = (s: string) => process.stderr.write(`${s}\n`);
/** Achieved TFLOP/s, to 3 significant digits (lavapipe's are thousandths). */
const tflops = (flops: number, ms: number) => `${(flops / ms / 1e9).toPrecision(3)} TFLOP/s`;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
// While a promise of Dawn's is pending, its Node binding polls the device from setImmediate, making
// garbage all the while; the collections that follow (13-40 ms scavenges on lavapipe, where a step
// runs for a second) would land in whichever timed call comes next. Host time is measured with the
// heap collected first (node --expose-gc; without it, the figures include those pauses).
// A minor collection (the young generation) only: full ones every step would age out compiled code.
const gc = (globalThis as { gc?: (o: { type: 'minor' }) => void }).gc;
const collect = () => gc?.({ type: 'minor' });
if (!(globalThis as { gc?: unknown }).gc) log('run with node --expose-gc: host times will include collections of Dawn\'s polling garbage');

const hasGpuDevice = () =>
  existsSync('/dev/nvidia0') || (existsSync('/dev/dri') && readdirSync('/dev/dri').some((f) => f.startsWith('renderD')));
if (!process.env.VK_DRIVER_FILES && !hasGpuDevice()) {
  log('no GPU device here: Dawn runs on Mesa\'s lavapipe (CPU Vulkan); host times and dispatch counts hold, GPU times do not');
  const { provision } = await import('../test/helpers/provision.ts');
  if (provision(process.stderr, ['webgpu']).length) process.exit(1);
  const { useLavapipe } = await import('../test/helpers/lavapipe.ts');
  useLavapipe();
}
const gpu = await openGpu();
log(`adapter: ${gpu.adapter}${gpu.software ? ' (software)' : ''}; timestamp queries: ${gpu.timestamps ? 'yes' : 'no'}`);

type Which = 'small' | 'cnn14';
const MODELS: Record<Which, { model: NetModel; batch: number; frames: number }> = {
  small: { model: { backbone: 'small', mels: 64, outputs: 10, projector: 128 }, batch: 32, frames: 256 },
  cnn14: { model: { backbone: 'cnn14', mels: 64, outputs: 10, projector: 2048 }, batch: 32, frames: 304 },
};
/** Tiny versions for host time: the same layers, an eighth of the widths, 2 clips of 64 frames x 64 mels. */
const tiny = (w: Which): { model: NetModel; batch: number; frames: number } => {
  const widths = w === 'small' ? [16, 32, 64, 128] : [64, 128, 256, 512, 1024, 2048];
  return { model: { ...MODELS[w].model, channels: widths.map((c) => c / 8), projector: 32 }, batch: 2, frames: 64 };
};

function twinSpec(c: { model: NetModel; batch: number; frames: number }): TwinSpec {
  return { model: c.model, mode: 'joint', batch: c.batch, frames: c.frames, form: 'pooled', weights: [1, 1, 0.005], lambda: 0.005, btCorrelation: 'affine', bnStats: 'both', ring: 64 };
}

/** A compiled step with random weights and one random batch, ready to run. */
function prepare(c: { model: NetModel; batch: number; frames: number }): { step: CompiledTwinStep; x: Float32Array; labels: Float32Array } {
  const step = new CompiledTwinStep(gpu, twinSpec(c), 7, { lr: 1e-3, weightDecay: 0.01 });
  let s = 12345;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const params = Float32Array.from({ length: step.net.layout.params }, () => (rand() - 0.5) * 0.1);
  step.runner.write(step.buffer('params'), params);
  const running = new Float32Array(Math.max(4, step.net.layout.running));
  for (const t of step.net.layout.tensors) if (!t.trainable && t.name.endsWith('running_var')) running.fill(1, t.offset, t.offset + t.size);
  step.runner.write(step.buffer('running'), running);
  const x = Float32Array.from({ length: 2 * c.batch * c.frames * c.model.mels }, () => rand() * 4 - 2);
  const labels = Float32Array.from({ length: c.batch * c.model.outputs }, rand);
  return { step, x, labels };
}

/** Dawn's floor: `n` trivial dispatches over 8 pipelines, bind groups made once, one pass, one submit. */
function floorList(g: Gpu, n: number): { submit: () => void; done: () => Promise<unknown>; destroy: () => void } {
  const r = new Runner(g);
  const bufs = Array.from({ length: n + 1 }, () => r.buffer(256));
  const list: Dispatch[] = Array.from({ length: n }, (_, i) =>
    r.dispatch(
      {
        name: `floor ${i % 8}`,
        code: `// variant ${i % 8}\n@group(0) @binding(0) var<storage, read_write> a: array<f32>;\n@group(0) @binding(1) var<storage, read> b: array<f32>;\n@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) { if (id.x < arrayLength(&a)) { a[id.x] = a[id.x] * 0.5 + b[id.x]; } }`,
        groups: [4, 1, 1],
      },
      [bufs[i + 1]!, bufs[i]!],
    ),
  );
  return { submit: () => r.submit(list), done: () => r.device.queue.onSubmittedWorkDone(), destroy: () => r.destroy() };
}

// 1. Dispatches per step at the real shapes (building the list needs no device).
const dispatches = {} as Record<Which, number>;
for (const w of ['small', 'cnn14'] as const) {
  const real = buildTwin(twinSpec(MODELS[w]));
  dispatches[w] = real.kernels.length;
  log(`${w}: ${real.kernels.length} dispatches per step at B=${MODELS[w].batch} x ${MODELS[w].frames} frames (${(real.flops / 1e12).toFixed(3)} TFLOP of GEMMs a step; the tiny shape's list: ${buildTwin(twinSpec(tiny(w))).kernels.length})`);
}

// 2. Host time per step on the tiny shapes, rounds alternating the two models and Dawn's floor.
const host: Record<Which, number[]> = { small: [], cnn14: [] };
const floor: Record<Which, number[]> = { small: [], cnn14: [] };
{
  const sides = (['small', 'cnn14'] as const).map((w) => ({ w, ...prepare(tiny(w)) }));
  const floors = sides.map((s) => floorList(gpu, s.step.dispatches));
  let index = 0;
  for (const s of sides) for (let i = 0; i < 3; i++) await s.step.step(s.x, s.labels, index++); // warm-up: first submits compile lazily
  for (const f of floors) f.submit();
  await sides[0]!.step.done();
  await floors[0]!.done();
  const STEPS = 10;
  for (let round = 0; round < ROUNDS; round++) {
    for (const k of round % 2 ? [1, 0] : [0, 1]) {
      const s = sides[k]!;
      const f = floors[k]!;
      const ours: number[] = [];
      const theirs: number[] = [];
      for (let i = 0; i < STEPS; i++) {
        const t0 = performance.now();
        await s.step.step(s.x, s.labels, index++);
        ours.push(performance.now() - t0);
        await s.step.done();
        collect();
      }
      for (let i = 0; i < STEPS; i++) {
        const t0 = performance.now();
        f.submit();
        theirs.push(performance.now() - t0);
        await f.done();
        collect();
      }
      host[s.w].push(median(ours));
      floor[s.w].push(median(theirs));
    }
  }
  for (const s of sides) {
    const ratios = host[s.w].map((h, k) => h / floor[s.w][k]!);
    log(`${s.w}: host time per step ${summary(host[s.w], 3, ' ms')} for ${s.step.dispatches} dispatches (${((1000 * median(host[s.w])) / s.step.dispatches).toFixed(1)} us each); Dawn's floor for as many trivial dispatches ${summary(floor[s.w], 3, ' ms')}; ratio ${median(ratios).toFixed(2)} [${range(ratios, 2)}] over ${ROUNDS} rounds`);
    s.step.destroy();
  }
  for (const f of floors) f.destroy();
}

// 3. GPU time per kernel (timestamp queries): the real shapes on a GPU, a moderate shape on lavapipe.
const kernelShape = (w: Which) => (gpu.software ? { ...MODELS[w], batch: 4, frames: 64 } : MODELS[w]);
const kind = (name: string): string =>
  / dW( \(split-K sum\))?$/.test(name) && /conv/.test(name) ? 'conv weight gradient'
  : / dx( \(split-K sum\))?$/.test(name) && /conv/.test(name) ? 'conv input gradient'
  : /conv\d$/.test(name) ? 'conv forward'
  : /bn\d? |bn\.|bn0/.test(name) ? 'batch norm (stats, apply, backward)'
  : /^(fc1|fc_out|proj)( |$)/.test(name) ? 'dense layers'
  : /adamw/.test(name) ? 'AdamW'
  : /head/.test(name) ? 'head pooling'
  : 'losses';
if (gpu.timestamps) {
  for (const w of gpu.software ? (['small'] as const) : (['small', 'cnn14'] as const)) {
    const c = kernelShape(w);
    const { step, x, labels } = prepare(c);
    await step.step(x, labels, 0);
    await step.done();
    const runs: number[][] = [];
    for (let k = 0; k < 3; k++) runs.push((await step.runner.time(step.list))!);
    const ms = step.list.map((_, i) => median(runs.map((r) => r[i]!)));
    const total = ms.reduce((a, b) => a + b, 0);
    const flops = step.list.reduce((a, d) => a + d.flops, 0);
    log(`${w} at B=${c.batch} x ${c.frames}: GPU time of the step's kernels ${total.toFixed(2)} ms (sum of each timed alone), ${tflops(flops, total)} over its GEMMs`);
    const byKind = new Map<string, { ms: number; flops: number; n: number }>();
    step.list.forEach((d, i) => {
      const e = byKind.get(kind(d.name)) ?? { ms: 0, flops: 0, n: 0 };
      e.ms += ms[i]!;
      e.flops += d.flops;
      e.n++;
      byKind.set(kind(d.name), e);
    });
    for (const [k, e] of [...byKind].sort((a, b) => b[1].ms - a[1].ms))
      log(`  ${k.padEnd(36)} ${String(e.n).padStart(3)} dispatches ${e.ms.toFixed(2).padStart(9)} ms ${(100 * e.ms / total).toFixed(0).padStart(3)}%${e.flops ? ` ${tflops(e.flops, e.ms)}` : ''}`);
    const top = step.list.map((d, i) => ({ d, ms: ms[i]! })).sort((a, b) => b.ms - a.ms).slice(0, 12);
    log('  slowest kernels:');
    for (const { d, ms: t } of top) log(`    ${d.name.padEnd(40)} ${t.toFixed(3).padStart(9)} ms${d.flops ? ` ${tflops(d.flops, t)} (${(d.flops / 1e9).toFixed(2)} GFLOP, ${d.groups.join('x')} workgroups)` : ''}`);
    step.destroy();
  }
} else log('no timestamp queries on this adapter: no per-kernel GPU times');

// 4. On a GPU: the step's wall time against PyTorch fp32 and TF32, alternating rounds.
// BENCH_COMPARE=1 on lavapipe runs this part on the tiny shapes against PyTorch on the CPU: a check
// of the code path before a GPU is spent on it, not a measurement.
let stepRatio = 'step n/a';
const rehearse = gpu.software && process.env.BENCH_COMPARE === '1';
if (!gpu.software || rehearse) {
  const ratios: number[] = [];
  for (const w of ['small', 'cnn14'] as const) {
    const c = rehearse ? tiny(w) : MODELS[w];
    const torch = spawn(process.env.PYTHON ?? 'python3', [fileURLToPath(new URL('twin_torch.py', import.meta.url)), w, String(c.batch), String(c.frames), rehearse ? 'cpu' : 'cuda'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: torch.stdout! })[Symbol.asyncIterator]();
    const ask = async (q: string) => {
      torch.stdin!.write(`${q}\n`);
      const r = await lines.next();
      if (r.done) throw new Error('twin_torch.py ended early');
      return JSON.parse(r.value) as { ms: number };
    };
    const about = await lines.next();
    log(`${w}: PyTorch ${about.value}`);
    const { step, x, labels } = prepare(c);
    const K = w === 'small' ? 20 : 8;
    let index = 0;
    for (let i = 0; i < 3; i++) await step.step(x, labels, index++);
    await step.done();
    const ours: number[] = [];
    const fp32: number[] = [];
    const tf32: number[] = [];
    for (let round = 0; round < 5; round++) {
      const t0 = performance.now();
      for (let i = 0; i < K; i++) await step.step(x, labels, index++);
      await step.done();
      ours.push((performance.now() - t0) / K);
      fp32.push((await ask(`fp32 ${K}`)).ms);
      tf32.push((await ask(`tf32 ${K}`)).ms);
    }
    torch.stdin!.end();
    step.destroy();
    const r = ours.map((o, k) => o / fp32[k]!);
    const r32 = ours.map((o, k) => o / tf32[k]!);
    ratios.push(median(r));
    log(`${w}: step ${summary(ours, 2, ' ms')}; PyTorch fp32 ${summary(fp32, 2, ' ms')}, TF32 ${summary(tf32, 2, ' ms')}; ratio ${median(r).toFixed(2)} x fp32 [${range(r, 2)}], ${median(r32).toFixed(2)} x TF32 [${range(r32, 2)}] over 5 rounds`);
  }
  if (!rehearse) stepRatio = `step ${ratios.map((r) => r.toFixed(2)).join(' / ')} x torch fp32`;
}

const h = (w: Which) => median(host[w]).toFixed(2);
console.log(`webgpu: small ${dispatches.small} dispatches, host ${h('small')} ms; cnn14 ${dispatches.cnn14} dispatches, host ${h('cnn14')} ms; ${stepRatio} (${gpu.adapter})`);
process.exit(0);
