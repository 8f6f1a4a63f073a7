// A user's mistakes: every problem at once, as file:line:col: path: message, exit code 2.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SCALE, FORMAT, SUM } from './helpers/fixtures.ts';
import { Workspace } from './helpers/workspace.ts';

function workspace(spec: string): Workspace {
  return new Workspace({ 'stages/scale.ts': SCALE, 'stages/lib/format.ts': FORMAT, 'stages/sum.ts': SUM, 'p.yaml': spec, 'data/numbers.txt': '1 2\n' });
}

function problems(ws: Workspace, ...args: string[]): string[] {
  const r = ws.run('validate', 'p.yaml', ...args);
  assert.equal(r.code, 2, `expected exit 2, got ${r.code}: ${r.stdout}${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace for a spec mistake');
  return r.stderr.trim().split('\n').filter((l) => l.startsWith('p.yaml:'));
}

test('every kind of spec error is reported at its line and column, all at once', (t) => {
  const ws = workspace(`name: bad
stages:
  scale:
    uses: stages/scale.ts
    inputs: { numbers: data/numbers.txt }
    params: { factr: 2 }
  sum:
    uses: stages/sum.ts
    inputs: { values: "\${stages.scael.outputs.scaled}" }
  ghost:
    uses: stages/nope.ts
  cmd:
    run: [echo, "\${params.missing}"]
    shell: "yes"
  twice:
    uses: stages/sum.ts
    inputs: { values: "\${stages.scale.outputs.nothing}" }
`);
  t.after(() => ws.dispose());
  const lines = problems(ws);
  const expected = [
    /^p\.yaml:6:13: stages\.scale\.params: missing required key 'factor'$/,
    /^p\.yaml:6:15: stages\.scale\.params\.factr: unknown key 'factr' \(did you mean 'factor'\?\)$/,
    /^p\.yaml:9:23: stages\.sum\.inputs\.values: unknown stage 'scael' in \$\{stages\.scael\.outputs\.scaled\} \(did you mean 'scale'\?\)$/,
    /^p\.yaml:11:11: stages\.ghost\.uses: unknown stage module 'stages\/nope\.ts'/,
    /^p\.yaml:13:17: stages\.cmd\.run\[1\]: unknown reference \$\{params\.missing\}: no such parameter$/,
    /^p\.yaml:14:12: stages\.cmd\.shell: must be boolean, got string "yes"$/,
    /^p\.yaml:17:23: stages\.twice\.inputs\.values: stage 'scale' has no output 'nothing'/,
  ];
  assert.equal(lines.length, expected.length, lines.join('\n'));
  expected.forEach((re, i) => assert.match(lines[i]!, re));
});

test('a wrong type in a stage param and a missing top-level key', (t) => {
  const ws = workspace(`name: x
stages:
  scale:
    uses: stages/scale.ts
    inputs: { numbers: data/numbers.txt }
    params:
      factor: "two"
`);
  t.after(() => ws.dispose());
  assert.deepEqual(problems(ws), ['p.yaml:7:15: stages.scale.params.factor: must be number, got string "two"']);
  ws.write('p.yaml', 'name: empty\n');
  assert.deepEqual(problems(ws), ["p.yaml:1:1: (root): missing required key 'stages'"]);
});

test('a cycle is reported with its stages', (t) => {
  const ws = workspace(`stages:
  a:
    run: [cat, "\${stages.c.outputs.o}", "\${outputs.o}"]
    outs: { o: null }
  b:
    run: [cat, "\${stages.a.outputs.o}", "\${outputs.o}"]
    outs: { o: null }
  c:
    run: [cat, "\${stages.b.outputs.o}", "\${outputs.o}"]
    outs: { o: null }
`);
  t.after(() => ws.dispose());
  const lines = problems(ws);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^p\.yaml:2:3: stages\.a: dependency cycle: (a -> c -> b -> a|a -> b -> c -> a)$/);
});

test('YAML syntax errors, bad env and matrix references, paths outside the workspace', (t) => {
  const ws = workspace('stages:\n  a: [unclosed\n');
  t.after(() => ws.dispose());
  const syntax = problems(ws);
  assert.ok(syntax.length >= 1, "syntax.length >= 1");
  assert.match(syntax[0]!, /^p\.yaml:\d+:\d+: \(root\): /);

  ws.write('p.yaml', `stages:
  a:
    run: [cat, "\${env.PIPELINE_TEST_UNSET}", "\${matrix.k}"]
    deps: [../outside.txt]
    outs: { o: /etc/passwd }
`);
  const lines = problems(ws);
  assert.match(lines[0]!, /^p\.yaml:3:16: stages\.a\.run\[1\]: environment variable PIPELINE_TEST_UNSET is not set/);
  assert.match(lines[1]!, /^p\.yaml:3:46: stages\.a\.run\[2\]: unknown reference \$\{matrix\.k\}: this stage has no matrix$/);
  assert.match(lines[2]!, /^p\.yaml:4:12: stages\.a\.deps\[0\]: path '\.\.\/outside\.txt' resolves outside the workspace/);
  assert.match(lines[3]!, /^p\.yaml:5:16: stages\.a\.outs\.o: path '\/etc\/passwd' resolves outside the workspace/);
  // The env default form works, and so does the variable itself.
  ws.write('p.yaml', `stages:
  a:
    run: [echo, "\${env.PIPELINE_TEST_UNSET:-fallback}"]
`);
  assert.equal(ws.run('validate', 'p.yaml').code, 0);
});

test('usage errors exit 2 with a message; a stage module with a syntax error names its line', (t) => {
  const ws = workspace('stages:\n  s:\n    uses: stages/broken.ts\n');
  t.after(() => ws.dispose());
  ws.write('stages/broken.ts', 'export default {\n  oops: = 1\n};\n');
  const lines = problems(ws);
  assert.match(lines[0]!, /^p\.yaml:3:11: stages\.s\.uses: cannot load stage module 'stages\/broken\.ts': .*stages\/broken\.ts:2:9: /);
  const r = ws.run('run');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /missing <spec>/);
  assert.equal(ws.run('frobnicate').code, 2);
  assert.equal(ws.run('run', 'nope.yaml').code, 2);
  assert.equal(ws.run('run', 'p.yaml', '--jobs', 'x').code, 2);
});
