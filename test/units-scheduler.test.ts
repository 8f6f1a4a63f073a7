// The scheduler's decide-run-commit path in-process, on real workspaces with small shell stages:
// what runs, what is served from the cache, what a failure leaves behind, what reaches the
// workspace. Fast enough for `npm run mutate` (no CLI process per run).
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { OBJECT_MTIME_MS } from '../src/cache/store.ts';
import { join } from 'node:path';
import { test } from 'node:test';
import { ListrReporter } from '../src/run/progress.ts';
import { resolveStageNames } from '../src/run/scheduler.ts';
import { UsageError } from '../src/diagnostics.ts';
import { Engine, RecordingReporter, scratch } from './helpers/engine.ts';

const CHAIN = `stages:
  prep:
    run: [sh, -c, 'tr a-z A-Z < raw.txt > "$0"; echo prep >> runs.log', '\${outputs.data}']
    deps: [raw.txt]
    outs: { data: out/data.txt }
  count:
    run: [sh, -c, 'wc -c < "$0" | tr -d " " > "$1"; echo count >> runs.log', '\${stages.prep.outputs.data}', '\${outputs.n}']
    outs: { n: out/n.txt }
  side:
    run: [sh, -c, 'echo side > "$0"; echo side >> runs.log', '\${outputs.o}']
    outs: { o: out/side.txt }
`;

function workspace(t: { after(f: () => void): void }, spec = CHAIN, files: Record<string, string> = {}) {
  const w = scratch(t, { 'p.yaml': spec, 'raw.txt': 'hello\n', ...files });
  const runs = () => (existsSync(join(w, 'runs.log')) ? readFileSync(join(w, 'runs.log'), 'utf8').split('\n').filter(Boolean) : []);
  const clearRuns = () => writeFileSync(join(w, 'runs.log'), '');
  return { w, e: new Engine(w), runs, clearRuns, read: (p: string) => readFileSync(join(w, p), 'utf8') };
}

const states = (r: { reporter: { states: Map<string, string> } }) => Object.fromEntries(r.reporter.states);

test('a first run runs and publishes every stage; a second serves all from the cache and runs nothing', async (t) => {
  const { e, runs, clearRuns, read } = workspace(t);
  const r1 = await e.run();
  assert.equal(r1.ok, true);
  assert.deepEqual(states(r1), { prep: 'done', count: 'done', side: 'done' });
  assert.deepEqual(runs().sort(), ['count', 'prep', 'side']);
  assert.equal(read('out/data.txt'), 'HELLO\n');
  assert.equal(read('out/n.txt'), '6\n');
  assert.deepEqual(r1.reporter.planned, ['prep', 'count', 'side']);
  // The latest index names each stage's run; each has a record and a view.
  const latest = await e.store.readLatest(e.dir, 'p.yaml');
  assert.deepEqual([...latest.keys()].sort(), ['count', 'prep', 'side']);
  for (const [id, ptr] of latest) {
    assert.equal(ptr.key, r1.results.get(id)!.key);
    assert.equal((await e.store.readRun(ptr.key))?.stage, id);
  }
  assert.deepEqual(await e.store.readPublished(e.dir), {
    'out/data.txt': latest.get('prep')!.outputs.data!.digest,
    'out/n.txt': latest.get('count')!.outputs.n!.digest,
    'out/side.txt': latest.get('side')!.outputs.o!.digest,
  });
  clearRuns();
  const r2 = await e.run();
  assert.deepEqual(states(r2), { prep: 'cached', count: 'cached', side: 'cached' });
  assert.deepEqual(r2.reporter.started, []);
  assert.deepEqual(runs(), []);
  for (const id of ['prep', 'count', 'side']) assert.equal(r2.results.get(id)!.key, r1.results.get(id)!.key);
  assert.match(r1.reporter.details.get('prep')!, /^\d+\.\d s$/);
});

test('an edited input reruns what reads it; an upstream output with the same bytes leaves its readers cached', async (t) => {
  const spec = CHAIN.replace("'tr a-z A-Z < raw.txt > \"$0\"", "'tr a-z A-Z < raw.txt | cut -c1-3 > \"$0\"");
  const { w, e, runs, clearRuns, read } = workspace(t, spec);
  await e.run();
  assert.equal(read('out/data.txt'), 'HEL\n');
  clearRuns();
  writeFileSync(join(w, 'raw.txt'), 'help me');
  const r = await e.run();
  assert.deepEqual(states(r), { prep: 'done', count: 'cached', side: 'cached' });
  assert.deepEqual(runs(), ['prep']);
  clearRuns();
  writeFileSync(join(w, 'raw.txt'), 'world');
  const r2 = await e.run();
  assert.deepEqual(states(r2), { prep: 'done', count: 'done', side: 'cached' });
  assert.deepEqual(runs(), ['prep', 'count']);
  assert.equal(read('out/data.txt'), 'WOR\n');
});

