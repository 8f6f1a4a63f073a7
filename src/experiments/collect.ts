// Experiments, compared: every recorded run of every stage that declares `metrics:` in a spec
// (each variant of a sweep, and each earlier run kept in the cache), with the params that differ
// between them and the numbers from their metrics files. Read from run records and stored
// objects only: nothing reruns.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runningStages } from '../cache/running.ts';
import type { CachedRun, RunRecord, Store } from '../cache/store.ts';
import { explainChange } from '../run/explain.ts';
import type { Pipeline, StageNode } from '../spec/model.ts';
import { readProvenance, type GitState } from '../provenance.ts';
import { isRecord } from '../records.ts';

export interface ExpRow {
  /** The run's key, shortened (enough to name it in `exp diff`). */
  id: string;
  key: string;
  /** The stage variant that ran, e.g. `train[mode=joint,w3=0.001]`. */
  stage: string;
  /** The run this variant of the spec (with the same --set values) is served from now: its key is the one the spec gives today. */
  current: boolean;
  committedAt: string;
  /** The --set values it ran with ([] for the spec as written; null for records older than provenance). */
  sets: string[] | null;
  /** The workspace's git commit when it ran, and whether tracked files had uncommitted changes. */
  git: GitState | null;
  /** The name it was saved under (`run --name`, `exp save`). */
  names: string[];
  /** Params flattened to dotted names (lists as JSON text), plus `seed`. */
  params: Record<string, unknown>;
  /** Numbers from the metrics files, flattened to dotted names. */
  metrics: Record<string, number>;
  /** Past runs: how the current run of the same variant differs from this one. */
  changed: string[];
  /** `plots:` series by file (`output/path`): rows of a JSON list, JSON Lines or CSV. */
  plots: Record<string, unknown[]>;
  /** A stage still running (liveRows): its series as written so far, metrics if any yet. */
  running?: boolean;
  /** A running stage: since when, and the last row of each of its series. */
  progress?: string;
}

export interface ExpTable {
  spec: string;
  rows: ExpRow[];
  /** Params whose values differ between rows. */
  params: string[];
  metrics: string[];
  /** Metric -> id of the best row ('max' or 'min' is better: as the spec declares, else by its name). */
  best: Record<string, string>;
  direction: Record<string, 'max' | 'min'>;
}

const LOWER_IS_BETTER = /loss|error|\berr\b|mse|mae|rmse|(^|[._])p(_?value)?$|seconds|time|duration/i;

export function metricDirection(name: string): 'max' | 'min' {
  return LOWER_IS_BETTER.test(name) ? 'min' : 'max';
}

/** Nesting deeper than this is not a metric anyone tabulates: left out (and no stack is spent on it). */
export const MAX_FLATTEN_DEPTH = 32;

/** Dotted names -> leaves: numbers only for metrics; everything for params (lists as JSON text). */
export function flatten(value: unknown, keep: (v: unknown) => boolean, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // Depth-first with a stack of our own, in the order of the keys: a file nested 50,000 deep is
  // read as far as MAX_FLATTEN_DEPTH, not recursed into until the call stack runs out.
  const todo: Array<[unknown, string, number]> = [[value, prefix, 0]];
  while (todo.length) {
    const [v, name, depth] = todo.pop()!;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      if (depth >= MAX_FLATTEN_DEPTH) continue;
      const entries = Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) todo.push([entries[i]![1], name ? `${name}.${entries[i]![0]}` : entries[i]![0], depth + 1]);
    } else if (name && keep(v)) out[name] = Array.isArray(v) ? JSON.stringify(v) : v;
  }
  return out;
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The text of a file inside a run's output, from the store (undefined if gone). */
async function outputFile(store: Store, rec: CachedRun, output: string, inside: string): Promise<string | undefined> {
  const out = rec.outputs[output];
  const obj = out && (await store.objectIn(out, inside));
  return obj === undefined ? undefined : readFile(obj, 'utf8').catch(() => undefined);
}

/** One metrics file: its names as they are; several: prefixed by the file's name. */
function metricsPrefix(node: StageNode, output: string, inside: string): string {
  return node.metrics.length > 1 ? (inside || output).split('/').pop()!.replace(/\.json$/, '') : '';
}

