// Malformed specs, generated from a seed: hundreds of them, of many kinds, each known to be invalid
// (so that a spec the engine accepts is a finding, not noise). `npm run fuzz:specs` runs them all
// through the CLI; test/trust-fuzz.test.ts runs a sample on every test run.
import { Random } from '../../src/random.ts';

export interface SpecCase {
  kind: string;
  /** The spec's text (written as the case's own file). */
  spec: string;
  /** Extra CLI arguments (e.g. --set). */
  args?: string[];
}

/** Stage modules the cases refer to, written once into the fuzz workspace. */
export const MODULES: Record<string, string> = {
  'stages/ok.ts': `import { writeFileSync } from 'node:fs';
import { defineStage } from 'rrtn-pipeline';
export default defineStage({ params: { type: 'object', additionalProperties: false, properties: { n: { type: 'number', default: 1 }, tag: { type: 'string' } } }, inputs: ['x'], outputs: ['o'], async run(ctx) { writeFileSync(ctx.outputs.o, 'x'); } });
`,
  'stages/syntax.ts': 'export default {\n  oops: = 1\n};\n',
  'stages/badschema.ts': `import { defineStage } from 'rrtn-pipeline';\nexport default defineStage({ params: { type: 'objekt' }, outputs: ['o'], async run() {} });\n`,
  'stages/plain.ts': 'export default { params: {}, outputs: ["o"], run() {} };\n',
  'stages/badoutputs.ts': `import { defineStage } from 'rrtn-pipeline';\nexport default defineStage({ params: {}, outputs: [1, 2], async run() {} } as never);\n`,
  'stages/throwsload.ts': `throw new Error('this module fails when loaded');\n`,
  'data/x.txt': '1 2 3\n',
};

const CMD = "[sh, -c, 'echo x > \"$0\"', \"${outputs.o}\"]";

function ident(r: Random): string {
  const a = 'abcdefghij';
  return Array.from({ length: 1 + r.int(6) }, () => a[r.int(a.length)]).join('');
}

type Gen = (r: Random) => SpecCase | SpecCase[];

