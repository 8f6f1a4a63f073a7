// Trust, errors: every bad spec or module gets a clear `file:line:col` line (or one plain line),
// never a stack trace, a hang, or a silent acceptance.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, Workspace } from './helpers/workspace.ts';

const OK_STAGE = `import { writeFileSync } from 'node:fs';
import { defineStage } from 'rrtn-pipeline';
export default defineStage({ params: { type: 'object', properties: { n: { type: 'number', default: 1 } } }, outputs: ['o'], async run(ctx) { writeFileSync(ctx.outputs.o, 'x'); } });
`;

function check(ws: Workspace, spec: string, ...args: string[]): string {
  ws.write('p.yaml', spec);
  const r = ws.run('validate', 'p.yaml', ...args);
  assert.equal(r.code, 2, `expected exit 2 for:\n${spec.slice(0, 300)}\ngot ${r.code}: ${r.stdout}${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at |internal error/, 'a clear error, no stack trace');
  return r.stderr;
}

test('YAML that cannot be read: unresolved aliases, alias bombs, deep nesting, duplicate keys', (t) => {
  const ws = new Workspace();
  t.after(() => ws.dispose());
  assert.match(check(ws, 'stages:\n  a:\n    run: *nope\n'), /^p\.yaml:3:10: \(root\): unresolved alias \*nope: define the anchor &nope before the alias uses it$/m);
  let bomb = 'x0: &x0 [a, a, a, a, a, a, a, a, a, a]\n';
  for (let i = 1; i < 10; i++) bomb += `x${i}: &x${i} [${Array(10).fill(`*x${i - 1}`).join(', ')}]\n`;
  assert.match(check(ws, `${bomb}stages:\n  a:\n    run: [echo]\n`), /aliases expand to too many values/);
  assert.match(check(ws, `stages:\n  a:\n    run: [echo]\nparams:\n  p: ${'['.repeat(3000)}${']'.repeat(3000)}\n`), /^p\.yaml:\d+:\d+: \(root\): the spec nests (too deeply to read|more than 64 levels deep)/m);
  assert.match(check(ws, `stages:\n  a:\n    run: [echo]\nparams:\n  p: ${'['.repeat(100)}${']'.repeat(100)}\n`), /the spec nests more than 64 levels deep/);
  assert.match(check(ws, 'stages:\n  a:\n    run: [echo]\n  a:\n    run: [true]\n'), /^p\.yaml:4:3: \(root\): duplicate key 'a': each key may appear once in a mapping$/m);
});

test('a spec of 100,000 params is read in linear time; a 5,000-stage needs chain validates and runs', (t) => {
  const ws = new Workspace();
  t.after(() => ws.dispose());
  const params = Array.from({ length: 100_000 }, (_, i) => `  p${i}: ${i}`).join('\n');
  ws.write('big.yaml', `params:\n${params}\nstages:\n  a:\n    run: [echo, "\${params.p99999}"]\n`);
  // (Quadratic, 40,000 keys took 95 s: the helper's 120 s limit would fail this long before.)
  const r = ws.run('validate', 'big.yaml');
  assert.equal(r.code, 0, r.stderr);
  const chain = ['stages:', '  s0:', '    run: [true]', ...Array.from({ length: 4999 }, (_, i) => `  s${i + 1}:\n    run: [true]\n    needs: [s${i}]`)].join('\n');
  ws.write('chain.yaml', `${chain}\n`);
  const v = ws.run('validate', 'chain.yaml');
  assert.equal(v.code, 0, v.stderr.slice(0, 500));
  assert.match(v.stdout, /valid \(5000 stages\)/);
  const dag = ws.run('dag', 'chain.yaml');
  assert.equal(dag.code, 0, dag.stderr.slice(0, 500));
});

test('a stage module with a bad params schema, a throwing fingerprint(), or a top-level await that never settles', (t) => {
  const ws = new Workspace({
    'stages/badschema.ts': `import { defineStage } from 'rrtn-pipeline';\nexport default defineStage({ params: { type: 'objekt' }, outputs: ['o'], async run() {} });\n`,
    'stages/throws.ts': `import { defineStage } from 'rrtn-pipeline';\nexport default defineStage({ params: {}, outputs: ['o'], fingerprint() { throw new Error('no GPU probe here'); }, async run() {} });\n`,
    'stages/hangs.ts': `import { defineStage } from 'rrtn-pipeline';\nawait new Promise(() => {});\nexport default defineStage({ params: {}, outputs: ['o'], async run() {} });\n`,
    'stages/malformed.ts': `import { defineStage } from 'rrtn-pipeline';\nexport default defineStage({ params: {}, outputs: 'o', async run() {} } as never);\n`,
  });
  t.after(() => ws.dispose());
  assert.match(check(ws, 'stages:\n  a:\n    uses: stages/badschema.ts\n'), /^p\.yaml:3:11: stages\.a\.uses: stage module 'stages\/badschema\.ts' has an invalid params schema: /m);
  assert.match(check(ws, 'stages:\n  a:\n    uses: stages/malformed.ts\n'), /its defineStage\(\{\.\.\.\}\) is malformed: outputs must be a list of names/);
  ws.write('p.yaml', 'stages:\n  a:\n    uses: stages/throws.ts\n');
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /stage a failed: cannot compute the stage's cache key: no GPU probe here/);
  assert.match(ws.run('status', 'p.yaml').stdout, /a\s+stale: cannot compute its cache key: no GPU probe here/);
  ws.write('p.yaml', 'stages:\n  a:\n    uses: stages/hangs.ts\n');
  const h = ws.runEnv({ PIPELINE_MODULE_LOAD_TIMEOUT_MS: '1500' }, 'validate', 'p.yaml');
  assert.equal(h.code, 2);
  assert.match(h.stderr, /cannot load stage module 'stages\/hangs\.ts': loading it did not finish within 1\.5 s \(a top-level await that never settles\?/);
});

test('accepted no longer: --set typos, colliding or empty matrices, deps on a module stage, unterminated references, empty commands', (t) => {
  const ws = new Workspace({ 'stages/ok.ts': OK_STAGE });
  t.after(() => ws.dispose());
  const spec = 'params:\n  lr: 0.1\nstages:\n  a:\n    uses: stages/ok.ts\n    params: { n: "${params.lr}" }\n';
  ws.write('p.yaml', spec);
  for (const [set, why] of [
    ['lx=1', /--set 'lx=1': p\.yaml declares no parameter 'lx' \(did you mean 'lr'\?\)/],
    ['stages.b.params.n=2', /--set 'stages\.b\.params\.n=2': p\.yaml has no stage 'b' \(did you mean 'a'\?\)/],
    ['stages.a.params.m=2', /--set 'stages\.a\.params\.m=2': stage module 'stages\/ok\.ts' has no param 'm' \(did you mean 'n'\?\)/],
  ] as const) {
    const r = ws.run('run', 'p.yaml', '--set', set);
    assert.equal(r.code, 2, `${set}: ${r.stderr}`);
    assert.match(r.stderr, why);
  }
  assert.equal(ws.run('validate', 'p.yaml', '--set', 'lr=0.2', '--set', 'stages.a.params.n=3').code, 0);
  // Names every object answers to are not spec names: no typo check passes them, no prototype is edited.
  for (const set of ['__proto__.x=1', 'constructor=1', 'params.toString=1', 'stages.__proto__.x=1', 'stages.a.params.__proto__.y=2', 'stages.constructor.params.n=1']) {
    const r = ws.run('run', 'p.yaml', '--set', set);
    assert.equal(r.code, 2, `${set}: ${r.stderr}`);
    assert.match(r.stderr, /^pipeline: --set '.*': ('(__proto__|constructor)' cannot be a name in a spec|p\.yaml declares no parameter 'toString')/, set);
  }
  assert.match(check(ws, 'stages:\n  a:\n    matrix: { k: ["1", 1] }\n    run: [echo, "${matrix.k}"]\n'), /p\.yaml:3:13: stages\.a\.matrix: two variants would both be named 'a\[k=1\]'/);
  assert.match(check(ws, 'stages:\n  a:\n    matrix: { k: [1, 2], exclude: [{ k: 1 }, { k: 2 }] }\n    run: [echo]\n'), /stages\.a\.matrix\.exclude: every combination of the matrix is excluded/);
  assert.match(check(ws, 'stages:\n  a:\n    uses: stages/ok.ts\n    deps: [data.txt]\n'), /p\.yaml:4:5: stages\.a\.deps: `deps` is for command stages/);
  assert.match(check(ws, 'params:\n  x: 1\nstages:\n  a:\n    run: [echo, "${params.x"]\n'), /p\.yaml:5:17: stages\.a\.run\[1\]: bad reference \$\{params\.x\}: unterminated reference: it needs a closing \}/);
  assert.match(check(ws, 'stages:\n  a:\n    run: ""\n'), /p\.yaml:3:10: stages\.a\.run: the command is empty/);
  assert.match(check(ws, 'stages:\n  a:\n    run: ["", x]\n'), /the command is empty/);
});

test('the cache folder cannot be a virtual filesystem; an unexpected error is one line with the trace kept aside', (t) => {
  const ws = new Workspace({ 'p.yaml': 'stages:\n  a:\n    run: [echo]\n' });
  t.after(() => ws.dispose());
  const r = ws.run('run', 'p.yaml', '--cache-dir', '/proc/self/cache');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cannot use \/proc\/self\/cache as the cache folder: .* is a virtual filesystem/);
  // A cache folder that is a file: the engine's own mistake to meet, reported in one line.
  ws.write('cachefile', 'x');
  const f = ws.run('run', 'p.yaml', '--cache-dir', 'cachefile/inner');
  assert.ok(f.code === 2 || f.code === 70, f.stderr);
  assert.doesNotMatch(f.stderr, /\n\s+at /);
});

test("a cache another user owns, or on a read-only filesystem: one line saying what to do (exit 77), no trace", { skip: process.getuid?.() !== 0 && 'needs root, to give the cache to another user and to mount it read-only' }, (t) => {
  const ws = new Workspace({ 'p.yaml': 'stages:\n  a:\n    run: [sh, -c, \'echo a > "$0"\', "${outputs.o}"]\n    outs: { o: out/a.txt }\n' });
  t.after(() => ws.dispose());
  const first = ws.run('run', 'p.yaml');
  assert.equal(first.code, 0, first.stderr);
  ws.write('p.yaml', ws.read('p.yaml').replace('echo a', 'echo b'));
  // The cache is nobody's; this run is root's without the capabilities that let root write anywhere,
  // as an ordinary user is (so the test needs no access to the repository for another user).
  spawnSync('chown', ['-R', '65534:65534', ws.path('cache')]);
  const r = spawnSync('setpriv', ['--bounding-set=-dac_override,-dac_read_search,-fowner', process.execPath, CLI, 'run', 'p.yaml'], { cwd: ws.dir, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
  assert.equal(r.status, 77, r.stderr);
  assert.match(r.stderr, /^pipeline: cannot write in \/.*\/cache(\/\w+)?: permission denied \(it belongs to uid 65534, gid 65534, mode 755; you are \w+, uid 0\)\. A cache several users share must be writable by all of them: .*umask 002.*--cache-dir DIR or PIPELINE_CACHE_DIR\.\n$/);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
  spawnSync('chown', ['-R', '0:0', ws.path('cache')]);
  // Read-only: a bind mount of the cache onto itself.
  assert.equal(spawnSync('mount', ['--bind', ws.path('cache'), ws.path('cache')]).status, 0, 'bind mount');
  let ro;
  try {
    assert.equal(spawnSync('mount', ['-o', 'remount,bind,ro', ws.path('cache')]).status, 0, 'remount read-only');
    ro = ws.run('run', 'p.yaml');
  } finally {
    spawnSync('umount', [ws.path('cache')]);
  }
  assert.equal(ro.code, 77, ro.stderr);
  assert.match(ro.stderr, /^pipeline: cannot write in \/.*\/cache(\/\w+)?: the filesystem is read-only\. The cache must be writable .*: mount it read-write, or use a cache of your own: --cache-dir DIR or PIPELINE_CACHE_DIR\.\n$/);
});

test('a full disk (the cache on a 1 MB tmpfs): the stage fails saying so, nothing half-written is kept, and the cache stays usable', (t) => {
  const small = mkdtempSync(join(tmpdir(), 'pipeline-small-'));
  const mounted = process.getuid?.() === 0 && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]).status === 0;
  if (!mounted) {
    rmSync(small, { recursive: true, force: true });
    t.skip('needs root, to mount a small tmpfs');
    return;
  }
  const ws = new Workspace({ 'p.yaml': 'stages:\n  a:\n    run: [sh, -c, \'head -c 3000000 /dev/zero; echo a > "$0"\', "${outputs.o}"]\n    outs: { o: out/a.txt }\n' });
  t.after(() => {
    ws.dispose();
    spawnSync('umount', [small]);
    rmSync(small, { recursive: true, force: true });
  });
  const cache = join(small, 'cache');
  const r = ws.run('run', 'p.yaml', '--cache-dir', cache);
  assert.equal(r.code, 1, r.stderr.slice(0, 2000));
  assert.match(r.stderr, /stage a failed: the disk holding the cache is full \(ENOSPC writing the stage's log .*\): the stage was stopped; free space there, or move the cache to a larger disk/);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
  for (const d of ['tmp', 'keys', 'leases']) assert.deepEqual(readdirSync(join(cache, d)), [], `nothing left in cache/${d}`);
  assert.ok(!existsSync(join(cache, 'runs')) || readdirSync(join(cache, 'runs')).length === 0, 'no run record');
  assert.ok(statSync(join(cache, 'logs', 'failed', 'a.log')).size <= 64 * 1024, 'the failed log kept as its last 64 KB');
  const gc = ws.run('gc', 'p.yaml', '--cache-dir', cache);
  assert.equal(gc.code, 0, gc.stderr);
  ws.write('p.yaml', 'stages:\n  a:\n    run: [sh, -c, \'echo a > "$0"\', "${outputs.o}"]\n    outs: { o: out/a.txt }\n');
  const again = ws.run('run', 'p.yaml', '--cache-dir', cache);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(ws.read('out/a.txt'), 'a\n');
});