test('a failing stage commits nothing, blocks what reads it, stops the rest; --keep-going lets independent stages finish', async (t) => {
  const spec = CHAIN.replace("echo prep >> runs.log'", "echo prep >> runs.log; echo broken >&2; exit 3'");
  const { e, read } = workspace(t, spec);
  const r = await e.run('p.yaml', { jobs: 1 });
  assert.equal(r.ok, false);
  assert.deepEqual(states(r), { prep: 'failed', count: 'blocked', side: 'stopped' });
  const prep = r.results.get('prep')!;
  assert.match(prep.error!, /exit(ed)? (with )?(code )?3|code 3/);
  assert.ok(prep.logFile && prep.logTail?.includes('broken'), 'the failed log is kept with its tail');
  assert.equal(readFileSync(prep.logFile, 'utf8').trim().split('\n').pop(), 'broken');
  assert.equal(await e.store.readRun(prep.key!), undefined, 'no record for the failed key');
  assert.deepEqual(await e.store.runKeys(), []);
  assert.ok(!existsSync(join(e.dir, 'out', 'data.txt')), "!existsSync(join(e.dir, 'out', 'data.txt'))");
  assert.deepEqual(readdirSync(e.store.tmpDir), [], 'no stage folder left');
  const r2 = await e.run('p.yaml', { jobs: 1, keepGoing: true });
  assert.deepEqual(states(r2), { prep: 'failed', count: 'blocked', side: 'done' });
  assert.equal(r2.ok, false, 'one stage done does not make a run with a failure ok');
  assert.equal(read('out/side.txt'), 'side\n');
  assert.deepEqual([...(await e.store.readLatest(e.dir, 'p.yaml')).keys()], ['side']);
});

test('a run stopped by a failure waits for the stages still running to stop and reports how their own runs ended; none outlives it', async (t) => {
  // slow takes a second to stop (it traps SIGTERM): the run waits for it, then reports it stopped.
  const spec = 'stages:\n  bad:\n    run: [sh, -c, "sleep 0.3; exit 3"]\n  slow:\n    run: [sh, -c, "trap \'sleep 1; exit 1\' TERM; sleep 5 & wait"]\n';
  const { e } = workspace(t, spec);
  const r = await e.run('p.yaml', { jobs: 2 });
  assert.deepEqual(states(r), { bad: 'failed', slow: 'stopped' });
  assert.match(r.results.get('slow')!.key ?? '', /^[0-9a-f]{32}$/, 'the result of the stopped run itself, which knows its key');
  assert.deepEqual(readdirSync(e.store.tmpDir), [], "the stopped stage's folder is gone when the run returns");
});

test("a stage whose key cannot be held fails saying why; a failed stage whose log cannot be kept fails with its own error", async (t) => {
  const { e } = workspace(t, 'stages:\n  s:\n    run: [sh, -c, "echo oops >&2; exit 4"]\n');
  mkdirSync(join(e.store.root, 'logs'), { recursive: true });
  writeFileSync(join(e.store.root, 'keys'), 'a file where the key locks go');
  const locked = (await e.run()).results.get('s')!;
  assert.equal(locked.state, 'failed');
  assert.match(locked.error!, /^EEXIST: file already exists, mkdir '.*keys'$/);
  rmSync(join(e.store.root, 'keys'));
  writeFileSync(join(e.store.root, 'logs', 'failed'), 'a file where failed logs go');
  const failed = (await e.run()).results.get('s')!;
  assert.deepEqual([failed.state, failed.logFile], ['failed', undefined]);
  assert.match(failed.error!, /exited with code 4/);
});

test('a run records in the published index only what it changed: what another run published meanwhile stays recorded', async (t) => {
  const { e } = workspace(t, CHAIN.replace("'echo side > \"$0\"; echo side >> runs.log'", "'sleep 1; echo side > \"$0\"; echo side >> runs.log'"));
  await e.run();
  const other = 'f'.repeat(32);
  // While this run computes side (forced), another run publishes out/data.txt anew.
  const reporter = new (class extends RecordingReporter {
    override start(id: string): void {
      super.start(id);
      if (id === 'side') void e.store.writePublished(e.dir, { 'out/data.txt': other });
    }
  })();
  const r = await e.run('p.yaml', { force: ['side'], reporter });
  assert.deepEqual(Object.fromEntries(reporter.states), { prep: 'cached', count: 'cached', side: 'done' });
  const published = await e.store.readPublished(e.dir);
  assert.equal(published['out/data.txt'], other, "this run did not change it: the other run's entry is kept");
  assert.equal(published['out/side.txt'], r.results.get('side')!.record!.outputs.o!.digest);
});

