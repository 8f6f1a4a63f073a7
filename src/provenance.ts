// Where a run came from, kept in its record so that results stay explainable after the fact: the
// `--set` overrides it ran with (the spec alone does not say), and the git commit of the workspace
// with whether tracked files had uncommitted changes. Untracked files are not counted as dirty:
// outputs and caches often sit untracked in a workspace, and would make every tree "dirty".
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
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

/**
 * git, with nothing of the repository's own configuration that runs a program: a project archive
 * may ship its own .git, whose config can name programs git runs (core.fsmonitor on any index read,
 * clean/smudge filters from .gitattributes when content is compared, hooks, pagers, external diffs).
 * Only plumbing commands that compare stat data and object ids are used (no filter runs), with the
 * fsmonitor turned off on the command line (which wins over every config file).
 */
const git = (cwd: string, args: string[]): Promise<string | undefined> =>
  new Promise((resolve) => {
    // An argument list, no shell; GIT_OPTIONAL_LOCKS=0: a check must not take the index lock a
    // user's own git command may want at the same moment.
    const env: NodeJS.ProcessEnv = { ...process.env, GIT_OPTIONAL_LOCKS: '0', GIT_TERMINAL_PROMPT: '0', GIT_PAGER: 'cat', PAGER: 'cat' };
    delete env.GIT_EXTERNAL_DIFF;
    execFile('git', ['-c', 'core.fsmonitor=false', '-c', 'core.untrackedCache=false', '-c', 'core.hooksPath=/dev/null', ...args], { cwd, env, timeout: 10_000, maxBuffer: 64 << 20 }, (err, stdout) => resolve(err ? undefined : stdout));
  });

const states = new Map<string, Promise<GitState | undefined>>();

/** The workspace's commit and dirtiness (once per process: a run's stages share it). */
export function gitState(workspace: string): Promise<GitState | undefined> {
  let s = states.get(workspace);
  if (!s) {
    s = (async () => {
      const head = (await git(workspace, ['rev-parse', '--verify', '-q', 'HEAD']))?.trim();
      if (!head || !/^[0-9a-f]{40,64}$/.test(head)) return undefined;
      return { commit: head, dirty: await trackedChanges(workspace, head.length === 64 ? 'sha256' : 'sha1') };
    })();
    states.set(workspace, s);
  }
  return s;
}

/**
 * True when a tracked file differs from the commit: the index from HEAD (object ids only), or a
 * file from the index. `diff-files` names the files whose stat data moved (it compares no content,
 * so no filter runs); each is then hashed here as git would store it, raw, and compared with the
 * index's object id. (A repository with clean filters, such as LFS, reads as dirty once such a
 * file is touched: its raw bytes are not what git stores.) Undefined answers count as dirty.
 */
async function trackedChanges(cwd: string, algo: 'sha1' | 'sha256'): Promise<boolean> {
  if ((await git(cwd, ['diff-index', '--cached', '--quiet', 'HEAD', '--'])) === undefined) return true;
  const touched = await git(cwd, ['diff-files', '--name-only', '-z']);
  if (touched === undefined) return true;
  const paths = touched.split('\0').filter(Boolean);
  if (!paths.length) return false;
  const staged = await git(cwd, ['ls-files', '-s', '-z', '--', ...paths.map((p) => `:(literal)${p}`)]);
  if (staged === undefined) return true;
  const ids = new Map<string, { mode: string; id: string }>();
  for (const line of staged.split('\0').filter(Boolean)) {
    const m = /^(\d+) ([0-9a-f]+) \d+\t(.*)$/s.exec(line);
    if (m) ids.set(m[3]!, { mode: m[1]!, id: m[2]! });
  }
  for (const p of paths) {
    const e = ids.get(p);
    if (!e || e.mode === '160000') return true;
    let body: Buffer;
    try {
      const abs = join(cwd, p);
      body = e.mode === '120000' ? Buffer.from(readlinkSync(abs)) : readFileSync(abs);
    } catch {
      return true; // deleted, or unreadable
    }
    const id = createHash(algo).update(`blob ${body.length}\0`).update(body).digest('hex');
    if (id !== e.id) return true;
  }
  return false;
}

/** A provenance read back from a record, or undefined if absent or malformed (older records have none). */
export function readProvenance(v: unknown): Provenance | undefined {
  if (!isRecord(v) || !Array.isArray(v.sets) || !v.sets.every((s) => typeof s === 'string')) return undefined;
  const out: Provenance = { sets: v.sets as string[] };
  if (isRecord(v.git) && typeof v.git.commit === 'string' && typeof v.git.dirty === 'boolean') out.git = { commit: v.git.commit, dirty: v.git.dirty };
  if (typeof v.name === 'string') out.name = v.name;
  return out;
}