/** The directions the spec declares (`metrics: [{ path, lower, higher }]`), as full-name patterns, first declared first. */
function declaredDirections(nodes: Iterable<StageNode>): Array<[RegExp, 'max' | 'min']> {
  const out: Array<[RegExp, 'max' | 'min']> = [];
  const pattern = (prefix: string, name: string) => new RegExp(`^${(prefix ? `${prefix}.${name}` : name).split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  for (const node of nodes) {
    node.metrics.forEach(([output, inside], i) => {
      const d = node.metricDirections[i];
      const prefix = metricsPrefix(node, output, inside);
      for (const n of d?.lower ?? []) out.push([pattern(prefix, n), 'min']);
      for (const n of d?.higher ?? []) out.push([pattern(prefix, n), 'max']);
    });
  }
  return out;
}

async function readMetrics(store: Store, rec: RunRecord, node: StageNode): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [output, inside] of node.metrics) {
    const text = await outputFile(store, rec, output, inside);
    if (text === undefined) continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      continue; // not JSON: nothing to tabulate
    }
    const prefix = metricsPrefix(node, output, inside);
    Object.assign(out, flatten(value, isNumber, prefix));
  }
  return out as Record<string, number>;
}

/**
 * A series file's rows: a JSON list, JSON Lines, or CSV with a header (numbers as numbers).
 * `partial`: a file still being written, whose last line may be cut short (left out).
 */
export function parseSeries(text: string, partial = false): unknown[] | undefined {
  const t = text.trim();
  try {
    if (t.startsWith('[')) return JSON.parse(t) as unknown[];
    if (t.startsWith('{')) {
      const lines = t.split('\n').filter((l) => l.trim());
      if (partial && !text.endsWith('\n')) lines.pop();
      return lines.map((l) => JSON.parse(l) as unknown);
    }
  } catch {
    return undefined;
  }
  if (partial && !text.endsWith('\n')) return parseSeries(text.slice(0, text.lastIndexOf('\n') + 1));
  const [head, ...lines] = t.split(/\r?\n/).filter((l) => l.length);
  if (!head) return [];
  const cols = head.split(',');
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i] ?? `c${i}`, v !== '' && Number.isFinite(Number(v)) ? Number(v) : v])));
}

async function readPlots(store: Store, rec: RunRecord, node: StageNode): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const [output, inside] of node.plots) {
    const text = await outputFile(store, rec, output, inside);
    const rows = text === undefined ? undefined : parseSeries(text);
    if (rows) out[inside ? `${output}/${inside}` : output] = rows;
  }
  return out;
}

/**
 * Stages of this spec and workspace running now (in any process on this cache), as rows with the
 * declared series written so far (what `plots show --live` draws while a stage trains), any metrics
 * file already written, and `progress`: the last row of each series (what `exp show --live` shows).
 */
export async function liveRows(p: Pipeline, cacheRoot: string): Promise<ExpRow[]> {
  const rows: ExpRow[] = [];
  for (const r of await runningStages(cacheRoot)) {
    if (r.spec !== p.specRel || r.workspace !== p.workspace) continue;
    const node = p.stages.get(r.stage);
    if (!node || (!node.plots.length && !node.metrics.length)) continue;
    const plots: Record<string, unknown[]> = {};
    for (const [output, inside] of node.plots) {
      const text = await readFile(join(r.outDir, output, inside), 'utf8').catch(() => undefined);
      const series = text === undefined ? undefined : parseSeries(text, true);
      if (series) plots[inside ? `${output}/${inside}` : output] = series;
    }
    const metrics: Record<string, number> = {};
    for (const [output, inside] of node.metrics) {
      const text = await readFile(join(r.outDir, output, inside), 'utf8').catch(() => undefined);
      try {
        if (text !== undefined) Object.assign(metrics, flatten(JSON.parse(text), isNumber, metricsPrefix(node, output, inside)));
      } catch {
        // being written: read next time
      }
    }
    const last = Object.values(plots).flatMap((rows) => (rows.length && isRecord(rows.at(-1)) ? [rows.at(-1) as Record<string, unknown>] : []));
    const progress = last.map((row) => Object.entries(row).filter(([, v]) => isNumber(v)).slice(0, 6).map(([k, v]) => `${k} ${fmtLive(v as number)}`).join(', ')).join('; ');
    const params = flatten(node.params, () => true) as Record<string, unknown>;
    rows.push({ id: r.key.slice(0, 8), key: r.key, stage: r.stage, current: false, committedAt: r.startedAt, sets: null, git: null, names: [], params, metrics: metrics as Record<string, number>, changed: [], plots, running: true, progress: `running since ${r.startedAt.slice(11, 19)}${progress ? `: ${progress}` : ''}` });
  }
  return rows;
}

const fmtLive = (v: number): string => String(Number(v.toPrecision(4)));

/** The matrix values a variant id names (`train[lr=0.1,w=a]` -> { lr: 0.1, w: 'a' }): a command stage's only params. */
export function matrixOf(stageId: string): Record<string, unknown> {
  const m = /\[(.*)\]$/.exec(stageId);
  if (!m) return {};
  const out: Record<string, unknown> = {};
  for (const part of m[1]!.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const text = part.slice(eq + 1);
    const n = Number(text);
    out[part.slice(0, eq)] = text !== '' && Number.isFinite(n) ? n : text;
  }
  return out;
}

/**
 * Every recorded run of the spec's stages that declare metrics. `currentKeys` (stage -> the key the
 * spec gives now, from `pipeline status`) says which runs are current; without it, the latest runs.
 * `names`: run key -> the names it was saved under.
 */
export async function collectExperiments(p: Pipeline, store: Store, currentKeys?: Map<string, string>, names: Map<string, string[]> = new Map()): Promise<ExpTable> {
  const byKey = new Map<string, StageNode>();
  for (const n of p.stages.values()) if ((n.metrics.length || n.plots.length) && !byKey.has(n.key)) byKey.set(n.key, n);
  const latest = await store.readLatest(p.workspace, p.specRel);
  const records: RunRecord[] = [];
  for (const key of await store.runKeys()) {
    const rec = await store.readRun(key);
    if (rec && rec.spec === p.specRel && byKey.has(rec.stage.split('[')[0]!)) records.push(rec);
  }
  const currentOf = new Map<string, RunRecord>();
  for (const rec of records) if ((currentKeys ? currentKeys.get(rec.stage) : latest.get(rec.stage)?.key) === rec.key) currentOf.set(rec.stage, rec);
  // Past runs are explained against the current one, or (a stale variant) the latest.
  const baseOf = new Map(currentOf);
  for (const rec of records) if (!baseOf.has(rec.stage) && latest.get(rec.stage)?.key === rec.key) baseOf.set(rec.stage, rec);
  const rows: ExpRow[] = [];
  for (const rec of records) {
    const node = p.stages.get(rec.stage) ?? byKey.get(rec.stage.split('[')[0]!)!;
    const cur = currentOf.get(rec.stage);
    const base = baseOf.get(rec.stage);
    const changed = base && base.key !== rec.key ? (await explainChange(rec.fingerprint, base.fingerprint, { manifest: (d) => store.readManifest(d) })).map((r) => r.text) : [];
    const prov = readProvenance(rec.provenance);
    rows.push({
      id: rec.key.slice(0, 8),
      key: rec.key,
      stage: rec.stage,
      current: cur?.key === rec.key,
      committedAt: new Date(rec.committedAt).toISOString(),
      sets: prov ? prov.sets : null,
      git: prov?.git ?? null,
      names: [...new Set([...(names.get(rec.key) ?? []), ...(prov?.name ? [prov.name] : [])])],
      params: { ...matrixOf(rec.stage), ...flatten(rec.fingerprint.params, () => true), seed: rec.fingerprint.seed },
      metrics: await readMetrics(store, rec, node),
      changed,
      plots: await readPlots(store, rec, node),
    });
  }
  // Spec order, the current run of each variant first, then newest first.
  const order = new Map(p.order.map((id, i) => [id, i]));
  rows.sort((a, b) => (order.get(a.stage) ?? 1e9) - (order.get(b.stage) ?? 1e9) || a.stage.localeCompare(b.stage) || Number(b.current) - Number(a.current) || b.committedAt.localeCompare(a.committedAt));
  const allParams = [...new Set(rows.flatMap((r) => Object.keys(r.params)))];
  const params = allParams.filter((k) => new Set(rows.map((r) => JSON.stringify(r.params[k] ?? null))).size > 1);
  const metrics = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))];
  const best: Record<string, string> = {};
  const direction: Record<string, 'max' | 'min'> = {};
  const declared = declaredDirections(byKey.values());
  for (const m of metrics) {
    direction[m] = declared.find(([re]) => re.test(m))?.[1] ?? metricDirection(m);
    let top: ExpRow | undefined;
    for (const r of rows) {
      const v = r.metrics[m];
      if (v === undefined) continue;
      if (!top || (direction[m] === 'max' ? v > top.metrics[m]! : v < top.metrics[m]!)) top = r;
    }
    if (top) best[m] = top.id;
  }
  return { spec: p.specRel, rows, params, metrics, best, direction };
}

/** Rows sorted by one metric, best first; rows without it last. */
export function sortByMetric(t: ExpTable, metric: string): ExpRow[] {
  const sign = t.direction[metric] === 'min' ? 1 : -1;
  return [...t.rows].sort((a, b) => {
    const x = a.metrics[metric];
    const y = b.metrics[metric];
    if (x === undefined || y === undefined) return (x === undefined ? 1 : 0) - (y === undefined ? 1 : 0);
    return sign * (x - y);
  });
}

