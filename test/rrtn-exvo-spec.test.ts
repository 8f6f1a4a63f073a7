// pipelines/exvo.yaml (the paper's set-up) is valid, and its dry run plans every stage against a
// corpus in the ExVo layout that the synthetic generator writes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, Workspace } from './helpers/workspace.ts';

test('exvo.yaml validates and dry-runs against a generated corpus in the ExVo layout', (t) => {
  const ws = new Workspace({
    'pipelines/exvo.yaml': readFileSync(join(ROOT, 'pipelines', 'exvo.yaml'), 'utf8'),
    'make-corpus.yaml': 'stages:\n  synth:\n    uses: stages/synth-vocal-bursts.ts\n    params: { clips: 30, speakers: 6, maxSeconds: 1 }\n    outs: { corpus: data/exvo }\n',
  });
  t.after(() => ws.dispose());
  assert.equal(ws.run('run', 'make-corpus.yaml').code, 0);
  const v = ws.run('validate', 'pipelines/exvo.yaml');
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /valid \(7 stages\)/);
  const dry = ws.run('run', 'pipelines/exvo.yaml', '--dry-run');
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /dry run: 7 of 7 stages would run/);
  assert.match(dry.stdout, /train\[mode=ruwl\]\s+stale/);
  const status = JSON.parse(ws.run('status', 'pipelines/exvo.yaml', '--json').stdout) as Array<{ stage: string; reasons: unknown[] }>;
  assert.deepEqual(status.find((s) => s.stage === 'dataset')!.reasons, [{ kind: 'state', name: 'never-run', text: 'never run' }]);
  // The paper's numbers reach the training stage: CNN14, batch 128, 150 epochs, seed 10.
  const dag = ws.run('dag', 'pipelines/exvo.yaml');
  assert.match(dag.stdout, /train\[mode=joint\]/);
  // A corpus outside the workspace is refused with the file and line of the reference.
  process.env.EXVO_DIR = '/datasets/exvo';
  try {
    const bad = ws.run('validate', 'pipelines/exvo.yaml');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /exvo\.yaml:\d+:\d+: stages\.dataset\.inputs\.corpus: path '\/datasets\/exvo' resolves outside the workspace/);
  } finally {
    delete process.env.EXVO_DIR;
  }
});

test("the paper's settings reach every training variant, as resolved params (not just stage names)", async (t) => {
  const { compilePipeline } = await import('../src/spec/compile.ts');
  const { DigestCache } = await import('../src/cache/digests.ts');
  const { StageModules } = await import('../src/modules.ts');
  const ws = new Workspace({ 'pipelines/exvo.yaml': readFileSync(join(ROOT, 'pipelines', 'exvo.yaml'), 'utf8'), 'data/exvo/data_info.csv': 'x\n' });
  t.after(() => ws.dispose());
  const cache = ws.path('cache');
  const digests = new DigestCache(join(cache, 'state.json'));
  const p = await compilePipeline('pipelines/exvo.yaml', { workspace: ws.dir, modules: new StageModules(cache, ws.dir, digests), cacheDir: cache, builtinRoot: ROOT });
  const train = [...p.stages.values()].filter((n) => n.key === 'train');
  assert.deepEqual(train.map((n) => n.id), ['train[mode=vanilla]', 'train[mode=joint]', 'train[mode=ruwl]']);
  for (const n of train) {
    // Written out as the paper states them: CNN14 from scratch, batch 128, 150 epochs, AdamW 1e-3, seed 10, 250-frame crops.
    assert.equal(n.seed, 10, n.id);
    assert.deepEqual(
      { backbone: n.params.backbone, batch: n.params.batch, epochs: n.params.epochs, lr: n.params.lr, crop: n.params.crop, weights: n.params.weights, lambda: n.params.lambda, channels: n.params.channels, mode: n.params.mode },
      { backbone: 'cnn14', batch: 128, epochs: 150, lr: 0.001, crop: 250, weights: [1, 1, 0.001], lambda: 0.001, channels: [64, 128, 256, 512, 1024, 2048], mode: /\[mode=(\w+)\]/.exec(n.id)![1] },
      n.id,
    );
  }
  // The reference preset's departures from PANNs defaults, as the authors ran them.
  for (const n of train) assert.deepEqual({ headDropout: n.params.headDropout, padDb: n.params.padDb, btCorrelation: n.params.btCorrelation, devScoring: n.params.devScoring, bnStats: n.params.bnStats }, { headDropout: 0, padDb: 0, btCorrelation: 'affine', devScoring: 'crops', bnStats: 'both' }, n.id);
  const views = p.stages.get('views')!.params;
  assert.deepEqual({ freqMask: views.freqMask, timeStripes: views.timeStripes, timeWidth: views.timeWidth, timeWidthForFrames: views.timeWidthForFrames }, { freqMask: false, timeStripes: 2, timeWidth: 64, timeWidthForFrames: 250 });
  assert.deepEqual(p.stages.get('evaluate')!.upstream.filter((u) => u.startsWith('train')).sort(), train.map((n) => n.id).sort(), 'the evaluation gathers all three');

  // The header's recipe for the authors' ResNet14 twin, as written there, gives what their script ran.
  const text = readFileSync(join(ROOT, 'pipelines', 'exvo.yaml'), 'utf8');
  const recipe = text.split('\n').filter((l) => /^#\s+--set /.test(l)).join(' ');
  const sets = [...recipe.matchAll(/--set (?:'([^']+)'|(\S+))/g)].map((m) => m[1] ?? m[2]!);
  assert.equal(sets.length, 5, recipe);
  const r = await compilePipeline('pipelines/exvo.yaml', { workspace: ws.dir, modules: new StageModules(cache, ws.dir, digests), cacheDir: cache, builtinRoot: ROOT, sets });
  for (const n of [...r.stages.values()].filter((x) => x.key === 'train')) {
    assert.deepEqual({ backbone: n.params.backbone, channels: n.params.channels, projector: n.params.projector }, { backbone: 'resnet14', channels: [64, 128, 256, 512], projector: 2048 }, n.id);
  }
  const rv = r.stages.get('views')!.params;
  assert.deepEqual({ timeMask: rv.timeMask, freqMask: rv.freqMask, freqStripes: rv.freqStripes, freqWidth: rv.freqWidth }, { timeMask: false, freqMask: true, freqStripes: 2, freqWidth: 64 });
});
