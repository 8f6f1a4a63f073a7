// Float64 references for the compiled step's kernels (stages/lib/gpu/): plain loops, written from
// the definitions, so that a GPU kernel is judged against arithmetic no tile or split can touch.
// Their gradients are checked against finite differences of their own forward passes
// (test/gpu-kernels.test.ts), so the references themselves are not taken on trust either.
import type { ConvShape } from '../../stages/lib/gpu/conv.ts';

export type F64 = Float64Array;

export function outSize(s: ConvShape): { ho: number; wo: number } {
  return { ho: Math.floor((s.h + 2 * s.pad - s.kh) / s.stride) + 1, wo: Math.floor((s.w + 2 * s.pad - s.kw) / s.stride) + 1 };
}

/** Calls f(n, ho, wo, r, c, h, w) for every output pixel and kernel tap that lands inside the input. */
function eachTap(s: ConvShape, f: (n: number, ho: number, wo: number, r: number, c: number, h: number, w: number) => void): void {
  const { ho: HO, wo: WO } = outSize(s);
  for (let n = 0; n < s.n; n++)
    for (let ho = 0; ho < HO; ho++)
      for (let wo = 0; wo < WO; wo++)
        for (let r = 0; r < s.kh; r++)
          for (let c = 0; c < s.kw; c++) {
            const h = ho * s.stride + r - s.pad;
            const w = wo * s.stride + c - s.pad;
            if (h >= 0 && h < s.h && w >= 0 && w < s.w) f(n, ho, wo, r, c, h, w);
          }
}

export function convForward(s: ConvShape, x: ArrayLike<number>, k: ArrayLike<number>): F64 {
  const { ho: HO, wo: WO } = outSize(s);
  const y = new Float64Array(s.n * HO * WO * s.co);
  eachTap(s, (n, ho, wo, r, c, h, w) => {
    const yo = ((n * HO + ho) * WO + wo) * s.co;
    const xo = ((n * s.h + h) * s.w + w) * s.ci;
    for (let ci = 0; ci < s.ci; ci++) for (let co = 0; co < s.co; co++) y[yo + co]! += x[xo + ci]! * k[((r * s.kw + c) * s.ci + ci) * s.co + co]!;
  });
  return y;
}

export function convInputGrad(s: ConvShape, dy: ArrayLike<number>, k: ArrayLike<number>): F64 {
  const { ho: HO, wo: WO } = outSize(s);
  const dx = new Float64Array(s.n * s.h * s.w * s.ci);
  eachTap(s, (n, ho, wo, r, c, h, w) => {
    const yo = ((n * HO + ho) * WO + wo) * s.co;
    const xo = ((n * s.h + h) * s.w + w) * s.ci;
    for (let ci = 0; ci < s.ci; ci++) for (let co = 0; co < s.co; co++) dx[xo + ci]! += dy[yo + co]! * k[((r * s.kw + c) * s.ci + ci) * s.co + co]!;
  });
  return dx;
}

export function convWeightGrad(s: ConvShape, x: ArrayLike<number>, dy: ArrayLike<number>): F64 {
  const { ho: HO, wo: WO } = outSize(s);
  const dk = new Float64Array(s.kh * s.kw * s.ci * s.co);
  eachTap(s, (n, ho, wo, r, c, h, w) => {
    const yo = ((n * HO + ho) * WO + wo) * s.co;
    const xo = ((n * s.h + h) * s.w + w) * s.ci;
    for (let ci = 0; ci < s.ci; ci++) for (let co = 0; co < s.co; co++) dk[((r * s.kw + c) * s.ci + ci) * s.co + co]! += x[xo + ci]! * dy[yo + co]!;
  });
  return dk;
}

export function matmul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): F64 {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) c[i * n + j]! += a[i * k + p]! * b[p * n + j]!;
  return c;
}

/** Largest |a - b| over the largest |b| (a whole-tensor relative error, as the project's parity tests use). */
export function relError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Infinity;
  let err = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return scale === 0 ? err : err / scale;
}

/** What follows a batch norm in the references (as stages/lib/gpu/norm.ts's After). */
export interface AfterRef {
  residual?: ArrayLike<number>;
  relu?: boolean;
  pool?: { n: number; h: number; w: number };
  /** Keep-mask factor per output element (0 or 1/(1-rate)). */
  dropout?: ArrayLike<number>;
}

export interface BnRef {
  mean: F64;
  variance: F64;
  out: F64;
}

/** Training-mode batch norm of [groups * rows, c] with per-group statistics, then `after`. */
export function bnForward(x: ArrayLike<number>, rows: number, c: number, groups: number, gamma: ArrayLike<number>, beta: ArrayLike<number>, after: AfterRef, eps = 1e-5): BnRef {
  const mean = new Float64Array(groups * c);
  const variance = new Float64Array(groups * c);
  for (let g = 0; g < groups; g++)
    for (let ch = 0; ch < c; ch++) {
      let s = 0;
      for (let r = 0; r < rows; r++) s += x[(g * rows + r) * c + ch]!;
      const m = s / rows;
      let v = 0;
      for (let r = 0; r < rows; r++) v += (x[(g * rows + r) * c + ch]! - m) ** 2;
      mean[g * c + ch] = m;
      variance[g * c + ch] = v / rows;
    }
  const a = new Float64Array(groups * rows * c);
  for (let i = 0; i < a.length; i++) {
    const row = Math.floor(i / c);
    const ch = i % c;
    const g = Math.floor(row / rows);
    let z = ((x[i]! - mean[g * c + ch]!) / Math.sqrt(variance[g * c + ch]! + eps)) * gamma[ch]! + beta[ch]!;
    if (after.residual) z += after.residual[i]!;
    a[i] = after.relu ? Math.max(z, 0) : z;
  }
  let out = a;
  if (after.pool) {
    const { n, h, w } = after.pool;
    const [ho, wo] = [Math.floor(h / 2), Math.floor(w / 2)];
    out = new Float64Array(n * ho * wo * c);
    for (let b = 0; b < n; b++)
      for (let y = 0; y < ho; y++)
        for (let xx = 0; xx < wo; xx++)
          for (let ch = 0; ch < c; ch++) {
            const at = (yy: number, xc: number) => a[((b * h + yy) * w + xc) * c + ch]!;
            out[((b * ho + y) * wo + xx) * c + ch] = (at(2 * y, 2 * xx) + at(2 * y, 2 * xx + 1) + at(2 * y + 1, 2 * xx) + at(2 * y + 1, 2 * xx + 1)) / 4;
          }
  }
  if (after.dropout) out = out.map((v, i) => v * after.dropout![i]!);
  return { mean, variance, out };
}

