// Spec pieces as pure units with exact expectations: `${...}` parsing, shell quoting and the shell
// facts that enter a key, time limits.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { exprText, parsePieces } from '../src/spec/references.ts';
import { contextAfter, ShellLexer, shellEnvNames, shellQuote, shellScriptIndex, ShellValueError, shellWords } from '../src/spec/shell.ts';
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

const HOSTILE = ['plain', 'a b', "it's", 'say "hi"', '$(touch x)', '`id`', '$HOME', '${HOME}', 'back\\slash', 'tab\there', 'new\nline', '*', '', '-n', ';|&<>()', "'", '"', '\\', "\\'", 'x\nEOX\ny', ')', '`', '}', "$'\\x41'", '#'];

/** Runs `template` (V marks where the value goes, quoted for that place) through a real shell. */
function roundTrip(shell: string, template: string, v: string): string {
  const [before, after] = template.split('V') as [string, string];
  const script = before + shellQuote(v, contextAfter(before)) + after;
  return execFileSync(shell, ['-c', script], { encoding: 'utf8' });
}

test('shell quoting: each value reads back as exactly itself in every place a script can hold it, through real sh and bash', () => {
  // [template, shells, what the template prints around the value]
  const places: Array<[string, string[], (v: string) => string]> = [
    ["printf '%s' V", ['sh', 'bash'], (v) => v],
    ["printf '%s' 'V'", ['sh', 'bash'], (v) => v],
    ["printf '%s' \"V\"", ['sh', 'bash'], (v) => v],
    ["printf '%s' pre'V'post", ['sh', 'bash'], (v) => `pre${v}post`],
    ["printf '%s' \"$(printf '%s' V)\"", ['sh', 'bash'], (v) => v.replace(/\n+$/, '')],
    ["printf '%s' \"$(printf '%s' \"V\")\"", ['sh', 'bash'], (v) => v.replace(/\n+$/, '')],
    ["printf '%s' \"$(printf '%s' 'V')\"", ['sh', 'bash'], (v) => v.replace(/\n+$/, '')],
    ["printf '%s' \"`printf '%s' V`\"", ['sh', 'bash'], (v) => v.replace(/\n+$/, '')],
    ["printf '%s' \"`printf '%s' \"V\"`\"", ['sh', 'bash'], (v) => v.replace(/\n+$/, '')],
    ["x=; printf '%s' \"${x:-V}\"", ['sh', 'bash'], (v) => v],
    ["x=; printf '%s' ${x:-V}", ['sh', 'bash'], (v) => v],
    ["printf '%s' $'V'", ['bash'], (v) => v],
    ['cat <<EOX\nV\nEOX', ['sh', 'bash'], (v) => `${v}\n`],
    ["cat <<'EOX'\nV\nEOX", ['sh', 'bash'], (v) => `${v}\n`],
    ['cat <<-EOX\n\tV\n\tEOX', ['sh', 'bash'], (v) => `${v}\n`],
    ['cat <<EOX; cat <<EOY\na\nEOX\n$(printf %s V)\nEOY', ['sh', 'bash'], (v) => `a\n${v.replace(/\n+$/, '')}\n`],
    ['printf ok # V\nprintf !', ['sh', 'bash'], () => 'ok!'],
  ];
  for (const [template, shells, expect] of places) {
    for (const sh of shells) {
      for (const v of HOSTILE) {
        if (template.includes('EOX') && v.split('\n').some((l) => l.replace(/^\t+/, '').startsWith('EOX'))) continue; // refused, below
        if (template.includes('"${x:-') && v.includes("'")) continue; // refused, below
        assert.equal(roundTrip(sh, template, v), expect(v), `${sh}: ${JSON.stringify(v)} in ${JSON.stringify(template)}`);
      }
    }
  }
  assert.equal(roundTrip('sh', 'printf %s $((V + 1))', '41'), '42');
  assert.throws(() => shellQuote('1); touch x; ((1', contextAfter('echo $((')), ShellValueError, 'only a whole number goes into $((...))');
  assert.throws(() => shellQuote('x\nEOX\ntouch y', contextAfter('cat <<EOX\n')), /here-document \(<<EOX\)/);
  assert.throws(() => shellQuote('EOX', contextAfter("cat <<'EOX'\n")), ShellValueError);
  assert.throws(() => shellQuote("it's", contextAfter('echo "${x:-')), /cannot hold a single quote/);
  assert.equal(shellQuote('simple/path-1.txt', 'bare'), 'simple/path-1.txt', 'safe words stay as they are');
});

