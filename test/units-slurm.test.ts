// The scheduler's Slurm path in-process, against a stand-in Slurm on the PATH (test/helpers/fake-slurm:
// sbatch runs each job script at once, squeue/scontrol/scancel read and write its state folder), so
// that what the driver submits, follows, reports and cancels is checked in seconds and reaches
// `npm run mutate` (test/slurm.test.ts runs the same against a real single-node cluster).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { Engine, RecordingReporter, scratch } from './helpers/engine.ts';
import type { StageState } from '../src/run/progress.ts';
import { ROOT } from './helpers/workspace.ts';

const SPEC = `executor: slurm
stages:
  prep:
    run: [sh, -c, 'tr a-z A-Z < raw.txt > "$0"', '\${outputs.data}']
    deps: [raw.txt]
    outs: { data: out/data.txt }
  head:
    matrix: { n: [1, 3] }
    run: [sh, -c, 'head -c "$1" "$0" > "$2"', '\${stages.prep.outputs.data}', '\${matrix.n}', '\${outputs.o}']
    outs: { o: 'out/head-\${matrix.n}.txt' }
  side:
    executor: process
    run: [sh, -c, 'echo side > "$0"', '\${outputs.o}']
    outs: { o: out/side.txt }
`;

const POLL = { pollMs: 20 };

/** A workspace, its engine, and a fresh fake Slurm whose commands come first on the PATH. */
function cluster(t: { after(f: () => void): void }, spec = SPEC, mode = 'run') {
  const w = scratch(t, { 'p.yaml': spec, 'raw.txt': 'hello\n' });
  const slurm = join(w, 'slurm-state');
  mkdirSync(slurm);
  writeFileSync(join(slurm, 'mode'), mode);
  const before = { path: process.env.PATH, state: process.env.FAKE_SLURM };
  process.env.PATH = `${join(ROOT, 'test', 'helpers', 'fake-slurm')}${delimiter}${process.env.PATH}`;
  process.env.FAKE_SLURM = slurm;
  t.after(() => {
    process.env.PATH = before.path;
    if (before.state === undefined) delete process.env.FAKE_SLURM;
    else process.env.FAKE_SLURM = before.state;
  });
  const lines = (f: string) => (existsSync(join(slurm, f)) ? readFileSync(join(slurm, f), 'utf8').split('\n').filter(Boolean) : []);
  return {
    w,
    e: new Engine(w),
    mode: (m: string) => writeFileSync(join(slurm, 'mode'), m),
    sbatch: () => lines('sbatch.log'),
    scancel: () => lines('scancel.log'),
    read: (p: string) => readFileSync(join(w, p), 'utf8'),
  };
}

const states = (r: { reporter: { states: Map<string, string> } }) => Object.fromEntries(r.reporter.states);
const arg = (line: string, name: string) => line.split(' ').find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

