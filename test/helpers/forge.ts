// What an attacker with write access to a folder remote does, for the trust tests and `npm run
// faults`: put bytes there as an object, write a record, and sign a record as a given user would
// (their config folder: the CLI's own signing module in a child process with that config).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashBytes } from '../../src/cache/hash.ts';
import { parseSealed } from '../../src/fsutil.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

/** The record signed by the key in config folder `cfg` (XDG_CONFIG_HOME), sealed as the remote holds it. */
export function signAs(cfg: string, record: Record<string, unknown>): string {
  const code = `import { signRecord } from ${JSON.stringify(join(ROOT, 'src/remote/trust.ts'))};
import { sealedText } from ${JSON.stringify(join(ROOT, 'src/fsutil.ts'))};
process.stdout.write(await sealedText(signRecord(JSON.parse(process.argv[1]))));`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code, JSON.stringify(record)], { env: { ...process.env, XDG_CONFIG_HOME: cfg }, encoding: 'utf8', cwd: ROOT });
  if (r.status !== 0) throw new Error(`signing failed: ${r.stderr}`);
  return r.stdout;
}

/** Puts bytes on a folder remote as a loose object; their digest. */
export async function putObject(remote: string, bytes: Buffer): Promise<string> {
  const d = await hashBytes(bytes);
  mkdirSync(join(remote, 'objects', d.slice(0, 2)), { recursive: true });
  writeFileSync(join(remote, 'objects', d.slice(0, 2), d.slice(2)), bytes);
  return d;
}

/** Keys of the runs a folder (a remote, or a cache) holds. */
export const runKeys = (dir: string): string[] => readdirSync(join(dir, 'runs')).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));

/** The one run record a folder remote holds, parsed. */
export async function onlyRecord(remote: string): Promise<{ key: string; rec: Record<string, unknown> }> {
  const [key] = runKeys(remote);
  const rec = await parseSealed<Record<string, unknown>>(readFileSync(join(remote, 'runs', `${key}.json`), 'utf8'));
  if (typeof rec !== 'object') throw new Error(`the record on ${remote} is damaged`);
  return { key: key!, rec };
}
