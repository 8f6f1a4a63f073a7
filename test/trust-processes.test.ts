// Trust, processes: no stage outlives its run (kill -9 of the pipeline's group, SIGHUP), an inline
// stage cannot end or crash the pipeline, time limits hold everywhere, and no log line is lost.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { test } from 'node:test';
import { alive, CLI, waitFor, Workspace } from './helpers/workspace.ts';

const MODULE_SLEEPER = `import { writeFileSync } from 'node:fs';
import { defineStage } from 'rrtn-pipeline';
export default defineStage({ params: {}, outputs: ['o'], async run(ctx) {
  writeFileSync(ctx.workspace + '/module.pid', String(process.pid));
  await new Promise((r) => setTimeout(r, 60_000));
} });
`;

for (const how of ['SIGKILL of its process group', 'SIGHUP'] as const) {
  test(`stages die with the pipeline (${how}): command stages, their children, module stages`, async (t) => {
    const ws = new Workspace({
      'stages/sleeper.ts': MODULE_SLEEPER,
      'p.yaml': `stages:
  cmd:
    run: [sh, -c, 'sleep 60 & echo $! > child.pid; echo $$ > cmd.pid; wait']
  mod:
    uses: stages/sleeper.ts
`,
    });
    t.after(() => ws.dispose());
    const run = ws.start('run', 'p.yaml');
    await waitFor(() => ws.exists('child.pid') && ws.exists('cmd.pid') && ws.exists('module.pid') && ws.read('child.pid').trim() !== '');
    const pids = ['child.pid', 'cmd.pid', 'module.pid'].map((f) => Number(ws.read(f)));
    for (const p of pids) assert.ok(alive(p), "alive(p)");
    if (how === 'SIGHUP') process.kill(run.child.pid!, 'SIGHUP');
    else process.kill(-run.child.pid!, 'SIGKILL');
    await run.done;
    await waitFor(() => pids.every((p) => !alive(p)), 10_000).catch(() => undefined);
    for (const [i, p] of pids.entries()) assert.ok(!alive(p), `${['the command\'s child', 'the command', 'the module stage'][i]} (pid ${p}) must not outlive the pipeline`);
    // A rerun finds no leftover sharing its folders, and runs again.
    ws.write('p.yaml', 'stages:\n  cmd:\n    run: [echo, again]\n');
    assert.equal(ws.run('run', 'p.yaml').code, 0);
  });
}

test('a process a stage leaves running in the background ends with the stage', async (t) => {
  const ws = new Workspace({ 'p.yaml': `stages:\n  a:\n    run: [sh, -c, '(sleep 60 & echo $! > bg.pid); echo done']\n` });
  t.after(() => ws.dispose());
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  const pid = Number(ws.read('bg.pid'));
  await waitFor(() => !alive(pid), 5000).catch(() => undefined);
  assert.ok(!alive(pid), 'the background process was killed with its stage');
});

