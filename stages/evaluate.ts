// evaluate: scores every trained model on the dev split and compares each with the vanilla model.
// Per-emotion CCC and their mean; 95 % confidence intervals by bootstrap over clips; a paired,
// two-tailed bootstrap test of each model's mean CCC against vanilla's on the same resamples
// (`resamples`, default 1000, seeded); the best model by dev mean CCC; its test predictions in the
// ExVo submission format (File_ID, the ten emotions). Writes report/: metrics.json, report.md,
// a self-contained report.html (training curves, per-emotion CCC bars with CIs, inline SVG),
// submission.csv and headline.txt (the table `pipeline run` prints at the end).
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defineStage } from '../src/stage-api.ts';
import { readIndex } from './lib/batches.ts';
import { csvLine } from './lib/exvo.ts';
import { bootstrap, columns } from './lib/stats.ts';

interface Params {
  resamples: number;
  baseline: string;
}

interface Run {
  label: string;
  info: { stage: string; mode: string; backend: string; bestEpoch: number; weights: number[]; lambda: number };
  metrics: Array<{ epoch: number; loss: number; devCcc: number }>;
  predictions: { emotions: string[]; dev: Record<string, number[]>; test: Record<string, number[]> };
}

export default defineStage<Params>({
  description: 'Dev CCC per emotion with bootstrap CIs, paired test against vanilla, report and submission.',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      resamples: { type: 'integer', minimum: 100, default: 1000 },
      baseline: { type: 'string', default: 'vanilla', description: 'Mode of the model the others are tested against.' },
    },
  },
  inputs: ['runs', 'features'],
  outputs: ['report'],
  summary: 'report/headline.txt',
  async run(ctx) {
    const dirs = ([] as string[]).concat(ctx.inputs.runs ?? []);
    if (!dirs.length) throw new Error('no training runs to evaluate');
    const runs: Run[] = dirs.map((d) => {
      const info = JSON.parse(readFileSync(join(d, 'info.json'), 'utf8')) as Run['info'];
      return {
        label: info.stage.replace(/^[^[]*\[?/, '').replace(/\]$/, '') || info.mode,
        info,
        metrics: readFileSync(join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)),
        predictions: JSON.parse(readFileSync(join(d, 'predictions.json'), 'utf8')),
      };
    });
    const index = readIndex(ctx.inputs.features as string);
    const dev = (index.splits.Val?.clips ?? []).filter((c) => c.labels);
    const emotions = index.emotions;
    const truth = columns(dev.map((c) => c.labels!));
    const preds = runs.map((r) => columns(dev.map((c) => {
      const p = r.predictions.dev[c.id];
      if (!p) throw new Error(`${r.info.stage} has no dev prediction for clip ${c.id}`);
      return p;
    })));
    const base = runs.findIndex((r) => r.info.mode === ctx.params.baseline);
    const b = bootstrap(preds, truth, base, ctx.params.resamples, ctx.random.fork('bootstrap'));
    const best = b.models.reduce((bi, m, i) => (m.mean > b.models[bi]!.mean ? i : bi), 0);

    const out = ctx.outputs.report!;
    await mkdir(out, { recursive: true });
    const rows = runs.map((r, i) => ({
      model: r.label,
      mode: r.info.mode,
      backend: r.info.backend,
      bestEpoch: r.info.bestEpoch,
      meanCcc: b.models[i]!.mean,
      ci95: b.models[i]!.ci,
      pVsBaseline: b.pVsBaseline[i],
      perEmotion: Object.fromEntries(emotions.map((e, j) => [e, { ccc: b.models[i]!.perEmotion[j], ci95: b.models[i]!.perEmotionCi[j] }])),
    }));
    await writeFile(join(out, 'metrics.json'), JSON.stringify({ split: 'Val', clips: dev.length, test: `paired bootstrap over clips, ${b.resamples} resamples, two-tailed, against ${ctx.params.baseline}`, best: runs[best]!.label, models: rows }, null, 2));

    const f = (x: number) => x.toFixed(3);
    const table = [
      `Dev mean CCC over ${emotions.length} emotions (${dev.length} clips; 95 % CI by bootstrap; p: paired bootstrap vs ${ctx.params.baseline}, ${b.resamples} resamples, 2-tailed)`,
      '',
      `${'model'.padEnd(28)} ${'mean CCC'.padStart(8)}  ${'95 % CI'.padEnd(16)} ${'p'.padStart(6)}`,
      ...rows.map((r) => `${(r.model + (r === rows[best] ? ' *' : '')).padEnd(28)} ${f(r.meanCcc).padStart(8)}  [${f(r.ci95[0])}, ${f(r.ci95[1])}] ${(r.pVsBaseline === null ? '-' : r.pVsBaseline.toFixed(3)).padStart(6)}`),
      '',
      `* best by dev mean CCC (backend ${runs[best]!.info.backend})`,
    ].join('\n');
    await writeFile(join(out, 'headline.txt'), `${table}\n`);

    const md = [
      '# RRTN evaluation',
      '',
      '```',
      table,
      '```',
      '',
      '## Per-emotion CCC (dev)',
      '',
      `| model | ${emotions.join(' | ')} |`,
      `| --- | ${emotions.map(() => '---').join(' | ')} |`,
      ...rows.map((r) => `| ${r.model} | ${emotions.map((e) => f(r.perEmotion[e]!.ccc!)).join(' | ')} |`),
      '',
      `Submission (best model, test split): submission.csv.`,
    ].join('\n');
    await writeFile(join(out, 'report.md'), `${md}\n`);
    await writeFile(join(out, 'report.html'), html(table, runs, rows, emotions, base, best));

    const test = index.splits.Test?.clips ?? [];
    const sub = [csvLine(['File_ID', ...emotions]), ...test.map((c) => csvLine([`[${c.id}]`, ...(runs[best]!.predictions.test[c.id] ?? []).map((v) => Math.min(1, Math.max(0, v)).toFixed(6))]))];
    await writeFile(join(out, 'submission.csv'), `${sub.join('\n')}\n`);
  },
});

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