test('slurm: stale stages are submitted at once, a sweep as one array after its upstream job; results come from the cache; a second run submits nothing', async (t) => {
  const c = cluster(t);
  const r = await c.e.run('p.yaml', {}, {}, POLL);
  assert.equal(r.ok, true, JSON.stringify([...r.results.values()].map((x) => [x.id, x.error, x.logTail])));
  assert.deepEqual(states(r), { prep: 'done', 'head[n=1]': 'done', 'head[n=3]': 'done', side: 'done' });
  const [first, second, ...more] = c.sbatch();
  assert.deepEqual(more, [], 'two submissions: prep, and the sweep as one array');
  assert.equal(arg(first!, 'dependency'), undefined);
  assert.equal(arg(first!, 'array'), undefined);
  assert.equal(arg(first!, 'job-name'), 'pipeline:prep');
  assert.equal(arg(first!, 'chdir'), c.w);
  assert.equal(arg(second!, 'dependency'), 'afterok:101');
  assert.equal(arg(second!, 'array'), '0-1');
  assert.ok(second!.includes('--kill-on-invalid-dep=yes'), "second!.includes('--kill-on-invalid-dep=yes')");
  assert.deepEqual(r.reporter.messages.filter((m) => m.startsWith('submitted')), ['submitted prep as Slurm job 101', 'submitted head (2 variants, one array) as Slurm job 102, after 101']);
  assert.ok(r.reporter.messages.includes('head[n=3]: slurm job 102_1: completed'), r.reporter.messages.join('\n'));
  assert.ok(r.reporter.messages.includes('prep: slurm job 101: completed'), "r.reporter.messages.includes('prep: slurm job 101: completed')");
  // The jobs' results are the store's, published like a local run's.
  assert.equal(c.read('out/data.txt'), 'HELLO\n');
  assert.equal(c.read('out/head-1.txt'), 'H');
  assert.equal(c.read('out/head-3.txt'), 'HEL');
  assert.ok(r.results.get('prep')!.durationMs! >= 0 && r.results.get('prep')!.durationMs! < 60_000, "r.results.get('prep')!.durationMs! >= 0 && r.results.get('prep')!.durationMs! < 60_000");
  // A finished job's Slurm log and script are removed; nothing is left to cancel.
  assert.deepEqual(readdirSync(join(c.e.cache, 'slurm', 'jobs')), []);
  assert.deepEqual(r.cancelled, []);
  const again = await c.e.run('p.yaml', {}, {}, POLL);
  assert.deepEqual(states(again), { prep: 'cached', 'head[n=1]': 'cached', 'head[n=3]': 'cached', side: 'cached' });
  assert.equal(c.sbatch().length, 2, 'nothing stale, nothing submitted');
  // A cached Slurm stage that is forced is submitted again, and what reads it after it (its key
  // waits on the new result; the same bytes make it a cache hit in its job, which completes).
  const forced = await c.e.run('p.yaml', { force: ['prep'] }, {}, POLL);
  assert.deepEqual(states(forced), { prep: 'done', 'head[n=1]': 'done', 'head[n=3]': 'done', side: 'cached' });
  assert.deepEqual(c.sbatch().slice(2).map((l) => arg(l, 'job-name')), ['pipeline:prep', 'pipeline:head']);
  // An edit reruns the chain on Slurm; the forced stage is forced in its job too.
  writeFileSync(join(c.w, 'raw.txt'), 'world\n');
  const edited = await c.e.run('p.yaml', { force: ['side'] }, {}, POLL);
  assert.deepEqual(states(edited), { prep: 'done', 'head[n=1]': 'done', 'head[n=3]': 'done', side: 'done' });
  assert.equal(c.read('out/head-3.txt'), 'WOR');
  assert.equal(c.sbatch().length, 6);
});

test('slurm: a spec file whose name holds line breaks stays inside the job script\'s comment', async (t) => {
  const evil = 'evil\ntouch pwned\n.yaml';
  const c = cluster(t, 'executor: slurm\nstages:\n  a:\n    run: [sh, -c, \'echo a > "$0"\', "${outputs.o}"]\n    outs: { o: out/a.txt }\n');
  writeFileSync(join(c.w, evil), readFileSync(join(c.w, 'p.yaml')));
  const r = await c.e.run(evil, {}, {}, POLL);
  assert.equal(r.ok, true, JSON.stringify([...r.results.values()].map((x) => [x.id, x.error, x.logTail])));
  assert.equal(c.read('out/a.txt'), 'a\n');
  assert.ok(!existsSync(join(c.w, 'pwned')), 'the line after the break did not run');
});

test('slurm: a failed job fails its stage with Slurm\'s state, exit code and the stage\'s own error; Slurm cancels its dependents, reported blocked', async (t) => {
  const c = cluster(t, SPEC.replace(`'tr a-z A-Z < raw.txt > "$0"'`, `'echo "no dictionary" >&2; exit 3'`));
  const r = await c.e.run('p.yaml', {}, {}, POLL);
  assert.equal(r.ok, false);
  assert.deepEqual(states(r), { prep: 'failed', 'head[n=1]': 'blocked', 'head[n=3]': 'blocked', side: 'done' });
  const prep = r.results.get('prep')!;
  assert.match(prep.error!, /^slurm job 101 FAILED \(NonZeroExitCode\), exit code 1:0: command 'sh -c echo "no dictionary" >&2; exit 3 \S+' exited with code 3$/);
  assert.ok(prep.logTail!.some((l) => l.includes('no dictionary')), prep.logTail!.join('\n'));
  assert.ok(prep.logFile!.endsWith('-101.log') && existsSync(prep.logFile!), 'the failed job\'s log is kept');
  assert.deepEqual(r.cancelled, [], 'the dependents ended already: Slurm cancelled them');
  assert.equal(arg(c.sbatch()[1]!, 'dependency'), 'afterok:101');
});

