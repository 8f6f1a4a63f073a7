// The report's per-emotion chart fits the page at any number of models (it was 10,973 px wide for
// the study's 27 models, its legend and tables clipped): rendered to SVG here, as the report is,
// and measured; every emotion's panel and every model's legend entry are in it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PAGE_WIDTH, perEmotionSpec, renderSvg, type ReportModel } from '../stages/lib/report.ts';

const EMOTIONS = ['Awe', 'Excitement', 'Amusement', 'Awkwardness', 'Fear', 'Horror', 'Distress', 'Triumph', 'Sadness', 'Surprise'];

function models(n: number): ReportModel[] {
  return Array.from({ length: n }, (_, i) => ({
    label: `mode=${['vanilla', 'joint', 'ruwl'][i % 3]},seed=${10 + Math.floor(i / 3)}`,
    curve: [],
    perEmotion: Object.fromEntries(EMOTIONS.map((e, j) => [e, { ccc: 0.2 + 0.02 * ((i + j) % 9), ci95: [0.1, 0.5] as [number, number] }])),
  }));
}

test('the per-emotion chart fits a 1,200 px page with every emotion and every model, from 1 to 27 models', async () => {
  for (const n of [1, 2, 9, 27]) {
    const ms = models(n);
    const svg = await renderSvg(perEmotionSpec(ms, EMOTIONS));
    const width = Number(/<svg[^>]* width="([\d.]+)"/.exec(svg)?.[1]);
    assert.ok(width > 600 && width <= PAGE_WIDTH, `${n} models: ${width} px wide (the page's column is ${PAGE_WIDTH})`);
    for (const e of EMOTIONS) assert.ok(svg.includes(`>${e}</text>`), `${n} models: a panel for ${e}`);
    for (const m of ms) assert.ok(svg.includes(`>${m.label}</text>`), `${n} models: ${m.label} in the legend`);
    // One bar and one whisker per model and emotion.
    assert.equal((svg.match(/<path[^>]*aria-roledescription="bar"/g) ?? []).length, n * EMOTIONS.length, `${n} models: bars`);
  }
});
