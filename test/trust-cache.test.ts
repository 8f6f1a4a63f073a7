// Trust, the cache: damaged objects, manifests, records, indexes, snapshots and memos are detected
// and rebuilt, never served; what a command reads through its shell enters its key.
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { numbersWorkspace, outputStage } from './helpers/fixtures.ts';
import { aged, ran, waitFor, Workspace } from './helpers/workspace.ts';

/** Every file under a cache subfolder, recursively. */
function files(ws: Workspace, sub: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) (e.isDirectory() ? walk : (p: string) => out.push(p))(join(d, e.name));
  };
  walk(ws.path(`cache/${sub}`));
  return out;
}

/** The object holding a given content. */
function objectWith(ws: Workspace, content: string): string {
  const hit = files(ws, 'objects').find((f) => readFileSync(f, 'utf8') === content);
  assert.ok(hit, `an object holds ${JSON.stringify(content)}`);
  return hit;
}

test('a damaged object is never served: truncated with its mtime put back, or rewritten at the same size (found by verify)', (t) => {
  const ws = numbersWorkspace();
  t.after(() => ws.dispose());
  assert.equal(ws.run('run', 'pipeline.yaml').code, 0);
  const obj = objectWith(ws, '2.00\n4.00\n6.00\n');
  const { atime, mtime } = statSync(obj);
  truncateSync(obj, 5);
  utimesSync(obj, atime, mtime);
  const st = ws.run('status', 'pipeline.yaml');
  assert.match(st.stdout, /scale\s+stale: outputs missing from the cache, or damaged there/);
  const r = ws.run('run', 'pipeline.yaml');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(ran(r).includes('scale'), "ran(r).includes('scale')");
  assert.equal(ws.read('results/total.txt'), '12');
  assert.equal(readFileSync(objectWith(ws, '2.00\n4.00\n6.00\n'), 'utf8'), '2.00\n4.00\n6.00\n');

  // Same size, mtime put back: only the content check sees it.
  const again = objectWith(ws, '2.00\n4.00\n6.00\n');
  const s2 = statSync(again);
  writeFileSync(again, '9.00\n9.00\n9.00\n');
  utimesSync(again, s2.atime, s2.mtime);
  const verify = ws.run('verify');
  assert.equal(verify.code, 1);
  assert.match(verify.stdout, /verify: \d+ objects checked, 1 corrupt and removed/);
  const r2 = ws.run('run', 'pipeline.yaml');
  assert.ok(ran(r2).includes('scale'), "ran(r2).includes('scale')");
  assert.equal(ws.read('results/total.txt'), '12');
  assert.match(ws.run('verify').stdout, /, 0 corrupt/);
});

test('run --verify rehashes what it would serve', (t) => {
  const ws = numbersWorkspace();
  t.after(() => ws.dispose());
  assert.equal(ws.run('run', 'pipeline.yaml').code, 0);
  const obj = objectWith(ws, '12');
  const s = statSync(obj);
  writeFileSync(obj, '99');
  utimesSync(obj, s.atime, s.mtime);
  assert.deepEqual(ran(ws.run('run', 'pipeline.yaml', '--verify')), ['sum']);
  assert.equal(ws.read('results/total.txt'), '12');
});

