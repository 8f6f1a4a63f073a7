// The quickstart's training on the compiled WebGPU step (Dawn on lavapipe: no GPU needed), end to end
// through the CLI at a size CI affords: each mode's dev mean CCC lands within 0.03 of the same
// variant on WASM, info.json names `webgpu-compiled`; and a checkpoint written by one path resumes on
// the other, both ways (the files are the same: weights by name, AdamW's moments by name, RUWL's s).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { lavapipeEnv } from './helpers/lavapipe.ts';
import { needs } from './helpers/provision.ts';
import { ROOT, waitFor, Workspace } from './helpers/workspace.ts';

const SMALL = ['--set', 'clips=160', '--set', 'epochs=2', '--set', 'crop=48', '--set', 'stages.train.params.batch=16', '--set', 'stages.train.params.maxStepsPerEpoch=3'];
const VARIANTS = ['vanilla', 'joint', 'ruwl'].map((mode) => `train[mode=${mode},seed=10]`);

function quickstart(): Workspace {
  const ws = new Workspace({ 'pipelines/quickstart.yaml': readFileSync(join(ROOT, 'pipelines', 'quickstart.yaml'), 'utf8') });
  // Three variants on lavapipe (2 at once) take about 2 min on 2 cores, more beside another test file.
  ws.timeoutMs = 600_000;
  return ws;
}

/** info.json of every training run in the cache, by stage and backend. */
function infos(ws: Workspace): Array<{ stage: string; backend: string; bestDevCcc: number; backendSummary: string }> {
  const out: Array<{ stage: string; backend: string; bestDevCcc: number; backendSummary: string }> = [];
  for (const f of readdirSync(ws.path('cache/views'), { recursive: true }).map(String)) if (f.endsWith('info.json')) out.push(JSON.parse(readFileSync(ws.path(`cache/views/${f}`), 'utf8')));
  return out;
}

test('the quickstart trains on the compiled WebGPU step (lavapipe): each mode within 0.03 dev mean CCC of WASM', needs('webgpu'), (t) => {
  const ws = quickstart();
  t.after(() => ws.dispose());
  const wasm = ws.run('run', 'pipelines/quickstart.yaml', ...VARIANTS, ...SMALL, '--set', 'stages.train.params.backend=wasm');
  assert.equal(wasm.code, 0, wasm.stderr.slice(-2000));
  const gpu = ws.runEnv(lavapipeEnv(), 'run', 'pipelines/quickstart.yaml', ...VARIANTS, ...SMALL, '--set', 'stages.train.params.backend=webgpu');
  assert.equal(gpu.code, 0, gpu.stderr.slice(-2000));
  const all = infos(ws);
  for (const v of VARIANTS) {
    const a = all.find((i) => i.stage === v && i.backend === 'wasm');
    const b = all.find((i) => i.stage === v && i.backend === 'webgpu-compiled');
    assert.ok(a && b, `${v}: a run on each path (${all.map((i) => `${i.stage} ${i.backend}`).join(', ')})`);
    assert.match(b.backendSummary, /^webgpu-compiled: this project's WGSL kernels, \d+ dispatches a step/);
    assert.ok(Math.abs(a.bestDevCcc - b.bestDevCcc) < 0.03, `${v}: dev mean CCC ${b.bestDevCcc} on the compiled step, ${a.bestDevCcc} on WASM`);
  }
});

/** The stage key a run with these arguments would have (from `status --json`). */
function keyOf(ws: Workspace, env: Record<string, string>, stage: string, args: string[]): string {
  const r = ws.runEnv(env, 'status', 'pipelines/quickstart.yaml', '--json', ...args);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as Array<{ stage: string; key: string }>).find((s) => s.stage === stage)!.key;
}

test('a training run killed on one path resumes on the other, both ways: same checkpoint files', needs('webgpu'), async (t) => {
  const ws = quickstart();
  t.after(() => ws.dispose());
  const env = lavapipeEnv();
  const args = [...SMALL, '--set', 'epochs=6'];
  // A seed of its own each way: the first way's finished run is in the cache.
  for (const [from, to, stage] of [['wasm', 'webgpu', 'train[mode=ruwl,seed=10]'], ['webgpu', 'wasm', 'train[mode=ruwl,seed=11]']] as const) {
    const first = ws.startEnv(env, 'run', 'pipelines/quickstart.yaml', stage, ...args, '--set', `stages.train.params.backend=${from}`);
    const dir = ws.path('cache/checkpoints');
    await waitFor(() => existsSync(dir) && readdirSync(dir).some((k) => existsSync(join(dir, k, 'checkpoint.json'))), 300_000);
    process.kill(-first.child.pid!, 'SIGKILL');
    await first.done;
    const [left] = readdirSync(dir).filter((k) => existsSync(join(dir, k, 'checkpoint.json')));
    const epochsDone = (JSON.parse(readFileSync(join(dir, left!, 'checkpoint.json'), 'utf8')) as { epoch: number }).epoch + 1;
    // The other path's stage key has its own checkpoint folder: the files go there as they are.
    const key = keyOf(ws, env, stage, [...args, '--set', `stages.train.params.backend=${to}`]);
    renameSync(join(dir, left!), join(dir, key));
    const r = ws.runEnv(env, 'run', 'pipelines/quickstart.yaml', stage, ...args, '--set', `stages.train.params.backend=${to}`);
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const logs = readdirSync(ws.path('cache/logs')).filter((f) => f.endsWith('.log')).map((f) => readFileSync(ws.path(`cache/logs/${f}`), 'utf8'));
    assert.ok(logs.some((l) => l.includes(`resumed after epoch ${epochsDone}`)), `${from} -> ${to}: resumed after epoch ${epochsDone}`);
    const [digest] = readdirSync(ws.path(`cache/views/${key}`));
    const result = ws.path(`cache/views/${key}/${digest}/result`);
    assert.equal(JSON.parse(readFileSync(join(result, 'info.json'), 'utf8')).backend, to === 'webgpu' ? 'webgpu-compiled' : 'wasm', `${from} -> ${to}: the run finished on ${to}`);
    const done = readFileSync(join(result, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { epoch: number; loss: number; s: number[] });
    assert.deepEqual(done.map((l) => l.epoch), [1, 2, 3, 4, 5, 6]);
    for (const l of done) assert.ok(Number.isFinite(l.loss) && l.s.length === 3, `${from} -> ${to}: epoch ${l.epoch} trained (loss ${l.loss}, s ${l.s})`);
    // The loss keeps falling across the switch (the moments and s carried over, not restarted).
    assert.ok(done[5]!.loss < done[0]!.loss, `${from} -> ${to}: loss ${done.map((l) => l.loss.toFixed(3)).join(' ')}`);
  }
});
