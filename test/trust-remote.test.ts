// Trust, round 4: a remote is untrusted input. Each test is one hole a red team found, reproduced
// through the real CLI on real files: machines are workspaces with their own cache and their own
// user config (XDG_CONFIG_HOME: their own signing key and trusted keys), sharing a folder remote
// (and the S3 test server where the transport matters). Where a check behind the signature is the
// point (manifests, names), the forger holds a key the victim trusts: a teammate's stolen laptop.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { dirDigest } from '../src/cache/digests.ts';
import { hashBytes } from '../src/cache/hash.ts';
import { parseSealed, sealedText } from '../src/fsutil.ts';
import { startS3, type S3Server } from './helpers/s3.ts';
import { onlyRecord as remoteRecord, putObject, runKeys, signAs as signWith } from './helpers/forge.ts';
import { CLI, Workspace, type CliResult } from './helpers/workspace.ts';

/** One stage: a folder output (published at out/) and a metrics file (published at metrics.json). */
const SPEC = `params: { tag: a }
stages:
  make:
    run: [sh, -c, 'mkdir -p "$0" && echo "file $1" > "$0/f.txt" && echo "{\\"accuracy\\": 0.61}" > "$2"', '\${outputs.data}', '\${params.tag}', '\${outputs.metrics}']
    outs: { data: out, metrics: metrics.json }
`;

let s3: S3Server;
before(async () => {
  s3 = await startS3(['trust']);
});
after(async () => {
  await s3?.stop();
});

interface Machine {
  ws: Workspace;
  cfg: string;
  run(...args: string[]): CliResult;
}

/** A remote (a folder, or a prefix on the S3 server) and machines that share it, each with its own key. */
function setup(t: { after(f: () => void): void }, kind: 'folder' | 's3' = 'folder') {
  const home = new Workspace();
  t.after(() => home.dispose());
  home.write('remote/.keep', '');
  const prefix = `t${Math.random().toString(36).slice(2, 8)}`;
  const url = kind === 's3' ? `s3://trust/${prefix}` : home.path('remote');
  const env = kind === 's3' ? s3.env : {};
  const machine = (name: string, spec = SPEC): Machine => {
    const ws = new Workspace({ 'p.yaml': spec });
    t.after(() => ws.dispose());
    const cfg = home.path(`config-${name}`);
    const run = (...args: string[]) => ws.runEnv({ ...env, XDG_CONFIG_HOME: cfg }, ...args);
    const add = run('remote', 'add', 'origin', url, ...(kind === 's3' ? ['--endpoint', s3.endpoint] : []));
    assert.equal(add.code, 0, add.stderr);
    return { ws, cfg, run };
  };
  const remote = (p = '') => (kind === 's3' ? join(s3.dir, 'trust', prefix, p) : home.path(`remote/${p}`));
  /** A file on the remote (s3rver keeps an object's bytes beside its name). */
  const remoteFile = (name: string) => (kind === 's3' ? `${remote(name)}._S3rver_object` : remote(name));
  return { home, machine, remote, remoteFile };
}

const publicKey = (m: Machine): string => m.run('remote', 'key').stdout.trim();
const signAs = (m: Machine, record: Record<string, unknown>): string => signWith(m.cfg, record);

/** A has run the spec and pushed it to a folder remote; B trusts A; the remote's one record. */
async function pushedToTrusting(t: { after(f: () => void): void }, spec = SPEC) {
  const s = setup(t);
  const a = s.machine('a', spec);
  const b = s.machine('b', spec);
  assert.equal(b.run('remote', 'trust', publicKey(a)).code, 0);
  assert.equal(a.run('run', 'p.yaml').code, 0);
  assert.equal(a.run('push').code, 0);
  return { ...s, a, b, ...(await remoteRecord(s.remote())) };
}

