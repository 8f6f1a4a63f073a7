// The quickstart end to end at a reduced size (as CI runs it): every stage runs, the metrics and the
// report exist and are sane, a rerun finds everything cached; and a killed training run resumes from
// its last finished epoch.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ran, ROOT, waitFor, Workspace } from './helpers/workspace.ts';
import { inSelectionHalf } from '../stages/lib/selection.ts';

const SMALL = ['--set', 'clips=160', '--set', 'epochs=2', '--set', 'crop=48', '--set', 'stages.train.params.batch=16', '--set', 'stages.train.params.maxStepsPerEpoch=3'];

test('the quickstart runs end to end at a reduced size, with sane metrics and report, then is all cached', (t) => {
  const ws = new Workspace({ 'pipelines/quickstart.yaml': readFileSync(join(ROOT, 'pipelines', 'quickstart.yaml'), 'utf8') });
  t.after(() => ws.dispose());
  const r = ws.run('run', 'pipelines/quickstart.yaml', ...SMALL);
  assert.equal(r.code, 0, r.stderr.slice(-3000));
  const variants = ['joint', 'ruwl', 'vanilla'].flatMap((mode) => [10, 11, 12].map((seed) => `train[mode=${mode},seed=${seed}]`));
  assert.deepEqual(ran(r), ['corpus', 'dataset', 'evaluate', 'features', ...variants, 'views']);
  const report = ws.path('results/quickstart/report');
  for (const f of ['metrics.json', 'report.md', 'report.html', 'submission.csv', 'headline.txt']) assert.ok(existsSync(join(report, f)), f);
  const m = JSON.parse(readFileSync(join(report, 'metrics.json'), 'utf8'));
  assert.deepEqual(m.models.map((x: { mode: string }) => x.mode).sort(), ['joint', 'joint', 'joint', 'ruwl', 'ruwl', 'ruwl', 'vanilla', 'vanilla', 'vanilla']);
  // Three seeds per model: judged over seeds, paired by seed; selection kept apart from the score.
  assert.deepEqual(m.overSeeds.models.map((x: { model: string; seeds: number[] }) => [x.model, x.seeds]), [['mode=vanilla', [10, 11, 12]], ['mode=joint', [10, 11, 12]], ['mode=ruwl', [10, 11, 12]]]);
  assert.match(m.selection, /^best epochs picked on the other \d+ dev clips \(selectOn: half\)$/);
  for (const model of m.models) {
    assert.ok(Number.isFinite(model.meanCcc) && model.meanCcc >= -1 && model.meanCcc <= 1, `mean CCC ${model.meanCcc}`);
    assert.ok(model.ci95[0] <= model.meanCcc + 1e-9 && model.meanCcc <= model.ci95[1] + 1e-9, 'CI around the estimate');
    for (const e of Object.values(model.perEmotion) as Array<{ ccc: number }>) assert.ok(e.ccc >= -1 && e.ccc <= 1, "e.ccc >= -1 && e.ccc <= 1");
    if (model.mode === 'vanilla') assert.equal(model.pVsBaseline, null);
    else assert.ok(model.pVsBaseline >= 0 && model.pVsBaseline <= 1, `p ${model.pVsBaseline}`);
  }
  assert.match(r.stdout, /Dev mean CCC over 10 emotions/, 'the headline table is printed at the end');
  assert.match(r.stdout, /Over training seeds: dev mean CCC as mean ± sd/, 'and the table over seeds');
  const sub = readFileSync(join(report, 'submission.csv'), 'utf8').trim().split('\n');
  assert.equal(sub[0], 'File_ID,Awe,Excitement,Amusement,Awkwardness,Fear,Horror,Distress,Triumph,Sadness,Surprise');
  assert.ok(sub.length > 1 && /^\[\d+\],/.test(sub[1]!), "sub.length > 1 && /^\\[\\d+\\],/.test(sub[1]!)");
  assert.match(readFileSync(join(report, 'report.html'), 'utf8'), /<figure class="chart" id="curves"><svg[\s\S]*<figure class="chart" id="per-emotion"><svg/);
  // No tensor leak: each training run holds the same number of tensors after every epoch.
  const views = ws.path('cache/views');
  const metricFiles = readdirSync(views, { recursive: true }).map(String).filter((p) => p.endsWith('metrics.jsonl'));
  assert.equal(metricFiles.length, 9);
  for (const mf of metricFiles) {
    const held = readFileSync(join(views, mf), 'utf8').trim().split('\n').map((l) => JSON.parse(l).tensors as number);
    assert.equal(held.length, 2);
    assert.ok(held.every((n) => n === held[0]), `tensors held per epoch: ${held.join(', ')}`);
  }

  // The numbers, recomputed here from the files: each model's best epoch is the argmax of its dev
  // CCC per epoch on the selection half of the Val clips, its predictions are that epoch's, and the
  // report's per-emotion and mean CCC are the CCC (written out below) of those predictions against
  // the labels of the other half, over all ten emotions.
  const index = JSON.parse(ws.read('results/quickstart/features/index.json'));
  const labelled = (index.splits.Val.clips as Array<{ id: string; labels: number[] | null }>).filter((c) => c.labels);
  const pick = labelled.filter((c) => inSelectionHalf(c.id));
  const val = labelled.filter((c) => !inSelectionHalf(c.id));
  assert.equal(m.clips, val.length);
  const cccOf = (x: number[], y: number[]) => {
    const n = x.length;
    const mx = x.reduce((a, v) => a + v, 0) / n;
    const my = y.reduce((a, v) => a + v, 0) / n;
    const vx = x.reduce((a, v) => a + (v - mx) ** 2, 0) / n;
    const vy = y.reduce((a, v) => a + (v - my) ** 2, 0) / n;
    const cov = x.reduce((a, v, i) => a + (v - mx) * (y[i]! - my), 0) / n;
    return (2 * cov) / (vx + vy + (mx - my) ** 2);
  };
  for (const mf of metricFiles) {
    const dir = join(views, mf, '..');
    const info = JSON.parse(readFileSync(join(dir, 'info.json'), 'utf8'));
    const epochs = readFileSync(join(views, mf), 'utf8').trim().split('\n').map((l) => JSON.parse(l).devCcc as number);
    const argmax = epochs.indexOf(Math.max(...epochs)) + 1;
    assert.equal(info.bestEpoch, argmax, `${info.stage}: best epoch`);
    const preds = JSON.parse(readFileSync(join(dir, 'predictions.json'), 'utf8'));
    assert.equal(preds.epoch, argmax);
    const model = m.models.find((x: { model: string }) => info.stage.endsWith(`[${x.model}]`));
    assert.ok(model, `${info.stage} is in the report`);
    const per = index.emotions.map((_: string, j: number) => cccOf(val.map((c) => preds.dev[c.id][j]), val.map((c) => c.labels![j]!)));
    index.emotions.forEach((e: string, j: number) => assert.ok(Math.abs(model.perEmotion[e].ccc - per[j]) < 1e-9, `${info.stage} ${e}`));
    assert.ok(Math.abs(model.meanCcc - per.reduce((a: number, v: number) => a + v, 0) / 10) < 1e-9, `${info.stage} mean over all ten`);
    const picked = index.emotions.map((_: string, j: number) => cccOf(pick.map((c) => preds.dev[c.id][j]), pick.map((c) => c.labels![j]!)));
    assert.ok(Math.abs(epochs[argmax - 1]! - picked.reduce((a: number, v: number) => a + v, 0) / 10) < 1e-4, `${info.stage}: the kept epoch's dev CCC is that of the selection half`);
  }
  assert.equal(m.best, m.models.reduce((a: { meanCcc: number }, x: { meanCcc: number }) => (x.meanCcc > a.meanCcc ? x : a)).model);

  const again = ws.run('run', 'pipelines/quickstart.yaml', ...SMALL);
  assert.equal(again.code, 0);
  assert.deepEqual(ran(again), []);
  assert.equal(again.states.size, 14);
  assert.match(again.stdout, /Dev mean CCC/);
});

