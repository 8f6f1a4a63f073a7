// The twin training step as one list of kernels: both views of the batch go through the network
// together as 2B rows (one convolution dispatch serves both; each batch norm keeps a statistic per
// view, as two forward passes would), then the losses, the backward pass of everything, and AdamW.
// Vanilla training is the same with one view. Every activation the backward pass reads is kept in
// a buffer of its own; what it can recompute (normalised values, ReLU masks, pooling, dropout
// masks) it recomputes. Buffers are named here; step.ts allocates and binds them.
import { convForward, convInputGrad, convOut, convWeightGrad, type ConvShape } from './conv.ts';
import { denseBackward, denseForward } from './dense.ts';
import type { Gemm } from './gemm.ts';
import { blocksOf, cnnLayout, embeddingSize, layoutOf, slot, type Layout, type NetModel } from './layout.ts';
import { adamw, btCorrelation, btGrad, btSums, cccGrad, cccStats, combine, lossLayout, UPLOAD, type LossSpec, type Mode } from './loss.ts';
import { bnApply, bnBackward, bnInference, bnStats, partialsSize, savedSize, type After, type BnLayer } from './norm.ts';
import { globalPool, globalPoolBackward, headBackward, headForward, maxPoolBackward, maxPoolForward, maxPoolOut } from './pool.ts';
import { resnetConvs } from '../tf/resnet.ts';
import { BUF, vec4View, type Kernel } from './wgsl.ts';

export interface TwinSpec {
  model: NetModel;
  mode: Mode;
  /** Rows per view. */
  batch: number;
  frames: number;
  form: 'pooled' | 'per-emotion';
  weights: [number, number, number];
  lambda: number;
  btCorrelation: 'normalized' | 'affine';
  bnStats: 'both' | 'clean';
  /** Steps the loss ring holds (read back once an epoch). */
  ring: number;
}

export interface Net {
  layout: Layout;
  kernels: Kernel[];
  /** Activation and gradient buffers: name -> floats. */
  tensors: Map<string, number>;
  /** Sizes of the shared buffers. */
  saved: number;
  scratch: number;
  losses: number;
  loss: LossSpec;
  /** The per-step upload: scalars, labels [B, E] at `labels`, the batch [G*B, T, M] at `input` (copied into the `input` buffer). */
  upload: { floats: number; labels: number; input: number };
  groups: number;
  /** Floating-point operations of one step (GEMMs only). */
  flops: number;
}

/** Everything the builder accumulates. */
class Builder {
  kernels: Kernel[] = [];
  tensors = new Map<string, number>();
  saved = 0;
  scratch = 0;
  flops = 0;

  /** A buffer of `floats` values, named for WGSL from `label` (dots and brackets become underscores). */
  tensor(label: string, floats: number): string {
    const name = `t_${label.replace(/[^A-Za-z0-9_]/g, '_')}`;
    if (this.tensors.has(name)) throw new Error(`internal: tensor '${name}' made twice`);
    this.tensors.set(name, floats);
    return name;
  }

  add(...ks: Kernel[]): void {
    for (const k of ks) {
      this.kernels.push(k);
      this.flops += k.flops ?? 0;
    }
  }

  gemm(g: Gemm): void {
    this.scratch = Math.max(this.scratch, g.partials);
    this.add(...g.kernels);
  }

  bn(l: Omit<BnLayer, 'saved'>): BnLayer {
    const layer = { ...l, saved: this.saved };
    this.saved += savedSize(layer);
    this.scratch = Math.max(this.scratch, partialsSize(layer));
    return layer;
  }
}

export const INPUT = 't_input';

