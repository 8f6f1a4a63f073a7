// Whose results this machine accepts from a remote. A remote (a bucket, a shared folder) is
// writable by many; being able to write it must not be enough to make another machine accept a
// result. So every run record that leaves by `push` is signed (Ed25519, node:crypto) with this
// user's key, and `pull` installs a record only when one of its signatures is by a key this user
// trusts: their own, or one named with `pipeline remote trust NAME:KEY`. As with Nix's binary
// caches, trust is the reader's, kept in the reader's config, never in a workspace, a cache or a
// remote (any of those can come from someone else):
//
//   $XDG_CONFIG_HOME/rrtn-pipeline/ (default ~/.config/rrtn-pipeline/), mode 0700
//     signing-key.json   {"name": "host-1", "secret": PKCS#8 DER base64, "public": raw 32 bytes base64}, 0600
//     trusted-keys       one NAME:BASE64 per line (# comments): keys whose results this user accepts
//
// What is signed is a canonical text of the record (a header, then the record as canonical JSON
// without its seal and signatures), so re-encoding the JSON changes nothing and every field counts:
// the key, the fingerprint, each output's digest. A team shares results by trusting each other's
// keys, or by sharing one key file.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../diagnostics.ts';
import { canonicalJson } from '../cache/hash.ts';
import { isErrno, writeFileAtomic } from '../fsutil.ts';
import { isRecord } from '../records.ts';
import { printable } from '../text.ts';
import { configDir, configFile } from '../userconfig.ts';

/** One signature on a record: the signer's key name and public key, and the signature (base64). */
export interface RecordSignature {
  key: string;
  sig: string;
}

const HEADER = 'rrtn-pipeline run record v1\n';
const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** NAME:BASE64 of a raw 32-byte Ed25519 public key. */
const PUBLIC_KEY = /^([A-Za-z0-9][A-Za-z0-9._-]{0,63}):([A-Za-z0-9+/]{43}=)$/;
/** DER prefix of an Ed25519 SubjectPublicKeyInfo: the raw key follows. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface SigningKey {
  name: string;
  /** NAME:BASE64, as others write it in their trusted keys. */
  publicKey: string;
  secret: KeyObject;
}

let ownKey: SigningKey | undefined;

/** This user's signing key, made on first use (exclusively: two processes at once make one key). */
export function signingKey(): SigningKey {
  if (ownKey) return ownKey;
  const text = configFile('signing-key.json', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    // The machine's name and a few characters of the key: two keys made on one host read apart.
    const tag = createHash('sha256').update(rawPublic(publicKey)).digest('hex').slice(0, 6);
    const name = `${hostname().replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 48) || 'key'}-${tag}`;
    return `${JSON.stringify({ name, secret: privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64'), public: rawPublic(publicKey) }, null, 2)}\n`;
  });
  ownKey = parseKeyFile(text, join(configDir(), 'signing-key.json'));
  return ownKey;
}

function parseKeyFile(text: string, file: string): SigningKey {
  try {
    const v = JSON.parse(text) as unknown;
    if (isRecord(v) && typeof v.name === 'string' && KEY_NAME.test(v.name) && typeof v.secret === 'string' && typeof v.public === 'string') {
      const secret = createPrivateKey({ key: Buffer.from(v.secret, 'base64'), format: 'der', type: 'pkcs8' });
      const pub = rawPublic(createPublicKey(secret));
      if (secret.asymmetricKeyType === 'ed25519' && pub === v.public) return { name: v.name, publicKey: `${v.name}:${pub}`, secret };
    }
  } catch {
    // said below
  }
  throw new UsageError(`${file} is not a signing key (Ed25519, as \`pipeline remote key\` makes): move it away and a new one is made, or restore it from a backup`);
}

function rawPublic(k: KeyObject): string {
  return (k.export({ type: 'spki', format: 'der' }) as Buffer).subarray(SPKI_PREFIX.length).toString('base64');
}

/** `NAME:BASE64` checked; the text as it is, or a UsageError saying what a key looks like. */
export function checkPublicKey(text: string): string {
  const t = text.trim();
  if (!PUBLIC_KEY.test(t)) throw new UsageError(`'${printable(t).slice(0, 80)}' is not a public key: give it as NAME:BASE64, as \`pipeline remote key\` prints it on the machine that signs`);
  return t;
}

function trustFile(): string {
  return join(configDir(), 'trusted-keys');
}

