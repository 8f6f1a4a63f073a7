// evaluate: scores every trained model on the dev split and compares each with the vanilla model.
// Per-emotion CCC and their mean; 95 % confidence intervals by bootstrap over clips; a paired,
// two-tailed bootstrap test of each model's mean CCC against vanilla's on the same resamples
// (`resamples`, default 1000, seeded); the best model by dev mean CCC; its test predictions in the
// ExVo submission format (File_ID, the ten emotions). Writes report/: metrics.json, report.md,
// a self-contained report.html (training curves and per-emotion CCC with CIs for every model,
// Vega-Lite rendered to inline SVG),
// submission.csv and headline.txt (the table `pipeline run` prints at the end).
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defineStage } from '../src/stage-api.ts';
import { readIndex } from './lib/batches.ts';
import { csvLine } from './lib/exvo.ts';
import { renderReport } from './lib/report.ts';
import { overSeeds, runLabel, type ModelOverSeeds } from './lib/replicates.ts';
import { inSelectionHalf } from './lib/selection.ts';
import { bootstrap, columns } from './lib/stats.ts';

interface Params {
  resamples: number;
  baseline: string;
}

interface Run {
  label: string;
  matrix: Record<string, unknown>;
  info: { stage: string; mode: string; backend: string; bestEpoch: number; weights: number[]; lambda: number; selectOn?: 'dev' | 'half' };
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
    // Each run labelled by the sweep values of the variant that trained it (mode=joint,w3=0.001).
    const made = ctx.variants.runs ?? [];
    if (!made.length) throw new Error('no training runs to evaluate');
    const runs: Run[] = made.map(({ path: d, matrix }) => {
      const info = JSON.parse(readFileSync(join(d, 'info.json'), 'utf8')) as Run['info'];
      return {
        label: runLabel(matrix, info.mode),
        matrix,
        info,
        metrics: readFileSync(join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)),
        predictions: JSON.parse(readFileSync(join(d, 'predictions.json'), 'utf8')),
      };
    });
    const index = readIndex(ctx.inputs.features as string);
    // Scored on the dev clips that did not pick the best epoch, when training kept a half apart.
    const selectOn = new Set(runs.map((r) => r.info.selectOn ?? 'dev'));
    if (selectOn.size > 1) throw new Error(`the models picked their best epoch on different dev clips (selectOn: ${[...selectOn].join(' and ')}): train them all with the same selectOn`);
    const apart = selectOn.has('half');
    const allDev = (index.splits.Val?.clips ?? []).filter((c) => c.labels);
    const dev = apart ? allDev.filter((c) => !inSelectionHalf(c.id)) : allDev;
    const emotions = index.emotions;
    const truth = columns(dev.map((c) => c.labels!));
    const preds = runs.map((r) => columns(dev.map((c) => {
      const p = r.predictions.dev[c.id];
      if (!p) throw new Error(`${r.info.stage} has no dev prediction for clip ${c.id}`);
      return p;
    })));
    // Each run against the baseline trained with the same seed (the first baseline run otherwise).
    const first = runs.findIndex((r) => r.info.mode === ctx.params.baseline);
    const base = runs.map((r) => {
      const same = runs.findIndex((x) => x.info.mode === ctx.params.baseline && 'seed' in r.matrix && x.matrix.seed === r.matrix.seed);
      return r.info.mode === ctx.params.baseline && !('seed' in r.matrix) ? first : same >= 0 ? same : first;
    });
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
    // Seeds as replicates: a model trained with several seeds is judged over them, paired by seed.
    const seeds = overSeeds(runs.map((r, i) => ({ matrix: r.matrix, mode: r.info.mode, devMean: b.models[i]!.mean })), ctx.params.baseline);
    const selection = apart ? `best epochs picked on the other ${allDev.length - dev.length} dev clips (selectOn: half)` : 'best epochs picked on these same dev clips (selectOn: dev)';
    await writeFile(join(out, 'metrics.json'), JSON.stringify({ split: 'Val', clips: dev.length, selection, test: `paired bootstrap over clips, ${b.resamples} resamples, two-tailed, against ${ctx.params.baseline}${seeds ? " trained with the same seed" : ""}`, best: runs[best]!.label, models: rows, ...(seeds ? { overSeeds: { test: `exact sign-flip permutation over seeds, paired by seed, two-tailed, against ${ctx.params.baseline}`, models: seeds } } : {}) }, null, 2));

    const f = (x: number) => x.toFixed(3);
    // Columns as wide as the longest model name (a sweep over several keys names models at length).
    const w = Math.max(28, ...rows.map((r) => r.model.length + 3));
    const table = [
      `Dev mean CCC over ${emotions.length} emotions (${dev.length} clips; 95 % CI by bootstrap; p: paired bootstrap vs ${ctx.params.baseline}${seeds ? ' with the same seed' : ''}, ${b.resamples} resamples, 2-tailed); ${selection}`,
      '',
      `${'model'.padEnd(w)} ${'mean CCC'.padStart(8)}  ${'95 % CI'.padEnd(16)} ${'p'.padStart(6)}`,
      ...rows.map((r) => `${(r.model + (r === rows[best] ? ' *' : '')).padEnd(w)} ${f(r.meanCcc).padStart(8)}  [${f(r.ci95[0])}, ${f(r.ci95[1])}] ${(r.pVsBaseline === null ? '-' : r.pVsBaseline.toFixed(3)).padStart(6)}`),
      '',
      `* best by dev mean CCC (backend ${runs[best]!.info.backend})`,
      ...(seeds ? ['', ...seedTable(seeds, ctx.params.baseline)] : []),
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
    await writeFile(join(out, 'report.html'), await renderReport({
      title: 'RRTN evaluation',
      table,
      emotions,
      models: runs.map((r, i) => ({ label: r.label, curve: r.metrics, perEmotion: rows[i]!.perEmotion as Record<string, { ccc: number; ci95: [number, number] }> })),
    }));

    const test = index.splits.Test?.clips ?? [];
    const sub = [csvLine(['File_ID', ...emotions]), ...test.map((c) => csvLine([`[${c.id}]`, ...(runs[best]!.predictions.test[c.id] ?? []).map((v) => Math.min(1, Math.max(0, v)).toFixed(6))]))];
    await writeFile(join(out, 'submission.csv'), `${sub.join('\n')}\n`);
  },
});