test('a missing input fails its stage by name; a stage that writes nothing it declared fails', async (t) => {
  const { w, e } = workspace(t);
  (await import('node:fs')).rmSync(join(w, 'raw.txt'));
  const r = await e.run('p.yaml', { keepGoing: true });
  assert.equal(r.results.get('prep')!.error, "input 'raw.txt' does not exist in the workspace");
  const two = workspace(t, 'stages:\n  a:\n    run: [cat, a.txt, b.txt]\n    deps: [a.txt, b.txt]\n');
  assert.equal((await two.e.run()).results.get('a')!.error, "input 'a.txt', 'b.txt' does not exist in the workspace");
  const lazy = workspace(t, 'stages:\n  a:\n    run: [sh, -c, "true", "${outputs.o}"]\n    outs: { o: null }\n');
  const r2 = await lazy.e.run();
  assert.equal(r2.results.get('a')!.error, "the stage did not write its output 'o'");
});

test('targets run with what they read; --force reruns one stage; unknown names are usage errors', async (t) => {
  const { e, runs, clearRuns } = workspace(t);
  const r = await e.run('p.yaml', { targets: ['count'] });
  assert.deepEqual(states(r), { prep: 'done', count: 'done' });
  clearRuns();
  const r2 = await e.run('p.yaml', { force: ['prep'] });
  assert.deepEqual(states(r2), { prep: 'done', count: 'cached', side: 'done' });
  assert.deepEqual(runs().sort(), ['prep', 'side']);
  clearRuns();
  const r3 = await e.run('p.yaml', { forceAll: true });
  assert.deepEqual(states(r3), { prep: 'done', count: 'done', side: 'done' });
  const p = (await e.planner()).pipeline;
  assert.deepEqual(resolveStageNames(p, ['side', 'prep']), ['side', 'prep']);
  assert.throws(() => resolveStageNames(p, ['cout']), (err: unknown) => err instanceof UsageError && err.message === "no stage named 'cout' in p.yaml (stages: prep, count, side)");
});

test('variants with the same key run once, waiting in-process for the one computing it, also when forced one after another; a sweep key names every variant', async (t) => {
  const spec = `stages:
  s:
    matrix: { k: [1, 2, 3] }
    run: [sh, -c, 'sleep 0.2; echo same > "$0"; echo s >> runs.log', '\${outputs.o}']
    outs: { o: null }
`;
  const { e, runs } = workspace(t, spec);
  const r = await e.run('p.yaml', { jobs: 3 });
  assert.deepEqual(states(r), { 's[k=1]': 'done', 's[k=2]': 'cached', 's[k=3]': 'cached' });
  assert.deepEqual(runs(), ['s']);
  assert.deepEqual(r.reporter.messages, [], 'no variant waited on the key lock of its own run');
  const forced = await e.run('p.yaml', { jobs: 1, force: ['s'] });
  assert.deepEqual(states(forced), { 's[k=1]': 'done', 's[k=2]': 'cached', 's[k=3]': 'cached' });
  assert.deepEqual(runs(), ['s', 's'], 'forced, the key is computed once more, not once per variant');
  assert.deepEqual(resolveStageNames((await e.planner()).pipeline, ['s']), ['s[k=1]', 's[k=2]', 's[k=3]']);
});

test('a stage that writes into what it read fails; the damaged output is dropped and its producer reruns', async (t) => {
  const spec = `stages:
  make:
    run: [sh, -c, 'echo good > "$0"; echo make >> runs.log', '\${outputs.o}']
    outs: { o: null }
  vandal:
    run: [sh, -c, 'chmod u+w "$0"; echo BAD! > "$0"; echo ok > "$1"', '\${stages.make.outputs.o}', '\${outputs.o}']
    outs: { o: null }
`;
  const { e, runs, clearRuns } = workspace(t, spec);
  const r = await e.run();
  assert.deepEqual(states(r), { make: 'done', vandal: 'failed' });
  assert.match(r.results.get('vandal')!.error!, /^the stage wrote into its input \(make\.o: modified after it was stored\): stages must not modify what they read/);
  // The vandal mended: the producer reruns (its object was dropped), the reader gets clean bytes.
  clearRuns();
  writeFileSync(join(e.dir, 'p.yaml'), spec.replace(`'chmod u+w "$0"; echo BAD! > "$0"; echo ok > "$1"'`, `'cat "$0" > "$1"'`));
  const r2 = await e.run();
  assert.deepEqual(states(r2), { make: 'done', vandal: 'done' });
  assert.deepEqual(runs(), ['make']);
  const rec = await e.store.readRun(r2.results.get('vandal')!.key!);
  assert.equal(readFileSync(e.store.objectPath(rec!.outputs.o!.digest), 'utf8'), 'good\n');
});

