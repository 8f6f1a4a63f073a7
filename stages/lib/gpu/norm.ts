// Batch norm for the compiled step, over a [rows, C] view of an activation (NHWC: rows = N*H*W).
// The batch may hold G groups (the twin's two views), each normalised by its own statistics, as
// two forward passes would be; the parameters are shared, so their gradients sum over groups.
//   stats      Welford partials per (group, chunk of rows, channel), merged by Chan's formula in a
//              second dispatch, which also moves the running statistics (momentum 0.1, unbiased
//              variance, group after group as sequential passes would)
//   apply      z = (x - mean) * invstd * gamma + beta, then optionally + a residual, ReLU, 2x2
//              average pooling and dropout, writing only what the next layer reads
//   backward   from the gradient of what apply wrote, recomputing z (and the ReLU mask, the pooling
//              and the dropout mask) instead of storing them: sums of g and g * xhat per channel
//              (partials, then a finalize that writes d gamma and d beta), then
//              dx = gamma * invstd * (g - sum(g)/R - xhat * sum(g * xhat)/R)
import { dropoutKeep, RANDOM_WGSL } from './random.ts';
import { BUF, bindings, divmod, f, flat, u, type Buffer, type Kernel } from './wgsl.ts';

export const BN_EPS = 1e-5;

/** One batch-norm layer's place in the step's buffers. */
export interface BnLayer {
  name: string;
  c: number;
  groups: number;
  /** Rows of the [rows, C] view per group. */
  rows: number;
  /** Offsets in `params` (and `grads`) of gamma and beta; undefined: no affine (gamma 1, beta 0). */
  gamma?: number;
  beta?: number;
  /** Offsets in `running` of the running mean and variance; undefined: none kept. */
  mean?: number;
  variance?: number;
  /** Which groups move the running statistics (in order). */
  updates: boolean[];
  /** Offset in `saved` of this layer's mean, invstd, sum(g) and sum(g * xhat): 4 x groups x C floats. */
  saved: number;
}

export const savedSize = (l: Pick<BnLayer, 'groups' | 'c'>): number => 4 * l.groups * l.c;

const LANES = 64; // channels per workgroup
const ROW_LANES = 4; // rows walked at once per channel

/** Rows per chunk of the statistics pass: enough workgroups to fill a GPU, enough rows to amortise the partial. */
export function chunking(l: Pick<BnLayer, 'rows' | 'c' | 'groups'>): { chunk: number; chunks: number } {
  const blocks = Math.ceil(l.c / LANES) * l.groups;
  const wanted = Math.max(1, Math.ceil(256 / blocks));
  const chunk = Math.max(64, Math.ceil(l.rows / wanted));
  return { chunk, chunks: Math.ceil(l.rows / chunk) };
}

/** Scratch floats the statistics and backward passes of a layer need. */
export const partialsSize = (l: BnLayer): number => chunking(l).chunks * l.groups * l.c * 3;

const mergeWgsl = `
fn merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  let n = a.x + b.x;
  if (n == 0.0) { return vec3<f32>(0.0, 0.0, 0.0); }
  let d = b.y - a.y;
  return vec3<f32>(n, a.y + d * b.x / n, a.z + b.z + d * d * a.x * b.x / n);
}`;

/**
 * A pass over a layer's [rows, C] view in chunks: `perRow` adds one row's contribution of channel
 * c into a vec3 accumulator `acc` (with `x` the input value, `row` the row within the whole batch,
 * `g` the group); the four row lanes are merged with `combine` and written as one partial.
 */