export function buildTwin(spec: TwinSpec): Net {
  const twin = spec.mode !== 'vanilla';
  const G = twin ? 2 : 1;
  const B = spec.batch;
  const N = G * B;
  const m = spec.model;
  const E = m.outputs;
  const layout = layoutOf({ ...m, projector: twin ? m.projector : 0 }, spec.mode === 'ruwl' ? [{ name: 'ruwl.s', size: 3 }] : []);
  const at = (name: string) => slot(layout, name).offset;
  const b = new Builder();
  const updates = twin ? [true, spec.bnStats === 'both'] : [true];
  const bnLayer = (name: string, c: number, rows: number, groups = G, ups = updates): BnLayer =>
    b.bn({ name, c, groups, rows, gamma: at(`${name}.gamma`), beta: at(`${name}.beta`), mean: at(`${name}.running_mean`), variance: at(`${name}.running_var`), updates: ups });

  b.tensor('input', N * spec.frames * m.mels);
  const emb = embeddingSize(m);
  // The backward pass of the backbone, filled in as the forward pass is laid out (run in reverse).
  const backward: Array<() => void> = [];
  let features: string;
  let gFeatures: string;
  if (m.backbone === 'resnet14') ({ features, gFeatures } = resnet(b, spec, N, bnLayer, at, backward));
  else ({ features, gFeatures } = cnn(b, spec, N, bnLayer, at, backward));

  // Head: [N, emb] -> outputs [N, E]; the projector for the twin.
  const out = b.tensor('outputs', N * E);
  const fcOut = { m: N, in: emb, out: E, weight: at('fc_out.weight'), bias: at('fc_out.bias') };
  b.gemm(denseForward('fc_out', fcOut, features, out));
  const loss: LossSpec = { mode: spec.mode, b: B, groups: G, e: E, form: spec.form, weights: spec.weights, lambda: spec.lambda, p: m.projector ?? 0, s: spec.mode === 'ruwl' ? at('ruwl.s') : undefined, labels: UPLOAD.scalars, ring: spec.ring };
  let projBackward = () => undefined as void;
  if (twin) {
    const P = m.projector!;
    const proj = { m: N, in: emb, out: P, weight: at('proj.weight'), bias: at('proj.bias') };
    const zpre = b.tensor('proj_pre', N * P);
    b.gemm(denseForward('proj', proj, features, zpre));
    const pbn = bnLayer('proj.bn', P, B, G, [true, true]); // the projector's statistics move with both views, as in the tfjs path
    const zaff = b.tensor('proj_out', N * P);
    b.add(...bnStats(pbn, zpre), bnApply(pbn, zpre, zaff));
    let zn = zaff;
    let renorm: BnLayer | undefined;
    if (spec.btCorrelation === 'normalized') {
      renorm = b.bn({ name: 'bt.norm', c: P, groups: G, rows: B, updates: [false, false] });
      zn = b.tensor('bt_z', N * P);
      b.add(...bnStats(renorm, zaff), bnApply(renorm, zaff, zn));
    }
    const corr = b.tensor('bt_c', P * P);
    b.gemm(btCorrelation(loss, zn, corr));
    b.add(btSums(loss, corr));
    projBackward = () => {
      const gzn = b.tensor('bt_gz', N * P);
      for (const g of btGrad(loss, zn, corr, gzn)) b.gemm(g);
      let gzaff = gzn;
      if (renorm) {
        gzaff = b.tensor('proj_gout', N * P);
        b.add(...bnBackward(renorm, zaff, gzn, {}, { dx: gzaff }));
      }
      const gzpre = b.tensor('proj_gpre', N * P);
      b.add(...bnBackward(pbn, zpre, gzaff, {}, { dx: gzpre }));
      for (const g of denseBackward('proj', proj, features, zpre, gzpre, { dx: { name: gFeatures, accumulate: true } })) b.gemm(g);
    };
  }
  b.add(cccStats(loss, out), combine(loss));

  // Backward.
  const gOut = b.tensor('outputs_grad', N * E);
  b.add(cccGrad(loss, out, gOut));
  for (const g of denseBackward('fc_out', fcOut, features, out, gOut, { dx: { name: gFeatures, accumulate: false } })) b.gemm(g);
  projBackward();
  for (const step of backward.reverse()) step();
  b.add(adamw(layout.params));
  const L = lossLayout(loss);
  return {
    layout,
    kernels: b.kernels,
    tensors: b.tensors,
    saved: Math.max(4, b.saved),
    scratch: Math.max(4, b.scratch),
    losses: L.size,
    loss,
    upload: { floats: UPLOAD.scalars + B * E + N * spec.frames * m.mels, labels: UPLOAD.scalars, input: UPLOAD.scalars + B * E },
    groups: G,
    flops: b.flops,
  };
}

type BnOf = (name: string, c: number, rows: number, groups?: number, ups?: boolean[]) => BnLayer;

