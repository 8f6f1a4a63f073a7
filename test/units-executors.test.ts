// The executors in-process, on real processes: a command run as a child process group (its log,
// its progress lines, its environment, how it fails, how it is stopped, what it leaves running),
// a module stage run inline (what would end the pipeline's process ends only the stage) and in a
// worker process. The CLI tests (trust-processes, engine-run) check the same through `pipeline`;
// these call the executors themselves, so that mutation testing sees them.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { inlineExecutor } from '../src/executors/inline.ts';
import { processExecutor } from '../src/executors/process.ts';
import { named, stageEnvironment, STAGE_LOCALE } from '../src/executors/environment.ts';
import { executorFor } from '../src/executors/index.ts';
import { ownerRecord } from '../src/executors/groups.ts';
import { signalTagged, taggedPids, TAG_VAR } from '../src/executors/tags.ts';
import { StageFailure, type StageJob } from '../src/executors/types.ts';
import type { StageNode } from '../src/spec/model.ts';
import { scratch } from './helpers/engine.ts';


/** A job in folder `d` (its log, work and checkpoint folders there). */
function job(d: string, over: Partial<StageJob>): StageJob {
  return {
    stageId: 's1',
    kind: 'command',
    params: {},
    inputs: {},
    variants: {},
    outputs: {},
    workDir: join(d, 'run', 'work'),
    checkpointDir: join(d, 'ckpt', 's1'),
    workspace: d,
    seed: 7,
    env: {},
    passEnv: [],
    logFile: join(d, 'logs', 's1.log'),
    resources: {},
    storeRoot: join(d, 'cache'),
    ...over,
  };
}