test('an inline stage cannot end or crash the pipeline: process.exit, an unhandled rejection, a thrown callback', (t) => {
  const stage = (body: string) => `import { writeFileSync } from 'node:fs';
import { defineStage } from 'rrtn-pipeline';
export default defineStage({ params: {}, outputs: ['o'], async run(ctx) { ${body} } });
`;
  const ws = new Workspace({
    'stages/exit.ts': stage("writeFileSync(ctx.outputs.o, 'half'); process.exit(0);"),
    'stages/reject.ts': stage("Promise.reject(new Error('lost promise')); await new Promise((r) => setTimeout(r, 500)); writeFileSync(ctx.outputs.o, 'x');"),
    'stages/throws.ts': stage("setTimeout(() => { throw new Error('thrown in a timer'); }, 10); await new Promise((r) => setTimeout(r, 500)); writeFileSync(ctx.outputs.o, 'x');"),
    'stages/ok.ts': stage("writeFileSync(ctx.outputs.o, 'fine');"),
  });
  t.after(() => ws.dispose());
  for (const [name, why] of [
    ['exit', /the stage called process\.exit\(0\): an inline stage shares the pipeline's process/],
    ['reject', /an error escaped the stage's code .*lost promise/],
    ['throws', /an error escaped the stage's code .*thrown in a timer/],
  ] as const) {
    ws.write('p.yaml', `stages:\n  s:\n    uses: stages/${name}.ts\n    executor: inline\n  after:\n    uses: stages/ok.ts\n    executor: inline\n    needs: [s]\n  other:\n    uses: stages/ok.ts\n    executor: inline\n    version: ${name}\n`);
    const r = ws.run('run', 'p.yaml', '--keep-going');
    assert.equal(r.code, 1, `${name}: ${r.stdout}${r.stderr}`);
    assert.equal(r.states.get('s'), 'FAILED', name);
    assert.match(r.stderr, why);
    assert.equal(r.states.get('other'), 'done', `${name}: the pipeline carried on`);
    assert.match(r.stdout, /3 stages: .*1 failed/);
  }
  // The same module in a child process: process.exit(0) before run() returns is a failure too.
  ws.write('p.yaml', 'stages:\n  s:\n    uses: stages/exit.ts\n');
  const child = ws.run('run', 'p.yaml');
  assert.equal(child.code, 1);
  assert.match(child.stderr, /ended its process before run\(\) finished/);
});

test('resources.time is enforced for command, process and inline stages, even one that ignores its signal', (t) => {
  const ws = new Workspace({
    'stages/stubborn.ts': `import { defineStage } from 'rrtn-pipeline';
export default defineStage({ params: {}, outputs: ['o'], async run() { await new Promise((r) => setTimeout(r, 30_000)); } });
`,
    'p.yaml': `stages:
  cmd:
    run: [sleep, '30']
    resources: { time: 1s }
  mod:
    uses: stages/stubborn.ts
    resources: { time: 1s }
  inl:
    uses: stages/stubborn.ts
    executor: inline
    resources: { time: "0:01" }
`,
  });
  t.after(() => ws.dispose());
  const t0 = Date.now();
  const r = ws.run('run', 'p.yaml', '--keep-going');
  assert.equal(r.code, 1);
  for (const id of ['cmd', 'mod', 'inl']) assert.equal(r.states.get(id), 'FAILED', id);
  assert.match(r.stderr, /stage cmd failed: the stage ran past its time limit of 1 s \(resources\.time\) and was stopped/);
  assert.match(r.stderr, /stage inl failed: the stage ran past its time limit of 1 s/);
  assert.ok(Date.now() - t0 < 20_000, 'no stage ran anywhere near its 30 s');
  ws.write('p.yaml', 'stages:\n  a:\n    run: [echo]\n    resources: { time: soon }\n');
  const bad = ws.run('validate', 'p.yaml');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /p\.yaml:4:24: stages\.a\.resources\.time: bad time limit 'soon'/);
});

test("a module stage's log keeps every line, and a 32 MB line costs no more than its bytes", (t) => {
  const ws = new Workspace({
    'stages/loud.ts': `import { writeFileSync } from 'node:fs';
import { defineStage } from 'rrtn-pipeline';
export default defineStage({ params: {}, outputs: ['o'], async run(ctx) {
  for (let i = 0; i < 20000; i++) console.log('line ' + i);
  process.stdout.write('x'.repeat(32 << 20) + '\\n');
  console.log('last line');
  throw new Error('fail so the log is kept');
} });
`,
    'p.yaml': 'stages:\n  loud:\n    uses: stages/loud.ts\n',
  });
  t.after(() => ws.dispose());
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 1);
  const log = readFileSync(/full log: (\S+)/.exec(r.stderr)![1]!, 'utf8');
  const lines = log.split('\n');
  assert.equal(lines.filter((l) => /^line \d+$/.test(l)).length, 20000);
  assert.ok(lines.some((l) => l.length === 32 << 20), "lines.some((l) => l.length === 32 << 20)");
  assert.ok(lines.includes('last line'), "lines.includes('last line')");
});

test('Ctrl-C while waiting (for another run computing the same stage, or for gc) stops cleanly, with no stack trace', async (t) => {
  const ws = new Workspace({ 'p.yaml': 'stages:\n  a:\n    run: [sleep, "20"]\n' });
  t.after(() => ws.dispose());
  const first = ws.start('run', 'p.yaml');
  await waitFor(() => ws.exists('cache/keys') && readdirSync(ws.path('cache/keys')).length > 0);
  const second = ws.start('run', 'p.yaml');
  await waitFor(() => /computing the same stage/.test(second.output()));
  process.kill(second.child.pid!, 'SIGINT');
  const r = await second.done;
  assert.equal(r.code, 130);
  assert.equal(r.states.get('a'), 'stopped');
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  process.kill(first.child.pid!, 'SIGINT');
  await first.done;
  // The cache lock, held by a live process (this test's), as gc would hold it.
  ws.write('cache/lock/owner.json', JSON.stringify({ pid: process.pid, host: hostname(), since: 'now', command: 'pipeline gc' }));
  const third = ws.start('run', 'p.yaml');
  await waitFor(() => /waiting for 'pipeline gc' to finish with the cache/.test(third.output()));
  process.kill(third.child.pid!, 'SIGINT');
  const r3 = await third.done;
  assert.equal(r3.code, 130);
  assert.match(r3.stderr, /stopped while waiting for the cache: nothing was run/);
  assert.doesNotMatch(r3.stderr, /\n\s+at /);
});

test('a FIFO, a link to /dev/zero, or a FIFO inside an input folder is refused by its kind: status and run answer at once', (t) => {
  const ws = new Workspace();
  t.after(() => ws.dispose());
  execFileSync('mkfifo', [ws.path('data.fifo')]);
  symlinkSync('/dev/zero', ws.path('zero'));
  mkdirSync(ws.path('folder'));
  ws.write('folder/ok.txt', 'x');
  execFileSync('mkfifo', [ws.path('folder/inner.fifo')]);
  for (const [dep, kind] of [['data.fifo', 'a FIFO \\(named pipe\\)'], ['zero', 'a character device'], ['folder', 'a FIFO \\(named pipe\\)']] as const) {
    ws.write('p.yaml', `stages:\n  a:\n    run: [sh, -c, 'echo a > "$0"', "\${outputs.o}"]\n    deps: [${dep}]\n    outs: { o: out/a.txt }\n`);
    const status = spawnSync(process.execPath, [CLI, 'status', 'p.yaml'], { cwd: ws.dir, encoding: 'utf8', timeout: 20_000 });
    assert.equal(status.signal, null, `status with ${dep} must not hang`);
    assert.match(status.stdout + status.stderr, new RegExp(`cannot compute its cache key: .*${dep === 'folder' ? 'folder/inner\\.fifo' : dep} is ${kind}: inputs and the files in an input folder must be regular files`));
    const run = spawnSync(process.execPath, [CLI, 'run', 'p.yaml'], { cwd: ws.dir, encoding: 'utf8', timeout: 20_000, env: { ...process.env, CI: 'true' } });
    assert.equal(run.signal, null, `run with ${dep} must not hang`);
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, new RegExp(`stage a failed: cannot compute the stage's cache key: .* is ${kind}`));
  }
});

