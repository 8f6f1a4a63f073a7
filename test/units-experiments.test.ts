// Experiments compared in-process: runs of a real sweep recorded by the engine, collected from the
// cache (rows, varying params, metrics and their directions, the best run of each, what changed
// since a past run, series), and rendered as `exp show` / `exp diff` print them. The CLI test
// (engine-experiments) checks the same through `pipeline`; these call the module itself, so that
// mutation testing sees them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectExperiments, flatten, matrixOf, MAX_FLATTEN_DEPTH, parseSeries, sortByMetric, type ExpRow, type ExpTable } from '../src/experiments/collect.ts';
import { diffRows, renderDiff, renderShow } from '../src/experiments/render.ts';
import { Engine, put, scratch } from './helpers/engine.ts';

// acc (higher is better by its name), loss.dev (lower), n (the same everywhere), time (lower by its
// name, but declared higher), and a curve.
const spec = (scale: number) => `params: { scale: ${scale} }
stages:
  train:
    matrix: { lr: [0.1, 0.01] }
    run: [sh, -c, 'mkdir -p "$0" && printf "{\\"acc\\": %s, \\"loss\\": {\\"dev\\": %s}, \\"n\\": 7, \\"time\\": %s, \\"label\\": \\"x\\"}" "$1" "$2" "$1" > "$0/m.json" && printf "epoch,loss,tag\\n1,%s,a\\n2,1,\\n" "$2" > "$0/curve.csv"', '\${outputs.result}', '\${matrix.lr}', '\${params.scale}']
    outs: { result: null }
    metrics: [{ path: result/m.json, higher: [time] }]
    plots: [result/curve.csv]
`;

/** A sweep run with scale 2, then 3: two current rows, two past ones. */
async function sweep(t: { after(f: () => void): void }): Promise<{ table: ExpTable; row: (stage: string, current: boolean) => ExpRow }> {
  const d = scratch(t);
  const e = new Engine(d);
  put(d, 'p.yaml', spec(2));
  assert.equal((await e.run()).ok, true);
  put(d, 'p.yaml', spec(3));
  assert.equal((await e.run()).ok, true);
  const table = await collectExperiments(await e.compile(), e.store);
  return { table, row: (stage, current) => table.rows.find((r) => r.stage === stage && r.current === current)! };
}

test('collect: every run of the sweep, current first; only varying params; metrics with their directions, declared or by name; the best of each; what changed; series', async (t) => {
  const { table, row } = await sweep(t);
  assert.deepEqual(table.rows.map((r) => [r.stage, r.current, r.metrics['loss.dev']]), [
    ['train[lr=0.1]', true, 3],
    ['train[lr=0.1]', false, 2],
    ['train[lr=0.01]', true, 3],
    ['train[lr=0.01]', false, 2],
  ]);
  assert.deepEqual(table.params, ['lr']);
  assert.deepEqual(table.metrics, ['acc', 'loss.dev', 'n', 'time'], 'numbers only: the label is no metric');
  assert.deepEqual(table.direction, { acc: 'max', 'loss.dev': 'min', n: 'max', time: 'max' });
  assert.equal(table.best.acc, row('train[lr=0.1]', true).id);
  assert.equal(table.best['loss.dev'], row('train[lr=0.1]', false).id, 'the first of the equal lowest');
  assert.equal(table.best.time, row('train[lr=0.1]', true).id, 'declared higher: the largest');
  assert.equal(table.best.n, row('train[lr=0.1]', true).id, 'all equal: the first row');
  assert.deepEqual(row('train[lr=0.1]', true).changed, []);
  assert.equal(row('train[lr=0.01]', false).changed.length, 1);
  assert.match(row('train[lr=0.01]', false).changed[0]!, /^command '.* 0\.01 2' -> '.* 0\.01 3'$/);
  assert.deepEqual(row('train[lr=0.01]', true).plots, { 'result/curve.csv': [{ epoch: 1, loss: 3, tag: 'a' }, { epoch: 2, loss: 1, tag: '' }] });
  const r = row('train[lr=0.01]', true);
  assert.deepEqual([r.params.lr, r.id, r.key.startsWith(r.id), r.id.length, r.names, r.sets], [0.01, r.id, true, 8, [], []]);
  assert.ok(Date.parse(r.committedAt) > Date.parse(row('train[lr=0.01]', false).committedAt), 'the current run is the newer');

  // Sorted by a metric: best first by its direction; rows without it last.
  assert.deepEqual(sortByMetric(table, 'loss.dev').map((x) => x.metrics['loss.dev']), [2, 2, 3, 3]);
  assert.deepEqual(sortByMetric(table, 'acc').map((x) => x.metrics.acc), [0.1, 0.1, 0.01, 0.01]);
  const partial = { ...table, rows: [{ ...r, metrics: {} }, ...table.rows] };
  assert.equal(sortByMetric(partial, 'acc').at(-1)!.metrics.acc, undefined);
  assert.equal(sortByMetric({ ...table, rows: [...table.rows, { ...r, metrics: {} }] }, 'acc').at(-1)!.metrics.acc, undefined);
});

