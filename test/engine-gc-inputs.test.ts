// gc and what a kept run still needs to explain itself: after gc, `status` of a run it kept must
// still name the file inside an input folder that changed (the folder's file list is kept with
// the run), not just the folder; and the run it replaced, removed by gc, takes its lists along.
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { Workspace } from './helpers/workspace.ts';

const SPEC = `stages:
  count:
    run: [sh, -c, 'find data/files -type f | sort | xargs cat > "$0"', '\${outputs.o}']
    deps: [data/files]
    outs: { o: counted.txt }
  copy:
    run: [cp, -r, data/more, '\${outputs.o}']
    outs: { o: copied }
`;

test('after gc, status of a kept run still names the file that changed inside an input folder (deps and argument folders)', (t) => {
  const ws = new Workspace({ 'p.yaml': SPEC, 'data/files/a.txt': 'a\n', 'data/files/sub/deep/b.txt': 'b\n', 'data/more/x/y.txt': 'y\n' });
  t.after(() => ws.dispose());
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  // An older run of each, then the current one: gc removes the older and keeps the current.
  writeFileSync(ws.path('data/files/a.txt'), 'a2\n');
  writeFileSync(ws.path('data/more/x/y.txt'), 'y2\n');
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  const before = readdirSync(ws.path('cache/manifests')).length;
  const gc = ws.run('gc');
  assert.equal(gc.code, 0, gc.stderr);
  assert.ok(readdirSync(ws.path('cache/manifests')).length < before, 'the replaced runs\' lists went with them');
  writeFileSync(ws.path('data/files/sub/deep/b.txt'), 'changed\n');
  writeFileSync(ws.path('data/more/x/y.txt'), 'changed\n');
  const st = ws.run('status', 'p.yaml');
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /count\s+stale: input data\/files\/sub\/deep\/b\.txt changed/);
  assert.match(st.stdout, /copy\s+stale: input data\/more\/x\/y\.txt changed/);
});