/** PANNs-style CNNs (and the small CNN): bn0 over mel bins, conv blocks, then the time/frequency pooling head and fc1. */
function cnn(b: Builder, spec: TwinSpec, N: number, bnLayer: BnOf, at: (n: string) => number, backward: Array<() => void>): { features: string; gFeatures: string } {
  const m = spec.model;
  const G = N / spec.batch;
  const B = spec.batch;
  const blocks = blocksOf(m);
  const { kernel, convs } = cnnLayout(m);
  const dropRate = m.backbone === 'small' ? 0 : (m.dropout ?? 0.2);
  // bn0: the mel bins are the channels of the [N*T, M] input.
  let h = spec.frames;
  let w = m.mels;
  const bn0 = bnLayer('bn0', m.mels, B * h);
  let x = b.tensor('bn0_out', N * h * w);
  b.add(...bnStats(bn0, INPUT), bnApply(bn0, INPUT, x));
  const gBn0 = b.tensor('bn0_grad', N * h * w);
  let gx = gBn0;
  backward.push(() => b.add(...bnBackward(bn0, INPUT, gBn0, {}, {})));
  let cin = 1;
  blocks.forEach((cout, blk) => {
    const last = blk === blocks.length - 1;
    const pool = !(last && m.backbone === 'cnn14');
    const blockIn = x;
    const gBlockIn = gx;
    let convIn = blockIn;
    let gConvIn = gBlockIn;
    let ci = cin;
    for (let k = 1; k <= convs; k++) {
      const final = k === convs;
      const shape: ConvShape = { n: N, h, w, ci, co: cout, kh: kernel, kw: kernel, stride: 1, pad: (kernel - 1) / 2 };
      const y = b.tensor(`block${blk}.conv${k}_out`, N * h * w * cout);
      const wOff = at(`block${blk}.conv${k}`);
      const wName = `w_block${blk}_conv${k}`;
      b.gemm(withWeights(convForward(`block${blk}.conv${k}`, shape, convIn, wName, y), wName, wOff));
      const layer = bnLayer(`block${blk}.bn${k}`, cout, B * h * w);
      const after: After = { relu: true, ...(final && pool ? { pool: { n: N, h, w } } : {}), ...(final && dropRate > 0 ? { dropout: { rate: dropRate, layer: blk + 1 } } : {}) };
      const outH = final && pool ? Math.floor(h / 2) : h;
      const outW = final && pool ? Math.floor(w / 2) : w;
      const a = b.tensor(`block${blk}.act${k}`, N * outH * outW * cout);
      b.add(...bnStats(layer, y), bnApply(layer, y, a, after));
      const gA = b.tensor(`block${blk}.act${k}_grad`, N * outH * outW * cout);
      const [cIn, gCIn] = [convIn, gConvIn];
      backward.push(() => {
        const dy = b.tensor(`block${blk}.conv${k}_grad`, N * shape.h * shape.w * cout);
        b.add(...bnBackward(layer, y, gA, after, { dx: dy }));
        b.gemm(gradWeights(convWeightGrad(`block${blk}.conv${k} dW`, shape, cIn, dy, gradName(wName)), wName, wOff));
        b.gemm(withWeights(convInputGrad(`block${blk}.conv${k} dx`, shape, dy, wName, gCIn), wName, wOff));
      });
      convIn = a;
      gConvIn = gA;
      ci = cout;
      h = outH;
      w = outW;
    }
    x = convIn;
    gx = gConvIn;
    cin = cout;
  });
  // Head: mean over mel bins, max + mean over time, dropout, fc1 + ReLU.
  const C = cin;
  const headDrop = m.backbone === 'small' ? 0 : (m.headDropout ?? 0.5);
  const head = { n: N, t: h, w, c: C, dropout: headDrop > 0 ? { rate: headDrop, layer: 100 } : undefined };
  const f = b.tensor('head_f', N * h * C);
  const fmax = b.tensor('head_fmax', N * C);
  const e = b.tensor('head_e', N * C);
  b.add(headForward(head, x, f, fmax, e));
  const emb = embeddingSize(m);
  const fc1 = { m: N, in: C, out: emb, weight: at('fc1.weight'), bias: at('fc1.bias'), relu: true };
  const features = b.tensor('embedding', N * emb);
  b.gemm(denseForward('fc1', fc1, e, features));
  const gFeatures = b.tensor('embedding_grad', N * emb);
  const gLast = gx;
  backward.push(() => {
    const ge = b.tensor('head_e_grad', N * C);
    for (const g of denseBackward('fc1', fc1, e, features, gFeatures, { dx: { name: ge, accumulate: false } })) b.gemm(g);
    b.add(headBackward(head, f, fmax, ge, gLast));
  });
  void G;
  return { features, gFeatures };
}

