// The remote cache through the real CLI, on a plain folder and on a real S3 server on 127.0.0.1
// (s3rver): one workspace runs and pushes, a second (its own cache, another folder: another
// machine) pulls and is served without computing; `run --pull` computes only what the remote
// lacks; what the remote holds damaged is refused and named, never served; a push killed part-way
// leaves no run visible; two pushes at once corrupt nothing; credentials are never written.
import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { startS3, type S3Server } from './helpers/s3.ts';
import { Workspace, type CliResult } from './helpers/workspace.ts';

/** Three stages: a folder output, a file output of `size` random bytes, and one reading both (published). */
const SPEC = (size: number) => `params: { tag: a, size: ${size} }
stages:
  make:
    run: [sh, -c, 'mkdir -p "$0" && for i in 1 2 3; do echo "file $i $1" > "$0/f$i.txt"; done', '\${outputs.data}', '\${params.tag}']
    outs: { data: null }
  big:
    run: [sh, -c, 'head -c "$1" /dev/urandom > "$0"', '\${outputs.blob}', '\${params.size}']
    outs: { blob: null }
  sum:
    run: [sh, -c, 'cat "$1"/f*.txt > "$0" && cksum < "$2" >> "$0"', '\${outputs.total}', '\${stages.make.outputs.data}', '\${stages.big.outputs.blob}']
    outs: { total: results/total.txt }
`;

let s3: S3Server;
before(async () => {
  s3 = await startS3(['cache']);
});
after(async () => {
  await s3?.stop();
});

/** Two machines: workspaces with the same spec, each with its own cache, sharing a remote (`another` makes one more). */
function machines(t: { after(f: () => void): void }, kind: 'folder' | 's3', size = 4096, prefix = `p${Math.random().toString(36).slice(2, 8)}/a b+c`) {
  const remoteDir = new Workspace();
  t.after(() => remoteDir.dispose());
  const env = kind === 's3' ? s3.env : {};
  const url = kind === 's3' ? `s3://cache/${prefix}` : remoteDir.path('remote');
  if (kind === 'folder') remoteDir.write('remote/.keep', '');
  const another = (spec = SPEC(size)): Workspace => {
    const w = new Workspace({ 'p.yaml': spec });
    t.after(() => w.dispose());
    const add = w.runEnv(env, 'remote', 'add', 'origin', url, ...(kind === 's3' ? ['--endpoint', s3.endpoint] : []));
    assert.equal(add.code, 0, add.stderr);
    return w;
  };
  const a = another();
  const b = another();
  const run = (w: Workspace, ...args: string[]): CliResult => w.runEnv(env, ...args);
  /** The remote's files: name -> path (s3rver keeps an object's bytes in `<name>._S3rver_object`). */
  const files = (): Map<string, string> => {
    const root = kind === 's3' ? join(s3.dir, 'cache', prefix) : remoteDir.path('remote');
    const out = new Map<string, string>();
    const walk = (dir: string, rel: string) => {
      if (!existsSync(dir)) return;
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(dir, e.name), `${rel}${e.name}/`);
        else if (kind === 'folder' || e.name.endsWith('._S3rver_object')) out.set(`${rel}${e.name.replace(/\._S3rver_object$/, '')}`, join(dir, e.name));
      }
    };
    walk(root, '');
    return out;
  };
  return { a, b, another, run, files, env };
}