test('damaged engine state is dropped with one line and rebuilt: manifests, run records, indexes, snapshots, memos, digest state, compiled modules', async (t) => {
  const ws = new Workspace({
    'p.yaml': `stages:\n  dir:\n    run: [sh, -c, 'mkdir "$0" && echo 1 > "$0"/a && echo 2 > "$0"/b', "\${outputs.d}"]\n    outs: { d: out }\n  mod:\n    uses: stages/m.ts\n    inputs: { d: "\${stages.dir.outputs.d}" }\n`,
    'stages/m.ts': `import { readdirSync, writeFileSync } from 'node:fs';\nimport { defineStage } from 'rrtn-pipeline';\nexport default defineStage({ params: {}, outputs: ['n'], async run(ctx) { writeFileSync(ctx.outputs.n, String(readdirSync(ctx.inputs.d as string).length)); } });\n`,
  });
  t.after(() => ws.dispose());
  // Files written just now are not trusted by signature: age them, so the no-op snapshot is written.
  for (const f of ['p.yaml', 'stages/m.ts']) utimesSync(ws.path(f), Date.now() / 1000 - 60, Date.now() / 1000 - 60);
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  const damage: Array<[string, () => void, RegExp]> = [
    ['a folder manifest emptied', () => files(ws, 'manifests').forEach((f) => writeFileSync(f, '[]')), /dropped a corrupt folder manifest/],
    // (A hit is served from the sealed latest-run index when it has the key: it goes, so records are read.)
    ['run records replaced by {}', () => [...files(ws, 'runs'), ...files(ws, 'latest')].forEach((f) => writeFileSync(f, f.includes('/runs/') ? '{}' : '')), /dropped a corrupt run record/],
    ['a run record edited into something plausible', () => [...files(ws, 'runs'), ...files(ws, 'latest')].forEach((f) => writeFileSync(f, f.includes('/runs/') ? readFileSync(f, 'utf8').replace('"durationMs":', '"durationMs":1') : '')), /dropped a corrupt run record/],
    ['the latest-run index', () => files(ws, 'latest').forEach((f) => writeFileSync(f, '[1,2')), /./],
    ['the no-op snapshot', () => files(ws, 'snapshots').forEach((f) => writeFileSync(f, '{}')), /dropped a corrupt no-op snapshot/],
    ['the digest state', () => writeFileSync(ws.path('cache/state.json'), readFileSync(ws.path('cache/state.json'), 'utf8').replace(/"[0-9a-f]{32}"/, '"00000000000000000000000000000000"')), /dropped a corrupt digest state file/],
    ['the spec memos', () => files(ws, 'specs').forEach((f) => writeFileSync(f, '{"value":{}}')), /./],
    ['a compiled stage module', () => files(ws, 'modules').filter((f) => f.endsWith('stage.mjs')).forEach((f) => appendFileSync(f, '\nthrow new Error("damaged");\n')), /dropped a damaged compiled stage module/],
  ];
  for (const [what, hurt, said] of damage) {
    hurt();
    // (State the no-op fast path does not read is checked by the normal path: naming a stage takes it.)
    const r = /manifest|record|index|snapshot/.test(what) ? ws.run('run', 'p.yaml') : ws.run('run', 'p.yaml', 'mod');
    assert.equal(r.code, 0, `${what}: ${r.stderr}`);
    assert.match(r.stderr, said, what);
    assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
    assert.deepEqual(readdirSync(ws.path('out')).sort(), ['a', 'b'], what);
    assert.equal(ws.run('run', 'p.yaml').code, 0, `${what}: the rebuilt state is good`);
  }
});

test('what a command reads through its shell enters its key: $VARS from the environment, scripts inside sh -c', (t) => {
  const ws = new Workspace({
    'train.sh': 'echo "lr=$LR"\n',
    'p.yaml': `stages:\n  train:\n    run: [sh, -c, 'sh train.sh > "$0"', "\${outputs.o}"]\n    outs: { o: out.txt }\n`,
  });
  t.after(() => ws.dispose());
  const run = (lr: string | undefined) => {
    const r = ws.runEnv({ LR: lr }, 'run', 'p.yaml');
    assert.equal(r.code, 0, r.stderr);
    return r;
  };
  ws.write('p.yaml', `stages:\n  train:\n    run: [sh, -c, 'LR=$LR sh train.sh > "$0"', "\${outputs.o}"]\n    outs: { o: out.txt }\n`);
  assert.deepEqual(ran(run('0.1')), ['train']);
  assert.equal(ws.read('out.txt'), 'lr=0.1\n');
  assert.deepEqual(ran(run('0.1')), []);
  const st = ws.runEnv({ LR: '0.2' }, 'status', 'p.yaml');
  assert.match(st.stdout, /train\s+stale: env \$LR read by the command '0\.1' -> '0\.2'/);
  assert.deepEqual(ran(run('0.2')), ['train']);
  assert.equal(ws.read('out.txt'), 'lr=0.2\n');
  assert.deepEqual(ran(run(undefined)), ['train'], 'unset counts as a value too');
  // The script the shell line starts is code: editing it reruns the stage.
  ws.write('train.sh', 'echo "learning rate $LR"\n');
  assert.match(ws.runEnv({ LR: undefined }, 'status', 'p.yaml').stdout, /train\s+stale: file train\.sh changed/);
  assert.deepEqual(ran(run(undefined)), ['train']);
});

