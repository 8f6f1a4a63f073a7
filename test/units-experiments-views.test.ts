// `exp show` / `exp diff` text pinned whole (tables built by hand: every column, cut and mark is
// compared, not matched), and the collection's edge cases: the best run when the first row lacks
// a metric, a current run older than a past one, metrics of several files, declared directions
// with wildcards, runs of other specs and of stages without metrics, names, stale variants, and
// a stage still running (`--live`). units-experiments covers the ordinary sweep.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { collectExperiments, liveRows, matrixOf, metricDirection, parseSeries, sortByMetric, type ExpRow, type ExpTable } from '../src/experiments/collect.ts';
import { diffRows, renderDiff, renderShow } from '../src/experiments/render.ts';
import { Engine, put, scratch } from './helpers/engine.ts';

function row(id: string, o: Partial<ExpRow> = {}): ExpRow {
  return { id, key: `${id}${'0'.repeat(32 - id.length)}`, stage: 'train', current: true, committedAt: '2026-12-01T10:20:30.000Z', sets: [], git: null, names: [], params: {}, metrics: {}, changed: [], plots: {}, ...o };
}
function table(rows: ExpRow[], o: Partial<ExpTable> = {}): ExpTable {
  return { spec: 'p.yaml', rows, params: [], metrics: [], best: {}, direction: {}, ...o };
}

test('exp show as text, whole: columns padded to the widest cell, the last unpadded; best marked; past, running and named runs; long --set lists and changes cut', () => {
  const a = row('aaaa1111', { params: { lr: 0.1 }, metrics: { acc: 0.5, loss: 2 }, names: ['best', 'paper'], git: { commit: '0123456789abcdef', dirty: false } });
  const b = row('bbbb2222', { current: false, params: { lr: 0.01 }, metrics: { acc: 0.75 }, sets: ['lr=0.01', `tag=${'x'.repeat(40)}`], changed: ['c1', 'x'.repeat(61), 'c3', 'c4'], git: { commit: 'fedcba9876543210', dirty: true } });
  const t = table([a, b], { params: ['lr'], metrics: ['acc', 'loss'], best: { acc: 'bbbb2222', loss: 'aaaa1111' }, direction: { acc: 'max', loss: 'min' } });
  assert.equal(
    renderShow(t, t.rows, 'table', false),
    [
      'run                     stage  date              from                                              commit           lr    acc     loss  changed since',
      'aaaa1111 [best, paper]  train  2026-12-01 10:20  spec                                              0123456          0.1   0.5     2 *',
      `bbbb2222 (past)         train  2026-12-01 10:20  --set lr=0.01 --set tag=xxxxxxxxxxxxxxxxxxxxx...  fedcba9 (dirty)  0.01  0.75 *  -     c1; ${'x'.repeat(57)}...; c3; +1 more`,
      '2 runs of p.yaml; * best (acc higher, loss lower)',
      '',
    ].join('\n'),
  );
  // Exactly 48 characters of --set values are shown whole; three changes, each of 60, whole, no "more".
  const c = row('cccc3333', { sets: [`k=${'v'.repeat(40)}`], changed: ['y'.repeat(60), 'b', 'c'] });
  assert.equal(`--set k=${'v'.repeat(40)}`.length, 48);
  const one = renderShow(table([c]), [c], 'table', false).split('\n');
  assert.match(one[1]!, new RegExp(`--set k=v{40}  -       ${'y'.repeat(60)}; b; c$`));
  assert.equal(one[2], '1 run of p.yaml; * best (no metrics)');
  // A running row: its progress in the last column, whose header says so.
  const r = row('dddd4444', { running: true, current: false, progress: 'running since 10:20:30: step 3' });
  const live = renderShow(table([r, a]), [r, a], 'table', false).split('\n');
  assert.match(live[0]!, /  changed since \/ progress$/);
  assert.match(live[1]!, /^dddd4444 \(running\) .* running since 10:20:30: step 3$/);
  assert.match(renderShow(table([a]), [a], 'table', false).split('\n')[0]!, /  changed since$/);
});