/** The RRTN authors' ResNet14: a 7x7 stride-2 stem, a max pool, four stages of two basic blocks, global average pooling. */
function resnet(b: Builder, spec: TwinSpec, N: number, bnLayer: BnOf, at: (n: string) => number, backward: Array<() => void>): { features: string; gFeatures: string } {
  const m = spec.model;
  const B = spec.batch;
  const convs = new Map(resnetConvs(blocksOf(m)).map((c) => [c.name, c]));
  let h = spec.frames;
  let w = m.mels;
  // A convolution + its batch norm, applied with `after`; returns the output and its gradient buffer.
  const convBn = (name: string, input: string, gInput: string | undefined, after: After, gInputAccumulate: boolean, extra?: { residualGrad: { name: string; accumulate: boolean } }) => {
    const c = convs.get(name)!;
    const shape: ConvShape = { n: N, h, w, ci: c.cin, co: c.cout, kh: c.k, kw: c.k, stride: c.stride, pad: c.k === 1 ? 0 : (c.k - 1) / 2 };
    const { ho, wo } = convOut(shape);
    const y = b.tensor(`${name}_out`, N * ho * wo * c.cout);
    const wName = `w_${name.replace(/\./g, '_')}`;
    const wOff = at(name);
    b.gemm(withWeights(convForward(name, shape, input, wName, y), wName, wOff));
    const layer = bnLayer(`${name}.bn`, c.cout, B * ho * wo);
    const a = b.tensor(`${name}_act`, N * ho * wo * c.cout);
    b.add(...bnStats(layer, y), bnApply(layer, y, a, after));
    const gA = b.tensor(`${name}_act_grad`, N * ho * wo * c.cout);
    const back = () => {
      const dy = b.tensor(`${name}_grad`, N * ho * wo * c.cout);
      b.add(...bnBackward(layer, y, gA, after, { dx: dy, ...(extra ?? {}) }));
      b.gemm(gradWeights(convWeightGrad(`${name} dW`, shape, input, dy, gradName(wName)), wName, wOff));
      if (gInput) b.gemm(withWeights(convInputGrad(`${name} dx`, shape, dy, wName, gInput, { accumulate: gInputAccumulate }), wName, wOff));
    };
    return { a, gA, ho, wo, back };
  };
  const stem = convBn('stem.conv', INPUT, undefined, { relu: true }, false);
  h = stem.ho;
  w = stem.wo;
  const pool = { n: N, h, w, c: convs.get('stem.conv')!.cout };
  const { ho: ph, wo: pw } = maxPoolOut(pool);
  let x = b.tensor('stem_pool', N * ph * pw * pool.c);
  let gx = b.tensor('stem_pool_grad', N * ph * pw * pool.c);
  b.add(maxPoolForward(pool, stem.a, x));
  const gPool = gx;
  backward.push(() => {
    b.add(maxPoolBackward(pool, stem.a, gPool, stem.gA));
    stem.back();
  });
  h = ph;
  w = pw;
  const channels = blocksOf(m);
  channels.forEach((_, s) => {
    for (let j = 0; j < 2; j++) {
      const at0 = `layer${s + 1}.${j}`;
      const blockIn = x;
      const gBlockIn = gx;
      const hIn = h;
      const wIn = w;
      const c1 = convBn(`${at0}.conv1`, blockIn, gBlockIn, { relu: true }, true);
      const sc = convs.get(`${at0}.downsample`);
      let shortcut = blockIn;
      let scConv: ReturnType<typeof convBn> | undefined;
      if (sc) {
        scConv = convBn(`${at0}.downsample`, blockIn, gBlockIn, {}, false);
        shortcut = scConv.a;
      }
      h = c1.ho;
      w = c1.wo;
      const c2 = convBn(`${at0}.conv2`, c1.a, c1.gA, { relu: true, residual: shortcut }, false, { residualGrad: { name: scConv ? scConv.gA : gBlockIn, accumulate: false } });
      void hIn;
      void wIn;
      // Backward order: conv2 (which writes the shortcut's gradient), the shortcut conv (writing
      // the block input's gradient), then conv1 (adding to it).
      backward.push(() => {
        c2.back();
        scConv?.back();
        c1.back();
      });
      x = c2.a;
      gx = c2.gA;
    }
  });
  const C = channels[channels.length - 1]!;
  const gp = { n: N, h, w, c: C };
  const features = b.tensor('embedding', N * C);
  b.add(globalPool(gp, x, features));
  const gFeatures = b.tensor('embedding_grad', N * C);
  const gLast = gx;
  backward.push(() => b.add(globalPoolBackward(gp, gFeatures, gLast)));
  return { features, gFeatures };
}

