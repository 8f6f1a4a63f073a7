// One cache shared by two workspaces (as a group sharing a cache on a cluster filesystem would):
// each keeps its own latest runs, status in one never sees the other's changes, gc in one keeps
// what the other needs; a workspace gone for --forget-after is forgotten, saying so; --max-size
// counts every byte (checkpoints included); --dry-run lists what and why.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ran, Workspace } from './helpers/workspace.ts';

const SPEC = `params: { factor: 2 }
stages:
  scale:
    run: [sh, -c, 'echo $(( $1 * 21 )) > "$0"', '\${outputs.o}', '\${params.factor}']
    outs: { o: result.txt }
  note:
    run: [sh, -c, 'cat "$0" > "$1"; echo done >> "$1"', '\${stages.scale.outputs.o}', '\${outputs.o}']
    outs: { o: null }
`;

test('two workspaces share one cache without overwriting each other, and gc keeps what each needs', async (t) => {
  const cache = mkdtempSync(join(tmpdir(), 'pipeline-shared-cache-'));
  t.after(() => rmSync(cache, { recursive: true, force: true }));
  const a = new Workspace({ 'p.yaml': SPEC });
  const b = new Workspace({ 'p.yaml': SPEC });
  t.after(() => a.dispose());
  t.after(() => b.dispose());
  const env = { PIPELINE_CACHE_DIR: cache };
  const run = (ws: Workspace, ...args: string[]) => ws.runEnv(env, ...args);

  assert.equal(run(a, 'run', 'p.yaml').code, 0);
  assert.equal(run(b, 'run', 'p.yaml', '--set', 'factor=3').code, 0);
  assert.equal(a.read('result.txt').trim(), '42');
  assert.equal(b.read('result.txt').trim(), '63');
  // A's status is about A's last run, not B's --set.
  const st = run(a, 'status', 'p.yaml', '--json');
  assert.deepEqual((JSON.parse(st.stdout) as Array<{ state: string }>).map((s) => s.state), ['cached', 'cached']);
  assert.deepEqual(readdirSync(join(cache, 'latest')).length, 2, 'one latest-run folder per workspace');
  assert.deepEqual(readdirSync(join(cache, 'workspaces')).length, 2);

  // A moves on; its old run is unused, B's current runs are not.
  assert.equal(run(a, 'run', 'p.yaml', '--set', 'factor=4').code, 0);
  const dry = run(a, 'gc', '--dry-run');
  assert.equal(dry.code, 0, dry.stderr);
  const lines = dry.stdout.trim().split('\n');
  assert.deepEqual(lines.filter((l) => l.startsWith('would remove run')).length, 2, dry.stdout);
  for (const l of lines.filter((x) => x.startsWith('would remove run'))) assert.match(l, /^would remove run [0-9a-f]{8} \(p\.yaml: (scale|note), \d{4}-\d\d-\d\d\), [\d.]+ (B|KiB): no latest run of any workspace uses it$/);
  assert.match(lines.at(-1)!, /^gc: would remove 2 runs and \d+ objects \(.* in all\); .* kept$/);
  assert.equal(run(a, 'gc').code, 0);
  assert.deepEqual(ran(run(b, 'run', 'p.yaml', '--set', 'factor=3')), [], "B's results survived A's gc");
  assert.deepEqual(ran(run(a, 'run', 'p.yaml', '--set', 'factor=4')), []);

  // B's folder goes away: kept for the grace period, then forgotten with a line, and its runs go.
  rmSync(b.dir, { recursive: true, force: true });
  const g1 = run(a, 'gc');
  assert.match(g1.stderr, new RegExp(`gc: workspace ${b.dir} is gone \\(since [^)]+\\): its latest runs are kept until `));
  assert.match(g1.stdout, /removed 0 runs/);
  const g2 = run(a, 'gc', '--forget-after', '0');
  assert.match(g2.stderr, new RegExp(`gc: forgot workspace ${b.dir}: gone since `));
  assert.match(g2.stdout, /removed 2 runs/);
  assert.deepEqual(readdirSync(join(cache, 'workspaces')).length, 1);
  assert.deepEqual(ran(run(a, 'run', 'p.yaml', '--set', 'factor=4')), [], "A's runs kept");
  assert.equal(run(a, 'gc', '--forget-after', 'soon').code, 2);
});

test('gc --max-size counts every byte the cache holds and removes checkpoints of unfinished runs when it must', async (t) => {
  const ws = new Workspace({ 'p.yaml': SPEC });
  t.after(() => ws.dispose());
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  // A checkpoint an interrupted run left behind: 2 MiB.
  mkdirSync(ws.path('cache/checkpoints/abc'), { recursive: true });
  writeFileSync(ws.path('cache/checkpoints/abc/weights.bin'), Buffer.alloc(2 << 20));
  const dry = ws.run('gc', '--max-size', '1M', '--dry-run');
  assert.match(dry.stdout, /^would remove checkpoints\/abc \(\d{4}-\d\d-\d\d\), 2\.0 MiB: checkpoint of an unfinished run: over --max-size$/m);
  assert.ok(readdirSync(ws.path('cache/checkpoints')).includes('abc'), 'a dry run removes nothing');
  const roomy = ws.run('gc', '--max-size', '10M', '--dry-run');
  assert.doesNotMatch(roomy.stdout, /checkpoints\/abc/, 'under the limit: kept');
  assert.match(ws.run('gc', '--max-size', '1M').stdout, /removed 0 runs and 0 objects \(2\.0 MiB in all\)/);
  assert.ok(!readdirSync(ws.path('cache/checkpoints')).includes('abc'), "!readdirSync(ws.path('cache/checkpoints')).includes('abc')");
  assert.deepEqual(ran(ws.run('run', 'p.yaml')), [], 'the latest runs stay');
});
