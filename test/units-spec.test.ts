// Spec pieces as pure units with exact expectations: `${...}` parsing, shell quoting and the shell
// facts that enter a key, time limits.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { exprText, parsePieces } from '../src/spec/references.ts';
import { quoteStateAfter, shellEnvNames, shellQuote, shellScriptIndex, shellWords } from '../src/spec/shell.ts';
import { formatDuration, parseDuration } from '../src/spec/duration.ts';

test('references: every form parsed, escapes kept literal, unterminated and malformed ones named', () => {
  assert.deepEqual(parsePieces('a ${params.lr} b'), ['a ', { kind: 'params', path: ['lr'] }, ' b']);
  assert.deepEqual(parsePieces('${params.a.b}'), [{ kind: 'params', path: ['a', 'b'] }]);
  assert.deepEqual(parsePieces('${env.HOME}'), [{ kind: 'env', name: 'HOME', fallback: undefined }]);
  assert.deepEqual(parsePieces('${env.X:-a:b}'), [{ kind: 'env', name: 'X', fallback: 'a:b' }]);
  assert.deepEqual(parsePieces('${env.X:-}'), [{ kind: 'env', name: 'X', fallback: '' }]);
  assert.deepEqual(parsePieces('${matrix.k}'), [{ kind: 'matrix', name: 'k' }]);
  assert.deepEqual(parsePieces('${stages.train[mode=joint].outputs.result}'), [{ kind: 'stage', stage: 'train[mode=joint]', output: 'result' }]);
  assert.deepEqual(parsePieces('${outputs.o-1}'), [{ kind: 'own', output: 'o-1' }]);
  assert.deepEqual(parsePieces('$${params.x} and $$'), ['${params.x} and $$']);
  assert.deepEqual(parsePieces('no refs'), ['no refs']);
  assert.deepEqual(parsePieces(''), []);
  const kinds = (t: string) => parsePieces(t).map((p) => (typeof p === 'string' ? 'text' : p.kind));
  assert.deepEqual(kinds('${params}'), ['bad']);
  assert.deepEqual(kinds('${env.1X}'), ['bad']);
  assert.deepEqual(kinds('${matrix}'), ['bad']);
  assert.deepEqual(kinds('${stages.a.outputs}'), ['bad']);
  assert.deepEqual(kinds('${outputs.a b}'), ['bad']);
  assert.deepEqual(kinds('${what.x}'), ['bad']);
  assert.deepEqual(kinds('x ${params.a'), ['bad']);
  assert.deepEqual(kinds('${params.a} then ${params.b'), ['params', 'bad']);
  const bad = parsePieces('x ${params.a')[0] as { kind: 'bad'; text: string; why: string };
  assert.deepEqual(bad, { kind: 'bad', text: 'params.a', why: 'unterminated reference: it needs a closing } (write $${ for a literal ${)' });
  assert.equal((parsePieces(`\${${'p'.repeat(60)}`)[0] as { text: string }).text, 'p'.repeat(40), 'the bad text is cut at 40 characters');
  const why = (t: string) => (parsePieces(t)[0] as { why: string }).why;
  assert.equal(why('${params}'), 'name a parameter: ${params.name}');
  assert.equal(why('${env.1X}'), 'expected ${env.NAME} or ${env.NAME:-default}');
  assert.equal(why('${matrix}'), 'name a matrix key: ${matrix.name}');
  assert.equal(why('${stages.a.outputs}'), 'expected ${stages.<id>.outputs.<name>}');
  assert.equal(why('${outputs.a b}'), 'expected ${outputs.<name>}');
  assert.equal(why('${what.x}'), 'a reference starts with params., env., matrix., stages. or outputs.');
  assert.deepEqual(kinds('${stages.s.outputs.o}'), ['stage']);
  assert.deepEqual(kinds('${stages.s.outputs.o.extra}'), ['bad']);
  assert.deepEqual(kinds('${env.X Y}'), ['bad']);
  assert.deepEqual(parsePieces('${ params.x }'), [{ kind: 'params', path: ['x'] }], 'spaces inside the braces are ignored');
  for (const t of ['${params.a.b}', '${env.X:-d}', '${env.X}', '${matrix.k}', '${stages.s.outputs.o}', '${outputs.o}']) assert.equal(exprText(parsePieces(t)[0] as never), t);
});

test('shell quoting: each value reads back as exactly itself in every context, through a real sh', () => {
  const values = ['plain', 'a b', "it's", 'say "hi"', '$(touch x)', '`id`', '$HOME', 'back\\slash', 'tab\there', 'new\nline', '*', '', '-n', ';|&<>()', "'", '"'];
  for (const v of values) {
    for (const [open, close, ctx] of [['', '', 'bare'], ["'", "'", 'single'], ['"', '"', 'double']] as const) {
      const script = `printf '%s' ${open}${shellQuote(v, ctx)}${close}`;
      assert.equal(execFileSync('sh', ['-c', script], { encoding: 'utf8' }), v, `${ctx}: ${JSON.stringify(v)} via ${script}`);
    }
  }
  assert.equal(shellQuote('simple/path-1.txt', 'bare'), 'simple/path-1.txt', 'safe words stay as they are');
  assert.equal(quoteStateAfter('echo "a'), 'double');
  assert.equal(quoteStateAfter("echo 'a\" b"), 'single');
  assert.equal(quoteStateAfter('echo "a" \'b\' c'), 'bare');
  assert.equal(quoteStateAfter('echo \\"'), 'bare', 'an escaped quote opens nothing');
  assert.equal(quoteStateAfter('"\\"'), 'double', 'an escaped quote inside double quotes does not close them');
  assert.equal(quoteStateAfter("'\\'"), 'bare', 'no escapes inside single quotes');
  assert.equal(quoteStateAfter('b"', 'double'), 'bare');
});

