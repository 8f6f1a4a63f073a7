// synth-vocal-bursts: a seeded synthetic corpus of vocal bursts in the ExVo Multi-task layout
// (data_info.csv + wav/<id>.wav), so the whole pipeline runs without the licensed ExVo data.
//
// Generative model (everything drawn from ctx.random, so the same seed gives the same bytes):
// - Speakers: country (the four ExVo countries), age 18-65, sex (sets base f0 ~ 120 or 210 Hz with
//   log-normal spread), a vocal-tract factor scaling formants, and a small per-emotion offset (the
//   "speaker effect" raters hear beyond the acoustics). Speakers do not cross splits.
// - Each burst has a latent arousal a in [0, 1] and valence v in [-1, 1]. Its acoustic parameters
//   follow from them plus noise: duration 0.5-3 s; f0 level (higher with arousal); f0 contour slope
//   in octaves over the burst (rising with valence); jitter (more for high arousal, negative
//   valence); vibrato depth (positive valence, arousal) at 5-7 Hz; breathiness (noise share, more at
//   low arousal); attack time (short at high arousal); spectral tilt (-12 to -3 dB/octave with
//   arousal); two formants, F2 raised with valence ("smile").
// - Audio: a harmonic source on the f0 track (amplitudes following the tilt) plus noise by
//   breathiness, through two formant resonators, under an attack/decay envelope.
// - Labels: the ten intensities are a fixed non-linear map of the standardised acoustic parameters
//   (MAP below: each emotion a logistic of a weighted sum, with interactions for amusement, fear
//   and triumph), plus the speaker's offsets and rater noise (sd 0.04), clipped to [0, 1]. Emotions
//   that share acoustic cues (fear and horror; awe and surprise) come out correlated, as real
//   ratings are. Test rows carry no labels, as in ExVo.
// Hidden parameters are written to params.csv beside data_info.csv, so tests can check the map.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defineStage, type Random } from '../src/stage-api.ts';
import { COLUMNS, COUNTRIES, EMOTIONS, csvLine } from './lib/exvo.ts';
import { encodeWav16 } from './lib/wav.ts';

interface Params {
  clips: number;
  speakers: number;
  sampleRate: number;
  /** Shares of speakers in Train and Val; the rest are Test. */
  trainShare: number;
  valShare: number;
  minSeconds: number;
  maxSeconds: number;
}

/** The acoustic parameters of a burst, standardised to about zero mean and unit spread. */
export const CUES = ['f0', 'slope', 'jitter', 'vibrato', 'breath', 'attack', 'tilt', 'f2', 'duration'] as const;

/** Emotion = logistic(bias + sum of weight x cue + interaction); weights per CUES order. */
export const MAP: Record<(typeof EMOTIONS)[number], { bias: number; w: number[]; interaction?: (c: number[]) => number }> = {
  Awe: { bias: -0.6, w: [0.2, 0.9, -0.3, 0.2, 0.8, 0.3, -0.4, 0.3, 0.6] },
  Excitement: { bias: -0.3, w: [0.9, 0.5, 0.1, 0.4, -0.6, -0.7, 0.6, 0.4, -0.1] },
  Amusement: { bias: -0.4, w: [0.4, 0.2, 0.2, 0.9, 0.1, -0.3, 0.3, 0.8, -0.2], interaction: (c) => 0.5 * Math.tanh(c[3]! * c[7]!) },
  Awkwardness: { bias: -0.9, w: [-0.4, -0.3, 0.5, -0.2, 0.5, 0.4, -0.5, 0.2, -0.4] },
  Fear: { bias: -0.8, w: [0.8, 0.3, 0.9, -0.3, 0.3, -0.4, 0.3, -0.5, -0.2], interaction: (c) => 0.4 * Math.max(0, c[0]! * c[2]!) },
  Horror: { bias: -1.0, w: [0.6, -0.2, 0.8, -0.4, 0.5, -0.5, 0.2, -0.7, 0.1] },
  Distress: { bias: -0.7, w: [0.3, -0.6, 0.7, -0.5, 0.4, 0.2, -0.1, -0.6, 0.5] },
  Triumph: { bias: -0.7, w: [0.7, 0.6, -0.3, 0.3, -0.7, -0.6, 0.8, 0.3, 0.2], interaction: (c) => 0.4 * Math.tanh(c[0]! + c[6]!) },
  Sadness: { bias: -0.8, w: [-0.7, -0.8, 0.2, -0.3, 0.6, 0.7, -0.8, -0.4, 0.7] },
  Surprise: { bias: -0.5, w: [0.6, 1.0, 0.1, 0.1, 0.2, -0.8, 0.3, 0.4, -0.7] },
};

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export function intensities(cues: number[], speakerOffset: number[], rater: Random): number[] {
  return EMOTIONS.map((e, i) => {
    const m = MAP[e];
    const z = m.bias + m.w.reduce((s, w, k) => s + w * cues[k]!, 0) + (m.interaction?.(cues) ?? 0);
    const y = sigmoid(z) + speakerOffset[i]! + 0.04 * rater.normal();
    return Math.min(1, Math.max(0, y));
  });
}

