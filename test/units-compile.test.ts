// Spec compilation as a unit, in-process on real spec files: what a spec compiles to (matrices,
// references, params, overrides, paths, ordering) and each mistake named at its line and column.
// Command stages only, so no stage module is bundled: milliseconds per test (`npm run mutate`).
import assert from 'node:assert/strict';
import { readdirSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { SpecError, UsageError } from '../src/diagnostics.ts';
import type { Pipeline } from '../src/spec/model.ts';
import { Engine, put, scratch } from './helpers/engine.ts';
import { ROOT } from './helpers/workspace.ts';

async function compile(t: { after(f: () => void): void }, spec: string, opts: Parameters<Engine['compile']>[1] = {}, files: Record<string, string> = {}): Promise<Pipeline> {
  const w = scratch(t, { 'p.yaml': spec, ...files });
  return new Engine(w).compile('p.yaml', opts).catch((e: unknown) => {
    // The temp workspace's path, written WS in expectations.
    if (e instanceof SpecError) for (const d of e.diagnostics) d.message = d.message.split(w).join('WS');
    throw e;
  });
}

/** The diagnostics a spec gets, as `line:col path: message`. */
async function problems(t: { after(f: () => void): void }, spec: string, opts: Parameters<Engine['compile']>[1] = {}, files: Record<string, string> = {}): Promise<string[]> {
  const err = await compile(t, spec, opts, files).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof SpecError, `expected a SpecError, got ${String(err)}`);
  return err.diagnostics.map((d) => `${d.line}:${d.col} ${d.path}: ${d.message}`);
}

const SWEEP = `name: sweep
seed: 7
params:
  lr: 0.1
  tag: base
stages:
  prep:
    run: [sh, -c, 'echo \${params.tag} > "$0"', '\${outputs.data}']
    outs: { data: out/data.txt }
    deps: [raw.csv]
  train:
    matrix:
      lr: [0.1, 0.01]
      w: [a, b]
      exclude:
        - { lr: 0.01, w: b }
    run: [python3, train.py, --lr, '\${matrix.lr}', --in, '\${stages.prep.outputs.data}', --out, '\${outputs.model}']
    outs: { model: 'models/\${matrix.w}-\${matrix.lr}' }
    seed: 3
    env: { W: 'w=\${matrix.w}', DATA: '\${stages.prep.outputs.data}' }
    resources: { time: '1:30' }
  score:
    matrix: { w: [a, b] }
    run: [python3, score.py, '\${stages.train.outputs.model}']
    outs: { s: null }
  gather:
    run: [python3, gather.py, '\${stages.train.outputs.model}']
    outs: { all: { path: all.txt, overwrite: true } }
    executor: inline
  pinned:
    run: [cat, '\${stages.train[lr=0.01,w=a].outputs.model}']
    needs: [prep]
    version: v\${params.tag}
  reader:
    run: [cat, out/data.txt]
    deps: [out/data.txt]
`;

test('a sweep compiles to its variants, each reading what it names, in dependency order', async (t) => {
  const p = await compile(t, SWEEP);
  assert.equal(p.name, 'sweep');
  assert.equal(p.specRel, 'p.yaml');
  assert.deepEqual([...p.stages.keys()], [
    'prep',
    'train[lr=0.1,w=a]',
    'train[lr=0.1,w=b]',
    'train[lr=0.01,w=a]',
    'score[w=a]',
    'score[w=b]',
    'gather',
    'pinned',
    'reader',
  ]);
  const order = p.order;
  const before = (a: string, b: string) => assert.ok(order.indexOf(a) < order.indexOf(b), `${a} before ${b}`);
  for (const v of ['train[lr=0.1,w=a]', 'train[lr=0.1,w=b]', 'train[lr=0.01,w=a]']) before('prep', v);
  before('train[lr=0.01,w=a]', 'score[w=a]');
  before('train[lr=0.1,w=b]', 'gather');
  before('prep', 'reader');

  const prep = p.stages.get('prep')!;
  assert.equal(prep.kind, 'command');
  assert.equal(prep.seed, 7);
  assert.equal(prep.executor, 'process');
  assert.deepEqual(prep.deps, ['raw.csv']);
  assert.deepEqual(prep.outputs, ['data']);
  assert.deepEqual(prep.outs, { data: 'out/data.txt' });
  assert.deepEqual(prep.command, { shell: false, script: 2, argv: [['sh'], ['-c'], ['echo base > "$0"'], [{ own: 'data' }]] });

  const train = p.stages.get('train[lr=0.01,w=a]')!;
  assert.equal(train.key, 'train');
  assert.deepEqual(train.matrix, { lr: 0.01, w: 'a' });
  assert.equal(train.seed, 3);
  assert.deepEqual(train.upstream, ['prep']);
  assert.equal(train.timeLimitMs, 90_000);
  assert.deepEqual(train.resources, { time: '1:30' });
  assert.deepEqual(train.outs, { model: 'models/a-0.01' });
  assert.deepEqual(train.command!.argv, [['python3'], ['train.py'], ['--lr'], ['0.01'], ['--in'], [{ ref: [{ stage: 'prep', output: 'data' }] }], ['--out'], [{ own: 'model' }]]);
  assert.deepEqual(train.env, { W: ['w=a'], DATA: [{ ref: [{ stage: 'prep', output: 'data' }] }] });

  // A variant reads the upstream variants that share its matrix values.
  const score = p.stages.get('score[w=b]')!;
  assert.deepEqual(score.upstream, ['train[lr=0.1,w=b]']);
  assert.deepEqual(score.command!.argv[2], [{ ref: [{ stage: 'train[lr=0.1,w=b]', output: 'model' }] }]);
  assert.deepEqual(p.stages.get('score[w=a]')!.upstream, ['train[lr=0.1,w=a]', 'train[lr=0.01,w=a]']);
  // A stage without the matrix gathers every variant.
  const gather = p.stages.get('gather')!;
  assert.deepEqual(gather.upstream, ['train[lr=0.1,w=a]', 'train[lr=0.1,w=b]', 'train[lr=0.01,w=a]']);
  assert.deepEqual(gather.outs, { all: 'all.txt' });
  assert.deepEqual(gather.overwrite, ['all']);
  assert.equal(gather.executor, 'inline');
  assert.deepEqual(p.stages.get('train[lr=0.1,w=a]')!.overwrite, []);
  // An exact variant id, and needs.
  const pinned = p.stages.get('pinned')!;
  assert.deepEqual(pinned.upstream, ['train[lr=0.01,w=a]', 'prep']);
  assert.equal(pinned.version, 'vbase');
  assert.deepEqual(pinned.outputs, []);
  assert.equal(prep.version, undefined);
  // A command that reads a path another stage publishes waits for it.
  assert.deepEqual(p.stages.get('reader')!.upstream, ['prep']);
  assert.deepEqual(p.envRead, {});
});

