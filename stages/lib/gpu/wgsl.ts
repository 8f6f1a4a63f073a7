// Writing WGSL kernels: bindings declared from the buffers a kernel names (WebGPU's 'auto' layout
// keeps only the bindings a kernel uses, so a kernel declares exactly those), sizes written as
// literals (the compiler folds the index arithmetic), and 1-D kernels over any count of items
// (the grid folded into two dimensions past WebGPU's 65,535 workgroups per dimension).
import { groupsFor, type KernelSource } from './runner.ts';

/**
 * The step's shared buffers, by the names kernels bind them under: the parameters, their gradients
 * (one flat buffer each, every tensor at a literal offset), AdamW's moments, the batch-norm running
 * statistics, per-layer saved statistics, a scratch buffer for partial sums (used by one dispatch
 * after another), and the per-step upload (scalars, then the batch).
 */
export const BUF = {
  params: 'params',
  grads: 'grads',
  moment1: 'moment1',
  moment2: 'moment2',
  running: 'running',
  saved: 'saved',
  scratch: 'scratch',
  upload: 'upload',
} as const;

/** A buffer a kernel binds: f32 storage, read-only unless written. */
export interface Buffer {
  name: string;
  write?: boolean;
}

/**
 * The name under which a kernel reads buffer `name` as array<vec4<f32>> (four floats a load): a
 * second, read-only binding of the same buffer. Whoever binds a kernel's buffers maps it back to
 * the buffer with bufferOf().
 */
export const vec4View = (name: string): string => `${name}${VEC4}`;
const VEC4 = '__vec4';

/** The buffer a binding name refers to (a vec4 view's own buffer). */
export const bufferOf = (binding: string): string => (binding.endsWith(VEC4) ? binding.slice(0, -VEC4.length) : binding);

/** WGSL source and the names of the buffers it binds, in binding order. */
export interface Kernel extends KernelSource {
  buffers: string[];
}

/** An unsigned integer literal. */
export const u = (n: number): string => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`not a u32 size: ${n}`);
  return `${n}u`;
};

/** A float literal (always with a decimal point or exponent, as WGSL wants). */
export const f = (x: number): string => {
  if (!Number.isFinite(x)) throw new Error(`not a finite f32: ${x}`);
  const s = String(Math.fround(x) === x ? x : Math.fround(x));
  return /[.e]/.test(s) ? s : `${s}.0`;
};

export function bindings(buffers: Buffer[]): string {
  // Kernels use short names (m, n, k, i, ...) for indices: a buffer named like one would be shadowed.
  const short = buffers.find((b) => !/^[A-Za-z_][A-Za-z0-9_]{2,}$/.test(b.name));
  if (short) throw new Error(`buffer name '${short.name}': use three or more characters (short names are the kernels' indices)`);
  return buffers.map((b, i) => `@group(0) @binding(${i}) var<storage, ${b.write ? 'read_write' : 'read'}> ${b.name}: array<${b.name.endsWith(VEC4) ? 'vec4<f32>' : 'f32'}>;`).join('\n');
}

/** Threads per workgroup of the 1-D kernels. */
export const FLAT = 256;

/**
 * A kernel with one thread per item `i` in [0, count): `body` is WGSL run with `i: u32` defined
 * (and returning early past the end, so it must hold no barrier).
 */
export function flat(name: string, count: number, buffers: Buffer[], body: string, helpers = ''): Kernel {
  const groups = groupsFor(count, FLAT);
  const code = `${bindings(buffers)}
${helpers}
@compute @workgroup_size(${FLAT})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * ${u(groups[0])} + wg.x) * ${u(FLAT)} + lid;
  if (i >= ${u(count)}) { return; }
${body}
}
`;
  return { name, code, groups, buffers: buffers.map((b) => b.name) };
}

/** `x / d` and `x % d` for a literal d, as WGSL (a power of two becomes a shift and a mask). */
export function divmod(x: string, d: number): { q: string; r: string } {
  if (d === 1) return { q: x, r: '0u' };
  if ((d & (d - 1)) === 0) {
    const s = Math.log2(d);
    return { q: `(${x} >> ${u(s)})`, r: `(${x} & ${u(d - 1)})` };
  }
  return { q: `(${x} / ${u(d)})`, r: `(${x} % ${u(d)})` };
}
