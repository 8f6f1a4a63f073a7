// Where a run came from, kept in its record so that results stay explainable after the fact: the
// `--set` overrides it ran with (the spec alone does not say), and the git commit of the workspace
// with whether tracked files had uncommitted changes. Untracked files are not counted as dirty:
// outputs and caches often sit untracked in a workspace, and would make every tree "dirty".
import { execFile } from 'node:child_process';
import { isRecord } from './records.ts';

export interface GitState {
  commit: string;
  dirty: boolean;
}

export interface Provenance {
  /** `--set` overrides as given on the command line, in order (empty: the spec as written). */
  sets: string[];
  /** The workspace's git commit, when it is inside a git work tree and git is installed. */
  git?: GitState;
  /** The name the run was given (`run --name`), if any. */
  name?: string;
}

const git = (cwd: string, args: string[]): Promise<string | undefined> =>
  new Promise((resolve) => {
    // An argument list, no shell; GIT_OPTIONAL_LOCKS=0: `status` must not take the index lock a
    // user's own git command may want at the same moment.
    execFile('git', args, { cwd, env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' }, timeout: 10_000, maxBuffer: 1 << 20 }, (err, stdout) => resolve(err ? undefined : stdout));
  });

const states = new Map<string, Promise<GitState | undefined>>();

/** The workspace's commit and dirtiness (once per process: a run's stages share it). */
export function gitState(workspace: string): Promise<GitState | undefined> {
  let s = states.get(workspace);
  if (!s) {
    s = (async () => {
      const head = (await git(workspace, ['rev-parse', '--verify', '-q', 'HEAD']))?.trim();
      if (!head || !/^[0-9a-f]{40,64}$/.test(head)) return undefined;
      const status = await git(workspace, ['status', '--porcelain', '--untracked-files=no']);
      return { commit: head, dirty: status === undefined ? true : status.trim().length > 0 };
    })();
    states.set(workspace, s);
  }
  return s;
}

/** A provenance read back from a record, or undefined if absent or malformed (older records have none). */
export function readProvenance(v: unknown): Provenance | undefined {
  if (!isRecord(v) || !Array.isArray(v.sets) || !v.sets.every((s) => typeof s === 'string')) return undefined;
  const out: Provenance = { sets: v.sets as string[] };
  if (isRecord(v.git) && typeof v.git.commit === 'string' && typeof v.git.dirty === 'boolean') out.git = { commit: v.git.commit, dirty: v.git.dirty };
  if (typeof v.name === 'string') out.name = v.name;
  return out;
}
