// Every kernel of the compiled WebGPU step (stages/lib/gpu/) against a float64 reference on the host
// (test/helpers/gpu-reference.ts), within 1e-4 relative to the tensor's largest value, on random
// shapes with odd sizes (tiles only partly filled, split-K over uneven slices). Gradients are judged
// against finite differences of the float64 forward pass (central, h = 1e-6 on float64), so no
// hand-derived backward formula is trusted on either side. Dawn runs on lavapipe (no GPU needed).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Random } from '../src/random.ts';
import { convForward, convInputGrad, convOut, convWeightGrad, type ConvShape } from '../stages/lib/gpu/conv.ts';
import { denseBackward, denseForward } from '../stages/lib/gpu/dense.ts';
import { openGpu } from '../stages/lib/gpu/device.ts';
import { gemm, GEMM_TILES, matrix, type Gemm } from '../stages/lib/gpu/gemm.ts';
import { adamw, btCorrelation, btGrad, btSums, cccGrad, cccStats, combine, lossLayout, LOSSES, UPLOAD, type LossSpec } from '../stages/lib/gpu/loss.ts';
import { bnApply, bnBackward, bnStats, savedSize, type After, type BnLayer } from '../stages/lib/gpu/norm.ts';
import { globalPool, globalPoolBackward, headBackward, headForward, maxPoolBackward, maxPoolForward, maxPoolOut } from '../stages/lib/gpu/pool.ts';
import { dropoutKeepHost } from '../stages/lib/gpu/random.ts';
import { Runner } from '../stages/lib/gpu/runner.ts';
import { BUF, bufferOf, type Kernel } from '../stages/lib/gpu/wgsl.ts';
import * as R from './helpers/gpu-reference.ts';
import { useLavapipe } from './helpers/lavapipe.ts';
import { needs } from './helpers/provision.ts';

const TOL = 1e-4;
const SCRATCH = 1 << 20;

/** Runs kernels over named buffers (arrays uploaded, numbers zero-filled sizes); returns a reader. */
async function run(runner: Runner, work: Array<Kernel | Gemm>, buffers: Record<string, ArrayLike<number> | number>): Promise<(name: string, floats?: number) => Promise<Float32Array>> {
  const bufs = new Map<string, GPUBuffer>();
  const sizes = new Map<string, number>();
  const given: Record<string, ArrayLike<number> | number> = { [BUF.scratch]: SCRATCH, ...buffers };
  for (const [name, v] of Object.entries(given)) {
    const floats = typeof v === 'number' ? v : v.length;
    sizes.set(name, floats);
    bufs.set(name, runner.buffer(floats, typeof v === 'number' ? undefined : Float32Array.from(v)));
  }
  const kernels = work.flatMap((w) => ('kernels' in w ? w.kernels : [w]));
  runner.submit(kernels.map((k) => runner.dispatch(k, k.buffers.map((b) => {
    const buf = bufs.get(bufferOf(b));
    if (!buf) throw new Error(`test: kernel ${k.name} binds ${b}, which the test did not give`);
    return buf;
  }))));
  return (name, floats) => runner.read(bufs.get(name)!, floats ?? sizes.get(name)!);
}

const all = (n: number) => Array.from({ length: n }, (_, i) => i);

function close(what: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  const e = R.relError(got, want);
  assert.ok(e < TOL, `${what}: relative error ${e.toExponential(2)}`);
}

