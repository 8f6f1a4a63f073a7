// Log-mel spectrogram, torchaudio's MelSpectrogram(norm='slaney', mel_scale='slaney') followed by
// 10 log10(max(x, amin)): periodic Hann window, centre padding by reflection, power spectrum, a
// slaney filterbank applied as a sparse product (each filter spans a few bins), then the log.
// Two paths: 'float32' (default), the precision torch computes in, runs whole clips in a small
// WebAssembly kernel (wasm/logmel_kernel.c) that shares memory with PFFFT's WASM SIMD build
// (@echogarden/pffft-wasm) and calls its FFT; 'float64' is plain JavaScript around fft.js, slower,
// for exact parity work. Two float32
// implementations round differently: bins 40+ dB below a frame's peak can differ by a few hundredths
// of a dB (torchaudio's own float32 result is 0.07 dB from its float64 one on the sweep fixture).
import PFFFT from '@echogarden/pffft-wasm/simd';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import FFT from 'fft.js';

export interface LogMelConfig {
  sampleRate: number;
  nFft: number;
  winLength: number;
  hop: number;
  nMels: number;
  fMin: number;
  fMax: number;
  /** Floor before the log (1e-10 in the reference). */
  amin: number;
  /** FFT precision: float32 (PFFFT, fast) or float64 (fft.js, exact). Default float32. */
  precision?: 'float32' | 'float64';
}

export const REFERENCE_CONFIG: LogMelConfig = { sampleRate: 16000, nFft: 512, winLength: 512, hop: 160, nMels: 64, fMin: 50, fMax: 8000, amin: 1e-10 };

// Slaney's mel scale (librosa, torchaudio mel_scale='slaney'): linear below 1 kHz, log above.
const F_SP = 200 / 3;
const MIN_LOG_HZ = 1000;
const MIN_LOG_MEL = MIN_LOG_HZ / F_SP;
const LOGSTEP = Math.log(6.4) / 27;

const DB_PER_NEPER = 10 / Math.LN10;

export function hzToMel(f: number): number {
  return f >= MIN_LOG_HZ ? MIN_LOG_MEL + Math.log(f / MIN_LOG_HZ) / LOGSTEP : f / F_SP;
}

export function melToHz(m: number): number {
  return m >= MIN_LOG_MEL ? MIN_LOG_HZ * Math.exp(LOGSTEP * (m - MIN_LOG_MEL)) : F_SP * m;
}

/** Sparse slaney filterbank: for each mel band, the first bin and the weights of its bins. */
export interface Filterbank {
  start: Int32Array;
  weights: Float64Array[];
}

const f32 = Math.fround;

/** torch.linspace in float32, as ATen computes it (from both ends towards the middle). */
function linspaceF32(start: number, end: number, steps: number): number[] {
  const a = f32(start);
  const b = f32(end);
  const step = f32(f32(b - a) / (steps - 1));
  const half = Math.floor(steps / 2);
  return Array.from({ length: steps }, (_, i) => (i < half ? f32(a + f32(step * i)) : f32(b - f32(step * (steps - i - 1)))));
}

/**
 * The slaney filterbank exactly as torchaudio builds it (melscale_fbanks, norm='slaney',
 * mel_scale='slaney'): in float32 arithmetic, step by step. Near a triangle's edge a weight is
 * tiny and its float32 rounding is large relative to it; where a loud bin sits there, that rounding
 * shows in a quiet band's dB value, so matching torchaudio means matching its arithmetic.
 */