test('version: takes references; non-finite numbers are never confused with null', (t) => {
  const ws = new Workspace({ 'p.yaml': `params:\n  v: 1\nstages:\n  a:\n    run: [sh, -c, 'echo x > "$0"', "\${outputs.o}"]\n    outs: { o: null }\n    version: "\${params.v}"\n` });
  t.after(() => ws.dispose());
  assert.deepEqual(ran(ws.run('run', 'p.yaml')), ['a']);
  assert.match(ws.run('status', 'p.yaml', '--set', 'v=2').stdout, /a\s+stale: version 1 -> 2/);
  // seed: .inf is checked (and refused) first; seed: null must not pass on the memo of that check.
  for (const seed of ['.inf', 'null', '.nan']) {
    ws.write('q.yaml', `seed: ${seed}\nstages:\n  a:\n    run: [echo]\n`);
    const r = ws.run('validate', 'q.yaml');
    assert.equal(r.code, 2, `seed: ${seed} must be refused`);
    assert.match(r.stderr, /q\.yaml:1:7: seed: must be /);
  }
  // A param of .inf reaches the stage as Infinity (not null) on every run, memo or not.
  ws.write('r.yaml', `params:\n  x: .inf\nstages:\n  a:\n    shell: true\n    run: echo \${params.x} > \${outputs.o}\n    outs: { o: r.txt }\n`);
  for (let i = 0; i < 2; i++) {
    assert.equal(ws.run('run', 'r.yaml').code, 0);
    assert.equal(ws.read('r.txt'), 'null\n'.replace('null', 'Infinity'));
  }
});

test('two stages with byte-identical outputs share one object, and editing a published copy settles in one run', (t) => {
  const stage = (name: string) => `  ${name}:\n    run: [sh, -c, 'echo same > "$0"; echo ${name} > /dev/null', "\${outputs.o}"]\n    outs: { o: out/${name}.txt }\n`;
  const ws = new Workspace({ 'p.yaml': `stages:\n${stage('a')}${stage('b')}` });
  t.after(() => ws.dispose());
  assert.deepEqual(ran(ws.run('run', 'p.yaml')), ['a', 'b']);
  assert.equal(files(ws, 'objects').length, 1, 'one object for both outputs');
  assert.deepEqual(ran(ws.run('run', 'p.yaml')), []);
  writeFileSync(ws.path('out/a.txt'), 'edited\n');
  const r = ws.run('run', 'p.yaml');
  assert.deepEqual(ran(r), [], 'neither stage reruns: the cache was never touched');
  assert.equal(ws.read('out/a.txt'), 'same\n');
  for (let i = 0; i < 2; i++) assert.deepEqual([...ws.run('run', 'p.yaml').states.values()], ['cached', 'cached'], 'settled');
  // A stage rerun (forced) rewrites the shared object: the other stage stays cached.
  assert.deepEqual(ran(ws.run('run', 'p.yaml', '--force', 'a')), ['a']);
  assert.deepEqual([...ws.run('run', 'p.yaml').states.values()], ['cached', 'cached']);
});