function chunkPass(name: string, l: BnLayer, buffers: Buffer[], perRow: string, combine: string, helpers = ''): Kernel {
  const { chunk, chunks } = chunking(l);
  const code = `${bindings([...buffers, { name: BUF.scratch, write: true }])}
${mergeWgsl}
${helpers}
var<workgroup> part: array<vec3<f32>, ${u(LANES * ROW_LANES)}>;
@compute @workgroup_size(${LANES * ROW_LANES})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let c = wg.x * ${u(LANES)} + lid % ${u(LANES)};
  let lane = lid / ${u(LANES)};
  let g = wg.z;
  let start = wg.y * ${u(chunk)};
  let end = min(${u(l.rows)}, start + ${u(chunk)});
  var acc = vec3<f32>(0.0, 0.0, 0.0);
  if (c < ${u(l.c)}) {
    for (var r = start + lane; r < end; r = r + ${u(ROW_LANES)}) {
      let row = g * ${u(l.rows)} + r;
${perRow}
    }
  }
  part[lid] = acc;
  workgroupBarrier();
  if (lane == 0u && c < ${u(l.c)}) {
    var t = part[lid];
    for (var k = 1u; k < ${u(ROW_LANES)}; k = k + 1u) { t = ${combine}(t, part[lid + k * ${u(LANES)}]); }
    ${BUF.scratch}[((g * ${u(chunks)} + wg.y) * ${u(l.c)} + c) * 3u + 0u] = t.x;
    ${BUF.scratch}[((g * ${u(chunks)} + wg.y) * ${u(l.c)} + c) * 3u + 1u] = t.y;
    ${BUF.scratch}[((g * ${u(chunks)} + wg.y) * ${u(l.c)} + c) * 3u + 2u] = t.z;
  }
}
`;
  return { name, code, groups: [Math.ceil(l.c / LANES), chunks, l.groups], buffers: [...buffers.map((b) => b.name), BUF.scratch] };
}

/** Mean and variance per group and channel of `x` (Welford partials), then the finalize pass. */
export function bnStats(l: BnLayer, x: string): Kernel[] {
  const pass = chunkPass(`${l.name} stats`, l, [{ name: x }], `      let v = ${x}[row * ${u(l.c)} + c];
      acc = merge(acc, vec3<f32>(1.0, v, 0.0));`, 'merge');
  const { chunks } = chunking(l);
  const keeps = l.mean !== undefined;
  const buffers: Buffer[] = [{ name: BUF.scratch }, { name: BUF.saved, write: true }, ...(keeps ? [{ name: BUF.running, write: true }] : [])];
  const perGroup = Array.from({ length: l.groups }, (_, g) => `  {
    var t = vec3<f32>(0.0, 0.0, 0.0);
    for (var k = 0u; k < ${u(chunks)}; k = k + 1u) {
      let o = ((${u(g)} * ${u(chunks)} + k) * ${u(l.c)} + i) * 3u;
      t = merge(t, vec3<f32>(${BUF.scratch}[o], ${BUF.scratch}[o + 1u], ${BUF.scratch}[o + 2u]));
    }
    let variance = t.z / t.x;
    ${BUF.saved}[${u(l.saved + g * l.c)} + i] = t.y;
    ${BUF.saved}[${u(l.saved + (l.groups + g) * l.c)} + i] = inverseSqrt(variance + ${f(BN_EPS)});
    ${keeps && l.updates[g] ? `${BUF.running}[${u(l.mean!)} + i] = ${BUF.running}[${u(l.mean!)} + i] * 0.9 + t.y * 0.1;
    ${BUF.running}[${u(l.variance!)} + i] = ${BUF.running}[${u(l.variance!)} + i] * 0.9 + (t.z / max(t.x - 1.0, 1.0)) * 0.1;` : ''}
  }`).join('\n');
  return [pass, flat(`${l.name} stats (finalize)`, l.c, buffers, perGroup, mergeWgsl)];
}

/** What follows the normalisation in the forward pass (and is undone in the backward one). */
export interface After {
  /** Added before the ReLU (a ResNet block's shortcut), same shape as the input. */
  residual?: string;
  relu?: boolean;
  /** 2x2 average pooling, stride 2 (floor), over an [N, H, W, C] input. */
  pool?: { n: number; h: number; w: number };
  /** Dropout after everything else: rate, and a number that makes this layer's masks its own. */
  dropout?: { rate: number; layer: number };
}