export function slaneyFilterbank(c: LogMelConfig): Filterbank {
  const nFreqs = c.nFft / 2 + 1;
  const allFreqs = linspaceF32(0, Math.floor(c.sampleRate / 2), nFreqs);
  const mPts = linspaceF32(hzToMel(c.fMin), hzToMel(c.fMax), c.nMels + 2);
  const fSp = f32(F_SP);
  const logstep = f32(LOGSTEP);
  const fPts = mPts.map((m) => (m >= MIN_LOG_MEL ? f32(f32(MIN_LOG_HZ) * f32(Math.exp(f32(logstep * f32(m - MIN_LOG_MEL))))) : f32(fSp * m)));
  const fDiff = fPts.slice(1).map((f, i) => f32(f - fPts[i]!));
  const start = new Int32Array(c.nMels);
  const weights: Float64Array[] = [];
  for (let m = 0; m < c.nMels; m++) {
    const enorm = f32(2 / f32(fPts[m + 2]! - fPts[m]!));
    const w: number[] = [];
    let first = -1;
    for (let k = 0; k < nFreqs; k++) {
      const down = f32(f32(-f32(fPts[m]! - allFreqs[k]!)) / fDiff[m]!);
      const up = f32(f32(fPts[m + 2]! - allFreqs[k]!) / fDiff[m + 1]!);
      const v = f32(Math.max(0, Math.min(down, up)) * enorm);
      if (v > 0) {
        if (first < 0) first = k;
        w[k - first] = v;
      } else if (first >= 0) break;
    }
    start[m] = Math.max(first, 0);
    weights.push(Float64Array.from(w, (x) => x ?? 0));
  }
  return { start, weights };
}

/** Periodic Hann window of winLength, zero-padded (centred) to nFft, as torch.stft does. */
export function hannWindow(c: LogMelConfig): Float64Array {
  const w = new Float64Array(c.nFft);
  const off = Math.floor((c.nFft - c.winLength) / 2);
  // As torch.hann_window computes it, in float32 (arange * (2 pi / N), cos, * -0.5, + 0.5): deep
  // bins are window sidelobe leakage, so even the window's rounding shows there.
  const step = f32((2 * Math.PI) / c.winLength);
  for (let i = 0; i < c.winLength; i++) w[off + i] = f32(f32(f32(Math.cos(f32(i * step))) * -0.5) + 0.5);
  return w;
}

export function frameCount(samples: number, hop: number): number {
  return 1 + Math.floor(samples / hop);
}

interface Pffft {
  HEAPF32: Float32Array;
  HEAP32: Int32Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  _pffft_new_setup(n: number, kind: number): number;
  _pffft_aligned_malloc(bytes: number): number;
  _pffft_transform_ordered(setup: number, input: number, output: number, work: number, direction: number): void;
}

interface Kernel {
  logmel_clip(...args: number[]): void;
}

const KERNEL = readFileSync(new URL('./wasm/logmel_kernel.wasm', import.meta.url));
const PFFFT_WASM = join(dirname(createRequire(import.meta.url).resolve('@echogarden/pffft-wasm/simd')), 'pffft.wasm');

/**
 * PFFFT's module and the kernel, one instance pair per LogMel (and so per worker thread). PFFFT is
 * instantiated through Emscripten's instantiateWasm hook, to reach its memory (which the kernel
 * imports) and its raw transform export (which the kernel calls wasm-to-wasm, not through JS).
 */
async function instantiate(): Promise<{ pffft: Pffft; kernel: Kernel }> {
  let exports: WebAssembly.Exports | undefined;
  const pffft = (await PFFFT({
    instantiateWasm(imports: WebAssembly.Imports, receive: (i: WebAssembly.Instance) => void) {
      WebAssembly.instantiate(readFileSync(PFFFT_WASM), imports).then(({ instance }) => {
        exports = instance.exports;
        receive(instance);
      });
      return {};
    },
  } as never)) as unknown as Pffft;
  const memory = Object.values(exports!).find((e) => e instanceof WebAssembly.Memory) as WebAssembly.Memory | undefined;
  // Emscripten swaps its JS wrapper for the raw export on first call: take the raw one.
  const setup = pffft._pffft_new_setup(32, 0);
  const [a, b, c] = [0, 1, 2].map(() => pffft._pffft_aligned_malloc(128)) as [number, number, number];
  pffft._pffft_transform_ordered(setup, a, b, c, 0);
  const fft = pffft._pffft_transform_ordered;
  if (!memory || !Object.values(exports!).includes(fft as never)) throw new Error('unexpected @echogarden/pffft-wasm build: memory or transform export not found');
  const { instance } = await WebAssembly.instantiate(KERNEL, { env: { memory, fft } });
  return { pffft, kernel: instance.exports as unknown as Kernel };
}

