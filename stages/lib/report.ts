// The evaluation report as a self-contained HTML page: the headline table, then charts drawn with
// Vega-Lite and rendered to SVG here, at build time (as DVC's plots do), so the page needs no
// script and no network to view. Charts: training loss, dev CCC loss (1 - mean CCC) and dev mean
// CCC per epoch for every model, side by side; per-emotion dev CCC with 95 % CI whiskers for every
// model. Axes carry titles with units, legends sit outside the plots.

import { escapeHtml as esc, renderSvg, type VlSpec } from '../../src/experiments/svg.ts';

export { renderSvg };

export interface ReportModel {
  label: string;
  /** Per epoch: total training loss and dev mean CCC. */
  curve: Array<{ epoch: number; loss: number; devCcc: number }>;
  perEmotion: Record<string, { ccc: number; ci95: [number, number] }>;
}

export interface ReportInput {
  title: string;
  /** The headline table, preformatted. */
  table: string;
  emotions: string[];
  models: ReportModel[];
}


const FONT = 'Helvetica, Arial, sans-serif';
const CONFIG = { font: FONT, axis: { labelFontSize: 11, titleFontSize: 12 }, legend: { labelFontSize: 11, titleFontSize: 12, orient: 'right', labelLimit: 0 }, view: { stroke: null } };

/** The same color for a model in every chart: the domain in the models' order. */
function colorOf(models: ReportModel[]) {
  return { field: 'model', type: 'nominal', title: 'model', sort: models.map((m) => m.label), scale: { domain: models.map((m) => m.label) } };
}

/** Three line charts side by side, one color per model, the legend under them. */
export function curvesSpec(models: ReportModel[]): VlSpec {
  const values = models.flatMap((m) => m.curve.flatMap((c) => [
    { model: m.label, epoch: c.epoch, measure: 'training loss (total)', value: c.loss },
    { model: m.label, epoch: c.epoch, measure: 'dev CCC loss (1 − mean CCC)', value: 1 - c.devCcc },
    { model: m.label, epoch: c.epoch, measure: 'dev mean CCC', value: c.devCcc },
  ]));
  const panel = (measure: string, title: string) => ({
    title: { text: measure, fontSize: 13 },
    width: 230,
    height: 200,
    transform: [{ filter: { field: 'measure', equal: measure } }],
    mark: { type: 'line', point: true, strokeWidth: 2 },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'value', type: 'quantitative', title, scale: { zero: false } },
      color: colorOf(models),
    },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values },
    hconcat: [
      panel('training loss (total)', 'loss (unitless)'),
      panel('dev CCC loss (1 − mean CCC)', '1 − CCC (unitless)'),
      panel('dev mean CCC', 'CCC (−1 to 1)'),
    ],
    resolve: { scale: { color: 'shared' } },
    // The legend under the panels: model names at the side would push the row past the page.
    config: { ...CONFIG, legend: { ...CONFIG.legend, orient: 'bottom', columns: Math.min(models.length, 4) } },
  };
}

/** Widest a chart may be: the page's column (body max-width 1100 px less padding). */
export const PAGE_WIDTH = 1060;

/**
 * Per-emotion dev CCC: one small panel per emotion (bars, one per model, with the 95 % CI as a
 * whisker), wrapped in rows so that the whole fits the page at any number of models: panels have a
 * fixed width and the bars share it. The model legend goes under the panels (a long list of model
 * names at the side would take the panels' width).
 */
export function perEmotionSpec(models: ReportModel[], emotions: string[]): VlSpec {
  const values = models.flatMap((m) => emotions.map((e) => ({ model: m.label, emotion: e, ccc: m.perEmotion[e]!.ccc, lo: m.perEmotion[e]!.ci95[0], hi: m.perEmotion[e]!.ci95[1] })));
  const columns = Math.min(emotions.length, 5);
  // Panel width: the page over the columns, less each panel's spacing and the shared y axis.
  const width = Math.floor((PAGE_WIDTH - 70 - 16 * columns) / columns);
  const x = { field: 'model', type: 'nominal', sort: models.map((m) => m.label), axis: null, scale: { paddingInner: 0.15 } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values },
    columns,
    facet: { field: 'emotion', type: 'nominal', sort: emotions, title: 'emotion', header: { labelFontSize: 12, titleFontSize: 12 } },
    spacing: { row: 14, column: 16 },
    spec: {
      width,
      height: 150,
      encoding: { x },
      layer: [
        { mark: { type: 'bar' }, encoding: { y: { field: 'ccc', type: 'quantitative', title: 'dev CCC (−1 to 1), whiskers: 95 % CI' }, color: colorOf(models) } },
        { mark: { type: 'rule', color: '#222' }, encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
      ],
    },
    config: { ...CONFIG, legend: { ...CONFIG.legend, orient: 'bottom', columns: Math.min(models.length, 4), labelLimit: 0 } },
  };
}

export async function renderReport(input: ReportInput): Promise<string> {
  const [curves, bars] = await Promise.all([renderSvg(curvesSpec(input.models)), renderSvg(perEmotionSpec(input.models, input.emotions))]);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(input.title)}</title>
<style>body{font-family:${FONT};max-width:1100px;margin:2em auto;padding:0 1em;color:#222}pre{background:#f6f6f6;padding:1em;overflow-x:auto}figure{margin:1.5em 0}figcaption{color:#555;font-size:0.9em;margin-top:0.3em}</style>
</head><body>
<h1>${esc(input.title)}</h1>
<pre>${esc(input.table)}</pre>
<h2>Training curves</h2>
<figure class="chart" id="curves">${curves}<figcaption>Per epoch, for every model: the training loss (the weighted total the optimiser sees: CCC losses and, for the twins, the Barlow Twins term), the dev CCC loss and the dev mean CCC over ${input.emotions.length} emotions.</figcaption></figure>
<h2>Per-emotion dev CCC</h2>
<figure class="chart" id="per-emotion">${bars}<figcaption>Concordance correlation coefficient on the dev split per emotion and model; whiskers are 95 % bootstrap confidence intervals over clips.</figcaption></figure>
</body></html>
`;
}