/** WGSL for z at row `row`, channel `c`, in training (the group's batch statistics). */
function normalized(l: BnLayer, x: string, after: After): string {
  const gamma = l.gamma === undefined ? '1.0' : `${BUF.params}[${u(l.gamma)} + c]`;
  const beta = l.beta === undefined ? '0.0' : `${BUF.params}[${u(l.beta)} + c]`;
  const g = divmod('row', l.rows).q;
  return `fn z_at(row: u32, c: u32) -> f32 {
  let g = ${g};
  let xhat = (${x}[row * ${u(l.c)} + c] - ${BUF.saved}[${u(l.saved)} + g * ${u(l.c)} + c]) * ${BUF.saved}[${u(l.saved + l.groups * l.c)} + g * ${u(l.c)} + c];
  return xhat * ${gamma} + ${beta}${after.residual ? ` + ${after.residual}[row * ${u(l.c)} + c]` : ''};
}
fn xhat_at(row: u32, c: u32) -> f32 {
  let g = ${g};
  return (${x}[row * ${u(l.c)} + c] - ${BUF.saved}[${u(l.saved)} + g * ${u(l.c)} + c]) * ${BUF.saved}[${u(l.saved + l.groups * l.c)} + g * ${u(l.c)} + c];
}
fn a_at(row: u32, c: u32) -> f32 { ${after.relu ? 'return max(z_at(row, c), 0.0);' : 'return z_at(row, c);'} }`;
}

function paramsUsed(l: BnLayer): Buffer[] {
  return l.gamma === undefined ? [] : [{ name: BUF.params }];
}

function dropoutFactor(after: After, index: string): string {
  if (!after.dropout || after.dropout.rate <= 0) return '1.0';
  return `select(0.0, ${f(1 / (1 - after.dropout.rate))}, dropout_keep(${index}, ${u(after.dropout.layer)}, ${f(after.dropout.rate)}))`;
}

function randomBuffers(after: After): Buffer[] {
  return after.dropout && after.dropout.rate > 0 ? [{ name: BUF.upload }] : [];
}

/** The forward apply: normalise, then `after`, into `out`. */
export function bnApply(l: BnLayer, x: string, out: string, after: After = {}): Kernel {
  const buffers: Buffer[] = [{ name: x }, { name: BUF.saved }, ...paramsUsed(l), ...(after.residual ? [{ name: after.residual }] : []), ...randomBuffers(after), { name: out, write: true }];
  const helpers = `${normalized(l, x, after)}\n${after.dropout ? RANDOM_WGSL + dropoutKeep : ''}`;
  if (!after.pool) {
    const rc = divmod('i', l.c);
    return flat(`${l.name} apply`, l.groups * l.rows * l.c, buffers, `  ${out}[i] = a_at(${rc.q}, ${rc.r}) * ${dropoutFactor(after, 'i')};`, helpers);
  }
  const { n, h, w } = after.pool;
  const ho = Math.floor(h / 2);
  const wo = Math.floor(w / 2);
  const c = divmod('i', l.c);
  const x1 = divmod('q', wo);
  const y1 = divmod('q2', ho);
  return flat(`${l.name} apply + pool`, n * ho * wo * l.c, buffers, `  let c = ${c.r}; let q = ${c.q};
  let ow = ${x1.r}; let q2 = ${x1.q};
  let oh = ${y1.r}; let nn = ${y1.q};
  let r0 = (nn * ${u(h)} + oh * 2u) * ${u(w)} + ow * 2u;
  let s = a_at(r0, c) + a_at(r0 + 1u, c) + a_at(r0 + ${u(w)}, c) + a_at(r0 + ${u(w + 1)}, c);
  ${out}[i] = s * 0.25 * ${dropoutFactor(after, 'i')};`, helpers);
}

