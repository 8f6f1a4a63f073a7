// The twin losses and the optimizer, as the tfjs path computes them (stages/lib/losses.ts,
// stages/lib/tf/optimizers.ts):
//   CCC per group (view): 1 - CCC pooled over the whole [B, E] block, or 1 - the mean of the E
//   per-emotion CCCs (population moments); Barlow Twins from c = n1^T n2 / B:
//   sum (c_ii - 1)^2 + lambda sum_{i != j} c_ij^2; the mode's total (vanilla: L1; joint: the
//   weighted sum; RUWL: L_i / s_i^2 + log(1 + s_i^2) terms and the restraint |2 - sum |s||) with the
//   coefficients d total / d L_i that seed the backward pass and the gradient of s; AdamW over the
//   flat parameter buffer in one dispatch.
// Everything scalar lives in one small buffer, `losses`: CCC statistics, the coefficients, Barlow
// Twins partial sums, and a ring of (total, L1, L2, L_BT) per step, read back once an epoch.
import { chooseSplit, gemm, GEMM_TILES, type Gemm } from './gemm.ts';
import { BUF, bindings, divmod, f, flat, u, type Kernel } from './wgsl.ts';

export const LOSSES = 'losses';

export type Mode = 'vanilla' | 'joint' | 'ruwl';

export interface LossSpec {
  mode: Mode;
  /** Rows per group (the batch), groups (1 vanilla, 2 twin), outputs per row (emotions). */
  b: number;
  groups: number;
  e: number;
  form: 'pooled' | 'per-emotion';
  weights: [number, number, number];
  lambda: number;
  /** Projector width (twin modes). */
  p: number;
  /** Offset of RUWL's s in params/grads. */
  s?: number;
  /** Offset of the labels [B, E] in `upload`. */
  labels: number;
  /** Steps the loss ring holds. */
  ring: number;
}

const STAT = 6; // mp, my, cov, vp, vy, ccc
const BT_PARTS = 64;

export interface LossLayout {
  stats: number;
  coef: number;
  bt: number;
  ring: number;
  size: number;
}

export function lossLayout(s: LossSpec): LossLayout {
  const q = s.form === 'pooled' ? 1 : s.e;
  const stats = 0;
  const coef = stats + s.groups * q * STAT;
  const bt = coef + 4;
  const ring = bt + BT_PARTS * 2;
  return { stats, coef, bt, ring, size: ring + s.ring * 4 };
}

/** Per group and column (one, pooled): means, covariance, variances and CCC of predictions and labels. */
export function cccStats(s: LossSpec, preds: string): Kernel {
  const q = s.form === 'pooled' ? 1 : s.e;
  const L = lossLayout(s);
  const n = s.form === 'pooled' ? s.b * s.e : s.b;
  // Element j of (group g, column col): its prediction and label indices.
  const at = s.form === 'pooled' ? { p: `(g * ${u(s.b * s.e)} + j)`, y: 'j' } : { p: `((g * ${u(s.b)} + j) * ${u(s.e)} + col)`, y: `(j * ${u(s.e)} + col)` };
  const code = `${bindings([{ name: preds }, { name: BUF.upload }, { name: LOSSES, write: true }])}
var<workgroup> red: array<vec3<f32>, 256>;
fn reduce3(lid: u32, v: vec3<f32>) -> vec3<f32> {
  red[lid] = v;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k = k >> 1u) {
    if (lid < k) { red[lid] = red[lid] + red[lid + k]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let col = wg.x;
  let g = wg.y;
  var a = vec3<f32>(0.0, 0.0, 0.0);
  for (var j = lid; j < ${u(n)}; j = j + 256u) { a = a + vec3<f32>(${preds}[${at.p}], ${BUF.upload}[${u(s.labels)} + ${at.y}], 0.0); }
  let sums = reduce3(lid, a);
  let mp = sums.x / ${f(n)};
  let my = sums.y / ${f(n)};
  var b = vec3<f32>(0.0, 0.0, 0.0);
  for (var j = lid; j < ${u(n)}; j = j + 256u) {
    let dp = ${preds}[${at.p}] - mp;
    let dy = ${BUF.upload}[${u(s.labels)} + ${at.y}] - my;
    b = b + vec3<f32>(dp * dy, dp * dp, dy * dy);
  }
  let m2 = reduce3(lid, b) / ${f(n)};
  if (lid == 0u) {
    let o = ${u(L.stats)} + (g * ${u(q)} + col) * ${u(STAT)};
    let d = m2.y + m2.z + (mp - my) * (mp - my);
    ${LOSSES}[o] = mp; ${LOSSES}[o + 1u] = my; ${LOSSES}[o + 2u] = m2.x; ${LOSSES}[o + 3u] = m2.y; ${LOSSES}[o + 4u] = m2.z;
    ${LOSSES}[o + 5u] = 2.0 * m2.x / d;
  }
}
`;
  return { name: 'ccc statistics', code, groups: [q, s.groups, 1], buffers: [preds, BUF.upload, LOSSES] };
}