test('exp show as Markdown and CSV, whole: the best marked in Markdown only; CSV quotes what needs it and leaves empty what is absent', () => {
  const a = row('aaaa1111', { params: { lr: 0.1, tags: ['a', 'b'], mode: 'x,y' }, metrics: { acc: 0.5 }, names: ['n1', 'n2'], git: { commit: '0123456789', dirty: true } });
  const b = row('bbbb2222', { current: false, sets: null, params: {}, metrics: {} });
  const t = table([a, b], { params: ['lr', 'tags', 'mode'], metrics: ['acc'], best: { acc: 'aaaa1111' }, direction: { acc: 'max' } });
  assert.equal(
    renderShow(t, t.rows, 'md', false),
    '| run | stage | date | from | commit | lr | tags | mode | acc | changed since |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n| aaaa1111 [n1, n2] | train | 2026-12-01 10:20 | spec | 0123456 (dirty) | 0.1 | ["a","b"] | x,y | 0.5 * |  |\n| bbbb2222 (past) | train | 2026-12-01 10:20 | ? | - | - | - | - | - |  |\n\n2 runs of p.yaml; * best (acc higher)\n',
  );
  assert.equal(
    renderShow(t, t.rows, 'csv', false),
    `run,key,stage,current,committed_at,sets,git_commit,git_dirty,names,lr,tags,mode,acc\naaaa1111,${a.key},train,true,2026-12-01T10:20:30.000Z,[],0123456789,true,n1 n2,0.1,"[""a"",""b""]","x,y",0.5\nbbbb2222,${b.key},train,false,2026-12-01T10:20:30.000Z,,,,,,,,\n`,
  );
  // --only-changed drops a metric equal in every row (absent counts as a value).
  const same = table([row('a1', { metrics: { n: 1, m: 1 } }), row('a2', { metrics: { n: 1 } })], { metrics: ['n', 'm'] });
  assert.match(renderShow(same, same.rows, 'table', true).split('\n')[0]!, /commit {2}m {2}changed since$/);
});

test('numbers as exp show prints them: integers whole, 1e-3 up to 1e6 to 4 places without trailing zeros, others in exponent form; null and absent as -', () => {
  const cell = (v: unknown) => renderShow(table([row('r', { params: { v } })], { params: ['v'] }), [row('r', { params: { v } })], 'md', false).split('\n')[2]!.split(' | ')[5];
  assert.deepEqual([12, -3, 0.001, 0.0009999, 999999.5, 1e6 + 0.5, 0.10000, 2.5, -0.25, 1.23456789, 2.00001, null, undefined, 'text', [1]].map(cell), ['12', '-3', '0.001', '9.999e-4', '999999.5', '1.000e+6', '0.1', '2.5', '-0.25', '1.2346', '2', '-', '-', 'text', '[1]']);
});

test('exp diff as text, whole: params and metrics tables, the sign of each change, the better side by direction (max when unknown), other differences', () => {
  const a = row('aaaa1111', { params: { lr: 0.1, bs: 16 }, metrics: { acc: 0.5, loss: 2, same: 1, gone: 3 } });
  const b = row('bbbb2222', { params: { lr: 0.2, bs: 16 }, metrics: { acc: 0.25, loss: 1, same: 1, unknown: 4 }, committedAt: '2026-12-02T11:00:00.000Z' });
  const t = table([a, b], { direction: { acc: 'max', loss: 'min' } });
  const d = diffRows(t, a, b, ['code of train.py changed']);
  assert.equal(
    renderDiff(d, false),
    [
      'a: aaaa1111 train (2026-12-01 10:20)',
      'b: bbbb2222 train (2026-12-02 11:00)',
      '',
      'param  a    b',
      'lr     0.1  0.2',
      '',
      'metric   a    b     b - a  better',
      'acc      0.5  0.25  -0.25  a',
      'loss     2    1     -1     b',
      'gone     3    -     -      -',
      'unknown  -    4     -      -',
      '',
      'also differs:',
      '  code of train.py changed',
      '',
    ].join('\n'),
  );
  // Up under an unknown direction (max): b; no change at all: no side; the same everything: said so.
  const up = diffRows(table([]), row('a', { metrics: { x: 1, z: 2 } }), row('b', { metrics: { x: 3, z: 2 } }), []);
  assert.deepEqual(up.metrics, [{ name: 'x', a: 1, b: 3, delta: 2, better: 'b' }]);
  assert.match(renderDiff(up, false), /^x       1  3  \+2     b$/m);
  const zero = diffRows(table([]), row('a', { metrics: { x: 0.1 + 0.2 } }), row('b', { metrics: { x: 0.30000000000000004 } }), []);
  assert.deepEqual(zero.metrics, []);
  const flat = diffRows(table([], { direction: { x: 'min' } }), row('a', { metrics: { x: 1 } }), row('b', { metrics: { x: 1 + 1e-15 } }), []);
  assert.equal(flat.metrics[0]!.better, 'a', 'min: a smaller value is better, however small the difference');
  assert.equal(renderDiff(diffRows(table([]), a, a, []), false), 'a: aaaa1111 train (2026-12-01 10:20)\nb: aaaa1111 train (2026-12-01 10:20)\n\nparams: the same\n\nmetrics: the same\n');
});

