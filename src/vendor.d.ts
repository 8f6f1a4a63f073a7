// Types for package files imported by path, which their packages do not map to a declaration.

/** hash-wasm's xxHash128 alone (20 KB, CommonJS: one default export), not its index of every algorithm. */
declare module 'hash-wasm/dist/xxhash128.umd.min.js' {
  const xxhash128: { createXXHash128: typeof import('hash-wasm').createXXHash128 };
  export default xxhash128;
}
