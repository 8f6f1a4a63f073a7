// twin-train's checkpoint on real files: what a resume reads back is what was saved (weights,
// moments, step, RUWL weights, the best epoch), the best epoch's files follow the best epoch and
// not the latest one, a save killed part-way leaves the previous checkpoint, and a damaged
// checkpoint is never resumed from. (training-resume-best kills a real training run; this checks
// the module itself, fast enough for mutation testing.)
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { resumeCheckpoint, saveCheckpoint, type Checkpoint } from '../stages/lib/checkpoint.ts';
import { scratch } from './helpers/engine.ts';

const f32 = (...v: number[]) => new Float32Array(v);
/** The best epoch's files as the stage writes them (named here, not taken from the module under test). */
const BEST_FILES = ['model.bin', 'model.json', 'predictions.json'];

/** The checkpoint after `epoch`, its numbers derived from the epoch (so that two epochs differ everywhere). */
function after(epoch: number, best: Checkpoint['best']): Checkpoint {
  const k = epoch + 1;
  return {
    epoch,
    best,
    manifest: [{ name: 'dense/kernel', shape: [2, 2], offset: 0 }, { name: 'dense/bias', shape: [1], offset: 4 }],
    weights: f32(k, 2 * k, 3 * k, 4 * k, 0.5 * k),
    s: [1 + k, 1 - k, 0.001 * k],
    step: 10 * k,
    moments: [['dense/kernel', f32(k, k, k, k), f32(-k, -k, -k, -k)], ['dense/bias', f32(7 * k), f32(0.25 * k)]],
  };
}

/** The stage's output after an epoch: metrics so far; the best files rewritten when the epoch is the best. */
function epochOutput(out: string, epoch: number, improved: boolean): void {
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'metrics.jsonl'), Array.from({ length: epoch + 1 }, (_, e) => `${JSON.stringify({ epoch: e + 1, loss: 1 / (e + 1) })}\n`).join(''));
  if (improved) for (const f of BEST_FILES) writeFileSync(join(out, f), `${f} of epoch ${epoch + 1}`);
}

const same = (a: Checkpoint, b: Checkpoint) => {
  assert.deepEqual({ ...a, weights: [...a.weights], moments: a.moments.map(([n, m, v]) => [n, [...m], [...v]]) }, { ...b, weights: [...b.weights], moments: b.moments.map(([n, m, v]) => [n, [...m], [...v]]) });
};

async function resume(dir: string, out: string) {
  const problems: string[] = [];
  const r = await resumeCheckpoint(dir, out, (why) => problems.push(why));
  return { r, problems };
}

test('a checkpoint reads back as saved: weights, moments in order, step, RUWL weights, best; the output gets the metrics so far and the best files', async (t) => {
  const d = scratch(t);
  const [dir, out] = [join(d, 'ckpt'), join(d, 'out')];
  assert.deepEqual(await resume(dir, out), { r: undefined, problems: [] }, 'nothing to resume from');
  epochOutput(out, 0, true);
  const c = after(0, { epoch: 0, ccc: 0.25 });
  await saveCheckpoint(dir, c, out, true);
  const fresh = join(d, 'fresh');
  mkdirSync(fresh);
  const { r, problems } = await resume(dir, fresh);
  assert.deepEqual(problems, []);
  same(r!.checkpoint, c);
  assert.equal(r!.lastLoss, 1);
  assert.equal(readFileSync(join(fresh, 'metrics.jsonl'), 'utf8'), readFileSync(join(out, 'metrics.jsonl'), 'utf8'));
  for (const f of BEST_FILES) assert.equal(readFileSync(join(fresh, f), 'utf8'), `${f} of epoch 1`);
  assert.ok(!existsSync(`${dir}.tmp`), 'no temp folder left');

  // Without RUWL weights, and a weights array that is a view into a larger buffer: only its own bytes saved.
  const big = new Float32Array(16).fill(9);
  big.set([1, 2, 3], 4);
  const plain: Checkpoint = { ...after(0, { epoch: 0, ccc: 0.1, heldout: 0.05 }), weights: big.subarray(4, 7), s: undefined };
  await saveCheckpoint(dir, plain, out, true);
  const back = (await resume(dir, fresh)).r!.checkpoint;
  assert.deepEqual([...back.weights], [1, 2, 3]);
  assert.equal(back.s, undefined);
  assert.deepEqual(back.best, { epoch: 0, ccc: 0.1, heldout: 0.05 });
});