test('WGSL kernels against float64 references (Dawn on lavapipe)', needs('webgpu'), async (t) => {
  useLavapipe();
  const runner = new Runner(await openGpu());
  const rng = new Random(11);
  const rand = (n: number, scale = 1, offset = 0) => Float32Array.from({ length: n }, () => offset + scale * rng.normal());
  t.after(() => runner.destroy());

  await t.test('GEMM: tiles partly filled, split-K over uneven slices, every tile configuration', async () => {
    for (const [m, n, k, split, tile] of [[37, 53, 29, 1, 'large'], [5, 3, 200, 4, 'small'], [130, 70, 99, 3, 'large'], [1, 1, 1, 1, 'small'], [64, 64, 16, 1, 'large'], [33, 31, 517, 7, 'small'], [300, 1, 37, 1, 'narrow'], [129, 6, 70, 2, 'narrow']] as const) {
      const a = rand(m * k);
      const b = rand(k * n);
      const g = gemm({ name: 'gemm', m, n, k, split, tile: GEMM_TILES[tile], loadA: matrix.loadA('mat_a', m, k), loadB: matrix.loadB('mat_b', k, n), store: matrix.store('mat_c', n) });
      const read = await run(runner, [g], { mat_a: a, mat_b: b, mat_c: m * n });
      close(`${m}x${n}x${k} split ${split} ${tile}`, await read('mat_c'), R.matmul(a, b, m, k, n));
    }
  });

  await t.test('convolutions: forward, input gradient and weight gradient as implicit GEMMs, every stride, kernel and padding the backbones use', async () => {
    const shapes: ConvShape[] = [
      { n: 3, h: 17, w: 9, ci: 1, co: 4, kh: 3, kw: 3, stride: 1, pad: 1 },
      { n: 2, h: 9, w: 7, ci: 3, co: 5, kh: 3, kw: 3, stride: 1, pad: 1 },
      { n: 2, h: 9, w: 7, ci: 3, co: 4, kh: 3, kw: 3, stride: 2, pad: 1 },
      { n: 1, h: 6, w: 5, ci: 4, co: 6, kh: 1, kw: 1, stride: 2, pad: 0 },
      { n: 3, h: 11, w: 10, ci: 1, co: 7, kh: 7, kw: 7, stride: 2, pad: 3 },
      { n: 2, h: 13, w: 8, ci: 5, co: 3, kh: 5, kw: 5, stride: 1, pad: 2 },
      { n: 4, h: 16, w: 12, ci: 16, co: 32, kh: 3, kw: 3, stride: 1, pad: 1 },
      { n: 2, h: 5, w: 3, ci: 70, co: 66, kh: 3, kw: 3, stride: 1, pad: 1 },
      // Channels in fours: loads through vec4 views (asserted below), tiles still partly filled.
      { n: 3, h: 7, w: 5, ci: 8, co: 12, kh: 3, kw: 3, stride: 2, pad: 1 },
      { n: 2, h: 9, w: 6, ci: 4, co: 8, kh: 3, kw: 3, stride: 1, pad: 1 },
      { n: 1, h: 6, w: 5, ci: 68, co: 72, kh: 3, kw: 3, stride: 1, pad: 1 },
    ];
    let vectorised = 0;
    for (const s of shapes) {
      const { ho, wo } = convOut(s);
      const x = rand(s.n * s.h * s.w * s.ci);
      const k = rand(s.kh * s.kw * s.ci * s.co);
      const dy = rand(s.n * ho * wo * s.co);
      const work = [convForward('f', s, 'cv_x', 'cv_k', 'cv_y'), convInputGrad('d', s, 'cv_dy', 'cv_k', 'cv_dx'), convWeightGrad('w', s, 'cv_x', 'cv_dy', 'cv_dk')];
      const label = JSON.stringify(s);
      const views = work.map((g) => g.kernels[0]!.buffers.filter((b) => bufferOf(b) !== b).length);
      if (s.ci % 4 === 0 && s.co % 4 === 0) {
        // Both operands of each, except where a narrow tile's few columns make too small a run to share out.
        assert.deepEqual(views, [2, 2, 2].map((v, i) => (i === 1 && s.ci <= 4 ? 1 : v)), `${label}: the three GEMMs' operands read through vec4 views`);
        vectorised++;
      }
      const read = await run(runner, work, { cv_x: x, cv_k: k, cv_dy: dy, cv_y: dy.length, cv_dx: x.length, cv_dk: k.length });
      close(`forward ${label}`, await read('cv_y'), R.convForward(s, x, k));
      close(`input gradient ${label}`, await read('cv_dx'), R.convInputGrad(s, dy, k));
      close(`weight gradient ${label}`, await read('cv_dk'), R.convWeightGrad(s, x, dy));
    }
    assert.equal(vectorised, 4);
    // The references' gradients are those of their forward pass (finite differences, float64).
    const s: ConvShape = { n: 2, h: 5, w: 4, ci: 2, co: 3, kh: 3, kw: 3, stride: 2, pad: 1 };
    const { ho, wo } = convOut(s);
    const [x, k, dy] = [rand(s.n * s.h * s.w * s.ci), rand(s.kh * s.kw * s.ci * s.co), rand(s.n * ho * wo * s.co)];
    close('reference input gradient against finite differences', R.convInputGrad(s, dy, k), R.finiteDiff((xs) => R.dot(R.convForward(s, xs, k), dy), x, all(x.length)));
    close('reference weight gradient against finite differences', R.convWeightGrad(s, x, dy), R.finiteDiff((ks) => R.dot(R.convForward(s, x, ks), dy), k, all(k.length)));
  });

  await t.test('batch norm: grouped statistics, running statistics, apply with residual, ReLU, pooling and dropout; backward against finite differences', async () => {
    for (const cfg of [
      { n: 4, h: 5, w: 3, c: 3, groups: 2, relu: true, pool: false, drop: 0, res: false },
      { n: 2, h: 7, w: 5, c: 6, groups: 2, relu: true, pool: true, drop: 0.3, res: false },
      { n: 3, h: 4, w: 4, c: 5, groups: 1, relu: true, pool: false, drop: 0, res: true },
      { n: 2, h: 9, w: 1, c: 70, groups: 2, relu: false, pool: false, drop: 0, res: false },
    ]) {
      const { n, h, w, c, groups } = cfg;
      const rows = (n / groups) * h * w;
      const total = n * h * w * c;
      const x = rand(total, 2, 50); // a large offset: a one-pass variance would cancel badly
      const gamma = rand(c, 0.5, 1);
      const beta = rand(c);
      const res = cfg.res ? rand(total) : undefined;
      const l: BnLayer = { name: 'bn', c, groups, rows, gamma: 0, beta: c, mean: 0, variance: c, updates: groups === 2 ? [true, true] : [true], saved: 0 };
      const after: After = { relu: cfg.relu, pool: cfg.pool ? { n, h, w } : undefined, dropout: cfg.drop ? { rate: cfg.drop, layer: 7 } : undefined, residual: cfg.res ? 'bn_res' : undefined };
      const outN = cfg.pool ? n * Math.floor(h / 2) * Math.floor(w / 2) * c : total;
      const [step, seed] = [3, 11];
      const mask = cfg.drop ? Float64Array.from({ length: outN }, (_, i) => (dropoutKeepHost(i, 7, cfg.drop, step, seed) ? 1 / (1 - cfg.drop) : 0)) : undefined;
      const gout = rand(outN);
      const running = new Float32Array(2 * c).fill(1, c);
      const read = await run(runner, [...bnStats(l, 'bn_x'), bnApply(l, 'bn_x', 'bn_out', after), ...bnBackward(l, 'bn_x', 'bn_gout', after, { dx: 'bn_dx', residualGrad: cfg.res ? { name: 'bn_gres', accumulate: false } : undefined })], {
        bn_x: x, bn_out: outN, bn_gout: gout, bn_dx: total, bn_gres: total, bn_res: res ?? total,
        [BUF.params]: [...gamma, ...beta], [BUF.grads]: 2 * c, [BUF.running]: running, [BUF.saved]: savedSize(l), [BUF.upload]: [step, seed, 0, 0],
      });
      const refAfter: R.AfterRef = { relu: cfg.relu, pool: cfg.pool ? { n, h, w } : undefined, dropout: mask, residual: res };
      const ref = R.bnForward(x, rows, c, groups, gamma, beta, refAfter);
      const label = JSON.stringify(cfg);
      close(`output ${label}`, await read('bn_out'), ref.out);
      const wantRunning = new Float64Array(2 * c).fill(1, c);
      for (let g = 0; g < groups; g++) for (let ch = 0; ch < c; ch++) {
        wantRunning[ch] = wantRunning[ch]! * 0.9 + ref.mean[g * c + ch]! * 0.1;
        wantRunning[c + ch] = wantRunning[c + ch]! * 0.9 + ((ref.variance[g * c + ch]! * rows) / (rows - 1)) * 0.1;
      }
      close(`running statistics ${label}`, await read(BUF.running), wantRunning);
      const loss = (xs: ArrayLike<number>, gm: ArrayLike<number>, bt: ArrayLike<number>, rs?: ArrayLike<number>) => R.dot(R.bnForward(xs, rows, c, groups, gm, bt, { ...refAfter, residual: rs }).out, gout);
      close(`d x ${label}`, await read('bn_dx'), R.finiteDiff((xs) => loss(xs, gamma, beta, res), x, all(total), 1e-4));
      const grads = await read(BUF.grads);
      close(`d gamma ${label}`, grads.subarray(0, c), R.finiteDiff((gs) => loss(x, gs, beta, res), gamma, all(c)));
      close(`d beta ${label}`, grads.subarray(c), R.finiteDiff((bs) => loss(x, gamma, bs, res), beta, all(c)));
      if (res) close(`d residual ${label}`, await read('bn_gres'), R.finiteDiff((rs) => loss(x, gamma, beta, rs), res, all(total)));
    }
  });

  await t.test('pooling: the CNN head (with dropout), the 3x3 stride-2 max pool, global average pooling; each backward', async () => {
    for (const [n, tt, w, c, rate] of [[3, 5, 4, 6, 0.5], [2, 7, 3, 70, 0]] as const) {
      const x = rand(n * tt * w * c);
      const ge = rand(n * c);
      const [step, seed] = [2, 9];
      const head = { n, t: tt, w, c, dropout: rate ? { rate, layer: 100 } : undefined };
      const mask = Float64Array.from({ length: n * c }, (_, i) => (rate ? (dropoutKeepHost(i, 100, rate, step, seed) ? 1 / (1 - rate) : 0) : 1));
      const read = await run(runner, [headForward(head, 'hd_x', 'hd_f', 'hd_fmax', 'hd_e'), headBackward(head, 'hd_f', 'hd_fmax', 'hd_ge', 'hd_gx')], { hd_x: x, hd_f: n * tt * c, hd_fmax: n * c, hd_e: n * c, hd_ge: ge, hd_gx: x.length, [BUF.upload]: [step, seed, 0, 0] });
      close(`head ${n}x${tt}x${w}x${c}`, await read('hd_e'), R.headForward(x, n, tt, w, c, mask));
      close(`head backward ${n}x${tt}x${w}x${c}`, await read('hd_gx'), R.finiteDiff((xs) => R.dot(R.headForward(xs, n, tt, w, c, mask), ge), x, all(x.length)));
    }
    for (const [n, h, w, c] of [[2, 9, 7, 3], [1, 8, 6, 5]] as const) {
      const s = { n, h, w, c };
      const { ho, wo } = maxPoolOut(s);
      const x = rand(n * h * w * c);
      const gy = rand(n * ho * wo * c);
      const gp = rand(n * c);
      const read = await run(runner, [maxPoolForward(s, 'mp_x', 'mp_y'), maxPoolBackward(s, 'mp_x', 'mp_gy', 'mp_gx'), globalPool(s, 'mp_x', 'gp_y'), globalPoolBackward(s, 'gp_gy', 'gp_gx')], { mp_x: x, mp_y: gy.length, mp_gy: gy, mp_gx: x.length, gp_y: n * c, gp_gy: gp, gp_gx: x.length });
      close(`max pool ${h}x${w}`, await read('mp_y'), R.maxPool(x, n, h, w, c));
      close(`max pool backward ${h}x${w}`, await read('mp_gx'), R.finiteDiff((xs) => R.dot(R.maxPool(xs, n, h, w, c), gy), x, all(x.length)));
      close(`global pool ${h}x${w}`, await read('gp_y'), R.globalPool(x, n, h, w, c));
      close(`global pool backward ${h}x${w}`, await read('gp_gx'), R.finiteDiff((xs) => R.dot(R.globalPool(xs, n, h, w, c), gp), x, all(x.length)));
    }
  });

  await t.test('dense layers: forward with bias and ReLU; d W, d b and d x of the masked gradient', async () => {
    for (const [m, inn, out, relu] of [[7, 13, 5, true], [70, 65, 66, false]] as const) {
      const x = rand(m * inn);
      const wts = rand(inn * out);
      const bias = rand(out);
      const gy = rand(m * out);
      const s = { m, in: inn, out, weight: 0, bias: inn * out, relu };
      const read = await run(runner, [denseForward('fc', s, 'fc_x', 'fc_y'), ...denseBackward('fc', s, 'fc_x', 'fc_y', 'fc_gy', { dx: { name: 'fc_dx', accumulate: false } })], { fc_x: x, fc_y: m * out, fc_gy: gy, fc_dx: x.length, [BUF.params]: [...wts, ...bias], [BUF.grads]: inn * out + out });
      const fwd = (xs: ArrayLike<number>, ws: ArrayLike<number>, bs: ArrayLike<number>) => R.matmul(xs, ws, m, inn, out).map((v, i) => (relu ? Math.max(v + bs[i % out]!, 0) : v + bs[i % out]!));
      close(`forward ${m}x${inn}x${out}`, await read('fc_y'), fwd(x, wts, bias));
      const grads = await read(BUF.grads);
      const label = `${m}x${inn}x${out}${relu ? ' ReLU' : ''}`;
      close(`d W ${label}`, grads.subarray(0, inn * out), R.finiteDiff((ws) => R.dot(fwd(x, ws, bias), gy), wts, all(wts.length)));
      close(`d b ${label}`, grads.subarray(inn * out), R.finiteDiff((bs) => R.dot(fwd(x, wts, bs), gy), bias, all(out)));
      close(`d x ${label}`, await read('fc_dx'), R.finiteDiff((xs) => R.dot(fwd(xs, wts, bias), gy), x, all(x.length)));
    }
  });

  await t.test('losses: CCC (pooled, per emotion), Barlow Twins, the totals of vanilla, joint and RUWL; their gradients', async () => {
    const [b, e, p] = [6, 10, 9];
    for (const [mode, form] of [['vanilla', 'pooled'], ['joint', 'per-emotion'], ['ruwl', 'pooled'], ['ruwl', 'per-emotion']] as const) {
      const groups = mode === 'vanilla' ? 1 : 2;
      const spec: LossSpec = { mode, b, groups, e, form, weights: [1, 0.7, 0.01], lambda: 0.005, p, s: 0, labels: UPLOAD.scalars, ring: 4 };
      const L = lossLayout(spec);
      const pred = rand(groups * b * e, 0.5);
      const labels = Float32Array.from({ length: b * e }, () => rng.float());
      const z = rand(2 * b * p);
      const sVals = [0.9, -1.2, 0.05];
      const upload = new Float32Array(UPLOAD.scalars + b * e);
      upload[UPLOAD.step] = 6;
      upload.set(labels, UPLOAD.scalars);
      const twin = groups === 2;
      const read = await run(runner, [cccStats(spec, 'ls_pred'), ...(twin ? [btCorrelation(spec, 'ls_z', 'ls_c'), btSums(spec, 'ls_c')] : []), combine(spec), cccGrad(spec, 'ls_pred', 'ls_gpred'), ...(twin ? btGrad(spec, 'ls_z', 'ls_c', 'ls_gz') : [])], {
        ls_pred: pred, ls_z: z, ls_c: p * p, ls_gpred: pred.length, ls_gz: z.length, [BUF.upload]: upload, [LOSSES]: L.size, [BUF.params]: sVals, [BUF.grads]: 3,
      });
      const total = (pr: ArrayLike<number>, zz: ArrayLike<number>, s: ArrayLike<number>) => {
        const [l1, l2 = 0] = R.cccLosses(pr, labels, groups, b, e, form);
        const bt = twin ? R.barlowTwins(zz, b, p, spec.lambda) : 0;
        if (mode === 'vanilla') return [l1!, l1!, 0, 0];
        if (mode === 'joint') return [l1! * 1 + l2 * 0.7 + bt * 0.01, l1!, l2, bt];
        const q = Array.from(s, (v) => v * v);
        return [l1! / q[0]! + Math.log1p(q[0]!) + l2 / q[1]! + Math.log1p(q[1]!) + (bt * 1e-8) / q[2]! + Math.log1p(q[2]!) + Math.abs(2 - Math.abs(s[0]!) - Math.abs(s[1]!) - Math.abs(s[2]!)), l1!, l2, bt];
      };
      const label = `${mode}, ${form}`;
      const lossesBuf = await read(LOSSES);
      close(`losses ${label}`, lossesBuf.subarray(L.ring + (6 % 4) * 4, L.ring + (6 % 4) * 4 + 4), total(pred, z, sVals));
      close(`d predictions ${label}`, await read('ls_gpred'), R.finiteDiff((pr) => total(pr, z, sVals)[0]!, pred, all(pred.length)));
      if (twin) close(`d z (Barlow Twins) ${label}`, await read('ls_gz'), R.finiteDiff((zz) => total(pred, zz, sVals)[0]!, z, all(z.length)));
      if (mode === 'ruwl') close(`d s ${label}`, await read(BUF.grads), R.finiteDiff((s) => total(pred, z, s)[0]!, sVals, all(3)));
    }
  });

  await t.test('AdamW over the flat parameters, and dropout masks the host can regenerate', async () => {
    const n = 1000;
    const [params, grads, m1, m2] = [rand(n), rand(n, 0.1), rand(n, 0.01), Float32Array.from({ length: n }, () => rng.float() * 1e-3)];
    const [lr, wd, step] = [2e-3, 0.01, 7];
    const upload = new Float32Array(UPLOAD.scalars);
    Object.assign(upload, { [UPLOAD.lr]: lr, [UPLOAD.decay]: 1 - lr * wd, [UPLOAD.bc1]: 1 - 0.9 ** step, [UPLOAD.bc2]: 1 - 0.999 ** step });
    const read = await run(runner, [adamw(n)], { [BUF.params]: params, [BUF.grads]: grads, [BUF.moment1]: m1, [BUF.moment2]: m2, [BUF.upload]: upload });
    const m = Float64Array.from(m1, (v, i) => v * 0.9 + grads[i]! * 0.1);
    const v = Float64Array.from(m2, (x, i) => x * 0.999 + grads[i]! ** 2 * 0.001);
    const want = Float64Array.from(params, (p, i) => p * (1 - lr * wd) - lr * (m[i]! / (1 - 0.9 ** step)) / (Math.sqrt(v[i]! / (1 - 0.999 ** step)) + 1e-8));
    close('AdamW parameters', await read(BUF.params), want);
    close('AdamW first moments', await read(BUF.moment1), m);
    close('AdamW second moments', await read(BUF.moment2), v);
    // A batch norm over ones (gamma 0, beta 1) with dropout writes each element's keep factor.
    const l: BnLayer = { name: 'mask', c: 7, groups: 1, rows: 500, gamma: 0, beta: 7, updates: [false], saved: 0 };
    const rate = 0.3;
    const r2 = await run(runner, [...bnStats(l, 'dm_x'), bnApply(l, 'dm_x', 'dm_y', { dropout: { rate, layer: 4 } })], { dm_x: rand(3500), dm_y: 3500, [BUF.params]: [...new Array(7).fill(0), ...new Array(7).fill(1)], [BUF.saved]: savedSize(l), [BUF.upload]: [12, 99, 0, 0] });
    const got = await r2('dm_y');
    const wantMask = Float64Array.from({ length: 3500 }, (_, i) => (dropoutKeepHost(i, 4, rate, 12, 99) ? 1 / (1 - rate) : 0));
    close('dropout keep factors (GPU against the host generator)', got, wantMask);
    const kept = Array.from(got).filter((x) => x > 0).length / got.length;
    assert.ok(Math.abs(kept - (1 - rate)) < 0.03, `about 70 % kept, got ${kept}`);
  });
});