test('slurm: a job that completes without its result in the cache fails its stage, saying the spec may have changed', async (t) => {
  const c = cluster(t, SPEC, 'skip');
  const r = await c.e.run('p.yaml', { targets: ['prep'] }, {}, POLL);
  assert.equal(r.ok, false);
  assert.equal(r.results.get('prep')!.error, 'slurm job 101 COMPLETED but its result is not in the cache (did the spec or its inputs change after it was submitted?)');
});

test('slurm: sbatch refusing a job fails the run with its message', async (t) => {
  const c = cluster(t, SPEC, 'reject');
  await assert.rejects(c.e.run('p.yaml', {}, {}, POLL), /^Error: sbatch failed for stage prep: sbatch: error: Batch job submission failed: Invalid partition name specified$/);
});

test('slurm: stopped while its jobs wait, the run stops its stages and cancels every job still queued', async (t) => {
  const c = cluster(t, SPEC, 'hold');
  const abort = new AbortController();
  const reporter = new (class extends RecordingReporter {
    override status(id: string, text: string): void {
      super.status(id, text);
      if (text === 'slurm job 101: pending (Resources)') abort.abort();
    }
  })();
  const r = await c.e.run('p.yaml', { signal: abort.signal, targets: ['head'] }, {}, { ...POLL, reporter });
  assert.equal(r.ok, false);
  assert.equal(states(r).prep, 'stopped');
  assert.ok(reporter.messages.includes('prep: slurm job 101: pending (Resources)'), reporter.messages.join('\n'));
  assert.deepEqual(r.cancelled, ['101', '102_0', '102_1']);
  assert.deepEqual(c.scancel(), ['101 102_0 102_1']);
});

test('slurm: a Slurm stage after a stale local one is submitted when reached, each variant alone, with no dependency; without a session it fails saying why', async (t) => {
  const c = cluster(t, SPEC.replace('executor: slurm\n', '').replace('  head:\n', '  head:\n    executor: slurm\n'));
  const r = await c.e.run('p.yaml', {}, {}, POLL);
  assert.equal(r.ok, true, JSON.stringify([...r.results.values()].map((x) => [x.id, x.error, x.logTail])));
  // Each variant as the driver reaches it (its input made here), none waiting on a job.
  assert.deepEqual(c.sbatch().map((l) => [arg(l, 'job-name'), arg(l, 'dependency'), arg(l, 'array')]), [['pipeline:head', undefined, undefined], ['pipeline:head', undefined, undefined]]);
  assert.equal(c.read('out/head-3.txt'), 'HEL');
  const noSession = await c.e.run('p.yaml', { force: ['head'] });
  assert.equal(noSession.results.get('head[n=1]')!.error, 'executor slurm: this run cannot submit jobs (run it with `pipeline run`)');
});

test("slurm: a job that leaves the queue without being seen to end is done when its result is in the cache; a job Slurm says failed is failed even with its result stored; an exit code of 0:0 is not reported", async (t) => {
  const c = cluster(t, SPEC, 'vanish');
  // A job followed forever is stopped, and seen as the wrong state.
  const signal = () => AbortSignal.timeout(20_000);
  const gone = await c.e.run('p.yaml', { targets: ['prep'], signal: signal() }, {}, POLL);
  assert.deepEqual(states(gone), { prep: 'done' }, JSON.stringify([...gone.results.values()].map((x) => x.error)));
  assert.equal(c.read('out/data.txt'), 'HELLO\n');
  assert.deepEqual(gone.cancelled, [], 'a job gone from the queue is not cancelled');
  // The job ran the stage (its result is stored), then Slurm ended it FAILED: its state is believed.
  c.mode('fail');
  const failed = await c.e.run('p.yaml', { targets: ['prep'], force: ['prep'], signal: signal() }, {}, POLL);
  assert.equal(failed.results.get('prep')!.state, 'failed');
  assert.equal(failed.results.get('prep')!.error, 'slurm job 102 FAILED (NonZeroExitCode), exit code 1:0');
  c.mode('cancel');
  const cancelled = await c.e.run('p.yaml', { targets: ['prep'], force: ['prep'], signal: signal() }, {}, POLL);
  assert.equal(cancelled.results.get('prep')!.error, 'slurm job 103 CANCELLED');
});