/** WGSL for the gradient reaching z at (row, c): undoing dropout, pooling and the ReLU. */
function gradAtZ(l: BnLayer, gout: string, after: After): string {
  let g: string;
  if (after.pool) {
    const { h, w } = after.pool;
    const ho = Math.floor(h / 2);
    const wo = Math.floor(w / 2);
    const pix = divmod('row', h * w);
    const yx = divmod('p', w);
    g = `  let nn = ${pix.q}; let p = ${pix.r};
  let hh = ${yx.q}; let ww = ${yx.r};
  if (hh >= ${u(2 * ho)} || ww >= ${u(2 * wo)}) { return 0.0; }
  let o = ((nn * ${u(ho)} + hh / 2u) * ${u(wo)} + ww / 2u) * ${u(l.c)} + c;
  var gp = ${gout}[o] * 0.25 * ${dropoutFactor(after, 'o')};`;
  } else g = `  let o = row * ${u(l.c)} + c;\n  var gp = ${gout}[o] * ${dropoutFactor(after, 'o')};`;
  return `fn g_at(row: u32, c: u32) -> f32 {
${g}
  ${after.relu ? 'if (z_at(row, c) <= 0.0) { return 0.0; }' : ''}
  return gp;
}`;
}

export interface BackwardOpts {
  /** Where d/dx goes (undefined: not needed, e.g. bn0: the input needs no gradient). */
  dx?: string;
  /** Where the gradient of the residual input goes (a ResNet shortcut), written or added. */
  residualGrad?: { name: string; accumulate: boolean };
}

/**
 * Backward of bnApply: sums per group and channel (partials + finalize, which writes d gamma and d
 * beta into `grads`), then dx and the residual's gradient.
 */
export function bnBackward(l: BnLayer, x: string, gout: string, after: After, opts: BackwardOpts): Kernel[] {
  const helpers = `${normalized(l, x, after)}\n${after.dropout ? RANDOM_WGSL + dropoutKeep : ''}\n${gradAtZ(l, gout, after)}`;
  const reads: Buffer[] = [{ name: x }, { name: BUF.saved }, ...paramsUsed(l), ...(after.residual ? [{ name: after.residual }] : []), ...randomBuffers(after), { name: gout }];
  const sumPass = chunkPass(`${l.name} backward sums`, l, reads, `      let gz = g_at(row, c);
      acc = acc + vec3<f32>(gz, gz * xhat_at(row, c), 0.0);`, 'add3', `fn add3(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> { return a + b; }\n${helpers}`);
  const { chunks } = chunking(l);
  const finalizeBuffers: Buffer[] = [{ name: BUF.scratch }, { name: BUF.saved, write: true }, ...(l.gamma !== undefined ? [{ name: BUF.grads, write: true }] : [])];
  const body = `  var s1 = 0.0; var s2 = 0.0;
${Array.from({ length: l.groups }, (_, g) => `  {
    var a = 0.0; var b = 0.0;
    for (var k = 0u; k < ${u(chunks)}; k = k + 1u) {
      let o = ((${u(g)} * ${u(chunks)} + k) * ${u(l.c)} + i) * 3u;
      a = a + ${BUF.scratch}[o]; b = b + ${BUF.scratch}[o + 1u];
    }
    ${BUF.saved}[${u(l.saved + (2 * l.groups + g) * l.c)} + i] = a;
    ${BUF.saved}[${u(l.saved + (3 * l.groups + g) * l.c)} + i] = b;
    s1 = s1 + a; s2 = s2 + b;
  }`).join('\n')}
  ${l.gamma !== undefined ? `${BUF.grads}[${u(l.gamma)} + i] = s2;\n  ${BUF.grads}[${u(l.beta!)} + i] = s1;` : ''}`;
  const kernels = [sumPass, flat(`${l.name} backward sums (finalize)`, l.c, finalizeBuffers, body)];
  if (!opts.dx && !opts.residualGrad) return kernels;
  const writes: Buffer[] = [...(opts.dx ? [{ name: opts.dx, write: true }] : []), ...(opts.residualGrad ? [{ name: opts.residualGrad.name, write: true }] : [])];
  const rc = divmod('i', l.c);
  const gamma = l.gamma === undefined ? '1.0' : `${BUF.params}[${u(l.gamma)} + c]`;
  const res = opts.residualGrad;
  kernels.push(
    flat(`${l.name} backward dx`, l.groups * l.rows * l.c, [...reads, ...writes], `  let row = ${rc.q}; let c = ${rc.r};
  let g = ${divmod('row', l.rows).q};
  let gz = g_at(row, c);
  ${res ? `${res.name}[i] = ${res.accumulate ? `${res.name}[i] + ` : ''}gz;` : ''}
  ${opts.dx ? `let invstd = ${BUF.saved}[${u(l.saved + l.groups * l.c)} + g * ${u(l.c)} + c];
  let s1 = ${BUF.saved}[${u(l.saved + 2 * l.groups * l.c)} + g * ${u(l.c)} + c];
  let s2 = ${BUF.saved}[${u(l.saved + 3 * l.groups * l.c)} + g * ${u(l.c)} + c];
  ${opts.dx}[i] = ${gamma} * invstd * (gz - s1 * ${f(1 / l.rows)} - xhat_at(row, c) * s2 * ${f(1 / l.rows)});` : ''}`, helpers),
  );
  return kernels;
}