/** The over-seeds table: what a difference between models is worth against training noise. */
function seedTable(models: ModelOverSeeds[], baseline: string): string[] {
  const f = (x: number) => x.toFixed(3);
  const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`;
  const n = Math.max(...models.map((m) => m.seeds.length));
  const w = Math.max(22, ...models.map((m) => m.model.length + 1));
  const ws = Math.max(12, ...models.map((m) => m.seeds.join(',').length + 1));
  return [
    `Over training seeds: dev mean CCC as mean ± sd; the paired difference from ${baseline} per seed; p: exact sign-flip test over seeds, 2-tailed (${n} seeds: p is never below ${(2 / 2 ** n).toFixed(3)})`,
    '',
    `${'model'.padEnd(w)} ${'seeds'.padEnd(ws)} ${'mean ± sd'.padEnd(15)} ${'diff per seed'.padEnd(7 * n)} ${'mean diff'.padStart(9)} ${'p'.padStart(6)}`,
    ...models.map((m) => `${m.model.padEnd(w)} ${m.seeds.join(',').padEnd(ws)} ${`${f(m.mean)} ± ${f(m.sd)}`.padEnd(15)} ${m.diffs.map((d) => (d === null ? '-' : signed(d)).padStart(6)).join(' ').padEnd(7 * n)} ${(m.meanDiff === null ? '-' : signed(m.meanDiff)).padStart(9)} ${(m.p === null ? '-' : m.p.toFixed(3)).padStart(6)}`),
  ];
}