export class LogMel {
  private readonly window: Float32Array;
  private readonly fb: Filterbank;
  /**
   * The filterbank by bin: bin k adds wLo[k] x power to band bandOf[k] - 1 and wHi[k] x power to
   * band bandOf[k] (bands shifted by one, so band -1 is a slot that is never read).
   */
  private readonly bandOf: Int32Array;
  private readonly wLo: Float32Array;
  private readonly wHi: Float32Array;
  private readonly binLo: number;
  private readonly binHi: number;
  private readonly f64?: { fft: FFT; frame: Float64Array; spectrum: number[]; power: Float64Array; bands: Float64Array };
  /** Kernel buffers in PFFFT's memory (float32 path). */
  private buffers?: { setup: number; win: number; fin: number; fout: number; work: number; bandOf: number; wLo: number; wHi: number; bands: number; sig: number; sigCap: number; out: number; outCap: number };

  private constructor(
    readonly config: LogMelConfig,
    private readonly wasm?: { pffft: Pffft; kernel: Kernel },
  ) {
    this.window = Float32Array.from(hannWindow(config)); // its values are float32 already (as torch makes them)
    this.fb = slaneyFilterbank(config);
    const nBins = config.nFft / 2 + 1;
    this.bandOf = new Int32Array(nBins).fill(-1);
    this.wLo = new Float32Array(nBins);
    this.wHi = new Float32Array(nBins);
    let lo = nBins;
    let hi = 0;
    this.fb.weights.forEach((w, m) => {
      for (let i = 0; i < w.length; i++) {
        const k = this.fb.start[m]! + i;
        if (w[i] === 0) continue;
        lo = Math.min(lo, k);
        hi = Math.max(hi, k + 1);
        if (this.bandOf[k] === -1) {
          // First band to claim this bin: slot m + 1 (band m) gets its weight.
          this.bandOf[k] = m;
          this.wHi[k] = w[i]!;
        } else if (this.bandOf[k] === m - 1) {
          // Second band: band m - 1 moves to the low slot.
          this.bandOf[k] = m;
          this.wLo[k] = this.wHi[k]!;
          this.wHi[k] = w[i]!;
        } else throw new Error(`mel band ${m} overlaps more than its neighbour at bin ${k}`);
      }
    });
    for (let k = 0; k < nBins; k++) if (this.bandOf[k] === -1) this.bandOf[k] = 0; // weights 0
    this.binLo = lo;
    this.binHi = hi;
    if (config.precision === 'float64') {
      const fft = new FFT(config.nFft);
      this.f64 = { fft, frame: new Float64Array(config.nFft), spectrum: fft.createComplexArray() as number[], power: new Float64Array(nBins), bands: new Float64Array(config.nMels + 2) };
    } else this.allocate();
  }

  static async create(config: LogMelConfig = REFERENCE_CONFIG): Promise<LogMel> {
    if (config.nFft % 32 !== 0) throw new Error(`n_fft must be a multiple of 32 for PFFFT, got ${config.nFft}`);
    if (config.winLength > config.nFft) throw new Error(`win_length ${config.winLength} exceeds n_fft ${config.nFft}`);
    return new LogMel(config, config.precision === 'float64' ? undefined : await instantiate());
  }

  frames(samples: number): number {
    return frameCount(samples, this.config.hop);
  }