// (Time limits are checked through the CLI in trust-processes.test.ts: a second per run is too slow here.)
test('an aborted run stops its stages and blocks what waits on them', async (t) => {
  const { e } = workspace(t, 'stages:\n  slow:\n    run: [sleep, "5"]\n  after:\n    run: [echo]\n    needs: [slow]\n');
  // Stopped before any stage started (while compiling): nothing runs.
  const early = new AbortController();
  early.abort(new Error('interrupted'));
  const r0 = await e.run('p.yaml', { signal: early.signal });
  assert.deepEqual(states(r0), { slow: 'stopped', after: 'blocked' });
  // Stopped while the stage runs: its process is stopped at once, not waited for.
  const stop = new AbortController();
  let startedAt = 0;
  const reporter = new (class extends RecordingReporter {
    override start(id: string): void {
      super.start(id);
      startedAt = Date.now();
      setTimeout(() => stop.abort(new Error('interrupted')), 300);
    }
  })();
  const r = await e.run('p.yaml', { signal: stop.signal, reporter });
  assert.deepEqual(reporter.started, ['slow']);
  assert.ok(Date.now() - startedAt < 3000, `stopped after ${Date.now() - startedAt} ms`);
  assert.deepEqual(Object.fromEntries(reporter.states), { slow: 'stopped', after: 'blocked' });
  assert.equal(r.ok, false);
  assert.deepEqual(await e.store.runKeys(), []);
});

test('outs: a user file is never replaced unasked; an edited published output is kept aside; overwrite: true replaces', async (t) => {
  const { w, e, read } = workspace(t, CHAIN, { 'out/side.txt': 'mine\n' });
  const r = await e.run('p.yaml', { keepGoing: true });
  assert.equal(r.results.get('side')!.state, 'failed');
  assert.match(r.results.get('side')!.error!, /^outs path 'out\/side.txt' already exists and no stage of this pipeline wrote it: move it away, or let the stage replace it with `outs: \{ o: \{ path: out\/side.txt, overwrite: true \} \}`$/);
  assert.equal(read('out/side.txt'), 'mine\n');
  // Edited after the pipeline wrote it: kept aside, the output put back.
  chmodSync(join(w, 'out', 'data.txt'), 0o644);
  writeFileSync(join(w, 'out', 'data.txt'), 'edited');
  const r2 = await e.run('p.yaml', { keepGoing: true });
  assert.equal(r2.results.get('prep')!.state, 'cached');
  assert.equal(read('out/data.txt'), 'HELLO\n');
  const aside = readdirSync(join(w, 'out')).find((f) => f.startsWith('data.txt.edited-'))!;
  assert.match(aside, /^data\.txt\.edited-\d{8}T\d{6}$/);
  assert.equal(read(`out/${aside}`), 'edited');
  assert.ok(r2.reporter.messages.some((m) => m === `out/data.txt was changed since the pipeline wrote it: your version is kept as out/${aside}, and stage prep's output put back`), "r2.reporter.messages.some((m) => m === `out/data.txt was changed since the pipeline wrote it: your version is kept as out/${aside}, and stage prep's output put back`)");
  // The same path, allowed.
  writeFileSync(join(w, 'p.yaml'), CHAIN.replace('outs: { o: out/side.txt }', 'outs: { o: { path: out/side.txt, overwrite: true } }'));
  const r3 = await e.run();
  assert.equal(r3.ok, true);
  assert.equal(read('out/side.txt'), 'side\n');
});

test('on a terminal (listr2), a stage settled before its task started shows its state, not "waiting"', async () => {
  const r = new ListrReporter(await import('listr2'), 'silent');
  r.plan(['a', 'b', 'c', 'd']);
  r.finish('a', 'cached'); // the scheduler settles cached stages at once
  r.start('b');
  r.finish('b', 'done', '1.0 s');
  r.finish('c', 'blocked');
  r.finish('d', 'failed', 'exit code 3');
  await r.close();
  assert.deepEqual(r.titles(), ['a: cached', 'b: done (1.0 s)', 'c: not run (an upstream stage failed)', 'd: FAILED (exit code 3)']);
});

