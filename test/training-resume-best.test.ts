// Resuming a killed training run keeps what it had found: killed right after its best epoch (so
// that no later epoch beats it), the resumed run must end with that epoch as its choice, its
// score, and its weights and predictions, exactly as a run that was never interrupted (same seed,
// same backend: every random choice follows the seed, the checkpoint holds weights and moments).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, waitFor, Workspace } from './helpers/workspace.ts';

// A small training whose dev score peaks before its last epoch (seed 10: best epoch 6 of 8).
const ARGS = ['run', 'pipelines/quickstart.yaml', 'train[mode=vanilla,seed=10]', '--set', 'clips=160', '--set', 'epochs=8', '--set', 'crop=48', '--set', 'stages.train.params.batch=16', '--set', 'stages.train.params.maxStepsPerEpoch=4'];
const FILES = ['metrics.json', 'model.bin', 'model.json', 'predictions.json'];

function workspace(t: { after(f: () => void): void }): Workspace {
  const ws = new Workspace({ 'pipelines/quickstart.yaml': readFileSync(join(ROOT, 'pipelines', 'quickstart.yaml'), 'utf8') });
  ws.timeoutMs = 600_000;
  t.after(() => ws.dispose());
  return ws;
}

/** The train stage's result folder in a workspace's cache (its only view with a model). */
function result(ws: Workspace): string {
  const hit = readdirSync(ws.path('cache/views'), { recursive: true }).map(String).find((f) => f.endsWith('result/info.json') && readFileSync(join(ws.path('cache/views'), f), 'utf8').includes('"mode": "vanilla"'));
  assert.ok(hit, 'the training result is in the cache');
  return join(ws.path('cache/views'), hit!, '..');
}

/** The epoch (0-based) of the checkpoint on disk, or -1. */
function checkpointEpoch(ws: Workspace): number {
  const dir = ws.path('cache/checkpoints');
  if (!existsSync(dir)) return -1;
  for (const k of readdirSync(dir)) {
    try {
      return (JSON.parse(readFileSync(join(dir, k, 'checkpoint.json'), 'utf8')) as { epoch: number }).epoch;
    } catch {
      // being replaced: the next look finds it
    }
  }
  return -1;
}

test('a training run killed right after its best epoch resumes to the same choice: best epoch, score, weights and predictions of an uninterrupted run', async (t) => {
  const whole = workspace(t);
  const a = whole.run(...ARGS);
  assert.equal(a.code, 0, a.stderr.slice(-2000));
  const want = result(whole);
  const best = (JSON.parse(readFileSync(join(want, 'metrics.json'), 'utf8')) as { best_epoch: number }).best_epoch;
  assert.ok(best < 8, `the uninterrupted run's best epoch (${best}) comes before its last: otherwise this test checks nothing (pick another seed)`);

  const cut = workspace(t);
  const first = cut.start(...ARGS);
  // Killed as soon as the checkpoint after the best epoch is in place, well before the next one.
  await waitFor(() => checkpointEpoch(cut) >= best - 1, 300_000);
  process.kill(-first.child.pid!, 'SIGKILL');
  await first.done;
  assert.equal(checkpointEpoch(cut), best - 1, 'killed before another epoch was checkpointed');
  const b = cut.run(...ARGS);
  assert.equal(b.code, 0, b.stderr.slice(-2000));
  const logs = readdirSync(cut.path('cache/logs')).map((f) => readFileSync(join(cut.path('cache/logs'), f), 'utf8'));
  assert.ok(logs.some((l) => l.includes(`resumed after epoch ${best}`)), 'the rerun resumed from the checkpoint after the best epoch');
  const got = result(cut);
  for (const f of FILES) {
    assert.ok(existsSync(join(got, f)), `${f} is in the resumed run's result`);
    assert.ok(readFileSync(join(got, f)).equals(readFileSync(join(want, f))), `${f}: the same bytes as the uninterrupted run's`);
  }
  // Every epoch once, with the same numbers (less the wall-clock time and the tensor count).
  const epochs = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => {
    const { seconds: _s, tensors: _t, ...rest } = JSON.parse(l) as Record<string, unknown>;
    return rest;
  });
  assert.deepEqual(epochs(got), epochs(want));
});
