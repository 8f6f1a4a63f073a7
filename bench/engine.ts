// Engine benchmark: a generated pipeline of N stages in layers over several GB of input files.
// Prints the cold run's bookkeeping overhead per stage, the no-op rerun time, cold hashing
// throughput, and Snakemake's dry run of the same DAG measured in the same run.
//   BENCH_STAGES (default 1000), BENCH_LAYERS (10), BENCH_GB (3): sizes.
import { spawnSync } from 'node:child_process';
import { mkdirSync, openSync, rmSync, writeFileSync, writeSync, closeSync, utimesSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, range } from './stats.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'bin', 'pipeline.js');
const N = Number(process.env.BENCH_STAGES ?? 1000);
const LAYERS = Number(process.env.BENCH_LAYERS ?? 10);
const GB = Number(process.env.BENCH_GB ?? 3);
const PER_LAYER = Math.ceil(N / LAYERS);
const FILE_MB = 256;
const FILES = Math.max(1, Math.round((GB * 1024) / FILE_MB));
const ws = join(tmpdir(), 'pipeline-bench-engine');

function log(s: string) {
  process.stderr.write(`${s}\n`);
}

function timeIt(cmd: string, args: string[], cwd: string): { s: number; out: string } {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, CI: 'true' }, maxBuffer: 1 << 28 });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { s, out: r.stdout + r.stderr };
}

function upstreamOf(layer: number, i: number): number[] {
  // Each stage reads two stages of the layer before: a DAG with fan-in and fan-out.
  return [i, (i * 7 + 3) % PER_LAYER].filter((v, k, a) => a.indexOf(v) === k).map((j) => (layer - 1) * PER_LAYER + j);
}

function generate(): void {
  rmSync(ws, { recursive: true, force: true });
  mkdirSync(join(ws, 'data'), { recursive: true });
  writeFileSync(join(ws, 'package.json'), '{"type":"module"}\n');
  const chunk = randomBytes(16 << 20);
  for (let f = 0; f < FILES; f++) {
    const fd = openSync(join(ws, 'data', `part${f}.bin`), 'w');
    for (let c = 0; c < FILE_MB / 16; c++) {
      chunk.writeUInt32LE(f * 1000 + c, 0); // every chunk differs
      writeSync(fd, chunk);
    }
    closeSync(fd);
  }
  const lines = ['# yaml-language-server: $schema=../schemas/pipeline.schema.json', `name: bench-${N}`, 'executor: inline', 'stages:'];
  const smk: string[] = [];
  for (let s = 0; s < N; s++) {
    const layer = Math.floor(s / PER_LAYER);
    const i = s % PER_LAYER;
    const from = layer === 0 ? [`data/part${i % FILES}.bin`] : upstreamOf(layer, i).map((u) => `\${stages.s${u}.outputs.out}`);
    lines.push(`  s${s}:`, `    uses: ${join(ROOT, 'bench', 'step-stage.ts')}`, `    params: { layer: ${layer}, index: ${i} }`, `    inputs: { from: [${from.map((f) => JSON.stringify(f)).join(', ')}] }`);
    const smkIn = layer === 0 ? [`data/part${i % FILES}.bin`] : upstreamOf(layer, i).map((u) => `out/s${u}.txt`);
    smk.push(`rule s${s}:\n    input: ${smkIn.map((f) => JSON.stringify(f)).join(', ')}\n    output: "out/s${s}.txt"\n    shell: "echo ${layer}:${i} > {output}"\n`);
  }
  writeFileSync(join(ws, 'bench.yaml'), `${lines.join('\n')}\n`);
  writeFileSync(join(ws, 'Snakefile'), `rule all:\n    input: ${Array.from({ length: N }, (_, s) => `"out/s${s}.txt"`).join(', ')}\n\n${smk.join('\n')}`);
  // Snakemake's no-op case: every output present and newer than its inputs.
  mkdirSync(join(ws, 'out'));
  const t = Date.now() / 1000;
  for (let s = 0; s < N; s++) {
    const p = join(ws, 'out', `s${s}.txt`);
    writeFileSync(p, 'x\n');
    utimesSync(p, t + 10 + s / 1000, t + 10 + s / 1000);
  }
}

