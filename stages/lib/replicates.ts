// Training seeds as replicates: the variants of a sweep that differ only in `seed` are one model
// trained several times. Groups them, and judges each model against the baseline over seeds
// (paired by seed, exact sign-flip test), which measures training noise as a clip bootstrap within
// one seed cannot.
import { meanSd, signFlipTest } from './stats.ts';

export interface Replicate {
  /** The variant's matrix values (seed included when swept). */
  matrix: Record<string, unknown>;
  /** Training mode (vanilla, joint, ruwl): names the model when there is no matrix. */
  mode: string;
  /** Its dev mean CCC. */
  devMean: number;
}

export interface ModelOverSeeds {
  model: string;
  mode: string;
  seeds: number[];
  devMeans: number[];
  mean: number;
  sd: number;
  /** Per seed of this model: its dev mean minus the baseline's with the same seed (null: the baseline has no run with it). */
  diffs: Array<number | null>;
  meanDiff: number | null;
  /** Exact sign-flip test over the paired seeds, two-tailed; null for the baseline or with no pair. */
  p: number | null;
}

const text = (v: unknown) => (typeof v === 'object' ? JSON.stringify(v) : String(v));

/** A run's label: its matrix values (`mode=joint,w3=0.001`), or its mode. */
export function runLabel(matrix: Record<string, unknown>, mode: string): string {
  return Object.entries(matrix).map(([k, v]) => `${k}=${text(v)}`).join(',') || mode;
}

/** The model a run belongs to: its label without the seed. */
export function modelLabel(matrix: Record<string, unknown>, mode: string): string {
  return runLabel(Object.fromEntries(Object.entries(matrix).filter(([k]) => k !== 'seed')), mode);
}

/** Models over seeds, in first-seen order; undefined unless some model was trained with 2+ seeds. */
export function overSeeds(runs: Replicate[], baselineMode: string): ModelOverSeeds[] | undefined {
  const groups = new Map<string, Replicate[]>();
  for (const r of runs) {
    const k = modelLabel(r.matrix, r.mode);
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  if (![...groups.values()].some((g) => g.length > 1)) return undefined;
  const seedOf = (r: Replicate) => Number(r.matrix.seed);
  const baseline = [...groups.values()].find((g) => g[0]!.mode === baselineMode);
  return [...groups].map(([model, g]) => {
    const sorted = [...g].sort((a, b) => seedOf(a) - seedOf(b));
    const devMeans = sorted.map((r) => r.devMean);
    const isBase = g === baseline;
    const diffs = sorted.map((r) => {
      const b = baseline?.find((x) => seedOf(x) === seedOf(r));
      return isBase || !b ? null : r.devMean - b.devMean;
    });
    const paired = diffs.filter((d): d is number => d !== null);
    const test = paired.length ? signFlipTest(paired) : undefined;
    return { model, mode: g[0]!.mode, seeds: sorted.map(seedOf), devMeans, ...meanSd(devMeans), diffs, meanDiff: test?.mean ?? null, p: test?.p ?? null };
  });
}
