// The evaluation report as a reader sees it: a small real pipeline (synthetic corpus to evaluation,
// two models, two epochs) writes report.html, which headless Chromium (Debian's, driven by
// puppeteer-core) opens from disk: no console errors, no network requests, every chart present
// and drawn, every model in each legend, axes titled, legends clear of the plots. The screenshot
// is kept as a test artifact in reports/report-screenshot.png.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { CHROMIUM, NEEDS, needs } from './helpers/provision.ts';
import { ROOT, Workspace } from './helpers/workspace.ts';
import { tinyRrtnSpec } from './helpers/fixtures.ts';

// The training curves declared as series too, for `pipeline plots show`'s page.
const SPEC = tinyRrtnSpec('{ mode: [vanilla, joint] }').replace('    uses: stages/twin-train.ts\n', '    uses: stages/twin-train.ts\n    plots: [result/metrics.jsonl]\n');

interface Chart {
  id: string;
  width: number;
  texts: string[];
  height: number;
  marks: number;
  legend: string[];
  axisTitles: string[];
  legendOverlapsPlot: boolean;
}

test('report.html renders in headless Chromium: no errors, every chart drawn with every model, axes titled', { ...needs('chromium'), timeout: 240_000 }, async (t) => {
  assert.ok(NEEDS.chromium.present(), `no Chromium at ${CHROMIUM}: apt-get install ${NEEDS.chromium.packages.join(' ')}`);
  const ws = new Workspace({ 'p.yaml': SPEC });
  t.after(() => ws.dispose());
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 0, r.stderr);

  const { default: puppeteer } = await import('puppeteer-core');
  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  t.after(() => browser.close());
  const page = await browser.newPage();
  const errors: string[] = [];
  const external: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warn') errors.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${String(e)}`));
  page.on('request', (req) => {
    if (!req.url().startsWith('file:')) external.push(req.url());
  });
  await page.setViewport({ width: 1200, height: 900 });
  await page.goto(pathToFileURL(ws.path('results/report/report.html')).href, { waitUntil: 'load' });
  const charts = (await page.$$eval('figure.chart', (figs) =>
    figs.map((f) => {
      const svg = f.querySelector('svg');
      const box = svg?.getBoundingClientRect();
      const legend = svg?.querySelector('.role-legend');
      const lb = legend?.getBoundingClientRect();
      // What the plots draw: every mark group and axis, in page coordinates.
      const frames = [...(svg?.querySelectorAll('.role-mark, .role-axis') ?? [])].map((g) => g.getBoundingClientRect());
      const overlaps = !!lb && frames.some((fb) => lb.left < fb.right && fb.left < lb.right && lb.top < fb.bottom && fb.top < lb.bottom);
      return {
        id: f.id,
        width: box?.width ?? 0,
        height: box?.height ?? 0,
        marks: svg ? svg.querySelectorAll('.mark-line path, .mark-rect path, .mark-symbol path, .mark-rule line').length : 0,
        legend: [...(svg?.querySelectorAll('.role-legend-label text') ?? [])].map((x) => x.textContent ?? ''),
        axisTitles: [...(svg?.querySelectorAll('.role-axis-title text') ?? [])].map((x) => x.textContent ?? ''),
        texts: [...(svg?.querySelectorAll('text') ?? [])].map((x) => x.textContent ?? ''),
        legendOverlapsPlot: overlaps,
      };
    }),
  )) as Chart[];
  mkdirSync(join(ROOT, 'reports'), { recursive: true });
  await page.screenshot({ path: join(ROOT, 'reports', 'report-screenshot.png'), fullPage: true });

  assert.deepEqual(errors, [], 'no console errors or warnings');
  assert.deepEqual(external, [], 'no network requests: the page is self-contained');
  assert.deepEqual(charts.map((c) => c.id), ['curves', 'per-emotion']);
  const models = ['mode=vanilla', 'mode=joint'];
  for (const c of charts) {
    assert.ok(c.width > 300 && c.height > 150, `${c.id}: drawn at ${c.width} x ${c.height}`);
    assert.deepEqual([...c.legend].sort(), [...models].sort(), `${c.id}: every model in the legend`);
    assert.equal(c.legendOverlapsPlot, false, `${c.id}: the legend sits clear of the plots`);
  }
  // Curves: 3 panels x 2 models lines; per emotion: 10 emotions x 2 models bars and whiskers.
  assert.ok(charts[0]!.marks >= 6, `curves: ${charts[0]!.marks} marks`);
  assert.ok(charts[1]!.marks >= 40, `per-emotion: ${charts[1]!.marks} marks`);
  assert.deepEqual(charts[0]!.axisTitles.filter((x) => x === 'epoch').length, 3);
  assert.ok(charts[0]!.axisTitles.includes('CCC (−1 to 1)'), "charts[0]!.axisTitles.includes('CCC (−1 to 1)')");
  assert.ok(charts[1]!.axisTitles.includes('dev CCC (−1 to 1), whiskers: 95 % CI'), "charts[1]!.axisTitles.includes('dev CCC (−1 to 1), whiskers: 95 % CI')");
  // One panel per emotion, titled, wrapped to fit the page (1,200 px wide here).
  assert.ok(charts[1]!.texts.includes('emotion') && charts[1]!.texts.includes('Awe') && charts[1]!.texts.includes('Surprise'), charts[1]!.texts.join(' | '));
  for (const c of charts) assert.ok(c.width <= 1100, `${c.id}: ${c.width} px wide, past the page's column`);
  for (const c of charts) assert.ok(c.legend.every((l) => !l.endsWith('…')), `${c.id}: legend labels whole: ${c.legend.join(', ')}`);

  // `pipeline plots show`: the same checks on its page (the runs' metrics.jsonl overlaid).
  assert.ok(SPEC.includes('plots: [result/metrics.jsonl]'), 'the fixture still has the train stage this inserts plots into');
  const p = ws.run('plots', 'show', 'p.yaml');
  assert.equal(p.code, 0, p.stderr);
  await page.goto(pathToFileURL(ws.path('plots.html')).href, { waitUntil: 'load' });
  const plot = await page.$eval('figure.chart svg', (svg) => ({
    width: svg.getBoundingClientRect().width,
    lines: svg.querySelectorAll('.mark-line path').length,
    texts: [...svg.querySelectorAll('text')].map((x) => x.textContent ?? ''),
  }));
  await page.screenshot({ path: join(ROOT, 'reports', 'plots-screenshot.png'), fullPage: true });
  assert.deepEqual(errors, [], 'plots.html: no console errors or warnings');
  assert.deepEqual(external, [], 'plots.html: no network requests');
  assert.ok(plot.width > 300 && plot.width <= 1100, `plots.html: ${plot.width} px wide`);
  for (const m of ['loss', 'devCcc', 'epoch']) assert.ok(plot.texts.includes(m), `plots.html: ${m} in ${plot.texts.join(' | ')}`);
  for (const m of models) assert.ok(plot.texts.some((x) => x.endsWith(`train[${m}]`)), `plots.html: ${m} in the legend`);
  assert.ok(plot.lines >= 2 * 4, `plots.html: ${plot.lines} lines`);
});