test('Ctrl-C ends a run even when an inline stage is stuck in a read that never returns (a thread of the pool blocked for good)', async (t) => {
  const ws = new Workspace({
    'stages/stuck.ts': `import { writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { defineStage } from 'rrtn-pipeline';
export default defineStage({ params: {}, outputs: ['o'], async run(ctx) {
  writeFileSync(ctx.workspace + '/started', '');
  await open(ctx.workspace + '/pipe.fifo', 'r');
} });
`,
    'p.yaml': 'stages:\n  a:\n    uses: stages/stuck.ts\n    executor: inline\n',
  });
  t.after(() => ws.dispose());
  execFileSync('mkfifo', [ws.path('pipe.fifo')]);
  const run = ws.start('run', 'p.yaml');
  t.after(() => {
    if (alive(run.child.pid!)) process.kill(run.child.pid!, 'SIGKILL');
  });
  await waitFor(() => ws.exists('started'));
  process.kill(run.child.pid!, 'SIGINT');
  const ended = await Promise.race([run.done, new Promise<undefined>((r) => setTimeout(() => r(undefined), 15_000))]);
  assert.ok(ended, `the run must end after Ctrl-C (output: ${run.output().slice(-500)})`);
  assert.equal(ended.code, 130);
  assert.equal(ended.states.get('a'), 'stopped');
});

test('a process that leaves its stage\'s process group (setsid, start_new_session, spawn detached) ends with the stage, and the run does not wait for it', async (t) => {
  const ws = new Workspace({
    'detach.cjs': "const c = require('child_process').spawn('sleep', ['60'], { detached: true, stdio: 'inherit' });\nrequire('fs').writeFileSync('node.pid', String(c.pid));\nc.unref();\n",
    'p.yaml': `stages:
  setsid:
    run: [sh, -c, 'setsid sleep 60 & echo $! > setsid.pid; echo started']
  python:
    run: [python3, -c, "import subprocess; p = subprocess.Popen(['sleep', '60'], start_new_session=True); open('python.pid', 'w').write(str(p.pid))"]
  node:
    run: [node, detach.cjs]
`,
  });
  t.after(() => ws.dispose());
  const t0 = Date.now();
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(Date.now() - t0 < 20_000, `the run ended without waiting for the escaped processes (${Date.now() - t0} ms)`);
  const pids = ['setsid', 'python', 'node'].map((n) => [n, Number(ws.read(`${n}.pid`))] as const);
  t.after(() => pids.forEach(([, p]) => alive(p) && process.kill(p, 'SIGKILL')));
  await waitFor(() => pids.every(([, p]) => !alive(p)), 5000).catch(() => undefined);
  for (const [n, p] of pids) assert.ok(!alive(p), `the process ${n} started out of its group (pid ${p}) must end with its stage`);

  // And when the pipeline itself is killed: the reaper ends them by their tag.
  ws.write('p.yaml', `stages:\n  long:\n    run: [sh, -c, 'setsid sleep 60 & echo $! > escaped.pid; sleep 60']\n`);
  const run = ws.start('run', 'p.yaml');
  await waitFor(() => ws.exists('escaped.pid') && ws.read('escaped.pid').trim() !== '');
  const escaped = Number(ws.read('escaped.pid'));
  t.after(() => alive(escaped) && process.kill(escaped, 'SIGKILL'));
  process.kill(-run.child.pid!, 'SIGKILL');
  await run.done;
  await waitFor(() => !alive(escaped), 10_000).catch(() => undefined);
  assert.ok(!alive(escaped), 'the escaped process ends with the killed pipeline');
});