log(`generating ${N} stages in ${LAYERS} layers over ${FILES} x ${FILE_MB} MiB of input in ${ws}`);
generate();
const bytes = FILES * FILE_MB * (1 << 20);

// Warm the engine build and the stage module cache outside the timings.
timeIt(process.execPath, [CLI, 'validate', 'bench.yaml', '--cache-dir', join(ws, 'warm-cache')], ws);
rmSync(join(ws, 'warm-cache'), { recursive: true, force: true });

// Cold hashing: the engine's file digests with no digest cache (files in the page cache).
const { DigestCache } = await import('../src/cache/digests.ts');
const fresh = new DigestCache(join(ws, 'no-state.json'));
const h0 = performance.now();
await fresh.path(join(ws, 'data'));
const hashGbs = bytes / 1e9 / ((performance.now() - h0) / 1000);
log(`cold hashing of ${(bytes / 1e9).toFixed(2)} GB: ${hashGbs.toFixed(2)} GB/s`);
// Status on an empty cache: hashes every input and plans all stages, whole process.
const statusRun = timeIt(process.execPath, [CLI, 'status', 'bench.yaml', '--json'], ws);
log(`cold status (whole process, hashing included): ${statusRun.s.toFixed(2)} s`);

const cold = timeIt(process.execPath, [CLI, 'run', 'bench.yaml', '--jobs', String(cpus().length)], ws);
const perStageMs = (cold.s * 1000) / N;
log(`cold run of ${N} stages (inputs already digested): ${cold.s.toFixed(2)} s, ${perStageMs.toFixed(2)} ms bookkeeping per stage`);

// The no-op rerun against node's own start-up, in alternating rounds (this machine is noisy: one
// side timed after the other can land on a quieter or busier minute).
const noops: number[] = [];
const bares: number[] = [];
for (let k = 0; k < 7; k++) {
  noops.push(timeIt(process.execPath, [CLI, 'run', 'bench.yaml'], ws).s);
  bares.push(timeIt(process.execPath, ['-e', ''], ws).s);
}
const noop = median(noops);
const ratios = noops.map((x, k) => x / bares[k]!);
log(`no-op rerun (median of 7 rounds, whole process): ${noop.toFixed(3)} s (${range(noops)}); node start-up alone ${median(bares).toFixed(3)} s (${range(bares)}); ratio ${median(ratios).toFixed(2)} (${range(ratios, 2)})`);
// The same with the no-op snapshot removed first: every stage's key computed and checked.
const slow: number[] = [];
for (let k = 0; k < 3; k++) {
  rmSync(join(ws, 'cache', 'snapshots'), { recursive: true, force: true });
  slow.push(timeIt(process.execPath, [CLI, 'run', 'bench.yaml'], ws).s);
}
slow.sort((a, b) => a - b);
log(`no-op rerun without the snapshot (stage by stage, median of 3): ${slow[1]!.toFixed(3)} s`);

let smkS = NaN;
if (spawnSync('snakemake', ['--version']).status === 0) {
  const runs: number[] = [];
  for (let k = 0; k < 3; k++) {
    const r = timeIt('snakemake', ['-n', '--cores', '1', '--quiet'], ws);
    if (k === 0 && !/Nothing to be done|^$/m.test(r.out)) log(`snakemake said: ${r.out.slice(0, 300)}`);
    runs.push(r.s);
  }
  runs.sort((a, b) => a - b);
  smkS = runs[1]!;
  log(`snakemake dry run of the same DAG (median of 3): ${smkS.toFixed(3)} s`);
} else log('snakemake not installed (bench/engine.sh installs it with apt-get)');

if (!process.env.BENCH_KEEP && existsSync(ws)) rmSync(ws, { recursive: true, force: true });
const ratio = smkS / noop;
process.stdout.write(`engine: no-op rerun of ${N} stages ${noop.toFixed(3)} s; hashing ${hashGbs.toFixed(2)} GB/s; snakemake dry run ${smkS.toFixed(3)} s (ratio ${ratio.toFixed(1)})\n`);
