// The repository's own specs and the CLI's help.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CLI, ROOT } from './helpers/workspace.ts';

const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, CI: 'true' } });

test('every spec under pipelines/ validates', () => {
  for (const f of readdirSync(`${ROOT}/pipelines`).filter((f) => f.endsWith('.yaml'))) {
    const r = cli('validate', `pipelines/${f}`, '--cache-dir', `${ROOT}/cache/test-validate`);
    assert.equal(r.status, 0, `${f}: ${r.stderr}`);
  }
});

test('help for the tool and each command, as `<command> --help` and as `help <command>`; --version', () => {
  for (const c of ['', 'run', 'status', 'validate', 'dag', 'gc', 'verify', 'exp', 'init']) {
    const r = cli(...(c ? [c, '--help'] : ['--help']));
    assert.equal(r.status, 0);
    assert.match(r.stdout, c ? new RegExp(`^Usage: pipeline ${c}\\b`) : /^pipeline — /);
    if (c) assert.equal(cli('help', c).stdout, r.stdout);
  }
  const nope = cli('help', 'rnu');
  assert.equal(nope.status, 2);
  assert.match(nope.stderr, /^pipeline: no command 'rnu'/);
  const version = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')).version as string;
  assert.equal(cli('--version').stdout, `${version}\n`);
});

test('output piped to a reader that stops early (| head, | true) ends the command quietly, not with an EPIPE stack trace', () => {
  // The reader exits at once, before the command has started: its first write finds the pipe closed.
  const r = spawnSync('bash', ['-c', `"${process.execPath}" "${CLI}" help 2>&1 | true; echo "exit \${PIPESTATUS[0]}"`], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.stdout, 'exit 0\n', 'no stack trace, exit 0');
  const head = spawnSync('bash', ['-c', `"${process.execPath}" "${CLI}" --help 2>/dev/null | head -c 5; echo " exit \${PIPESTATUS[0]}"`], { cwd: ROOT, encoding: 'utf8' });
  assert.match(head.stdout, / exit 0\n$/);
});
