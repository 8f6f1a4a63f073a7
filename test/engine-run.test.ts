// Running: parallel stages, failures, crashes, interrupts, concurrent runs, sweeps, gc.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { numbersWorkspace } from './helpers/fixtures.ts';
import { ran, waitFor, Workspace } from './helpers/workspace.ts';

/** A command stage that stamps start and end times (ms) around a sleep. */
const timed = (name: string, secs: number) => `  ${name}:
    run: [sh, -c, 'date +%s%3N > "$0"; sleep ${secs}; date +%s%3N >> "$0"', "\${outputs.t}", ${name}]
    outs: { t: null }
`;

test('independent stages really run in parallel, and --jobs 1 runs them one at a time', (t) => {
  const ws = new Workspace({ 'p.yaml': `stages:\n${timed('a', 1)}${timed('b', 1)}  after:\n    run: [sh, -c, 'cat "$0" "$1" > "$2"', "\${stages.a.outputs.t}", "\${stages.b.outputs.t}", "\${outputs.t}"]\n    outs: { t: out/times.txt }\n` });
  t.after(() => ws.dispose());
  const r = ws.run('run', 'p.yaml', '--jobs', '2');
  assert.equal(r.code, 0, r.stderr);
  const [a0, a1, b0, b1] = ws.read('out/times.txt').trim().split('\n').map(Number) as [number, number, number, number];
  assert.ok(a0 < b1 && b0 < a1, `a [${a0}, ${a1}] and b [${b0}, ${b1}] should overlap`);
  const serial = ws.run('run', 'p.yaml', '--jobs', '1', '--force-all');
  assert.equal(serial.code, 0);
  const [c0, c1, d0, d1] = ws.read('out/times.txt').trim().split('\n').map(Number) as [number, number, number, number];
  assert.ok(c1 <= d0 || d1 <= c0, 'with --jobs 1 the stages must not overlap');
});

test('a failing stage: exit 1, its log tail and log path shown, dependents not run, --keep-going finishes the rest', (t) => {
  const ws = new Workspace({ 'p.yaml': `stages:
  bad:
    run: [sh, -c, 'echo step one; echo "boom: no such thing" >&2; exit 3']
  child:
    run: [echo, hi]
    needs: [bad]
  slow:
    run: [sh, -c, 'sleep 1; echo ok > "$0"', "\${outputs.o}"]
    outs: { o: null }
` });
  t.after(() => ws.dispose());
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 1);
  assert.equal(r.states.get('bad'), 'FAILED');
  assert.notEqual(r.states.get('child'), 'done');
  assert.match(r.stderr, /stage bad failed: command 'sh -c .*' exited with code 3/);
  assert.match(r.stderr, /\| boom: no such thing/);
  const logPath = /full log: (\S+)/.exec(r.stderr)?.[1];
  assert.ok(logPath && readFileSync(logPath, 'utf8').includes('step one'), "logPath && readFileSync(logPath, 'utf8').includes('step one')");
  assert.equal(r.states.get('slow'), 'stopped', 'by default the run stops at once');
  const k = ws.run('run', 'p.yaml', '--keep-going');
  assert.equal(k.code, 1);
  assert.equal(k.states.get('slow'), 'done');
  assert.equal(k.states.get('child'), 'not');
  // Nothing of the failed stage was cached: it runs (and fails) again.
  assert.equal(ws.run('run', 'p.yaml', 'bad').states.get('bad'), 'FAILED');
});

