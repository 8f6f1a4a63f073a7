// Packs: the small objects of a push sent as a few large remote files instead of one request
// each. A cache holds many small files (a run's features, checkpoint shards, metrics); a request
// per file made push and pull slower than copying the same bytes in bulk, because a remote answers
// requests, not bytes. Objects keep their digests: each is hashed on arrival like a loose one.
//
//   packs/<digest>.pack   objects' bytes back to back, named by the digest of the whole
//   packs/<digest>.list   what a pack holds: [[object digest, offset, size], ...] (sent after it)
//   packs/<run key>.idx   where a run's packed objects are: [[object digest, pack, offset, size], ...]
//
// A pull of one run reads its index and fetches only the byte ranges of its own objects (adjacent
// ones in one request); an object several runs share is packed once, and each run's index points
// at it. A push sends neither what the remote holds loose nor what any pack there holds: it reads
// the packs' lists (each once per cache: a list never changes, it is kept under
// <cache>/remote-packs/) and points the new runs' indexes at the packs already there.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isRecord } from '../records.ts';

/** Objects up to this size are packed; larger ones go loose (in parts, if large enough). */
export const PACK_OBJECT_MAX = 1 << 20;
/** A pack holds up to this many bytes (memory per transfer is bounded by it). */
export const PACK_BYTES = 32 << 20;
/** Ranges of one pack closer than this are fetched as one request (the gap's bytes are cheaper than a request). */
export const RANGE_GAP = 256 << 10;

export const packName = (digest: string): string => `packs/${digest}.pack`;
export const indexName = (key: string): string => `packs/${key}.idx`;

/** Where a packed object is: the pack's number in the push (its name once built), offset and size. */
export interface Placement {
  pack: number;
  offset: number;
  size: number;
}

/**
 * Lays out a push's small objects in packs, run by run (a run's objects stay adjacent, so a pull
 * of one run needs few ranges), each object once. Returns the packs' contents and each object's place.
 */
export function layoutPacks(runs: Array<Array<[string, number]>>): { packs: Array<Array<[string, number]>>; placed: Map<string, Placement> } {
  const packs: Array<Array<[string, number]>> = [];
  const placed = new Map<string, Placement>();
  let bytes = PACK_BYTES;
  for (const run of runs) {
    for (const [digest, size] of run) {
      if (placed.has(digest)) continue;
      if (bytes + size > PACK_BYTES) {
        packs.push([]);
        bytes = 0;
      }
      placed.set(digest, { pack: packs.length - 1, offset: bytes, size });
      packs.at(-1)!.push([digest, size]);
      bytes += size;
    }
  }
  return { packs, placed };
}

/** One entry of a run's index: the object, the pack's digest, its offset and size there. */
export type IndexEntry = [string, string, number, number];

/** A run's index as read back, or undefined when it is not one (its objects are then fetched loose, or refused). */
export function parseIndex(text: string): IndexEntry[] | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(v) || !Array.isArray(v.objects)) return undefined;
  const ok = v.objects.every((e: unknown) => Array.isArray(e) && e.length === 4 && typeof e[0] === 'string' && /^[0-9a-f]{32}$/.test(e[0]) && typeof e[1] === 'string' && /^[0-9a-f]{32}$/.test(e[1]) && Number.isInteger(e[2]) && e[2] >= 0 && Number.isInteger(e[3]) && e[3] >= 0);
  return ok ? (v.objects as IndexEntry[]) : undefined;
}

/** A byte range of one pack to fetch, and the objects in it. */
export interface PackRange {
  pack: string;
  start: number;
  /** Exclusive. */
  end: number;
  objects: Array<{ digest: string; offset: number; size: number }>;
}

/** The wanted entries grouped into ranges: by pack, in offset order, neighbours within RANGE_GAP merged, each at most PACK_BYTES. */
export function packRanges(entries: IndexEntry[]): PackRange[] {
  const byPack = new Map<string, IndexEntry[]>();
  for (const e of entries) byPack.set(e[1], [...(byPack.get(e[1]) ?? []), e]);
  const out: PackRange[] = [];
  for (const [pack, list] of byPack) {
    list.sort((a, b) => a[2] - b[2]);
    let cur: PackRange | undefined;
    for (const [digest, , offset, size] of list) {
      if (cur && offset - cur.end <= RANGE_GAP && offset + size - cur.start <= PACK_BYTES) {
        cur.end = Math.max(cur.end, offset + size);
        cur.objects.push({ digest, offset, size });
      } else {
        cur = { pack, start: offset, end: offset + size, objects: [{ digest, offset, size }] };
        out.push(cur);
      }
    }
  }
  return out;
}

/** A pack's list as read back (object digest, offset, size), or undefined when it is not one. */
export function parseList(text: string): Array<[string, number, number]> | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const ok = Array.isArray(v) && v.every((e: unknown) => Array.isArray(e) && e.length === 3 && typeof e[0] === 'string' && /^[0-9a-f]{32}$/.test(e[0]) && Number.isInteger(e[1]) && e[1] >= 0 && Number.isInteger(e[2]) && e[2] >= 0);
  return ok ? (v as Array<[string, number, number]>) : undefined;
}

export const listName = (digest: string): string => `packs/${digest}.list`;

/** Pack digests in a listing of `packs/` that have their list (a pack whose list is missing was cut short: not used). */
export function listedPacks(names: Iterable<string>): string[] {
  const out: string[] = [];
  for (const n of names) {
    const m = /^packs\/([0-9a-f]{32})\.list$/.exec(n);
    if (m) out.push(m[1]!);
  }
  return out;
}

/** Where the lists of packs read from remotes are kept (a list never changes: its pack is named by content). */
export const catalogPath = (cacheRoot: string, pack: string): string => join(cacheRoot, 'remote-packs', `${pack}.list`);

/** Forgets a pack's kept list (a pull found bad bytes in the pack: its list is no longer believed). */
export async function dropCatalogued(cacheRoot: string, pack: string): Promise<void> {
  await rm(catalogPath(cacheRoot, pack), { force: true });
}
