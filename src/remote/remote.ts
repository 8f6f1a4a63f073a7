// One door to a remote cache: what push and pull need of any store that holds files by name (an
// S3-compatible bucket, a plain folder on NFS), and the names things have there. The remote's
// layout mirrors the local cache's, content-addressed, so two machines pushing the same results
// write the same names with the same bytes:
//
//   objects/ab/<digest>        an output file, named by its content's digest (large ones, and small
//                              ones no pack holds)
//   packs/<digest>.pack        small objects of one push back to back; packs/<key>.idx: where a
//                              run's are (see pack.ts)
//   manifests/<digest>.json    a folder output's file list
//   logs/<key>.log             the log of the run that produced a record (best effort)
//   runs/<key>.json            a completed run's record (sealed JSON), sent after everything it names
//   names/<name>.json          a named experiment (`exp push`), sent after its runs

/** What a remote holds: a name (relative to the remote's root) -> its size in bytes. */
export type Listing = Map<string, number>;

export interface Remote {
  /** Where it is, for messages (never with credentials). */
  readonly where: string;
  /** Every name under `prefix` (a folder of the layout, ending in '/'), with its size. */
  list(prefix: string): Promise<Listing>;
  /**
   * Sends a file under `name`; readers see the whole file or nothing. Large files go in parts
   * (multipart); `onBytes` is told how many more bytes went out as they go.
   */
  put(name: string, file: string, size: number, onBytes: (n: number) => void): Promise<void>;
  putBytes(name: string, body: Uint8Array): Promise<void>;
  /**
   * Writes `name` into the local file `dest` (which it creates); false when the remote lacks it.
   * Everything read is untrusted: more than `max` bytes, or something that is not a plain file
   * (a FIFO, a link on a folder remote), is a BadObject, never a hang or an unbounded read.
   */
  get(name: string, dest: string, onBytes: (n: number) => void, max: number): Promise<boolean>;
  /** `name`'s bytes, at most `max` of them (a BadObject past that); undefined when the remote lacks it. */
  getBytes(name: string, max: number): Promise<Buffer | undefined>;
  /** Bytes [start, end) of `name`; undefined when the remote lacks it. */
  getRange(name: string, start: number, end: number): Promise<Buffer | undefined>;
  /** Deletes `name` (`remote verify --repair`: what is damaged there); absent is fine. */
  remove(name: string): Promise<void>;
  close(): void;
}

/** A remote that cannot be reached or used: said to the user as it is, exit 1. */
export class RemoteError extends Error {}

/** Something on the remote is not what its name says: refused, never served. */
export class BadObject extends RemoteError {}

export const objectName = (digest: string): string => `objects/${digest.slice(0, 2)}/${digest.slice(2)}`;
export const manifestName = (digest: string): string => `manifests/${digest}.json`;
export const runName = (key: string): string => `runs/${key}.json`;
export const logName = (key: string): string => `logs/${key}.log`;
export const savedName = (name: string): string => `names/${name}.json`;

/** The most bytes a file of engine state fetched from a remote may hold (a larger one is refused, not read). */
export const MAX_BYTES = {
  record: 16 << 20,
  manifest: 512 << 20,
  index: 256 << 20,
  list: 64 << 20,
  name: 4 << 20,
  log: 256 << 20,
} as const;

const DIGEST = /^[0-9a-f]{32}$/;

/** Run keys in a listing of `runs/` (anything else there is ignored, never used as a path). */
export function runKeysIn(listing: Listing): Set<string> {
  const out = new Set<string>();
  for (const name of listing.keys()) {
    const m = /^runs\/([0-9a-f]{32})\.json$/.exec(name);
    if (m) out.add(m[1]!);
  }
  return out;
}

/** Object digests in a listing of `objects/`, with their sizes. */
export function objectsIn(listing: Listing): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, size] of listing) {
    const m = /^objects\/([0-9a-f]{2})\/([0-9a-f]{30})$/.exec(name);
    if (m && DIGEST.test(m[1]! + m[2]!)) out.set(m[1]! + m[2]!, size);
  }
  return out;
}