test('slurm: --jobs bounds only the stages computed here: a Slurm stage starts while a local one runs, and takes no local slot', async (t) => {
  const spec = `executor: slurm
stages:
  side:
    executor: process
    run: [sh, -c, 'sleep 0.5; echo side > "$0"', '\${outputs.o}']
    outs: { o: out/side.txt }
  prep:
    run: [sh, -c, 'echo prep > "$0"', '\${outputs.o}']
    outs: { o: out/prep.txt }
  late:
    executor: process
    run: [sh, -c, 'echo late > "$0"', '\${outputs.o}']
    outs: { o: out/late.txt }
`;
  // Slurm holds prep's job pending: the local stages run one at a time beside it.
  const c = cluster(t, spec, 'hold');
  const abort = new AbortController();
  let startedBySideEnd: string[] = [];
  const reporter = new (class extends RecordingReporter {
    override finish(id: string, state: StageState, detail?: string): void {
      super.finish(id, state, detail);
      if (id === 'side') startedBySideEnd = [...this.started];
      if (id === 'late') abort.abort();
    }
  })();
  const giveUp = setTimeout(() => abort.abort(), 20_000); // late never starting: the run is stopped, seen below
  t.after(() => clearTimeout(giveUp));
  const r = await c.e.run('p.yaml', { jobs: 1, signal: abort.signal }, {}, { ...POLL, reporter });
  assert.deepEqual(startedBySideEnd.sort(), ['prep', 'side'], 'prep started while side held the one local slot');
  assert.deepEqual(states(r), { side: 'done', late: 'done', prep: 'stopped' });
  assert.deepEqual(r.cancelled, ['101']);
});

test('slurm: a job submitted when its stage is reached that sbatch refuses fails that stage with sbatch\'s message', async (t) => {
  const c = cluster(t, SPEC.replace('executor: slurm\n', '').replace('  head:\n', '  head:\n    executor: slurm\n'), 'reject');
  const r = await c.e.run('p.yaml', { targets: ['head'], keepGoing: true }, {}, POLL);
  assert.deepEqual(states(r), { prep: 'done', 'head[n=1]': 'failed', 'head[n=3]': 'failed' });
  assert.equal(r.results.get('head[n=3]')!.error, 'sbatch failed for stage head[n=3]: sbatch: error: Batch job submission failed: Invalid partition name specified');
});

test('slurm: a time limit that is not a whole number of minutes asks Slurm for at least as long (rounded up, never down)', async (t) => {
  const cases: Array<[string, string]> = [['61s', '2'], ['90s', '2'], ['1:10', '2'], ['0:0:61', '2'], ['30.2m', '31'], ['59s', '1'], ['2h', '120'], ['1-0:0:1', '1441']];
  for (const [time, minutes] of cases) {
    const c = cluster(t, `executor: slurm\nstages:\n  a:\n    run: [sh, -c, 'echo a > "$0"', '\${outputs.o}']\n    resources: { time: '${time}' }\n    outs: { o: null }\n`);
    const r = await c.e.run('p.yaml', {}, {}, POLL);
    assert.equal(r.ok, true, JSON.stringify([...r.results.values()].map((x) => [x.id, x.error])));
    assert.equal(arg(c.sbatch()[0]!, 'time'), minutes, `resources.time ${time}`);
  }
});

test('slurm: a local stage still running when a Slurm job\'s own run starts keeps its temp folder and its process (the driver\'s session is live to the job)', async (t) => {
  // The local stage outlasts the start of prep's job (a `pipeline run` that clears the temp
  // folders of dead sessions, and ends the process groups they recorded): it must finish as usual.
  const c = cluster(t, SPEC.replace(`'echo side > "$0"'`, `'sleep 1.5; echo side > "$0"'`));
  const r = await c.e.run('p.yaml', {}, {}, POLL);
  assert.equal(r.ok, true, JSON.stringify([...r.results.values()].map((x) => [x.id, x.error])));
  assert.equal(states(r).side, 'done');
  assert.equal(c.read('out/side.txt'), 'side\n');
});