test('shell facts: which argument is a script, its words, the variables it reads', () => {
  assert.equal(shellScriptIndex(['x'], true), 0);
  assert.equal(shellScriptIndex(['sh', '-c', 's', 'a0'], false), 2);
  assert.equal(shellScriptIndex(['/bin/bash', '-euc', 's'], false), 2);
  assert.equal(shellScriptIndex(['bash', '-o', 'pipefail', '-c', 's'], false), 4);
  assert.equal(shellScriptIndex(['bash', 'script.sh', '-c'], false), -1);
  assert.equal(shellScriptIndex(['python3', '-c', 'print(1)'], false), -1);
  assert.equal(shellScriptIndex(['sh', '-c'], false), -1);
  assert.equal(shellScriptIndex(['sh', '-c5', 's'], false), -1, 'a -c flag is letters only');
  assert.equal(shellScriptIndex(['sh', 'x-c', 's'], false), -1, 'a script file named x-c is not a -c flag');
  assert.deepEqual(shellWords(`python3 train.py --lr 1 > "out dir/x";cat 'a.txt'|wc`), ['python3', 'train.py', '--lr', '1', 'cat', 'a.txt', 'wc']);
  assert.deepEqual(shellWords(`sh "my script.sh" 'it''s' a\\ b "q\\"x" 2>>err.log x`), ['sh', 'my script.sh', 'its', 'a b', 'q"x', '2', 'x'], 'quotes and escapes removed, one word each');
  assert.deepEqual(shellWords('a>b c >| d e&>f g <in.txt h'), ['a', 'c', 'e', 'g', 'in.txt', 'h'], 'what is written is not a word; what is read is');
  assert.deepEqual(shellWords('  '), []);
  assert.deepEqual(shellEnvNames('echo $LR ${BATCH} ${SEED:-1} $HOME $PATH $1 $$ $PIPELINE_SEED $LR'), ['BATCH', 'LR', 'SEED']);
  const own = ['HOME', 'USER', 'LOGNAME', 'PWD', 'OLDPWD', 'SHELL', 'TERM', 'TMPDIR', 'PATH', 'IFS', 'PPID', 'RANDOM', 'LINENO', 'SECONDS', 'HOSTNAME', 'PIPELINE_STAGE', 'PIPELINE_SEED'];
  assert.deepEqual(shellEnvNames(own.map((n) => `$${n}`).join(' ')), [], "the shell's own variables and the machine's identity are not inputs");
});

test('time limits: every Slurm form and the short suffixed ones, in milliseconds', () => {
  const cases: Array<[string, number | undefined]> = [
    ['30', 30 * 60e3], ['30:15', (30 * 60 + 15) * 1e3], ['1:30:00', 90 * 60e3], ['2-12', (2 * 24 + 12) * 3600e3],
    ['2-12:30', ((2 * 24 + 12) * 60 + 30) * 60e3], ['1-00:00:01', 86400e3 + 1e3], ['90s', 90e3], ['30m', 30 * 60e3],
    ['2h', 7200e3], ['1d', 86400e3], ['1.5h', 5400e3], [' 5M ', 300e3],
    ['1:30:05', (90 * 60 + 5) * 1e3], ['12-01', (12 * 24 + 1) * 3600e3], ['1.25h', 4500e3], ['2 h', 7200e3],
    ['0', undefined], ['0s', undefined], ['soon', undefined], ['-5', undefined], ['1:2:3:4', undefined], ['', undefined], ['5 m s', undefined],
    ['x90s', undefined], ['5xm', undefined], ['90sx', undefined], ['1-2-3', undefined], ['x30', undefined], ['30x', undefined],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
  assert.equal(formatDuration(1000), '1 s');
  assert.equal(formatDuration(119_000), '119 s');
  assert.equal(formatDuration(120_000), '2 min');
  assert.equal(formatDuration(30 * 60e3), '30 min');
  assert.equal(formatDuration(125 * 60e3), '2 h 5 min');
  assert.equal(formatDuration(120 * 60e3), '2 h');
});

test('shell facts, the rest: each shell by name, options before -c (+x, -o NAME, +o NAME), a script file before -c, quoted words of several characters', () => {
  for (const sh of ['sh', 'bash', 'dash', 'zsh', 'ksh', 'ash', 'mksh']) assert.equal(shellScriptIndex([`/usr/bin/${sh}`, '-c', 's'], false), 2, sh);
  assert.equal(shellScriptIndex(['fish', '-c', 's'], false), -1);
  assert.equal(shellScriptIndex(['sh', '-e', '-c', 's'], false), 3);
  assert.equal(shellScriptIndex(['sh', '+x', '-c', 's'], false), 3);
  assert.equal(shellScriptIndex(['sh', '+o', 'posix', '-c', 's'], false), 4);
  assert.equal(shellScriptIndex(['sh', '-o', 'errexit', '-c', 's'], false), 4);
  assert.equal(shellScriptIndex(['bash', 'script.sh', '-c', 'x'], false), -1, 'after a script file, -c is its argument');
  assert.deepEqual(shellWords("cat 'two words' 'x' \"a b\""), ['cat', 'two words', 'x', 'a b']);
  // A stage reference is the whole expression: one buried in a longer path is malformed.
  assert.deepEqual(parsePieces('${stages.a.b.stages.c.outputs.d}'), [{ kind: 'bad', text: 'stages.a.b.stages.c.outputs.d', why: 'expected ${stages.<id>.outputs.<name>}' }]);
});
