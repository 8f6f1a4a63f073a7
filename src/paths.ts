// Where a spec's paths may point. Every input, dep and published output stays inside the
// workspace, is never the workspace root itself, and never touches the cache folder; a published
// output is written only where its real path (after symbolic links) is inside the workspace too.
// Reading through a link the user made on purpose (`ln -s /datasets/exvo data/exvo`) stays allowed.
import { existsSync, lstatSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';

export type PathRole = 'input' | 'dep' | 'outs';

/** True when `child` is `parent` or inside it (both absolute, normalised). */
export function isWithin(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/**
 * A path given on the command line, made absolute in the workspace (a real path): one written
 * through a link to the workspace (`/data/link-to-ws/p.yaml`) is taken as the file inside it.
 */
export function inWorkspace(workspace: string, path: string): string {
  const abs = resolve(workspace, path);
  if (isWithin(workspace, abs)) return abs;
  const real = join(realOrSelf(dirname(abs)), basename(abs));
  return isWithin(workspace, real) ? real : abs;
}

function realOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** The real path of the nearest part of `abs` that exists (where a write to `abs` would land). */
function realOfNearestExisting(abs: string): { real: string; existing: string } {
  let p = abs;
  while (!lstatSync(p, { throwIfNoEntry: false })) {
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  // The last component of an outs path may itself be a link: it is replaced, not followed.
  const existing = p === abs && lstatSync(p, { throwIfNoEntry: false })?.isSymbolicLink() ? dirname(p) : p;
  return { real: realOrSelf(existing), existing };
}

/**
 * Why a workspace path cannot serve in `role`, or undefined when it can. `abs` is already known to
 * be lexically inside the workspace.
 */
export function pathProblem(workspace: string, cacheDir: string, abs: string, role: PathRole): string | undefined {
  const what = role === 'outs' ? 'an outs path' : role === 'dep' ? 'a dep' : 'an input';
  if (abs === workspace) return `${what} cannot be the workspace root (it holds the spec, the code and the cache); name a file or folder inside it`;
  const cache = resolve(cacheDir);
  if (isWithin(cache, abs)) return `${what} cannot be inside the cache folder (${cache}): the cache is the engine's own`;
  if (isWithin(abs, cache)) return `${what} cannot contain the cache folder (${cache})`;
  if (role === 'outs') return outsTargetProblem(workspace, cache, abs);
  return undefined;
}

/** Why a write to `abs` would land outside the workspace (through a symbolic link), or undefined. */
export function writeOutsideProblem(workspace: string, abs: string): string | undefined {
  const { real, existing } = realOfNearestExisting(abs);
  if (!isWithin(realOrSelf(workspace), real)) return `writing '${relative(workspace, abs)}' would go through the symbolic link ${existing} to ${real}, outside the workspace`;
  return undefined;
}

/** Where a write to `abs` really lands, after links: must be inside the workspace, outside the cache. */
export function outsTargetProblem(workspace: string, cacheDir: string, abs: string): string | undefined {
  const outside = writeOutsideProblem(workspace, abs);
  if (outside) return outside;
  const { real } = realOfNearestExisting(abs);
  const cache = realOrSelf(cacheDir);
  if (existsSync(cache) && isWithin(cache, real)) return `writing '${relative(workspace, abs)}' would land inside the cache folder (${real})`;
  return undefined;
}