test('the best files follow the best epoch: carried over from the checkpoint when an epoch is not better (not linked to the output), replaced when it is', async (t) => {
  const d = scratch(t);
  const [dir, out] = [join(d, 'ckpt'), join(d, 'out')];
  epochOutput(out, 0, true);
  await saveCheckpoint(dir, after(0, { epoch: 0, ccc: 0.5 }), out, true);
  // Epoch 2 is worse; the output's files would be the best epoch's still, but say something else here
  // to tell where the checkpoint took them from.
  epochOutput(out, 1, false);
  for (const f of BEST_FILES) writeFileSync(join(out, f), 'not the best');
  await saveCheckpoint(dir, after(1, { epoch: 0, ccc: 0.5 }), out, false);
  for (const f of BEST_FILES) {
    assert.equal(readFileSync(join(dir, f), 'utf8'), `${f} of epoch 1`, `${f}: the best epoch's, from the previous checkpoint`);
    assert.equal(statSync(join(out, f)).nlink, 1, `${f}: the output's file is its own`);
  }
  const fresh = join(d, 'fresh');
  mkdirSync(fresh);
  const { r } = await resume(dir, fresh);
  assert.equal(r!.checkpoint.epoch, 1);
  assert.deepEqual(r!.checkpoint.best, { epoch: 0, ccc: 0.5 });
  assert.equal(r!.lastLoss, 0.5);
  for (const f of BEST_FILES) assert.equal(readFileSync(join(fresh, f), 'utf8'), `${f} of epoch 1`);
  // Epoch 3 is the new best: its files replace them.
  epochOutput(out, 2, true);
  await saveCheckpoint(dir, after(2, { epoch: 2, ccc: 0.7 }), out, true);
  for (const f of BEST_FILES) assert.equal(readFileSync(join(dir, f), 'utf8'), `${f} of epoch 3`);
  assert.equal(readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 3);
});

test('a save killed part-way leaves the previous checkpoint whole, and the next save clears what it left', async (t) => {
  const d = scratch(t);
  const [dir, out] = [join(d, 'ckpt'), join(d, 'out')];
  epochOutput(out, 0, true);
  const c0 = after(0, { epoch: 0, ccc: 0.5 });
  await saveCheckpoint(dir, c0, out, true);
  // What a kill during the next save leaves: a half-written temp folder beside the checkpoint.
  mkdirSync(`${dir}.tmp`);
  writeFileSync(join(`${dir}.tmp`, 'weights.bin'), 'half');
  writeFileSync(join(`${dir}.tmp`, 'stale-file'), 'x');
  same((await resume(dir, out)).r!.checkpoint, c0);
  epochOutput(out, 1, false);
  const c1 = after(1, { epoch: 0, ccc: 0.5 });
  await saveCheckpoint(dir, c1, out, false);
  same((await resume(dir, out)).r!.checkpoint, c1);
  assert.ok(!existsSync(join(dir, 'stale-file')), 'nothing of the killed save');
  assert.ok(!existsSync(`${dir}.tmp`), 'no temp folder left');
});