/** Keys this user trusts besides their own, from the trusted-keys file (malformed lines are an error naming the line). */
export function trustedKeys(): string[] {
  let text: string;
  try {
    text = readFileSync(trustFile(), 'utf8');
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return [];
    throw e;
  }
  const out: string[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    if (!PUBLIC_KEY.test(line)) throw new UsageError(`${trustFile()}:${i + 1}: not a public key (NAME:BASE64): fix or remove the line`);
    out.push(line);
  }
  return out;
}

export async function setTrusted(keys: string[]): Promise<void> {
  mkdirSync(configDir(), { recursive: true, mode: 0o700 });
  await writeFileAtomic(trustFile(), `# keys whose results this user accepts from a remote (\`pipeline remote trust NAME:KEY\`)\n${keys.map((k) => `${k}\n`).join('')}`);
  chmodSync(trustFile(), 0o600);
}

/** What a signature covers: the record without its seal and signatures, as canonical JSON. */
function message(record: Record<string, unknown>): Buffer {
  const { seal: _s, signatures: _g, ...rest } = record;
  return Buffer.from(HEADER + canonicalJson(rest));
}

/** The record with this user's signature added (others it carries are kept; a stale one of ours replaced). */
export function signRecord(record: Record<string, unknown>): Record<string, unknown> {
  const k = signingKey();
  const sig = sign(null, message(record), k.secret).toString('base64');
  const others = signaturesOf(record).filter((s) => s.key !== k.publicKey);
  return { ...record, signatures: [...others, { key: k.publicKey, sig }] };
}

function signaturesOf(record: Record<string, unknown>): RecordSignature[] {
  const s = record.signatures;
  if (!Array.isArray(s)) return [];
  return s.filter((x): x is RecordSignature => isRecord(x) && typeof x.key === 'string' && typeof x.sig === 'string' && x.sig.length <= 200);
}

/** True when the record carries a valid signature by this user's own key (push re-signs otherwise). */
export function signedByMe(record: Record<string, unknown>): boolean {
  const me = signingKey().publicKey;
  return signaturesOf(record).some((s) => s.key === me && checkSignature(record, s));
}

const publicKeys = new Map<string, KeyObject>();

function checkSignature(record: Record<string, unknown>, s: RecordSignature): boolean {
  const m = PUBLIC_KEY.exec(s.key);
  if (!m) return false;
  let k = publicKeys.get(s.key);
  if (!k) {
    k = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, Buffer.from(m[2]!, 'base64')]), format: 'der', type: 'spki' });
    publicKeys.set(s.key, k);
  }
  try {
    return verify(null, message(record), k, Buffer.from(s.sig, 'base64'));
  } catch {
    return false;
  }
}

/** The keys a pull accepts: this user's own, and those in the trusted-keys file. */
export function acceptedKeys(): Set<string> {
  return new Set([signingKey().publicKey, ...trustedKeys()]);
}

/**
 * Why a record is not accepted, or undefined when it carries a valid signature by an accepted key.
 * `untrusted`: validly signed, by keys this user does not trust (a teammate's, maybe: not damage,
 * nothing to repair); `forged`: unsigned, or no signature matches its content (damage, or an
 * attack: a good copy may replace it). Key names are printed made safe: they come from the remote.
 */
export function signatureProblem(record: Record<string, unknown>, accepted: Set<string>): { kind: 'untrusted' | 'forged'; why: string } | undefined {
  const sigs = signaturesOf(record);
  if (!sigs.length) return { kind: 'forged', why: 'it is not signed (a push by an older version, or a forgery): refused' };
  const trusted = sigs.filter((s) => accepted.has(s.key));
  if (trusted.some((s) => checkSignature(record, s))) return undefined;
  if (trusted.length) return { kind: 'forged', why: `its signature by ${printable(trusted[0]!.key.split(':')[0]!)} does not match its content (the record was changed after it was signed): refused` };
  const valid = sigs.filter((s) => checkSignature(record, s));
  if (!valid.length) return { kind: 'forged', why: 'none of its signatures matches its content (the record was changed after it was signed): refused' };
  const names = valid.map((s) => printable(s.key.split(':')[0] ?? '?').slice(0, 64));
  return { kind: 'untrusted', why: `it is signed by ${names.join(', ')}, ${valid.length === 1 ? 'a key' : 'keys'} this machine does not trust: refused (if you know the key is a teammate's, \`pipeline remote trust NAME:KEY\` with the key as they read it from \`pipeline remote key\`)` };
}