for (const kind of ['folder', 's3'] as const) {
  test(`${kind} remote: a run signed by a key this machine does not trust is refused, naming the key and the stage; run --pull computes it; once trusted it is served; one's own remote needs no set-up`, (t) => {
    const { machine } = setup(t, kind);
    const a = machine('a');
    const b = machine('b');
    assert.equal(a.run('run', 'p.yaml').code, 0);
    const push = a.run('push', 'p.yaml');
    assert.equal(push.code, 0, push.stderr);
    const aKey = publicKey(a);
    assert.match(aKey, /^[A-Za-z0-9][A-Za-z0-9._-]*:[A-Za-z0-9+/]{43}=$/);
    const refused = b.run('pull', 'p.yaml');
    assert.equal(refused.code, 1);
    assert.equal(b.ws.exists('out/f.txt'), false, 'nothing of it was published');
    assert.match(refused.stderr, new RegExp(`make: refused what origin holds: stage make: .*signed by ${aKey.split(':')[0]!.replace(/[.]/g, '\\.')}, a key this machine does not trust`));
    const computed = b.run('run', '--pull', 'p.yaml');
    assert.equal(computed.code, 0, computed.stderr);
    assert.equal(computed.states.get('make'), 'done', 'computed here instead');
    // A third machine that trusts A is served.
    const c = machine('c');
    assert.equal(c.run('remote', 'trust', aKey).code, 0);
    const pulled = c.run('pull', 'p.yaml');
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.equal(pulled.states.get('make'), 'pulled');
    assert.equal(c.ws.read('out/f.txt'), 'file a\n');
    // A's own other workspace (the same user config): its own results need no trust set-up.
    const a2 = new Workspace({ 'p.yaml': SPEC });
    t.after(() => a2.dispose());
    a2.runEnv({ ...(kind === 's3' ? s3.env : {}), XDG_CONFIG_HOME: a.cfg }, 'remote', 'add', 'origin', ...(a.ws.read('.pipeline/remotes.json').match(/"url": "([^"]+)"/)!.slice(1)), ...(kind === 's3' ? ['--endpoint', s3.endpoint] : []));
    const own = a2.runEnv({ ...(kind === 's3' ? s3.env : {}), XDG_CONFIG_HOME: a.cfg }, 'pull', 'p.yaml');
    assert.equal(own.code, 0, own.stderr);
    assert.equal(own.states.get('make'), 'pulled');
    // untrust takes it back: the next pull into an empty cache refuses it again.
    assert.equal(c.run('remote', 'untrust', aKey.split(':')[0]!).code, 0);
    rmSync(c.ws.path('cache'), { recursive: true, force: true });
    assert.equal(c.run('pull', 'p.yaml').code, 1);
  });
}

test('a record forged on the remote (other bytes for an output, the seal recomputed) is refused, signed or not; a good copy pushed over it repairs the remote', async (t) => {
  const { machine, remote, b, key, rec } = await pushedToTrusting(t);
  const fake = Buffer.from('{"accuracy": 0.99}\n');
  const digest = await putObject(remote(), fake);
  const outputs = rec.outputs as Record<string, { digest: string; size: number }>;
  const forged = { ...rec, outputs: { ...outputs, metrics: { ...outputs.metrics!, digest, size: fake.length } } };
  const file = join(remote(), 'runs', `${key}.json`);
  // With A's signature kept (it no longer matches), then with no signature at all.
  for (const [body, why] of [[forged, /does not match its content/], [{ ...forged, signatures: [] }, /it is not signed/]] as const) {
    writeFileSync(file, await sealedText(body));
    const r = b.run('pull', 'p.yaml');
    assert.equal(r.code, 1);
    assert.match(r.stderr, why);
    assert.equal(b.ws.exists('metrics.json'), false, 'the forged metrics were not published');
  }
  // B computes it, and its push repairs what it found damaged there (it does not say "nothing new").
  const computed = b.run('run', '--pull', 'p.yaml');
  assert.equal(computed.states.get('make'), 'done');
  assert.match(b.ws.read('metrics.json'), /0\.61/);
  const push = b.run('push', 'p.yaml');
  assert.equal(push.code, 0, push.stderr);
  assert.match(push.stdout, /1 run sent/);
  const c = machine('c');
  assert.equal(c.run('remote', 'trust', publicKey(b)).code, 0);
  const pulled = c.run('pull', 'p.yaml');
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.match(c.ws.read('metrics.json'), /0\.61/);
});

/** Hostile file lists: each must be refused where it is read, and nothing written outside the workspace. */
const HOSTILE = (outside: string): Array<[string, Array<{ path: string }>]> => [
  ['a path leaving the folder', [{ path: `${'../'.repeat(24)}${outside.slice(1)}/x` }]],
  ['a file and a folder', [{ path: 'x' }, { path: 'x/y' }]],
  ['an empty path', [{ path: '' }]],
  ['a . segment', [{ path: './x' }]],
  ['a duplicate', [{ path: 'x' }, { path: 'x' }]],
  ['an absolute path', [{ path: `${outside}/abs` }]],
];

test('a pulled file list that would write outside the workspace, or break the cache (x and x/y, "", ".", duplicates), is refused by pull and by a later run; nothing is written outside', async (t) => {
  const { remote, a, b, key, rec } = await pushedToTrusting(t);
  const outside = join(tmpdir(), `pipeline-outside-${process.pid}-${Date.now()}`);
  t.after(() => rmSync(outside, { recursive: true, force: true }));
  const bytes = Buffer.from('owned\n');
  const d = await putObject(remote(), bytes);
  for (const [what, entries] of HOSTILE(outside)) {
    const manifest = entries.map((e) => ({ path: e.path, size: bytes.length, digest: d }));
    const md = (await dirDigest(manifest as never)).digest;
    mkdirSync(join(remote(), 'manifests'), { recursive: true });
    writeFileSync(join(remote(), 'manifests', `${md}.json`), JSON.stringify(manifest));
    const outputs = rec.outputs as Record<string, unknown>;
    // Signed by A, whom B trusts: what is behind the signature is checked all the same.
    writeFileSync(join(remote(), 'runs', `${key}.json`), signAs(a, { ...rec, outputs: { ...outputs, data: { kind: 'dir', digest: md, size: bytes.length * entries.length, files: entries.length } } }));
    rmSync(b.ws.path('cache'), { recursive: true, force: true });
    const r = b.run('pull', 'p.yaml');
    assert.equal(r.code, 1, `${what}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /is not a folder's file list/, what);
    assert.equal(existsSync(outside), false, `${what}: nothing outside the workspace`);
    // The same list already in the local cache (as an older version would have pulled it): the
    // run drops it as corrupt and computes the stage; no raw EEXIST/EISDIR.
    mkdirSync(b.ws.path('cache/manifests'), { recursive: true });
    writeFileSync(b.ws.path(`cache/manifests/${md}.json`), JSON.stringify(manifest));
    mkdirSync(b.ws.path(`cache/objects/${d.slice(0, 2)}`), { recursive: true });
    writeFileSync(b.ws.path(`cache/objects/${d.slice(0, 2)}/${d.slice(2)}`), bytes);
    utimesSync(b.ws.path(`cache/objects/${d.slice(0, 2)}/${d.slice(2)}`), 1e9, 1e9);
    mkdirSync(b.ws.path('cache/runs'), { recursive: true });
    writeFileSync(b.ws.path(`cache/runs/${key}.json`), signAs(a, { ...rec, outputs: { ...outputs, data: { kind: 'dir', digest: md, size: bytes.length * entries.length, files: entries.length } } }));
    const run = b.run('run', 'p.yaml');
    assert.equal(run.code, 0, `${what}: ${run.stderr}`);
    assert.equal(run.states.get('make'), 'done', `${what}: computed, not served`);
    assert.match(run.stderr, /cache: dropped .*folder manifest/, what);
    assert.equal(b.ws.read('out/f.txt'), 'file a\n');
    assert.equal(existsSync(outside), false, `${what}: nothing outside the workspace`);
  }
});

test('damage on a remote is repaired: a flipped byte in a pack, or a hostile pack list claiming objects it lacks, is refused by pull, re-sent by the next push, and found and fixed by remote verify --repair', async (t) => {
  const { machine, remote } = setup(t);
  const a = machine('a');
  const b = machine('b');
  const c = machine('c');
  for (const m of [b, c]) assert.equal(m.run('remote', 'trust', publicKey(a)).code, 0);
  assert.equal(c.run('remote', 'trust', publicKey(b)).code, 0);
  assert.equal(a.run('run', 'p.yaml').code, 0);
  assert.equal(a.run('push', 'p.yaml').code, 0);
  assert.match(a.run('remote', 'verify').stdout, /1 runs, 2 objects checked; all intact/);
  // One flipped byte in the pack.
  const pack = readdirSync(remote('packs')).find((f) => f.endsWith('.pack'))!;
  const bytes = readFileSync(remote(`packs/${pack}`));
  bytes[0] = bytes[0]! ^ 1;
  writeFileSync(remote(`packs/${pack}`), bytes);
  const verify = a.run('remote', 'verify');
  assert.equal(verify.code, 1);
  assert.match(verify.stdout, /1 runs cannot be served/);
  assert.match(verify.stdout, new RegExp(`pack ${pack.slice(0, -5)}: holds bytes`));
  const refused = b.run('pull', 'p.yaml');
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /does not match its digest/);
  assert.equal(b.run('run', 'p.yaml').states.get('make'), 'done');
  const push = b.run('push', 'p.yaml');
  assert.match(push.stdout, /1 run sent/, 'B knows the remote copy is damaged: not "nothing new"');
  const pulled = c.run('pull', 'p.yaml');
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.equal(c.ws.read('out/f.txt'), 'file a\n');

  // A hostile list: a "pack" of garbage whose list claims the objects of A's next run.
  a.ws.write('p.yaml', SPEC.replace('tag: a', 'tag: b'));
  const future = Buffer.from('file b\n');
  const futureDigest = await hashBytes(future);
  const garbage = Buffer.alloc(64, 7);
  const gd = await hashBytes(garbage);
  writeFileSync(remote(`packs/${gd}.pack`), garbage);
  writeFileSync(remote(`packs/${gd}.list`), JSON.stringify([[futureDigest, 0, future.length]]));
  assert.equal(a.run('run', 'p.yaml').code, 0);
  assert.equal(a.run('push', 'p.yaml').code, 0);
  const fresh = machine('fresh');
  assert.equal(fresh.run('remote', 'trust', publicKey(a)).code, 0);
  fresh.ws.write('p.yaml', SPEC.replace('tag: a', 'tag: b'));
  assert.equal(fresh.run('pull', 'p.yaml').code, 1, 'the lying list left the run unservable');
  const repair = a.run('remote', 'verify', '--repair');
  assert.equal(repair.code, 1, 'what was found is said');
  assert.match(repair.stdout, new RegExp(`pack ${gd}: holds bytes`));
  assert.match(repair.stdout, /repaired: 1 run sent again from this cache/);
  assert.match(a.run('remote', 'verify').stdout, /all intact/);
  rmSync(fresh.ws.path('cache'), { recursive: true, force: true });
  const ok = fresh.run('pull', 'p.yaml');
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(fresh.ws.read('out/f.txt'), 'file b\n');
});

test('a FIFO, a link or an oversized file on the remote is refused at once, never read: pull does not hang', async (t) => {
  const { remote, b, key } = await pushedToTrusting(t);
  const record = remote(`runs/${key}.json`);
  const saved = readFileSync(record);
  // Killed (not asked to stop) if it hangs: a pull stuck in a read would not answer SIGTERM.
  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, ...args], { cwd: b.ws.path('.'), env: { ...process.env, CI: 'true', XDG_CONFIG_HOME: b.cfg }, encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const cases: Array<[string, () => void]> = [
    ['a FIFO', () => execFileSync('mkfifo', [record])],
    ['a symbolic link', () => execFileSync('ln', ['-s', '/dev/zero', record])],
    ['a file of 17 MB', () => writeFileSync(record, Buffer.alloc(17 << 20, 32))],
  ];
  for (const [what, make] of cases) {
    rmSync(record, { force: true });
    make();
    const t0 = Date.now();
    const r = run('pull', 'p.yaml');
    assert.equal(r.code, 1, `${what}: ${r.stderr}`);
    assert.match(r.stderr, /refused/, what);
    // Without a spec, the listing shows plain files only: a FIFO or a link there is no run at all.
    const all = run('pull');
    if (what.includes('MB')) {
      assert.equal(all.code, 1, `${what}: ${all.stderr}`);
      assert.match(all.stderr, /more than the \d+ it may: refused/);
    } else {
      assert.equal(all.code, 0, `${what}: ${all.stderr}`);
      assert.match(all.stdout, /0 runs fetched/);
    }
    assert.ok(Date.now() - t0 < 20_000, `${what}: answered at once`);
  }
  rmSync(record, { force: true });
  writeFileSync(record, saved);
  assert.equal(b.run('pull', 'p.yaml').code, 0, 'the real record is served again');
});

test('terminal escapes in a remote record are refused by pull; one already in the cache is printed as visible escapes by exp show (table and --md)', async (t) => {
  const spec = `${SPEC}    metrics: [metrics]\n`;
  const { remote, a, b, key, rec } = await pushedToTrusting(t, spec);
  const evil = 'make[x=\u001b[2K\u001b[1A\u001b]0;pwned\u0007]';
  writeFileSync(remote(`runs/${key}.json`), signAs(a, { ...rec, stage: evil }));
  const r = b.run('pull');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is damaged \(its seal or shape is wrong\)/);
  assert.equal(/\u001b/.test(r.stdout + r.stderr), false);
  // A named experiment whose file on the remote carries escapes: refused by exp pull, nothing printed raw.
  mkdirSync(remote('names'), { recursive: true });
  writeFileSync(remote('names/best.json'), await sealedText({ name: 'best', spec: 'p.yaml\u001b]0;owned\u0007', workspace: '/w', savedAt: '2026-12-06T00:00:00Z', runs: { make: key } }));
  const named = b.run('exp', 'pull', 'best');
  assert.equal(named.code, 1, named.stderr);
  assert.match(named.stderr, /names\/best\.json on .* is damaged \(its seal or shape is wrong\): refused/);
  assert.equal(/\u001b/.test(named.stdout + named.stderr), false);
  // In the local cache already (an older version pulled it): shown, escaped.
  const local = runKeys(a.ws.path('cache'))[0]!;
  const mine = await parseSealed<Record<string, unknown>>(readFileSync(a.ws.path(`cache/runs/${local}.json`), 'utf8'));
  writeFileSync(a.ws.path(`cache/runs/${local}.json`), await sealedText({ ...(mine as object), stage: evil }));
  for (const args of [['exp', 'show', 'p.yaml'], ['exp', 'show', 'p.yaml', '--md']]) {
    const show = a.run(...args);
    assert.equal(show.code, 0, show.stderr);
    assert.equal(/[\u0000-\u0008\u000b-\u001f\u007f]/.test(show.stdout), false, `${args.join(' ')}: no control character reaches the terminal`);
  }
});

test('a secret is never written: passEnv variables a shell line reads are unkeyed; secret-looking names are keyed by digest; status says "changed" without values; nothing in the cache, the remote or status holds the value', (t) => {
  const spec = `stages:
  call:
    shell: true
    passEnv: [API_KEY]
    run: echo "$(printf %s "$API_KEY" | wc -c) $(printf %s "$MY_TOKEN" | wc -c)" > \${outputs.o}
    outs: { o: out.txt }
`;
  const { machine, remote } = setup(t);
  const a = machine('a', spec);
  const env = { API_KEY: 'sk-live-0123456789abcdef', MY_TOKEN: 'tok-0123456789secret' };
  const r = a.ws.runEnv({ XDG_CONFIG_HOME: a.cfg, ...env }, 'run', 'p.yaml');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(a.ws.read('out.txt'), '24 20\n', 'the stage got both values');
  assert.equal(a.ws.runEnv({ XDG_CONFIG_HOME: a.cfg, ...env }, 'push').code, 0);
  // Rotating the passEnv one changes nothing; the secret-looking one reruns, said without values.
  const rotated = a.ws.runEnv({ XDG_CONFIG_HOME: a.cfg, ...env, API_KEY: 'sk-live-rotated-000000' }, 'status', 'p.yaml');
  assert.match(rotated.stdout, /call\s+cached/);
  const changed = a.ws.runEnv({ XDG_CONFIG_HOME: a.cfg, ...env, MY_TOKEN: 'tok-rotated-999999999' }, 'status', 'p.yaml');
  assert.match(changed.stdout, /env \$MY_TOKEN read by the command changed \(a secret: its value is not shown\)/);
  const grep = (dir: string): string[] => {
    const out: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile()) {
          const text = readFileSync(p, 'latin1');
          for (const v of [...Object.values(env), 'tok-rotated-999999999', 'sk-live-rotated-000000']) if (text.includes(v)) out.push(`${p}: ${v}`);
        }
      }
    };
    walk(dir);
    return out;
  };
  assert.deepEqual([...grep(a.ws.path('cache')), ...grep(remote())], []);
  for (const out of [r, rotated, changed]) for (const v of Object.values(env)) assert.equal((out.stdout + out.stderr).includes(v), false);
  // In a spec, ${env.SECRET} outside a stage's env: is refused (it would land in the key).
  a.ws.write('q.yaml', 'stages:\n  s:\n    run: [echo, "${env.MY_TOKEN}"]\n');
  const q = a.ws.runEnv({ XDG_CONFIG_HOME: a.cfg, ...env }, 'validate', 'q.yaml');
  assert.equal(q.code, 2);
  assert.match(q.stderr, /q\.yaml:3:\d+: stages\.s\.run\[1\]: \$\{env\.MY_TOKEN\} looks like a secret/);
});

test('a value that lands in a nested shell\'s script is refused, for every nesting the red team used; nothing runs', (t) => {
  const forms: Array<[string, string]> = [
    ['timeout + bash -c in a shell line', `shell: true\n    run: timeout 30 bash -c 'echo \${params.msg}' > \${outputs.o}`],
    ['sh -c inside sh -c', `run: [sh, -c, 'sh -c "echo \${params.msg}" > "$0"', '\${outputs.o}']`],
    ['xargs sh -c', `shell: true\n    run: echo a | xargs sh -c 'echo \${params.msg}' > \${outputs.o}`],
    ['su -c inside a shell line', `shell: true\n    run: su root -c "echo \${params.msg}" > \${outputs.o}`],
    ['eval', `shell: true\n    run: eval "echo \${params.msg}" > \${outputs.o}`],
    ['env nice srun bash -c in $(...)', `shell: true\n    run: echo $(env A=1 nice -n 1 bash -c "echo \${params.msg}") > \${outputs.o}`],
    ['zsh -c two levels down', `shell: true\n    run: bash -c "dash -c 'zsh -c \\"echo \${params.msg}\\"'" > \${outputs.o}`],
    ['ssh host CMD in an argument list', `run: [ssh, localhost, 'echo \${params.msg}']`],
    ['piped into sh', `shell: true\n    run: echo "echo \${params.msg}" | timeout 30 sh > \${outputs.o}`],
    ['a here-document into bash', `shell: true\n    run: |\n      bash <<EOF > \${outputs.o}\n      echo \${params.msg}\n      EOF`],
    ['a here-string into bash -s', `shell: true\n    run: bash -s <<< "echo \${params.msg}" > \${outputs.o}`],
  ];
  for (const [what, run] of forms) {
    const ws = new Workspace({ 'p.yaml': `params: { msg: hello }\nstages:\n  s:\n    ${run}\n    outs: { o: null }\n` });
    t.after(() => ws.dispose());
    const r = ws.run('run', 'p.yaml', '--set', 'msg=x $(touch p) y');
    assert.equal(r.code, 2, `${what}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /p\.yaml:\d+:\d+: stages\.s\.run(\[\d\])?: \$\{params\.msg\} lands in text that a second shell reads as code/, what);
    assert.equal(ws.exists('p'), false, `${what}: nothing ran`);
  }
  // What is safe stays accepted and works: the value as an argument of the inner shell, and the su script itself.
  const ws = new Workspace({ 'p.yaml': `params: { msg: hello }\nstages:\n  s:\n    shell: true\n    run: timeout 30 sh -c 'echo "$1" > "$0"' \${outputs.o} \${params.msg}\n    outs: { o: o.txt }\n` });
  t.after(() => ws.dispose());
  const ok = ws.run('run', 'p.yaml', '--set', 'msg=x $(touch p) y');
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ws.read('o.txt'), 'x $(touch p) y\n');
  assert.equal(ws.exists('p'), false);
});

