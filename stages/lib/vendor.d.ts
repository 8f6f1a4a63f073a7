// Types for packages that ship none.
declare module '@echogarden/pffft-wasm/simd' {
  /** Emscripten module factory of PFFFT (WASM SIMD build). */
  export default function PFFFT(moduleArg?: object): Promise<{ HEAPF32: Float32Array } & Record<string, unknown>>;
}