test('every form of code a stage module uses is in its key: an edit of each reruns exactly its stage with the new code', (t) => {
  const stage = outputStage;
  const write = (expr: string) => `  writeFileSync(ctx.outputs.o, String(${expr}));`;
  const ws = new Workspace({
    'stages/dyn.ts': stage(`  const { v } = await import(\`./lib/dyn.ts\`);\n${write('v')}`),
    'stages/lib/dyn.ts': "export const v = 'dyn-1';\n",
    'stages/tsx.ts': stage(write('v'), "import { v } from './lib/tsxh';"),
    'stages/lib/tsxh.tsx': "export const v: string = 'tsx-1';\n",
    'stages/jsx.ts': stage(write('v'), "import { v } from './lib/jsxh';"),
    'stages/lib/jsxh.jsx': "export const v = 'jsx-1';\n",
    'stages/json.ts': stage(write('data.v'), "import data from './lib/data.json';"),
    'stages/lib/data.json': '{ "v": "json-1" }\n',
    'stages/comment.ts': stage(write('v + pattern.length'), "const pattern = '/*';\nimport { v } from './lib/after.ts';\nconst end = '*/';\nvoid end;"),
    'stages/lib/after.ts': "export const v = 'after-1';\n",
    'stages/asset.ts': stage(write("readFileSync(new URL('./lib/table.txt', import.meta.url), 'utf8').trim()"), "import { readFileSync } from 'node:fs';"),
    'stages/lib/table.txt': 'asset-1\n',
    'stages/linked.ts': stage(write('v'), "import { v } from 'mylib';"),
    'mylib/package.json': '{ "name": "mylib", "version": "1.0.0", "type": "module", "main": "index.js" }\n',
    'mylib/index.js': "export const v = 'linked-1';\n",
    'stages/declared.ts': stage(write("readFileSync(ctx.workspace + '/config/opts.txt', 'utf8').trim()"), "import { readFileSync } from 'node:fs';"),
    'config/opts.txt': 'declared-1\n',
  });
  t.after(() => ws.dispose());
  mkdirSync(ws.path('node_modules'));
  symlinkSync('../mylib', ws.path('node_modules/mylib')); // as `npm install ../mylib` leaves it
  const names = ['dyn', 'tsx', 'jsx', 'json', 'comment', 'asset', 'linked', 'declared'];
  ws.write('p.yaml', `stages:\n${names.map((n) => `  ${n}:\n    uses: stages/${n}.ts\n    outs: { o: out/${n}.txt }\n${n === 'declared' ? '    code: [config/opts.txt]\n' : ''}`).join('')}`);
  const first = ws.run('run', 'p.yaml');
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(ran(first), [...names].sort());
  const edits: Record<string, [string, string, string]> = {
    dyn: ['stages/lib/dyn.ts', "export const v = 'dyn-2';\n", 'dyn-2'],
    tsx: ['stages/lib/tsxh.tsx', "export const v: string = 'tsx-2';\n", 'tsx-2'],
    jsx: ['stages/lib/jsxh.jsx', "export const v = 'jsx-2';\n", 'jsx-2'],
    json: ['stages/lib/data.json', '{ "v": "json-2" }\n', 'json-2'],
    comment: ['stages/lib/after.ts', "export const v = 'after-2';\n", 'after-22'],
    asset: ['stages/lib/table.txt', 'asset-2\n', 'asset-2'],
    linked: ['mylib/index.js', "export const v = 'linked-2';\n", 'linked-2'],
    declared: ['config/opts.txt', 'declared-2\n', 'declared-2'],
  };
  for (const [name, [file, text, want]] of Object.entries(edits)) {
    ws.write(file, text);
    const r = ws.run('run', 'p.yaml');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(ran(r), [name], `editing ${file} reruns ${name}, and only it`);
    assert.equal(ws.read(`out/${name}.txt`), want, `${name} ran the new code`);
  }
  // --force runs the code as it is now, too (a compiled module is named by everything it compiled).
  ws.write('stages/lib/dyn.ts', "export const v = 'dyn-3';\n");
  const forced = ws.run('run', 'p.yaml', '--force', 'dyn');
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(ws.read('out/dyn.txt'), 'dyn-3');
});

