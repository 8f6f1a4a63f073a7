// Log-mel spectrogram, torchaudio's MelSpectrogram(norm='slaney', mel_scale='slaney') followed by
// 10 log10(max(x, amin)): periodic Hann window, centre padding by reflection, power spectrum, a
// slaney filterbank applied as a sparse product (each filter spans a few bins), then the log.
// Two FFTs: 'float32' (default) is PFFFT compiled to WASM with SIMD (@echogarden/pffft-wasm), the
// precision torch computes in; 'float64' is fft.js, slower, for exact parity work. Two float32
// implementations round differently: bins 40+ dB below a frame's peak can differ by a few hundredths
// of a dB (torchaudio's own float32 result is 0.07 dB from its float64 one on the sweep fixture).
import PFFFT from '@echogarden/pffft-wasm/simd';
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

// ln(x) from the float32 exponent and an atanh series on the mantissa: within 5e-6 dB of Math.log10
// over 1e-13..1e13 (measured), at a fraction of its cost. The input is rounded to float32, the
// precision torch computes in.
const lnF32 = new Float32Array(1);
const lnI32 = new Int32Array(lnF32.buffer);
function fastLn(x: number): number {
  lnF32[0] = x;
  const bits = lnI32[0]!;
  const e = ((bits >>> 23) & 255) - 127;
  lnI32[0] = (bits & 0x7fffff) | 0x3f800000;
  const m = lnF32[0]!;
  const u = (m - 1) / (m + 1);
  const u2 = u * u;
  return e * Math.LN2 + 2 * u * (1 + u2 * (1 / 3 + u2 * (1 / 5 + u2 * (1 / 7 + u2 / 9))));
}

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

type PffftModule = Awaited<ReturnType<typeof PFFFT>> & {
  HEAPF32: Float32Array;
  _pffft_new_setup(n: number, kind: number): number;
  _pffft_aligned_malloc(bytes: number): number;
  _pffft_transform_ordered(setup: number, input: number, output: number, work: number, direction: number): void;
};

export class LogMel {
  private readonly window: Float64Array;
  private readonly fb: Filterbank;
  private readonly power: Float64Array;
  /** The filterbank flattened: one array of weights, with each band's offset and length. */
  private readonly fbW: Float64Array;
  private readonly fbOff: Int32Array;
  private readonly fbLen: Int32Array;

  private readonly f64?: { fft: FFT; frame: Float64Array; spectrum: number[] };

  private constructor(
    readonly config: LogMelConfig,
    private readonly wasm: PffftModule,
    private readonly setup: number,
    private readonly inPtr: number,
    private readonly outPtr: number,
    private readonly workPtr: number,
  ) {
    if (config.precision === 'float64') {
      const fft = new FFT(config.nFft);
      this.f64 = { fft, frame: new Float64Array(config.nFft), spectrum: fft.createComplexArray() as number[] };
    }
    this.window = hannWindow(config);
    this.fb = slaneyFilterbank(config);
    this.power = new Float64Array(config.nFft / 2 + 1);
    this.fbLen = Int32Array.from(this.fb.weights, (w) => w.length);
    this.fbOff = new Int32Array(config.nMels);
    for (let m = 1; m < config.nMels; m++) this.fbOff[m] = this.fbOff[m - 1]! + this.fbLen[m - 1]!;
    this.fbW = new Float64Array(this.fbLen.reduce((a, b) => a + b, 0));
    this.fb.weights.forEach((w, m) => this.fbW.set(w, this.fbOff[m]!));
  }

  static async create(config: LogMelConfig = REFERENCE_CONFIG): Promise<LogMel> {
    if (config.nFft % 32 !== 0) throw new Error(`n_fft must be a multiple of 32 for PFFFT, got ${config.nFft}`);
    if (config.winLength > config.nFft) throw new Error(`win_length ${config.winLength} exceeds n_fft ${config.nFft}`);
    const wasm = (await PFFFT()) as PffftModule;
    const bytes = config.nFft * 4;
    const setup = wasm._pffft_new_setup(config.nFft, 0 /* PFFFT_REAL */);
    return new LogMel(config, wasm, setup, wasm._pffft_aligned_malloc(bytes), wasm._pffft_aligned_malloc(bytes), wasm._pffft_aligned_malloc(bytes));
  }

  frames(samples: number): number {
    return frameCount(samples, this.config.hop);
  }

  /** Log-mel of one clip into `out` (frames x nMels, row-major). */
  compute(signal: Float32Array, out: Float32Array = new Float32Array(this.frames(signal.length) * this.config.nMels)): Float32Array {
    const { nFft, hop, nMels, amin } = this.config;
    const half = nFft / 2;
    const n = signal.length;
    if (n <= half) throw new Error(`a clip of ${n} samples is too short for n_fft ${nFft} with reflection padding (needs more than ${half})`);
    const frames = this.frames(n);
    const heap = this.wasm.HEAPF32;
    const inBase = this.inPtr >> 2;
    const outBase = this.outPtr >> 2;
    const { window, power } = this;
    const { start } = this.fb;
    const { fbW, fbOff, fbLen } = this;
    const f64 = this.f64;
    for (let t = 0; t < frames; t++) {
      // Padded index p maps to signal index p - half, reflected at both ends (no edge repeat).
      const p0 = t * hop - half;
      const frame = f64 ? f64.frame : heap;
      const base = f64 ? 0 : inBase;
      if (p0 >= 0 && p0 + nFft <= n) {
        for (let i = 0; i < nFft; i++) frame[base + i] = signal[p0 + i]! * window[i]!;
      } else {
        for (let i = 0; i < nFft; i++) {
          let j = p0 + i;
          if (j < 0) j = -j;
          else if (j >= n) j = 2 * (n - 1) - j;
          frame[base + i] = signal[j]! * window[i]!;
        }
      }
      if (f64) {
        f64.fft.realTransform(f64.spectrum, f64.frame);
        const sp = f64.spectrum;
        for (let k = 0; k <= half; k++) power[k] = sp[2 * k]! * sp[2 * k]! + sp[2 * k + 1]! * sp[2 * k + 1]!;
      } else {
        this.wasm._pffft_transform_ordered(this.setup, this.inPtr, this.outPtr, this.workPtr, 0 /* forward */);
        // Ordered real output: [re0, re(N/2), re1, im1, re2, im2, ...].
        const dc = heap[outBase]!;
        const nyq = heap[outBase + 1]!;
        power[0] = dc * dc;
        power[half] = nyq * nyq;
        for (let k = 1; k < half; k++) {
          const re = heap[outBase + 2 * k]!;
          const im = heap[outBase + 2 * k + 1]!;
          power[k] = re * re + im * im;
        }
      }
      const row = t * nMels;
      for (let m = 0; m < nMels; m++) {
        const s = start[m]!;
        const len = fbLen[m]!;
        const wo = fbOff[m]!;
        let acc = 0;
        for (let k = 0; k < len; k++) acc += fbW[wo + k]! * power[s + k]!;
        out[row + m] = f64 ? DB_PER_NEPER * Math.log(acc > amin ? acc : amin) : DB_PER_NEPER * fastLn(acc > amin ? acc : amin);
      }
    }
    return out;
  }
}