  private allocate(): void {
    const { pffft } = this.wasm!;
    const { nFft, nMels } = this.config;
    const nBins = nFft / 2 + 1;
    const f = (n: number) => pffft._pffft_aligned_malloc(n * 4);
    const b = {
      setup: pffft._pffft_new_setup(nFft, 0 /* PFFFT_REAL */),
      win: f(nFft), fin: f(nFft), fout: f(nFft), work: f(nFft),
      bandOf: f(nBins), wLo: f(nBins), wHi: f(nBins), bands: f(nMels + 2),
      sig: 0, sigCap: 0, out: 0, outCap: 0,
    };
    pffft.HEAPF32.set(this.window, b.win >> 2);
    pffft.HEAP32.set(this.bandOf, b.bandOf >> 2);
    pffft.HEAPF32.set(this.wLo, b.wLo >> 2);
    pffft.HEAPF32.set(this.wHi, b.wHi >> 2);
    this.buffers = b;
  }

  /** Log-mel of one clip into `out` (frames x nMels, row-major). */
  compute(signal: Float32Array, out: Float32Array = new Float32Array(this.frames(signal.length) * this.config.nMels)): Float32Array {
    const { nFft, hop, nMels, amin } = this.config;
    const n = signal.length;
    if (n <= nFft / 2) throw new Error(`a clip of ${n} samples is too short for n_fft ${nFft} with reflection padding (needs more than ${nFft / 2})`);
    const frames = this.frames(n);
    if (this.f64) return this.computeF64(signal, out);
    const { pffft, kernel } = this.wasm!;
    const b = this.buffers!;
    if (b.sigCap < n) {
      if (b.sig) pffft._free(b.sig);
      b.sigCap = Math.max(n, 2 * b.sigCap);
      b.sig = pffft._malloc(b.sigCap * 4);
    }
    if (b.outCap < frames * nMels) {
      if (b.out) pffft._free(b.out);
      b.outCap = Math.max(frames * nMels, 2 * b.outCap);
      b.out = pffft._malloc(b.outCap * 4);
    }
    pffft.HEAPF32.set(signal, b.sig >> 2); // HEAPF32 read after malloc: growth replaces the view
    kernel.logmel_clip(b.sig, n, nFft, hop, b.win, b.setup, b.fin, b.fout, b.work, b.bandOf, b.wLo, b.wHi, this.binLo, this.binHi, b.bands, nMels, amin, b.out);
    out.set(pffft.HEAPF32.subarray(b.out >> 2, (b.out >> 2) + frames * nMels));
    return out;
  }

  private computeF64(signal: Float32Array, out: Float32Array): Float32Array {
    const { nFft, hop, nMels, amin } = this.config;
    const { fft, frame, spectrum: sp, power, bands } = this.f64!;
    const { window, bandOf, wLo, wHi, binLo, binHi } = this;
    const half = nFft / 2;
    const n = signal.length;
    const frames = this.frames(n);
    for (let t = 0; t < frames; t++) {
      // Padded index p maps to signal index p - half, reflected at both ends (no edge repeat).
      const p0 = t * hop - half;
      for (let i = 0; i < nFft; i++) {
        let j = p0 + i;
        if (j < 0) j = -j;
        else if (j >= n) j = 2 * (n - 1) - j;
        frame[i] = signal[j]! * window[i]!;
      }
      fft.realTransform(sp, frame);
      for (let k = 0; k <= half; k++) power[k] = sp[2 * k]! * sp[2 * k]! + sp[2 * k + 1]! * sp[2 * k + 1]!;
      bands.fill(0);
      for (let k = binLo; k < binHi; k++) {
        const b = bandOf[k]!;
        bands[b] += wLo[k]! * power[k]!;
        bands[b + 1] += wHi[k]! * power[k]!;
      }
      for (let m = 0; m < nMels; m++) {
        const acc = bands[m + 1]!;
        out[t * nMels + m] = DB_PER_NEPER * Math.log(acc > amin ? acc : amin);
      }
    }
    return out;
  }
}