/** Each generator makes one kind of mistake, varied by the random source. */
const GENERATORS: Record<string, Gen> = {
  'yaml syntax': (r) => {
    const bad = ['stages:\n  a: [unclosed\n', 'stages:\n  a:\n    run: "unterminated\n', 'stages:\n\ta:\n\t\trun: [echo]\n', 'stages:\n  a:\n   run: [echo]\n  b: : :\n', 'stages: {a: {run: [echo]}\n', '- stages\n- : x\n  y: [', 'stages:\n  a:\n    run: [echo]\n  ? [x, y\n'];
    return { kind: 'yaml syntax', spec: bad[r.int(bad.length)]! };
  },
  'unresolved alias': (r) => ({ kind: 'unresolved alias', spec: `stages:\n  ${ident(r)}:\n    run: *${ident(r)}x\n` }),
  'alias bomb': (r) => {
    const width = 6 + r.int(6);
    let s = `x0: &x0 [${Array(width).fill('a').join(', ')}]\n`;
    for (let i = 1; i < 8 + r.int(4); i++) s += `x${i}: &x${i} [${Array(width).fill(`*x${i - 1}`).join(', ')}]\n`;
    return { kind: 'alias bomb', spec: `${s}stages:\n  a:\n    run: [echo]\n` };
  },
  'deep nesting': (r) => {
    const depth = [65, 100, 500, 3000, 10000][r.int(5)]!;
    const inner = r.int(2) ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{a: '.repeat(depth)}1${'}'.repeat(depth)}`;
    return { kind: 'deep nesting', spec: `params:\n  p: ${inner}\nstages:\n  a:\n    run: [echo]\n` };
  },
  'duplicate key': (r) => {
    const k = ident(r);
    const where = r.int(3);
    if (where === 0) return { kind: 'duplicate key', spec: `stages:\n  ${k}:\n    run: [echo]\n  ${k}:\n    run: [true]\n` };
    if (where === 1) return { kind: 'duplicate key', spec: `stages:\n  a:\n    run: [echo]\n    run: [true]\n` };
    return { kind: 'duplicate key', spec: `params:\n  ${k}: 1\n  ${k}: 2\nstages:\n  a:\n    run: [echo]\n` };
  },
  'wrong type': (r) => {
    const bad = [
      'stages: [a, b]\n',
      'stages: "none"\n',
      'stages:\n  a: 5\n',
      'stages:\n  a:\n    run: 42\n',
      'stages:\n  a:\n    run: { x: 1 }\n',
      'params: [1, 2]\nstages:\n  a:\n    run: [echo]\n',
      `seed: ${['"ten"', '-1', '1.5', '.inf', '-.inf', '.nan', '99999999999', 'null', '[1]'][r.int(9)]}\nstages:\n  a:\n    run: [echo]\n`,
      'name: [x]\nstages:\n  a:\n    run: [echo]\n',
      'executor: spaceship\nstages:\n  a:\n    run: [echo]\n',
      `stages:\n  a:\n    run: [echo]\n    resources: { ${['cpus: 0', 'gpus: -1', 'time: soon', 'time: "-5"', 'time: "0"', 'mem: 5', 'nodes: 2'][r.int(7)]} }\n`,
      'stages:\n  a:\n    run: [echo]\n    shell: "yes"\n',
      'stages:\n  a:\n    run: [echo]\n    needs: b\n',
      'stages:\n  a:\n    run: [echo]\n    env: { X: [1] }\n',
      'stages:\n  a:\n    run: [echo]\n    outs: { o: 5 }\n',
      'stages:\n  a:\n    run: [echo]\n    outs: { o: { path: x, overwrite: "yes" } }\n',
      'stages:\n  a:\n    uses: stages/ok.ts\n    inputs: { x: data/x.txt }\n    params: { n: "two" }\n',
      '',
      'just a string\n',
      'stages: {}\n',
    ];
    return { kind: 'wrong type', spec: bad[r.int(bad.length)]! };
  },
  'unknown key': (r) => {
    const [where, key] = [['top', 'stagez'], ['top', 'parms'], ['stage', 'runs'], ['stage', 'input'], ['stage', 'out'], ['stage', 'dependencies'], ['stage', ident(r) + 'q']][r.int(7)]!;
    return { kind: 'unknown key', spec: where === 'top' ? `${key}: {}\nstages:\n  a:\n    run: [echo]\n` : `stages:\n  a:\n    run: [echo]\n    ${key}: x\n` };
  },
  'bad reference': (r) => {
    const refs = [`\${params.${ident(r)}}`, '${env.1BAD}', `\${env.PIPELINE_FUZZ_UNSET_${ident(r).toUpperCase()}}`, '${params.x', '${matrix.k}', '${nothing.here}', '${stages.nope.outputs.o}', '${stages.a.outputs.missing}', '${outputs.undeclared}', '${}', '${stages.a}', 'x ${params.y'];
    const ref = refs[r.int(refs.length)]!;
    const where = r.int(3);
    if (where === 0) return { kind: 'bad reference', spec: `params:\n  x: 1\nstages:\n  a:\n    run: [echo, "${ref}"]\n    outs: { o: null }\n  b:\n    run: [echo, "${ref}"]\n` };
    if (where === 1) return { kind: 'bad reference', spec: `params:\n  x: 1\nstages:\n  a:\n    run: ${CMD}\n    outs: { o: null }\n  b:\n    uses: stages/ok.ts\n    inputs: { x: "${ref}" }\n` };
    return { kind: 'bad reference', spec: `params:\n  x: 1\n  y: "\${stages.a.outputs.o}"\nstages:\n  a:\n    run: ${CMD}\n    outs: { o: null }\n  b:\n    run: [echo, "${ref}"]\n` };
  },
  'bad matrix': (r) => {
    const bad = [
      'matrix: { k: [] }',
      'matrix: {}',
      'matrix: { k: ["1", 1] }',
      'matrix: { k: [true, "true"] }',
      'matrix: { k: [1, 2], exclude: [{ k: 1 }, { k: 2 }] }',
      'matrix: { k: 5 }',
      'matrix: { k: [1], exclude: {} }',
    ];
    return { kind: 'bad matrix', spec: `stages:\n  a:\n    ${bad[r.int(bad.length)]}\n    run: [echo]\n` };
  },
  'bad path': (r) => {
    const paths = ['"."', '"./"', '..', '../x', '/etc/passwd', '/tmp/x', 'cache', 'cache/x', '"a/../.."', '"sub/../"'];
    const p = paths[r.int(paths.length)]!;
    const where = r.int(3);
    if (where === 0) return { kind: 'bad path', spec: `stages:\n  a:\n    run: ${CMD}\n    outs: { o: ${p} }\n` };
    if (where === 1) return { kind: 'bad path', spec: `stages:\n  a:\n    run: [cat, x]\n    deps: [${p}]\n` };
    return { kind: 'bad path', spec: `stages:\n  a:\n    uses: stages/ok.ts\n    inputs: { x: ${p} }\n` };
  },
  'shared outs': (r) => {
    const p = `out/${ident(r)}`;
    const nested = r.int(2);
    return { kind: 'shared outs', spec: `stages:\n  a:\n    run: ${CMD}\n    outs: { o: ${nested ? 'out' : p} }\n  b:\n    run: ${CMD}\n    outs: { o: ${p} }\n` };
  },
  'deps on a module stage': () => ({ kind: 'deps on a module stage', spec: 'stages:\n  a:\n    uses: stages/ok.ts\n    inputs: { x: data/x.txt }\n    deps: [data/x.txt]\n' }),
  cycle: (r) => {
    const n = 1 + r.int(5);
    const names = Array.from({ length: n }, (_, i) => `s${i}`);
    return { kind: 'cycle', spec: `stages:\n${names.map((s, i) => `  ${s}:\n    run: [echo]\n    needs: [${names[(i + 1) % n]}]\n`).join('')}` };
  },
  'unknown needs': (r) => ({ kind: 'unknown needs', spec: `stages:\n  a:\n    run: [echo]\n    needs: [${ident(r)}zz]\n` }),
  'bad module': (r) => {
    const m = ['stages/missing.ts', 'stages/syntax.ts', 'stages/badschema.ts', 'stages/plain.ts', 'stages/badoutputs.ts', 'stages/throwsload.ts', '/etc/hostname', '../outside.ts'][r.int(8)]!;
    return { kind: 'bad module', spec: `stages:\n  a:\n    uses: ${m}\n` };
  },
  'module misuse': (r) => {
    const bad = [
      'inputs: { x: data/x.txt, y: data/x.txt }',
      'inputs: {}',
      'inputs: { x: data/x.txt }\n    params: { nn: 1 }',
      'inputs: { x: data/x.txt }\n    outs: { nope: x.txt }',
      'inputs: { x: data/x.txt }\n    run: [echo]',
    ];
    return { kind: 'module misuse', spec: `stages:\n  a:\n    uses: stages/ok.ts\n    ${bad[r.int(bad.length)]}\n` };
  },
  'bad --set': (r) => {
    const sets = [[`${ident(r)}zz=1`], ['x'], ['=1'], ['stages.nope.params.n=1'], ['stages.a.params.nn=1'], ['stages.a=1'], ['a..b=1'], ['params.zzz=1']];
    return { kind: 'bad --set', spec: 'params:\n  lr: 0.1\nstages:\n  a:\n    uses: stages/ok.ts\n    inputs: { x: data/x.txt }\n', args: (sets[r.int(sets.length)] ?? []).flatMap((s) => ['--set', s]) };
  },
  'empty command': (r) => ({ kind: 'empty command', spec: `stages:\n  a:\n    run: ${['""', '[]', '[""]', '"   "', '["  ", x]'][r.int(5)]}\n` }),
  'bad stage name': (r) => ({ kind: 'bad stage name', spec: `stages:\n  "${['1abc', 'a b', 'a.b', 'a[1]', '-x', ''][r.int(6)]}":\n    run: [echo]\n` }),
  // A value that no quoting keeps data where it lands, wherever the shell's -c stands.
  'unquotable shell value': (r) => {
    const shell = ['sh, -c', 'env, sh, -c', "timeout, '30', bash, -c", "nice, -n, '5', sh, -e, -c", 'srun, bash, -c'][r.int(5)]!;
    const bad = [
      ['a\nEOF\ntouch pwned', `'cat <<EOF\n\${params.v}\nEOF'`],
      ['EOF', `"cat <<'EOF'\n\${params.v}\nEOF"`],
      ['1); touch pwned; ((1', "'echo $(( ${params.v} + 1 ))'"],
      ['x', "'echo $(( 2 * ${params.v} ))'"],
      ['b\n\tEOF\nc', `"cat <<-EOF\n\t\${params.v}\n\tEOF"`],
    ][r.int(5)]!;
    return { kind: 'unquotable shell value', spec: `params:\n  v: ok\nstages:\n  a:\n    run: [${shell}, ${bad[1]}]\n`, args: ['--set', `v=${JSON.stringify(bad[0])}`] };
  },
  'reserved --set name': (r) => {
    const sets = ['__proto__.x=1', 'constructor=1', 'params.toString=1', 'stages.a.params.__proto__.y=1', 'prototype.x=1', 'stages.constructor.params.n=1', 'stages.__proto__.run=x', 'params.hasOwnProperty=1'];
    return { kind: 'reserved --set name', spec: 'params:\n  lr: 0.1\nstages:\n  a:\n    uses: stages/ok.ts\n    inputs: { x: data/x.txt }\n', args: ['--set', sets[r.int(sets.length)]!] };
  },
  'bad code or passEnv': (r) => {
    const bad = ['code: [../x.py]', 'code: [/etc/passwd]', 'code: [cache/x]', 'code: ["."]', 'code: 5', 'code: [[a]]', 'passEnv: ["A-B"]', 'passEnv: X', 'passEnv: [1]', 'passEnv: ["*"]', 'passEnv: ["A*B"]'];
    return { kind: 'bad code or passEnv', spec: `stages:\n  a:\n    run: ${CMD}\n    outs: { o: null }\n    ${bad[r.int(bad.length)]}\n` };
  },
  // A value landing in text a second shell parses as code (trust round 4): refused, whatever wraps it.
  'nested shell': (r) => {
    const wrapper = ['', 'timeout 30 ', 'env A=1 ', 'nice -n 5 ', 'srun -n 1 ', 'xargs -I{} ', 'sudo -u nobody ', 'stdbuf -oL ', 'setsid ', 'command '][r.int(10)]!;
    const shell = ['sh', 'bash', 'dash', 'zsh', '/bin/sh', 'bash -e', 'sh -x', 'busybox sh'][r.int(8)]!;
    const [q0, q1] = r.int(2) ? ["'", "'"] : ['"', '"'];
    const ref = ['${params.v}', '${matrix.k}', '${env.PIPELINE_FUZZ_NESTED:-d}'][r.int(3)]!;
    const forms = [
      `${wrapper}${shell} -c ${q0}echo ${ref}${q1}`,
      `eval "echo ${ref}"`,
      `su nobody -c "echo ${ref}"`,
      `echo $(${wrapper}${shell} -c ${q0}echo ${ref}${q1})`,
      `ssh -p 22 host "echo ${ref}"`,
      `flock /tmp/l -c "echo ${ref}"`,
      `watch -n 1 "echo ${ref}"`,
      `${wrapper}${shell} -c "${shell} -c 'echo ${ref}'"`,
      `echo "echo ${ref}" | ${wrapper}${shell}`,
      `${wrapper}${shell} <<< "echo ${ref}"`,
    ];
    const line = forms[r.int(forms.length)]!;
    const run = r.int(2) ? `shell: true\n    run: ${JSON.stringify(line)}` : `run: [sh, -c, ${JSON.stringify(line)}]`;
    return { kind: 'nested shell', spec: `params:\n  v: ok\nstages:\n  a:\n    matrix: { k: [x] }\n    ${run}\n`, args: ['--set', 'v=$(touch pwned)'] };
  },
  'bad output name': (r) => {
    const names = ['"../x"', '"a/b"', '"."', '".."', '"a b"', '"\\u001b[2K"', '""', '"-x"', '"x.y"'];
    return { kind: 'bad output name', spec: `stages:\n  a:\n    run: ${CMD}\n    outs: { o: null, ${names[r.int(names.length)]}: null }\n` };
  },
  'secret in a key': (r) => {
    const name = ['API_KEY', 'GITHUB_TOKEN', 'DB_PASSWORD', 'AWS_SECRET_ACCESS_KEY', 'MY_SECRET_VALUE', 'HF_TOKEN'][r.int(6)]!;
    const where = [`run: [echo, "\${env.${name}:-x}"]`, `params: { p: "\${env.${name}:-x}" }\n    run: [echo]`, `run: [echo]\n    deps: ["\${env.${name}:-x}"]`][r.int(3)]!;
    return { kind: 'secret in a key', spec: `stages:\n  a:\n    ${where}\n` };
  },
  'neither uses nor run': (r) => ({ kind: 'neither uses nor run', spec: r.int(2) ? 'stages:\n  a:\n    params: {}\n' : 'stages:\n  a:\n    uses: stages/ok.ts\n    run: [echo]\n' }),
};

export const KINDS = Object.keys(GENERATORS);

/** `perKind` cases of every kind, from `seed`. */
export function generateCases(seed: number, perKind: number): SpecCase[] {
  const r = new Random(seed);
  const out: SpecCase[] = [];
  for (const gen of Object.values(GENERATORS)) for (let i = 0; i < perKind; i++) out.push(...[gen(r)].flat());
  return out;
}
