// Experiments compared from the cache (`exp show`, `exp diff`), labelled sweep inputs, and the
// JSON a script reads (`run --json`, `validate --json`, `status --json`), through the real CLI.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import type { ExpRow } from '../src/experiments/collect.ts';
import { Workspace } from './helpers/workspace.ts';

const SPEC = `params: { scale: 2 }
stages:
  train:
    matrix: { lr: [0.1, 0.01] }
    run: [sh, -c, 'mkdir -p "$0" && printf "{\\"acc\\": %s, \\"loss\\": {\\"dev\\": %s}, \\"n\\": 7}" "$1" "$2" > "$0/m.json" && printf "epoch,loss\\n1,%s\\n2,1\\n" "$2" > "$0/curve.csv"', '\${outputs.result}', '\${matrix.lr}', '\${params.scale}']
    outs: { result: null }
    metrics: [result/m.json]
    plots: [result/curve.csv]
  gather:
    uses: stages/gather.ts
    inputs: { runs: '\${stages.train.outputs.result}' }
    executor: inline
`;

const GATHER = `import { writeFileSync } from 'node:fs';
import { defineStage } from 'rrtn-pipeline';
export default defineStage({
  params: {}, inputs: ['runs'], outputs: ['labels'],
  run(ctx) {
    writeFileSync(ctx.outputs.labels, JSON.stringify(ctx.variants.runs.map((v) => ({ stage: v.stage, matrix: v.matrix, same: v.path === ctx.inputs.runs[ctx.variants.runs.indexOf(v)] }))));
  },
});
`;