test('git runs none of the repository\'s own programs (core.fsmonitor, filters) on run, exp save and pull; dirtiness is still told right', (t) => {
  const ws = new Workspace({ 'p.yaml': `${SPEC}    metrics: [metrics]\n`, 'tracked.txt': 'one\n', '.gitattributes': '*.txt filter=evil\n' });
  t.after(() => ws.dispose());
  const marks = join(tmpdir(), `pipeline-git-${process.pid}-${Date.now()}`);
  mkdirSync(marks);
  t.after(() => rmSync(marks, { recursive: true, force: true }));
  const git = (...args: string[]) => execFileSync('git', ['-c', 'core.fsmonitor=false', ...args], { cwd: ws.path('.'), encoding: 'utf8' });
  git('init', '-q');
  git('-c', 'user.email=a@b', '-c', 'user.name=a', 'add', 'p.yaml', 'tracked.txt', '.gitattributes');
  git('-c', 'user.email=a@b', '-c', 'user.name=a', 'commit', '-qm', 'x');
  git('config', 'core.fsmonitor', `touch ${marks}/fsmonitor; echo`);
  git('config', 'filter.evil.clean', `touch ${marks}/filter; cat`);
  // Touched, same size and content: git would run the clean filter to compare.
  const later = Date.now() / 1000 + 5;
  utimesSync(ws.path('tracked.txt'), later, later);
  const r = ws.run('run', 'p.yaml', '--name', 'first');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(ws.run('exp', 'save', 'again', 'p.yaml').code, 0);
  const home = new Workspace();
  t.after(() => home.dispose());
  home.write('remote/.keep', '');
  assert.equal(ws.run('remote', 'add', 'origin', home.path('remote')).code, 0);
  assert.equal(ws.run('push', 'p.yaml').code, 0);
  ws.run('pull', 'p.yaml');
  assert.deepEqual(readdirSync(marks), [], 'no program of the repository ran');
  const show = JSON.parse(ws.run('exp', 'show', 'p.yaml', '--json').stdout) as { rows: Array<{ git?: { dirty: boolean } }> };
  assert.equal(show.rows[0]!.git!.dirty, false, 'touched but unchanged is clean');
  writeFileSync(ws.path('tracked.txt'), 'two\n');
  assert.equal(ws.run('run', 'p.yaml', '--force', 'make').code, 0);
  const dirty = JSON.parse(ws.run('exp', 'show', 'p.yaml', '--json').stdout) as { rows: Array<{ current: boolean; git?: { dirty: boolean } }> };
  assert.equal(dirty.rows.find((x) => x.current)!.git!.dirty, true, 'a changed tracked file is dirty');
  assert.deepEqual(readdirSync(marks), []);
});