test("a stage's fingerprint: scripts a command names are code (also inside sh -c, --opt=file and key=file), $VARS it reads, env and sweep references, a module's own facts", async (t) => {
  const up = (d: string) => ({ key: d.repeat(32), committedAt: 1, outputs: { o: { kind: 'file' as const, digest: d.repeat(32), size: 1, files: 1 } } });
  const spec = `stages:
  s:
    matrix: { k: [1, 2] }
    run: [echo]
    outs: { o: null }
  cmd:
    run: [python3, scripts/train.py, --config=cfg.json, data=hydra.yaml, --flag, -x, '\${stages.s.outputs.o}', '--out=\${outputs.o}', '\${stages.s.outputs.o}.bak']
    env: { A: 'a-\${stages.s[k=1].outputs.o}', ALL: '\${stages.s.outputs.o}', OUT: '\${outputs.o}/log' }
    outs: { o: null }
  sh:
    run: [sh, -c, 'sh scripts/eval.sh $LR_TEST_VAR "$HOME" > out.txt', '\${outputs.o}']
    outs: { o: null }
  one:
    run: [sh, -c, 'cat notes.txt $FROM_SPEC']
    env: { FROM_SPEC: fixed }
  mod:
    uses: stages/m.ts
    params: { n: 3 }
`;
  const { e } = workspace(t, spec, {
    'scripts/train.py': 'print(1)\n',
    'scripts/eval.sh': 'echo 1\n',
    'cfg.json': '{}\n',
    'hydra.yaml': 'lr: 1\n',
    'out.txt': 'written by the script, not code\n',
    '-x': 'a file named like a flag is not read as code\n',
    'notes.txt': 'read by the script\n',
    'cat notes.txt $FROM_SPEC': 'named like the whole script, which is read as shell words\n',
    'stages/m.ts': "import { defineStage } from 'rrtn-pipeline';\nexport default defineStage({ params: { type: 'object', properties: { n: { type: 'number' } } }, outputs: ['o'], fingerprint: (p) => ({ device: `gpu${(p as { n: number }).n}` }), run() {} });\n",
  });
  process.env.LR_TEST_VAR = '0.5';
  t.after(() => delete process.env.LR_TEST_VAR);
  const planner = await e.planner();
  const p = planner.pipeline;
  const ups = new Map([['s[k=1]', up('a')], ['s[k=2]', up('b')]]);
  const cmd = (await planner.evaluate(p.stages.get('cmd')!, ups))!.fingerprint;
  const digest = async (f: string) => (await import('../src/cache/hash.ts')).hashBytes(readFileSync(join(e.dir, f)));
  // A sweep read whole is one argument per variant; inside a longer argument, its paths joined by spaces.
  assert.deepEqual(cmd.command, { argv: ['python3', 'scripts/train.py', '--config=cfg.json', 'data=hydra.yaml', '--flag', '-x', `@${'a'.repeat(32)}`, `@${'b'.repeat(32)}`, '--out=${outputs.o}', `@${'a'.repeat(32)} @${'b'.repeat(32)}.bak`], shell: false });
  assert.deepEqual(cmd.code, { 'scripts/train.py': await digest('scripts/train.py'), 'cfg.json': await digest('cfg.json'), 'hydra.yaml': await digest('hydra.yaml') });
  assert.deepEqual(cmd.upstream, { 's[k=1].o': 'a'.repeat(32), 's[k=2].o': 'b'.repeat(32) });
  assert.deepEqual(cmd.env, { A: `a-@${'a'.repeat(32)}`, ALL: `@${'a'.repeat(32)} @${'b'.repeat(32)}`, OUT: '${outputs.o}/log' });
  assert.deepEqual(cmd.shellEnv, {});
  assert.equal(cmd.kind, 'command');
  assert.deepEqual(cmd.outputs, ['o']);
  // Upstream outputs not known yet: no key, unless a partial answer is asked for (status).
  assert.equal(await planner.evaluate(p.stages.get('cmd')!, new Map([['s[k=1]', up('a')]])), undefined);
  const partial = (await planner.evaluate(p.stages.get('cmd')!, new Map([['s[k=1]', up('a')]]), true))!.fingerprint;
  assert.deepEqual(partial.command!.argv.slice(6, 8), [`@${'a'.repeat(32)}`, '@?']);

  const sh = (await planner.evaluate(p.stages.get('sh')!, new Map()))!.fingerprint;
  assert.deepEqual(sh.code, { 'scripts/eval.sh': await digest('scripts/eval.sh') });
  assert.deepEqual(sh.shellEnv, { LR_TEST_VAR: '0.5' });
  assert.equal(p.envRead.LR_TEST_VAR, '0.5');
  // A variable the spec sets is in env, not read from the engine's environment.
  const one = (await planner.evaluate(p.stages.get('one')!, new Map()))!.fingerprint;
  assert.deepEqual(one.code, { 'notes.txt': await digest('notes.txt') });
  assert.deepEqual([one.shellEnv, one.env], [{}, { FROM_SPEC: 'fixed' }]);
  assert.equal('FROM_SPEC' in p.envRead, false);

  const mod = (await planner.evaluate(p.stages.get('mod')!, new Map()))!;
  assert.deepEqual(mod.fingerprint.extras, { device: 'gpu3' });
  assert.deepEqual(mod.fingerprint.params, { n: 3 });
  assert.ok('stages/m.ts' in mod.fingerprint.code && 'pipeline:src/stage-api.ts' in mod.fingerprint.code, "'stages/m.ts' in mod.fingerprint.code && 'pipeline:src/stage-api.ts' in mod.fingerprint.code");
  assert.deepEqual(planner.facts.map((f) => f.extras), [{ device: 'gpu3' }]);
  assert.match(mod.key, /^[0-9a-f]{32}$/);
});

