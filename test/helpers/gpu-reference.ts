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
