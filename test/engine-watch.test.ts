// `pipeline run --watch`: stays up, reruns what an edit of an input, a stage's code or the spec made
// stale; a change during a run queues one more run; a broken spec is reported and waited out;
// Ctrl-C ends it (exit 130).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Workspace } from './helpers/workspace.ts';

const SPEC = `stages:
  a:
    uses: stages/s.ts
    inputs: { x: data/x.txt }
    outs: { o: out.txt }
  b:
    run: [sh, -c, 'sleep "$2"; cat "$0" "$0" > "$1"', '\${stages.a.outputs.o}', '\${outputs.o}', '0']
    outs: { o: out2.txt }
`;

/** Waits until `cond` holds on the output so far (polling), or fails after `ms` saying what it saw. */
async function until(output: () => string, cond: (s: string) => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond(output())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}; output so far:\n${output()}`);
    await sleep(100);
  }
}

const runs = (s: string) => (s.match(/^p\.yaml: \d+ stages:/gm) ?? []).length;

test('run --watch reruns what each change made stale, queues one run for a change made during a run, and ends on Ctrl-C', { timeout: 90_000 }, async (t) => {
  const ws = new Workspace({
    'p.yaml': SPEC,
    'data/x.txt': '1',
    'stages/s.ts': "import { readFileSync, writeFileSync } from 'node:fs';\nimport { defineStage } from 'rrtn-pipeline';\nexport default defineStage({ params: {}, inputs: ['x'], outputs: ['o'], run(ctx) { writeFileSync(ctx.outputs.o, readFileSync(ctx.inputs.x as string, 'utf8') + 'A'); } });\n",
  });
  t.after(() => ws.dispose());
  const w = ws.start('run', 'p.yaml', '--watch');
  t.after(() => {
    if (w.child.exitCode === null) process.kill(-w.child.pid!, 'SIGKILL');
  });
  await until(w.output, (s) => /watching \d+ files and folders/.test(s), 'the first run');
  assert.equal(ws.read('out2.txt'), '1A1A');

  // An input edited: both stages rerun.
  ws.write('data/x.txt', '2');
  await until(w.output, (s) => runs(s) === 2, 'the run after the input edit');
  assert.match(w.output(), /changed: data\/x\.txt: running again/);
  await until(w.output, (s) => (s.match(/watching/g) ?? []).length === 2, 'watching again');
  assert.equal(ws.read('out2.txt'), '2A2A');

  // The stage's code edited: it reruns (its code closure is read afresh).
  ws.write('stages/s.ts', ws.read('stages/s.ts').replace("'A'", "'B'"));
  await until(w.output, (s) => runs(s) === 3, 'the run after the code edit');
  await until(w.output, (s) => (s.match(/watching/g) ?? []).length === 3, 'watching again');
  assert.equal(ws.read('out2.txt'), '2B2B');

  // A broken spec: reported, and the watch goes on; fixed: runs again.
  ws.write('p.yaml', SPEC.replace('outs: { o: out2.txt }', 'outs: { o: out2.txt }\n    bogus: 1'));
  await until(w.output, (s) => /unknown key 'bogus'/.test(s) && (s.match(/watching/g) ?? []).length === 4, 'the spec error');
  // The fixed spec makes b slow; an input edit during that run queues exactly one more run.
  ws.write('p.yaml', SPEC.replace("'0']", "'2']"));
  await until(w.output, (s) => /▶ b running/.test(s.split('bogus').pop()!), 'b running after the fix');
  ws.write('data/x.txt', '3');
  await until(w.output, (s) => runs(s) === 5, 'the queued run', 30_000);
  await until(w.output, (s) => (s.match(/watching/g) ?? []).length === 6, 'watching after the queued run', 30_000);
  assert.equal(ws.read('out2.txt'), '3B3B');
  await sleep(1000);
  assert.equal(runs(w.output()), 5, 'no run without a change');

  w.child.kill('SIGINT');
  const r = await w.done;
  assert.equal(r.code, 130);
});
