// Signing and trust in-process (src/remote/trust.ts): the user's key made once and checked when
// read back, public keys and the trusted-keys file parsed line by line, records signed over their
// content (a stale signature of one's own replaced, others kept), and every way a record's
// signatures can fail, each said. Its own process: the signing key is made on first use, so the
// first test here sees a damaged key file before any key exists.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { acceptedKeys, checkPublicKey, setTrusted, signatureProblem, signedByMe, signingKey, signRecord, trustedKeys } from '../src/remote/trust.ts';
import { parseSealed } from '../src/fsutil.ts';
import { scratch } from './helpers/engine.ts';
import { signAs } from './helpers/forge.ts';

const CONFIG = scratch({ after: (f) => process.on('exit', f) });
process.env.XDG_CONFIG_HOME = join(CONFIG, 'me');
const DIR = join(CONFIG, 'me', 'rrtn-pipeline');
const record = { key: 'a'.repeat(32), stage: 'train', outputs: { r: { digest: 'b'.repeat(32) } } };

test('the signing key: a damaged key file is said (move it away); then one is made, 0600 in a 0700 folder, named for the host, the same on every call', () => {
  mkdirSync(DIR, { recursive: true });
  for (const bad of ['not json', '{"name": "x", "secret": "AAAA", "public": "AAAA"}', '{"name": "-bad", "secret": "", "public": ""}', '[]']) {
    writeFileSync(join(DIR, 'signing-key.json'), bad);
    assert.throws(() => signingKey(), new RegExp(`${DIR}/signing-key\\.json is not a signing key \\(Ed25519, as \`pipeline remote key\` makes\\): move it away and a new one is made`), bad);
  }
  rmSync(join(DIR, 'signing-key.json'));
  const k = signingKey();
  assert.match(k.publicKey, /^[A-Za-z0-9][A-Za-z0-9._-]*-[0-9a-f]{6}:[A-Za-z0-9+/]{43}=$/);
  assert.ok(k.name.startsWith(hostname().replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 48)), `named for the host: ${k.name}`);
  assert.equal(k.publicKey, `${k.name}:${(JSON.parse(readFileSync(join(DIR, 'signing-key.json'), 'utf8')) as { public: string }).public}`);
  assert.equal(statSync(join(DIR, 'signing-key.json')).mode & 0o777, 0o600);
  assert.equal(signingKey(), k, 'made once');
  assert.deepEqual([...acceptedKeys()], [k.publicKey], 'one\'s own key is accepted');
});

test('public keys: NAME:BASE64 of 32 bytes, trimmed; anything else said plainly, control characters made visible', () => {
  const good = `host-1:${Buffer.alloc(32, 1).toString('base64')}`;
  assert.equal(checkPublicKey(`  ${good}\n`), good);
  for (const bad of [`host 1:${Buffer.alloc(32, 1).toString('base64')}`, `-h:${Buffer.alloc(32, 1).toString('base64')}`, `h:${Buffer.alloc(31, 1).toString('base64')}`, `h:${Buffer.alloc(33, 1).toString('base64')}`, 'h', `${'h'.repeat(65)}:${Buffer.alloc(32, 1).toString('base64')}`, `h:${Buffer.alloc(32, 1).toString('base64')}x`]) {
    assert.throws(() => checkPublicKey(bad), /is not a public key: give it as NAME:BASE64, as `pipeline remote key` prints it on the machine that signs/, bad);
  }
  assert.throws(() => checkPublicKey('\u001b[2Jx'), (e: Error) => !e.message.includes('\u001b') && e.message.includes('\\u001b'));
  assert.equal(checkPublicKey(`${'h'.repeat(64)}:${Buffer.alloc(32, 1).toString('base64')}`).length, 64 + 1 + 44, 'a name of 64 characters');
});