const COLORS = ['#4c72b0', '#dd8452', '#55a868', '#c44e52', '#8172b3', '#937860'];

/** A self-contained page: the table, training curves and per-emotion bars with CIs, as inline SVG. */
function html(table: string, runs: Run[], rows: Array<{ model: string; perEmotion: Record<string, { ccc?: number; ci95?: [number, number] }> }>, emotions: string[], base: number, best: number): string {
  const W = 640;
  const H = 260;
  const pad = 40;
  const epochs = Math.max(...runs.map((r) => r.metrics.length));
  const ys = runs.flatMap((r) => r.metrics.map((m) => m.devCcc));
  const [lo, hi] = [Math.min(0, ...ys), Math.max(0.05, ...ys)];
  const x = (e: number) => pad + ((W - 2 * pad) * (e - 1)) / Math.max(1, epochs - 1);
  const y = (v: number) => H - pad - ((H - 2 * pad) * (v - lo)) / (hi - lo || 1);
  const curves = runs.map((r, i) => `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2" points="${r.metrics.map((m) => `${x(m.epoch).toFixed(1)},${y(m.devCcc).toFixed(1)}`).join(' ')}"/><text x="${W - pad + 4}" y="${(y(r.metrics[r.metrics.length - 1]!.devCcc) + 4).toFixed(1)}" font-size="11" fill="${COLORS[i % COLORS.length]}">${esc(r.label)}</text>`).join('');
  const curveSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W + 80}" height="${H}"><line x1="${pad}" y1="${H - pad}" x2="${W - pad}" y2="${H - pad}" stroke="#888"/><line x1="${pad}" y1="${pad}" x2="${pad}" y2="${H - pad}" stroke="#888"/><text x="${W / 2}" y="${H - 8}" font-size="12" text-anchor="middle">epoch (1-${epochs})</text><text x="10" y="${pad - 10}" font-size="12">dev mean CCC (${lo.toFixed(2)} to ${hi.toFixed(2)})</text>${curves}</svg>`;
  const pair = [base >= 0 ? base : 0, best].filter((v, i, a) => a.indexOf(v) === i);
  const BW = 760;
  const BH = 280;
  const group = (BW - 2 * pad) / emotions.length;
  const bw = group / (pair.length + 1);
  const vals = pair.flatMap((m) => emotions.flatMap((e) => rows[m]!.perEmotion[e]!.ci95 ?? [0, 0]));
  const [blo, bhi] = [Math.min(0, ...vals), Math.max(0.1, ...vals)];
  const by = (v: number) => BH - pad - ((BH - 2 * pad) * (v - blo)) / (bhi - blo || 1);
  const bars = emotions.map((e, j) => pair.map((m, k) => {
    const pe = rows[m]!.perEmotion[e]!;
    const x0 = pad + j * group + k * bw + bw / 2;
    const [c0, c1] = pe.ci95 ?? [0, 0];
    return `<rect x="${x0.toFixed(1)}" y="${Math.min(by(pe.ccc!), by(0)).toFixed(1)}" width="${(bw * 0.9).toFixed(1)}" height="${Math.abs(by(0) - by(pe.ccc!)).toFixed(1)}" fill="${COLORS[m % COLORS.length]}"/><line x1="${(x0 + bw * 0.45).toFixed(1)}" x2="${(x0 + bw * 0.45).toFixed(1)}" y1="${by(c0).toFixed(1)}" y2="${by(c1).toFixed(1)}" stroke="#222"/>`;
  }).join('') + `<text x="${(pad + j * group + group / 2).toFixed(1)}" y="${BH - pad + 14}" font-size="10" text-anchor="middle">${esc(e)}</text>`).join('');
  const legend = pair.map((m, k) => `<text x="${pad + k * 160}" y="16" font-size="12" fill="${COLORS[m % COLORS.length]}">■ ${esc(rows[m]!.model)}</text>`).join('');
  const barSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="${BW}" height="${BH}">${legend}<line x1="${pad}" y1="${by(0)}" x2="${BW - pad}" y2="${by(0)}" stroke="#888"/>${bars}</svg>`;
  return `<!doctype html><html><head><meta charset="utf-8"><title>RRTN evaluation</title><style>body{font-family:sans-serif;max-width:860px;margin:2em auto}pre{background:#f6f6f6;padding:1em}</style></head><body><h1>RRTN evaluation</h1><pre>${esc(table)}</pre><h2>Training: dev mean CCC per epoch</h2>${curveSvg}<h2>Per-emotion dev CCC with 95 % CI</h2>${barSvg}</body></html>\n`;
}
