// Experiments that last and say where they came from, through the real CLI: each run records its
// git commit (and whether tracked files were dirty) and its --set values; `exp show` takes as current
// the run the spec (with the command's own --set values) is served from now, not the latest run;
// `exp save` / `run --name` keep runs past gc until `exp forget`; a metric's direction can be declared.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import type { ExpRow } from '../src/experiments/collect.ts';
import { Workspace } from './helpers/workspace.ts';

/** Two variants, each writing metrics (m.json) and a series (curve.csv); `declare`: its metrics:/plots: lines. */
const spec = (scale: number, metrics = '[result/m.json]', declare = `metrics: ${metrics}`) => `params: { scale: ${scale} }
stages:
  train:
    matrix: { lr: [0.1, 0.01] }
    run: [sh, -c, 'mkdir -p "$0" && printf "{\\"acc\\": %s, \\"loss\\": {\\"dev\\": %s}, \\"n\\": 7}" "$1" "$2" > "$0/m.json" && printf "epoch,loss,acc\\n1,%s,0.5\\n2,1,%s\\n" "$2" "$1" > "$0/curve.csv"', '\${outputs.result}', '\${matrix.lr}', '\${params.scale}']
    outs: { result: null }
    ${declare}
`;

interface Table {
  rows: ExpRow[];
  best: Record<string, string>;
  direction: Record<string, string>;
}