test('an output hard-linked to a file outside the workspace is stored as a copy: the file keeps its mode and time, and the cache does not alias it', (t) => {
  const outside = join(tmpdir(), `pipeline-link-${process.pid}-${Date.now()}`);
  mkdirSync(outside);
  t.after(() => rmSync(outside, { recursive: true, force: true }));
  writeFileSync(join(outside, 'data.bin'), 'the user\'s dataset\n', { mode: 0o644 });
  utimesSync(join(outside, 'data.bin'), 1_600_000_000, 1_600_000_000);
  const ws = new Workspace({ 'p.yaml': `stages:\n  stage:\n    run: [sh, -c, 'mkdir -p "$0" && ln "$2" "$0/d.bin" && cp -al "$2" "$1"', '\${outputs.dir}', '\${outputs.file}', ${JSON.stringify(join(outside, 'data.bin'))}]\n    outs: { dir: out, file: f.bin }\n` });
  t.after(() => ws.dispose());
  const before = statSync(join(outside, 'data.bin'));
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 0, r.stderr);
  const now = statSync(join(outside, 'data.bin'));
  assert.equal(now.mode & 0o777, 0o644, 'mode untouched');
  assert.equal(now.mtimeMs, before.mtimeMs, 'time untouched');
  assert.equal(now.nlink, 1, 'nothing in the cache or the workspace shares its inode');
  assert.equal(ws.read('out/d.bin'), 'the user\'s dataset\n');
  assert.equal(ws.run('run', 'p.yaml').states.get('stage'), 'cached');
  // The user edits their file: the cache still holds what the stage stored.
  writeFileSync(join(outside, 'data.bin'), 'edited later\n');
  assert.equal(ws.run('verify').code, 0);
  assert.equal(ws.run('run', 'p.yaml', '--force', 'stage').code, 0);
});

