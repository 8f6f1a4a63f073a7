// Types for package files imported by path, which their packages do not map to a declaration.

/** hash-wasm's xxHash128 alone (20 KB, CommonJS: one default export), not its index of every algorithm. */
declare module 'hash-wasm/dist/xxhash128.umd.min.js' {
  const xxhash128: { createXXHash128: typeof import('hash-wasm').createXXHash128 };
  export default xxhash128;
}

/** s3rver (a test and benchmark dependency: the S3 server on 127.0.0.1) ships no types: what we use of it. */
declare module 's3rver' {
  export default class S3rver {
    constructor(options: { port?: number; address?: string; silent?: boolean; directory: string; configureBuckets?: Array<{ name: string }> });
    run(): Promise<{ address: string; port: number }>;
    close(): Promise<void>;
  }
}
