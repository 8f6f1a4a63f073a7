// The engine's core as small units on real files: the store's commit protocol under injected
// failures, the fingerprint's code closure, the spec schema.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DigestCache } from '../src/cache/digests.ts';
import { ENGINE_VERSION, type Fingerprint } from '../src/cache/fingerprint.ts';
import { StageModules } from '../src/modules.ts';
import { Planner } from '../src/run/plan.ts';
import { compilePipeline } from '../src/spec/compile.ts';
import { SpecError } from '../src/diagnostics.ts';
import { OBJECT_MTIME_MS, Store } from '../src/cache/store.ts';
import { scratch } from './helpers/engine.ts';
import { Workspace } from './helpers/workspace.ts';

const FP = { engine: ENGINE_VERSION } as Fingerprint;
const base = (key: string) => ({ key, stage: 's', spec: 'p.yaml', fingerprint: FP, startedAt: 'now', durationMs: 1 });


test('commit: outputs stored first, the record last; a failure part-way leaves no record and no view', async (t) => {
  const d = scratch(t);
  const store = new Store(join(d, 'cache'));
  store.onCorrupt = () => undefined;
  const key = 'a'.repeat(32);
  const out = join(d, 'out');
  mkdirSync(join(out, 'good'), { recursive: true });
  writeFileSync(join(out, 'good', 'x.txt'), 'x');
  symlinkSync('/etc/passwd', join(out, 'bad')); // the second output cannot be stored
  await assert.rejects(store.commit(out, ['good', 'bad'], base(key)), /output 'bad' cannot be stored: bad is a symbolic link/);
  assert.equal(await store.readRun(key), undefined, 'no record claims the failed run');
  assert.ok(!existsSync(store.runPath(key)), "!existsSync(store.runPath(key))");
  assert.ok(!existsSync(store.viewFolder(key)), 'no view of a run that did not commit');
  // A missing output: the same.
  rmSync(join(out, 'bad'));
  await assert.rejects(store.commit(out, ['good', 'bad'], base(key)), /did not write its output 'bad'/);
  assert.ok(!existsSync(store.runPath(key)), "!existsSync(store.runPath(key))");

  // A good commit: objects read-only and stamped, the view in place, then the record.
  writeFileSync(join(out, 'bad'), 'now a file');
  const rec = await store.commit(out, ['good', 'bad'], base(key));
  assert.deepEqual(Object.keys(rec.outputs), ['good', 'bad']);
  assert.ok(existsSync(join(store.viewPath(rec, 'good'), 'x.txt')), 'the view in place');
  assert.ok(!existsSync(out), 'the stage folder became the view');
  for (const f of readdirSync(join(d, 'cache', 'objects'), { recursive: true }).map(String)) {
    const st = statSync(join(d, 'cache', 'objects', f));
    if (st.isFile()) {
      assert.equal(st.mtimeMs, OBJECT_MTIME_MS);
      assert.equal(st.mode & 0o222, 0, 'read-only');
    }
  }
  const first = statSync(store.runPath(key)).ino;
  assert.deepEqual((await store.readRun(key))?.outputs, rec.outputs);
  // The record is replaced whole (write to a temp file, rename), never rewritten in place.
  mkdirSync(join(out, 'good'), { recursive: true });
  writeFileSync(join(out, 'good', 'x.txt'), 'x');
  writeFileSync(join(out, 'bad'), 'now a file');
  await store.commit(out, ['good', 'bad'], base(key));
  assert.notEqual(statSync(store.runPath(key)).ino, first);
  assert.ok(!readdirSync(join(d, 'cache', 'runs')).some((f) => f.endsWith('.tmp')), 'no temp file left');
  // A damaged record is refused (and dropped), never served.
  writeFileSync(store.runPath(key), '{}');
  assert.equal(await store.readRun(key), undefined);
});