test('a workspace folder named in a command\'s arguments is in its key: a file changed inside it reruns the stage, and status names the file', (t) => {
  const ws = new Workspace({ 'p.yaml': `stages:\n  copy:\n    run: [cp, -r, data/files, "\${outputs.o}"]\n    outs: { o: copied }\n`, 'data/files/a.txt': 'a\n', 'data/files/sub/b.txt': 'b\n' });
  t.after(() => ws.dispose());
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  assert.equal(ws.run('run', 'p.yaml').states.get('copy'), 'cached');
  writeFileSync(ws.path('data/files/sub/b.txt'), 'changed\n');
  const st = ws.run('status', 'p.yaml');
  assert.match(st.stdout, /copy\s+stale: input data\/files\/sub\/b\.txt changed/);
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.states.get('copy'), 'done');
  assert.equal(ws.read('copied/sub/b.txt'), 'changed\n');
});

test('remote names that are Object.prototype keys, and hand-edited remotes files, are said plainly (no internal error)', (t) => {
  const ws = new Workspace({ 'p.yaml': SPEC });
  t.after(() => ws.dispose());
  const home = new Workspace();
  t.after(() => home.dispose());
  home.write('remote/.keep', '');
  assert.equal(ws.run('remote', 'add', 'origin', home.path('remote')).code, 0);
  for (const name of ['constructor', 'toString', '__proto__', 'valueOf', 'hasOwnProperty']) {
    const push = ws.run('push', '--remote', name);
    assert.equal(push.code, 2, `${name}: ${push.stderr}`);
    assert.match(push.stderr, /no remote '.*' \(configured: origin/);
    const remove = ws.run('remote', 'remove', name);
    assert.equal(remove.code, 2, `${name}: ${remove.stdout}`);
    assert.doesNotMatch(remove.stdout, /removed/);
  }
  const file = ws.path('.pipeline/remotes.json');
  const good = ws.read('.pipeline/remotes.json');
  const edits: Array<[string, RegExp]> = [
    [JSON.stringify({ default: 'valueOf', remotes: { origin: { url: home.path('remote') } } }), /the default remote 'valueOf' is not among its remotes/],
    [JSON.stringify({ remotes: { origin: { url: 's3://bucket/x', endpoint: 'not a url' } } }), /remote 'origin': --endpoint 'not a url' is not a URL/],
    [JSON.stringify({ remotes: { __proto__x: { url: '/x' } } }), /is not a usable remote name/],
    [JSON.stringify({ remotes: { origin: { url: 'relative/path' } } }), /must be absolute/],
  ];
  for (const [text, why] of edits) {
    writeFileSync(file, text);
    const r = ws.run('push');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, why);
    assert.doesNotMatch(r.stderr, /internal error/);
  }
  writeFileSync(file, good);
  assert.equal(ws.run('push').code, 0);
});