test('SIGKILL in the middle of a stage: the next run redoes it and nothing trusts the half-written output', async (t) => {
  const ws = new Workspace({ 'p.yaml': `stages:
  write:
    run: [sh, -c, 'echo partial > "$0"; echo $$ > stagepid; touch started; if [ -f slow ]; then sleep 60; fi; echo complete > "$0"', "\${outputs.o}"]
    outs: { o: null }
  read:
    run: [sh, -c, 'cat "$0" > "$1"', "\${stages.write.outputs.o}", "\${outputs.o}"]
    outs: { o: result.txt }
`, slow: '' });
  t.after(() => ws.dispose());
  const run = ws.start('run', 'p.yaml');
  await waitFor(() => ws.exists('started'));
  process.kill(-run.child.pid!, 'SIGKILL');
  await run.done;
  // The stage ran in its own process group, which outlives a SIGKILLed pipeline: end it here.
  const stagePid = Number(ws.read('stagepid'));
  t.after(() => {
    try {
      process.kill(-stagePid, 'SIGKILL');
    } catch {}
  });
  assert.ok(!existsSync(ws.path('cache/runs')) || readdirSync(ws.path('cache/runs')).length === 0, 'no run record for the killed stage');
  rmSync(ws.path('slow'));
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), ['read', 'write']);
  assert.equal(ws.read('result.txt'), 'complete\n');
  assert.ok(!existsSync(ws.path('cache/tmp')) || readdirSync(ws.path('cache/tmp')).length === 0, 'stale temp folders cleaned');
});

test('Ctrl-C stops child processes, cleans temp folders and exits 130', async (t) => {
  const ws = new Workspace({ 'p.yaml': `stages:
  long:
    run: [sh, -c, 'echo $$ > pid; sleep 60']
` });
  t.after(() => ws.dispose());
  const run = ws.start('run', 'p.yaml');
  await waitFor(() => ws.exists('pid') && ws.read('pid').trim().length > 0);
  const pid = Number(ws.read('pid'));
  run.child.kill('SIGINT');
  const r = await run.done;
  assert.equal(r.code, 130, run.output());
  await waitFor(() => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  }, 5000);
  assert.equal(readdirSync(ws.path('cache/tmp')).length, 0);
  assert.ok(!existsSync(ws.path('cache/lock')), 'lock released');
  assert.deepEqual(readdirSync(ws.path('cache/leases')), [], 'lease released');
});

test('two stages with the same fingerprint in one run: computed once', (t) => {
  const ws = new Workspace({ 'p.yaml': `stages:
  a:
    run: [sh, -c, 'echo x >> runs.log; echo same > "$0"', "\${outputs.o}"]
    outs: { o: a.txt }
  b:
    run: [sh, -c, 'echo x >> runs.log; echo same > "$0"', "\${outputs.o}"]
    outs: { o: b.txt }
` });
  t.after(() => ws.dispose());
  const r = ws.run('run', 'p.yaml', '--jobs', '2');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(ws.read('runs.log'), 'x\n');
  assert.equal(ws.read('a.txt'), 'same\n');
  assert.equal(ws.read('b.txt'), 'same\n');
});

test('two runs on one workspace at once: each stage is computed by one of them, the other waits for it and takes its result', async (t) => {
  const ws = numbersWorkspace();
  // The first run's stage holds its key until the second run says it waits for it (however slow
  // the machine is to start the second), then the test lets it finish.
  ws.write('pipeline.yaml', ws.read('pipeline.yaml').replace("run: [sh, -c, 'wc", "run: [sh, -c, 'while [ ! -e release.flag ]; do sleep 0.05; done; wc"));
  t.after(() => ws.dispose());
  const first = ws.start('run', 'pipeline.yaml');
  await waitFor(() => ws.exists('cache/keys') && readdirSync(ws.path('cache/keys')).length > 0, 60_000);
  const second = ws.start('run', 'pipeline.yaml');
  await waitFor(() => /waiting for pid/.test(second.output()), 60_000);
  ws.write('release.flag', '');
  const [r1, r2] = await Promise.all([first.done, second.done]);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r2.code, 0, r2.stderr);
  assert.match(r2.stdout + r2.stderr, /waiting for pid \d+ on .*, computing the same stage/);
  const both = [...ran(r1), ...ran(r2)].sort();
  assert.deepEqual(both, ['other', 'scale', 'sum'], 'every stage computed exactly once between them');
  for (const r of [r1, r2]) assert.deepEqual([...r.states.values()].filter((s) => s !== 'done' && s !== 'cached'), []);
  assert.equal(ws.read('results/total.txt'), '12');
});

