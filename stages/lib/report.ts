// The evaluation report as a self-contained HTML page: the headline table, then charts drawn with
// Vega-Lite and rendered to SVG here, at build time (as DVC's plots do), so the page needs no
// script and no network to view. Charts: training loss, dev CCC loss (1 - mean CCC) and dev mean
// CCC per epoch for every model, side by side; per-emotion dev CCC with 95 % CI whiskers for every
// model. Axes carry titles with units, legends sit outside the plots.

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

type VlSpec = Record<string, unknown>;

const FONT = 'Helvetica, Arial, sans-serif';
const CONFIG = { font: FONT, axis: { labelFontSize: 11, titleFontSize: 12 }, legend: { labelFontSize: 11, titleFontSize: 12, orient: 'right' }, view: { stroke: null } };

/** Three line charts side by side, one color per model, shared legend. */
/** The same color for a model in every chart: the domain in the models' order. */
function colorOf(models: ReportModel[]) {
  return { field: 'model', type: 'nominal', title: 'model', sort: models.map((m) => m.label), scale: { domain: models.map((m) => m.label) } };
}

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
    config: CONFIG,
  };
}

/** Grouped bars per emotion, one per model, with the 95 % CI as a whisker. */
export function perEmotionSpec(models: ReportModel[], emotions: string[]): VlSpec {
  const values = models.flatMap((m) => emotions.map((e) => ({ model: m.label, emotion: e, ccc: m.perEmotion[e]!.ccc, lo: m.perEmotion[e]!.ci95[0], hi: m.perEmotion[e]!.ci95[1] })));
  const x = { field: 'emotion', type: 'nominal', title: 'emotion', sort: emotions, axis: { labelAngle: -30 } };
  const offset = { field: 'model', type: 'nominal', sort: models.map((m) => m.label) };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values },
    width: { step: 20 + 20 * models.length },
    height: 260,
    encoding: { x, xOffset: offset },
    layer: [
      { mark: { type: 'bar' }, encoding: { y: { field: 'ccc', type: 'quantitative', title: 'dev CCC (−1 to 1), whiskers: 95 % CI' }, color: colorOf(models) } },
      { mark: { type: 'rule', color: '#222' }, encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
    ],
    config: CONFIG,
  };
}

/** Vega-Lite -> SVG text, in Node, with no canvas (text measured by estimate). */
export async function renderSvg(spec: VlSpec): Promise<string> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(vl.compile(spec as never).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
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