/** c = n1^T n2 / B for the Barlow Twins term, from the two views' rows of `z` [2B, P]. */
export function btCorrelation(s: LossSpec, z: string, c: string): Gemm {
  const tile = s.p >= 64 ? GEMM_TILES.large : GEMM_TILES.small;
  return gemm({
    name: 'barlow twins correlation',
    m: s.p,
    n: s.p,
    k: s.b,
    tile,
    split: chooseSplit(s.p, s.p, s.b, tile, 128),
    loadA: { buffers: [{ name: z }], code: `fn loadA(m: u32, k: u32) -> f32 { return ${z}[k * ${u(s.p)} + m]; }` },
    loadB: { buffers: [{ name: z }], code: `fn loadB(k: u32, n: u32) -> f32 { return ${z}[(${u(s.b)} + k) * ${u(s.p)} + n]; }` },
    store: { buffers: [{ name: c, write: true }], code: `fn store(m: u32, n: u32, v: f32) { ${c}[m * ${u(s.p)} + n] = v * ${f(1 / s.b)}; }` },
    aAlong: 'm',
    bAlong: 'n',
  });
}

/** Partial sums of sum (c_ii - 1)^2 and sum_{i != j} c_ij^2, BT_PARTS workgroups over the P x P matrix. */
export function btSums(s: LossSpec, c: string): Kernel {
  const L = lossLayout(s);
  const total = s.p * s.p;
  const ij = divmod('k', s.p);
  const code = `${bindings([{ name: c }, { name: LOSSES, write: true }])}
var<workgroup> red: array<vec2<f32>, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  var a = vec2<f32>(0.0, 0.0);
  for (var k = wg.x * 256u + lid; k < ${u(total)}; k = k + ${u(256 * BT_PARTS)}) {
    let v = ${c}[k];
    if (${ij.q} == ${ij.r}) { a.x = a.x + (v - 1.0) * (v - 1.0); } else { a.y = a.y + v * v; }
  }
  red[lid] = a;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k = k >> 1u) {
    if (lid < k) { red[lid] = red[lid] + red[lid + k]; }
    workgroupBarrier();
  }
  if (lid == 0u) { ${LOSSES}[${u(L.bt)} + wg.x * 2u] = red[0].x; ${LOSSES}[${u(L.bt)} + wg.x * 2u + 1u] = red[0].y; }
}
`;
  return { name: 'barlow twins sums', code, groups: [BT_PARTS, 1, 1], buffers: [c, LOSSES] };
}

/**
 * The losses, the total by mode, the coefficients d total / d (L1, L2, L_BT) for the backward
 * pass, RUWL's d total / d s into `grads`, and (total, L1, L2, L_BT) into the ring slot of this step.
 */
