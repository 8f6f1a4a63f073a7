// `pipeline plots show` / `plots diff`: the `plots:` series of recorded runs overlaid, one chart per
// series file with a panel per numeric column, one line per run, in one self-contained HTML page
// (Vega-Lite rendered to SVG here: no script, no network). The x axis is the first of `epoch`,
// `step`, `iteration`, `x` the rows have, else the row's position.
import type { ExpRow } from './collect.ts';
import { escapeHtml, renderSvg, type VlSpec } from './svg.ts';

const X_NAMES = ['epoch', 'step', 'iteration', 'x'];
/** The page's column, and the panels across it. */
const WIDTH = 1060;
const COLUMNS = 3;

/** A run's name in a legend: its id and stage variant (and its saved names). */
export const runLabel = (r: ExpRow): string => `${r.id} ${r.stage}${r.names.length ? ` [${r.names.join(', ')}]` : ''}${r.running ? ' (running)' : r.current ? '' : ' (past)'}`;

interface Point {
  run: string;
  x: number;
  measure: string;
  value: number;
}

/** Long-format points of one series file over the runs that have it, and the x axis's name. */
function points(rows: ExpRow[], file: string): { values: Point[]; x: string; measures: string[] } {
  const series = rows.flatMap((r) => (r.plots[file] ? [[r, r.plots[file]!] as const] : []));
  const first = series.flatMap(([, s]) => s).find((v) => v && typeof v === 'object') as Record<string, unknown> | undefined;
  const x = X_NAMES.find((n) => first && typeof first[n] === 'number') ?? 'row';
  const values: Point[] = [];
  const measures = new Set<string>();
  for (const [r, s] of series) {
    s.forEach((row, i) => {
      if (!row || typeof row !== 'object') return;
      const o = row as Record<string, unknown>;
      const at = x === 'row' ? i + 1 : o[x];
      if (typeof at !== 'number' || !Number.isFinite(at)) return;
      for (const [k, v] of Object.entries(o)) {
        if (k === x || typeof v !== 'number' || !Number.isFinite(v)) continue;
        measures.add(k);
        values.push({ run: runLabel(r), x: at, measure: k, value: v });
      }
    });
  }
  return { values, x, measures: [...measures] };
}

/** One series file's chart: a panel per measure, wrapped to the page, a line per run. */
export function seriesSpec(rows: ExpRow[], file: string): VlSpec | undefined {
  const { values, x, measures } = points(rows, file);
  if (!values.length) return undefined;
  const columns = Math.min(COLUMNS, measures.length);
  const runs = rows.map(runLabel);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values },
    columns,
    facet: { field: 'measure', type: 'nominal', sort: measures, title: null, header: { labelFontSize: 12 } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: Math.floor((WIDTH - 60 * columns) / columns),
      height: 180,
      mark: { type: 'line', point: true, strokeWidth: 2 },
      encoding: {
        x: { field: 'x', type: 'quantitative', title: x, axis: { tickMinStep: 1 } },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } },
        color: { field: 'run', type: 'nominal', title: 'run', sort: runs, scale: { domain: runs.filter((r) => values.some((v) => v.run === r)) } },
      },
    },
    config: { font: 'Helvetica, Arial, sans-serif', legend: { orient: 'bottom', columns: 2, labelLimit: 0 }, view: { stroke: null } },
  };
}

/** The page: a chart per series file the runs have. */
export async function renderPlots(title: string, rows: ExpRow[], refreshSeconds?: number): Promise<{ html: string; charts: number }> {
  const files = [...new Set(rows.flatMap((r) => Object.keys(r.plots)))].sort();
  const figures: string[] = [];
  for (const file of files) {
    const spec = seriesSpec(rows, file);
    if (spec) figures.push(`<h2>${escapeHtml(file)}</h2>\n<figure class="chart">${await renderSvg(spec)}</figure>`);
  }
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">${refreshSeconds ? `<meta http-equiv="refresh" content="${refreshSeconds}">` : ''}<title>${escapeHtml(title)}</title>
<style>body{font-family:Helvetica, Arial, sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}figure{margin:1em 0}</style>
</head><body>
<h1>${escapeHtml(title)}</h1>
<p>${rows.length} run${rows.length === 1 ? '' : 's'}: ${rows.map((r) => escapeHtml(runLabel(r))).join('; ')}</p>
${figures.join('\n') || '<p>No declared series (<code>plots:</code>) in these runs.</p>'}
</body></html>
`;
  return { html, charts: figures.length };
}