test('a failed log is kept under a safe name for each variant, its tail is the last 20 lines that say something; a stage past its time limit fails saying so', async (t) => {
  const spec = `stages:
  s:
    matrix: { k: ['a b/(c)'] }
    run: [sh, -c, 'for i in $(seq 1 30); do echo "line $i"; echo; done; exit 1']
  slow:
    run: [sleep, '5']
    resources: { time: 1s }
`;
  const { e } = workspace(t, spec);
  const started = Date.now();
  const r = await e.run('p.yaml', { keepGoing: true });
  const s = r.results.get('s[k=a b/(c)]')!;
  assert.equal(s.state, 'failed');
  assert.equal(s.logFile, join(e.store.root, 'logs', 'failed', 's_k=a_b_c_.log'));
  assert.deepEqual(s.logTail, Array.from({ length: 20 }, (_, i) => `line ${i + 11}`));
  const slow = r.results.get('slow')!;
  assert.equal(slow.state, 'failed');
  assert.equal(slow.error, 'the stage ran past its time limit of 1 s (resources.time) and was stopped');
  assert.ok(Date.now() - started < 4000, 'stopped at its limit, not when it ended');
  assert.match(r.reporter.details.get('slow')!, /time limit/);
});

test("a command's env renders references to upstream outputs; a stage's detail is its duration; a workspace file already equal to the output is taken as published", async (t) => {
  const spec = `stages:
  prep:
    run: [sh, -c, 'printf data > "$0"', '\${outputs.o}']
    outs: { o: out/o.txt }
  v:
    matrix: { k: [1, 2] }
    run: [sh, -c, 'printf "$1" > "$0"', '\${outputs.o}', '\${matrix.k}']
    outs: { o: null }
  use:
    run: [sh, -c, 'cat "$IN" $ALL > "$0"', '\${outputs.r}']
    env: { IN: '\${stages.prep.outputs.o}', ALL: '\${stages.v.outputs.o}' }
    outs: { r: out/r.txt }
`;
  const { e, read } = workspace(t, spec, { 'out/o.txt': 'data' });
  const r = await e.run();
  assert.equal(r.ok, true, JSON.stringify([...r.results.values()].map((x) => x.error)));
  assert.equal(read('out/r.txt'), 'data12', 'a sweep read whole in env: its paths joined by spaces');
  assert.match(r.reporter.details.get('use')!, /^\d+\.\d s$/);
  assert.ok(Number(r.reporter.details.get('use')!.split(' ')[0]) < 30, 'a duration, not a timestamp');
  assert.equal((await e.store.readPublished(e.dir))['out/o.txt'], r.results.get('prep')!.record!.outputs.o!.digest);
});

test('a stage whose key another process is computing waits, says for whom, stops when the run is stopped, and takes the other\'s result once the key is free, even forced', async (t) => {
  const { e, runs, clearRuns } = workspace(t);
  const key = (await e.run()).results.get('prep')!.key!;
  clearRuns();
  const other = await e.store.lockKey(key, () => {}, new AbortController().signal);
  // Not forced, its result in the cache: served at once, the key's holder not waited for.
  const hit = await e.run('p.yaml', { targets: ['prep'], signal: AbortSignal.timeout(10_000) });
  assert.deepEqual([states(hit), hit.reporter.messages], [{ prep: 'cached' }, []]);
  const abort = new AbortController();
  const reporter = new (class extends RecordingReporter {
    override message(text: string): void {
      super.message(text);
      if (text.startsWith('prep: waiting for')) abort.abort();
    }
  })();
  const stopped = await e.run('p.yaml', { force: ['prep'], signal: abort.signal, reporter, targets: ['prep'] });
  assert.equal(reporter.states.get('prep'), 'stopped');
  assert.equal(stopped.results.get('prep')!.key, key);
  assert.match(reporter.messages[0]!, new RegExp(`^prep: waiting for pid ${process.pid} on \\S+, computing the same stage \\(.+\\)$`));
  assert.deepEqual(runs(), [], 'not computed while the other holds the key');
  // Freed while this run waits: even forced, it takes what the other made rather than computing it again.
  const waiting = new (class extends RecordingReporter {
    override message(text: string): void {
      super.message(text);
      if (text.startsWith('prep: waiting for')) void other.release();
    }
  })();
  const r = await e.run('p.yaml', { force: ['prep'], reporter: waiting, targets: ['prep'] });
  assert.equal(waiting.states.get('prep'), 'cached');
  assert.equal(r.results.get('prep')!.key, key);
  assert.deepEqual(runs(), []);
  assert.equal((await e.run('p.yaml', { force: ['prep'], targets: ['prep'] })).reporter.states.get('prep'), 'done', 'with nobody else on the key, forced computes');
  assert.deepEqual(runs(), ['prep']);
});

