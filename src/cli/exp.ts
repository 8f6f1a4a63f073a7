// `pipeline exp show` and `exp diff`: experiments compared from the run records; `exp save` and
// `exp forget`: names that keep a spec's current runs past gc.
import { UsageError } from '../diagnostics.ts';
import { collectExperiments, sortByMetric, type ExpRow, type ExpTable } from '../experiments/collect.ts';
import type { Planner } from '../run/plan.ts';
import type { Store } from '../cache/store.ts';
import { diffRows, renderDiff, renderShow } from '../experiments/render.ts';
import { explainChange } from '../run/explain.ts';
import { parse, openWorkspace, loadSpec } from './args.ts';
import { HELP, help } from './help.ts';
import { SavedNames, checkName, saveName } from '../cache/names.ts';
import { pipelineStatus } from '../run/status.ts';

/** The experiments of a spec, current = the run the spec (with the command's --set values) is served from now. */
export async function experimentsNow(planner: Planner, store: Store): Promise<ExpTable> {
  const status = await pipelineStatus(planner);
  await planner.digests.save();
  const currentKeys = new Map(status.flatMap((s) => (s.state === 'cached' && s.key ? [[s.stage, s.key] as [string, string]] : [])));
  return collectExperiments(planner.pipeline, store, currentKeys, await new SavedNames(store.root).byRun());
}

/** A run named on the command line: a run id (key prefix) or a stage variant (its current run). */
export function findRun(table: ExpTable, ref: string, spec: string): ExpRow {
  const hits = table.rows.filter((r) => (r.stage === ref && r.current) || (/^[0-9a-f]{4,32}$/.test(ref) && r.key.startsWith(ref)));
  if (hits.length === 1) return hits[0]!;
  if (hits.length > 1) throw new UsageError(`'${ref}' names ${hits.length} runs (${hits.map((h) => h.id).join(', ')}): give more of the key`);
  throw new UsageError(`no run '${ref}' in ${table.spec} (see \`pipeline exp show ${spec}\`: a run id, or a stage variant for its current run)`);
}

export async function cmdExp(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse('exp', rest, {
    json: { type: 'boolean' },
    csv: { type: 'boolean' },
    md: { type: 'boolean' },
    'sort-by': { type: 'string' },
    'only-changed': { type: 'boolean' },
  });
  if (values.help || sub === '--help' || sub === '-h' || sub === undefined) return help('exp');
  if (sub !== 'show' && sub !== 'diff' && sub !== 'save' && sub !== 'forget') throw new UsageError(`unknown exp command '${sub}' (show, diff, save or forget)\n\n${HELP.exp}`);
  const formats = (['json', 'csv', 'md'] as const).filter((f) => values[f]);
  if (formats.length > 1) throw new UsageError(`choose one of --${formats.join(', --')}`);
  const env = await openWorkspace(values);
  const names = new SavedNames(env.store.root);
  if (sub === 'forget') {
    if (positionals.length !== 1) throw new UsageError(`exp forget takes one name\n\n${HELP.exp}`);
    if (!(await names.forget(positionals[0]!))) throw new UsageError(`no saved experiment '${positionals[0]}' in this cache`);
    process.stdout.write(`forgot experiment '${positionals[0]}': its runs are ordinary runs again (gc may remove them)\n`);
    return 0;
  }
  if (sub === 'save') {
    if (positionals.length !== 2) throw new UsageError(`exp save takes a name and a spec\n\n${HELP.exp}`);
    const name = checkName(positionals[0]!);
    const planner = await loadSpec(values, positionals.slice(1), 'exp', env);
    // What the spec is served from now: its cached stages (a stale one has no run to keep yet).
    const status = await pipelineStatus(planner);
    await env.digests.save();
    const runs = Object.fromEntries(status.flatMap((s) => (s.state === 'cached' && s.key ? [[s.stage, s.key]] : [])));
    const stale = status.filter((s) => s.state === 'stale').map((s) => s.stage);
    if (!Object.keys(runs).length) throw new UsageError(`nothing to save: no stage of ${planner.pipeline.specRel} has a current run (run it first)`);
    await saveName(env.store.root, { spec: planner.pipeline.specRel, workspace: planner.pipeline.workspace }, name, runs);
    process.stdout.write(`saved experiment '${name}': ${Object.keys(runs).length} runs of ${planner.pipeline.specRel}${stale.length ? ` (not ${stale.join(', ')}: stale, no current run)` : ''}; gc keeps them until \`pipeline exp forget ${name}\`\n`);
    return 0;
  }
  const planner = await loadSpec(values, positionals, 'exp', env);
  const table = await experimentsNow(planner, env.store);
  if (sub === 'show') {
    if (positionals.length > 1) throw new UsageError(`exp show takes one spec\n\n${HELP.exp}`);
    const by = values['sort-by'] as string | undefined;
    if (by !== undefined && !table.metrics.includes(by)) throw new UsageError(`--sort-by: no metric '${by}' (metrics: ${table.metrics.join(', ') || 'none recorded'})`);
    process.stdout.write(renderShow(table, by ? sortByMetric(table, by) : table.rows, formats[0] ?? 'table', !!values['only-changed']));
    return 0;
  }
  if (positionals.length !== 3) throw new UsageError(`exp diff needs a spec and two runs\n\n${HELP.exp}`);
  const [a, b] = positionals.slice(1).map((ref) => findRun(table, ref, positionals[0]!));
  const ra = (await env.store.readRun(a!.key))!;
  const rb = (await env.store.readRun(b!.key))!;
  const other = (await explainChange(ra.fingerprint, rb.fingerprint, { manifest: (d) => env.store.readManifest(d) })).filter((r) => r.kind !== 'param' && r.kind !== 'seed').map((r) => r.text);
  process.stdout.write(renderDiff(diffRows(table, a!, b!, other), !!values.json));
  return 0;
}
