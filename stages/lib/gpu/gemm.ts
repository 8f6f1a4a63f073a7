// The one GEMM template every matrix product and convolution of the compiled step goes through:
// C[m, n] = sum_k A(m, k) B(k, n), where A and B are read through loader functions (a plain matrix,
// a transposed one, an implicit im2col view of an NHWC tensor: no im2col is ever materialised; four
// at a time through vec4 views where the layout allows) and
// each result goes through a store function (write, accumulate, add a bias, apply ReLU, scale).
// Tiled: a workgroup computes a BM x BN block, staging BK-deep slices of A and B in workgroup memory;
// each thread holds TM x TN accumulators in registers (named scalars, loops unrolled here, since
// Tint unrolls nothing and an indexed private array would live in slow memory). Split-K: S
// workgroups share an output block, each over a slice of K, writing partial sums that a second
// kernel adds in a fixed order (WGSL has no float atomics; a fixed order keeps results deterministic).
import { BUF, bindings, bufferOf, divmod, FLAT, u, type Buffer, type Kernel } from './wgsl.ts';
import { groupsFor } from './runner.ts';

/** A tile configuration: the block of C a workgroup computes, the K-slice depth, and each thread's share. */
export interface GemmTile {
  bm: number;
  bn: number;
  bk: number;
  tm: number;
  tn: number;
}

/**
 * The tile sizes, named so that a GPU session can tune them from per-kernel TFLOP/s (bench/gpu-step.ts).
 * LARGE: 64 x 64 blocks, 256 threads of 4 x 4 (big convolutions); SMALL: 32 x 32, 64 threads of
 * 4 x 4 (narrow products: the head, the losses, deep layers with few rows); NARROW: 128 x 4, 64
 * threads of 2 x 4 (a handful of columns: the first convolution's input gradient, one channel
 * wide, which a square tile would compute 32-64 times over).
 */
export const GEMM_TILES = {
  large: { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 },
  small: { bm: 32, bn: 32, bk: 16, tm: 4, tn: 4 },
  narrow: { bm: 128, bn: 4, bk: 16, tm: 2, tn: 4 },
} as const satisfies Record<string, GemmTile>;

/** A WGSL function and the buffers it reads or writes. */
export interface Hook {
  buffers: Buffer[];
  /** The function's definition: `fn loadA(m: u32, k: u32) -> f32`, `fn loadB(k: u32, n: u32) -> f32` or `fn store(m: u32, n: u32, v: f32)`. */
  code: string;
}

export interface GemmSpec {
  name: string;
  m: number;
  n: number;
  k: number;
  tile?: GemmTile;
  /** Slices of K computed by separate workgroups (1: none). */
  split?: number;
  loadA: Hook;
  loadB: Hook;
  store: Hook;
  /** Which index of A (of B) consecutive threads walk when staging a tile: the one its memory is contiguous along. */
  aAlong?: 'm' | 'k';
  bAlong?: 'k' | 'n';
  /**
   * The loaders again, reading four consecutive values a load along the index `aAlong` (`bAlong`)
   * names (`fn loadA4(m: u32, k: u32) -> vec4<f32>`: A(m, k..k+3) along k, A(m..m+3, k) along m),
   * through a vec4 view of their buffer (vec4View). Given only where the layout allows it (the four
   * contiguous and 16-byte aligned whenever the first index is a multiple of 4); used where that
   * index's range is a multiple of 4 too.
   */
  loadA4?: Hook;
  loadB4?: Hook;
  /** WGSL the loaders share (not the store: it also runs in the split-K sum, which binds only its buffers). */
  helpers?: string;
}

/** The GEMM's kernels (one, or two with split-K) and the size of the partial-sum buffer they share (named PARTIALS). */
export interface Gemm {
  kernels: Kernel[];
  partials: number;
}

/** Split-K partial sums go to the step's scratch buffer (one dispatch uses it after another). */
export const PARTIALS = BUF.scratch;

function unique(bs: Buffer[]): Buffer[] {
  const out = new Map<string, Buffer>();
  for (const b of bs) out.set(b.name, { name: b.name, write: out.get(b.name)?.write || b.write });
  return [...out.values()];
}

/** The split of K that gives about `target` workgroups, for a GEMM of this size. */
export function chooseSplit(m: number, n: number, k: number, tile: GemmTile, target: number): number {
  const blocks = Math.ceil(m / tile.bm) * Math.ceil(n / tile.bn);
  if (blocks >= target) return 1;
  const maxSplit = Math.max(1, Math.floor(k / (tile.bk * 4)));
  return Math.max(1, Math.min(maxSplit, Math.ceil(target / blocks), 64));
}

