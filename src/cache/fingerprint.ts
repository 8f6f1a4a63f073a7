// The fingerprint record: everything that decides a stage's results. Its canonical-JSON hash is
// the stage's cache key, and `pipeline status` compares it field by field to say why a stage reruns.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DigestCache } from './digests.ts';
import { hashJson } from './hash.ts';
import { SELF_PACKAGE, STAGE_API_FILE } from '../bundle.js';

export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
/** Bumped when the engine changes how stages run or how fingerprints are built. */
export const FINGERPRINT_FORMAT = 2;
export const ENGINE_VERSION = `${pkg.version}/f${FINGERPRINT_FORMAT}`;
/** The package's own version (`pipeline --version`). */
export const PACKAGE_VERSION = pkg.version;

export interface Fingerprint {
  /** Engine version and fingerprint format: a new engine may run stages differently. */
  engine: string;
  kind: 'module' | 'command';
  /**
   * Code by content: a module stage's file and every local file it imports, transitively; for a
   * command stage, each argument that names a workspace file (`scripts/train.py`). Path -> digest.
   * Editing a helper file counts; moving the workspace does not (paths are workspace-relative).
   */
  code: Record<string, string>;
  /** Packages that code imports -> installed version: upgrading TensorFlow.js can change numbers. */
  packages: Record<string, string>;
  /** Command stages: the argument list with other stages' outputs written as their digests. */
  command: { argv: string[]; shell: boolean } | null;
  /** Resolved params, schema defaults included (hashed as canonical JSON). */
  params: Record<string, unknown>;
  /** Workspace inputs and command deps: workspace path -> content digest. */
  inputs: Record<string, string>;
  /**
   * Other stages' outputs this stage reads: `stage.output` -> content digest. Digests rather than
   * their cache keys, so an upstream rerun with byte-identical outputs leaves this stage cached.
   */
  upstream: Record<string, string>;
  /** Environment variables the spec passes to the stage, resolved. */
  env: Record<string, string>;
  /**
   * Environment variables a command's shell script reads ($LR) that the spec does not set, with
   * the values the command sees (null: unset): changing one in the shell reruns the stage.
   */
  shellEnv: Record<string, string | null>;
  /** The stage's random seed. */
  seed: number;
  /** The spec's `version:` for the stage, bumped by hand to force a rerun. */
  version: string | number | null;
  /** Output names: asking for another set of outputs changes what the stage writes. */
  outputs: string[];
  /** Facts the stage module reports itself (e.g. the compute backend a training stage will use). */
  extras: Record<string, unknown>;
}

export async function fingerprintKey(f: Fingerprint): Promise<string> {
  return hashJson(f);
}

/** Workspace-relative label of a file; files of the tool itself are labelled `pipeline:<path>`. */
export function codeLabel(abs: string, workspace: string): string {
  const rel = relative(workspace, abs).split('\\').join('/');
  if (!rel.startsWith('..')) return rel;
  return `pipeline:${relative(PACKAGE_ROOT, abs).split('\\').join('/')}`;
}

const IMPORT_RE = [
  /\b(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
  /\bimport\s*['"]([^'"]+)['"]/g,
  /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
];

/** Import specifiers of a JS/TS source (comments stripped; an extra match only adds a dependency). */
export function importSpecifiers(source: string): string[] {
  // A block comment separates tokens (import/* c */x from ...): it becomes a space.
  const text = source.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/(^|[^:'"])\/\/.*$/gm, '$1');
  const out = new Set<string>();
  for (const re of IMPORT_RE) for (const m of text.matchAll(re)) out.add(m[1]!);
  return [...out];
}

function resolveLocal(fromFile: string, spec: string): string | undefined {
  const base = resolve(dirname(fromFile), spec);
  const candidates = [base, base.replace(/\.(m?)js$/, '.$1ts'), `${base}.ts`, `${base}.js`, join(base, 'index.ts'), join(base, 'index.js')];
  return candidates.find((c) => existsSync(c) && statSync(c).isFile());
}

const versionMemo = new Map<string, string>();
/** package.json files whose versions entered a fingerprint (the no-op snapshot checks them). */
export const packageFilesRead = new Set<string>();
function packageVersion(fromDir: string, name: string): string {
  const k = `${fromDir}\0${name}`;
  const hit = versionMemo.get(k);
  if (hit) return hit;
  let dir = fromDir;
  let version = 'not installed';
  for (;;) {
    const p = join(dir, 'node_modules', name, 'package.json');
    if (existsSync(p)) {
      packageFilesRead.add(p);
      version = (JSON.parse(readFileSync(p, 'utf8')) as { version?: string }).version ?? 'unknown';
      break;
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  versionMemo.set(k, version);
  return version;
}

/**
 * The module and its local imports, transitively, each hashed by content (via the digest
 * cache, so unchanged code is neither read nor re-parsed), plus the packages they import.
 */
const closures = new Map<string, Promise<{ code: Record<string, string>; packages: Record<string, string> }>>();

/** Forgets what is known of stage code and package versions (`run --watch`, before each run). */
export function forgetCodeClosures(): void {
  closures.clear();
  versionMemo.clear();
}

/** Memoized per process: within one command, a stage module's code does not change under us. */
export function codeClosure(entry: string, workspace: string, digests: DigestCache): Promise<{ code: Record<string, string>; packages: Record<string, string> }> {
  const k = `${entry}\0${workspace}`;
  let c = closures.get(k);
  if (!c) {
    c = computeClosure(entry, workspace, digests);
    closures.set(k, c);
  }
  return c;
}

async function computeClosure(entry: string, workspace: string, digests: DigestCache): Promise<{ code: Record<string, string>; packages: Record<string, string> }> {
  const code: Record<string, string> = {};
  const packages: Record<string, string> = {};
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const { digest } = await digests.file(file);
    code[codeLabel(file, workspace)] = digest;
    let specs = digests.cachedImports(digest);
    if (!specs) {
      specs = importSpecifiers(await readFile(file, 'utf8'));
      digests.rememberImports(digest, specs);
    }
    for (const s of specs) {
      if (s === SELF_PACKAGE) queue.push(STAGE_API_FILE);
      else if (s.startsWith('.') || s.startsWith('/')) {
        const r = resolveLocal(file, s);
        if (r) queue.push(r);
      } else if (!isBuiltin(s)) {
        const name = s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!;
        packages[name] = packageVersion(dirname(file), name);
      }
    }
  }
  return { code, packages };
}
