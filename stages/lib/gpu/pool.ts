// Pooling that is not fused into batch norm: the CNN head (mean over mel bins, then max + mean over
// time, then dropout), the ResNet stem's 3x3 stride-2 max pool (padding 1) and its global average
// pool, each with its backward. The head and the global pool also run in inference over samples
// of several valid lengths (a float per sample in `upload` at `valid`).
import { dropoutKeep, RANDOM_WGSL } from './random.ts';
import { BUF, divmod, f, flat, u, type Buffer, type Kernel } from './wgsl.ts';

export interface HeadShape {
  n: number;
  t: number;
  w: number;
  c: number;
  /** Dropout on the pooled features (PANNs' before fc1): rate and layer number; none at 0. */
  dropout?: { rate: number; layer: number };
  /** Inference: each sample's valid time steps, read from `upload` at this offset (training: all t). */
  valid?: number;
}

const keepFactor = (d: HeadShape['dropout'], index: string) => (d && d.rate > 0 ? `select(0.0, ${f(1 / (1 - d.rate))}, dropout_keep(${index}, ${u(d.layer)}, ${f(d.rate)}))` : '1.0');

/**
 * x [N, T, W, C] -> f [N, T, C] (mean over W, kept for backward), fmax [N, C], e [N, C] =
 * (max over t of f + mean over t of f) * dropout.
 */
export function headForward(s: HeadShape, x: string, fbuf: string, fmax: string, e: string): Kernel {
  const drop = s.dropout && s.dropout.rate > 0;
  const buffers: Buffer[] = [{ name: x }, ...(drop || s.valid !== undefined ? [{ name: BUF.upload }] : []), { name: fbuf, write: true }, { name: fmax, write: true }, { name: e, write: true }];
  const bc = divmod('i', s.c);
  const tEnd = s.valid === undefined ? u(s.t) : `u32(${BUF.upload}[${u(s.valid)} + b])`;
  return flat('head', s.n * s.c, buffers, `  let b = ${bc.q}; let c = ${bc.r};
  let tn = ${tEnd};
  var mx = -3.4e38;
  var sum = 0.0;
  for (var t = 0u; t < tn; t = t + 1u) {
    var fs = 0.0;
    for (var w = 0u; w < ${u(s.w)}; w = w + 1u) { fs = fs + ${x}[((b * ${u(s.t)} + t) * ${u(s.w)} + w) * ${u(s.c)} + c]; }
    let fv = fs / ${f(s.w)};
    ${fbuf}[(b * ${u(s.t)} + t) * ${u(s.c)} + c] = fv;
    mx = max(mx, fv);
    sum = sum + fv;
  }
  ${fmax}[i] = mx;
  ${e}[i] = (mx + sum / f32(tn)) * ${keepFactor(s.dropout, 'i')};`, drop ? RANDOM_WGSL + dropoutKeep : '');
}

/** Gradient of headForward: every time step the maximum (ties share it, as tf.max's gradient) and the mean. */
export function headBackward(s: HeadShape, fbuf: string, fmax: string, ge: string, gx: string): Kernel {
  const drop = s.dropout && s.dropout.rate > 0;
  const buffers: Buffer[] = [{ name: fbuf }, { name: fmax }, { name: ge }, ...(drop ? [{ name: BUF.upload }] : []), { name: gx, write: true }];
  const c = divmod('i', s.c);
  const w = divmod('q', s.w);
  const t = divmod('q2', s.t);
  return flat('head backward', s.n * s.t * s.w * s.c, buffers, `  let c = ${c.r}; let q = ${c.q};
  let q2 = ${w.q};
  let t = ${t.r}; let b = ${t.q};
  let bc = b * ${u(s.c)} + c;
  let g = ${ge}[bc] * ${keepFactor(s.dropout, 'bc')};
  let fv = ${fbuf}[(b * ${u(s.t)} + t) * ${u(s.c)} + c];
  let gf = g * (select(0.0, 1.0, fv == ${fmax}[bc]) + ${f(1 / s.t)});
  ${gx}[i] = gf * ${f(1 / s.w)};`, drop ? RANDOM_WGSL + dropoutKeep : '');
}

export interface PoolShape {
  n: number;
  h: number;
  w: number;
  c: number;
}

/** The max pool's output size (3x3, stride 2, padding 1). */
export function maxPoolOut(s: PoolShape): { ho: number; wo: number } {
  return { ho: Math.floor((s.h + 2 - 3) / 2) + 1, wo: Math.floor((s.w + 2 - 3) / 2) + 1 };
}