test('the shell lexer: where a value lands after each kind of text', () => {
  const kind = (t: string) => contextAfter(t).kind;
  assert.equal(kind('echo "a'), 'double');
  assert.equal(kind("echo 'a\" b"), 'single');
  assert.equal(kind('echo "a" \'b\' c'), 'bare');
  assert.equal(kind('echo \\"'), 'bare', 'an escaped quote opens nothing');
  assert.equal(kind('"\\"'), 'double', 'an escaped quote inside double quotes does not close them');
  assert.equal(kind("'\\'"), 'bare', 'no escapes inside single quotes');
  assert.equal(kind('echo "$('), 'bare', 'a command substitution inside double quotes is a new command');
  assert.equal(kind('echo "$(echo "'), 'double');
  assert.equal(kind('echo "$(echo ")" '), 'bare', 'a quoted ) does not close it');
  assert.equal(kind('echo "$(echo ")") '), 'double', 'back in the outer double quotes');
  assert.equal(kind('echo "$(echo (a) '), 'bare', 'a subshell inside does not close it');
  assert.equal(kind('echo $(( '), 'arith');
  assert.equal(kind('echo $((1+(2)) '), 'arith');
  assert.equal(kind('echo $((1)) '), 'bare');
  assert.equal(kind("echo $'"), 'ansi');
  assert.equal(kind('echo "$\''), 'double', "$' inside double quotes is not ANSI-C quoting");
  assert.equal(kind('x # '), 'comment');
  assert.equal(kind('x#'), 'bare', 'a # inside a word starts no comment');
  assert.equal(kind('x # c\n'), 'bare');
  assert.equal(kind('cat <<E\n'), 'heredoc');
  assert.equal(kind('cat <<E # c\n'), 'heredoc', 'a comment on the start line');
  assert.equal(kind("cat <<'E'\n"), 'heredoc-literal');
  assert.equal(kind('cat <<"E"\n'), 'heredoc-literal');
  assert.equal(kind('cat <<\\E\n'), 'heredoc-literal');
  assert.equal(kind('cat <<E'), 'bare', 'the body starts after the line');
  assert.equal(kind('cat <<E\nx\nE\n'), 'bare', 'the end line ends it');
  assert.equal(kind('cat <<-E\n\t\tE\n'), 'bare', '<<- strips tabs before the end line');
  assert.equal(kind('cat <<E\n\tE\n'), 'heredoc', 'without -, a tab keeps it open');
  assert.equal(kind('cat <<<'), 'bare', 'a here-string is a word');
  assert.equal(kind('cat <<E\n$('), 'bare');
  assert.equal(kind('cat <<E\n$(x)E\n'), 'heredoc', 'a line holding an expansion is not the end line');
  assert.equal(kind("cat <<'E'\n$("), 'heredoc-literal', 'nothing expands in a quoted document');
  assert.equal(kind('x=${a:-'), 'bare');
  assert.equal(kind('x="${a:-'), 'param-double');
  assert.equal(kind('x="${a:-\''), 'param-double', "a ' inside a double-quoted ${...} does not open single quotes");
  assert.equal(kind('x=${a:-${b} '), 'bare');
  assert.equal(kind('x=${a:-${b}} '), 'bare');
  assert.deepEqual(contextAfter('echo `echo "'), { kind: 'double', backticks: 1 });
  assert.deepEqual(contextAfter('echo `a` '), { kind: 'bare' });
  assert.deepEqual(contextAfter('cat <<A <<B\na\nA\n'), { kind: 'heredoc', delim: 'B' }, 'two documents, one after the other');
  assert.deepEqual(new ShellLexer().feed('echo "').feed('x" ').context(), { kind: 'bare' }, 'fed in pieces');
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
