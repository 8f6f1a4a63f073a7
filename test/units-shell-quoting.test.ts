// A value written as a bare word in a shell line reaches the command as exactly that text, in every
// shell a spec may name: nothing the shell expands (a leading ~ or ~user, globs, braces, zsh's
// =word, $, backticks, history's !) or splits on (blanks, operators) survives quoting, and nothing
// is added (a leading - stays the value's own). Each value goes through the real shell and is read
// back byte for byte; shellQuote's other contexts are covered by the shell-lexer tests.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { shellQuote } from '../src/spec/shell.ts';
import { needs } from './helpers/provision.ts';

const VALUES = [
  '~', '~/data', '~user', '~root/x', 'a=~/x', 'x:~/y', '=ls', '=x', '==', 'a=b', '*', '*.txt', 'a*b', '?', '[ab]', '[!a]', '{a,b}', '{1..3}', 'a{b,c}',
  '-n', '-e', '--help', '-', '--', 'a b', ' lead', 'trail ', 'tab\tx', 'new\nline', '', '$HOME', '${HOME}', '`id`', '$(id)', "it's", 'a"b', 'back\\slash',
  '!', '!!', '!$', '#x', 'a#b', '%1', '^x', 'a|b', 'a;b', 'a&b', '<x', '>x', '(x)', 'ünïcødé', 'x\u00a0y', '@(x)', '+(x)', 'x~y', 'plain', '0.001', 'a/b.c',
];

const SHELLS: Array<[string, string[]]> = [['sh', []], ['dash', []], ['bash', []], ['bash', ['--posix']], ['zsh', []]];

test('bare words: every hard value, quoted, is read back unchanged by sh, dash, bash, bash --posix and zsh', needs('zsh'), () => {
  const script = `printf '%s\\0' ${VALUES.map((v) => shellQuote(v, 'bare')).join(' ')}`;
  for (const [shell, opts] of SHELLS) {
    const r = spawnSync(shell, [...opts, '-c', script], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: '/root', LANG: 'C.UTF-8' } });
    assert.equal(r.status, 0, `${shell}: ${r.stderr}`);
    const got = r.stdout.split('\0').slice(0, -1);
    for (const [i, v] of VALUES.entries()) assert.equal(got[i], v, `${shell} ${opts.join(' ')}: ${JSON.stringify(v)} came back as ${JSON.stringify(got[i])}`);
    assert.equal(got.length, VALUES.length, `${shell}: one word per value`);
  }
});
