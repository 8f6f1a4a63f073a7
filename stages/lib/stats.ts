// Evaluation statistics: per-emotion CCC, bootstrap confidence intervals over clips, and a paired,
// two-tailed bootstrap test between two models scored on the same clips.
import type { Random } from '../../src/random.ts';

/** CCC of two equal-length series (population moments), in float64. */
export function ccc(x: ArrayLike<number>, y: ArrayLike<number>, idx?: ArrayLike<number>): number {
  const n = idx ? idx.length : x.length;
  let mx = 0;
  let my = 0;
  for (let k = 0; k < n; k++) {
    const i = idx ? idx[k]! : k;
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  let vx = 0;
  let vy = 0;
  let cov = 0;
  for (let k = 0; k < n; k++) {
    const i = idx ? idx[k]! : k;
    const dx = x[i]! - mx;
    const dy = y[i]! - my;
    vx += dx * dx;
    vy += dy * dy;
    cov += dx * dy;
  }
  const d = vx / n + vy / n + (mx - my) ** 2;
  return d === 0 ? 0 : (2 * cov) / n / d;
}

/** Columns of a row-major [n, k] matrix. */
export function columns(rows: number[][]): Float64Array[] {
  const k = rows[0]?.length ?? 0;
  return Array.from({ length: k }, (_, j) => Float64Array.from(rows, (r) => r[j]!));
}

export function perEmotionCcc(pred: Float64Array[], truth: Float64Array[], idx?: ArrayLike<number>): number[] {
  return pred.map((p, j) => ccc(p, truth[j]!, idx));
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

export function quantile(sorted: number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface BootstrapResult {
  /** Per model: mean CCC, its 95 % CI, per-emotion CCC with CIs. */
  models: Array<{ mean: number; ci: [number, number]; perEmotion: number[]; perEmotionCi: Array<[number, number]> }>;
  /** Per model: two-tailed p of the paired difference in mean CCC against the baseline model. */
  pVsBaseline: Array<number | null>;
  resamples: number;
}

/**
 * Resamples clips with replacement (the same resample for every model: paired), `resamples` times.
 * CI: 2.5th and 97.5th percentiles. p: 2 x the smaller share of resampled differences on either side
 * of zero (at least 1 / resamples when none is).
 */
export function bootstrap(preds: Float64Array[][], truth: Float64Array[], baseline: number | number[], resamples: number, rng: Random): BootstrapResult {
  // One baseline for all, or each model's own (seeds as replicates: the baseline with its seed).
  const baseOf = (m: number) => (Array.isArray(baseline) ? baseline[m]! : baseline);
  const n = truth[0]!.length;
  const stats = preds.map(() => ({ means: [] as number[], per: truth.map(() => [] as number[]) }));
  const idx = new Int32Array(n);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < n; i++) idx[i] = rng.int(n);
    preds.forEach((p, m) => {
      const per = perEmotionCcc(p, truth, idx);
      stats[m]!.means.push(mean(per));
      per.forEach((v, j) => stats[m]!.per[j]!.push(v));
    });
  }
  const models = preds.map((p, m) => {
    const per = perEmotionCcc(p, truth);
    const sorted = [...stats[m]!.means].sort((a, b) => a - b);
    return {
      mean: mean(per),
      ci: [quantile(sorted, 0.025), quantile(sorted, 0.975)] as [number, number],
      perEmotion: per,
      perEmotionCi: stats[m]!.per.map((xs) => {
        const s = [...xs].sort((a, b) => a - b);
        return [quantile(s, 0.025), quantile(s, 0.975)] as [number, number];
      }),
    };
  });
  const pVsBaseline = preds.map((_, m) => {
    const base = baseOf(m);
    if (m === base || base < 0) return null;
    let below = 0;
    let above = 0;
    stats[m]!.means.forEach((v, r) => {
      const d = v - stats[base]!.means[r]!;
      if (d <= 0) below++;
      if (d >= 0) above++;
    });
    return Math.min(1, Math.max(1 / resamples, (2 * Math.min(below, above)) / resamples));
  });
  return { models, pVsBaseline, resamples };
}

/** Mean and sample standard deviation (n - 1; 0 for one value). */
export function meanSd(xs: number[]): { mean: number; sd: number } {
  const m = mean(xs);
  return { mean: m, sd: xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1)) : 0 };
}

/**
 * Paired, two-tailed test over replicates (training seeds): exact sign-flip permutation of the
 * paired differences. p = share of the 2^n sign assignments whose mean difference is at least as
 * far from zero as the observed one (the observed assignment included). It measures training
 * noise, which a bootstrap over clips within one seed does not; with n seeds p is never below
 * 2 / 2^n (0.25 for 3 seeds).
 */
export function signFlipTest(diffs: number[]): { mean: number; p: number } {
  const n = diffs.length;
  if (n === 0 || n > 24) throw new Error(`signFlipTest: needs 1 to 24 paired differences, got ${n}`);
  const observed = Math.abs(mean(diffs));
  let atLeast = 0;
  for (let mask = 0; mask < 1 << n; mask++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += mask & (1 << i) ? -diffs[i]! : diffs[i]!;
    // A relative tolerance, so that the observed assignment and its mirror always count.
    if (Math.abs(s / n) >= observed * (1 - 1e-12)) atLeast++;
  }
  return { mean: mean(diffs), p: atLeast / (1 << n) };
}