test('the trust commands: remote key prints one stable key; trust refuses what is not a key; untrust of an unknown name is said', (t) => {
  const ws = new Workspace();
  t.after(() => ws.dispose());
  const cfg = ws.path('cfg');
  const run = (...args: string[]) => ws.runEnv({ XDG_CONFIG_HOME: cfg }, ...args);
  const k1 = run('remote', 'key').stdout.trim();
  assert.equal(run('remote', 'key').stdout.trim(), k1, 'made once, then read');
  assert.equal(statSync(join(cfg, 'rrtn-pipeline', 'signing-key.json')).mode & 0o777, 0o600);
  const bad = run('remote', 'trust', 'not-a-key');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /is not a public key: give it as NAME:BASE64/);
  const gone = run('remote', 'untrust', 'nobody');
  assert.equal(gone.code, 2);
  assert.match(gone.stderr, /no trusted key 'nobody'/);
  assert.match(run('remote', 'trust', k1).stdout, /that is your own key/);
  // A config folder that cannot be used (its parent is a file): one line saying what to do.
  ws.write('not-a-folder', '');
  const unusable = ws.runEnv({ XDG_CONFIG_HOME: ws.path('not-a-folder') }, 'remote', 'key');
  assert.equal(unusable.code, 2, unusable.stderr);
  assert.match(unusable.stderr, /cannot use .*not-a-folder\/rrtn-pipeline \(ENOTDIR\).*set XDG_CONFIG_HOME to a folder of your own/);
});