interface Speaker {
  id: string;
  country: string;
  age: number;
  f0: number;
  tract: number;
  offset: number[];
  split: 'Train' | 'Val' | 'Test';
}

function makeSpeakers(p: Params, rng: Random): Speaker[] {
  const order = rng.shuffle(Array.from({ length: p.speakers }, (_, i) => i));
  const nTrain = Math.round(p.speakers * p.trainShare);
  const nVal = Math.round(p.speakers * p.valShare);
  return Array.from({ length: p.speakers }, (_, i) => {
    const female = rng.float() < 0.5;
    const rank = order.indexOf(i);
    return {
      id: `Speaker_${String(i + 1).padStart(4, '0')}`,
      country: COUNTRIES[rng.int(COUNTRIES.length)]!,
      age: 18 + rng.int(48),
      f0: (female ? 210 : 120) * Math.exp(0.12 * rng.normal()),
      tract: (female ? 1.15 : 1) * Math.exp(0.05 * rng.normal()),
      offset: EMOTIONS.map(() => 0.05 * rng.normal()),
      split: rank < nTrain ? 'Train' : rank < nTrain + nVal ? 'Val' : 'Test',
    };
  });
}

interface Burst {
  cues: number[];
  audio: Float32Array;
}

/** One burst: latent affect -> acoustic parameters -> audio. */
function synthesize(sp: Speaker, p: Params, rng: Random): Burst {
  const a = rng.float();
  const v = rng.uniform(-1, 1);
  const n = () => rng.normal();
  const dur = p.minSeconds + (p.maxSeconds - p.minSeconds) * sigmoid(0.8 * n() + (0.5 - a));
  const f0 = sp.f0 * 2 ** (0.9 * a - 0.3 + 0.15 * n());
  const slope = 0.7 * v + 0.25 * n();
  const jitter = Math.max(0.002, 0.01 + 0.025 * a * (1 - v) / 2 + 0.005 * n());
  const vibrato = Math.max(0, 0.03 * (v + 1) / 2 * (0.5 + a) + 0.01 * n());
  const breath = sigmoid(1.5 * (0.5 - a) + 0.6 * n());
  const attack = 0.005 + 0.15 * sigmoid(2 * (0.5 - a) + 0.5 * n());
  const tilt = -12 + 9 * a + 1.5 * n();
  const f1 = 600 * sp.tract * Math.exp(0.1 * n());
  const f2 = 1500 * sp.tract * Math.exp(0.25 * v + 0.1 * n());
  // Standardised cues (rough centring and scale from the distributions above).
  const cues = [
    (Math.log2(f0 / sp.f0) - 0.15) / 0.4,
    slope / 0.5,
    (jitter - 0.02) / 0.01,
    (vibrato - 0.02) / 0.015,
    (breath - 0.5) / 0.25,
    (attack - 0.08) / 0.05,
    (tilt + 7.5) / 3,
    Math.log(f2 / (1500 * sp.tract)) / 0.2,
    (dur - (p.minSeconds + p.maxSeconds) / 2) / ((p.maxSeconds - p.minSeconds) / 4),
  ];
  const sr = p.sampleRate;
  const len = Math.round(dur * sr);
  const out = new Float32Array(len);
  const vibRate = 5 + 2 * rng.float();
  const harmonics = Math.max(1, Math.min(40, Math.floor(sr / 2 / (f0 * 2 ** Math.max(0, slope / 2)) - 1)));
  const amps = Float64Array.from({ length: harmonics }, (_, k) => 10 ** ((tilt * Math.log2(k + 1)) / 20));
  let phase = 0;
  let jit = 0;
  for (let t = 0; t < len; t++) {
    const x = t / len;
    jit = 0.995 * jit + 0.1 * rng.normal() * jitter;
    const f = f0 * 2 ** (slope * (x - 0.5)) * (1 + vibrato * Math.sin((2 * Math.PI * vibRate * t) / sr)) * (1 + jit);
    phase += (2 * Math.PI * f) / sr;
    if (phase > 2 * Math.PI) phase -= 2 * Math.PI;
    // sin((k+1) phase) by the Chebyshev recurrence: one multiply-add per harmonic, not a sin call.
    const c2 = 2 * Math.cos(phase);
    let sPrev = 0;
    let sCur = Math.sin(phase);
    let s = 0;
    for (let k = 0; k < harmonics; k++) {
      s += amps[k]! * sCur;
      const next = c2 * sCur - sPrev;
      sPrev = sCur;
      sCur = next;
    }
    out[t] = (1 - breath) * s * 0.3 + breath * 0.3 * rng.normal();
  }
  // Two formant resonators (2-pole), in parallel.
  const res = (fc: number, bw: number) => {
    const r = Math.exp((-Math.PI * bw) / sr);
    const c1 = 2 * r * Math.cos((2 * Math.PI * fc) / sr);
    const c2 = -r * r;
    const y = new Float32Array(len);
    let y1 = 0;
    let y2 = 0;
    for (let t = 0; t < len; t++) {
      const yt = (1 - r) * out[t]! + c1 * y1 + c2 * y2;
      y[t] = yt;
      y2 = y1;
      y1 = yt;
    }
    return y;
  };
  const r1 = res(f1, 90);
  const r2 = res(Math.min(f2, sr / 2 - 500), 120);
  const decay = dur * (0.4 + 0.4 * rng.float());
  let peak = 1e-9;
  for (let t = 0; t < len; t++) {
    const time = t / sr;
    const env = (1 - Math.exp(-time / attack)) * Math.exp(-Math.max(0, time - attack) / decay);
    out[t] = (r1[t]! + 0.7 * r2[t]!) * env;
    peak = Math.max(peak, Math.abs(out[t]!));
  }
  const gain = (0.3 + 0.5 * a) / peak;
  for (let t = 0; t < len; t++) out[t] = out[t]! * gain;
  return { cues, audio: out };
}