const window = (s: PoolShape, x: string) => `fn argmax_at(b: u32, oh: u32, ow: u32, c: u32) -> vec2<f32> {
  // The first maximum in scan order (what tfjs's gradient picks), as (value, flat input index).
  var best = -3.4e38;
  var at = -1.0;
  for (var r = 0u; r < 3u; r = r + 1u) {
    for (var k = 0u; k < 3u; k = k + 1u) {
      let h = i32(oh * 2u + r) - 1i;
      let w = i32(ow * 2u + k) - 1i;
      if (h >= 0i && h < ${s.h}i && w >= 0i && w < ${s.w}i) {
        let idx = ((b * ${u(s.h)} + u32(h)) * ${u(s.w)} + u32(w)) * ${u(s.c)} + c;
        let v = ${x}[idx];
        if (v > best) { best = v; at = f32(idx); }
      }
    }
  }
  return vec2<f32>(best, at);
}`;

/** Inference (`valid`: each sample's valid output rows in `upload`): rows past it are written as 0. */
export function maxPoolForward(s: PoolShape, x: string, y: string, valid?: number): Kernel {
  const { ho, wo } = maxPoolOut(s);
  const c = divmod('i', s.c);
  const ow = divmod('q', wo);
  const oh = divmod('q2', ho);
  const masked = valid === undefined ? '' : `if (oh >= u32(${BUF.upload}[${u(valid)} + b])) { ${y}[i] = 0.0; return; }`;
  return flat('max pool', s.n * ho * wo * s.c, [{ name: x }, ...(valid === undefined ? [] : [{ name: BUF.upload }]), { name: y, write: true }], `  let c = ${c.r}; let q = ${c.q};
  let ow = ${ow.r}; let q2 = ${ow.q};
  let oh = ${oh.r}; let b = ${oh.q};
  ${masked}
  ${y}[i] = argmax_at(b, oh, ow, c).x;`, window(s, x));
}

/** Gradient of the max pool: each input sums the gradients of the windows whose first maximum it is. */
export function maxPoolBackward(s: PoolShape, x: string, gy: string, gx: string): Kernel {
  const { ho, wo } = maxPoolOut(s);
  const c = divmod('i', s.c);
  const w = divmod('q', s.w);
  const h = divmod('q2', s.h);
  return flat('max pool backward', s.n * s.h * s.w * s.c, [{ name: x }, { name: gy }, { name: gx, write: true }], `  let c = ${c.r}; let q = ${c.q};
  let w = ${w.r}; let q2 = ${w.q};
  let h = ${h.r}; let b = ${h.q};
  var g = 0.0;
  // Windows oh with 2 oh - 1 <= h <= 2 oh + 1.
  for (var oh = (h + 0u) / 2u; oh <= min((h + 1u) / 2u, ${u(ho - 1)}); oh = oh + 1u) {
    if (oh * 2u + 1u < h) { continue; }
    for (var ow = w / 2u; ow <= min((w + 1u) / 2u, ${u(wo - 1)}); ow = ow + 1u) {
      if (ow * 2u + 1u < w) { continue; }
      if (u32(argmax_at(b, oh, ow, c).y) == i) { g = g + ${gy}[((b * ${u(ho)} + oh) * ${u(wo)} + ow) * ${u(s.c)} + c]; }
    }
  }
  ${gx}[i] = g;`, window(s, x));
}

/** Mean over H and W: [N, H, W, C] -> [N, C] (inference: over each sample's valid rows of H). */
export function globalPool(s: PoolShape, x: string, y: string, valid?: number): Kernel {
  const bc = divmod('i', s.c);
  const hEnd = valid === undefined ? u(s.h) : `u32(${BUF.upload}[${u(valid)} + b])`;
  return flat('global average pool', s.n * s.c, [{ name: x }, ...(valid === undefined ? [] : [{ name: BUF.upload }]), { name: y, write: true }], `  let b = ${bc.q}; let c = ${bc.r};
  let hn = ${hEnd};
  var sum = 0.0;
  for (var h = 0u; h < hn; h = h + 1u) {
    for (var w = 0u; w < ${u(s.w)}; w = w + 1u) { sum = sum + ${x}[((b * ${u(s.h)} + h) * ${u(s.w)} + w) * ${u(s.c)} + c]; }
  }
  ${y}[i] = sum / (f32(hn) * ${f(s.w)});`);
}

export function globalPoolBackward(s: PoolShape, gy: string, gx: string): Kernel {
  const c = divmod('i', s.c);
  const b = divmod('q', s.h * s.w);
  return flat('global average pool backward', s.n * s.h * s.w * s.c, [{ name: gy }, { name: gx, write: true }], `  let c = ${c.r}; let q = ${c.q};
  let b = ${b.q};
  ${gx}[i] = ${gy}[b * ${u(s.c)} + c] * ${f(1 / (s.h * s.w))};`);
}
