// The Slurm executor on a real single-node cluster (scripts/slurm/up.sh starts one when it can: as
// root, installing Slurm from Debian if missing; it is stopped after if this file started it).
// Stages become jobs (a sweep one array, dependencies afterok), results and cache entries are
// those of the local executor, a failure shows Slurm's state and the stage's own error, Ctrl-C
// and jobs killed from outside are handled, the next run resubmits only what is missing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Store } from '../src/cache/store.ts';
import { ran, ROOT, waitFor, Workspace } from './helpers/workspace.ts';

const up = () => spawnSync('sh', ['-c', 'sinfo -h -o %t 2>/dev/null | grep -Eq "idle|mix|alloc"']).status === 0;
let startedHere = false;
let skip: string | false = false;
before(() => {
  if (up()) return;
  if (process.getuid?.() !== 0 && !process.env.CI) {
    skip = 'no Slurm cluster is running and this is not root: start one with `sudo npm run slurm:up`';
    process.stderr.write(`\n*** SKIPPED: the Slurm executor tests: ${skip}\n\n`);
    return;
  }
  const r = spawnSync('bash', [join(ROOT, 'scripts', 'slurm', 'up.sh')], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, `npm run slurm:up failed:\n${r.stdout}${r.stderr}`);
  startedHere = true;
});
after(() => {
  if (startedHere) spawnSync('bash', [join(ROOT, 'scripts', 'slurm', 'down.sh')], { cwd: ROOT, stdio: 'ignore' });
});

const SPEC = `executor: slurm
params: { base: 3, who: x }
stages:
  prep:
    run: [sh, -c, 'sleep 1; echo "$0 $1" > "$2"', '\${params.base}', '\${params.who}', '\${outputs.o}']
    outs: { o: null }
  train:
    matrix: { k: [1, 2, 3, 4] }
    run: [sh, -c, 'if [ -f "fail-$1" ]; then echo "bad k $1" >&2; exit 3; fi; read b w < "$0"; echo "$(( b * $1 )) $w" > "$2"', '\${stages.prep.outputs.o}', '\${matrix.k}', '\${outputs.o}']
    outs: { o: null }
    resources: { cpus: 1, arrayLimit: 2 }
  gather:
    run: [sh, -c, 'cat "$@" > "$0"', '\${outputs.o}', '\${stages.train.outputs.o}']
    outs: { o: total.txt }
`;

function workspace(t: { after(f: () => void): void }, spec = SPEC) {
  const ws = new Workspace({ 'p.yaml': spec });
  t.after(() => ws.dispose());
  return ws;
}

/** stage id -> [key, each output's digest] from the latest index. */
async function latest(ws: Workspace, cache: string): Promise<Record<string, unknown>> {
  const idx = await new Store(cache).readLatest(ws.dir, 'p.yaml');
  return Object.fromEntries([...idx].map(([id, r]) => [id, [r.key, Object.fromEntries(Object.entries(r.outputs).map(([n, o]) => [n, o.digest]))]]));
}

const state = (job: string) => spawnSync('squeue', ['-h', '-t', 'all', '-j', job, '-o', '%T'], { encoding: 'utf8' }).stdout.trim();
const jobOf = (out: string, id: string) => new RegExp(`${id.replace(/[[\]]/g, '\\$&')}: slurm job (\\d+(?:_\\d+)?)`).exec(out)?.[1];