export function gemm(spec: GemmSpec): Gemm {
  const t = spec.tile ?? GEMM_TILES.large;
  const { m: M, n: N, k: K } = spec;
  const split = Math.max(1, spec.split ?? 1);
  const tx = t.bn / t.tn;
  const ty = t.bm / t.tm;
  const wg = tx * ty;
  if (!Number.isInteger(tx) || !Number.isInteger(ty) || (t.bk * t.bm) % wg || (t.bk * t.bn) % wg) throw new Error(`gemm ${spec.name}: tile ${JSON.stringify(t)} does not divide evenly`);
  // K per split, a whole number of K-slices.
  const kPer = Math.ceil(Math.ceil(K / split) / t.bk) * t.bk;
  const slices = Math.max(1, Math.ceil(K / kPer));
  const partialsNeeded = slices > 1;
  const loads = (rows: number, along: 'row' | 'k', tile: string, rowsName: 'm' | 'n', fn: 'loadA' | 'loadB', limit: string): string => {
    const per = (t.bk * rows) / wg;
    const out: string[] = [];
    for (let i = 0; i < per; i++) {
      const e = `(lid + ${u(i * wg)})`;
      const byRow = divmod(e, rows);
      const byK = divmod(e, t.bk);
      const [kk, rr] = along === 'row' ? [byRow.q, byRow.r] : [byK.r, byK.q];
      const g = rowsName === 'm' ? 'm0' : 'n0';
      const args = fn === 'loadA' ? `g${rowsName}${i}, gk${i}` : `gk${i}, g${rowsName}${i}`;
      out.push(`    {
      let kk = ${kk}; let rr = ${rr};
      let g${rowsName}${i} = ${g} + rr; let gk${i} = k0 + kk;
      var v = 0.0;
      if (g${rowsName}${i} < ${limit} && gk${i} < ke) { v = ${fn}(${args}); }
      ${tile}[kk * ${u(rows)} + rr] = v;
    }`);
    }
    return out.join('\n');
  };
  // The same staging with vec4 loads: each thread fetches runs of 4 along the contiguous index and
  // spreads them into the tile. A run is wholly inside or wholly outside the matrix, since the run's
  // first index and that index's range are multiples of 4.
  const loads4 = (rows: number, along: 'row' | 'k', tile: string, rowsName: 'm' | 'n', fn: 'loadA4' | 'loadB4', limit: string): string => {
    const per = (t.bk * rows) / (4 * wg);
    const out: string[] = [];
    for (let i = 0; i < per; i++) {
      const e = `(lid + ${u(i * wg)})`;
      const byRow = divmod(e, rows / 4);
      const byK = divmod(e, t.bk / 4);
      const [kk, rr] = along === 'row' ? [byRow.q, `${byRow.r} * 4u`] : [`${byK.r} * 4u`, byK.q];
      const g = rowsName === 'm' ? 'm0' : 'n0';
      const args = fn === 'loadA4' ? `g${rowsName}${i}, gk${i}` : `gk${i}, g${rowsName}${i}`;
      const spread = [0, 1, 2, 3].map((j) => (along === 'row' ? `${tile}[kk * ${u(rows)} + rr + ${u(j)}] = v[${j}];` : `${tile}[(kk + ${u(j)}) * ${u(rows)} + rr] = v[${j}];`)).join(' ');
      out.push(`    {
      let kk = ${kk}; let rr = ${rr};
      let g${rowsName}${i} = ${g} + rr; let gk${i} = k0 + kk;
      var v = vec4<f32>(0.0);
      if (g${rowsName}${i} < ${limit} && gk${i} < ke) { v = ${fn}(${args}); }
      ${spread}
    }`);
    }
    return out.join('\n');
  };
  // vec4 where the loader offers it, the run's index range is a multiple of 4, the tile splits into
  // whole runs per thread, and nothing the kernel writes is read through the view (a writable
  // binding may not alias another).
  const written = new Set(spec.store.buffers.filter((b) => b.write).map((b) => b.name));
  const vecOk = (hook: Hook | undefined, along: 'row' | 'k', rowsTotal: number, rows: number): hook is Hook =>
    !!hook && (along === 'k' ? K % 4 === 0 : rowsTotal % 4 === 0) && (t.bk * rows) % (4 * wg) === 0 && rows % 4 === 0 && t.bk % 4 === 0 && !hook.buffers.some((b) => written.has(bufferOf(b.name)));
  const aAlong = spec.aAlong === 'k' ? 'k' : 'row';
  const bAlong = spec.bAlong === 'k' ? 'k' : 'row';
  const a4 = vecOk(spec.loadA4, aAlong, M, t.bm) ? spec.loadA4 : undefined;
  const b4 = vecOk(spec.loadB4, bAlong, N, t.bn) ? spec.loadB4 : undefined;
  const accs: string[] = [];
  for (let i = 0; i < t.tm; i++) for (let j = 0; j < t.tn; j++) accs.push(`a${i}_${j}`);
  const inner: string[] = [];
  for (let kk = 0; kk < t.bk; kk++) {
    inner.push('    {');
    for (let i = 0; i < t.tm; i++) inner.push(`    let x${i} = As[${u(kk * t.bm)} + row + ${u(i)}];`);
    for (let j = 0; j < t.tn; j++) inner.push(`    let y${j} = Bs[${u(kk * t.bn)} + col + ${u(j)}];`);
    for (let i = 0; i < t.tm; i++) for (let j = 0; j < t.tn; j++) inner.push(`    a${i}_${j} = a${i}_${j} + x${i} * y${j};`);
    inner.push('    }');
  }
  const stores: string[] = [];
  for (let i = 0; i < t.tm; i++) {
    for (let j = 0; j < t.tn; j++) {
      const target = partialsNeeded ? `${PARTIALS}[(wg.z * ${u(M)} + gm) * ${u(N)} + gn] = a${i}_${j};` : `store(gm, gn, a${i}_${j});`;
      stores.push(`  { let gm = m0 + row + ${u(i)}; let gn = n0 + col + ${u(j)}; if (gm < ${u(M)} && gn < ${u(N)}) { ${target} } }`);
    }
  }
  const loaderA = a4 ?? spec.loadA;
  const loaderB = b4 ?? spec.loadB;
  const mainBuffers = unique([...loaderA.buffers, ...loaderB.buffers, ...(partialsNeeded ? [{ name: PARTIALS, write: true }] : spec.store.buffers)]);
  const code = `${bindings(mainBuffers)}
${spec.helpers ?? ''}
${loaderA.code}
${loaderB.code}
${partialsNeeded ? '' : spec.store.code}
var<workgroup> As: array<f32, ${u(t.bk * t.bm)}>;
var<workgroup> Bs: array<f32, ${u(t.bk * t.bn)}>;
@compute @workgroup_size(${wg})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let row = (lid / ${u(tx)}) * ${u(t.tm)};
  let col = (lid % ${u(tx)}) * ${u(t.tn)};
  let m0 = wg.y * ${u(t.bm)};
  let n0 = wg.x * ${u(t.bn)};
  let kb = wg.z * ${u(kPer)};
  let ke = min(${u(K)}, kb + ${u(kPer)});
${accs.map((a) => `  var ${a} = 0.0;`).join('\n')}
  // A literal trip count: every invocation of the workgroup runs every barrier (lavapipe's coroutine
  // barriers fail on a loop whose exit the compiler cannot see is uniform).
  for (var t = 0u; t < ${u(kPer / t.bk)}; t = t + 1u) {
    let k0 = kb + t * ${u(t.bk)};
${a4 ? loads4(t.bm, aAlong, 'As', 'm', 'loadA4', u(M)) : loads(t.bm, aAlong, 'As', 'm', 'loadA', u(M))}
${b4 ? loads4(t.bn, bAlong, 'Bs', 'n', 'loadB4', u(N)) : loads(t.bn, bAlong, 'Bs', 'n', 'loadB', u(N))}
    workgroupBarrier();
${inner.join('\n')}
    workgroupBarrier();
  }
${stores.join('\n')}
}
`;
  const main: Kernel = { name: spec.name, code, groups: [Math.ceil(N / t.bn), Math.ceil(M / t.bm), slices], buffers: mainBuffers.map((b) => b.name), flops: 2 * M * N * K };
  if (!partialsNeeded) return { kernels: [main], partials: 0 };
  const reduceBuffers = unique([{ name: PARTIALS }, ...spec.store.buffers]);
  const groups = groupsFor(M * N, FLAT);
  const sum = Array.from({ length: slices }, (_, s) => `${PARTIALS}[${u(s * M * N)} + i]`).join(' + ');
  const rc = divmod('i', N);
  const reduce: Kernel = {
    name: `${spec.name} (split-K sum)`,
    code: `${bindings(reduceBuffers)}
${spec.store.code}
@compute @workgroup_size(${FLAT})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * ${u(groups[0])} + wg.x) * ${u(FLAT)} + lid;
  if (i >= ${u(M * N)}) { return; }
  store(${rc.q}, ${rc.r}, ${sum});
}
`,
    groups,
    buffers: reduceBuffers.map((b) => b.name),
  };
  return { kernels: [main, reduce], partials: slices * M * N };
}