test('exp show as a table, Markdown, CSV and JSON: best marked, past runs marked, --only-changed drops constant metrics, cells made printable', async (t) => {
  const { table, row } = await sweep(t);
  const text = renderShow(table, table.rows, 'table', false).split('\n');
  assert.match(text[0]!, /^run\s+stage\s+date\s+from\s+commit\s+lr\s+acc\s+loss\.dev\s+n\s+time\s+changed since$/);
  const past = text.find((l) => l.startsWith(row('train[lr=0.1]', false).id))!;
  assert.match(past, /\(past\)\s+train\[lr=0\.1\]\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+spec\s+-\s+0\.1\s+0\.1\s+2 \*\s+7\s+0\.1\s+command '/);
  assert.match(text.find((l) => l.startsWith(`${row('train[lr=0.1]', true).id} `))!, /0\.1 \*\s+3\s+7 \*\s+0\.1 \*$/);
  assert.equal(text.at(-2), '4 runs of p.yaml; * best (acc higher, loss.dev lower, n higher, time higher)');
  // Columns line up: every row's metric column starts where the header's does.
  const at = text[0]!.indexOf('loss.dev');
  for (const l of text.slice(1, 5)) assert.match(l.slice(at), /^[23] /);
  assert.doesNotMatch(renderShow(table, table.rows, 'table', true).split('\n')[0]!, /\bn\b/);
  assert.match(renderShow(table, table.rows, 'table', true).split('\n')[0]!, /acc\s+loss\.dev\s+time/);

  const md = renderShow(table, sortByMetric(table, 'loss.dev'), 'md', false).split('\n');
  assert.equal(md[0], '| run | stage | date | from | commit | lr | acc | loss.dev | n | time | changed since |');
  assert.equal(md[1], '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  assert.deepEqual(md.slice(2, 6).map((l) => l.split(' | ')[7]), ['2 *', '2', '3', '3']);

  const csv = renderShow(table, table.rows, 'csv', false).trim().split('\n');
  assert.equal(csv[0], 'run,key,stage,current,committed_at,sets,git_commit,git_dirty,names,lr,acc,loss.dev,n,time');
  const first = table.rows[0]!;
  assert.equal(csv[1], `${first.id},${first.key},train[lr=0.1],true,${first.committedAt},[],,,,0.1,0.1,3,7,0.1`);

  const json = JSON.parse(renderShow(table, table.rows.slice(0, 1), 'json', true)) as ExpTable;
  assert.deepEqual([json.rows.length, json.metrics], [1, ['acc', 'loss.dev', 'time']]);

  // What a pulled record may carry: control characters shown as escapes; a comma or quote quoted in CSV; | escaped in Markdown.
  const hostile: ExpRow = { ...first, stage: 'train[lr=\u001b[2J]', names: ['a,"b"|c'], sets: ['x=1'], git: { commit: 'abcdef0123', dirty: true } };
  const t2 = renderShow(table, [hostile], 'table', false);
  assert.doesNotMatch(t2, /\u001b/);
  assert.match(t2, /\\u001b\[2J/);
  assert.match(t2, /--set x=1\s+abcdef0 \(dirty\)/);
  assert.match(renderShow(table, [hostile], 'csv', false), /,"a,""b""\|c",/);
  assert.match(renderShow(table, [hostile], 'md', false), /\[a,"b"\\\|c\]/);
  assert.match(renderShow({ ...table, rows: [] }, [], 'table', false), /p\.yaml: no recorded runs of a stage with metrics/);
  // A long list of --set values is cut; a record older than provenance says '?'.
  assert.match(renderShow(table, [{ ...first, sets: Array.from({ length: 9 }, (_, i) => `k${i}=v`) }], 'table', false), /--set k0=v --set k1=v --set k2=v --set k3=v -\.\.\./);
  assert.match(renderShow(table, [{ ...first, sets: null }], 'table', false).split('\n')[1]!, /\d\d:\d\d\s+\?\s+-/);
  // Numbers: integers as they are, small or large ones in exponent form, others to 4 places.
  const nums = renderShow({ ...table, metrics: ['a', 'b', 'c', 'd'], best: {} }, [{ ...first, metrics: { a: 12, b: 0.00012345, c: 1234567.5, d: 0.123456 } }], 'table', false).split('\n')[1]!;
  assert.match(nums, /\s12\s+1\.234e-4\s+1\.235e\+6\s+0\.1235$/);
});

test('exp diff: params that differ, metric deltas with the better side by direction, other changes; as text and JSON', async (t) => {
  const { table, row } = await sweep(t);
  const d = diffRows(table, row('train[lr=0.1]', true), row('train[lr=0.01]', true), ['code of stages/x.ts changed']);
  assert.deepEqual(d.params, [{ name: 'lr', a: 0.1, b: 0.01 }]);
  assert.deepEqual(d.metrics.map((m) => [m.name, m.a, m.b, m.better]), [['acc', 0.1, 0.01, 'a'], ['time', 0.1, 0.01, 'a']]);
  assert.ok(Math.abs(d.metrics[0]!.delta! + 0.09) < 1e-12, 'delta b - a');
  const past = diffRows(table, row('train[lr=0.1]', false), row('train[lr=0.1]', true), []);
  assert.deepEqual(past.params, []);
  assert.deepEqual(past.metrics.map((m) => [m.name, m.delta, m.better]), [['loss.dev', 1, 'a']], 'loss went up: the past run was better');
  const text = renderDiff(past, false);
  assert.match(text, /^a: \S{8} train\[lr=0\.1\] \(\d{4}-\d\d-\d\d \d\d:\d\d\)\nb: /);
  assert.match(text, /^params: the same$/m);
  assert.match(text, /^loss\.dev\s+2\s+3\s+\+1\s+a$/m);
  assert.doesNotMatch(text, /also differs/);
  assert.match(renderDiff(d, false), /^acc\s+0\.1\s+0\.01\s+-0\.09\s+a$/m);
  assert.match(renderDiff(d, false), /also differs:\n  code of stages\/x\.ts changed\n$/);
  assert.match(renderDiff(d, false), /^lr\s+0\.1\s+0\.01$/m);
  const same = diffRows(table, row('train[lr=0.1]', true), row('train[lr=0.1]', true), []);
  assert.match(renderDiff(same, false), /^metrics: the same$/m);
  // A metric one side lacks: no delta, no better side; one that went up under 'max': b.
  const only = diffRows({ ...table, direction: { ...table.direction, extra: 'max' } }, { ...row('train[lr=0.1]', true), metrics: { extra: 1 } }, { ...row('train[lr=0.1]', true), metrics: { extra: 2, other: 5 } }, []);
  assert.deepEqual(only.metrics.map((m) => [m.name, m.a, m.b, m.delta, m.better]), [['extra', 1, 2, 1, 'b'], ['other', null, 5, null, null]]);
  assert.deepEqual(JSON.parse(renderDiff(only, true)).metrics.length, 2);
});

test('flatten, series and matrix ids: dotted names, numbers only for metrics, nesting cut at its depth; JSON, JSON Lines and CSV series (a line being written left out)', () => {
  assert.deepEqual(flatten({ a: 1, b: { c: 2, d: 'x', e: [1, 2] }, f: null }, () => true), { a: 1, 'b.c': 2, 'b.d': 'x', 'b.e': '[1,2]', f: null });
  assert.deepEqual(flatten({ a: 1, b: { c: 2, d: 'x' } }, (v) => typeof v === 'number', 'm'), { 'm.a': 1, 'm.b.c': 2 });
  assert.deepEqual(Object.keys(flatten({ z: 1, a: 2, m: { b: 3 } }, () => true)), ['z', 'a', 'm.b'], 'in the order of the keys');
  let deep: Record<string, unknown> = { v: 1 };
  for (let i = 0; i < MAX_FLATTEN_DEPTH + 5; i++) deep = { d: deep, top: i };
  const flat = flatten(deep, () => true);
  assert.equal(flat.top, MAX_FLATTEN_DEPTH + 4);
  assert.equal(Object.keys(flat).length, MAX_FLATTEN_DEPTH, 'one number per level down to the depth bound');
  assert.deepEqual(flatten(7, () => true), {}, 'a bare value has no name');

  assert.deepEqual(parseSeries('[{"a":1}]'), [{ a: 1 }]);
  assert.deepEqual(parseSeries('{"a":1}\n{"a":2}\n'), [{ a: 1 }, { a: 2 }]);
  assert.deepEqual(parseSeries('{"a":1}\n{"a":2}\n{"a":', true), [{ a: 1 }, { a: 2 }]);
  assert.deepEqual(parseSeries('{"a":1}\n{"a":2}', true), [{ a: 1 }], 'no newline yet: the last line may be cut');
  assert.equal(parseSeries('{"a":1}\n{"a":'), undefined);
  assert.equal(parseSeries('[{"a":'), undefined);
  assert.deepEqual(parseSeries('x,y\n1,a\n2.5,\n'), [{ x: 1, y: 'a' }, { x: 2.5, y: '' }]);
  assert.deepEqual(parseSeries('x,y\r\n1,2\r\n3,4,5'), [{ x: 1, y: 2 }, { x: 3, y: 4, c2: 5 }]);
  assert.deepEqual(parseSeries('x,y\n1,2\n3,', true), [{ x: 1, y: 2 }]);
  assert.deepEqual(parseSeries(''), []);
  assert.deepEqual(parseSeries('x,y\n'), []);

  assert.deepEqual(matrixOf('train[lr=0.1,mode=joint,w=,e=1e-3]'), { lr: 0.1, mode: 'joint', w: '', e: 0.001 });
  assert.deepEqual(matrixOf('train'), {});
  assert.deepEqual(matrixOf('train[novalue,a=b=c]'), { a: 'b=c' });
});