test('a killed training run resumes from its last finished epoch', async (t) => {
  const ws = new Workspace({ 'pipelines/quickstart.yaml': readFileSync(join(ROOT, 'pipelines', 'quickstart.yaml'), 'utf8') });
  t.after(() => ws.dispose());
  const args = ['run', 'pipelines/quickstart.yaml', 'train[mode=vanilla,seed=10]', '--set', 'clips=160', '--set', 'epochs=8', '--set', 'crop=48', '--set', 'stages.train.params.batch=16', '--set', 'stages.train.params.maxStepsPerEpoch=4'];
  // Eight epochs: on a busy machine the kill, which waits for epoch 1's checkpoint, must still land
  // before the last epoch ends.
  const first = ws.start(...args);
  // Wait until a checkpoint of epoch 1 exists, then kill the whole run.
  await waitFor(() => {
    const dir = ws.path('cache/checkpoints');
    return existsSync(dir) && readdirSync(dir).some((k) => existsSync(join(dir, k, 'checkpoint.json')));
  }, 120_000);
  process.kill(-first.child.pid!, 'SIGKILL');
  await first.done;
  const r = ws.run(...args);
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  const log = readdirSync(ws.path('cache/logs')).map((f) => join(ws.path('cache/logs'), f)).filter((f) => f.endsWith('.log')).map((f) => readFileSync(f, 'utf8')).find((l) => l.includes('resumed after epoch'));
  assert.ok(log, 'the rerun resumed from a checkpoint');
  const metrics = readdirSync(ws.path('cache/views'), { recursive: true }).map(String).find((f) => f.endsWith('metrics.jsonl'));
  const lines = readFileSync(join(ws.path('cache/views'), metrics!), 'utf8').trim().split('\n');
  assert.deepEqual(lines.map((l) => JSON.parse(l).epoch), [1, 2, 3, 4, 5, 6, 7, 8], 'every epoch once in the metrics');
  assert.ok(!existsSync(ws.path('cache/checkpoints')) || readdirSync(ws.path('cache/checkpoints')).length === 0, 'checkpoints removed after success');
});
