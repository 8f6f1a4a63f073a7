// The no-op fast path and published folder outputs: a file edited in place deep inside a published
// folder (not the folder's own entry, which an in-place write leaves as it was), or one added there,
// must send the run down the stage-by-stage path, which puts the stage's output back and keeps the
// user's version aside, exactly as it does when there is no snapshot at all.
import assert from 'node:assert/strict';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { aged, Workspace } from './helpers/workspace.ts';

const FAST = /nothing changed since the last run/;
const SPEC = `stages:
  make:
    run: [sh, -c, 'mkdir -p "$0/a/b" && echo deep > "$0/a/b/f.txt" && echo top > "$0/t.txt"', '\${outputs.o}']
    outs: { o: out }
`;

for (const path of ['fast', 'slow'] as const) {
  test(`${path} path: a file edited in place two levels down in a published folder, or one added there, is put back and the user's version kept aside`, async (t) => {
    const ws = new Workspace({ 'p.yaml': SPEC });
    t.after(() => ws.dispose());
    await aged([ws.path('p.yaml')]);
    assert.equal(ws.run('run', 'p.yaml').states.get('make'), 'done');
    assert.match(ws.run('run', 'p.yaml').stdout, FAST, 'the snapshot is there');
    const edits: Array<[string, () => void]> = [
      ['edited in place, same size', () => writeFileSync(ws.path('out/a/b/f.txt'), 'DEEP\n')],
      ['added', () => writeFileSync(ws.path('out/a/b/new.txt'), 'mine\n')],
    ];
    for (const [what, edit] of edits) {
      edit();
      if (path === 'slow') rmSync(ws.path('cache/snapshots'), { recursive: true, force: true });
      const r = ws.run('run', 'p.yaml');
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, FAST, `${what}: noticed`);
      assert.equal(r.states.get('make'), 'cached', `${what}: served from the cache, not rerun`);
      assert.deepEqual(readdirSync(ws.path('out/a/b')), ['f.txt'], `${what}: the output as the stage made it`);
      assert.equal(ws.read('out/a/b/f.txt'), 'deep\n', what);
      const kept = readdirSync(ws.path('.')).filter((f) => f.startsWith('out.edited-')).sort();
      assert.ok(kept.length > 0, `${what}: the user's version kept aside`);
      const mine = join(kept.at(-1)!, 'a', 'b');
      if (what === 'added') assert.equal(ws.read(join(mine, 'new.txt')), 'mine\n');
      else assert.equal(ws.read(join(mine, 'f.txt')), 'DEEP\n');
      for (const k of kept) rmSync(ws.path(k), { recursive: true, force: true });
      assert.match(ws.run('run', 'p.yaml').stdout, FAST, `${what}: the next run is a no-op again`);
    }
  });
}