export default defineStage<Params>({
  description: 'Synthetic vocal-burst corpus in the ExVo Multi-task layout, from a seed.',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      clips: { type: 'integer', minimum: 3, default: 2000, description: 'Number of bursts.' },
      speakers: { type: 'integer', minimum: 3, default: 120 },
      sampleRate: { type: 'integer', minimum: 8000, default: 16000 },
      trainShare: { type: 'number', minimum: 0, maximum: 1, default: 0.5 },
      valShare: { type: 'number', minimum: 0, maximum: 1, default: 0.25 },
      minSeconds: { type: 'number', minimum: 0.1, default: 0.5 },
      maxSeconds: { type: 'number', minimum: 0.1, default: 3 },
    },
  },
  outputs: ['corpus'],
  async run(ctx) {
    const p = ctx.params;
    if (p.maxSeconds < p.minSeconds) throw new Error(`maxSeconds (${p.maxSeconds}) is below minSeconds (${p.minSeconds})`);
    const dir = ctx.outputs.corpus!;
    await mkdir(join(dir, 'wav'), { recursive: true });
    const speakers = makeSpeakers(p, ctx.random.fork('speakers'));
    const rows = [csvLine(COLUMNS)];
    const hidden = [csvLine(['File_ID', ...CUES])];
    for (let i = 0; i < p.clips; i++) {
      ctx.signal.throwIfAborted();
      const rng = ctx.random.fork(`clip-${i}`);
      const sp = speakers[rng.int(speakers.length)]!;
      const burst = synthesize(sp, p, rng);
      const id = String(10000 + i);
      const labels = sp.split === 'Test' ? EMOTIONS.map(() => '') : intensities(burst.cues, sp.offset, rng.fork('raters')).map((x) => x.toFixed(4));
      rows.push(csvLine([`[${id}]`, sp.split, sp.id, sp.country, sp.age, ...labels]));
      hidden.push(csvLine([id, ...burst.cues.map((c) => c.toFixed(4))]));
      await writeFile(join(dir, 'wav', `${id}.wav`), encodeWav16(burst.audio, p.sampleRate));
      if (i % 50 === 0) ctx.progress(i / p.clips, `${i}/${p.clips} bursts`);
    }
    await writeFile(join(dir, 'data_info.csv'), `${rows.join('\n')}\n`);
    await writeFile(join(dir, 'params.csv'), `${hidden.join('\n')}\n`);
    ctx.log.info(`${p.clips} bursts from ${p.speakers} speakers written`);
  },
});