for (const kind of ['folder', 's3'] as const) {
  test(`${kind} remote: push from one machine, pull on another: served without computing, outputs identical; a second push sends nothing`, (t) => {
    // On S3 the 20 MB output goes up in parts (multipart from 16 MiB).
    const { a, b, run, files } = machines(t, kind, kind === 's3' ? 20_000_000 : 4096);
    assert.equal(run(a, 'run', 'p.yaml').code, 0);
    const push = run(a, 'push', 'p.yaml');
    assert.equal(push.code, 0, push.stderr);
    assert.match(push.stdout, /push to origin: 3 runs sent \(\d+ objects, /);
    // The progress line (every 2 s off a terminal, and at the end): files, bytes of the total, rate.
    assert.match(push.stderr, /^push to .*: (\d+)\/\1 files, [\d.]+ [kM]?B of [\d.]+ [kM]?B 100%, [\d.]+ [kM]?B\/s$/m);
    const names = [...files().keys()];
    assert.equal(names.filter((n) => n.startsWith('runs/')).length, 3);
    assert.ok(names.some((n) => n.startsWith('manifests/')), 'the folder output\'s file list went too');
    const again = run(a, 'push', 'p.yaml');
    assert.equal(again.code, 0);
    assert.match(again.stdout, /nothing new \(3 runs already there\)/);

    const pull = run(b, 'pull', 'p.yaml');
    assert.equal(pull.code, 0, pull.stderr);
    assert.deepEqual([...pull.states.values()], ['pulled', 'pulled', 'pulled']);
    assert.match(pull.stderr, /  big: 100% pull from .*: 1\/1 files, [\d.]+ [kM]?B of [\d.]+ [kM]?B, [\d.]+ [kM]?B\/s$/m, 'each stage\'s fetch shows on its line');
    assert.equal(b.read('results/total.txt'), a.read('results/total.txt'), 'the published output arrived');
    const rerun = run(b, 'run', 'p.yaml');
    assert.equal(rerun.code, 0);
    assert.deepEqual([...rerun.states.values()], ['cached', 'cached', 'cached']);
    // Every object B holds is byte for byte A's (the 20 MB one included).
    const objects = (w: Workspace) => readdirSync(w.path('cache/objects'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(w.path('cache/objects').length)).sort();
    assert.deepEqual(objects(b), objects(a));
    for (const o of objects(a)) assert.ok(readFileSync(a.path(`cache/objects${o}`)).equals(readFileSync(b.path(`cache/objects${o}`))), o);
    if (kind === 's3') assert.ok(objects(a).some((o) => statSync(a.path(`cache/objects${o}`)).size === 20_000_000), 'the 20 MB object made the trip');
  });
}

test('run --pull fetches what the remote has and computes only the rest; without a remote entry, what to do', (t) => {
  const { a, b, run } = machines(t, 's3');
  assert.equal(run(a, 'run', 'p.yaml', 'make').code, 0);
  const partial = run(a, 'push', 'p.yaml');
  assert.equal(partial.code, 0, partial.stderr);
  assert.match(partial.stdout, /1 run sent/);
  assert.match(partial.stdout, /not pushed: big, sum \(stale: no run of the spec as it is now; run it first\)/);
  assert.match(run(a, 'push').stdout, /nothing new \(1 run already there\)/, 'push without a spec: every run of the cache');
  const r = run(b, 'run', '--pull', 'p.yaml');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(Object.fromEntries(r.states), { make: 'pulled', big: 'done', sum: 'done' });
  assert.match(r.stdout, /3 stages: .*1 pulled/);
  const lone = new Workspace({ 'p.yaml': SPEC(10) });
  t.after(() => lone.dispose());
  const none = lone.run('pull', 'p.yaml');
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no remote is configured: add one with `pipeline remote add origin/);
  const unknown = run(b, 'push', '--remote', 'elsewhere');
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /no remote 'elsewhere' \(configured: origin/);
  // pull on a spec whose stages the remote lacks: nothing computed, each named.
  b.write('q.yaml', SPEC(10).replace('tag: a', 'tag: q'));
  const lacking = run(b, 'pull', 'q.yaml');
  assert.equal(lacking.code, 1);
  assert.equal(lacking.states.get('make'), 'not');
  assert.match(lacking.stderr, /not on origin: make, big \(and what needs them\)/);
  assert.ok(!b.exists('q-results'), 'nothing computed');
});

for (const kind of ['folder', 's3'] as const) {
test(`${kind} remote: what it holds damaged is refused and named, never served: an object, a run record; run --pull computes instead`, (t) => {
  // big's 2 MB output goes loose (packs take objects up to 1 MiB).
  const { a, b, another, run, files, env } = machines(t, kind, 2_000_000);
  assert.equal(run(a, 'run', 'p.yaml').code, 0);
  assert.equal(run(a, 'push', 'p.yaml').code, 0);
  // One of make's files (small: sent in a pack) and big's one file (sent loose), each rewritten
  // on the remote with other bytes of the same length.
  const recOf = (stage: string) => JSON.parse(a.read(`cache/runs/${readdirSync(a.path('cache/runs')).find((f) => a.read(`cache/runs/${f}`).includes(`"stage":"${stage}"`))}`));
  const rec = recOf('make');
  const manifest = JSON.parse(a.read(`cache/manifests/${rec.outputs.data.digest}.json`)) as Array<{ digest: string }>;
  const victim = `objects/${manifest[0]!.digest.slice(0, 2)}/${manifest[0]!.digest.slice(2)}`;
  const index = JSON.parse(readFileSync(files().get(`packs/${rec.key}.idx`)!, 'utf8')) as { objects: Array<[string, string, number, number]> };
  const [, packDigest, offset] = index.objects.find(([d]) => d === manifest[0]!.digest)!;
  const pack = files().get(`packs/${packDigest}.pack`)!;
  assert.ok(pack && !files().has(victim), 'make\'s small files went in a pack');
  const packed = readFileSync(pack);
  assert.equal(packed.subarray(offset, offset + 8).toString(), 'file 1 a', 'the index says where');
  packed[offset] = 'F'.charCodeAt(0);
  writeFileSync(pack, packed);
  const blob = recOf('big').outputs.blob.digest as string;
  const loose = files().get(`objects/${blob.slice(0, 2)}/${blob.slice(2)}`)!;
  const bytes = readFileSync(loose);
  bytes[100] ^= 0xff;
  writeFileSync(loose, bytes);
  const pull = run(b, 'pull', 'p.yaml');
  assert.equal(pull.code, 1);
  assert.match(pull.stderr, new RegExp(`${victim} in packs/${packDigest}\\.pack on .* does not match its digest`));
  assert.match(pull.stderr, new RegExp(`objects/${blob.slice(0, 2)}/${blob.slice(2)} on .* does not match its digest \\(2000000 bytes, 2000000 recorded\\): refused`));
  assert.deepEqual([...pull.states.values()], ['not', 'not', 'not'], 'refused: not served');
  assert.ok(!existsSync(b.path(`cache/runs/${rec.key}.json`)), 'no record of a refused run');
  assert.ok(!b.exists('results/total.txt'), 'nothing published from a refused run');
  const computed = run(b, 'run', '--pull', 'p.yaml');
  assert.equal(computed.code, 0, computed.stderr);
  assert.deepEqual(Object.fromEntries(computed.states), { make: 'done', big: 'done', sum: 'done' });
  assert.match(computed.stderr, /make: refused what origin holds: .* does not match its digest.*; computing it here/);
  assert.match(b.read('results/total.txt'), /^file 1 a\nfile 2 a\nfile 3 a\n/);

  // A run record edited on the remote (its seal no longer matches) is refused too.
  const c = another();
  const recFile = files().get(`runs/${rec.key}.json`)!;
  writeFileSync(recFile, readFileSync(recFile, 'utf8').replace('"durationMs":', '"durationMs":1'));
  const tampered = c.runEnv(env, 'pull', 'p.yaml');
  assert.equal(tampered.code, 1);
  assert.match(tampered.stderr, new RegExp(`runs/${rec.key}\\.json is damaged \\(its seal or shape is wrong\\)`));
});
}

test('small objects travel in packs: a run pulled alone finds the objects it shares with another run, by its own index', (t) => {
  const { a, b, another, run, files } = machines(t, 'folder');
  const twins = `stages:
  x:
    run: [sh, -c, 'mkdir -p "$0" && for i in 1 2 3 4; do echo "shared $i" > "$0/s$i.txt"; done', '\${outputs.d}']
    outs: { d: null }
  y:
    run: [sh, -c, 'mkdir -p "$0" && for i in 1 2 3 4; do echo "shared $i" > "$0/s$i.txt"; done && echo own > "$0/own.txt"', '\${outputs.d}']
    outs: { d: out/y }
`;
  for (const w of [a, b]) w.write('p.yaml', twins);
  assert.equal(run(a, 'run', 'p.yaml').code, 0);
  const push = run(a, 'push', 'p.yaml');
  assert.equal(push.code, 0, push.stderr);
  assert.match(push.stdout, /2 runs sent \(5 objects, /, 'the shared files once');
  const names = [...files().keys()];
  assert.equal(names.filter((n) => n.endsWith('.pack')).length, 1);
  assert.equal(names.filter((n) => n.startsWith('objects/')).length, 0, 'no loose object');
  const pull = run(b, 'pull', 'p.yaml', 'y');
  assert.equal(pull.code, 0, pull.stderr);
  assert.deepEqual(Object.fromEntries(pull.states), { y: 'pulled' });
  assert.equal(b.read('out/y/s3.txt'), 'shared 3\n');
  assert.equal(b.read('out/y/own.txt'), 'own\n');

  // A later run with the same shared files: a later push sends only its own file, and its index
  // points at the earlier pack, where a pull of it alone finds them.
  const more = `${twins}  z:
    run: [sh, -c, 'mkdir -p "$0" && for i in 1 2 3 4; do echo "shared $i" > "$0/s$i.txt"; done && echo z > "$0/z.txt"', '\${outputs.d}']
    outs: { d: out/z }
`;
  for (const w of [a, b]) w.write('p.yaml', more);
  assert.equal(run(a, 'run', 'p.yaml').code, 0);
  const later = run(a, 'push', 'p.yaml');
  assert.equal(later.code, 0, later.stderr);
  assert.match(later.stdout, /1 run sent \(1 objects, 2 B,/, 'only z.txt');
  const c = another(more);
  const alone = c.run('pull', 'p.yaml', 'z');
  assert.equal(alone.code, 0, alone.stderr);
  assert.equal(c.read('out/z/s4.txt'), 'shared 4\n');
  assert.equal(c.read('out/z/z.txt'), 'z\n');
});

test('a push killed part-way leaves no run visible on the remote; the next push completes it', async (t) => {
  const { a, b, run, files, env } = machines(t, 's3', 60_000_000);
  assert.equal(run(a, 'run', 'p.yaml').code, 0);
  const push = a.startEnv(env, 'push', 'p.yaml', '--jobs', '2');
  // Killed once the first object has landed, while the 60 MB one is still going up.
  for (let i = 0; i < 600 && ![...files().keys()].some((n) => n.startsWith('objects/') || n.startsWith('packs/')); i++) await delay(20);
  process.kill(-push.child.pid!, 'SIGKILL');
  const killed = await push.done;
  assert.equal(killed.code, 137, `the push was still going when killed: ${killed.stdout}`);
  assert.ok([...files().keys()].some((n) => n.startsWith('objects/') || n.startsWith('packs/')), 'the push had begun');
  assert.deepEqual([...files().keys()].filter((n) => n.startsWith('runs/')), [], 'no record before everything it names');
  const early = run(b, 'pull', 'p.yaml');
  assert.doesNotMatch(early.stderr, /refused|is missing on/);
  assert.equal(early.states.get('make'), 'not');
  const resumed = run(a, 'push', 'p.yaml');
  assert.equal(resumed.code, 0, resumed.stderr);
  const pull = run(b, 'pull', 'p.yaml');
  assert.equal(pull.code, 0, pull.stderr);
  assert.equal(b.read('results/total.txt'), a.read('results/total.txt'));
});

for (const kind of ['folder', 's3'] as const) {
  test(`${kind} remote: two machines pushing the same results at once corrupt nothing`, async (t) => {
    const { a, b, another, run, env } = machines(t, kind, 3_000_000);
    assert.equal(run(a, 'run', 'p.yaml').code, 0);
    // A second machine with the same results: a copy of A's cache (same keys, same bytes).
    const c = another();
    cpSync(a.path('cache'), c.path('cache'), { recursive: true, preserveTimestamps: true });
    const [one, two] = await Promise.all([a.startEnv(env, 'push', '--jobs', '4').done, c.startEnv(env, 'push', '--jobs', '3').done]);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(two.code, 0, two.stderr);
    const pull = run(b, 'pull', 'p.yaml');
    assert.equal(pull.code, 0, pull.stderr);
    assert.deepEqual([...pull.states.values()], ['pulled', 'pulled', 'pulled']);
    assert.equal(b.read('results/total.txt'), a.read('results/total.txt'));
  });
}

test('credentials come from the AWS environment only: never in the config, the cache or the output; a refused one is said so', (t) => {
  const { a, run } = machines(t, 's3');
  assert.equal(run(a, 'run', 'p.yaml').code, 0);
  const push = run(a, 'push', 'p.yaml');
  assert.equal(push.code, 0);
  const pull = run(a, 'pull');
  assert.equal(pull.code, 0);
  const secret = s3.env.AWS_SECRET_ACCESS_KEY!;
  for (const r of [push, pull]) assert.ok(!(r.stdout + r.stderr).includes(secret), 'the secret in the output');
  const everything = readdirSync(a.dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
  for (const e of everything) assert.ok(!readFileSync(join(e.parentPath, e.name)).includes(secret), `${e.name} holds the secret`);
  const wrong = a.runEnv({ ...s3.env, AWS_ACCESS_KEY_ID: 'AKIAWRONGKEY', AWS_SECRET_ACCESS_KEY: 'not-the-secret-0f3a' }, 'push', 'p.yaml');
  assert.equal(wrong.code, 1, wrong.stderr);
  assert.match(wrong.stderr, /the server refused the credentials \(InvalidAccessKeyId\)/);
  assert.ok(!wrong.stderr.includes('not-the-secret-0f3a'), 'the secret in the error');
  const badSecret = a.runEnv({ ...s3.env, AWS_SECRET_ACCESS_KEY: 'not-the-secret-0f3a' }, 'push', 'p.yaml');
  assert.equal(badSecret.code, 1, badSecret.stderr);
  assert.match(badSecret.stderr, /the server refused the credentials \(SignatureDoesNotMatch\)/);
  assert.ok(!badSecret.stderr.includes('not-the-secret-0f3a'), 'the secret in the error');
  const home = new Workspace();
  t.after(() => home.dispose());
  const none = a.runEnv({ AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_PROFILE: undefined, HOME: home.dir, AWS_EC2_METADATA_DISABLED: 'true' }, 'push', 'p.yaml');
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no AWS credentials were found: set AWS_ACCESS_KEY_ID/);
  const inUrl = a.run('remote', 'add', 'leaky', 's3://AKIA:secret@cache/x');
  assert.equal(inUrl.code, 2);
  assert.match(inUrl.stderr, /names credentials/);
  const inEndpoint = a.run('remote', 'add', 'leaky', 's3://cache/x', '--endpoint', 'http://AKIA:secret@127.0.0.1:1');
  assert.equal(inEndpoint.code, 2);
  assert.match(inEndpoint.stderr, /--endpoint must not carry credentials/);
  assert.equal(a.run('remote', 'add', 'gone', 's3://cache/x', '--endpoint', 'http://127.0.0.1:9').code, 0);
  const down = a.runEnv(s3.env, 'push', 'p.yaml', '--remote', 'gone');
  assert.equal(down.code, 1);
  assert.match(down.stderr, /cannot reach http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\): is the server up/);
});

/** A stage that writes one series row per epoch and waits at epoch 2 until `gate` exists, then its metrics. */
const TRAIN = (gate: string, lr = 0.1) => `params: { lr: ${lr} }
stages:
  train:
    run: [sh, -c, 'mkdir -p "$0"; for e in 1 2 3; do printf "{\\"epoch\\": %s, \\"loss\\": 0.%s}\\n" $e $e >> "$0/curve.jsonl"; if [ $e = 2 ]; then while [ ! -e "$1" ]; do sleep 0.05; done; fi; done; printf "{\\"ccc\\": %s}" "$2" > "$0/m.json"', '\${outputs.result}', '${gate}', '\${params.lr}']
    outs: { result: null }
    metrics: [result/m.json]
    plots: [result/curve.jsonl]
`;

test('exp push / exp pull share named experiments: the name arrives with its runs, exp show lists them, gc keeps them', (t) => {
  const { a, b, run } = machines(t, 's3');
  for (const w of [a, b]) w.write('p.yaml', TRAIN('/', 0.25));
  const named = run(a, 'run', '--name', 'best', 'p.yaml');
  assert.equal(named.code, 0, named.stderr);
  // --remote and -j as the help gives them (exp's own options are show's; push and pull have theirs).
  const push = run(a, 'exp', 'push', 'best', '--remote', 'origin', '-j', '4');
  assert.equal(push.code, 0, push.stderr);
  assert.match(push.stdout, /pushed experiment 'best' to origin: 1 runs \(1 sent/);
  const missing = run(b, 'exp', 'pull', 'nosuch');
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /origin has no experiment 'nosuch'/);
  const pull = run(b, 'exp', 'pull', '-r', 'origin');
  assert.equal(pull.code, 0, pull.stderr);
  assert.match(pull.stdout, /pulled experiment 'best' \(p\.yaml, saved .*\): 1 runs, 1 fetched/);
  const gc = run(b, 'gc');
  assert.equal(gc.code, 0, gc.stderr);
  const show = run(b, 'exp', 'show', 'p.yaml', '--json');
  assert.equal(show.code, 0, show.stderr);
  const rows = (JSON.parse(show.stdout) as { rows: Array<{ names: string[]; metrics: Record<string, number>; current: boolean }> }).rows;
  assert.equal(rows.length, 1);
  assert.deepEqual(rows[0]!.names, ['best']);
  assert.equal(rows[0]!.metrics.ccc, 0.25);
  assert.equal(rows[0]!.current, true, 'the same spec on the other machine is served from the pulled run');
  assert.deepEqual([...run(b, 'run', 'p.yaml').states.values()], ['cached']);
});

test('exp show --live shows a stage while it runs: its series so far, then its metrics once done', async (t) => {
  const ws = new Workspace();
  t.after(() => ws.dispose());
  const gate = ws.path('gate');
  ws.write('p.yaml', TRAIN(gate));
  const running = ws.start('run', 'p.yaml');
  t.after(() => { try { process.kill(-running.child.pid!, 'SIGKILL'); } catch { /* ended */ } });
  let seen = '';
  for (let i = 0; i < 400 && !/epoch 2, loss 0\.2/.test(seen); i++) {
    await delay(50);
    seen = ws.run('exp', 'show', 'p.yaml', '--live').stdout;
  }
  assert.match(seen, /^\w{8} \(running\)\s+train\s.*running since \d\d:\d\d:\d\d: epoch 2, loss 0\.2$/m);
  assert.match(ws.run('exp', 'show', 'p.yaml').stdout, /no recorded runs/, 'without --live: recorded runs only');
  writeFileSync(gate, '');
  assert.equal((await running.done).code, 0);
  const after = ws.run('exp', 'show', 'p.yaml', '--live');
  assert.doesNotMatch(after.stdout, /\(running\)/);
  assert.match(after.stdout, /no stage of this spec is running now/);
  assert.match(after.stdout, /train\s.*0\.1 \*/);
});