export function combine(s: LossSpec): Kernel {
  const L = lossLayout(s);
  const q = s.form === 'pooled' ? 1 : s.e;
  const twin = s.groups === 2;
  const lossOf = (g: number) => `(1.0 - (${Array.from({ length: q }, (_, c) => `${LOSSES}[${u(L.stats + (g * q + c) * STAT + 5)}]`).join(' + ')}) * ${f(1 / q)})`;
  const ruwl = s.mode === 'ruwl';
  const buffers = [{ name: BUF.upload }, ...(ruwl ? [{ name: BUF.params }, { name: BUF.grads, write: true }] : []), { name: LOSSES, write: true }];
  const sAt = (k: number) => `${BUF.params}[${u(s.s! + k)}]`;
  let total: string;
  if (!twin) total = `  let total = l1;\n  ${LOSSES}[${u(L.coef)}] = 1.0;`;
  else if (!ruwl) {
    const [w1, w2, w3] = s.weights;
    total = `  let total = l1 * ${f(w1)} + l2 * ${f(w2)} + bt * ${f(w3)};
  ${LOSSES}[${u(L.coef)}] = ${f(w1)}; ${LOSSES}[${u(L.coef + 1)}] = ${f(w2)}; ${LOSSES}[${u(L.coef + 2)}] = ${f(w3)};`;
  } else {
    total = `  let s1 = ${sAt(0)}; let s2 = ${sAt(1)}; let s3 = ${sAt(2)};
  let q1 = s1 * s1; let q2 = s2 * s2; let q3 = s3 * s3;
  let sumAbs = abs(s1) + abs(s2) + abs(s3);
  let total = l1 / q1 + log(1.0 + q1) + l2 / q2 + log(1.0 + q2) + bt * 1e-8 / q3 + log(1.0 + q3) + abs(2.0 - sumAbs);
  ${LOSSES}[${u(L.coef)}] = 1.0 / q1; ${LOSSES}[${u(L.coef + 1)}] = 1.0 / q2; ${LOSSES}[${u(L.coef + 2)}] = 1e-8 / q3;
  // d |2 - sum|s|| / d s_i = sign(2 - sum|s|) * -sign(s_i) (sign(0) = 0, as tf.abs's gradient).
  let r = -sign(2.0 - sumAbs);
  ${BUF.grads}[${u(s.s!)}] = -2.0 * l1 / (q1 * s1) + 2.0 * s1 / (1.0 + q1) + r * sign(s1);
  ${BUF.grads}[${u(s.s! + 1)}] = -2.0 * l2 / (q2 * s2) + 2.0 * s2 / (1.0 + q2) + r * sign(s2);
  ${BUF.grads}[${u(s.s! + 2)}] = -2.0 * bt * 1e-8 / (q3 * s3) + 2.0 * s3 / (1.0 + q3) + r * sign(s3);`;
  }
  const bt = twin
    ? `  var on = 0.0; var off = 0.0;
  for (var k = 0u; k < ${u(BT_PARTS)}; k = k + 1u) { on = on + ${LOSSES}[${u(L.bt)} + 2u * k]; off = off + ${LOSSES}[${u(L.bt)} + 2u * k + 1u]; }
  let bt = on + ${f(s.lambda)} * off;
  let l2 = ${lossOf(1)};`
    : '  let bt = 0.0; let l2 = 0.0;';
  return flat('losses', 1, buffers, `  let l1 = ${lossOf(0)};
${bt}
${total}
  let slot = ${u(L.ring)} + (u32(${BUF.upload}[0]) % ${u(s.ring)}) * 4u;
  ${LOSSES}[slot] = total; ${LOSSES}[slot + 1u] = l1; ${LOSSES}[slot + 2u] = l2; ${LOSSES}[slot + 3u] = bt;`);
}

/** d total / d predictions [G*B, E] into `gpred`, from the CCC statistics and the coefficients. */
export function cccGrad(s: LossSpec, preds: string, gpred: string): Kernel {
  const L = lossLayout(s);
  const q = s.form === 'pooled' ? 1 : s.e;
  const n = s.form === 'pooled' ? s.b * s.e : s.b;
  const ge = divmod('i', s.e);
  const gb = divmod('row', s.b);
  return flat('ccc gradient', s.groups * s.b * s.e, [{ name: preds }, { name: BUF.upload }, { name: LOSSES }, { name: gpred, write: true }], `  let row = ${ge.q}; let col = ${ge.r};
  let g = ${gb.q}; let b = ${gb.r};
  let o = ${u(L.stats)} + (g * ${u(q)} + ${q === 1 ? '0u' : 'col'}) * ${u(STAT)};
  let mp = ${LOSSES}[o]; let my = ${LOSSES}[o + 1u]; let cov = ${LOSSES}[o + 2u];
  let d = ${LOSSES}[o + 3u] + ${LOSSES}[o + 4u] + (mp - my) * (mp - my);
  let p = ${preds}[i];
  let y = ${BUF.upload}[${u(s.labels)} + b * ${u(s.e)} + col];
  let dccc = (2.0 * (y - my) * d - 2.0 * cov * (2.0 * (p - mp) + 2.0 * (mp - my))) / (${f(n)} * d * d);
  ${gpred}[i] = -${LOSSES}[${u(L.coef)} + g] * dccc * ${f(1 / q)};`);
}

