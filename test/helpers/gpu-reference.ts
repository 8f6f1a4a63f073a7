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
