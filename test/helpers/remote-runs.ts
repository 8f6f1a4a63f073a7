// Runs committed straight into a store for the remote's in-process tests: each filed under its
// fingerprint's key (a pull checks it), with a log, and a folder remote beside.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENGINE_VERSION, fingerprintKey, type Fingerprint } from '../../src/cache/fingerprint.ts';
import { Store } from '../../src/cache/store.ts';
import { FolderRemote } from '../../src/remote/folder.ts';
import { scratch } from './engine.ts';

/** Progress to nowhere, a few transfers at once. */
export const quiet = { jobs: 2, out: () => undefined };

/** A store under `dir` whose damage reports are kept quiet. */
export function quietStore(dir: string): Store {
  const s = new Store(join(dir, 'cache'));
  s.onCorrupt = () => undefined;
  return s;
}

/**
 * A run of stage `label` with the given outputs committed under its fingerprint's key: a string or
 * Buffer is a file output, a record of them a folder output. Returns the key.
 */
export async function commitRun(store: Store, dir: string, label: string, outputs: Record<string, string | Buffer | Record<string, string | Buffer>>): Promise<string> {
  const fp = { engine: ENGINE_VERSION, params: { label } } as unknown as Fingerprint;
  const key = await fingerprintKey(fp);
  const out = join(dir, `out-${label}`);
  mkdirSync(out, { recursive: true });
  for (const [name, content] of Object.entries(outputs)) {
    if (typeof content === 'string' || Buffer.isBuffer(content)) writeFileSync(join(out, name), content);
    else {
      mkdirSync(join(out, name), { recursive: true });
      for (const [f, c] of Object.entries(content)) writeFileSync(join(out, name, f), c);
    }
  }
  const log = join(dir, `${label}.log`);
  writeFileSync(log, `log of ${label}\n`);
  await store.commit(out, Object.keys(outputs), { key, stage: label, spec: 'p.yaml', fingerprint: fp, startedAt: 'now', durationMs: 1 }, log);
  return key;
}

/** A scratch folder with a store and an empty folder remote. */
export function storeAndRemote(t: { after(f: () => void): void }): { d: string; store: Store; root: string; remote: FolderRemote } {
  const d = scratch(t);
  const root = join(d, 'remote');
  mkdirSync(root);
  return { d, store: quietStore(d), root, remote: new FolderRemote(root) };
}