/** A convolution kernel's weights are a slice of `params`: its GEMM reads them at their offset. */
function withWeights(g: Gemm, wName: string, offset: number): Gemm {
  return retarget(g, wName, BUF.params, offset);
}

const gradName = (wName: string) => `${wName}_grad`;

function gradWeights(g: Gemm, wName: string, offset: number): Gemm {
  return retarget(g, gradName(wName), BUF.grads, offset);
}

/**
 * Rewrites reads/writes of buffer `from` as `to` at `offset` (a parameter's slice of the flat
 * buffer), and those through its vec4 view as `to`'s vec4 view at offset / 4 (offsets are multiples
 * of 4: layoutOf aligns them).
 */
function retarget(g: Gemm, from: string, to: string, offset: number): Gemm {
  const views: Array<[string, string, number]> = [
    [from, to, offset],
    [vec4View(from), vec4View(to), offset / 4],
  ];
  return {
    partials: g.partials,
    kernels: g.kernels.map((k) => {
      let { code, buffers } = k;
      for (const [src, dst, at] of views) {
        const index = buffers.indexOf(src);
        if (index < 0) continue;
        if (!Number.isInteger(at)) throw new Error(`internal: ${k.name} reads ${src} at an unaligned offset`);
        if (buffers.includes(dst)) throw new Error(`internal: ${k.name} binds ${dst} already`);
        code = code.replace(new RegExp(`\\b${src}\\[`, 'g'), `${dst}[${at}u + `);
        // Its binding line, renamed.
        const decl = new RegExp(`(@group\\(0\\) @binding\\(${index}\\) var<storage, (?:read|read_write)> )${src}(: array<)`);
        code = code.replace(decl, `$1${dst}$2`);
        buffers = buffers.map((x) => (x === src ? dst : x));
      }
      return { ...k, code, buffers };
    }),
  };
}

export type { Mode };

/** The forward pass for prediction: running statistics, no dropout, clips of several lengths. */
export interface InferenceNet {
  kernels: Kernel[];
  tensors: Map<string, number>;
  scratch: number;
  /** The upload: scalars, then a table of each layer's valid rows per sample (`valid`), then the clips at `input`. */
  upload: { floats: number; valid: number; input: number };
  /** Each table entry's valid rows for a clip of L frames (in table order). */
  validRows: Array<(frames: number) => number>;
  /** The predictions [P, E]. */
  output: string;
}