test('timestamps: a same-size rewrite with its mtime put back is seen (ctime); an input edited while its stage runs, even put back, is not committed under the old key', async (t) => {
  const ws = new Workspace({
    'input.txt': 'AAAA\n',
    'p.yaml': `stages:
  copy:
    run: [sh, -c, 'touch started; while [ ! -e go ]; do sleep 0.05; done; cat input.txt > "$0"; touch read; while [ ! -e back ]; do sleep 0.05; done', "\${outputs.o}"]
    deps: [input.txt]
    outs: { o: out.txt }
`,
  });
  t.after(() => ws.dispose());
  await aged([ws.path('input.txt'), ws.path('p.yaml')]);
  for (const f of ['go', 'back']) ws.write(f, '');
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  assert.equal(ws.read('out.txt'), 'AAAA\n');
  // cp -p / shutil.copy2: new bytes, same size, mtime put back (the inode stays: written in place).
  const before = statSync(ws.path('input.txt'));
  writeFileSync(ws.path('input.txt'), 'BBBB\n');
  utimesSync(ws.path('input.txt'), before.atime, before.mtime);
  assert.equal(statSync(ws.path('input.txt')).mtimeMs, before.mtimeMs);
  const seen = ws.run('run', 'p.yaml');
  assert.equal(seen.code, 0, seen.stderr);
  assert.deepEqual(ran(seen), ['copy'], 'the rewrite is seen');
  assert.equal(ws.read('out.txt'), 'BBBB\n');

  // Edited while the stage runs (it reads CCCC), then put back as it was: nothing is kept under
  // the key of BBBB, and the next run computes BBBB's result.
  for (const f of ['go', 'back', 'started', 'read']) rmSync(ws.path(f), { force: true });
  ws.write('input.txt', 'AAAA\n');
  await aged([ws.path('input.txt')]);
  const running = ws.start('run', 'p.yaml');
  await waitFor(() => ws.exists('started'));
  const kept = statSync(ws.path('input.txt'));
  writeFileSync(ws.path('input.txt'), 'CCCC\n');
  ws.write('go', '');
  await waitFor(() => ws.exists('read'));
  writeFileSync(ws.path('input.txt'), 'AAAA\n');
  utimesSync(ws.path('input.txt'), kept.atime, kept.mtime);
  ws.write('back', '');
  const r = await running.done;
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /stage copy failed: 'input\.txt' changed while the stage ran: what it read may not be what its cache key says, so its result was not kept; run it again/);
  const again = ws.run('run', 'p.yaml');
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(ran(again), ['copy']);
  assert.equal(ws.read('out.txt'), 'AAAA\n', 'the result of what the input holds, not the mid-run content');
});

test("--force in one workspace never replaces a view another workspace's stage is reading: each reads the bytes it started with", async (t) => {
  const spec = `stages:
  make:
    run: [sh, -c, 'mkdir -p "$0"; for i in 1 2 3 4 5; do od -An -N4 -tu4 /dev/urandom > "$0/$i"; done', "\${outputs.d}"]
    outs: { d: null }
  read:
    run: [sh, -c, 'cat "$0"/* > seen1; touch reading; while [ ! -e forced ]; do sleep 0.05; done; cat "$0"/* > seen2; cmp seen1 seen2 && cp seen1 "$1"', "\${stages.make.outputs.d}", "\${outputs.o}"]
    outs: { o: null }
`;
  const a = new Workspace({ 'p.yaml': spec });
  const b = new Workspace({ 'p.yaml': spec });
  t.after(() => {
    a.dispose();
    b.dispose();
  });
  const cache = a.path('cache');
  assert.equal(a.run('run', 'p.yaml', 'make', '--cache-dir', cache).code, 0);
  const reader = b.start('run', 'p.yaml', '--cache-dir', cache);
  await waitFor(() => b.exists('reading'), 60_000);
  // The same key, other bytes (the stage is not deterministic): a view of its own.
  const forced = a.run('run', 'p.yaml', 'make', '--force', 'make', '--cache-dir', cache);
  assert.equal(forced.code, 0, forced.stderr);
  b.write('forced', '');
  const r = await reader.done;
  assert.equal(r.code, 0, `the reader saw its input change under it: ${r.stderr.slice(-1500)}`);
  assert.equal(b.read('seen1'), b.read('seen2'));
  // gc (with no run in progress) drops the view no record names any more, and keeps the current one.
  const viewsOf = () => new Map(readdirSync(join(cache, 'views')).map((key) => [key, readdirSync(join(cache, 'views', key)).length]));
  assert.deepEqual([...viewsOf().values()].sort(), [1, 2], 'the forced key has two views (the bytes read, the bytes now); the reader\'s run one');
  assert.equal(a.run('gc', '--cache-dir', cache).code, 0);
  assert.deepEqual([...viewsOf().values()].sort(), [1, 1], 'gc dropped the view no record names');
  a.write('forced', '');
  const fresh = a.run('run', 'p.yaml', '--cache-dir', cache);
  assert.equal(fresh.states.get('read'), 'done', 'the reader reads the current bytes');
});

