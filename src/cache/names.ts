// Named experiments: runs kept under a name of the user's (`pipeline run --name NAME`, `pipeline
// exp save NAME`), which `gc` keeps however old they are and `exp show` labels. One sealed file per
// name under <cache>/names/, written atomically; saving a name again replaces what it held.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../diagnostics.ts';
import { CORRUPT, readSealed, writeSealed } from '../fsutil.ts';
import { gitState, type GitState } from '../provenance.ts';
import { isRecord } from '../records.ts';
import { hasControlDeep } from '../text.ts';

export interface SavedName {
  name: string;
  spec: string;
  workspace: string;
  savedAt: string;
  git?: GitState;
  /** The runs it keeps: stage id -> run key. */
  runs: Record<string, string>;
}

/** Names a user can type and a file can hold: letters, digits, and . _ - (not leading). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function checkName(name: string): string {
  if (!NAME.test(name)) throw new UsageError(`'${name}' is not a usable experiment name: letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100 characters`);
  return name;
}

export function isSavedName(v: unknown): v is SavedName {
  // No control character anywhere: a name fetched from a remote is printed (see text.ts).
  return isRecord(v) && typeof v.name === 'string' && typeof v.spec === 'string' && typeof v.workspace === 'string' && typeof v.savedAt === 'string' && isRecord(v.runs) && Object.values(v.runs).every((k) => typeof k === 'string' && /^[0-9a-f]{32}$/.test(k)) && !hasControlDeep(v);
}

export class SavedNames {
  constructor(readonly cacheRoot: string) {}

  private path(name: string): string {
    return join(this.cacheRoot, 'names', `${checkName(name)}.json`);
  }

  /** The sealed file of a name (what `exp push` sends as it is). */
  file(name: string): string {
    return this.path(name);
  }

  async save(entry: SavedName): Promise<void> {
    await writeSealed(this.path(entry.name), entry);
  }

  /** Removes a name (its runs become ordinary runs gc may remove). False if there was none. */
  async forget(name: string): Promise<boolean> {
    const path = this.path(name);
    const had = (await readSealed<unknown>(path)) !== undefined;
    await rm(path, { force: true });
    return had;
  }

  /**
   * Every saved name. A damaged file is named on stderr and left in place (it is the user's record,
   * not engine state to rebuild): its runs are then not protected until it is saved again.
   */
  async all(warn: (text: string) => void = (t) => process.stderr.write(`${t}\n`)): Promise<SavedName[]> {
    const dir = join(this.cacheRoot, 'names');
    const out: SavedName[] = [];
    for (const f of (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.json')).sort()) {
      const v = await readSealed<unknown>(join(dir, f));
      if (v === undefined) continue;
      if (v === CORRUPT || !isSavedName(v)) warn(`cache: the saved experiment ${join(dir, f)} is damaged: gc does not keep its runs; save the name again, or remove the file`);
      else out.push(v);
    }
    return out;
  }

  /** Run key -> the names that keep it. */
  async byRun(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const e of await this.all()) for (const key of Object.values(e.runs)) out.set(key, [...(out.get(key) ?? []), e.name]);
    return out;
  }
}

/** Saves `runs` (stage -> key) of a spec under `name` in the cache at `cacheRoot`, with the workspace's git state, replacing what the name held. */
export async function saveName(cacheRoot: string, from: { spec: string; workspace: string }, name: string, runs: Record<string, string>): Promise<void> {
  const git = await gitState(from.workspace);
  await new SavedNames(cacheRoot).save({ name, ...from, savedAt: new Date().toISOString(), ...(git ? { git } : {}), runs });
}
