// The fingerprint record: everything that decides a stage's results. Its canonical-JSON hash is
// the stage's cache key, and `pipeline status` compares it field by field to say why a stage reruns.
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hashJson } from './hash.ts';

export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
/** Bumped when the engine changes how stages run or how fingerprints are built. */
export const FINGERPRINT_FORMAT = 3;
export const ENGINE_VERSION = `${pkg.version}/f${FINGERPRINT_FORMAT}`;
/** The package's own version (`pipeline --version`). */
export const PACKAGE_VERSION = pkg.version;

export interface Fingerprint {
  /** Engine version and fingerprint format: a new engine may run stages differently. */
  engine: string;
  kind: 'module' | 'command';
  /**
   * Code by content, path -> digest: a module stage's every file esbuild compiles into it (its
   * metafile's inputs: static and dynamic imports, .tsx/.jsx/.json, the stage API) and the files
   * it reads by its own location (`new URL('./k.wasm', import.meta.url)`), see closure.ts; for a
   * command stage, each argument that names a workspace file (`scripts/train.py`); for either, the
   * files and folders the spec lists under `code:`. Editing a helper file counts; moving the
   * workspace does not (paths are workspace-relative).
   */
  code: Record<string, string>;
  /**
   * Packages that code imports -> installed version (upgrading TensorFlow.js can change numbers),
   * or `linked:<digest>` of the files of a package linked in from a folder, whose edits keep its version.
   */
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