test('remote verify: an index lying about a good pack condemns that run, not the pack; --repair sends the run again and keeps the pack\'s list', async (t) => {
  const { remote, a, key } = await pushedToTrusting(t);
  const idxFile = remote(`packs/${key}.idx`);
  const idx = JSON.parse(readFileSync(idxFile, 'utf8')) as { objects: Array<[string, string, number, number]> };
  // The first object said to be one byte further on in the same, intact pack.
  writeFileSync(idxFile, JSON.stringify({ objects: idx.objects.map((e, i) => (i === 0 ? [e[0], e[1], e[2] + 1, e[3]] : e)) }));
  const v = a.run('remote', 'verify');
  assert.equal(v.code, 1);
  assert.match(v.stdout, /1 runs cannot be served, 0 loose objects, 0 packs and 0 file lists damaged/);
  const lists = () => readdirSync(remote('packs')).filter((f) => f.endsWith('.list')).sort();
  const before = lists();
  const repair = a.run('remote', 'verify', '--repair');
  assert.match(repair.stdout, /repaired: 1 run sent again from this cache; 0 records removed/);
  assert.deepEqual(lists().filter((l) => before.includes(l)), before, 'the intact pack keeps its list');
  assert.match(a.run('remote', 'verify').stdout, /all intact/);
});
