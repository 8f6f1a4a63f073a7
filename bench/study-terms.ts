// What each arm of a twin-training sweep spent its loss on: reads `pipeline exp show <spec> --json`
// on stdin and prints, per model (variants grouped over their seeds), the best epoch and, at the last
// epoch, the share of the total loss that is the Barlow Twins term (w3 * L_BT), as mean [min, max]
// over seeds. Used for the RRTN study in bench/RESULTS.md:
//   npm run pipeline -- exp show pipelines/rrtn-study.yaml --json | node --import tsx bench/study-terms.ts
import { readFileSync } from 'node:fs';

interface Row {
  stage: string;
  params: Record<string, unknown>;
  metrics: { best_epoch?: number };
  plots: Record<string, Array<{ epoch: number; loss: number; bt: number | null }>>;
}

const rows = (JSON.parse(readFileSync(0, 'utf8')) as { rows: Row[] }).rows.filter((r) => r.stage.startsWith('train['));
// The latest run of each variant (exp show lists older runs too).
const latest = new Map<string, Row>();
for (const r of rows) latest.set(r.stage, r);
const models = new Map<string, Row[]>();
for (const [stage, r] of latest) {
  const model = stage.replace(/,?seed=\d+/, '');
  models.set(model, [...(models.get(model) ?? []), r]);
}
const range = (xs: number[]) => `${(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(3)} [${Math.min(...xs).toFixed(3)}, ${Math.max(...xs).toFixed(3)}]`;
console.log('model'.padEnd(44), 'seeds', 'best epochs'.padEnd(16), 'BT share of the loss at the last epoch');
for (const [model, rs] of models) {
  const shares = rs.flatMap((r) => {
    const curve = Object.values(r.plots)[0] ?? [];
    const last = curve[curve.length - 1];
    const w3 = (JSON.parse(String(r.params.weights ?? '[0,0,0]')) as number[])[2] ?? 0;
    return last && last.bt !== null && last.loss > 0 && r.params.mode === 'joint' ? [(w3 * last.bt) / last.loss] : [];
  });
  console.log(model.padEnd(44), String(rs.length).padEnd(5), rs.map((r) => r.metrics.best_epoch).join(',').padEnd(16), shares.length ? range(shares) : '-');
}