/**
 * Inference: the running statistics applied element by element to an [N, H, W, C] input, then
 * `after` (no dropout) into `out`. Rows of a sample at or past its valid length (a float per sample
 * in `upload` at `valid`, for the output's rows) are written as 0: clips of several lengths share
 * one program, and what lies past a clip's end reads as the zero padding a convolution expects.
 */
export function bnInference(l: BnLayer, x: string, out: string, after: Omit<After, 'dropout'>, shape: { n: number; h: number; w: number }, valid: number): Kernel {
  const gamma = l.gamma === undefined ? '1.0' : `${BUF.params}[${u(l.gamma)} + c]`;
  const beta = l.beta === undefined ? '0.0' : `${BUF.params}[${u(l.beta)} + c]`;
  const buffers: Buffer[] = [{ name: x }, ...paramsUsed(l), { name: BUF.running }, ...(after.residual ? [{ name: after.residual }] : []), { name: BUF.upload }, { name: out, write: true }];
  const helpers = `fn a_at(row: u32, c: u32) -> f32 {
  let z = (${x}[row * ${u(l.c)} + c] - ${BUF.running}[${u(l.mean!)} + c]) * inverseSqrt(${BUF.running}[${u(l.variance!)} + c] + ${f(BN_EPS)}) * ${gamma} + ${beta}${after.residual ? ` + ${after.residual}[row * ${u(l.c)} + c]` : ''};
  return ${after.relu ? 'max(z, 0.0)' : 'z'};
}`;
  const { n, h, w } = shape;
  const oh = after.pool ? Math.floor(h / 2) : h;
  const ow = after.pool ? Math.floor(w / 2) : w;
  const c = divmod('i', l.c);
  const x1 = divmod('q', ow);
  const y1 = divmod('q2', oh);
  const value = after.pool
    ? `let r0 = (nn * ${u(h)} + y * 2u) * ${u(w)} + xx * 2u;
    v = (a_at(r0, c) + a_at(r0 + 1u, c) + a_at(r0 + ${u(w)}, c) + a_at(r0 + ${u(w + 1)}, c)) * 0.25;`
    : `v = a_at((nn * ${u(h)} + y) * ${u(w)} + xx, c);`;
  return flat(`${l.name} inference`, n * oh * ow * l.c, buffers, `  let c = ${c.r}; let q = ${c.q};
  let xx = ${x1.r}; let q2 = ${x1.q};
  let y = ${y1.r}; let nn = ${y1.q};
  var v = 0.0;
  if (y < u32(${BUF.upload}[${u(valid)} + nn])) {
    ${value}
  }
  ${out}[i] = v;`, helpers);
}
