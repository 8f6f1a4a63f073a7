// Log-mel parity with torchaudio, on committed clips and reference values written by
// test/reference/logmel_reference.py (MelSpectrogram(norm='slaney', mel_scale='slaney'), then
// 10 log10(max(x, 1e-10))), in both precisions the stage offers.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LogMel, type LogMelConfig } from '../stages/lib/logmel.ts';
import { readNpy } from '../stages/lib/npy.ts';
import { decodeWav } from '../stages/lib/wav.ts';
import { ROOT } from './helpers/workspace.ts';
import { NEEDS, needs } from './helpers/provision.ts';

const DIR = join(ROOT, 'test', 'fixtures', 'logmel');

interface Case {
  name: string;
  frames: number;
  config: { sample_rate: number; n_fft: number; win_length: number; hop_length: number; f_min: number; f_max: number; n_mels: number };
}

const cases = (JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as { cases: Case[] }).cases;

async function compute(c: Case, precision: 'float32' | 'float64'): Promise<Float32Array> {
  const cfg: LogMelConfig = { sampleRate: c.config.sample_rate, nFft: c.config.n_fft, winLength: c.config.win_length, hop: c.config.hop_length, nMels: c.config.n_mels, fMin: c.config.f_min, fMax: c.config.f_max, amin: 1e-10, precision };
  const wav = decodeWav(readFileSync(join(DIR, `${c.name}.wav`)));
  assert.equal(wav.sampleRate, cfg.sampleRate);
  return (await LogMel.create(cfg)).compute(wav.samples);
}

/** Largest |difference| in dB, over all values or over those within `belowPeak` dB of their frame's loudest band. */
function worst(ours: Float32Array, ref: Float32Array, nMels: number, belowPeak = Infinity): number {
  assert.equal(ours.length, ref.length, 'same number of frames');
  let w = 0;
  for (let f = 0; f < ref.length / nMels; f++) {
    const row = ref.subarray(f * nMels, (f + 1) * nMels);
    const peak = Math.max(...row);
    for (let m = 0; m < nMels; m++) if (row[m]! >= peak - belowPeak) w = Math.max(w, Math.abs(ours[f * nMels + m]! - row[m]!));
  }
  return w;
}

for (const c of cases) {
  const label = `${c.name} (${c.config.sample_rate} Hz, n_fft ${c.config.n_fft})`;

  test(`float64 log-mel matches torchaudio's float64 result: 1e-3 dB within 60 dB of each frame's peak, 1e-2 dB everywhere: ${label}`, async () => {
    // Bins 60+ dB down are window-sidelobe leakage: there the last float32 ulp of torch's window
    // and filterbank (which it builds in float32 even for float64 input) still shows.
    const ref = readNpy(join(DIR, `${c.name}.f64.npy`));
    assert.deepEqual(ref.shape, [c.frames, c.config.n_mels]);
    const ours = await compute(c, 'float64');
    const near = worst(ours, ref.data, c.config.n_mels, 60);
    const all = worst(ours, ref.data, c.config.n_mels);
    assert.ok(near <= 1e-3, `within 60 dB of the peak: max |difference| ${near.toExponential(2)} dB`);
    assert.ok(all <= 1e-2, `everywhere: max |difference| ${all.toExponential(2)} dB`);
  });

  test(`float32 log-mel matches torchaudio's float32 result: 1e-3 dB within 40 dB of each frame's peak, 0.1 dB everywhere: ${label}`, async () => {
    // Two float32 FFTs round differently; far below a frame's peak that shows in the dB value
    // (torchaudio float32 vs float64 differ by 0.069 dB on the sweep clip).
    const ref = readNpy(join(DIR, `${c.name}.npy`));
    const ours = await compute(c, 'float32');
    const near = worst(ours, ref.data, c.config.n_mels, 40);
    const all = worst(ours, ref.data, c.config.n_mels);
    assert.ok(near <= 1e-3, `within 40 dB of the peak: max |difference| ${near.toExponential(2)} dB`);
    assert.ok(all <= 0.1, `everywhere: max |difference| ${all.toExponential(2)} dB`);
  });
}


// Skipped, saying so, on a machine without the toolchain; under CI (where `npm test` installs it) it must run.
test('the committed WASM kernel is what its C source builds to', needs('wasm'), () => {
  assert.ok(NEEDS.wasm.present(), `needs ${NEEDS.wasm.packages.join(', ')}: apt-get install ${NEEDS.wasm.packages.join(' ')}`);
  const dir = join(ROOT, 'stages', 'lib', 'wasm');
  const tmp = mkdtempSync(join(tmpdir(), 'kernel-'));
  cpSync(dir, tmp, { recursive: true });
  const r = spawnSync('bash', [join(tmp, 'build.sh')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readFileSync(join(tmp, 'logmel_kernel.wasm')), readFileSync(join(dir, 'logmel_kernel.wasm')));
  rmSync(tmp, { recursive: true, force: true });
});