test('a stage waits for every stage it reads, however they finish in time', async (t) => {
  const { e, read } = workspace(t, `stages:
  fast:
    run: [sh, -c, 'echo fast > "$0"', '\${outputs.o}']
    outs: { o: out/fast.txt }
  slow:
    run: [sh, -c, 'sleep 0.4; echo slow > "$0"', '\${outputs.o}']
    outs: { o: out/slow.txt }
  both:
    run: [sh, -c, 'cat "$0" "$1" > "$2"', '\${stages.fast.outputs.o}', '\${stages.slow.outputs.o}', '\${outputs.o}']
    outs: { o: out/both.txt }
`);
  const r = await e.run('p.yaml', { jobs: 3 });
  assert.equal(r.ok, true, JSON.stringify([...r.results.values()].map((x) => x.error)));
  assert.equal(read('out/both.txt'), 'fast\nslow\n');
});

test('--verify rehashes what a hit would serve: an object whose bytes changed under its stamp is caught only then', async (t) => {
  const { e, runs, clearRuns, read } = workspace(t);
  const r = await e.run();
  const obj = e.store.objectPath(r.results.get('prep')!.record!.outputs.data!.digest);
  chmodSync(obj, 0o644);
  writeFileSync(obj, 'HELLO!');
  utimesSync(obj, OBJECT_MTIME_MS / 1000, OBJECT_MTIME_MS / 1000);
  clearRuns();
  assert.deepEqual(states(await e.run()), { prep: 'cached', count: 'cached', side: 'cached' }, 'same size and stamp: a stat check cannot see it');
  const v = await e.run('p.yaml', { verify: true });
  assert.equal(v.reporter.states.get('prep'), 'done');
  assert.deepEqual(runs(), ['prep']);
  assert.equal(read('out/data.txt'), 'HELLO\n');
});

test('a module stage sees its inputs (a gathered sweep as a list with each variant named, one output, a workspace file) and reports progress and notices', async (t) => {
  const spec = `stages:
  s:
    matrix: { k: [1, 2] }
    run: [sh, -c, 'echo "$1" > "$0"', '\${outputs.o}', '\${matrix.k}']
    outs: { o: null }
  m:
    uses: stages/m.ts
    executor: inline
    inputs: { all: '\${stages.s.outputs.o}', one: '\${stages.s[k=2].outputs.o}', table: raw.txt }
`;
  const mod = `import { writeFileSync } from 'node:fs';
import { defineStage } from 'rrtn-pipeline';
export default defineStage({
  params: { type: 'object' },
  inputs: ['all', 'one', 'table'],
  outputs: ['o'],
  run(ctx) {
    ctx.progress(0.5, 'half way');
    ctx.notice('a notice');
    writeFileSync(ctx.outputs.o, JSON.stringify({ inputs: ctx.inputs, variants: ctx.variants }));
  },
});
`;
  const { w, e } = workspace(t, spec, { 'stages/m.ts': mod });
  const r = await e.run();
  assert.equal(r.ok, true, JSON.stringify([...r.results.values()].map((x) => x.error)));
  const view = (id: string) => e.store.viewPath(r.results.get(id)!.record!, 'o');
  const seen = JSON.parse(readFileSync(join(view('m'), ''), 'utf8')) as { inputs: Record<string, unknown>; variants: Record<string, unknown> };
  assert.deepEqual(seen.inputs, { all: [view('s[k=1]'), view('s[k=2]')], one: view('s[k=2]'), table: join(w, 'raw.txt') });
  assert.deepEqual(seen.variants, {
    all: [
      { stage: 's[k=1]', matrix: { k: 1 }, path: view('s[k=1]') },
      { stage: 's[k=2]', matrix: { k: 2 }, path: view('s[k=2]') },
    ],
    one: [{ stage: 's[k=2]', matrix: { k: 2 }, path: view('s[k=2]') }],
  });
  assert.ok(r.reporter.progressed.some(([id, f, m]) => id === 'm' && f === 0.5 && m === 'half way'), JSON.stringify(r.reporter.progressed));
  assert.ok(r.reporter.messages.includes('m: a notice'), r.reporter.messages.join('\n'));
  const d = r.results.get('m')!.durationMs!;
  assert.ok(d >= 0 && d < 60_000, `duration ${d}`);
});

test('a stage that wrote into many files of what it read: the first three are named and the rest counted, an output read twice counted once', async (t) => {
  const spec = `stages:
  make:
    run: [sh, -c, 'mkdir "$0"; for f in a b c d e; do echo $f > "$0/$f"; done', '\${outputs.o}']
    outs: { o: null }
  vandal:
    run: [sh, -c, 'chmod -R u+w "$0"; for f in a b c d e; do echo X > "$0/$f"; done; echo ok > "$2"', '\${stages.make.outputs.o}', '\${stages.make.outputs.o}', '\${outputs.o}']
    env: { SAME: '\${stages.make.outputs.o}' }
    outs: { o: null }
`;
  const { e } = workspace(t, spec);
  const r = await e.run();
  assert.equal(
    r.results.get('vandal')!.error,
    'the stage wrote into its input (make.o/a: modified after it was stored; make.o/b: modified after it was stored; make.o/c: modified after it was stored; 2 more): stages must not modify what they read; the damaged copy was dropped and its producer will rerun',
  );
  // Exactly three: all named, nothing more to count.
  writeFileSync(join(e.dir, 'p.yaml'), spec.replace('for f in a b c d e; do echo X', 'for f in a b c; do echo X'));
  const r2 = await e.run();
  assert.match(r2.results.get('vandal')!.error!, /make\.o\/c: modified after it was stored\): stages must not/);
});

