// Log-mel speed: seconds of audio per second per core, against torchaudio on one thread in the
// same run, on the same clips (compute only: decoding excluded on both sides). Also the logmel
// stage's own throughput with one and with two worker threads, for scaling across cores.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { bundle } from '../src/bundle.js';
import { Random } from '../src/random.ts';
import { LogMel, REFERENCE_CONFIG } from '../stages/lib/logmel.ts';

const CLIPS = Number(process.env.BENCH_CLIPS ?? 300);
const dir = join(tmpdir(), 'pipeline-bench-features');
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const log = (s: string) => process.stderr.write(`${s}\n`);

// Vocal-burst-like clips of 0.5-3 s: harmonics on a moving f0, plus noise.
const rng = new Random(1);
const clips: Float32Array[] = [];
for (let i = 0; i < CLIPS; i++) {
  const n = Math.round(16000 * rng.uniform(0.5, 3));
  const f0 = rng.uniform(100, 400);
  let ph = 0;
  const x = new Float32Array(n);
  for (let t = 0; t < n; t++) {
    ph += (2 * Math.PI * f0 * (1 + 0.1 * Math.sin(t / 3000))) / 16000;
    x[t] = 0.3 * Math.sin(ph) + 0.1 * Math.sin(3 * ph) + 0.01 * rng.normal();
  }
  clips.push(x);
  writeFileSync(join(dir, `${i}.raw`), new Uint8Array(x.buffer));
}
const seconds = clips.reduce((s, c) => s + c.length, 0) / 16000;
log(`${CLIPS} clips, ${seconds.toFixed(0)} s of audio`);

function ours(precision: 'float32' | 'float64', lm: LogMel): number {
  let best = 0;
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    for (const c of clips) lm.compute(c);
    best = Math.max(best, seconds / ((performance.now() - t0) / 1000));
  }
  log(`ours (${precision}, 1 thread): ${best.toFixed(0)} s of audio/s`);
  return best;
}
const f32 = ours('float32', await LogMel.create(REFERENCE_CONFIG));
ours('float64', await LogMel.create({ ...REFERENCE_CONFIG, precision: 'float64' }));

// Scaling: the same work split over worker threads, each with its own LogMel.
// Workers load the library as the engine loads stages: bundled to plain JS by esbuild.
const { files } = await bundle({ logmel: join(import.meta.dirname, '..', 'stages', 'lib', 'logmel.ts') }, dir);
const [bundlePath, bundleBytes] = [...files][0]!;
writeFileSync(bundlePath, bundleBytes);

async function threaded(n: number): Promise<number> {
  const code = `
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(pathToFileURL(bundlePath).href)}).then(async ({ LogMel, REFERENCE_CONFIG }) => {
      const lm = await LogMel.create(REFERENCE_CONFIG);
      parentPort.on('message', (clips) => { for (const c of clips) lm.compute(c); parentPort.postMessage('done'); });
      parentPort.postMessage('ready');
    });`;
  const workers = Array.from({ length: n }, () => new Worker(code, { eval: true }));
  await Promise.all(workers.map((w) => new Promise((r) => w.once('message', r))));
  const round = () => Promise.all(workers.map((w, i) => new Promise((r) => {
    w.once('message', r);
    w.postMessage(clips.filter((_, k) => k % n === i));
  })));
  await round(); // warm-up: JIT and WASM tiering
  await round();
  let rate = 0;
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    await round();
    rate = Math.max(rate, seconds / ((performance.now() - t0) / 1000));
  }
  await Promise.all(workers.map((w) => w.terminate()));
  log(`ours (float32, ${n} worker thread${n > 1 ? 's' : ''}): ${rate.toFixed(0)} s of audio/s`);
  return rate;
}
const one = await threaded(1);
const two = await threaded(2);
log(`scaling 1 -> 2 workers: ${(two / one).toFixed(2)}x (2 workers vs 1 thread in the main thread: ${(two / f32).toFixed(2)}x)`);

const py = spawnSync('/usr/bin/python3', [join(import.meta.dirname, 'features_torchaudio.py')], { input: clips.map((_, i) => join(dir, `${i}.raw`)).join('\n'), encoding: 'utf8' });
rmSync(dir, { recursive: true, force: true });
if (py.status !== 0) {
  log(py.stderr);
  process.stdout.write(`logmel: torchaudio unavailable (bench/features.sh installs python3-torchaudio); ours ${f32.toFixed(0)} s of audio/s per core\n`);
  process.exit(1);
}
const torch = Number(py.stdout.trim());
log(`torchaudio (1 thread): ${torch.toFixed(0)} s of audio/s`);
process.stdout.write(`logmel: ${(f32 / torch).toFixed(2)} x torchaudio per core (${f32.toFixed(0)} s of audio/s per core vs ${torch.toFixed(0)})\n`);
