// Convolutions (NHWC activations, HWIO kernels, stride s, the same padding p on every side) as
// implicit GEMMs over the template of gemm.ts, each tensor read in place:
//   forward  y[n,ho,wo,co]   M = N*Ho*Wo  cols = Co  K = kh*kw*Ci  A = the input's im2col view, B = the kernel
//   dgrad    dx[n,h,w,ci]    M = N*H*W    cols = Ci  K = kh*kw*Co  A = dy at the taps that reach (h, w), B = the kernel's (co, ci) transposed
//   wgrad    dW[r,c,ci,co]   M = kh*kw*Ci cols = Co  K = N*Ho*Wo   A = the input's im2col view transposed, B = dy (split-K: K is large)
import { chooseSplit, gemm, GEMM_TILES, type Gemm, type GemmTile, type Hook } from './gemm.ts';
import { divmod, u, vec4View } from './wgsl.ts';

export interface ConvShape {
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  kh: number;
  kw: number;
  stride: number;
  pad: number;
}

export function convOut(s: ConvShape): { ho: number; wo: number } {
  return { ho: Math.floor((s.h + 2 * s.pad - s.kh) / s.stride) + 1, wo: Math.floor((s.w + 2 * s.pad - s.kw) / s.stride) + 1 };
}

/** How a result is written: replacing what the buffer holds, or added to it (a gradient both views contribute to). */
export interface StoreOpts {
  accumulate?: boolean;
}

function store(name: string, nSize: number, opts: StoreOpts): Hook {
  const at = `m * ${u(nSize)} + n`;
  return { buffers: [{ name, write: true }], code: `fn store(m: u32, n: u32, v: f32) { ${name}[${at}] = ${opts.accumulate ? `${name}[${at}] + ` : ''}v; }` };
}

/** WGSL splitting a linear index into (n, row, col) of an [n, rows, cols] grid. */
function pixel(idx: string, rows: number, cols: number): string {
  const a = divmod(idx, rows * cols);
  const b = divmod('q', cols);
  return `let n = ${a.q}; let q = ${a.r}; let py = ${b.q}; let px = ${b.r};`;
}

/** WGSL splitting a kernel-window index (r, c, ch) with ch fastest. */
function tap(idx: string, kw: number, ch: number): string {
  const a = divmod(idx, ch);
  const b = divmod('t', kw);
  return `let ch = ${a.r}; let t = ${a.q}; let r = ${b.q}; let c = ${b.r};`;
}

/**
 * A loader in both widths: `body` computes the flat index `at` of the first value (or returns
 * 0.0 early); the scalar hook reads buffer[at], the vec4 hook the four values from there through
 * the buffer's vec4 view. The vec4 one is offered only when `vec` holds: the four lie in one
 * contiguous run that starts 16-byte aligned whenever the GEMM index it steps is a multiple of 4.
 */
function loaders(fn: 'loadA' | 'loadB', args: string, buffer: string, body: string, vec: boolean): { scalar: Hook; vec4?: Hook } {
  const code = (name: string, type: string, zero: string, read: string) => `fn ${name}(${args}) -> ${type} {
  ${body.replaceAll('ZERO', zero)}
  return ${read};
}`;
  const view = vec4View(buffer);
  return {
    scalar: { buffers: [{ name: buffer }], code: code(fn, 'f32', '0.0', `${buffer}[at]`) },
    vec4: vec ? { buffers: [{ name: view }], code: code(`${fn}4`, 'vec4<f32>', 'vec4<f32>(0.0)', `${view}[(at >> 2u)]`) } : undefined,
  };
}

/** Tile and split-K for a GEMM of this size: the large tile where it fills the GPU, the narrow one for a few columns, split-K where K dwarfs the output. */
function plan(m: number, n: number, k: number, target: number): { tile: GemmTile; split: number } {
  const tile = n <= 4 ? GEMM_TILES.narrow : m >= 64 && n >= 48 ? GEMM_TILES.large : GEMM_TILES.small;
  return { tile, split: chooseSplit(m, n, k, tile, target) };
}

/** Workgroups a GEMM should fill at least (a GPU's SM count times a few); tests may set fewer. */
export const TARGET_WORKGROUPS = 256;