test('the calling environment reaches a stage only as declared: locale and tuning variables cleared, the spec\'s env and what a shell line reads keyed, passEnv passed', (t) => {
  const show = 'for v in LC_ALL LC_NUMERIC LANG TZ OMP_NUM_THREADS PYTHONHASHSEED SECRET_TOKEN AWS_PROFILE MY_LR SET_IN_SPEC; do printf "%s=%s\\n" "$v" "$(printenv "$v" || echo unset)"; done';
  const ws = new Workspace({
    'stages/m.ts': "import { writeFileSync } from 'node:fs';\nimport { defineStage } from 'rrtn-pipeline';\nexport default defineStage({ params: {}, outputs: ['o'], async run(ctx) { writeFileSync(ctx.outputs.o, ['LC_ALL', 'OMP_NUM_THREADS', 'AWS_PROFILE', 'HOME'].map((k) => `${k}=${process.env[k] ?? 'unset'}`).join('\\n')); } });\n",
    'p.yaml': `passEnv: [SECRET_TOKEN]
stages:
  cmd:
    shell: true
    run: ${JSON.stringify(`${show} > "\${outputs.o}"; echo "lr=$MY_LR" >> "\${outputs.o}"`)}
    env: { SET_IN_SPEC: "yes" }
    passEnv: ["AWS_*"]
    outs: { o: out/cmd.txt }
  mod:
    uses: stages/m.ts
    outs: { o: out/mod.txt }
`,
  });
  t.after(() => ws.dispose());
  const caller = { LC_ALL: 'de_DE.UTF-8', LC_NUMERIC: 'de_DE.UTF-8', TZ: 'Asia/Tokyo', OMP_NUM_THREADS: '3', PYTHONHASHSEED: '7', SECRET_TOKEN: 's3cr3t', AWS_PROFILE: 'lab', MY_LR: '0.1' };
  const r = ws.runEnv(caller, 'run', 'p.yaml');
  assert.equal(r.code, 0, r.stderr);
  const seen = Object.fromEntries(ws.read('out/cmd.txt').trim().split('\n').map((l) => l.split('=') as [string, string]));
  assert.deepEqual(seen, { LC_ALL: 'unset', LC_NUMERIC: 'unset', LANG: 'C.UTF-8', TZ: 'unset', OMP_NUM_THREADS: 'unset', PYTHONHASHSEED: 'unset', SECRET_TOKEN: 's3cr3t', AWS_PROFILE: 'lab', MY_LR: '0.1', SET_IN_SPEC: 'yes', lr: '0.1' });
  assert.equal(ws.read('out/mod.txt'), `LC_ALL=unset\nOMP_NUM_THREADS=unset\nAWS_PROFILE=unset\nHOME=${process.env.HOME}`, 'a module stage in its own process: the same');
  const records = readdirSync(ws.path('cache/runs')).map((f) => ws.read(`cache/runs/${f}`));
  assert.equal(records.length, 2);
  assert.doesNotMatch(records.join('\n'), /s3cr3t/, 'a passed secret is in no record');
  // A changed locale or tuning variable changes nothing a stage sees: cached. What the line reads ($MY_LR) is keyed.
  assert.deepEqual(ran(ws.runEnv({ ...caller, LC_ALL: 'fr_FR.UTF-8', OMP_NUM_THREADS: '1', SECRET_TOKEN: 'other' }, 'run', 'p.yaml')), []);
  assert.deepEqual(ran(ws.runEnv({ ...caller, MY_LR: '0.2' }, 'run', 'p.yaml')), ['cmd']);
});
