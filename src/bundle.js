// TypeScript -> one ESM file with esbuild (the transformer tsx itself uses). Used for the engine
// (dist/, built by bin/pipeline.js or `npm pack`) and for stage modules (a content-addressed module
// cache): importing plain JS starts in ~0.1 s here, where a loader hook (tsx) adds ~0.26 s to every
// process start. Plain JS with JSDoc types, because it runs before any TypeScript can load.
//
// `import.meta.url` keeps meaning each source file's URL. In a stage module bundle (stored in the
// cache, anywhere) it becomes that absolute URL and packages become absolute file URLs, so the
// bundle finds them from wherever it is stored. In the engine bundle (`relocatable`) it becomes a
// URL relative to the bundle and packages stay bare imports: the package can be packed, installed
// and moved, since dist/ sits beside src/ and node_modules in every copy of it.
import { readFile } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { dirname, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** `import { defineStage } from 'rrtn-pipeline'` in a stage: the stage API, bundled in. */
export const SELF_PACKAGE = 'rrtn-pipeline';
export const STAGE_API_FILE = fileURLToPath(new URL('./stage-api.ts', import.meta.url));
/** This package's folder (a checkout, or node_modules/rrtn-pipeline once installed). */
const OWN_ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * @param {string | undefined} outdir where the bundle is written, for relocatable URLs
 * @returns {import('esbuild').Plugin}
 */
function keepSourceUrls(outdir) {
  return {
    name: 'keep-source-urls',
    setup(build) {
      build.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (args) => {
        // Other packages' files are never bundled (they stay imports); this package's own are,
        // also where it is installed under node_modules.
        if (args.path.includes(`${sep}node_modules${sep}`) && !args.path.startsWith(OWN_ROOT)) return undefined;
        const text = await readFile(args.path, 'utf8');
        if (!text.includes('import.meta')) return undefined;
        const url = outdir
          ? `new URL(${JSON.stringify(relative(outdir, args.path).split(sep).join('/'))}, import.meta.url).href`
          : JSON.stringify(pathToFileURL(args.path).href);
        const contents = text
          .replace(/\bimport\.meta\.url\b/g, url)
          .replace(/\bimport\.meta\.dirname\b/g, outdir ? `decodeURIComponent(new URL('.', ${url}).pathname).replace(/\\/$/, '')` : JSON.stringify(dirname(args.path)))
          .replace(/\bimport\.meta\.filename\b/g, outdir ? `decodeURIComponent(new URL(${url}).pathname)` : JSON.stringify(args.path));
        return { contents, loader: args.path.endsWith('ts') ? 'ts' : 'js' };
      });
    },
  };
}

/**
 * @param {boolean} relocatable packages stay bare imports (resolved from the bundle's folder)
 * @returns {import('esbuild').Plugin}
 */
function packagesByPath(relocatable) {
  return {
    name: 'packages-by-path',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.pluginData === 'inner') return undefined;
        if (isBuiltin(args.path)) return { path: args.path, external: true };
        if (args.path === SELF_PACKAGE) return { path: STAGE_API_FILE };
        if (relocatable) return { path: args.path, external: true };
        const r = await build.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: 'inner' });
        if (r.errors.length) return { errors: r.errors };
        return { path: pathToFileURL(r.path).href, external: true };
      });
    },
  };
}

/**
 * @param {Record<string, string>} entryPoints output name -> source file
 * @param {string} outdir
 * @param {{ splitting?: boolean, relocatable?: boolean }} [options] splitting: what a module imports
 *   dynamically goes to chunks loaded on first use, with the packages only they import (keeps
 *   start-up light); relocatable: the engine bundle (see above)
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
    plugins: [keepSourceUrls(options.relocatable ? outdir : undefined), packagesByPath(!!options.relocatable)],
  });
  return {
    files: new Map(r.outputFiles.map((f) => [f.path, f.contents])),
    inputs: Object.keys(r.metafile.inputs),
  };
}

/** The engine's entry points, bundled into dist/ (the CLI, the module-stage worker, the reaper, the stage API). */
const ENGINE_ENTRIES = { cli: 'src/cli/main.ts', worker: 'src/executors/worker.ts', reaper: 'src/executors/reaper.ts', 'stage-api': 'src/stage-api.ts' };

/**
 * Builds dist/ of the package at `root` (relocatable: it is packed and installed as it is), each
 * file replaced atomically so that a concurrent run sees the old build or the new, never half;
 * then the BUILD stamp.
 * @param {string} root
 */
export async function buildEngine(root) {
  const { mkdirSync, renameSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { randomBytes } = await import('node:crypto');
  const dist = join(root, 'dist');
  const entries = Object.fromEntries(Object.entries(ENGINE_ENTRIES).map(([k, v]) => [k, join(root, v)]));
  const { files } = await bundle(entries, dist, { relocatable: true });
  mkdirSync(dist, { recursive: true });
  for (const [path, bytes] of files) {
    const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  }
  writeFileSync(join(dist, 'BUILD'), new Date().toISOString());
}

// `node src/bundle.js --build` (npm's prepack): dist/ for the package tarball.
if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url && process.argv[2] === '--build') {
  await buildEngine(OWN_ROOT);
}