/** What a run told its events: progress lines and notices. */
class Heard {
  readonly progress: Array<[number | undefined, string | undefined]> = [];
  readonly notices: string[] = [];
  readonly events = { progress: (f: number | undefined, m?: string) => void this.progress.push([f, m]), notice: (m: string) => void this.notices.push(m) };
}
const events = () => new Heard().events;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const until = async (what: () => boolean, ms = 10_000) => {
  for (const t0 = Date.now(); !what(); ) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** A stage module file (ESM) whose run() is `body`, using the stage API. */
function moduleFile(d: string, name: string, body: string): string {
  // Marked as defineStage marks it (STAGE_MARK), without importing the API: a worker process loads
  // plain JavaScript, as the engine's compiled stage bundles are.
  const p = join(d, `${name}.mjs`);
  writeFileSync(p, `export default { [Symbol.for('rrtn-pipeline.stage')]: true, params: {}, outputs: ['out'], async run(ctx) {\n${body}\n} };\n`);
  return p;
}

test('environment: what locates programs passes, Slurm/conda/engine prefixes pass, passEnv names and PREFIX_* pass, the rest is cleared; the locale is fixed', () => {
  const env = stageEnvironment({ PATH: '/bin', HOME: '/h', LC_ALL: 'fr_FR', OMP_NUM_THREADS: '3', SLURM_JOB_ID: '4', CONDA_PREFIX: '/c', PIPELINE_X: '1', VK_ICD: 'v', MY_TOKEN: 't', AWS_KEY: 'a', AWS_REGION: 'r', LANG: 'de_DE', UNSET: undefined }, ['MY_TOKEN', 'AWS_*']);
  assert.deepEqual(env, { PATH: '/bin', HOME: '/h', SLURM_JOB_ID: '4', CONDA_PREFIX: '/c', PIPELINE_X: '1', VK_ICD: 'v', MY_TOKEN: 't', AWS_KEY: 'a', AWS_REGION: 'r', ...STAGE_LOCALE });
  assert.equal(env.LANG, 'C.UTF-8');
  assert.equal(named('AWS', ['AWS_*']), false);
  assert.equal(named('MY_TOKEN2', ['MY_TOKEN']), false);
  assert.equal(named('X', []), false);
  assert.deepEqual(stageEnvironment({}), { LANG: 'C.UTF-8' });
  // Command stages always run as processes; module stages where the spec says.
  assert.equal(executorFor({ kind: 'command', executor: 'inline' } as StageNode).name, 'process');
  assert.equal(executorFor({ kind: 'module', executor: 'inline' } as StageNode).name, 'inline');
  assert.equal(executorFor({ kind: 'command', executor: 'process' } as StageNode).name, 'process');
  assert.throws(() => executorFor({ kind: 'module', executor: 'slurm' } as StageNode), /no executor named 'slurm'/);
});

test('a command: its output in the log, ::progress lines as fractions and others as messages, its environment as a stage gets it', async (t) => {
  const d = scratch(t);
  const saved = { ...process.env };
  t.after(() => {
    process.env = saved;
  });
  Object.assign(process.env, { LC_ALL: 'fr_FR.UTF-8', PASSED_ONE: 'yes', SECRETISH: 'no' });
  const e = new Heard();
  // Pauses between lines: each arrives in a chunk of its own (a chunk's last full line is its progress line).
  const script = 'echo first; sleep 0.3; echo "to stderr" >&2; sleep 0.3; echo "::progress 0.4 half way"; sleep 0.3; echo "$PIPELINE_STAGE $PIPELINE_SEED $LANG $KEYED ${LC_ALL-nolc} ${PASSED_ONE-nopass} ${SECRETISH-unset} $(pwd)"; printf "last line without newline"';
  await processExecutor.run(job(d, { argv: ['sh', '-c', script], env: { KEYED: 'k v' }, passEnv: ['PASSED_*'] }), e.events, new AbortController().signal);
  const log = readFileSync(join(d, 'logs', 's1.log'), 'utf8');
  assert.match(log, /^first$/m);
  assert.match(log, /to stderr\n/);
  assert.match(log, new RegExp(`^s1 7 C\\.UTF-8 k v nolc yes unset ${d}$`, 'm'));
  assert.ok(e.progress.some(([f, m]) => f === 0.4 && m === 'half way'), JSON.stringify(e.progress));
  assert.ok(e.progress.some(([f, m]) => f === undefined && m === 'first'), 'a plain line is a progress message');
  assert.ok(!e.progress.some(([, m]) => m?.includes('without newline')), 'an unfinished line is no progress line yet');
  assert.ok(!existsSync(`${join(d, 'ckpt', 's1')}.owner`), 'the owner record is cleared after the run');

  // Appended: a second run's output follows the first's.
  await processExecutor.run(job(d, { argv: ['echo', 'second run'] }), events(), new AbortController().signal);
  assert.match(readFileSync(join(d, 'logs', 's1.log'), 'utf8'), /first[\s\S]*second run/);
  // A shell line: one string, run by the shell.
  await processExecutor.run(job(d, { argv: ['echo', '$((6*7))', '>', 'shell-out'], shell: true }), events(), new AbortController().signal);
  assert.equal(readFileSync(join(d, 'shell-out'), 'utf8'), '42\n');
  // A long progress message is cut to 120 characters.
  const e2 = new Heard();
  await processExecutor.run(job(d, { argv: ['sh', '-c', `echo ${'x'.repeat(300)}`] }), e2.events, new AbortController().signal);
  assert.equal(e2.progress.at(-1)![1]!.length, 120);
});

test('a failing command says how it failed: its exit code, or the signal that killed it; the log keeps its output', async (t) => {
  const d = scratch(t);
  const err = await processExecutor.run(job(d, { argv: ['sh', '-c', 'echo dying; exit 3'] }), events(), new AbortController().signal).then(() => undefined, (x: unknown) => x);
  assert.ok(err instanceof StageFailure, 'a StageFailure');
  assert.equal(err.message, "command 'sh -c echo dying; exit 3' exited with code 3");
  assert.equal(err.exitCode, 3);
  const killed = await processExecutor.run(job(d, { argv: ['sh', '-c', 'kill -9 $$'] }), events(), new AbortController().signal).then(() => undefined, (x: unknown) => x);
  assert.ok(killed instanceof StageFailure, 'a StageFailure');
  assert.match(killed.message, /killed by SIGKILL$/);
  assert.match(readFileSync(join(d, 'logs', 's1.log'), 'utf8'), /dying/);
  // A log that cannot be written fails the stage saying so (not an unhandled error).
  mkdirSync(join(d, 'logs', 'dir.log'), { recursive: true });
  await assert.rejects(processExecutor.run(job(d, { argv: ['echo', 'x'], logFile: join(d, 'logs', 'dir.log') }), events(), new AbortController().signal), /cannot write the stage's log .*dir\.log/);
});

test('what a command leaves running ends with it, in its group or out of it (setsid); stopping a stage stops all of it', async (t) => {
  const d = scratch(t);
  const pids = join(d, 'pids');
  // The main process ends at once, leaving a sleeper in its group and one in a session of its own.
  const t0 = Date.now();
  await processExecutor.run(job(d, { argv: ['sh', '-c', `sleep 60 & echo $! > ${pids}; setsid sleep 61 & echo started`] }), events(), new AbortController().signal);
  assert.ok(Date.now() - t0 < 20_000, 'the stage did not wait for what it left behind');
  const inGroup = Number(readFileSync(pids, 'utf8'));
  await until(() => !alive(inGroup));
  const owner = JSON.parse(readFileSync(join(d, 'run', 'pgid'), 'utf8')) as { tag: string; pgid: number };
  await until(() => taggedPids(owner.tag).length === 0);

  // Stopped while running: the signal's reason is what the run rejects with; nothing of it is left.
  const ac = new AbortController();
  const running = processExecutor.run(job(d, { argv: ['sh', '-c', `setsid sleep 62 & sleep 63 & echo $! > ${pids}; wait`] }), events(), ac.signal);
  await until(() => existsSync(pids) && readFileSync(pids, 'utf8') !== `${inGroup}\n` && readFileSync(pids, 'utf8').length > 0);
  const tag = (JSON.parse(readFileSync(join(d, 'run', 'pgid'), 'utf8')) as { tag: string }).tag;
  await until(() => taggedPids(tag).length >= 3);
  const reason = new Error('stopped by the test');
  ac.abort(reason);
  await assert.rejects(running, (e) => e === reason);
  await until(() => taggedPids(tag).length === 0);
});

test('a process group an earlier run of the stage left (its pipeline died) is ended before the stage reuses its checkpoint folder', async (t) => {
  const d = scratch(t);
  const tag = `leftover-${process.pid}`;
  const left = spawn('sh', ['-c', 'sleep 60 & sleep 60'], { detached: true, stdio: 'ignore', env: { ...process.env, [TAG_VAR]: tag } });
  t.after(() => signalTagged(tag, 'SIGKILL'));
  await until(() => taggedPids(tag).length >= 2);
  mkdirSync(join(d, 'ckpt'), { recursive: true });
  writeFileSync(`${join(d, 'ckpt', 's1')}.owner`, JSON.stringify(ownerRecord(left.pid!, tag)));
  await processExecutor.run(job(d, { argv: ['echo', 'fresh'] }), events(), new AbortController().signal);
  assert.match(readFileSync(join(d, 'logs', 's1.log'), 'utf8'), new RegExp(`stopped process group ${left.pid}, left running by an earlier run of this stage`));
  assert.equal(taggedPids(tag).length, 0);
  // A record of another host, a reused pid (another start time) or a damaged record: nothing is killed.
  const other = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
  t.after(() => other.kill('SIGKILL'));
  for (const rec of [{ ...ownerRecord(other.pid!), host: 'elsewhere' }, { ...ownerRecord(other.pid!), started: '1' }, { host: ownerRecord(1).host, pgid: 1 }, 'not json']) {
    writeFileSync(`${join(d, 'ckpt', 's1')}.owner`, typeof rec === 'string' ? rec : JSON.stringify(rec));
    await processExecutor.run(job(d, { argv: ['true'] }), events(), new AbortController().signal);
    assert.ok(alive(other.pid!), JSON.stringify(rec));
  }
});

test('a module stage inline: its context (params, outputs, seed, log, progress, notices); a throw or process.exit() fails only the stage; one that ignores its stop signal is abandoned', async (t) => {
  const d = scratch(t);
  const ok = moduleFile(d, 'ok', `
    const { writeFileSync } = await import('node:fs');
    ctx.log.info('seed %d', ctx.seed);
    ctx.progress(0.5, 'halfway');
    ctx.notice('a notice');
    writeFileSync(ctx.outputs.out, JSON.stringify({ p: ctx.params, id: ctx.stageId, r: ctx.random.float() }));`);
  const out = join(d, 'o.json');
  const listeners = process.listenerCount('uncaughtException');
  const e = new Heard();
  await inlineExecutor.run(job(d, { kind: 'module', compiled: ok, params: { a: 1 }, outputs: { out } }), e.events, new AbortController().signal);
  const got = JSON.parse(readFileSync(out, 'utf8')) as { p: unknown; id: string; r: number };
  assert.deepEqual([got.p, got.id], [{ a: 1 }, 's1']);
  assert.ok(got.r >= 0 && got.r < 1, 'the seeded random draws in [0, 1)');
  assert.deepEqual(e.progress, [[0.5, 'halfway']]);
  assert.deepEqual(e.notices, ['a notice']);
  const log = readFileSync(join(d, 'logs', 's1.log'), 'utf8');
  assert.match(log, /^\S+ info seed 7$/m);
  assert.match(log, /^\S+ notice a notice$/m);

  const fail = async (body: string) => inlineExecutor.run(job(d, { kind: 'module', compiled: moduleFile(d, `m${Math.random().toString(36).slice(2)}`, body), outputs: { out } }), events(), new AbortController().signal).then(() => undefined, (x: unknown) => x as Error);
  const thrown = await fail(`throw new Error('bad input file');`);
  assert.ok(thrown instanceof StageFailure, 'a StageFailure');
  assert.equal(thrown.message, 'bad input file');
  assert.match(readFileSync(join(d, 'logs', 's1.log'), 'utf8'), /error Error: bad input file\n\s+at /, 'the stack in the log');
  const exited = await fail(`process.exit(2);`);
  assert.match(exited!.message, /the stage called process\.exit\(2\): an inline stage shares the pipeline's process/);
  assert.equal(typeof process.exit, 'function');
  assert.doesNotMatch(String(process.exit), /inline stage shares/, 'process.exit is put back');
  // (A stray error from a stage's timer is the CLI tests' to check: node:test's own handler would take it here.)
  assert.equal(process.listenerCount('uncaughtException'), listeners, 'the guard is removed once no inline stage runs');
  await assert.rejects(inlineExecutor.run(job(d, { kind: 'command', argv: ['true'] }), events(), new AbortController().signal), /inline executor runs module stages only \(s1\)/);

  // A stage that ignores its signal is abandoned after the grace period, failing with the reason.
  const ac = new AbortController();
  const stuck = inlineExecutor.run(job(d, { kind: 'module', compiled: moduleFile(d, 'stuck', 'await new Promise((r) => setTimeout(r, 60_000).unref());'), outputs: { out } }), events(), ac.signal);
  const reason = new Error('stop now');
  const t0 = Date.now();
  ac.abort(reason);
  await assert.rejects(stuck, (x) => x === reason);
  assert.ok(Date.now() - t0 >= 2500 && Date.now() - t0 < 10_000, `abandoned after the grace period (${Date.now() - t0} ms)`);
});

test('a module stage in a worker process: progress and notices over IPC; an error says its message; process.exit() before run() ends is a failure', async (t) => {
  const d = scratch(t);
  const out = join(d, 'o.txt');
  const e = new Heard();
  const ok = moduleFile(d, 'w-ok', `const { writeFileSync } = await import('node:fs'); ctx.progress(0.25, 'quarter'); ctx.notice('from the worker'); writeFileSync(ctx.outputs.out, String(process.pid));`);
  await processExecutor.run(job(d, { kind: 'module', compiled: ok, module: ok, outputs: { out } }), e.events, new AbortController().signal);
  assert.notEqual(readFileSync(out, 'utf8'), String(process.pid), 'ran in another process');
  assert.deepEqual(e.progress.filter(([f]) => f !== undefined), [[0.25, 'quarter']]);
  assert.deepEqual(e.notices, ['from the worker']);
  const err = await processExecutor.run(job(d, { kind: 'module', compiled: moduleFile(d, 'w-bad', `throw new Error('no labels in the index');`), outputs: { out } }), events(), new AbortController().signal).then(() => undefined, (x: unknown) => x as StageFailure);
  assert.equal(err?.message, 'no labels in the index');
  assert.equal(err?.exitCode, 1);
  const early = await processExecutor.run(job(d, { kind: 'module', compiled: moduleFile(d, 'w-exit', 'process.exit(0);'), outputs: { out } }), events(), new AbortController().signal).then(() => undefined, (x: unknown) => x as StageFailure);
  assert.match(early!.message, /the stage module ended its process before run\(\) finished/);
});
