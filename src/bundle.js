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
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** `import { defineStage } from 'rrtn-pipeline'` in a stage: the stage API, bundled in. */
export const SELF_PACKAGE = 'rrtn-pipeline';
export const STAGE_API_FILE = fileURLToPath(new URL('./stage-api.ts', import.meta.url));
/** This package's folder (a checkout, or node_modules/rrtn-pipeline once installed). */
const OWN_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** esbuild's loader for each source extension this project compiles. */
const LOADERS = { '.ts': 'ts', '.mts': 'ts', '.cts': 'ts', '.tsx': 'tsx', '.js': 'js', '.mjs': 'js', '.cjs': 'js', '.jsx': 'jsx', '.json': 'json' };

/** `new URL('./x', import.meta.url)`: a file the module reads at run time, by its own location. */
const ASSET_URL = /\bnew\s+URL\s*\(\s*(['"`])([^'"`$\\]+)\1\s*,\s*import\.meta\.url\s*\)/g;

/**
 * Loads every local source file itself: keeps what it compiled (`seen`: path -> the exact bytes,
 * which the cache key hashes), notes the files a module reads through `new URL(..., import.meta.url)`
 * (`assets`), and rewrites import.meta (see the header).
 * @param {string | undefined} outdir where the bundle is written, for relocatable URLs
 * @param {Map<string, Uint8Array>} seen
 * @param {Set<string>} assets
 * @returns {import('esbuild').Plugin}
 */
function loadSources(outdir, seen, assets) {
  return {
    name: 'load-sources',
    setup(build) {
      build.onLoad({ filter: /.*/, namespace: 'file' }, async (args) => {
        // Other packages' files are never bundled (they stay imports); this package's own are,
        // also where it is installed under node_modules.
        if (args.path.includes(`${sep}node_modules${sep}`) && !args.path.startsWith(OWN_ROOT)) return undefined;
        const ext = extname(args.path);
        const loader = /** @type {Record<string, import('esbuild').Loader>} */ (LOADERS)[ext];
        if (!loader) return undefined; // esbuild says it cannot load it
        const bytes = await readFile(args.path);
        seen.set(args.path, bytes);
        let text = bytes.toString('utf8');
        if (!text.includes('import.meta')) return { contents: text, loader };
        for (const m of text.matchAll(ASSET_URL)) assets.add(fileURLToPath(new URL(m[2], pathToFileURL(args.path))));
        const url = outdir
          ? `new URL(${JSON.stringify(relative(outdir, args.path).split(sep).join('/'))}, import.meta.url).href`
          : JSON.stringify(pathToFileURL(args.path).href);
        text = text
          .replace(/\bimport\.meta\.url\b/g, url)
          .replace(/\bimport\.meta\.dirname\b/g, outdir ? `decodeURIComponent(new URL('.', ${url}).pathname).replace(/\\/$/, '')` : JSON.stringify(dirname(args.path)))
          .replace(/\bimport\.meta\.filename\b/g, outdir ? `decodeURIComponent(new URL(${url}).pathname)` : JSON.stringify(args.path));
        return { contents: text, loader };
      });
    },
  };
}

/**
 * The installed package a resolved file belongs to: its folder (under node_modules, or wherever a
 * link leads: `npm install ../lib`, workspaces) and whether it is linked in from outside.
 * @param {string} name package name (`@scope/x` or `x`)
 * @param {string} file the resolved file (a real path: esbuild follows links)
 * @returns {{ root: string, linked: boolean }}
 */
function packageOf(name, file) {
  const marker = `${sep}node_modules${sep}${name.split('/').join(sep)}${sep}`;
  const at = file.lastIndexOf(marker);
  if (at >= 0) return { root: file.slice(0, at + marker.length - 1), linked: false };
  // Linked: the nearest package.json above the file that names the package (else the nearest one).
  let nearest;
  for (let d = dirname(file); ; d = dirname(d)) {
    const pj = join(d, 'package.json');
    if (existsSync(pj)) {
      nearest ??= d;
      try {
        if (JSON.parse(readFileSync(pj, 'utf8')).name === name) return { root: d, linked: true };
      } catch {
        // not JSON: keep looking
      }
    }
    if (dirname(d) === d) return { root: nearest ?? dirname(file), linked: true };
  }
}

/**
 * @param {boolean} relocatable packages stay bare imports (resolved from the bundle's folder)
 * @param {Map<string, { root: string, linked: boolean }>} packages filled with each package imported
 * @returns {import('esbuild').Plugin}
 */
function packagesByPath(relocatable, packages) {
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
        const name = args.path.startsWith('@') ? args.path.split('/').slice(0, 2).join('/') : args.path.split('/')[0];
        if (!packages.has(name)) packages.set(name, packageOf(name, r.path));
        return { path: pathToFileURL(r.path).href, external: true };
      });
    },
  };
}

/**
 * @typedef {object} Bundle
 * @property {Map<string, Uint8Array>} files output path -> bytes
 * @property {Map<string, Uint8Array>} sources every local source compiled in (esbuild's metafile
 *   inputs), path -> the exact bytes compiled
 * @property {string[]} assets files the sources read through `new URL('...', import.meta.url)`
 * @property {Map<string, { root: string, linked: boolean }>} packages packages imported, by name
 */

/**
 * @param {Record<string, string>} entryPoints output name -> source file
 * @param {string} outdir
 * @param {{ splitting?: boolean, relocatable?: boolean }} [options] splitting: what a module imports
 *   dynamically goes to chunks loaded on first use, with the packages only they import (keeps
 *   start-up light); relocatable: the engine bundle (see above)
 * @returns {Promise<Bundle>}
 */
export async function bundle(entryPoints, outdir, options = {}) {
  const esbuild = await import('esbuild');
  /** @type {Map<string, Uint8Array>} */
  const seen = new Map();
  /** @type {Set<string>} */
  const assets = new Set();
  /** @type {Map<string, { root: string, linked: boolean }>} */
  const packages = new Map();
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
    plugins: [loadSources(options.relocatable ? outdir : undefined, seen, assets), packagesByPath(!!options.relocatable, packages)],
  });
  // The metafile names every file esbuild compiled in (relative to its working folder); each was
  // loaded through loadSources, whose bytes are the ones compiled. One it loaded by itself is read.
  /** @type {Map<string, Uint8Array>} */
  const sources = new Map();
  for (const rel of Object.keys(r.metafile.inputs)) {
    const abs = resolve(rel.replace(/^file:/, ''));
    sources.set(abs, seen.get(abs) ?? (await readFile(abs)));
  }
  return {
    files: new Map(r.outputFiles.map((f) => [f.path, f.contents])),
    sources,
    assets: [...assets].filter((a) => !sources.has(a)).sort(),
    packages,
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
