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

/** A run record or latest pointer as read from disk: the fields the engine relies on, well formed. */
export function isCachedRun(v: unknown): v is CachedRun {
  return isRecord(v) && typeof v.key === 'string' && /^[0-9a-f]{32}$/.test(v.key) && typeof v.committedAt === 'number' && isRecord(v.outputs) && Object.values(v.outputs).every(isOutputDigest);
}

/** A run record fetched from elsewhere (a remote cache): well formed and filed under its own key. */
export function isRunRecordFor(v: unknown, key: string): v is RunRecord {
  return isCachedRun(v) && v.key === key && isRecord((v as Record<string, unknown>).fingerprint) && typeof (v as Record<string, unknown>).stage === 'string' && typeof (v as Record<string, unknown>).spec === 'string';
}

export function isManifest(v: unknown): v is FileEntry[] {
  return Array.isArray(v) && v.every((f) => isRecord(f) && typeof f.path === 'string' && typeof f.size === 'number' && typeof f.digest === 'string');
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
