// TypeScript -> one ESM file with esbuild (the transformer tsx itself uses). Used for the engine
// (dist/, built by bin/pipeline.js) and for stage modules (a content-addressed module cache):
// importing plain JS starts in ~0.1 s here, where a loader hook (tsx) adds ~0.26 s to every
// process start. Plain JS with JSDoc types, because it runs before any TypeScript can load.
//
// Local files are bundled; packages stay imports, written as absolute file URLs so that a bundle
// finds them from wherever it is stored. `import.meta.url` keeps meaning each source file's URL.
import { readFile } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** `import { defineStage } from 'rrtn-pipeline'` in a stage: the stage API, bundled in. */
export const SELF_PACKAGE = 'rrtn-pipeline';
export const STAGE_API_FILE = fileURLToPath(new URL('./stage-api.ts', import.meta.url));

/** @type {import('esbuild').Plugin} */
const keepSourceUrls = {
  name: 'keep-source-urls',
  setup(build) {
    build.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (args) => {
      if (args.path.includes('/node_modules/')) return undefined;
      const text = await readFile(args.path, 'utf8');
      if (!text.includes('import.meta')) return undefined;
      const contents = text
        .replace(/\bimport\.meta\.url\b/g, JSON.stringify(pathToFileURL(args.path).href))
        .replace(/\bimport\.meta\.dirname\b/g, JSON.stringify(dirname(args.path)))
        .replace(/\bimport\.meta\.filename\b/g, JSON.stringify(args.path));
      return { contents, loader: args.path.endsWith('ts') ? 'ts' : 'js' };
    });
  },
};

/** @type {import('esbuild').Plugin} */
const packagesByPath = {
  name: 'packages-by-path',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData === 'inner') return undefined;
      if (isBuiltin(args.path)) return { path: args.path, external: true };
      if (args.path === SELF_PACKAGE) return { path: STAGE_API_FILE };
      const r = await build.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: 'inner' });
      if (r.errors.length) return { errors: r.errors };
      return { path: pathToFileURL(r.path).href, external: true };
    });
  },
};

/**
 * @param {Record<string, string>} entryPoints output name -> source file
 * @param {string} outdir
 * @param {{ splitting?: boolean }} [options] splitting: what a module imports dynamically goes to
 *   chunks loaded on first use, with the packages only they import (keeps start-up light)
 * @returns {Promise<{ files: Map<string, Uint8Array>, inputs: string[] }>} output path -> bytes; local sources used
 */
export async function bundle(entryPoints, outdir, options = {}) {
  const esbuild = await import('esbuild');
  const r = await esbuild.build({
    entryPoints,
    outdir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: !!options.splitting,
    chunkNames: 'chunk-[hash]',
    write: false,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // Packages resolve as Node itself would: no 'module' condition or field.
    mainFields: ['main'],
    conditions: ['node'],
    sourcemap: entryPoints.stage ? 'inline' : false, // stage modules: users need their line numbers
    metafile: true,
    logLevel: 'silent',
    plugins: [keepSourceUrls, packagesByPath],
  });
  return {
    files: new Map(r.outputFiles.map((f) => [f.path, f.contents])),
    inputs: Object.keys(r.metafile.inputs),
  };
}