test('stale stages become Slurm jobs (a sweep one array, afterok dependencies); results and cache entries equal the local run', { timeout: 180_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const slurm = workspace(t);
  const local = workspace(t);
  const set = ['--set', "who=it's a b"];
  const s = slurm.run('run', 'p.yaml', ...set);
  assert.equal(s.code, 0, s.stdout + s.stderr);
  const out = s.stdout + s.stderr;
  assert.deepEqual(ran(s), ['gather', 'prep', 'train[k=1]', 'train[k=2]', 'train[k=3]', 'train[k=4]']);
  const arrays = ['1', '2', '3', '4'].map((k) => jobOf(out, `train[k=${k}]`)!);
  assert.deepEqual(arrays.map((j) => j.split('_')[1]), ['0', '1', '2', '3'], 'the sweep is one array, one task per variant');
  assert.equal(new Set(arrays.map((j) => j.split('_')[0])).size, 1);
  const prepJob = jobOf(out, 'prep')!;
  const submitted = new RegExp(`submitted train \\(4 variants, one array\\) as Slurm job ${arrays[0]!.split('_')[0]}, after ${prepJob}\\n`);
  assert.match(out, submitted);
  assert.ok(out.search(submitted) < out.indexOf('✔ prep done'), 'the array was submitted before prep ended, held by afterok');
  assert.equal(slurm.read('total.txt'), "3 it's a b\n6 it's a b\n9 it's a b\n12 it's a b\n");
  assert.deepEqual(readdirSync(slurm.path('cache/slurm/jobs')), [], 'job scripts and the logs of stages that succeeded are removed');

  const l = local.run('run', 'p.yaml', '--executor', 'process', ...set);
  assert.equal(l.code, 0, l.stderr);
  assert.doesNotMatch(l.stdout + l.stderr, /slurm job/);
  assert.deepEqual(await latest(slurm, slurm.path('cache')), await latest(local, local.path('cache')), 'same keys, same output digests');
  assert.equal(local.read('total.txt'), slurm.read('total.txt'));

  // Checked on the submitting machine first: nothing stale, nothing submitted.
  const again = slurm.run('run', 'p.yaml', ...set);
  assert.equal(again.code, 0);
  assert.deepEqual(ran(again), []);
  assert.doesNotMatch(again.stdout + again.stderr, /slurm job/);
});

test('a failing job fails its stage with Slurm\'s state and the stage\'s own error; dependents do not run; the next run resubmits only what is missing', { timeout: 180_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const ws = workspace(t);
  ws.write('fail-3', '');
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 1);
  assert.equal(r.states.get('train[k=3]'), 'FAILED');
  assert.equal(r.states.get('gather'), 'not');
  assert.match(r.stderr, /stage train\[k=3\] failed: slurm job \d+_2 FAILED \(NonZeroExitCode\), exit code 1:0: command 'sh -c .*' exited with code 3/);
  assert.match(r.stderr, /\| .*bad k 3/);
  assert.match(r.stderr, /full log: .*cache\/slurm\/jobs\/train-\d+_2\.log/);
  // gather's job never runs: cancelled by Slurm (its dependency failed) or by the driver as it ends.
  const gatherJob = /submitted gather as Slurm job (\d+)/.exec(r.stdout + r.stderr)![1]!;
  await waitFor(() => state(gatherJob) === 'CANCELLED', 20_000);
  rmSync(ws.path('fail-3'));
  const r2 = ws.run('run', 'p.yaml');
  assert.equal(r2.code, 0, r2.stderr);
  // What the first run finished stays cached; the failed stage and gather run now, and so does a
  // variant still queued when the run stopped and cancelled it (unless its job had already
  // committed its result when the cancel arrived: then it is cached like the rest).
  const notDone = [...r.states].filter(([, st]) => st !== 'done').map(([id]) => id).sort();
  assert.ok(notDone.includes('train[k=3]') && notDone.includes('gather'), "notDone.includes('train[k=3]') && notDone.includes('gather')");
  const rerun = ran(r2);
  assert.ok(rerun.includes('train[k=3]') && rerun.includes('gather'), rerun.join(' '));
  for (const id of rerun) assert.ok(notDone.includes(id), `${id} finished in the first run, yet ran again`);
  assert.equal(ws.read('total.txt'), '3 x\n6 x\n9 x\n12 x\n');
});

const SLOW = `executor: slurm
stages:
  slow:
    run: [sh, -c, 'if [ -f slow ]; then sleep 60; fi; echo ok > "$0"', '\${outputs.o}']
    outs: { o: out.txt }
`;