test('a damaged checkpoint is said and not resumed from: bad JSON, wrong shapes, cut-short weights or moments, missing metrics', async (t) => {
  const d = scratch(t);
  const out = join(d, 'out');
  epochOutput(out, 0, true);
  const cases: Array<[string, (dir: string) => void, RegExp]> = [
    ['bad json', (dir) => writeFileSync(join(dir, 'checkpoint.json'), '{"epoch": '), /checkpoint\.json cannot be read/],
    ['not a checkpoint', (dir) => writeFileSync(join(dir, 'checkpoint.json'), '{"epoch": -1, "best": {"epoch": 0, "ccc": 0}, "opt": {"step": 0, "names": [], "sizes": []}}'), /is not a checkpoint/],
    ['best without a score', (dir) => writeFileSync(join(dir, 'checkpoint.json'), '{"epoch": 0, "best": {"epoch": 0}, "opt": {"step": 0, "names": [], "sizes": []}}'), /is not a checkpoint/],
    ['names and sizes disagree', (dir) => writeFileSync(join(dir, 'checkpoint.json'), '{"epoch": 0, "best": {"epoch": 0, "ccc": 0}, "opt": {"step": 0, "names": ["a"], "sizes": []}}'), /optimizer state/],
    ['a negative size', (dir) => writeFileSync(join(dir, 'checkpoint.json'), '{"epoch": 0, "best": {"epoch": 0, "ccc": 0}, "opt": {"step": 0, "names": ["a"], "sizes": [-1]}}'), /optimizer state/],
    ['s not numbers', (dir) => writeFileSync(join(dir, 'checkpoint.json'), '{"epoch": 0, "best": {"epoch": 0, "ccc": 0}, "s": ["x"], "opt": {"step": 0, "names": [], "sizes": []}}'), /s is not a list of numbers/],
    ['weights cut mid-float', (dir) => truncateSync(join(dir, 'weights.bin'), 18), /weights\.bin is missing or cut short/],
    ['moments cut short', (dir) => truncateSync(join(dir, 'optimizer.bin'), 16), /optimizer\.bin holds 4 numbers, the checkpoint says 10/],
    ['metrics gone', (dir) => rmSync(join(dir, 'metrics.jsonl')), /metrics\.jsonl is missing/],
    ['weights gone', (dir) => rmSync(join(dir, 'weights.bin')), /weights\.bin is missing or cut short/],
    ['moments gone', (dir) => rmSync(join(dir, 'optimizer.bin')), /optimizer\.bin holds 0 numbers, the checkpoint says 10/],
    ['best epoch not a number', (dir) => writeFileSync(join(dir, 'checkpoint.json'), '{"epoch": 0, "best": {"epoch": "0", "ccc": 0}, "opt": {"step": 0, "names": [], "sizes": []}}'), /is not a checkpoint/],
    ['a name not text', (dir) => writeFileSync(join(dir, 'checkpoint.json'), '{"epoch": 0, "best": {"epoch": 0, "ccc": 0}, "opt": {"step": 0, "names": [3], "sizes": [1]}}'), /optimizer state/],
    ['s partly numbers', (dir) => writeFileSync(join(dir, 'checkpoint.json'), '{"epoch": 0, "best": {"epoch": 0, "ccc": 0}, "s": [1, "x"], "opt": {"step": 0, "names": [], "sizes": []}}'), /s is not a list of numbers/],
  ];
  for (const [label, damage, why] of cases) {
    const dir = join(d, label.replace(/ /g, '-'));
    await saveCheckpoint(dir, after(0, { epoch: 0, ccc: 0.5 }), out, true);
    damage(dir);
    const { r, problems } = await resume(dir, join(d, 'elsewhere'));
    assert.equal(r, undefined, `${label}: not resumed from`);
    assert.equal(problems.length, 1, label);
    assert.match(problems[0]!, why, label);
  }
  // A last metrics line that does not parse, or has no loss: resumed, the loss unknown.
  const dir = join(d, 'odd-metrics');
  await saveCheckpoint(dir, after(0, { epoch: 0, ccc: 0.5 }), out, true);
  for (const text of ['{"epoch": 1, "loss": 0.5}\n{"epo', '{"epoch": 1}\n', '']) {
    writeFileSync(join(dir, 'metrics.jsonl'), text);
    const { r, problems } = await resume(dir, out);
    assert.deepEqual([r?.lastLoss, r?.checkpoint.epoch, problems], [null, 0, []], text);
    assert.equal(readFileSync(join(out, 'metrics.jsonl'), 'utf8'), text);
  }
});

test('a checkpoint folder where nothing was saved yet is no checkpoint; a save with no best epoch yet (its score NaN: -Infinity survives the save), or only some of them, and a checkpoint folder whose parent does not exist yet', async (t) => {
  const d = scratch(t);
  const out = join(d, 'out');
  epochOutput(out, 0, false);
  const empty = join(d, 'empty');
  mkdirSync(empty);
  assert.deepEqual(await resume(empty, out), { r: undefined, problems: [] }, 'an empty folder: nothing to resume, nothing damaged');
  // No epoch has been best yet (its score was NaN): nothing to copy or carry.
  const dir = join(d, 'deep', 'er', 'ckpt');
  await saveCheckpoint(dir, after(0, { epoch: -1, ccc: -Infinity }), out, false);
  for (const f of BEST_FILES) assert.equal(existsSync(join(dir, f)), false, f);
  const fresh = join(d, 'fresh');
  mkdirSync(fresh);
  const { r, problems } = await resume(dir, fresh);
  assert.deepEqual(problems, []);
  assert.equal(r!.checkpoint.epoch, 0);
  assert.deepEqual(r!.checkpoint.best, { epoch: -1, ccc: -Infinity }, 'no best yet: any score beats it after the resume');
  for (const f of BEST_FILES) assert.equal(existsSync(join(fresh, f)), false, f);
  // A best epoch whose output has the model but no predictions file: what there is, is kept.
  writeFileSync(join(out, 'model.bin'), 'weights of epoch 2');
  await saveCheckpoint(dir, after(1, { epoch: 1, ccc: 0.1 }), out, true);
  assert.deepEqual(BEST_FILES.filter((f) => existsSync(join(dir, f))), ['model.bin']);
  await saveCheckpoint(dir, after(2, { epoch: 1, ccc: 0.1 }), out, false);
  assert.equal(readFileSync(join(dir, 'model.bin'), 'utf8'), 'weights of epoch 2');
});
