// Environment variables that hold secrets (API keys, tokens, passwords, cloud credentials) are
// never written down by the engine: not in a fingerprint, a run record (which a push sends to a
// remote), the no-op snapshot, a log or `pipeline status`. A variable counts as a secret when the
// spec passes it with `passEnv:` (passed unkeyed, by design) or its name looks like one (*_KEY,
// *_TOKEN, *SECRET*, *PASSWORD*, *CREDENTIAL*, AWS_*). Where such a value must still decide a key
// (a shell line reads it, the spec's `env:` sets it), it is keyed by an HMAC under this user's
// salt (userconfig.ts): equal values give equal keys on this user's machines, and nothing in a
// record or on a remote lets anyone test guesses of the value.
import { createHmac, randomBytes } from 'node:crypto';
import { configFile } from './userconfig.ts';

const SECRET_NAME = /(^|_)(KEY|TOKEN|PAT)$|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|^AWS_/i;

/** True when a variable of this name is taken for a secret (its value never written down). */
export function looksSecret(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** Marks a keyed value that stands for a secret's digest (status says "changed", never the value). */
export const SECRET_PREFIX = 'secret:';

let salt: Buffer | undefined;

/** What stands for a secret's value in a key: an HMAC of name and value under the user's salt. */
export function secretDigest(name: string, value: string): string {
  salt ??= Buffer.from(configFile('secret-salt', () => `${randomBytes(32).toString('hex')}\n`).trim(), 'hex');
  return SECRET_PREFIX + createHmac('sha256', salt).update(`${name}\0${value}`).digest('hex').slice(0, 32);
}

/** A variable's value as a key or snapshot holds it: a secret's by digest, any other as it is (null: unset). */
export function keyedValue(name: string, value: string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  return looksSecret(name) ? secretDigest(name, value) : value;
}