function git(ws: Workspace, ...args: string[]): string {
  const r = spawnSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.org', ...args], { cwd: ws.dir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

function show(ws: Workspace, ...args: string[]): Table {
  const r = ws.run('exp', 'show', 'p.yaml', '--json', ...args);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Table;
}

const rowsOf = (t: Table, stage: string) => t.rows.filter((r) => r.stage === stage);

test('runs record their git commit and --set values; exp show tells the spec\'s current runs from --set runs and past ones', (t) => {
  const ws = new Workspace({ 'p.yaml': spec(2), 'notes.txt': 'a\n', '.gitignore': 'cache/\nresult*/\n' });
  t.after(() => ws.dispose());
  git(ws, 'init', '-q');
  git(ws, 'add', '-A');
  git(ws, 'commit', '-q', '-m', 'first');
  const head = git(ws, 'rev-parse', 'HEAD');
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  // A longer --set run afterwards, from a tree with an uncommitted edit to a tracked file.
  ws.write('notes.txt', 'b\n');
  const set = ws.run('run', 'p.yaml', '--set', 'scale=3');
  assert.equal(set.code, 0, set.stderr);

  const plain = rowsOf(show(ws), 'train[lr=0.1]');
  assert.equal(plain.length, 2);
  const spec2 = plain.find((r) => r.metrics['loss.dev'] === 2)!;
  const set3 = plain.find((r) => r.metrics['loss.dev'] === 3)!;
  assert.equal(spec2.current, true, 'the spec as written is served from its own run, not the later --set one');
  assert.deepEqual(spec2.sets, []);
  assert.deepEqual(spec2.git, { commit: head, dirty: false });
  assert.equal(set3.current, false);
  assert.deepEqual(set3.sets, ['scale=3']);
  assert.deepEqual(set3.git, { commit: head, dirty: true });
  const text = ws.run('exp', 'show', 'p.yaml').stdout;
  assert.match(text, new RegExp(`^${set3.id} \\(past\\)\\s+train\\[lr=0\\.1\\]\\s+\\S+ \\S+\\s+--set scale=3\\s+${head.slice(0, 7)} \\(dirty\\)`, 'm'));
  assert.match(text, new RegExp(`^${spec2.id}\\s+train\\[lr=0\\.1\\]\\s+\\S+ \\S+\\s+spec\\s+${head.slice(0, 7)}\\s`, 'm'));

  // Asked with the same --set values, that run is the current one.
  const withSet = rowsOf(show(ws, '--set', 'scale=3'), 'train[lr=0.1]');
  assert.deepEqual(withSet.map((r) => [r.metrics['loss.dev'], r.current]).sort(), [[2, false], [3, true]]);
  // A spec edited since: no run is current (the stage is stale), and each row says how it differs.
  ws.write('p.yaml', spec(5));
  const stale = rowsOf(show(ws), 'train[lr=0.1]');
  assert.ok(stale.every((r) => !r.current), JSON.stringify(stale.map((r) => r.current)));
  assert.deepEqual(stale.map((r) => r.changed.length > 0).sort(), [false, true], 'the older run explained against the latest one');
});

test('exp save keeps a spec\'s current runs past gc and labels them; exp forget lets them go; run --name saves what it ran', (t) => {
  const ws = new Workspace({ 'p.yaml': spec(2) });
  t.after(() => ws.dispose());
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  const saved = ws.run('exp', 'save', 'baseline', 'p.yaml');
  assert.equal(saved.code, 0, saved.stderr);
  assert.match(saved.stdout, /saved experiment 'baseline': 2 runs of p\.yaml/);
  // The spec moves on; gc would remove the old runs, but the name keeps them.
  ws.write('p.yaml', spec(5));
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  assert.equal(ws.run('gc').code, 0);
  const kept = show(ws).rows.filter((r) => r.metrics['loss.dev'] === 2);
  assert.equal(kept.length, 2, 'both named runs survive gc');
  assert.ok(kept.every((r) => r.names.includes('baseline') && !r.current), JSON.stringify(kept.map((r) => [r.names, r.current])));
  assert.match(ws.run('exp', 'show', 'p.yaml').stdout, /\[baseline\] \(past\)/);

  const forgot = ws.run('exp', 'forget', 'baseline');
  assert.equal(forgot.code, 0, forgot.stderr);
  assert.equal(ws.run('gc').code, 0);
  assert.deepEqual(show(ws).rows.map((r) => r.metrics['loss.dev']), [5, 5], 'forgotten, the old runs go with the next gc');
  assert.equal(ws.run('exp', 'forget', 'baseline').code, 2, 'forgetting a name twice says there is none');

  const named = ws.run('run', 'p.yaml', '--set', 'scale=7', '--name', 'wide');
  assert.equal(named.code, 0, named.stderr);
  assert.match(named.stdout, /saved as experiment 'wide' \(2 runs/);
  assert.equal(ws.run('gc').code, 0);
  const wide = show(ws).rows.filter((r) => r.metrics['loss.dev'] === 7);
  assert.equal(wide.length, 2, 'kept past gc although the spec is not served from them');
  assert.ok(wide.every((r) => r.names.includes('wide')), JSON.stringify(wide.map((r) => r.names)));

  const bad = ws.run('exp', 'save', '../escape', 'p.yaml');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /'\.\.\/escape' is not a usable experiment name/);
  assert.ok(!ws.exists('cache/escape.json') && !ws.exists('escape.json'), 'nothing written for a refused name');
});

test('a metric\'s direction declared in the spec overrides the guess from its name; one declared both ways is an error', (t) => {
  const ws = new Workspace({ 'p.yaml': spec(2, "[{ path: result/m.json, lower: [acc], higher: ['loss.*'] }]") });
  t.after(() => ws.dispose());
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  const table = show(ws);
  assert.deepEqual(table.direction, { acc: 'min', 'loss.dev': 'max', n: 'max' });
  const lr001 = table.rows.find((r) => r.stage === 'train[lr=0.01]')!;
  assert.equal(table.best.acc, lr001.id, 'lower acc wins, as declared');
  assert.match(ws.run('exp', 'show', 'p.yaml').stdout, /acc lower, loss\.dev higher, n higher/);

  ws.write('p.yaml', spec(2, '[{ path: result/m.json, lower: [acc], higher: [acc] }]'));
  const both = ws.run('validate', 'p.yaml');
  assert.equal(both.code, 2, both.stderr);
  assert.match(both.stderr, /p\.yaml:\d+:\d+: .*metric 'acc' declared both lower and higher is better/);
});

test('plots show overlays every run\'s declared series in one self-contained page; plots diff two runs', (t) => {
  const ws = new Workspace({ 'p.yaml': spec(2, undefined, 'plots: [result/curve.csv]') });
  t.after(() => ws.dispose());
  assert.equal(ws.run('run', 'p.yaml').code, 0);
  assert.equal(ws.run('run', 'p.yaml', '--set', 'scale=3').code, 0);
  const r = ws.run('plots', 'show', 'p.yaml', '--set', 'scale=3', '--out', 'out/plots.html');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /out\/plots\.html: 1 chart of 4 runs/);
  const html = ws.read('out/plots.html');
  assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/, 'no script, nothing fetched');
  const svg = html.slice(html.indexOf('<svg'), html.lastIndexOf('</svg>'));
  for (const panel of ['loss', 'acc']) assert.ok(svg.includes(`>${panel}</text>`), `a panel for ${panel}`);
  assert.ok(svg.includes('>epoch</text>'), 'x is the epoch column');
  // One line per run in each panel: 4 runs x 2 panels, each line the runs' own values.
  assert.equal((svg.match(/aria-roledescription="line mark"/g) ?? []).length, 8);
  const ids = (JSON.parse(ws.run('exp', 'show', 'p.yaml', '--json').stdout) as Table).rows.map((row) => row.id);
  for (const id of ids) assert.ok(svg.includes(`>${id} train[`), `${id} in the legend`);

  const d = ws.run('plots', 'diff', 'p.yaml', ids[0]!, ids[1]!);
  assert.equal(d.code, 0, d.stderr);
  const two = ws.read('plots.html');
  assert.equal((two.match(/aria-roledescription="line mark"/g) ?? []).length, 4, 'two runs, two panels');
  assert.ok(!two.includes(`>${ids[2]} `) && !two.includes(`>${ids[3]} `), 'only the two runs asked for');

  const outside = ws.run('plots', 'show', 'p.yaml', '--out', '../escape.html');
  assert.equal(outside.code, 2, outside.stderr);
});

