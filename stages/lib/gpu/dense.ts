// Fully connected layers over GEMMs: y = x W + b (optionally ReLU), with W [in, out] and b at
// literal offsets of the parameter buffer, and their backward: d W = x^T g, d b = 1^T g (a GEMM
// with a row of ones), d x = g W^T, where g is the output's gradient times the ReLU mask.
import { chooseSplit, gemm, GEMM_TILES, type Gemm, type GemmTile, type Hook } from './gemm.ts';
import { BUF, u } from './wgsl.ts';

export interface DenseShape {
  /** Rows (batch). */
  m: number;
  in: number;
  out: number;
  /** Offsets of W and b in `params` / `grads`. */
  weight: number;
  bias: number;
  relu?: boolean;
}

const tileFor = (m: number, n: number): GemmTile => (m >= 64 && n >= 64 ? GEMM_TILES.large : GEMM_TILES.small);
const TARGET = 128;

export function denseForward(name: string, s: DenseShape, x: string, y: string): Gemm {
  const tile = tileFor(s.m, s.out);
  return gemm({
    name,
    m: s.m,
    n: s.out,
    k: s.in,
    tile,
    split: chooseSplit(s.m, s.out, s.in, tile, TARGET),
    loadA: { buffers: [{ name: x }], code: `fn loadA(m: u32, k: u32) -> f32 { return ${x}[m * ${u(s.in)} + k]; }` },
    loadB: { buffers: [{ name: BUF.params }], code: `fn loadB(k: u32, n: u32) -> f32 { return ${BUF.params}[${u(s.weight)} + k * ${u(s.out)} + n]; }` },
    store: {
      buffers: [{ name: BUF.params }, { name: y, write: true }],
      code: `fn store(m: u32, n: u32, v: f32) { let z = v + ${BUF.params}[${u(s.bias)} + n]; ${y}[m * ${u(s.out)} + n] = ${s.relu ? 'max(z, 0.0)' : 'z'}; }`,
    },
    aAlong: 'k',
    bAlong: 'n',
  });
}

/** The output gradient as the backward GEMMs read it: `gy`, masked by ReLU (y > 0) where the layer has one. */
function gradOut(s: DenseShape, gy: string, y: string): { buffers: Hook['buffers']; code: string } {
  return {
    buffers: [{ name: gy }, ...(s.relu ? [{ name: y }] : [])],
    code: `fn g_out(m: u32, n: u32) -> f32 { let i = m * ${u(s.out)} + n; return ${s.relu ? `select(0.0, ${gy}[i], ${y}[i] > 0.0)` : `${gy}[i]`}; }`,
  };
}

export interface DenseBackward {
  /** Where d x goes (undefined: not needed), written or added. */
  dx?: { name: string; accumulate: boolean };
}

/** d W and d b into `grads`, and d x. `x` is the layer's input, `y` its output (for the ReLU mask). */
export function denseBackward(name: string, s: DenseShape, x: string, y: string, gy: string, opts: DenseBackward): Gemm[] {
  const g = gradOut(s, gy, y);
  const dwTile = tileFor(s.in, s.out);
  const dw = gemm({
    name: `${name} dW`,
    m: s.in,
    n: s.out,
    k: s.m,
    tile: dwTile,
    split: chooseSplit(s.in, s.out, s.m, dwTile, TARGET),
    helpers: g.code,
    loadA: { buffers: [{ name: x }], code: `fn loadA(m: u32, k: u32) -> f32 { return ${x}[k * ${u(s.in)} + m]; }` },
    loadB: { buffers: g.buffers, code: 'fn loadB(k: u32, n: u32) -> f32 { return g_out(k, n); }' },
    store: { buffers: [{ name: BUF.grads, write: true }], code: `fn store(m: u32, n: u32, v: f32) { ${BUF.grads}[${u(s.weight)} + m * ${u(s.out)} + n] = v; }` },
    aAlong: 'm',
    bAlong: 'n',
  });
  const db = gemm({
    name: `${name} db`,
    m: 1,
    n: s.out,
    k: s.m,
    tile: GEMM_TILES.small,
    split: chooseSplit(1, s.out, s.m, GEMM_TILES.small, TARGET),
    helpers: g.code,
    loadA: { buffers: [], code: 'fn loadA(m: u32, k: u32) -> f32 { return 1.0; }' },
    loadB: { buffers: g.buffers, code: 'fn loadB(k: u32, n: u32) -> f32 { return g_out(k, n); }' },
    store: { buffers: [{ name: BUF.grads, write: true }], code: `fn store(m: u32, n: u32, v: f32) { ${BUF.grads}[${u(s.bias)} + n] = v; }` },
    bAlong: 'n',
  });
  const out = [dw, db];
  if (opts.dx) {
    const d = opts.dx;
    const tile = tileFor(s.m, s.in);
    out.push(
      gemm({
        name: `${name} dx`,
        m: s.m,
        n: s.in,
        k: s.out,
        tile,
        split: chooseSplit(s.m, s.in, s.out, tile, TARGET),
        helpers: g.code,
        loadA: { buffers: g.buffers, code: 'fn loadA(m: u32, k: u32) -> f32 { return g_out(m, k); }' },
        loadB: { buffers: [{ name: BUF.params }], code: `fn loadB(k: u32, n: u32) -> f32 { return ${BUF.params}[${u(s.weight)} + n * ${u(s.out)} + k]; }` },
        store: { buffers: [{ name: d.name, write: true }], code: `fn store(m: u32, n: u32, v: f32) { let i = m * ${u(s.in)} + n; ${d.name}[i] = ${d.accumulate ? `${d.name}[i] + ` : ''}v; }` },
        aAlong: 'k',
        bAlong: 'n',
      }),
    );
  }
  return out;
}
