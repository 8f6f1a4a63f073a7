// Several processes on one cache at once (users sharing a cache, the jobs of a Slurm array): a
// stage with the same key is computed once while the others wait and take its result; stages with
// other keys run side by side (no cache-wide run lock); gc waits for the runs in progress.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { waitFor, Workspace } from './helpers/workspace.ts';

// `shared` has the same key in every workspace; `own` differs by --set. Each appends what it did
// (and when) to a log outside the workspaces.
const SPEC = `params: { who: x }
stages:
  shared:
    run: [sh, -c, 'echo "shared $(date +%s.%N)" >> "$LOG"; sleep 2; echo same > "$0"', '\${outputs.o}']
    env: { LOG: '\${env.CONCURRENCY_LOG}' }
    outs: { o: shared.txt }
  own:
    run: [sh, -c, 'echo "start $1 $(date +%s.%N)" >> "$LOG"; sleep 2; echo "end $1 $(date +%s.%N)" >> "$LOG"; echo "$1" > "$0"', '\${outputs.o}', '\${params.who}']
    env: { LOG: '\${env.CONCURRENCY_LOG}' }
    outs: { o: own.txt }
`;

test('three runs on one cache: the shared stage computed once, the others side by side; gc waits for them', async (t) => {
  const cache = mkdtempSync(join(tmpdir(), 'pipeline-concurrent-cache-'));
  const log = join(cache, '..', `${cache.split('/').pop()}.log`);
  t.after(() => rmSync(cache, { recursive: true, force: true }));
  t.after(() => rmSync(log, { force: true }));
  const ws = ['a', 'b', 'c'].map(() => new Workspace({ 'p.yaml': SPEC }));
  for (const w of ws) t.after(() => w.dispose());
  const env = { PIPELINE_CACHE_DIR: cache, CONCURRENCY_LOG: log };

  const runs = ws.map((w, i) => w.startEnv(env, 'run', 'p.yaml', '--set', `who=${'abc'[i]}`));
  // gc started while the runs are in progress: it waits for them, and removes nothing they made.
  await waitFor(() => existsSync(log) && readFileSync(log, 'utf8').includes('start'), 60_000);
  const gc = ws[0]!.startEnv(env, 'gc');
  const results = await Promise.all(runs.map((r) => r.done));
  for (const r of results) assert.equal(r.code, 0, r.stdout + r.stderr);
  const g = await gc.done;
  assert.equal(g.code, 0, g.stderr);
  assert.match(g.stderr, /waiting for 'pipeline run p\.yaml' to finish with the cache \(pid \d+ on /);

  const lines = readFileSync(log, 'utf8').trim().split('\n');
  assert.equal(lines.filter((l) => l.startsWith('shared')).length, 1, 'the same stage key is computed once');
  assert.equal(results.filter((r) => r.states.get('shared') === 'done').length, 1);
  assert.equal(results.filter((r) => r.states.get('shared') === 'cached').length, 2, 'the others take its result');
  assert.ok(results.some((r) => /shared: waiting for pid \d+ on .*computing the same stage/.test(r.stdout + r.stderr)), "results.some((r) => /shared: waiting for pid \\d+ on .*computing the same stage/.test(r.stdout + r.stderr))");
  // The three `own` stages overlap in time: no run waited for another to finish.
  const at = (kind: string, who: string) => Number(lines.find((l) => l.startsWith(`${kind} ${who} `))!.split(' ')[2]);
  const lastStart = Math.max(...['a', 'b', 'c'].map((w) => at('start', w)));
  const firstEnd = Math.min(...['a', 'b', 'c'].map((w) => at('end', w)));
  assert.ok(lastStart < firstEnd, `own stages ran one after another: ${lines.join(' | ')}`);

  ws.forEach((w, i) => {
    assert.equal(w.read('shared.txt'), 'same\n');
    assert.equal(w.read('own.txt'), `${'abc'[i]}\n`);
  });
  // gc kept every workspace's latest runs; nothing left locked, no temp folder left.
  for (const [i, w] of ws.entries()) {
    const st = w.runEnv(env, 'status', 'p.yaml', '--json', '--set', `who=${'abc'[i]}`);
    assert.deepEqual((JSON.parse(st.stdout) as Array<{ state: string }>).map((s) => s.state), ['cached', 'cached'], st.stderr);
  }
  assert.deepEqual(readdirSync(join(cache, 'keys')), []);
  assert.deepEqual(readdirSync(join(cache, 'leases')), []);
  assert.ok(!readdirSync(cache).includes('lock'), "!readdirSync(cache).includes('lock')");
});