test('exp show and exp diff compare every variant and every past run from the cache, without rerunning', async (t) => {
  const ws = new Workspace({ 'p.yaml': SPEC, 'stages/gather.ts': GATHER });
  t.after(() => ws.dispose());
  const first = ws.run('run', 'p.yaml', '--json');
  assert.equal(first.code, 0, first.stderr);
  const summary = JSON.parse(first.stdout) as { ok: boolean; spec: string; stages: Array<{ id: string; state: string; key: string }> };
  assert.equal(summary.ok, true);
  assert.equal(summary.spec, 'p.yaml');
  assert.deepEqual(summary.stages.map((s) => [s.id, s.state]), [['train[lr=0.1]', 'done'], ['train[lr=0.01]', 'done'], ['gather', 'done']]);
  assert.ok(summary.stages.every((s) => /^[0-9a-f]{32}$/.test(s.key)), "summary.stages.every((s) => /^[0-9a-f]{32}$/.test(s.key))");
  assert.doesNotMatch(first.stdout, /stages: 3 done/, 'with --json, stdout is the JSON only');
  const again = JSON.parse(ws.run('run', 'p.yaml', '--json').stdout) as { stages: Array<{ state: string; key: string }> };
  assert.deepEqual(again.stages.map((s) => s.state), ['cached', 'cached', 'cached'], 'the fast path answers --json too');
  assert.deepEqual(again.stages.map((s) => s.key), summary.stages.map((s) => s.key));

  assert.equal(ws.run('run', 'p.yaml', '--set', 'scale=3').code, 0);
  // Asked with the same --set, the scale=3 runs are current (tests of the spec itself: below).
  const S3 = ['--set', 'scale=3'];
  const show = ws.run('exp', 'show', 'p.yaml', ...S3, '--json');
  assert.equal(show.code, 0, show.stderr);
  const table = JSON.parse(show.stdout) as { rows: ExpRow[]; params: string[]; metrics: string[]; best: Record<string, string>; direction: Record<string, string> };
  assert.deepEqual(table.rows.map((r) => [r.stage, r.current, r.metrics['loss.dev']]), [
    ['train[lr=0.1]', true, 3],
    ['train[lr=0.1]', false, 2],
    ['train[lr=0.01]', true, 3],
    ['train[lr=0.01]', false, 2],
  ]);
  assert.deepEqual(table.params, ['lr'], 'only the params that differ between rows');
  assert.deepEqual(table.metrics, ['acc', 'loss.dev', 'n']);
  assert.deepEqual(table.direction, { acc: 'max', 'loss.dev': 'min', n: 'max' });
  const id = (stage: string, current: boolean) => table.rows.find((r) => r.stage === stage && r.current === current)!.id;
  assert.equal(table.best.acc, id('train[lr=0.1]', true));
  assert.equal(table.best['loss.dev'], id('train[lr=0.1]', false));
  assert.deepEqual(table.rows[1]!.changed.length, 1);
  assert.match(table.rows[1]!.changed[0]!, /^command '.* 0\.1 2' -> '.* 0\.1 3'$/);
  assert.deepEqual(table.rows[0]!.changed, []);
  assert.deepEqual(table.rows[0]!.plots, { 'result/curve.csv': [{ epoch: 1, loss: 3 }, { epoch: 2, loss: 1 }] });

  const text = ws.run('exp', 'show', 'p.yaml', ...S3).stdout.split('\n');
  assert.match(text[0]!, /^run\s+stage\s+date\s+from\s+commit\s+lr\s+acc\s+loss\.dev\s+n\s+changed since$/);
  assert.match(text.find((l) => l.startsWith(id('train[lr=0.1]', false)))!, /\(past\)\s+train\[lr=0\.1\]\s+\S+ \S+\s+spec\s+-\s+0\.1\s+0\.1\s+2 \*/);
  assert.match(ws.run('exp', 'show', 'p.yaml', ...S3, '--only-changed').stdout, /^run\s+stage\s+date\s+from\s+commit\s+lr\s+acc\s+loss\.dev\s+changed since$/m, '--only-changed drops a metric the same in every row');
  const md = ws.run('exp', 'show', 'p.yaml', ...S3, '--md', '--sort-by', 'loss.dev').stdout.split('\n');
  assert.match(md[0]!, /^\| run \| stage \| date \| from \| commit \| lr \| acc \| loss\.dev \| n \| changed since \|$/);
  assert.deepEqual(md.slice(2, 6).map((l) => l.split(' | ')[7]), ['2 *', '2', '3', '3'], 'sorted best first (lower loss)');
  const csv = ws.run('exp', 'show', 'p.yaml', ...S3, '--csv').stdout.trim().split('\n');
  assert.equal(csv[0], 'run,key,stage,current,committed_at,sets,git_commit,git_dirty,names,lr,acc,loss.dev,n');
  assert.equal(csv.length, 5);
  const bad = ws.run('exp', 'show', 'p.yaml', ...S3, '--sort-by', 'accuracy');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--sort-by: no metric 'accuracy' \(metrics: acc, loss\.dev, n\)/);

  const diff = JSON.parse(ws.run('exp', 'diff', 'p.yaml', ...S3, 'train[lr=0.1]', 'train[lr=0.01]', '--json').stdout) as {
    params: Array<{ name: string; a: unknown; b: unknown }>;
    metrics: Array<{ name: string; a: number; b: number; delta: number; better: string }>;
    other: string[];
  };
  assert.deepEqual(diff.params, [{ name: 'lr', a: 0.1, b: 0.01 }]);
  assert.equal(diff.metrics.length, 1);
  assert.equal(diff.metrics[0]!.name, 'acc');
  assert.ok(Math.abs(diff.metrics[0]!.delta - -0.09) < 1e-12, "Math.abs(diff.metrics[0]!.delta - -0.09) < 1e-12");
  assert.equal(diff.metrics[0]!.better, 'a');
  assert.equal(diff.other.length, 1);
  const past = id('train[lr=0.1]', false);
  const d2 = ws.run('exp', 'diff', 'p.yaml', ...S3, past, 'train[lr=0.1]');
  assert.equal(d2.code, 0, d2.stderr);
  assert.match(d2.stdout, /^loss\.dev\s+2\s+3\s+\+1\s+a$/m);
  assert.match(ws.run('exp', 'diff', 'p.yaml', ...S3, 'nope', past).stderr, /no run 'nope' in p\.yaml/);
  // Nothing reran: the records are as they were.
  assert.deepEqual((JSON.parse(ws.run('run', 'p.yaml', '--set', 'scale=3', '--json').stdout) as { stages: Array<{ state: string }> }).stages.map((s) => s.state), ['cached', 'cached', 'cached']);
});

test('a stage gathering a sweep reads which variant wrote each path', async (t) => {
  const ws = new Workspace({ 'p.yaml': SPEC, 'stages/gather.ts': GATHER });
  t.after(() => ws.dispose());
  const r = ws.run('run', 'p.yaml', '--json');
  assert.equal(r.code, 0, r.stderr);
  const key = (JSON.parse(r.stdout) as { stages: Array<{ id: string; key: string }> }).stages.find((s) => s.id === 'gather')!.key;
  const [digest] = readdirSync(ws.path(`cache/views/${key}`));
  const labels = JSON.parse(ws.read(`cache/views/${key}/${digest}/labels`)) as unknown;
  assert.deepEqual(labels, [
    { stage: 'train[lr=0.1]', matrix: { lr: 0.1 }, same: true },
    { stage: 'train[lr=0.01]', matrix: { lr: 0.01 }, same: true },
  ]);
});