test('sorting by a metric: best first by its direction, equal values in their order, rows without it last in theirs', () => {
  const rows = [row('u1'), row('m2', { metrics: { m: 2 } }), row('u2'), row('m1', { metrics: { m: 1 } }), row('m2b', { metrics: { m: 2 } })];
  assert.deepEqual(sortByMetric(table(rows, { direction: { m: 'min' } }), 'm').map((r) => r.id), ['m1', 'm2', 'm2b', 'u1', 'u2']);
  assert.deepEqual(sortByMetric(table(rows, { direction: { m: 'max' } }), 'm').map((r) => r.id), ['m2', 'm2b', 'm1', 'u1', 'u2']);
  assert.deepEqual(sortByMetric(table(rows), 'm').map((r) => r.id), ['m2', 'm2b', 'm1', 'u1', 'u2'], 'no direction: higher first');
});

test('metric names: lower is better for losses, errors, p-values and times, in any case and inside a name; matrix ids and series at their edges', () => {
  for (const n of ['loss', 'val_Loss', 'MSE', 'rmse', 'mae', 'error_rate', 'err', 'p', 'test.p', 'p_value', 'pvalue', 'seconds', 'Time', 'duration_s']) assert.equal(metricDirection(n), 'min', n);
  for (const n of ['acc', 'ccc', 'pearson', 'top', 'errand', 'step', 'values']) assert.equal(metricDirection(n), 'max', n);
  assert.deepEqual(matrixOf('t[a=1]x'), {}, 'the matrix part ends the id');
  assert.deepEqual(parseSeries('  [{"a":1}]  '), [{ a: 1 }]);
  assert.deepEqual(parseSeries('{"a":1}\n   \n{"a":2}\n', true), [{ a: 1 }, { a: 2 }], 'a finished file: every line, blank ones skipped');
  assert.deepEqual(parseSeries('x\n\n1\n2\n', true), [{ x: 1 }, { x: 2 }]);
  assert.deepEqual(parseSeries('x\r\n1\r\n'), [{ x: 1 }]);
  assert.deepEqual(parseSeries('\nx\n1\n2', true), [{ x: 1 }], 'a CSV being written: its unfinished last line left out');
});

const SPEC = (extra = '') => `stages:
  train:
    matrix: { lr: [0.1, 0.5] }
    run: [sh, -c, 'mkdir -p "$0" && printf "{\\"acc\\": %s, \\"big\\": 1e400, \\"dev\\": {\\"p.value\\": 0.2, \\"pxvalue\\": 0.3}}" "$1" > "$0/a.json" && printf "{\\"time_s\\": %s}" "$1" > "$0/b.json" && echo "not json" > "$0/c.json"', '\${outputs.result}', '\${matrix.lr}']
    outs: { result: null }
    metrics: [result/a.json, { path: result/b.json, higher: ['time_*'] }, result/c.json, { path: result/a.json, lower: ['dev.p.value'] }]
  plain:
    run: [sh, -c, 'echo 1 > "$0"', '\${outputs.o}']
    outs: { o: null }
${extra}`;

test('collect: metrics of several files named by file; declared directions with wildcards, dots meant literally; non-finite numbers and non-JSON files left out; stages without metrics and other specs not listed', async (t) => {
  const d = scratch(t);
  const e = new Engine(d);
  put(d, 'p.yaml', SPEC());
  put(d, 'q.yaml', SPEC());
  assert.equal((await e.run()).ok, true);
  assert.equal((await e.run('q.yaml')).ok, true);
  const tbl = await collectExperiments(await e.compile(), e.store);
  assert.deepEqual(tbl.rows.map((r) => r.stage), ['train[lr=0.1]', 'train[lr=0.5]'], 'one spec, stages with metrics only');
  assert.deepEqual(tbl.metrics, ['a.acc', 'a.dev.p.value', 'a.dev.pxvalue', 'b.time_s']);
  assert.deepEqual(tbl.direction, { 'a.acc': 'max', 'a.dev.p.value': 'min', 'a.dev.pxvalue': 'max', 'b.time_s': 'max' });
  assert.equal(tbl.best['b.time_s'], tbl.rows[1]!.id, 'declared higher: the later row, larger');
  assert.equal(tbl.best['a.acc'], tbl.rows[1]!.id, 'a later row with a higher value wins');
});

