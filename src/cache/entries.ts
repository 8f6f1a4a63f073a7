// What the cache stores, as types and as checks of what is read back: output digests, run
// records, latest-run pointers, workspace entries. Engine state read from disk (or fetched from a
// remote) is trusted only once it has the shape the engine relies on.
import { createHash } from 'node:crypto';
import type { FileEntry } from './digests.ts';
import type { Fingerprint } from './fingerprint.ts';
import type { Provenance } from '../provenance.ts';
import { isRecord } from '../records.ts';

function isOutputDigest(v: unknown): v is OutputDigest {
  return isRecord(v) && (v.kind === 'file' || v.kind === 'dir') && typeof v.digest === 'string' && /^[0-9a-f]{32}$/.test(v.digest) && typeof v.size === 'number' && typeof v.files === 'number';
}

/**
 * An output's name as a record may carry it: it becomes a path component (views/<key>/<d>/<name>),
 * so one segment of the spec grammar's output names (schemas/pipeline.schema.json, outs).
 */
const OUTPUT_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$/;

/** A run record or latest pointer as read from disk: the fields the engine relies on, well formed. */
export function isCachedRun(v: unknown): v is CachedRun {
  return isRecord(v) && typeof v.key === 'string' && /^[0-9a-f]{32}$/.test(v.key) && typeof v.committedAt === 'number' && isRecord(v.outputs) && Object.entries(v.outputs).every(([name, o]) => OUTPUT_NAME.test(name) && isOutputDigest(o));
}

/** A stage id as the spec grammar makes them: `name` or `name[key=value,...]`, no control character. */
const STAGE_ID = /^[A-Za-z_][A-Za-z0-9_-]*(\[[^\u0000-\u001f\u007f-\u009f]{1,1000}\])?$/;

/** A spec path as records carry it: workspace-relative, no '..', no control character. */
function specPathOk(s: string): boolean {
  return s.length > 0 && s.length <= 1000 && !s.startsWith('/') && !/[\u0000-\u001f\u007f-\u009f\\]/.test(s) && s.split('/').every((seg) => seg !== '..' && seg !== '');
}

/** A run record fetched from elsewhere (a remote cache): well formed, filed under its own key, its names in the spec grammar. */
export function isRunRecordFor(v: unknown, key: string): v is RunRecord {
  if (!isCachedRun(v) || v.key !== key) return false;
  const r = v as unknown as Record<string, unknown>;
  return isRecord(r.fingerprint) && typeof r.stage === 'string' && STAGE_ID.test(r.stage) && typeof r.spec === 'string' && specPathOk(r.spec);
}

/** Entries a manifest may list (a folder of 10 million files is past anything a stage writes here). */
export const MANIFEST_MAX_ENTRIES = 10_000_000;

/**
 * Why a folder's file list cannot be trusted as one, or undefined. Its paths are joined to a
 * destination folder when the output is built (views, published copies): each must be relative and
 * normal (no '', '.' or '..' segment, no leading '/', no backslash, no NUL), sorted and unique as
 * the engine writes them, and no entry may be a folder another entry is inside ('x' and 'x/y').
 * Digests are 32 hex digits and sizes whole numbers. A manifest from a remote and one read back
 * from the local cache are checked alike.
 */
export function manifestProblem(v: unknown): string | undefined {
  if (!Array.isArray(v)) return 'not a list';
  if (v.length > MANIFEST_MAX_ENTRIES) return `${v.length} entries, more than ${MANIFEST_MAX_ENTRIES}`;
  const paths = new Set<string>();
  let prev: string | undefined;
  for (const f of v) {
    if (!isRecord(f) || typeof f.path !== 'string' || typeof f.digest !== 'string' || !/^[0-9a-f]{32}$/.test(f.digest) || !Number.isSafeInteger(f.size) || (f.size as number) < 0) return 'an entry is not {path, size, digest}';
    const p = f.path;
    if (p.length > 4096 || p.startsWith('/') || p.includes('\\') || p.includes('\0') || p.split('/').some((seg) => seg === '' || seg === '.' || seg === '..')) return `the entry ${JSON.stringify(p.slice(0, 200))} is not a relative path inside the folder`;
    if (prev !== undefined && !(prev < p)) return `the entries are not sorted and unique (${JSON.stringify(p.slice(0, 200))})`;
    prev = p;
    paths.add(p);
  }
  for (const p of paths) {
    for (let i = p.indexOf('/'); i !== -1; i = p.indexOf('/', i + 1)) {
      if (paths.has(p.slice(0, i))) return `the entry ${JSON.stringify(p.slice(0, i).slice(0, 200))} is a file and a folder`;
    }
  }
  return undefined;
}

export function isManifest(v: unknown): v is FileEntry[] {
  return manifestProblem(v) === undefined;
}

export interface OutputDigest {
  kind: 'file' | 'dir';
  digest: string;
  size: number;
  files: number;
}

export interface RunRecord {
  key: string;
  stage: string;
  spec: string;
  fingerprint: Fingerprint;
  outputs: Record<string, OutputDigest>;
  startedAt: string;
  durationMs: number;
  /** When the record was written (ms since epoch): no object it uses may be modified after. */
  committedAt: number;
  /** The `--set` values, git commit and name it ran with (records from before 2026-12 have none). */
  provenance?: Provenance;
}

/** What downstream stages and the cache check need of a run: kept in the latest index too. */
export type CachedRun = Pick<RunRecord, 'key' | 'outputs' | 'committedAt'>;

export interface LatestPointer extends CachedRun {
  at: string;
}

/** A workspace that runs with this cache: where it is, when it last ran, since when it is gone. */
export interface WorkspaceEntry {
  workspace: string;
  lastRun: string;
  /** Set by gc when the folder is found missing (cleared if it comes back). */
  goneSince?: string;
}

/** A short, stable name for a workspace folder in cache paths: several workspaces may share a cache. */
export function workspaceId(workspace: string): string {
  return createHash('sha256').update(workspace).digest('hex').slice(0, 16);
}