test('--set edits params and stage keys before checking; values are YAML', async (t) => {
  const p = await compile(t, SWEEP, { sets: ['tag=next', 'params.lr=0.5', 'stages.prep.seed=11', 'stages.gather.executor=process', 'stages.prep.deps=[a.csv, "b c.csv"]'] });
  const prep = p.stages.get('prep')!;
  assert.deepEqual(prep.command!.argv[2], ['echo next > "$0"']);
  assert.equal(prep.seed, 11);
  assert.deepEqual(prep.deps, ['a.csv', 'b c.csv']);
  assert.equal(p.stages.get('gather')!.executor, 'process');
  assert.equal(p.stages.get('pinned')!.version, 'vnext');
  const usage = async (sets: string[]) => compile(t, SWEEP, { sets }).then(() => 'compiled', (e: unknown) => (e instanceof UsageError ? e.message : `other: ${String(e)}`));
  assert.equal(await usage(['lr']), "--set expects key.path=value, got 'lr'");
  assert.equal(await usage(['=1']), "--set expects key.path=value, got '=1'");
  assert.equal(await usage(['a..b=1']), "--set 'a..b=1': empty name in 'a..b'");
  assert.equal(await usage(['stages.trian.seed=1']), "--set 'stages.trian.seed=1': p.yaml has no stage 'trian' (did you mean 'train'?)");
  assert.equal(await usage(['stages.zzzzzz.seed=1']), "--set 'stages.zzzzzz.seed=1': p.yaml has no stage 'zzzzzz' (stages: prep, train, score, gather, pinned, reader)");
  assert.equal(await usage(['stages.prep=1']), "--set 'stages.prep=1': name a key of stage 'prep', e.g. stages.prep.params.NAME=value");
  assert.match(await usage(['lrr=1']), /^--set 'lrr=1': p.yaml declares no parameter 'lrr' \(did you mean 'lr'\?\); a stage's own param/);
  assert.match(await usage(['params.zzzzz=1']), /declares no parameter 'zzzzz' \(params: lr, tag\)/);
  assert.equal(await usage(['stages=1']), "--set 'stages=1': p.yaml has no stage '' (stages: prep, train, score, gather, pinned, reader)");
  assert.match(await usage(['params=1']), /^--set 'params=1': p.yaml declares no parameter '' \(params: lr, tag\); a stage's own param is set with stages.<stage>.params.<name>=value$/);
  const bare = await compile(t, 'stages:\n  a:\n    run: [echo]\n', { sets: ['x=1'] }).then(() => 'compiled', (e: unknown) => String(e));
  assert.equal(bare, "UsageError: --set 'x=1': p.yaml declares no parameter 'x' (it has no params: section); a stage's own param is set with stages.<stage>.params.<name>=value");
  // `params.` names a parameter like a bare name; a value YAML cannot read is taken as the text it is.
  const q = await compile(t, SWEEP, { sets: ['params.tag=a: b: c'] });
  assert.deepEqual(q.stages.get('prep')!.command!.argv[2], ["echo 'a: b: c' > \"$0\""]);
});

test('the spec default executor and seed apply where a stage names none', async (t) => {
  const p = await compile(t, 'executor: inline\nseed: 5\nstages:\n  a:\n    run: echo "a b" c\n  b:\n    run: echo $HOME\n    shell: true\n');
  const a = p.stages.get('a')!;
  assert.equal(a.executor, 'inline');
  assert.equal(a.seed, 5);
  assert.deepEqual(a.command, { shell: false, script: -1, argv: [['echo'], ['a b'], ['c']] });
  assert.deepEqual(p.stages.get('b')!.command, { shell: true, script: 0, argv: [['echo $HOME']] });
  assert.equal(p.name, 'p.yaml');
  const q = await compile(t, 'stages:\n  a:\n    run: [echo]\n');
  assert.equal(q.stages.get('a')!.seed, 0);
  assert.equal(q.stages.get('a')!.executor, 'process');
});

test('environment references: the value, a default, and what was read recorded', async (t) => {
  const p = await compile(t, 'stages:\n  a:\n    run: [echo, "${env.A}", "${env.B:-dflt}", "${env.C:-x}"]\n', { env: { A: 'from-env', C: '' } });
  assert.deepEqual(p.stages.get('a')!.command!.argv, [['echo'], ['from-env'], ['dflt'], ['x']]);
  assert.deepEqual(p.envRead, { A: 'from-env', B: null, C: '' });
});

test('inputs: workspace paths, one output, or a list; a sweep read whole becomes a list', async (t) => {
  const spec = `stages:
  s:
    matrix: { k: [1, 2] }
    run: [echo]
    outs: { o: null }
  one:
    run: [cat, '\${stages.s[k=1].outputs.o}']
`;
  const p = await compile(t, spec + `  reads:
    run: [echo]
    inputs:
      table: data/t.csv
      all: '\${stages.s.outputs.o}'
      one: '\${stages.s[k=2].outputs.o}'
      pair: [a.txt, '\${stages.s[k=1].outputs.o}']
`);
  assert.deepEqual(p.stages.get('one')!.upstream, ['s[k=1]']);
  const r = p.stages.get('reads')!;
  assert.deepEqual(r.inputs, {
    table: { list: false, items: [{ kind: 'path', path: 'data/t.csv' }] },
    all: { list: true, items: [{ kind: 'output', ref: { stage: 's[k=1]', output: 'o' } }, { kind: 'output', ref: { stage: 's[k=2]', output: 'o' } }] },
    one: { list: false, items: [{ kind: 'output', ref: { stage: 's[k=2]', output: 'o' } }] },
    pair: { list: true, items: [{ kind: 'path', path: 'a.txt' }, { kind: 'output', ref: { stage: 's[k=1]', output: 'o' } }] },
  });
  assert.deepEqual(r.upstream, ['s[k=1]', 's[k=2]']);
});

test('graph mistakes: a cycle (shown from the first stage, as data flows), matrices with no or clashing variants, one path published twice', async (t) => {
  const spec = `stages:
  a:
    run: [cat, '\${stages.c.outputs.o}']
    outs: { o: a.txt }
  b:
    run: [cat, '\${stages.a.outputs.o}']
    outs: { o: null }
  c:
    run: [cat, '\${stages.b.outputs.o}']
    outs: { o: null }
  none:
    matrix: { k: [1], exclude: [{ k: 1 }] }
    run: [echo]
  clash:
    matrix: { k: [1, '1'] }
    run: [echo]
    outs: { o: 'c-\${matrix.k}' }
  twice:
    run: [echo]
    outs: { o: a.txt }
`;
  assert.deepEqual(await problems(t, spec), [
    '2:3 stages.a: dependency cycle: a -> b -> c -> a',
    '12:32 stages.none.matrix.exclude: every combination of the matrix is excluded: the stage would have no variant',
    `15:13 stages.clash.matrix: two variants would both be named 'clash[k=1]' ({"k":1} and {"k":"1"}): make the matrix values distinct as text`,
    "20:16 stages.twice.outs.o: 'a.txt' is published by both a and twice: each outs path needs exactly one producer",
  ]);
  const variants = await problems(t, 'stages:\n  s:\n    matrix: { k: [1, 2] }\n    run: [echo]\n    outs: { o: "same" }\n');
  assert.deepEqual(variants, ["5:16 stages.s.outs.o: 'same' is published by both s[k=1] and s[k=2]: each outs path needs exactly one producer (use ${matrix.<key>} in the path to give each variant its own)"]);
  const mixed = await problems(t, "stages:\n  s:\n    run: [echo]\n    outs: { o: null }\n  t:\n    run: [echo]\n    inputs: { x: 'dir/\${stages.s.outputs.o}' }\n");
  assert.deepEqual(mixed, ['7:18 stages.t.inputs.x: an input is either a workspace path or one ${stages.<id>.outputs.<name>} reference, not a mix']);
});

test('each mistake is named at its line and column, all of them at once, in file order', async (t) => {
  const spec = `params: { lr: 0.1 }
stages:
  both:
    uses: stages/x.ts
    run: [echo]
  neither:
    outs: { o: null }
  empty:
    run: []
  blank:
    run: ['  ', x]
  ref:
    run: [cat, '\${stages.prepp.outputs.data}', '\${stages.prep.outputs.dta}']
  prep:
    run: [echo, '\${outputs.data}', '\${outputs.undeclared}']
    outs: { data: null }
  p1:
    run: [echo, '\${params.lrr}', '\${matrix.k}', '\${env.UNSET_VAR_X}']
  p2:
    run: [echo]
    params: { a: '\${stages.prep.outputs.data}' }
  p3:
    run: [echo]
    needs: [prepp]
    resources: { time: soon }
  clash1:
    run: [echo]
    outs: { o: res }
  clash2:
    run: [echo]
    outs: { o: res/inner }
  out1:
    run: [echo]
    outs: { o: ../outside }
  out2:
    run: [echo]
    deps: [/etc/passwd]
`;
  assert.deepEqual(await problems(t, spec), [
    '5:5 stages.both.run: give either `uses` (a stage module) or `run` (a command), not both',
    '6:3 stages.neither: a stage needs `uses: <stage module>` or `run: <command>`',
    '9:10 stages.empty.run: must be a string or a non-empty list, got an empty list',
    '11:10 stages.blank.run: the command is empty: give the program to run (and its arguments)',
    "13:16 stages.ref.run[1]: unknown stage 'prepp' in ${stages.prepp.outputs.data} (did you mean 'prep'?)",
    "13:48 stages.ref.run[2]: stage 'prep' has no output 'dta' (did you mean 'data'?)",
    '15:10 stages.prep.run: ${outputs.undeclared} is not declared under outs (declared: data)',
    "18:17 stages.p1.run[1]: unknown reference ${params.lrr}: no such parameter (did you mean 'lr'?)",
    '18:34 stages.p1.run[2]: unknown reference ${matrix.k}: this stage has no matrix',
    '18:49 stages.p1.run[3]: environment variable UNSET_VAR_X is not set (set it, or give a default: ${env.UNSET_VAR_X:-value})',
    "21:18 stages.p2.params.a: ${stages.prep.outputs.data} can only appear in a stage's inputs, run or env",
    "24:13 stages.p3.needs[0]: unknown stage 'prepp' in needs (did you mean 'prep'?)",
    "25:24 stages.p3.resources.time: bad time limit 'soon': use minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]] (as Slurm does) or 90s, 30m, 2h, 1d",
    "31:16 stages.clash2.outs.o: 'res/inner' lies inside 'res', published by clash1 and clash2: each outs path needs exactly one producer",
    "34:16 stages.out1.outs.o: path '../outside' resolves outside the workspace (WS); stage paths must stay inside it",
    "37:12 stages.out2.deps[0]: path '/etc/passwd' resolves outside the workspace (WS); stage paths must stay inside it",
  ]);
});

const MODULE = (extra = '') => `import { defineStage } from 'rrtn-pipeline';
export default defineStage({ params: { type: 'object', additionalProperties: false, properties: { n: { type: 'integer', default: 2 } } }, inputs: ['data'], outputs: ['o'], ${extra} run() {} });
`;

test('a value --set gives that fails its check: the message shows the value checked (not the file\'s) and names the --set, directly or through a ${params} reference', async (t) => {
  const files = { 'stages/m.ts': MODULE(), 'd.txt': 'x' };
  const spec = `params: { n: 3, label: x }
stages:
  m:
    uses: stages/m.ts
    inputs: { data: d.txt }
    params: { n: '\${params.n}' }
  k:
    uses: stages/m.ts
    inputs: { data: d.txt }
    params: { n: 4 }
`;
  assert.deepEqual(await problems(t, spec, { sets: ['n=two', 'label=y'] }, files), ["6:18 stages.m.params.n: must be integer, got string \"two\" (the value given by --set 'n=two')"]);
  assert.deepEqual(await problems(t, spec, { sets: ['stages.k.params.n=1.5'] }, files), ["10:18 stages.k.params.n: must be integer, got number 1.5 (the value given by --set 'stages.k.params.n=1.5')"]);
  assert.deepEqual(await problems(t, spec, { sets: ['stages.k.params={n: x, z: 1}'] }, files), [
    "10:13 stages.k.params.z: unknown key 'z' (did you mean 'n'?) (the value given by --set 'stages.k.params={n: x, z: 1}')",
    "10:18 stages.k.params.n: must be integer, got string \"x\" (the value given by --set 'stages.k.params={n: x, z: 1}')",
  ]);
  // The spec's own mistake, with --set values that have nothing to do with it: not blamed on them.
  assert.deepEqual(await problems(t, spec.replace('params: { n: 4 }', 'params: { n: 4.5 }'), { sets: ['label=z'] }, files), ['10:18 stages.k.params.n: must be integer, got number 4.5']);
  // A top-level key of the wrong kind set on the command line.
  assert.deepEqual(await problems(t, spec, { sets: ['stages.k.seed=abc'] }, files), ["8:5 stages.k.seed: must be integer, got string \"abc\" (the value given by --set 'stages.k.seed=abc')"]);
});

test('module stages: params checked and defaulted by the module schema, inputs and outputs named by the module, built-ins by package name', async (t) => {
  const files = { 'stages/m.ts': MODULE(), 'stages/bad.ts': "import { defineStage } from 'rrtn-pipeline';\nexport default defineStage({ params: { type: 'nope' }, outputs: ['o'], run() {} });\n", 'd.txt': 'x' };
  const ok = await compile(t, `stages:
  m:
    uses: stages/m.ts
    inputs: { data: d.txt }
  b:
    uses: rrtn-pipeline/stages/exvo.ts
    inputs: { corpus: '\${stages.m.outputs.o}' }
`, { builtinRoot: ROOT }, files);
  const m = ok.stages.get('m')!;
  assert.equal(m.kind, 'module');
  assert.deepEqual(m.params, { n: 2 });
  assert.deepEqual(m.outputs, ['o']);
  assert.deepEqual(m.deps, ['d.txt'], "a module stage's workspace inputs are its deps");
  assert.equal(m.module!.rel, 'stages/m.ts');
  const b = ok.stages.get('b')!;
  assert.equal(b.module!.abs, join(ROOT, 'stages', 'exvo.ts'));
  assert.deepEqual(b.upstream, ['m']);
  assert.deepEqual(b.deps, [], 'an input from another stage is not a workspace dependency');
  assert.deepEqual(b.outputs, ['dataset']);

  assert.deepEqual(await problems(t, `stages:
  m:
    uses: stages/m.ts
    params: { n: 1.5, x: 1 }
    inputs: { dta: d.txt }
    outs: { p: out.txt }
    deps: [d.txt]
  nope:
    uses: stages/none.ts
  bad:
    uses: stages/bad.ts
`, {}, files), [
    "2:3 stages.m: stage module 'stages/m.ts' needs input 'data'",
    '4:18 stages.m.params.n: must be integer, got number 1.5',
    "4:23 stages.m.params.x: unknown key 'x' (did you mean 'n'?)",
    "5:15 stages.m.inputs.dta: stage module 'stages/m.ts' has no input 'dta' (did you mean 'data'?)",
    "6:13 stages.m.outs.p: stage module 'stages/m.ts' has no output 'p' (its outputs: o)",
    "7:5 stages.m.deps: `deps` is for command stages: a module stage reads what its `inputs` name (add the files there)",
    "9:11 stages.nope.uses: unknown stage module 'stages/none.ts': no such file in the workspace",
    "11:11 stages.bad.uses: stage module 'stages/bad.ts' has an invalid params schema: schema is invalid: data/type must be equal to one of the allowed values, data/type must be array, data/type must match a schema in anyOf",
  ]);
  const usage = await compile(t, 'stages:\n  m:\n    uses: stages/m.ts\n    inputs: { data: d.txt }\n', { sets: ['stages.m.params.nn=3'] }, files).catch((e: unknown) => e);
  assert.ok(usage instanceof UsageError, "usage instanceof UsageError");
  assert.equal(usage.message, "--set 'stages.m.params.nn=3': stage module 'stages/m.ts' has no param 'nn' (did you mean 'n'?)");
});

test('where `uses` may point: the workspace, built-ins, installed packages (even above the workspace); never elsewhere, links included; a module that fails to load', async (t) => {
  // root/ws is the workspace; root/node_modules is where Node would find packages for it.
  const root = scratch(t, {
    'ws/stages/m.ts': MODULE(),
    'ws/stages/throws.ts': "throw new Error('boom at load\\nsecond line');\n",
    'ws/d.txt': 'x',
    'node_modules/pkg/package.json': '{ "name": "pkg", "version": "1.0.0" }',
    'node_modules/pkg/st.ts': MODULE(),
    'x.ts': MODULE(),
  });
  const ws = join(root, 'ws');
  symlinkSync(join(root, 'x.ts'), join(ws, 'stages', 'link.ts'));
  put(ws, 'p.yaml', `stages:
  fromPkg:
    uses: pkg/st.ts
    inputs: { data: d.txt }
  builtin:
    uses: stages/exvo.ts
    inputs: { corpus: d.txt }
`);
  const ok = await new Engine(ws).compile('p.yaml', { builtinRoot: ROOT });
  assert.equal(ok.stages.get('fromPkg')!.module!.abs, join(root, 'node_modules', 'pkg', 'st.ts'));
  assert.equal(ok.stages.get('fromPkg')!.module!.rel, '../node_modules/pkg/st.ts');
  assert.equal(ok.stages.get('builtin')!.module!.abs, join(ROOT, 'stages', 'exvo.ts'), 'a bare path not in the workspace is a built-in stage');

  put(ws, 'p.yaml', `stages:
  up:
    uses: ../x.ts
  linked:
    uses: stages/link.ts
  throws:
    uses: stages/throws.ts
  reader:
    run: [cat, '\${stages.throws.outputs.o}']
  builtinNoRoot:
    uses: rrtn-pipeline/stages/exvo.ts
`);
  const err = await new Engine(ws).compile('p.yaml').catch((e: unknown) => e);
  assert.ok(err instanceof SpecError, "err instanceof SpecError");
  assert.deepEqual(
    err.diagnostics.map((d) => `${d.line}:${d.col} ${d.message.split(root).join('ROOT')}`),
    [
      "3:11 stage module '../x.ts' resolves to ROOT/x.ts, outside the workspace: copy the module into the workspace, or install it as a package and name it from node_modules",
      "5:11 stage module 'stages/link.ts' resolves to ROOT/x.ts, outside the workspace: copy the module into the workspace, or install it as a package and name it from node_modules",
      "7:11 cannot load stage module 'stages/throws.ts': boom at load",
      "11:11 unknown stage module 'rrtn-pipeline/stages/exvo.ts': no such file in the workspace",
    ],
    'a reference to a stage that failed to load adds nothing',
  );
  put(ws, 'p.yaml', 'stages:\n  m:\n    uses: stages/none.ts\n');
  const withRoot = await new Engine(ws).compile('p.yaml', { builtinRoot: ROOT }).catch((e: unknown) => e);
  assert.ok(withRoot instanceof SpecError, "withRoot instanceof SpecError");
  assert.equal(withRoot.diagnostics[0]!.message, "unknown stage module 'stages/none.ts': no such file in the workspace or among the built-in stages");
});

test('metrics and plots name files inside the stage own outputs', async (t) => {
  const ok = await compile(t, `stages:
  s:
    run: [echo]
    outs: { o: out, r: res }
    metrics: [o/m.json, r/deep/er.json]
    plots: [o/curve.jsonl]
`);
  const s = ok.stages.get('s')!;
  assert.deepEqual(s.metrics, [['o', 'm.json'], ['r', 'deep/er.json']]);
  assert.deepEqual(s.plots, [['o', 'curve.jsonl']]);
  assert.deepEqual(await problems(t, `stages:
  s:
    run: [echo]
    outs: { o: out }
    metrics: [q/m.json, o/../x.json, o/./x.json, o/, /o/x.json, o/a/..]
  none:
    run: [echo]
    plots: [o/p.json]
`), [
    "5:15 stages.s.metrics[0]: 'q/m.json' must start with one of the stage's outputs (o): <output>/<file inside it>",
    "5:25 stages.s.metrics[1]: 'o/../x.json' must name a file inside output 'o'",
    "5:38 stages.s.metrics[2]: 'o/./x.json' must name a file inside output 'o'",
    "5:50 stages.s.metrics[3]: 'o/' must name a file inside output 'o'",
    "5:54 stages.s.metrics[4]: '/o/x.json' must start with one of the stage's outputs (o): <output>/<file inside it>",
    "5:65 stages.s.metrics[5]: 'o/a/..' must name a file inside output 'o'",
    "8:13 stages.none.plots[0]: 'o/p.json' must start with one of the stage's outputs (it has none): <output>/<file inside it>",
  ]);
});

test('a workspace path one stage reads and another publishes orders them, either way round; variant names spell each value', async (t) => {
  const p = await compile(t, `stages:
  reader:
    run: [cat, res/inner.txt]
    deps: [res/inner.txt, top]
  folder:
    run: [echo]
    outs: { o: res }
  nested:
    run: [echo]
    outs: { o: top/sub }
  unrelated:
    run: [echo]
    outs: { o: resx }
    deps: [re]
  flags:
    matrix: { on: [true], x: [1.5], name: ['a b'], obj: [{ k: 1 }] }
    run: [echo]
`);
  assert.deepEqual(p.stages.get('reader')!.upstream, ['folder', 'nested']);
  assert.deepEqual(p.stages.get('unrelated')!.upstream, [], 'a shared prefix that is not a folder is no overlap');
  assert.deepEqual([...p.stages.keys()].filter((k) => k.startsWith('flags')), ['flags[on=true,x=1.5,name=a b,obj={"k":1}]']);
});

test('the spec file itself: missing, or not YAML', async (t) => {
  const w = scratch(t, { 'bad.yaml': 'stages:\n  a: [\n' });
  const missing = await new Engine(w).compile('nope.yaml').catch((e: unknown) => e);
  assert.ok(missing instanceof UsageError, "missing instanceof UsageError");
  assert.equal(missing.message, 'spec file not found: nope.yaml');
  const bad = await new Engine(w).compile('bad.yaml').catch((e: unknown) => e);
  assert.ok(bad instanceof SpecError, String(bad));
  assert.equal(bad.diagnostics[0]!.line, 3);
});

test('a matrix key `seed` is each variant\'s seed (seeds as replicates); a seed that is not one is named', async (t) => {
  const p = await compile(t, 'seed: 4\nstages:\n  train:\n    matrix: { seed: [10, 11], lr: [1] }\n    run: [echo, "${matrix.seed}"]\n  other:\n    run: [echo]\n');
  assert.deepEqual([...p.stages.values()].map((n) => [n.id, n.seed]), [['train[seed=10,lr=1]', 10], ['train[seed=11,lr=1]', 11], ['other', 4]]);
  assert.deepEqual(p.stages.get('train[seed=11,lr=1]')!.command!.argv, [['echo'], ['11']]);
  assert.deepEqual(await problems(t, 'stages:\n  a:\n    matrix: { seed: [1, -2] }\n    run: [echo]\n  b:\n    matrix: { seed: [1] }\n    seed: 3\n    run: [echo]\n'), [
    "3:25 stages.a.matrix.seed[1]: a matrix seed must be a whole number from 0 to 4294967295 (it becomes the variant's seed), got -2",
    '7:11 stages.b.seed: give the seed either as `seed:` or as the matrix key `seed`, not both',
  ]);
});

test('more mistakes, each at its place: a string run, deps, env, list inputs, an outs path entry; every name a message lists', async (t) => {
  const spec = `params: { tag: x }
stages:
  prep:
    run: [echo, '\${outputs.data}', '\${outputs.log}']
    outs: { data: null, log: null }
  s1:
    run: 'cat \${stages.prepp.outputs.data}'
  s2:
    run: [echo]
    deps: [a.txt, '\${stages.prep.outputs.data}']
  s3:
    run: [echo, '\${outputs.nope}']
    outs: { a: null, b: null }
  s4:
    run: [cat, '\${stages.prep.outputs.zzzzzz}']
  s5:
    run: [echo]
    outs: { o: { path: ../x } }
  s6:
    run: [echo]
    env: { E: '\${params.nope}' }
  s7:
    run: [echo]
    outs: { o1: null, o2: null }
    metrics: [nope/x.json]
  s8:
    run: [echo]
    inputs: { x: [a.txt, '\${stages.prep.outputs.data}/sub'] }
  s9:
    run: [echo]
    needs: [5]
    inputs: { y: [5] }
`;
  assert.deepEqual(await problems(t, spec), [
    "7:10 stages.s1.run: unknown stage 'prepp' in ${stages.prepp.outputs.data} (did you mean 'prep'?)",
    "10:19 stages.s2.deps[1]: ${stages.prep.outputs.data} can only appear in a stage's inputs, run or env",
    '12:10 stages.s3.run: ${outputs.nope} is not declared under outs (declared: a, b)',
    "15:16 stages.s4.run[1]: stage 'prep' has no output 'zzzzzz' (its outputs: data, log)",
    "18:24 stages.s5.outs.o.path: path '../x' resolves outside the workspace (WS); stage paths must stay inside it",
    "21:15 stages.s6.env.E: unknown reference ${params.nope}: no such parameter",
    "25:15 stages.s7.metrics[0]: 'nope/x.json' must start with one of the stage's outputs (o1, o2): <output>/<file inside it>",
    '28:26 stages.s8.inputs.x[1]: an input is either a workspace path or one ${stages.<id>.outputs.<name>} reference, not a mix',
    '31:13 stages.s9.needs[0]: must be string, got number 5',
    '32:19 stages.s9.inputs.y[0]: must be string, got number 5',
  ]);
});

test('what compiles: splicing a sweep and an output into one list input, upstreams once each, self-overlapping paths, nested outs in any order, one diagnostic per place', async (t) => {
  const p = await compile(t, `params: { dir: data, name: t }
stages:
  prep:
    run: [echo]
    outs: { data: out/data.txt }
  sweep:
    matrix: { k: [1, 2], w: [a] }
    run: [echo]
    outs: { o: null }
  part:
    matrix: { w: [a] }
    run: [echo]
    inputs: { all: '\${stages.sweep.outputs.o}' }
  reads:
    run: [cat, '\${stages.prep.outputs.data}']
    needs: [prep, sweep]
    inputs:
      x: ['\${stages.sweep.outputs.o}', '\${stages.prep.outputs.data}']
      t: '\${params.dir}/\${params.name}.csv'
  grow:
    run: [echo]
    deps: [results]
    outs: { o: results/new.txt, keep: { path: kept.txt } }
  res:
    run: [echo]
    outs: { o: res }
  resultset:
    run: [echo]
    outs: { o: result }
`);
  const reads = p.stages.get('reads')!;
  assert.deepEqual(reads.inputs.x, {
    list: true,
    items: [
      { kind: 'output', ref: { stage: 'sweep[k=1,w=a]', output: 'o' } },
      { kind: 'output', ref: { stage: 'sweep[k=2,w=a]', output: 'o' } },
      { kind: 'output', ref: { stage: 'prep', output: 'data' } },
    ],
  });
  assert.deepEqual(reads.inputs.t, { list: false, items: [{ kind: 'path', path: 'data/t.csv' }] });
  assert.deepEqual(reads.upstream, ['sweep[k=1,w=a]', 'sweep[k=2,w=a]', 'prep'], 'each upstream once, whether referenced or needed (inputs are read before run)');
  // A consumer sharing one of the sweep's keys reads the variants that match it, as a list.
  assert.deepEqual(p.stages.get('part[w=a]')!.inputs.all!.list, true);
  const grow = p.stages.get('grow')!;
  assert.deepEqual(grow.upstream, [], 'a stage reading the folder it publishes into is not its own upstream');
  assert.deepEqual(grow.overwrite, [], 'overwrite only where asked');
  assert.deepEqual(grow.outs, { o: 'results/new.txt', keep: 'kept.txt' });
  // A published folder declared after what lies inside it still clashes; one stage publishing into its own output too.
  assert.deepEqual(
    await problems(t, 'stages:\n  inner:\n    run: [echo]\n    outs: { o: res/inner }\n  outer:\n    run: [echo]\n    outs: { o: res }\n  self:\n    run: [echo]\n    outs: { a: s, b: s/x }\n'),
    [
      "4:16 stages.inner.outs.o: 'res/inner' lies inside 'res', published by outer and inner: each outs path needs exactly one producer",
      "10:22 stages.self.outs.b: 's/x' lies inside 's', published by stage self (twice): each outs path needs exactly one producer",
    ],
  );
  // Every variant of a sweep making the same mistake at the same place: said once.
  assert.deepEqual(await problems(t, "stages:\n  s:\n    matrix: { k: [1, 2, 3] }\n    run: [echo, '${outputs.undeclared}']\n"), ['4:10 stages.s.run: ${outputs.undeclared} is not declared under outs (declared: none)']);
  // A cycle is shown from the stage first in the spec, whichever stage the search met first.
  const cycle = 'stages:\n  z:\n    run: [cat, "${stages.x.outputs.o}"]\n    outs: { o: null }\n  x:\n    run: [cat, "${stages.y.outputs.o}"]\n    outs: { o: null }\n  y:\n    run: [cat, "${stages.z.outputs.o}"]\n    outs: { o: null }\n';
  assert.deepEqual(await problems(t, cycle), ['2:3 stages.z: dependency cycle: z -> y -> x -> z']);
  // Met from a stage outside it (entry), the search enters the cycle at p; q comes first in the spec.
  const entered = 'stages:\n  entry:\n    run: [cat, "${stages.p.outputs.o}"]\n  q:\n    run: [cat, "${stages.p.outputs.o}"]\n    outs: { o: null }\n  p:\n    run: [cat, "${stages.q.outputs.o}"]\n    outs: { o: null }\n';
  assert.deepEqual(await problems(t, entered), ['4:3 stages.q: dependency cycle: q -> p -> q']);
});

test('values: a whole reference keeps its type, a mixed one is text; lists and maps resolve inside; command strings split like a shell; numbers as written', async (t) => {
  const p = await compile(t, `params: { lr: 0.5, big: .inf, on: true }
stages:
  s:
    matrix: { k: [.inf, 2] }
    run: 'python3 "a \\"b\\" c" ''d e'' f'
    params: { n: '\${params.lr}', m: 'x\${params.lr}', l: ['\${params.lr}', 2, { deep: '\${params.on}' }], b: '\${params.big}' }
    env: { EMPTY: '', K: '\${matrix.k}' }
    version: '\${params.lr}'
`);
  const s = p.stages.get('s[k=Infinity]')!;
  assert.ok(s, [...p.stages.keys()].join(', '));
  assert.deepEqual(s.params, { n: 0.5, m: 'x0.5', l: [0.5, 2, { deep: true }], b: Infinity });
  assert.deepEqual(s.command!.argv, [['python3'], ['a "b" c'], ['d e'], ['f']]);
  assert.deepEqual(s.env, { EMPTY: [''], K: ['Infinity'] });
  assert.equal(s.version, 0.5);
  assert.deepEqual(p.absent, [], 'no module looked for, nothing absent');
  assert.deepEqual(
    await problems(t, `stages:
  s:
    matrix: { k: [1], w: [a] }
    run: [echo, '\${matrix.x}', '\${stages.}']
    inputs: { i: '\${outputs.o}' }
    deps: ['.']
    outs: { o: null }
`),
    [
      "4:17 stages.s.run[1]: unknown reference ${matrix.x}: matrix keys are k, w",
      "4:32 stages.s.run[2]: bad reference ${stages.}: expected ${stages.<id>.outputs.<name>}",
      "5:18 stages.s.inputs.i: ${outputs.o} can only appear in a command stage's run or env",
      "6:12 stages.s.deps[0]: path '.': a dep cannot be the workspace root (it holds the spec, the code and the cache); name a file or folder inside it",
    ],
  );
});

test('messages with nothing close to suggest list what there is (or say none); a run that is not a command is named once', async (t) => {
  assert.deepEqual(
    await problems(t, `stages:
  empty:
    run: [echo]
  a:
    run: [cat, '\${stages.zzzzzz.outputs.o}', '\${stages.empty.outputs.o}']
    needs: [qqqqqq]
  n:
    run: 5
  cmd:
    run: ''
`),
    [
      "5:16 stages.a.run[1]: unknown stage 'zzzzzz' in ${stages.zzzzzz.outputs.o}",
      "5:46 stages.a.run[2]: stage 'empty' has no output 'o' (its outputs: none)",
      "6:13 stages.a.needs[0]: unknown stage 'qqqqqq' in needs",
      '8:10 stages.n.run: must be a string or a non-empty list, got number 5',
      '10:10 stages.cmd.run: the command is empty: give the program to run (and its arguments)',
    ],
  );
});

test('module stages: what a module lacks is listed when nothing is close; a load error is shown from its first line with text; packages in the workspace', async (t) => {
  const files = {
    'stages/m.ts': MODULE(),
    'stages/bare.ts': "import { defineStage } from 'rrtn-pipeline';\nexport default defineStage({ params: { type: 'object' }, inputs: [], outputs: [], run() {} });\n",
    'stages/throws.ts': "throw new Error('  \\n\\t\\nthe real reason\\nmore');\n",
    'node_modules/localpkg/package.json': '{ "name": "localpkg", "version": "1.0.0" }',
    'node_modules/localpkg/st.ts': MODULE(),
    'd.txt': 'x',
  };
  assert.deepEqual(
    await problems(t, `stages:
  m:
    uses: stages/m.ts
    inputs: { data: d.txt, zzzzzz: d.txt }
  b:
    uses: stages/bare.ts
    inputs: { x: d.txt }
    outs: { o: out.txt }
  t:
    uses: stages/throws.ts
  dot:
    uses: ./stages/exvo.ts
  noext:
    uses: ./stages/plain
`, { builtinRoot: ROOT }, { ...files, 'stages/plain.js': 'export default {};\n' }),
    [
      "4:28 stages.m.inputs.zzzzzz: stage module 'stages/m.ts' has no input 'zzzzzz' (its inputs: data)",
      "7:15 stages.b.inputs.x: stage module 'stages/bare.ts' has no input 'x' (its inputs: none)",
      "8:13 stages.b.outs.o: stage module 'stages/bare.ts' has no output 'o' (its outputs: none)",
      "10:11 stages.t.uses: cannot load stage module 'stages/throws.ts': the real reason",
      "12:11 stages.dot.uses: unknown stage module './stages/exvo.ts': no such file in the workspace or among the built-in stages",
      "14:11 stages.noext.uses: unknown stage module './stages/plain': no such file in the workspace or among the built-in stages",
    ],
  );
  const ok = await compile(t, 'stages:\n  p:\n    uses: localpkg/st.ts\n    inputs: { data: d.txt }\n', { builtinRoot: ROOT }, files);
  assert.equal(ok.stages.get('p')!.module!.rel, 'node_modules/localpkg/st.ts', "a package installed in the workspace's own node_modules");
  const usage = await compile(t, 'stages:\n  m:\n    uses: stages/m.ts\n    inputs: { data: d.txt }\n', { sets: ['stages.m.params.zzzzzz=3'] }, files).catch((e: unknown) => e);
  assert.equal((usage as Error).message, "--set 'stages.m.params.zzzzzz=3': stage module 'stages/m.ts' has no param 'zzzzzz' (its params: n)");
});

test('the spec file is named as the user would type it from here when no display name is given', async (t) => {
  const w = scratch(t, { 'p.yaml': 'stages:\n  a:\n    run: [echo]\n' });
  const err = await new Engine(w).compile('nope.yaml', { displayName: undefined }).catch((e: unknown) => e);
  assert.ok(err instanceof UsageError, "err instanceof UsageError");
  assert.equal(err.message, `spec file not found: ${relative(process.cwd(), join(w, 'nope.yaml'))}`);
});

test('--set: params.NAME sets the parameter itself; a module param typo is caught for that stage only, whatever its name\'s length; the schema check is kept under the cache\'s specs/', async (t) => {
  const p = await compile(t, "params: { lr: 0.1 }\nstages:\n  a:\n    run: [echo, '${params.lr}']\n", { sets: ['params.lr=0.5'] });
  assert.deepEqual(p.stages.get('a')!.command!.argv, [['echo'], ['0.5']]);
  const files = { 'stages/m.ts': MODULE(), 'd.txt': 'x' };
  const spec = 'stages:\n  mod:\n    uses: stages/m.ts\n    inputs: { data: d.txt }\n  other:\n    run: [echo]\n';
  const err = await compile(t, spec, { sets: ['stages.mod.params.nn=3'] }, files).catch((e: unknown) => e);
  assert.equal((err as Error).message, "--set 'stages.mod.params.nn=3': stage module 'stages/m.ts' has no param 'nn' (did you mean 'n'?)");
  const ok = await compile(t, spec, { sets: ['stages.other.params.zz=3'] }, files);
  assert.deepEqual(ok.stages.get('other')!.params, { zz: 3 }, "another stage's params are not checked against this module's");
  const w = scratch(t, { 'p.yaml': spec, ...files });
  const e = new Engine(w);
  await e.compile('p.yaml');
  assert.equal(readdirSync(join(e.cache, 'specs')).filter((f) => f.endsWith('.checks.json')).length, 1);
});

test('a reference or a need from a variant that matches no variant of its target is named, with the variants there are', async (t) => {
  const spec = `stages:
  train:
    matrix: { w: [a, b] }
    run: [echo, '\${outputs.m}']
    outs: { m: 'm-\${matrix.w}.txt' }
  score:
    matrix: { w: [c] }
    run: [cat, '\${stages.train.outputs.m}']
  after:
    matrix: { w: [a, c] }
    needs: [train]
    run: [echo]
`;
  assert.deepEqual(await problems(t, spec), [
    "8:16 stages.score.run[1]: no variant of stage 'train' has w=c, as score[w=c] needs (its variants: train[w=a], train[w=b]); name one, as ${stages.train[w=a].outputs.m}",
    "11:13 stages.after.needs[0]: no variant of stage 'train' has w=c, as after[w=c] needs (its variants: train[w=a], train[w=b]); name one, as train[w=a]",
  ]);
  const ok = await compile(t, spec.replace('w: [c] }', 'w: [b] }').replace('w: [a, c]', 'w: [a]'));
  assert.deepEqual(ok.stages.get('score[w=b]')!.upstream, ['train[w=b]']);
  assert.deepEqual(ok.stages.get('after[w=a]')!.upstream, ['train[w=a]']);
});

test('more places a value is checked: matrix seeds at both ends of their range, a default time limit, a path published twice below the top', async (t) => {
  const p = await compile(t, 'stages:\n  a:\n    matrix: { seed: [0, 4294967295] }\n    run: [echo]\n');
  assert.deepEqual([...p.stages.values()].map((n) => n.seed), [0, 4294967295]);
  assert.deepEqual(await problems(t, 'stages:\n  a:\n    matrix: { seed: [-1, 4294967296] }\n    run: [echo]\n  b:\n    matrix: { seed: [4294967296] }\n    run: [echo]\n'), [
    "3:22 stages.a.matrix.seed[0]: a matrix seed must be a whole number from 0 to 4294967295 (it becomes the variant's seed), got -1",
    "6:22 stages.b.matrix.seed[0]: a matrix seed must be a whole number from 0 to 4294967295 (it becomes the variant's seed), got 4294967296",
  ]);
  assert.deepEqual(await problems(t, 'resources: { time: soon }\nstages:\n  a:\n    run: [echo]\n'), [
    "1:20 resources.time: bad time limit 'soon': use minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]] (as Slurm does) or 90s, 30m, 2h, 1d",
  ]);
  assert.deepEqual(await problems(t, 'stages:\n  a:\n    run: [echo]\n    outs: { o: out/r.txt }\n  b:\n    run: [echo]\n    outs: { o: out/r.txt }\n'), [
    "7:16 stages.b.outs.o: 'out/r.txt' is published by both a and b: each outs path needs exactly one producer",
  ]);
});

const TWO = `import { defineStage } from 'rrtn-pipeline';
export default defineStage({ params: { type: 'object', additionalProperties: false, properties: { label: { type: 'string' }, n: { type: 'integer' }, tags: { type: 'array' } } }, inputs: ['data', 'extra'], outputs: ['o', 'p'], run() {} });
`;

test('module stages: params mixing text and references become text, a lone reference keeps its type, list items are placed; every name listed', async (t) => {
  const files = { 'stages/two.ts': TWO, 'd-x.txt': 'x' };
  const p = await compile(t, `params: { tag: x }
stages:
  m:
    matrix: { k: [1] }
    uses: stages/two.ts
    params: { label: 'run-\${matrix.k}-\${params.tag}', n: '\${matrix.k}', tags: ['\${params.tag}', b] }
    inputs: { data: 'd-\${params.tag}.txt', extra: d-x.txt }
`, {}, files);
  const m = p.stages.get('m[k=1]')!;
  assert.deepEqual(m.params, { label: 'run-1-x', n: 1, tags: ['x', 'b'] });
  assert.deepEqual(m.deps, ['d-x.txt', 'd-x.txt']);
  assert.deepEqual(await problems(t, `stages:
  m:
    uses: stages/two.ts
    params: { tags: [a, '\${params.nope}'] }
    inputs: { data: d-x.txt, extra: d-x.txt, zzzzzz: d-x.txt }
    outs: { qqqqqq: out.txt }
`, {}, files), [
    '4:25 stages.m.params.tags[1]: unknown reference ${params.nope}: no such parameter',
    "5:46 stages.m.inputs.zzzzzz: stage module 'stages/two.ts' has no input 'zzzzzz' (its inputs: data, extra)",
    "6:13 stages.m.outs.qqqqqq: stage module 'stages/two.ts' has no output 'qqqqqq' (its outputs: o, p)",
  ]);
  const usage = await compile(t, 'stages:\n  m:\n    uses: stages/two.ts\n    inputs: { data: d-x.txt, extra: d-x.txt }\n', { sets: ['stages.m.params.zzzzzz=3'] }, files).catch((e: unknown) => e);
  assert.equal((usage as Error).message, "--set 'stages.m.params.zzzzzz=3': stage module 'stages/two.ts' has no param 'zzzzzz' (its params: label, n, tags)");
});