test('collect: a current run older than a past one still comes first; stale variants are explained against the latest; names from --name and saved names, once each; the best skips rows without the metric', async (t) => {
  const d = scratch(t);
  const e = new Engine(d);
  const one = (v: number, extra = '') => `stages:\n  s:\n    run: [sh, -c, 'mkdir -p "$0" && printf "{\\"m\\": ${v}${extra}}" > "$0/m.json"', '\${outputs.r}']\n    outs: { r: null }\n    metrics: [r/m.json]\n`;
  put(d, 'p.yaml', one(1));
  assert.equal((await e.run('p.yaml', { name: 'first' })).ok, true);
  put(d, 'p.yaml', one(2, ', \\"k\\": 5'));
  assert.equal((await e.run()).ok, true);
  // Two more past runs: the records are listed in the folder's order, which puts the current one
  // first only now and then (an order that hides a sort that does not put it first).
  for (const v of [0, -1]) {
    put(d, 'p.yaml', one(v));
    assert.equal((await e.run()).ok, true);
  }
  put(d, 'p.yaml', one(1));
  assert.equal((await e.run('p.yaml', { name: 'first' })).ok, true, 'served from the cache: the older run is current again');
  const first = (await e.store.readLatest(d, 'p.yaml')).get('s')!.key;
  const tbl = await collectExperiments(await e.compile(), e.store, undefined, new Map([[first, ['saved', 'first']]]));
  assert.deepEqual(tbl.rows.map((r) => [r.current, r.metrics.m]), [[true, 1], [false, -1], [false, 0], [false, 2]], 'the current run, then the newest first');
  assert.deepEqual(tbl.rows[0]!.names, ['saved', 'first']);
  assert.deepEqual(tbl.rows[1]!.names, []);
  assert.equal(tbl.best.k, tbl.rows[3]!.id, 'the only row with k, though not the first');
  assert.equal(tbl.best.m, tbl.rows[3]!.id);
  assert.match(tbl.rows[3]!.changed.join('\n'), /command/, 'a past run is explained against the current one');
  // Asked with keys that name no run of the stage (a stale variant): the latest is the base.
  const stale = await collectExperiments(await e.compile(), e.store, new Map([['s', 'f'.repeat(32)]]));
  assert.deepEqual(stale.rows.map((r) => r.current), [false, false, false, false]);
  assert.deepEqual(stale.rows.find((r) => r.key === first)!.changed, []);
  assert.deepEqual(stale.rows.filter((r) => r.key !== first).map((r) => r.changed.length), [1, 1, 1]);
});

test('a module stage\'s params are columns; a stage running now is a live row with its series so far and its last values', async (t) => {
  const d = scratch(t);
  const e = new Engine(d);
  put(d, 'stages/slow.ts', `import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineStage } from 'rrtn-pipeline';
export default defineStage({
  params: { type: 'object', properties: { depth: { type: 'number', default: 3 }, opt: { type: 'object', default: { lr: 0.5 } } } },
  outputs: ['r'],
  async run(ctx) {
    mkdirSync(ctx.outputs.r, { recursive: true });
    appendFileSync(join(ctx.outputs.r, 'curve.jsonl'), JSON.stringify({ step: 1, loss: 0.123456, tag: 'x' }) + '\\n');
    writeFileSync(join(ctx.outputs.r, 'm.json'), JSON.stringify({ acc: 0.5 }));
    while (!existsSync(join(ctx.workspace, 'release'))) await new Promise((r) => setTimeout(r, 20));
  },
});
`);
  put(d, 'p.yaml', 'stages:\n  slow:\n    uses: stages/slow.ts\n    executor: inline\n    metrics: [r/m.json]\n    plots: [r/curve.jsonl]\n');
  const p = await e.compile();
  const running = e.run();
  let live: ExpRow[] = [];
  // Until the stage has written its first series row and its metrics (it is listed from its start).
  for (let i = 0; i < 500 && !(live.length && Object.keys(live[0]!.plots).length && Object.keys(live[0]!.metrics).length); i++) {
    await new Promise((r) => setTimeout(r, 20));
    live = await liveRows(p, e.cache);
  }
  writeFileSync(join(d, 'release'), '');
  assert.equal((await running).ok, true);
  assert.equal(live.length, 1, 'the running stage is a live row');
  const l = live[0]!;
  assert.deepEqual([l.stage, l.running, l.current, l.metrics, l.plots], ['slow', true, false, { acc: 0.5 }, { 'r/curve.jsonl': [{ step: 1, loss: 0.123456, tag: 'x' }] }]);
  assert.match(l.progress!, /^running since \d\d:\d\d:\d\d: step 1, loss 0\.1235$/);
  assert.deepEqual(l.params, { depth: 3, 'opt.lr': 0.5 });
  assert.deepEqual(await liveRows(p, e.cache), [], 'nothing runs now');
  const done = await collectExperiments(p, e.store);
  assert.deepEqual(done.rows[0]!.params, { depth: 3, 'opt.lr': 0.5, seed: done.rows[0]!.params.seed });
});