test('plots show --live draws a stage\'s series while it runs (from another process), then the finished run', async (t) => {
  const ws = new Workspace();
  t.after(() => ws.dispose());
  // Writes a row every 0.1 s until the test drops the stop file.
  ws.write('p.yaml', `stages:
  train:
    run: [sh, -c, 'mkdir -p "$0"; i=0; while [ ! -f "$1" ]; do i=$((i+1)); printf "{\\"step\\": %s, \\"loss\\": %s}\\n" $i $((100-i)) >> "$0/curve.jsonl"; sleep 0.1; [ $i -gt 900 ] && exit 3; done; true', '\${outputs.result}', '${ws.path('stop')}']
    outs: { result: null }
    plots: [result/curve.jsonl]
`);
  const run = ws.start('run', 'p.yaml');
  t.after(() => { try { process.kill(-run.child.pid!, 'SIGKILL'); } catch { /* ended */ } });
  let seen = '';
  let points = 0;
  for (let i = 0; i < 300 && points < 3; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const live = ws.run('plots', 'show', 'p.yaml', '--live');
    assert.equal(live.code, 0, live.stderr);
    seen = live.stdout;
    if (!/\(1 running\)/.test(seen)) continue;
    const html = ws.read('plots.html');
    assert.match(html, /train \(running\)/);
    points = (html.match(/aria-roledescription="point"/g) ?? []).length;
  }
  assert.ok(points >= 3, `the running stage's rows so far were drawn (${seen.trim()}; ${points} points)`);
  assert.match(ws.run('plots', 'show', 'p.yaml').stdout, /0 charts of 0 runs/, 'without --live, only recorded runs');
  ws.write('stop', '');
  const done = await run.done;
  assert.equal(done.code, 0, done.stderr);
  const after = ws.run('plots', 'show', 'p.yaml', '--live');
  assert.match(after.stdout, /1 chart of 1 run$/m);
  assert.doesNotMatch(ws.read('plots.html'), /\(running\)/);
});