/**
 * Gradient of the Barlow Twins term with respect to `z` [2B, P] (the two views' rows): with
 * G = coef * dL/dc (2 (c_ii - 1) on the diagonal, 2 lambda c_ij off it), dn1 = n2 G^T / B and
 * dn2 = n1 G / B.
 */
export function btGrad(s: LossSpec, z: string, c: string, dz: string): Gemm[] {
  const L = lossLayout(s);
  const tile = s.p >= 64 && s.b >= 64 ? GEMM_TILES.large : GEMM_TILES.small;
  const gOf = `fn g_of(i: u32, j: u32) -> f32 {
  let v = ${c}[i * ${u(s.p)} + j];
  return ${LOSSES}[${u(L.coef + 2)}] * select(${f(2 * s.lambda)} * v, 2.0 * (v - 1.0), i == j);
}`;
  const read = [{ name: c }, { name: LOSSES }];
  const store = (rowBase: number) => ({ buffers: [{ name: dz, write: true }], code: `fn store(m: u32, n: u32, v: f32) { ${dz}[(${u(rowBase)} + m) * ${u(s.p)} + n] = v * ${f(1 / s.b)}; }` });
  const split = chooseSplit(s.b, s.p, s.p, tile, 128);
  return [
    gemm({ name: 'barlow twins gradient (view 1)', m: s.b, n: s.p, k: s.p, tile, split, helpers: gOf, aAlong: 'k', bAlong: 'n',
      loadA: { buffers: [{ name: z }], code: `fn loadA(m: u32, k: u32) -> f32 { return ${z}[(${u(s.b)} + m) * ${u(s.p)} + k]; }` },
      loadB: { buffers: read, code: 'fn loadB(k: u32, n: u32) -> f32 { return g_of(n, k); }' },
      store: store(0) }),
    gemm({ name: 'barlow twins gradient (view 2)', m: s.b, n: s.p, k: s.p, tile, split, helpers: gOf, aAlong: 'k', bAlong: 'n',
      loadA: { buffers: [{ name: z }], code: `fn loadA(m: u32, k: u32) -> f32 { return ${z}[m * ${u(s.p)} + k]; }` },
      loadB: { buffers: read, code: 'fn loadB(k: u32, n: u32) -> f32 { return g_of(k, n); }' },
      store: store(s.b) }),
  ];
}

/** Upload slots of the per-step scalars (see step.ts). */
export const UPLOAD = { step: 0, seed: 1, lr: 2, decay: 3, bc1: 4, bc2: 5, scalars: 16 } as const;

/** AdamW (decoupled weight decay, as FusedAdamW) over `count` parameters, in one dispatch. */
export function adamw(count: number, beta1 = 0.9, beta2 = 0.999, eps = 1e-8): Kernel {
  return flat('adamw', count, [{ name: BUF.upload }, { name: BUF.grads }, { name: BUF.params, write: true }, { name: BUF.moment1, write: true }, { name: BUF.moment2, write: true }], `  let g = ${BUF.grads}[i];
  let m = ${BUF.moment1}[i] * ${f(beta1)} + g * ${f(1 - beta1)};
  let v = ${BUF.moment2}[i] * ${f(beta2)} + g * g * ${f(1 - beta2)};
  ${BUF.moment1}[i] = m;
  ${BUF.moment2}[i] = v;
  let update = (m / ${BUF.upload}[${UPLOAD.bc1}]) / (sqrt(v / ${BUF.upload}[${UPLOAD.bc2}]) + ${f(eps)});
  ${BUF.params}[i] = ${BUF.params}[i] * ${BUF.upload}[${UPLOAD.decay}] - update * ${BUF.upload}[${UPLOAD.lr}];`);
}