test('a matrix sweep shares its upstream stage; adding a value runs only the new variant', (t) => {
  const ws = new Workspace({ 'p.yaml': `params: { base: 10 }
stages:
  prep:
    run: [sh, -c, 'echo $0 > "$1"', "\${params.base}", "\${outputs.o}"]
    outs: { o: null }
  train:
    matrix: { w: [1, 2] }
    run: [sh, -c, 'echo $(( $(cat "$0") * $1 )) > "$2"', "\${stages.prep.outputs.o}", "\${matrix.w}", "\${outputs.score}"]
    outs: { score: null }
  pick:
    run: [sh, -c, 'sort -n "$@" | tail -1 > best.txt; cp best.txt "$0"', "\${outputs.best}", "\${stages.train.outputs.score}"]
    outs: { best: null }
` });
  t.after(() => ws.dispose());
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), ['pick', 'prep', 'train[w=1]', 'train[w=2]']);
  assert.equal(ws.read('best.txt').trim(), '20');
  ws.write('p.yaml', ws.read('p.yaml').replace('w: [1, 2]', 'w: [1, 2, 5]'));
  const r2 = ws.run('run', 'p.yaml');
  assert.deepEqual(ran(r2), ['pick', 'train[w=5]']);
  assert.equal(ws.read('best.txt').trim(), '50');
  // exclude: combinations left out of the product.
  ws.write('p.yaml', ws.read('p.yaml').replace('w: [1, 2, 5]', 'w: [1, 2, 5], k: [a, b], exclude: [{ w: 5, k: b }, { k: b, w: 1 }]').replace('"\${matrix.w}", "\${outputs.score}"', '"\${matrix.w}", "\${outputs.score}", "\${matrix.k}"'));
  const r3 = ws.run('run', 'p.yaml');
  assert.equal(r3.code, 0, r3.stderr);
  assert.deepEqual([...r3.states.keys()].filter((k) => k.startsWith('train')).sort(), ['train[w=1,k=a]', 'train[w=2,k=a]', 'train[w=2,k=b]', 'train[w=5,k=a]']);
  ws.write('p.yaml', ws.read('p.yaml').replace(', k: [a, b], exclude: [{ w: 5, k: b }, { k: b, w: 1 }]', '').replace(', "\${matrix.k}"', ''));
  const dag = ws.run('dag', 'p.yaml');
  assert.match(dag.stdout, /^flowchart LR/);
  assert.equal((dag.stdout.match(/-->/g) ?? []).length, 6);
  assert.match(ws.run('dag', 'p.yaml', '--format', 'dot').stdout, /digraph/);
});

test('module stages run in a child process or inline, with the same results; dry run runs nothing', (t) => {
  const ws = numbersWorkspace();
  t.after(() => ws.dispose());
  const dry = ws.run('run', 'pipeline.yaml', '--dry-run');
  assert.equal(dry.code, 0);
  assert.match(dry.stdout, /dry run: 3 of 3 stages would run/);
  assert.ok(!ws.exists('results'), "!ws.exists('results')");
  ws.write('inline.yaml', ws.read('pipeline.yaml').replace('name: numbers', 'name: numbers\nexecutor: inline'));
  const a = ws.run('run', 'inline.yaml');
  assert.deepEqual(ran(a), ['other', 'scale', 'sum']);
  // Where a stage runs is not part of its fingerprint: the other spec finds it all cached.
  const b = ws.run('run', 'pipeline.yaml');
  assert.deepEqual(ran(b), []);
});

test('gc keeps what the latest runs use and removes the rest', (t) => {
  const ws = numbersWorkspace();
  t.after(() => ws.dispose());
  ws.run('run', 'pipeline.yaml');
  ws.run('run', 'pipeline.yaml', '--set', 'factor=7');
  const runsBefore = readdirSync(ws.path('cache/runs')).length;
  const dry = ws.run('gc', '--dry-run');
  assert.match(dry.stdout, /would remove 2 runs/);
  assert.equal(readdirSync(ws.path('cache/runs')).length, runsBefore);
  const g = ws.run('gc');
  assert.match(g.stdout, /removed 2 runs/);
  assert.deepEqual(ran(ws.run('run', 'pipeline.yaml', '--set', 'factor=7')), []);
  assert.deepEqual(ran(ws.run('run', 'pipeline.yaml')), ['scale', 'sum']);
  assert.ok(existsSync(join(ws.path('cache'), 'objects')), "existsSync(join(ws.path('cache'), 'objects'))");
});