test('a running stage writes into a private folder under the cache tmp/, never into the view others read', (t) => {
  const ws = new Workspace({
    'stages/where.ts': `import { writeFileSync } from 'node:fs';
import { defineStage } from 'rrtn-pipeline';
export default defineStage({ params: {}, outputs: ['o'], async run(ctx) { writeFileSync(ctx.outputs.o, ctx.outputs.o); } });
`,
    'p.yaml': 'stages:\n  a:\n    uses: stages/where.ts\n    outs: { o: where.txt }\n',
  });
  t.after(() => ws.dispose());
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  const where = ws.read('where.txt');
  assert.match(where, /\/cache\/tmp\/[^/]+-\d+\/a-\d+-[0-9a-f]+\/out\/o$/);
  assert.doesNotMatch(where, /\/views\//);
});

test("the fingerprint's code: a module and every file it imports; a command's script arguments, also inside sh -c", async (t) => {
  const ws = new Workspace({
    'stages/m.ts': "import { f } from './lib/f.ts';\nimport { defineStage } from 'rrtn-pipeline';\nexport default defineStage({ params: {}, outputs: ['o'], run() { f(); } });\n",
    'stages/lib/f.ts': "import { g } from '../../shared/g.ts';\nexport const f = () => g();\n",
    'shared/g.ts': 'export const g = () => 1;\n',
    'scripts/train.py': 'print(1)\n',
    'scripts/eval.sh': 'echo 1\n',
    'cfg.json': '{}\n',
    'p.yaml': `stages:
  mod:
    uses: stages/m.ts
  cmd:
    run: [python3, scripts/train.py, --config=cfg.json, --out, "\${outputs.o}"]
    outs: { o: null }
  sh:
    run: [sh, -c, 'sh scripts/eval.sh > "$0"', "\${outputs.o}"]
    outs: { o: null }
`,
  });
  t.after(() => ws.dispose());
  const cache = ws.path('cache');
  const digests = new DigestCache(join(cache, 'state.json'));
  const modules = new StageModules(cache, ws.dir, digests);
  const p = await compilePipeline('p.yaml', { workspace: ws.dir, modules, cacheDir: cache });
  const planner = new Planner(p, new Store(cache), digests, modules);
  const code = async (id: string) => Object.keys((await planner.evaluate(p.stages.get(id)!, new Map()))!.fingerprint.code).sort();
  assert.deepEqual(await code('mod'), ['pipeline:src/random.ts', 'pipeline:src/stage-api.ts', 'shared/g.ts', 'stages/lib/f.ts', 'stages/m.ts']);
  assert.deepEqual(await code('cmd'), ['cfg.json', 'scripts/train.py']);
  assert.deepEqual(await code('sh'), ['scripts/eval.sh']);
});

test('the spec schema refuses unknown keys at the top and in a stage, with a hint', async (t) => {
  const ws = new Workspace({ 'p.yaml': 'stages:\n  a:\n    run: [echo]\n    inputz: {}\n    runs: 1\nparms: {}\n' });
  t.after(() => ws.dispose());
  const cache = ws.path('cache');
  const digests = new DigestCache(join(cache, 'state.json'));
  const err = await compilePipeline('p.yaml', { workspace: ws.dir, modules: new StageModules(cache, ws.dir, digests), cacheDir: cache, displayName: 'p.yaml' }).catch((e: unknown) => e);
  assert.ok(err instanceof SpecError, "err instanceof SpecError");
  assert.deepEqual(
    err.diagnostics.map((d) => `${d.line}:${d.col} ${d.path}: ${d.message}`),
    ["4:5 stages.a.inputz: unknown key 'inputz' (did you mean 'inputs'?)", "5:5 stages.a.runs: unknown key 'runs' (did you mean 'run'?)", "6:1 parms: unknown key 'parms' (did you mean 'params'?)"],
  );
});

test('mutation accounting: a surviving mutant is named by file, mutator, its line with the original code marked, and replacement, and counts as explained only when listed with a reason', async () => {
  const { mutantKey, readExplained, unexplained, scoreLine } = await import('./reliability/mutate.ts');
  const source = 'const a = 1;\nif (x &&\n    y) go();\n';
  // 1-based lines and columns, as Stryker's report writes them.
  const at = (l1: number, c1: number, l2: number, c2: number) => ({ start: { line: l1, column: c1 + 1 }, end: { line: l2, column: c2 + 1 } });
  const report = {
    files: {
      'src/x.ts': {
        source,
        mutants: [
          { status: 'Survived', mutatorName: 'LogicalOperator', replacement: 'x || y', location: at(2, 4, 3, 5) },
          { status: 'NoCoverage', mutatorName: 'NumberLiteral', replacement: '0', location: at(1, 10, 1, 11) },
          { status: 'Killed', mutatorName: 'BlockStatement', replacement: '{}', location: at(1, 0, 1, 12) },
          { status: 'Timeout', mutatorName: 'BlockStatement', replacement: '{}', location: at(1, 0, 1, 12) },
        ],
      },
    },
  };
  const key = mutantKey('src/x.ts', report.files['src/x.ts'].mutants[0]!, source);
  assert.equal(key, 'src/x.ts\tLogicalOperator\tif (⟦x && y⟧) go();\tx || y');
  // The same token on another line is another mutant.
  const twice = 'f(true);\ng(true);\n';
  const k1 = mutantKey('s.ts', { status: 'Survived', mutatorName: 'BooleanLiteral', replacement: 'false', location: at(1, 2, 1, 6) }, twice);
  const k2 = mutantKey('s.ts', { status: 'Survived', mutatorName: 'BooleanLiteral', replacement: 'false', location: at(2, 2, 2, 6) }, twice);
  assert.deepEqual([k1, k2], ['s.ts\tBooleanLiteral\tf(⟦true⟧);\tfalse', 's.ts\tBooleanLiteral\tg(⟦true⟧);\tfalse']);
  assert.equal(scoreLine(report), 'mutation score 50.0% (killed 1, survived 1, timeout 1, no coverage 1) over 1 files');
  const none = unexplained(report, readExplained('# nothing yet\n'));
  assert.deepEqual([none.open.map((o) => o.m.mutatorName), none.covered], [['LogicalOperator', 'NumberLiteral'], 0]);
  const some = unexplained(report, readExplained(`# why\n${key}\tx is y here\n`));
  assert.deepEqual([some.open.map((o) => o.m.mutatorName), some.covered], [['NumberLiteral'], 1]);
  assert.throws(() => readExplained(`${key}\t\n`), /each line needs file, mutator, the line with the ⟦original⟧ marked, replacement and a reason/);
});

test('mutation areas: each core module is in exactly one area, checked by that area\'s own test files; a file asked for runs in its area only', async () => {
  const { AREAS, areaRuns } = await import('./reliability/mutate.ts');
  const modules = AREAS.flatMap((a) => a.mutate.map((m) => m.split(':')[0]));
  assert.equal(new Set(modules).size, modules.length, 'no module in two areas');
  for (const a of AREAS) for (const f of [...a.mutate.map((m) => m.split(':')[0]!), ...a.tests]) assert.ok(existsSync(f), f);
  assert.deepEqual(areaRuns(['src/cache/store.ts']), [{ area: 'cache', mutate: ['src/cache/store.ts'], tests: AREAS.find((a) => a.area === 'cache')!.tests }]);
  assert.ok(AREAS.find((a) => a.area === 'cache')!.tests.includes('test/units-cache.test.ts'), 'the cache area keeps its own tests');
  assert.deepEqual(areaRuns(['stages/lib/stats.ts', 'src/run/plan.ts:10-20']).map((r) => [r.area, r.mutate]), [['run', ['src/run/plan.ts:10-20']], ['evaluation', ['stages/lib/stats.ts']]]);
  assert.deepEqual(areaRuns(undefined).map((r) => r.area), AREAS.map((a) => a.area));
  assert.throws(() => areaRuns(['src/cli.ts']), /not in any area of test\/reliability\/mutate.ts: src\/cli.ts/);
});
