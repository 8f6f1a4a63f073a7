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
  const status = JSON.parse(ws.run('status', 'pipelines/exvo.yaml', '--json').stdout) as Array<{ stage: string; reasons: string[] }>;
  assert.deepEqual(status.find((s) => s.stage === 'dataset')!.reasons, ['never run']);
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