export function convForward(name: string, s: ConvShape, x: string, w: string, y: string, opts: StoreOpts = {}): Gemm {
  const { ho, wo } = convOut(s);
  const M = s.n * ho * wo;
  const K = s.kh * s.kw * s.ci;
  // A(m, k): the input under tap k of output pixel m (k = (r, c, ch), ch fastest: four in a run when ci % 4 == 0).
  const a = loaders('loadA', 'm: u32, k: u32', x, `${pixel('m', ho, wo)}
  ${tap('k', s.kw, s.ci)}
  let h = i32(py * ${u(s.stride)} + r) - ${s.pad}i;
  let w = i32(px * ${u(s.stride)} + c) - ${s.pad}i;
  if (h < 0i || h >= ${s.h}i || w < 0i || w >= ${s.w}i) { return ZERO; }
  let at = ((n * ${u(s.h)} + u32(h)) * ${u(s.w)} + u32(w)) * ${u(s.ci)} + ch;`, s.ci % 4 === 0);
  // B(k, n): the kernel, HWIO, row-major [K, Co].
  const b = loaders('loadB', 'k: u32, n: u32', w, `let at = k * ${u(s.co)} + n;`, s.co % 4 === 0);
  return gemm({ name, m: M, n: s.co, k: K, ...plan(M, s.co, K, TARGET_WORKGROUPS), loadA: a.scalar, loadB: b.scalar, loadA4: a.vec4, loadB4: b.vec4, store: store(y, s.co, opts), aAlong: 'k', bAlong: 'n' });
}

export function convInputGrad(name: string, s: ConvShape, dy: string, w: string, dx: string, opts: StoreOpts = {}): Gemm {
  const { ho, wo } = convOut(s);
  const M = s.n * s.h * s.w;
  const K = s.kh * s.kw * s.co;
  const strided = s.stride > 1;
  // A(m, k): dy at the output pixel that tap k of input pixel m came from (k = (r, c, ch over Co)).
  const a = loaders('loadA', 'm: u32, k: u32', dy, `${pixel('m', s.h, s.w)}
  ${tap('k', s.kw, s.co)}
  let th = i32(py) + ${s.pad}i - i32(r);
  let tw = i32(px) + ${s.pad}i - i32(c);
  if (th < 0i || tw < 0i) { return ZERO; }
  ${strided ? `if (u32(th) % ${u(s.stride)} != 0u || u32(tw) % ${u(s.stride)} != 0u) { return ZERO; }` : ''}
  let oh = u32(th) / ${u(s.stride)};
  let ow = u32(tw) / ${u(s.stride)};
  if (oh >= ${u(ho)} || ow >= ${u(wo)}) { return ZERO; }
  let at = ((n * ${u(ho)} + oh) * ${u(wo)} + ow) * ${u(s.co)} + ch;`, s.co % 4 === 0);
  // B(k, n) = W[r, c, n, ch]: contiguous along k (ch), so the tile is staged along k.
  const b = loaders('loadB', 'k: u32, n: u32', w, `${tap('k', s.kw, s.co)}
  let at = ((r * ${u(s.kw)} + c) * ${u(s.ci)} + n) * ${u(s.co)} + ch;`, s.co % 4 === 0);
  return gemm({ name, m: M, n: s.ci, k: K, ...plan(M, s.ci, K, TARGET_WORKGROUPS), loadA: a.scalar, loadB: b.scalar, loadA4: a.vec4, loadB4: b.vec4, store: store(dx, s.ci, opts), aAlong: 'k', bAlong: 'k' });
}

export function convWeightGrad(name: string, s: ConvShape, x: string, dy: string, dw: string, opts: StoreOpts = {}): Gemm {
  const { ho, wo } = convOut(s);
  const M = s.kh * s.kw * s.ci;
  const K = s.n * ho * wo;
  // A(m, k): the input under tap m (= (r, c, ch), ch fastest: four in a run along m when ci % 4 == 0) of output pixel k.
  const a = loaders('loadA', 'm: u32, k: u32', x, `${tap('m', s.kw, s.ci)}
  ${pixel('k', ho, wo)}
  let h = i32(py * ${u(s.stride)} + r) - ${s.pad}i;
  let w = i32(px * ${u(s.stride)} + c) - ${s.pad}i;
  if (h < 0i || h >= ${s.h}i || w < 0i || w >= ${s.w}i) { return ZERO; }
  let at = ((n * ${u(s.h)} + u32(h)) * ${u(s.w)} + u32(w)) * ${u(s.ci)} + ch;`, s.ci % 4 === 0);
  // B(k, n): dy, row-major [N*Ho*Wo, Co].
  const b = loaders('loadB', 'k: u32, n: u32', dy, `let at = k * ${u(s.co)} + n;`, s.co % 4 === 0);
  return gemm({ name, m: M, n: s.co, k: K, ...plan(M, s.co, K, TARGET_WORKGROUPS), loadA: a.scalar, loadB: b.scalar, loadA4: a.vec4, loadB4: b.vec4, store: store(dw, s.co, opts), aAlong: 'm', bAlong: 'n' });
}