test('the trusted-keys file: absent is none; comments and blank lines skipped; a bad line named with its number; written 0600 with a header', async () => {
  rmSync(join(DIR, 'trusted-keys'), { force: true });
  assert.deepEqual(trustedKeys(), []);
  const k1 = `one:${Buffer.alloc(32, 1).toString('base64')}`;
  const k2 = `two:${Buffer.alloc(32, 2).toString('base64')}`;
  writeFileSync(join(DIR, 'trusted-keys'), `# mine\n\n  ${k1}  # a teammate\n${k2}\n`);
  assert.deepEqual(trustedKeys(), [k1, k2]);
  writeFileSync(join(DIR, 'trusted-keys'), `${k1}\n\nnot a key\n`);
  assert.throws(() => trustedKeys(), new RegExp(`${DIR}/trusted-keys:3: not a public key \\(NAME:BASE64\\): fix or remove the line`));
  await setTrusted([k2, k1]);
  assert.deepEqual(trustedKeys(), [k2, k1]);
  assert.match(readFileSync(join(DIR, 'trusted-keys'), 'utf8'), /^# keys whose results this user accepts from a remote \(`pipeline remote trust NAME:KEY`\)\n/);
  assert.equal(statSync(join(DIR, 'trusted-keys')).mode & 0o777, 0o600);
  assert.deepEqual([...acceptedKeys()], [signingKey().publicKey, k2, k1]);
  await setTrusted([]);
  assert.deepEqual(trustedKeys(), []);
});

test('signatures: over the content (seal and signatures aside), one of one\'s own replaced when stale, others kept; each way of failing said', async () => {
  const me = signingKey().publicKey;
  const signed = signRecord(record);
  assert.equal(signedByMe(signed), true);
  assert.equal(signatureProblem(signed, new Set([me])), undefined);
  assert.equal(signatureProblem({ ...signed, seal: 'other' }, new Set([me])), undefined, 'the seal is not signed');
  const changed = { ...signed, stage: 'other' };
  assert.equal(signedByMe(changed), false);
  assert.deepEqual(signatureProblem(changed, new Set([me])), { kind: 'forged', why: `its signature by ${me.split(':')[0]} does not match its content (the record was changed after it was signed): refused` });
  assert.deepEqual(signatureProblem(record, new Set([me])), { kind: 'forged', why: 'it is not signed (a push by an older version, or a forgery): refused' });
  assert.deepEqual(signatureProblem({ ...record, signatures: 'x' }, new Set([me])), { kind: 'forged', why: 'it is not signed (a push by an older version, or a forgery): refused' });
  // Re-signed after a change: one signature of one's own, the new one.
  const resigned = signRecord(changed);
  assert.equal((resigned.signatures as unknown[]).length, 1);
  assert.equal(signatureProblem(resigned, new Set([me])), undefined);

  // A stranger's valid signature: untrusted, named (printably); with one's own as well: accepted.
  const theirs = (await parseSealed<Record<string, unknown>>(signAs(join(CONFIG, 'stranger'), record))) as Record<string, unknown>;
  const stranger = (theirs.signatures as Array<{ key: string; sig: string }>)[0]!;
  const byThem = { ...record, signatures: [stranger] };
  assert.deepEqual(signatureProblem(byThem, new Set([me])), { kind: 'untrusted', why: `it is signed by ${stranger.key.split(':')[0]}, a key this machine does not trust: refused (if you know the key is a teammate's, \`pipeline remote trust NAME:KEY\` with the key as they read it from \`pipeline remote key\`)` });
  assert.equal(signatureProblem(byThem, new Set([me, stranger.key])), undefined);
  const both = signRecord(byThem);
  assert.deepEqual((both.signatures as Array<{ key: string }>).map((s) => s.key), [stranger.key, me], "theirs kept, one's own added");
  assert.equal(signatureProblem(both, new Set([me])), undefined);
  // Changed after both signed: forged, named by the trusted signer; with no trusted signer: none matches.
  assert.equal(signatureProblem({ ...both, stage: 'x' }, new Set([me]))!.kind, 'forged');
  assert.deepEqual(signatureProblem({ ...byThem, stage: 'x' }, new Set([me])), { kind: 'forged', why: 'none of its signatures matches its content (the record was changed after it was signed): refused' });
  // Two valid strangers: both named; malformed entries (a bad key, an oversized signature) ignored.
  const other = { key: `x\u001by:${Buffer.alloc(32, 9).toString('base64')}`, sig: stranger.sig };
  const junk = [{ key: 'not a key', sig: stranger.sig }, { key: stranger.key, sig: 'A'.repeat(201) }, { key: 3, sig: 'x' }, other];
  assert.equal(signatureProblem({ ...record, signatures: [...junk, stranger] }, new Set([me]))!.kind, 'untrusted');
  assert.equal(signatureProblem({ ...record, signatures: junk }, new Set([me, other.key]))!.kind, 'forged', 'a trusted key whose signature is not its own');
  assert.match(signatureProblem({ ...record, signatures: junk }, new Set([me, other.key]))!.why, /its signature by x\\u001by does not match/);
});
