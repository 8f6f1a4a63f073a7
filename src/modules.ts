// Loads stage modules at run time, with no build step for the user: a stage and the local files it
// imports are compiled by esbuild into one ESM file in the cache, named by the hash of their
// content, and imported from there. An edited stage gets a new file; an unchanged one is imported
// straight away (no compiler start, no loader hook). node-cache memoizes definitions per process.
import NodeCache from 'node-cache';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { CodeClosures, type CodeClosure } from './cache/closure.ts';
import type { DigestCache } from './cache/digests.ts';
import { ENGINE_VERSION } from './cache/fingerprint.ts';
import { hashBytes, hashJson } from './cache/hash.ts';
import { sayDropped, tempName } from './fsutil.ts';
import { isStageDefinition, type StageDefinition } from './stage-api.ts';

// Keyed by compiled file (named by content): each edit of a stage is a new key. In a long-lived
// `run --watch` process, versions no longer used expire instead of piling up (an expired one that
// is used again is only imported again, which Node answers from its module cache).
const definitions = new NodeCache({ stdTTL: 3600, checkperiod: 600, useClones: false });

/** A stage module still loading after this long is reported (a top-level await that never settles). */
const LOAD_TIMEOUT_MS = Number(process.env.PIPELINE_MODULE_LOAD_TIMEOUT_MS) || 60_000;

/**
 * Imports a compiled stage module and checks that it is one. A module whose top-level code never
 * settles would otherwise end the process with Node's bare exit code 13, or hang: it is an error
 * naming the module after LOAD_TIMEOUT_MS (the timer also keeps the process alive to say so).
 */
export async function importStageDefinition(jsPath: string): Promise<StageDefinition<unknown>> {
  const hit = definitions.get<StageDefinition<unknown>>(jsPath);
  if (hit) return hit;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`loading it did not finish within ${LOAD_TIMEOUT_MS / 1000} s (a top-level await that never settles? keep slow work inside run())`)), LOAD_TIMEOUT_MS);
  });
  let mod: { default?: unknown };
  try {
    mod = (await Promise.race([import(pathToFileURL(jsPath).href), timeout])) as { default?: unknown };
  } finally {
    clearTimeout(timer);
  }
  if (!isStageDefinition(mod.default)) {
    throw new Error('its default export is not defineStage({...}) from the stage API');
  }
  const d = mod.default;
  const bad =
    typeof d.params !== 'object' || d.params === null || Array.isArray(d.params) ? 'params must be a JSON Schema object'
    : !Array.isArray(d.outputs) || !d.outputs.every((o) => typeof o === 'string' && /^[\w-]+$/.test(o)) ? 'outputs must be a list of names (letters, digits, _ and -)'
    : d.inputs !== undefined && (!Array.isArray(d.inputs) || !d.inputs.every((o) => typeof o === 'string')) ? 'inputs must be a list of names'
    : typeof d.run !== 'function' ? 'run must be a function'
    : undefined;
  if (bad) throw new Error(`its defineStage({...}) is malformed: ${bad}`);
  definitions.set(jsPath, mod.default);
  return mod.default;
}

const INTEGRITY = 'integrity.json';

/** True when every file of a compiled module folder still has the digest it was written with. */
async function intact(dir: string): Promise<boolean> {
  try {
    const sums = JSON.parse(await readFile(join(dir, INTEGRITY), 'utf8')) as Record<string, string>;
    if (!sums['stage.mjs']) return false;
    for (const [f, d] of Object.entries(sums)) if ((await hashBytes(await readFile(join(dir, f)))) !== d) return false;
    return true;
  } catch {
    return false;
  }
}

export class StageModules {
  private readonly compiledPaths = new Map<string, Promise<string>>();
  /** What code each stage module is (its key's `code` and `packages`). */
  readonly closures: CodeClosures;

  constructor(
    private readonly cacheDir: string,
    workspace: string,
    digests: DigestCache,
  ) {
    this.closures = new CodeClosures(cacheDir, workspace, digests);
  }

  /** Path of the compiled module for a stage source file (compiled now if its code changed). */
  compiled(source: string): Promise<string> {
    let p = this.compiledPaths.get(source);
    if (!p) {
      p = this.compile(source);
      this.compiledPaths.set(source, p);
    }
    return p;
  }

  async load(source: string): Promise<StageDefinition<unknown>> {
    return importStageDefinition(await this.compiled(source));
  }

  private folder(source: string, closure: CodeClosure): Promise<string> {
    return hashJson({ engine: ENGINE_VERSION, source, code: closure.code, packages: closure.packages }).then((key) => join(this.cacheDir, 'modules', key));
  }

  private async compile(source: string): Promise<string> {
    let closure: CodeClosure;
    try {
      closure = await this.closures.of(source);
    } catch (e) {
      throw bundleError(e);
    }
    // One folder per compiled stage, named by its closure: the entry, plus chunks for what it
    // imports dynamically, plus the digest of each (a damaged compiled module is rebuilt, never run).
    let dir = await this.folder(source, closure);
    let entry = join(dir, 'stage.mjs');
    if (existsSync(entry)) {
      if (await intact(dir)) return entry;
      await rm(dir, { recursive: true, force: true });
      sayDropped('a damaged compiled stage module', dir);
    }
    if (!closure.compiled) {
      // Known by its kept closure, but not compiled here yet: bundled now (named by what it compiled).
      try {
        closure = await this.closures.fresh(source);
      } catch (e) {
        throw bundleError(e);
      }
      dir = await this.folder(source, closure);
      entry = join(dir, 'stage.mjs');
      if (existsSync(entry) && (await intact(dir))) return entry;
    }
    // Written into a private folder, then renamed into place whole.
    const tmp = `${dir}.${tempName('tmp')}`;
    await mkdir(tmp, { recursive: true });
    const sums: Record<string, string> = {};
    for (const [path, bytes] of closure.compiled!) {
      await writeFile(join(tmp, basename(path)), bytes);
      sums[basename(path)] = await hashBytes(bytes);
    }
    await writeFile(join(tmp, INTEGRITY), JSON.stringify(sums));
    try {
      await rename(tmp, dir);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      if (!existsSync(entry)) throw e; // another process won the race: its copy is the same
    }
    return entry;
  }
}

/** esbuild's message names the file, line and column of a syntax error. */
function bundleError(e: unknown): Error {
  const errs = (e as { errors?: Array<{ text: string; location?: { file: string; line: number; column: number } }> }).errors;
  if (!errs?.length) return e instanceof Error ? e : new Error(String(e));
  const first = errs[0]!;
  return new Error(first.location ? `${first.location.file}:${first.location.line}:${first.location.column + 1}: ${first.text}` : first.text);
}