/** sum(out * gout): a scalar whose gradient is gout, for finite differences. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Central finite differences of f at x, for the listed indices. */
export function finiteDiff(f: (x: F64) => number, x: ArrayLike<number>, indices: number[], h = 1e-6): number[] {
  const xs = Float64Array.from(x);
  return indices.map((i) => {
    const keep = xs[i]!;
    xs[i] = keep + h;
    const up = f(xs);
    xs[i] = keep - h;
    const down = f(xs);
    xs[i] = keep;
    return (up - down) / (2 * h);
  });
}

/** The CNN head: x [N, T, W, C] -> e [N, C] = max over t + mean over t of (mean over w), times a mask. */
export function headForward(x: ArrayLike<number>, n: number, t: number, w: number, c: number, mask?: ArrayLike<number>): F64 {
  const e = new Float64Array(n * c);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++) {
      let mx = -Infinity;
      let sum = 0;
      for (let tt = 0; tt < t; tt++) {
        let s = 0;
        for (let ww = 0; ww < w; ww++) s += x[((b * t + tt) * w + ww) * c + ch]!;
        mx = Math.max(mx, s / w);
        sum += s / w;
      }
      e[b * c + ch] = (mx + sum / t) * (mask ? mask[b * c + ch]! : 1);
    }
  return e;
}

/** 3x3 stride-2 max pool, padding 1, over [N, H, W, C]. */
export function maxPool(x: ArrayLike<number>, n: number, h: number, w: number, c: number): F64 {
  const ho = Math.floor((h - 1) / 2) + 1;
  const wo = Math.floor((w - 1) / 2) + 1;
  const y = new Float64Array(n * ho * wo * c);
  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < ho; oy++)
      for (let ox = 0; ox < wo; ox++)
        for (let ch = 0; ch < c; ch++) {
          let m = -Infinity;
          for (let r = 0; r < 3; r++)
            for (let k = 0; k < 3; k++) {
              const yy = oy * 2 + r - 1;
              const xx = ox * 2 + k - 1;
              if (yy >= 0 && yy < h && xx >= 0 && xx < w) m = Math.max(m, x[((b * h + yy) * w + xx) * c + ch]!);
            }
          y[((b * ho + oy) * wo + ox) * c + ch] = m;
        }
  return y;
}

/** Mean over H and W. */
export function globalPool(x: ArrayLike<number>, n: number, h: number, w: number, c: number): F64 {
  const y = new Float64Array(n * c);
  for (let i = 0; i < n * h * w * c; i++) y[Math.floor(i / (h * w * c)) * c + (i % c)]! += x[i]! / (h * w);
  return y;
}

/** 1 - CCC per group of [groups*b, e] predictions against labels [b, e] (pooled, or the mean of per-column CCCs). */
export function cccLosses(pred: ArrayLike<number>, labels: ArrayLike<number>, groups: number, b: number, e: number, form: 'pooled' | 'per-emotion'): number[] {
  const ccc = (p: number[], y: number[]) => {
    const n = p.length;
    const mp = p.reduce((a, v) => a + v, 0) / n;
    const my = y.reduce((a, v) => a + v, 0) / n;
    let cov = 0;
    let vp = 0;
    let vy = 0;
    for (let i = 0; i < n; i++) {
      cov += (p[i]! - mp) * (y[i]! - my);
      vp += (p[i]! - mp) ** 2;
      vy += (y[i]! - my) ** 2;
    }
    return (2 * cov / n) / (vp / n + vy / n + (mp - my) ** 2);
  };
  return Array.from({ length: groups }, (_, g) => {
    const p = Array.from({ length: b * e }, (_, i) => pred[g * b * e + i]!);
    const y = Array.from(labels);
    if (form === 'pooled') return 1 - ccc(p, y);
    let s = 0;
    for (let j = 0; j < e; j++) s += ccc(p.filter((_, i) => i % e === j), y.filter((_, i) => i % e === j));
    return 1 - s / e;
  });
}

/** The Barlow Twins term of the two views' rows of z [2b, p]. */
export function barlowTwins(z: ArrayLike<number>, b: number, p: number, lambda: number): number {
  let on = 0;
  let off = 0;
  for (let i = 0; i < p; i++)
    for (let j = 0; j < p; j++) {
      let c = 0;
      for (let r = 0; r < b; r++) c += z[r * p + i]! * z[(b + r) * p + j]!;
      c /= b;
      if (i === j) on += (c - 1) ** 2;
      else off += c * c;
    }
  return on + lambda * off;
}