test('publishing: a published output the user deleted is put back silently; a new result replaces the old one without keeping it aside; overwrite: true replaces a user file without keeping it', async (t) => {
  const { w, e, read } = workspace(t, CHAIN, { 'out/side.txt': 'mine\n' });
  writeFileSync(join(w, 'p.yaml'), CHAIN.replace('outs: { o: out/side.txt }', 'outs: { o: { path: out/side.txt, overwrite: true } }'));
  const r = await e.run();
  assert.equal(r.ok, true);
  assert.equal(read('out/side.txt'), 'side\n');
  (await import('node:fs')).rmSync(join(w, 'out', 'data.txt'));
  const r2 = await e.run();
  assert.equal(read('out/data.txt'), 'HELLO\n');
  writeFileSync(join(w, 'raw.txt'), 'changed\n');
  const r3 = await e.run();
  assert.equal(read('out/data.txt'), 'CHANGED\n');
  assert.deepEqual(readdirSync(join(w, 'out')).sort(), ['data.txt', 'n.txt', 'side.txt'], 'nothing kept aside');
  for (const x of [r, r2, r3]) assert.deepEqual(x.reporter.messages.filter((m) => m.includes('kept as')), []);
});

test('a failed stage\'s log tail is read without leaving a file open', async (t) => {
  const { e } = workspace(t, 'stages:\n  bad:\n    run: [sh, -c, "echo something went wrong; exit 3"]\n');
  await e.run();
  const open = () => readdirSync('/proc/self/fd').length;
  const before = open();
  for (let i = 0; i < 5; i++) {
    const r = await e.run();
    assert.deepEqual(r.results.get('bad')!.logTail, ['something went wrong']);
  }
  assert.equal(open(), before);
});

test('an outs path that a stage turned into a way out of the workspace (a link made during the run) is refused at publish, by name', async (t) => {
  const outside = scratch(t);
  const { w, e } = workspace(t, 'stages:\n  s:\n    run: [echo]\n');
  writeFileSync(join(w, 'p.yaml'), `stages:\n  s:\n    run: [sh, -c, 'ln -s "${outside}" "${w}/out"; echo x > "$0"', '\${outputs.o}']\n    outs: { o: out/x.txt }\n`);
  const r = await e.run();
  assert.equal(r.results.get('s')!.state, 'failed');
  assert.match(r.results.get('s')!.error!, /^cannot publish output 'o': /);
  assert.deepEqual(readdirSync(outside), [], 'nothing written through the link');
});

test('a run of many stages leaves no abort listener behind on its signal (no MaxListeners warning), and records how long each stage took', async (t) => {
  const spec = `stages:\n${Array.from({ length: 14 }, (_, i) => `  s${i}:\n    run: [sh, -c, 'echo ${i} > "$0"', '\${outputs.o}']\n    outs: { o: null }\n`).join('')}`;
  const { e } = workspace(t, spec);
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const stop = new AbortController();
  const r = await e.run('p.yaml', { signal: stop.signal });
  await new Promise((res) => setImmediate(res));
  assert.equal(r.ok, true);
  assert.deepEqual(warnings, []);
  const rec = await e.store.readRun(r.results.get('s3')!.key!);
  assert.ok(rec!.durationMs >= 0 && rec!.durationMs < 60_000, `duration ${rec!.durationMs}`);
});

test("a stage whose key cannot be computed (its module's fingerprint hook throws) fails saying so; a Slurm stage in a run that cannot submit jobs fails saying how to run it", async (t) => {
  const mod = `import { defineStage } from 'rrtn-pipeline';
export default defineStage({ params: { type: 'object' }, outputs: ['o'], fingerprint() { throw new Error('no GPU driver to ask'); }, run() {} });
`;
  const { e } = workspace(t, 'stages:\n  m:\n    uses: stages/m.ts\n  s:\n    run: [echo]\n    executor: slurm\n', { 'stages/m.ts': mod });
  const r = await e.run('p.yaml', { keepGoing: true });
  assert.equal(r.results.get('m')!.error, "cannot compute the stage's cache key: no GPU driver to ask");
  assert.equal(r.results.get('s')!.error, 'executor slurm: this run cannot submit jobs (run it with `pipeline run`)');
});