test('validate --json gives every problem as data, and a failed run --json says which stage and why', async (t) => {
  const ws = new Workspace({ 'p.yaml': 'stages:\n  a:\n    run: [sh, -c, "echo boom >&2; exit 4"]\n  b:\n    run: [echo]\n    needs: [a]\n', 'bad.yaml': 'stages:\n  a:\n    run: [echo]\n    metrics: [out/m.json]\n    inputz: {}\n' });
  t.after(() => ws.dispose());
  const ok = ws.run('validate', 'p.yaml', '--json');
  assert.equal(ok.code, 0);
  assert.deepEqual(JSON.parse(ok.stdout), { spec: 'p.yaml', valid: true, stages: ['a', 'b'], diagnostics: [] });
  const bad = ws.run('validate', 'bad.yaml', '--json');
  assert.equal(bad.code, 2);
  assert.deepEqual(JSON.parse(bad.stdout), {
    spec: 'bad.yaml',
    valid: false,
    stages: [],
    diagnostics: [
      { file: 'bad.yaml', line: 4, col: 15, path: 'stages.a.metrics[0]', message: "'out/m.json' must start with one of the stage's outputs (it has none): <output>/<file inside it>" },
      { file: 'bad.yaml', line: 5, col: 5, path: 'stages.a.inputz', message: "unknown key 'inputz' (did you mean 'inputs'?)" },
    ],
  });
  const run = ws.run('run', 'p.yaml', '--json');
  assert.equal(run.code, 1);
  const s = JSON.parse(run.stdout) as { ok: boolean; stages: Array<{ id: string; state: string; error?: string; log?: string }> };
  assert.equal(s.ok, false);
  assert.deepEqual(s.stages.map((x) => [x.id, x.state]), [['a', 'failed'], ['b', 'blocked']]);
  assert.match(s.stages[0]!.error!, /4/);
  assert.match(s.stages[0]!.log!, /logs\/failed\/a\.log$/);
});

test('metrics and plots must name a file inside one of the stage\'s outputs', (t) => {
  const ws = new Workspace({ 'p.yaml': 'stages:\n  a:\n    run: [echo]\n    outs: { o: null }\n    metrics: [x/m.json, o/../m.json, o/m.json]\n    plots: [o/]\n' });
  t.after(() => ws.dispose());
  const r = ws.run('validate', 'p.yaml');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /p\.yaml:5:15: stages\.a\.metrics\[0\]: 'x\/m\.json' must start with one of the stage's outputs \(o\): <output>\/<file inside it>/);
  assert.match(r.stderr, /p\.yaml:5:25: stages\.a\.metrics\[1\]: 'o\/\.\.\/m\.json' must name a file inside output 'o'/);
  assert.match(r.stderr, /stages\.a\.plots\[0\]: 'o\/' must name a file inside output 'o'/);
  assert.match(r.stderr, /3 problems in the spec/);
});

test('exp show reads a metrics file nested 50,000 deep: the numbers near the top are shown, the depth costs no crash', (t) => {
  const ws = new Workspace({
    'p.yaml': 'stages:\n  a:\n    run: [node, mk.cjs, "${outputs.o}"]\n    outs: { o: null }\n    metrics: [o/m.json]\n',
    'mk.cjs': `const fs = require('fs');\nfs.mkdirSync(process.argv[2]);\nfs.writeFileSync(process.argv[2] + '/m.json', '{"acc": 0.5, "deep": ' + '{"a":'.repeat(50000) + '1' + '}'.repeat(50000) + ', "tail": {"x": 2}}');\n`,
  });
  t.after(() => ws.dispose());
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 0, r.stderr);
  const show = ws.run('exp', 'show', 'p.yaml', '--json');
  assert.equal(show.code, 0, show.stderr);
  const table = JSON.parse(show.stdout) as { rows: ExpRow[]; metrics: string[] };
  assert.deepEqual(table.metrics, ['acc', 'tail.x']);
  assert.equal(table.rows[0]!.metrics.acc, 0.5);
});