/** Loaders and stores of plain row-major matrices. */
export const matrix = {
  /** A[m, k] = name[m * k_size + k] (transposed: name[k * m_size + m]). */
  loadA(name: string, mSize: number, kSize: number, transposed = false): Hook {
    return { buffers: [{ name }], code: `fn loadA(m: u32, k: u32) -> f32 { return ${name}[${transposed ? `k * ${u(mSize)} + m` : `m * ${u(kSize)} + k`}]; }` };
  },
  /** B[k, n] = name[k * n_size + n] (transposed: name[n * k_size + k]). */
  loadB(name: string, kSize: number, nSize: number, transposed = false): Hook {
    return { buffers: [{ name }], code: `fn loadB(k: u32, n: u32) -> f32 { return ${name}[${transposed ? `n * ${u(kSize)} + k` : `k * ${u(nSize)} + n`}]; }` };
  },
  /** C[m, n] written (or added, `accumulate`) to name[m * n_size + n], times `scale`. */
  store(name: string, nSize: number, opts: { accumulate?: boolean; scale?: string } = {}): Hook {
    const v = opts.scale ? `v * ${opts.scale}` : 'v';
    const at = `m * ${u(nSize)} + n`;
    return { buffers: [{ name, write: true }], code: `fn store(m: u32, n: u32, v: f32) { ${name}[${at}] = ${opts.accumulate ? `${name}[${at}] + ` : ''}${v}; }` };
  },
};