test('Ctrl-C cancels the jobs it submitted; a job killed from outside fails its stage with Slurm\'s reason and is resubmitted next time', { timeout: 180_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const ws = workspace(t, SLOW);
  ws.write('slow', '');
  const run = ws.start('run', 'p.yaml');
  await waitFor(() => /slow: slurm job \d+: running/.test(run.output()), 60_000);
  const job = jobOf(run.output(), 'slow')!;
  process.kill(run.child.pid!, 'SIGINT');
  const r = await run.done;
  assert.equal(r.code, 130, run.output());
  assert.match(r.stderr, new RegExp(`cancelled Slurm job ${job}`));
  await waitFor(() => state(job) === 'CANCELLED', 20_000);

  const second = ws.start('run', 'p.yaml');
  await waitFor(() => /slow: slurm job \d+: running/.test(second.output()), 60_000);
  const job2 = jobOf(second.output(), 'slow')!;
  spawnSync('scancel', [job2]);
  const r2 = await second.done;
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, new RegExp(`stage slow failed: slurm job ${job2} CANCELLED`));
  rmSync(ws.path('slow'));
  const r3 = ws.run('run', 'p.yaml');
  assert.equal(r3.code, 0, r3.stderr);
  assert.deepEqual(ran(r3), ['slow']);
  assert.equal(ws.read('out.txt'), 'ok\n');
});

test('--detach submits and returns; status shows each job; the jobs finish on their own and publish into the workspace', { timeout: 180_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const ws = workspace(t);
  const r = ws.run('run', 'p.yaml', '--detach');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /submitted train \(4 variants, one array\) as Slurm job \d+, after \d+/);
  assert.match(r.stdout, /6 stages submitted; `pipeline status p\.yaml` shows their jobs/);
  const st = ws.run('status', 'p.yaml', '--json');
  const gather = (JSON.parse(st.stdout) as Array<{ stage: string; slurm?: string }>).find((s) => s.stage === 'gather')!;
  assert.match(gather.slurm!, /^slurm job \d+: (pending|running|completed)/);
  await waitFor(() => ws.exists('total.txt'), 90_000);
  assert.equal(ws.read('total.txt'), '3 x\n6 x\n9 x\n12 x\n');
  await waitFor(() => (JSON.parse(ws.run('status', 'p.yaml', '--json').stdout) as Array<{ state: string }>).every((s) => s.state === 'cached'), 30_000);
  const local = ws.run('run', 'p.yaml', '--detach', '--executor', 'process', '--force', 'gather');
  assert.equal(local.code, 2);
  assert.match(local.stderr, /--detach needs every stage that will run on Slurm, but gather runs here \(executor process\)/);
});

test('a Slurm stage after a stage that runs here is submitted once its input is made, with no dependency', { timeout: 120_000 }, async (t) => {
  if (skip) return t.skip(skip);
  const ws = workspace(t, `stages:
  first:
    executor: slurm
    run: [sh, -c, 'echo first > "$0"', '\${outputs.o}']
    outs: { o: null }
  here:
    executor: process
    run: [sh, -c, 'cat "$0" > "$1"; echo made >> "$1"', '\${stages.first.outputs.o}', '\${outputs.o}']
    outs: { o: null }
  there:
    executor: slurm
    run: [sh, -c, 'cat "$0" "$1" > "$2"', '\${stages.first.outputs.o}', '\${stages.here.outputs.o}', '\${outputs.o}']
    outs: { o: out.txt }
`);
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const out = r.stdout + r.stderr;
  assert.match(out, /submitted first as Slurm job \d+\n/);
  assert.match(out, /submitted there as Slurm job \d+\n/, 'no afterok, not even on first\'s finished job (Slurm may have forgotten it)');
  assert.ok(out.indexOf('✔ here done') < out.indexOf('submitted there'), 'submitted after the local stage finished');
  assert.equal(ws.read('out.txt'), 'first\nfirst\nmade\n');
});