export function buildInference(model: NetModel, layout: Layout, batch: number, frames: number): InferenceNet {
  const b = new Builder();
  const P = batch;
  const at = (name: string) => slot(layout, name).offset;
  const validRows: Array<(frames: number) => number> = [];
  const validAt = (rows: (frames: number) => number) => {
    validRows.push(rows);
    return UPLOAD.scalars + (validRows.length - 1) * P;
  };
  const bnOf = (name: string, c: number): BnLayer => ({ name, c, groups: 1, rows: 0, gamma: at(`${name}.gamma`), beta: at(`${name}.beta`), mean: at(`${name}.running_mean`), variance: at(`${name}.running_var`), updates: [], saved: 0 });
  b.tensor('input', P * frames * model.mels);
  let h = frames;
  let w = model.mels;
  let rows = (L: number) => L;
  let features: string;
  if (model.backbone === 'resnet14') {
    const convs = new Map(resnetConvs(blocksOf(model)).map((c) => [c.name, c]));
    const convBn = (name: string, input: string, after: Omit<After, 'dropout'>, inRows: (L: number) => number) => {
      const c = convs.get(name)!;
      const shape: ConvShape = { n: P, h, w, ci: c.cin, co: c.cout, kh: c.k, kw: c.k, stride: c.stride, pad: c.k === 1 ? 0 : (c.k - 1) / 2 };
      const { ho, wo } = convOut(shape);
      const y = b.tensor(`${name}_out`, P * ho * wo * c.cout);
      const wName = `w_${name.replace(/\./g, '_')}`;
      b.gemm(withWeights(convForward(name, shape, input, wName, y), wName, at(name)));
      const outRows = (L: number) => Math.floor((inRows(L) + 2 * shape.pad - c.k) / c.stride) + 1;
      const a = b.tensor(`${name}_act`, P * ho * wo * c.cout);
      b.add(bnInference(bnOf(`${name}.bn`, c.cout), y, a, after, { n: P, h: ho, w: wo }, validAt(outRows)));
      return { a, ho, wo, outRows };
    };
    const stem = convBn('stem.conv', INPUT, { relu: true }, rows);
    h = stem.ho;
    w = stem.wo;
    const pool = { n: P, h, w, c: convs.get('stem.conv')!.cout };
    const { ho: ph, wo: pw } = maxPoolOut(pool);
    let x = b.tensor('stem_pool', P * ph * pw * pool.c);
    rows = (L) => Math.floor((stem.outRows(L) + 2 - 3) / 2) + 1;
    b.add(maxPoolForward(pool, stem.a, x, validAt(rows)));
    h = ph;
    w = pw;
    blocksOf(model).forEach((_, s) => {
      for (let j = 0; j < 2; j++) {
        const name = `layer${s + 1}.${j}`;
        const inRows = rows;
        const c1 = convBn(`${name}.conv1`, x, { relu: true }, inRows);
        const sc = convs.has(`${name}.downsample`) ? convBn(`${name}.downsample`, x, {}, inRows).a : x;
        h = c1.ho;
        w = c1.wo;
        const c2 = convBn(`${name}.conv2`, c1.a, { relu: true, residual: sc }, c1.outRows);
        x = c2.a;
        rows = c2.outRows;
      }
    });
    const C = blocksOf(model).at(-1)!;
    features = b.tensor('embedding', P * C);
    b.add(globalPool({ n: P, h, w, c: C }, x, features, validAt(rows)));
  } else {
    const { kernel, convs } = cnnLayout(model);
    let x = b.tensor('bn0_out', P * h * w);
    b.add(bnInference(bnOf('bn0', model.mels), INPUT, x, {}, { n: P, h, w: 1 }, validAt(rows)));
    let cin = 1;
    const blocks = blocksOf(model);
    blocks.forEach((cout, blk) => {
      const pool = !(blk === blocks.length - 1 && model.backbone === 'cnn14');
      let ci = cin;
      for (let k = 1; k <= convs; k++) {
        const final = k === convs;
        const shape: ConvShape = { n: P, h, w, ci, co: cout, kh: kernel, kw: kernel, stride: 1, pad: (kernel - 1) / 2 };
        const y = b.tensor(`block${blk}.conv${k}_out`, P * h * w * cout);
        const wName = `w_block${blk}_conv${k}`;
        b.gemm(withWeights(convForward(`block${blk}.conv${k}`, shape, x, wName, y), wName, at(`block${blk}.conv${k}`)));
        const pooled = final && pool;
        const inRows = rows;
        if (pooled) rows = (L) => Math.floor(inRows(L) / 2);
        const a = b.tensor(`block${blk}.act${k}`, P * (pooled ? Math.floor(h / 2) * Math.floor(w / 2) : h * w) * cout);
        b.add(bnInference(bnOf(`block${blk}.bn${k}`, cout), y, a, { relu: true, ...(pooled ? { pool: { n: P, h, w } } : {}) }, { n: P, h, w }, validAt(rows)));
        if (pooled) {
          h = Math.floor(h / 2);
          w = Math.floor(w / 2);
        }
        x = a;
        ci = cout;
      }
      cin = cout;
    });
    const f = b.tensor('head_f', P * h * cin);
    const fmax = b.tensor('head_fmax', P * cin);
    const e = b.tensor('head_e', P * cin);
    b.add(headForward({ n: P, t: h, w, c: cin, valid: validAt(rows) }, x, f, fmax, e));
    features = b.tensor('embedding', P * embeddingSize(model));
    b.gemm(denseForward('fc1', { m: P, in: cin, out: embeddingSize(model), weight: at('fc1.weight'), bias: at('fc1.bias'), relu: true }, e, features));
  }
  const output = b.tensor('outputs', P * model.outputs);
  b.gemm(denseForward('fc_out', { m: P, in: embeddingSize(model), out: model.outputs, weight: at('fc_out.weight'), bias: at('fc_out.bias') }, features, output));
  const valid = UPLOAD.scalars;
  const input = valid + validRows.length * P;
  return { kernels: b.kernels, tensors: b.tensors, scratch: Math.max(4, b.scratch), upload: { floats: input + P * frames * model.mels, valid, input }, validRows, output };
}
