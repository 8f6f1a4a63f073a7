// Trust, paths: no spec can destroy the workspace or the cache, write outside the workspace
// (through links included), take over a user's file, or smuggle shell code in through a value.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ran, Workspace } from './helpers/workspace.ts';

function specErrors(ws: Workspace, spec: string, ...args: string[]): string[] {
  ws.write('p.yaml', spec);
  const r = ws.run('validate', 'p.yaml', ...args);
  assert.equal(r.code, 2, `expected a spec error: ${r.stdout}${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  return r.stderr.trim().split('\n').filter((l) => l.startsWith('p.yaml:'));
}

const echoStage = (outs: string) => `stages:\n  a:\n    run: [sh, -c, 'echo hi > "$0"', "\${outputs.o}"]\n    outs: { o: ${outs} }\n`;

test('outs, inputs and deps may not be the workspace root, the cache or anything in it', (t) => {
  const ws = new Workspace({ 'keep.txt': 'precious\n' });
  t.after(() => ws.dispose());
  for (const [outs, why] of [
    ['"."', /path '\.': an outs path cannot be the workspace root/],
    ['cache', /path 'cache': an outs path cannot be inside the cache folder/],
    ['cache/objects/x', /an outs path cannot be inside the cache folder/],
    ['"sub/.."', /cannot be the workspace root/],
  ] as const) {
    const errs = specErrors(ws, echoStage(outs));
    assert.match(errs.join('\n'), why);
  }
  // A run of the same spec refuses as well: exit 2, nothing touched.
  ws.write('p.yaml', echoStage('"."'));
  assert.equal(ws.run('run', 'p.yaml').code, 2);
  assert.equal(ws.read('keep.txt'), 'precious\n');
  assert.match(specErrors(ws, 'stages:\n  a:\n    run: [cat, x]\n    deps: [.]\n').join('\n'), /a dep cannot be the workspace root/);
  assert.match(specErrors(ws, 'stages:\n  a:\n    run: [cat, x]\n    deps: [cache/runs]\n').join('\n'), /a dep cannot be inside the cache folder/);
  // With the cache elsewhere (--cache-dir data/cache), an input folder that holds it is refused.
  mkdirSync(ws.path('data'), { recursive: true });
  assert.match(specErrors(ws, 'stages:\n  a:\n    run: [cat, x]\n    deps: [data]\n', '--cache-dir', 'data/cache').join('\n'), /a dep cannot contain the cache folder/);
});

test('two stages, or two variants, publishing one path (or one inside the other) is a spec error', (t) => {
  const ws = new Workspace();
  t.after(() => ws.dispose());
  const two = `stages:\n  a:\n    run: [sh, -c, 'echo a > "$0"', "\${outputs.o}"]\n    outs: { o: out/x }\n  b:\n    run: [sh, -c, 'echo b > "$0"', "\${outputs.o}"]\n    outs: { o: out/x }\n`;
  assert.match(specErrors(ws, two).join('\n'), /^p\.yaml:7:\d+: stages\.b\.outs\.o: 'out\/x' is published by both a and b/m);
  const nested = two.replace('outs: { o: out/x }\n  b', 'outs: { o: out }\n  b');
  assert.match(specErrors(ws, nested).join('\n'), /'out\/x' lies inside 'out', published by a and b/);
  const sweep = `stages:\n  a:\n    matrix: { k: [1, 2] }\n    run: [sh, -c, 'echo \${matrix.k} > "$0"', "\${outputs.o}"]\n    outs: { o: out/same.txt }\n`;
  assert.match(specErrors(ws, sweep).join('\n'), /'out\/same\.txt' is published by both a\[k=1\] and a\[k=2\].*\$\{matrix/);
  ws.write('p.yaml', sweep.replace('out/same.txt', '"out/${matrix.k}.txt"'));
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  assert.equal(ws.read('out/2.txt'), '2\n');
});

test("an outs path holding a user's own file is left alone unless the spec allows overwriting it", (t) => {
  const ws = new Workspace({ 'results/table.md': 'my notes\n' });
  t.after(() => ws.dispose());
  ws.write('p.yaml', echoStage('results/table.md'));
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /outs path 'results\/table\.md' already exists and no stage of this pipeline wrote it: move it away, or .*overwrite: true/);
  assert.equal(ws.read('results/table.md'), 'my notes\n');
  ws.write('p.yaml', echoStage('{ path: results/table.md, overwrite: true }'));
  const ok = ws.run('run', 'p.yaml');
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ws.read('results/table.md'), 'hi\n');
  // From then on the engine wrote it: the plain form replaces it again without complaint.
  ws.write('p.yaml', echoStage('results/table.md').replace('echo hi', 'echo ho'));
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  assert.equal(ws.read('results/table.md'), 'ho\n');
});

test('symbolic links: no write lands outside the workspace, a linked output is refused, reading through a link is fine, a loop is a clear error', (t) => {
  const ws = new Workspace();
  const elsewhere = mkdtempSync(join(tmpdir(), 'pipeline-elsewhere-'));
  t.after(() => {
    ws.dispose();
    rmSync(elsewhere, { recursive: true, force: true });
  });
  symlinkSync(elsewhere, ws.path('linkout'));
  assert.match(specErrors(ws, echoStage('linkout/x')).join('\n'), /writing 'linkout\/x' would go through the symbolic link .*linkout to .*, outside the workspace/);
  assert.deepEqual(listDir(elsewhere), []);

  // A stage whose output is (or holds) a link to a file outside: refused, the file untouched.
  const secret = join(elsewhere, 'secret.txt');
  writeFileSync(secret, 'outside\n');
  chmodSync(secret, 0o600);
  ws.write('p.yaml', `stages:\n  a:\n    run: [sh, -c, 'mkdir "$0" && ln -s "$1" "$0/s.txt"', "\${outputs.o}", ${JSON.stringify(secret)}]\n    outs: { o: null }\n`);
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /output 'o' cannot be stored: .*s\.txt is a symbolic link .*write the file itself, not a link/);
  assert.equal(statSync(secret).mode & 0o777, 0o600, 'the target was not chmodded');
  assert.equal(statSync(secret).nlink, 1, 'the target was not hardlinked into the cache');

  // A data set linked in on purpose is read through its link.
  mkdirSync(join(elsewhere, 'data'));
  writeFileSync(join(elsewhere, 'data', 'a.txt'), '1 2 3\n');
  symlinkSync(join(elsewhere, 'data'), ws.path('data'));
  ws.write('p.yaml', `stages:\n  count:\n    run: [sh, -c, 'cat "$0"/a.txt | wc -w > "$1"', data, "\${outputs.n}"]\n    deps: [data]\n    outs: { n: n.txt }\n`);
  const ok = ws.run('run', 'p.yaml');
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ws.read('n.txt').trim(), '3');
  // A loop inside the input folder: one clear line, no ELOOP stack.
  symlinkSync('..', join(elsewhere, 'data', 'loop'));
  const loop = ws.run('run', 'p.yaml');
  assert.equal(loop.code, 1);
  assert.match(loop.stderr, /symbolic link loop: .*data\/loop .*leads back into a folder it is inside/);
  assert.doesNotMatch(loop.stderr, /\n\s+at /);

  // `init` into a project whose stages/ is a link out: refused before anything is written.
  mkdirSync(ws.path('proj'));
  symlinkSync(elsewhere, ws.path('proj/stages'));
  const before = listDir(elsewhere);
  const init = ws.run('init', 'proj');
  assert.equal(init.code, 2, init.stderr);
  assert.match(init.stderr, /pipeline init: writing 'stages\/summary\.ts' would go through the symbolic link .*proj\/stages to .*, outside the workspace; nothing was written/);
  assert.deepEqual(listDir(elsewhere), before, 'nothing written through the link');
  assert.deepEqual(listDir(ws.path('proj')), ['stages'], 'nothing written in the project either');
});

function listDir(d: string): string[] {
  return existsSync(d) ? readdirSync(d) : [];
}

test('a stage module outside the workspace is refused (unless it comes from an installed package)', (t) => {
  const ws = new Workspace();
  const outside = mkdtempSync(join(tmpdir(), 'pipeline-mod-'));
  t.after(() => {
    ws.dispose();
    rmSync(outside, { recursive: true, force: true });
  });
  writeFileSync(join(outside, 'evil.ts'), "export default {};\n");
  assert.match(specErrors(ws, `stages:\n  a:\n    uses: ${join(outside, 'evil.ts')}\n`).join('\n'), /stage module '.*evil\.ts' resolves to .*, outside the workspace/);
  symlinkSync(join(outside, 'evil.ts'), ws.path('linked.ts'));
  assert.match(specErrors(ws, 'stages:\n  a:\n    uses: linked.ts\n').join('\n'), /resolves to .*evil\.ts, outside the workspace/);
});

test('values substituted into a shell line are quoted as one word wherever they land', (t) => {
  const ws = new Workspace();
  t.after(() => ws.dispose());
  const payload = 'x $(touch pwned1) `touch pwned2` "; touch pwned3; echo " \' ; touch pwned4;#';
  ws.write('p.yaml', `params:\n  msg: hello\nstages:
  line:
    shell: true
    run: echo \${params.msg} > "\${outputs.a}"; echo "\${params.msg}" > \${outputs.b}; echo '\${params.msg}' > \${outputs.c}
    outs: { a: "my results/a.txt", b: "my results/b.txt", c: "my results/c.txt" }
  script:
    run: [sh, -c, 'printf "%s\\n" \${params.msg} > "$0"', "\${outputs.o}"]
    outs: { o: "my results/s.txt" }
    env: { MSG: "\${params.msg}" }
`);
  const r = ws.run('run', 'p.yaml', '--set', `msg=${payload}`);
  assert.equal(r.code, 0, r.stderr);
  for (const f of ['pwned1', 'pwned2', 'pwned3', 'pwned4']) assert.ok(!ws.exists(f), `${f} must not be created`);
  for (const f of ['a', 'b', 'c', 's']) assert.equal(ws.read(`my results/${f}.txt`), `${payload}\n`, `${f}: the value arrives as one word, unchanged`);
});

test('a value reaches no shell as code: a shell -c after env, timeout, nice; inside "$(...)" and `...`; in a here-document body', (t) => {
  const ws = new Workspace();
  t.after(() => ws.dispose());
  const payload = 'x $(touch pwned1) `touch pwned2` "; touch pwned3; echo " \' ; touch pwned4;#';
  const viaShell = (prefix: string, out: string) => `    run: [${prefix}, -c, 'printf "%s\\n" \${params.msg} > "$0"', "\${outputs.o}"]\n    outs: { o: "out/${out}.txt" }\n`;
  ws.write('p.yaml', `params:\n  msg: hello\nstages:
  env:\n${viaShell('env, sh', 'env')}
  timeout:\n${viaShell("timeout, '30', sh", 'timeout')}
  nice:\n${viaShell("nice, -n, '5', bash, -e", 'nice')}
  subst:
    shell: true
    run: printf '%s\\n' "$(printf '%s' \${params.msg})" > "\${outputs.a}"; printf '%s\\n' "\`printf '%s' \${params.msg}\`" > "\${outputs.b}"
    outs: { a: out/subst-a.txt, b: out/subst-b.txt }
  heredoc:
    shell: true
    run: |
      cat > "\${outputs.h}" <<EOF
      \${params.msg}
      EOF
      cat > "\${outputs.q}" <<'EOF'
      \${params.msg}
      EOF
    outs: { h: out/heredoc.txt, q: out/heredoc-q.txt }
`);
  const r = ws.run('run', 'p.yaml', '--set', `msg=${payload}`);
  assert.equal(r.code, 0, r.stderr);
  for (const f of ['pwned1', 'pwned2', 'pwned3', 'pwned4']) assert.ok(!ws.exists(f), `${f} must not be created`);
  for (const f of ['env', 'timeout', 'nice', 'subst-a', 'subst-b', 'heredoc', 'heredoc-q']) assert.equal(ws.read(`out/${f}.txt`), `${payload}\n`, `${f}: the value arrives unchanged`);
  // A value that would end a here-document early, or a word in $((...)), is an error naming the place.
  ws.write('q.yaml', 'params:\n  msg: hi\n  n: 1\nstages:\n  a:\n    shell: true\n    run: |\n      cat <<EOF\n      ${params.msg}\n      EOF\n      echo $(( ${params.n} + 1 ))\n');
  const bad = ws.run('validate', 'q.yaml', '--set', 'msg="a\\nEOF\\ntouch pwned5"', '--set', 'n=1); touch pwned6; ((1');
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /q\.yaml:\d+:\d+: .*here-document \(<<EOF\)/);
  assert.match(bad.stderr, /q\.yaml:\d+:\d+: .*must be a whole number/);
});

test("a stage writing into its input is failed, the damaged copy dropped, and the next run reads clean data", (t) => {
  const ws = new Workspace();
  t.after(() => ws.dispose());
  const spec = (append: boolean) => `stages:
  make:
    run: [sh, -c, 'echo clean > "$0"', "\${outputs.o}"]
    outs: { o: null }
  bad:
    run: [sh, -c, '${append ? 'echo poison >> "$0"; ' : ''}cat "$0" > "$1"', "\${stages.make.outputs.o}", "\${outputs.o}"]
    outs: { o: bad.txt }
  reader:
    run: [sh, -c, 'cat "$0" > "$1"; true', "\${stages.make.outputs.o}", "\${outputs.o}"]
    outs: { o: reader.txt }
    needs: [bad]
`;
  ws.write('p.yaml', spec(true));
  const r = ws.run('run', 'p.yaml', '--jobs', '1');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /stage bad failed: the stage wrote into its input \(make\.o: .*\): stages must not modify what they read/);
  ws.write('p.yaml', spec(false));
  const again = ws.run('run', 'p.yaml', '--jobs', '1');
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(ran(again), ['bad', 'make', 'reader'], 'the damaged upstream output was dropped, so make reruns');
  assert.equal(ws.read('reader.txt'), 'clean\n');
  assert.equal(ws.read('bad.txt'), 'clean\n');
  assert.ok(lstatSync(ws.path('reader.txt')).nlink === 1, 'published outputs are copies, not links into the cache');
  assert.equal(readFileSync(ws.path('reader.txt'), 'utf8'), 'clean\n');
});

test('one workspace reached through a link and through its real path is one workspace: the second run is cached, its outputs its own', (t) => {
  const ws = new Workspace({ 'p.yaml': echoStage('out/x.txt') });
  const links = mkdtempSync(join(tmpdir(), 'pipeline-links-'));
  t.after(() => {
    ws.dispose();
    rmSync(links, { recursive: true, force: true });
  });
  symlinkSync(ws.dir, join(links, 'ws'));
  const viaLink = ws.run('run', '-C', join(links, 'ws'), join(links, 'ws', 'p.yaml'));
  assert.equal(viaLink.code, 0, viaLink.stderr);
  assert.deepEqual(ran(viaLink), ['a']);
  // Run directly after an edit: the output the run through the link published is this
  // workspace's own, replaced without complaint.
  ws.write('p.yaml', echoStage('out/x.txt').replace('echo hi', 'echo hello'));
  const direct = ws.run('run', 'p.yaml');
  assert.equal(direct.code, 0, direct.stderr);
  assert.equal(ws.read('out/x.txt'), 'hello\n');
  // Through the link again: nothing changed, so nothing runs.
  const back = ws.run('run', '-C', join(links, 'ws'), join(links, 'ws', 'p.yaml'));
  assert.equal(back.code, 0, back.stderr);
  assert.equal(back.states.get('a'), 'cached');
  assert.deepEqual(readdirSync(ws.path('out')), ['x.txt'], 'nothing kept aside as a user edit');
});
