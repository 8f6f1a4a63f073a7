// `pipeline exp show` and `exp diff`: experiments compared from the run records.
import { UsageError } from '../diagnostics.ts';
import { collectExperiments, sortByMetric } from '../experiments/collect.ts';
import { diffRows, renderDiff, renderShow } from '../experiments/render.ts';
import { explainChange } from '../run/explain.ts';
import { parse, openWorkspace, loadSpec } from './args.ts';
import { HELP, help } from './help.ts';

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
  if (sub !== 'show' && sub !== 'diff') throw new UsageError(`unknown exp command '${sub}' (show or diff)\n\n${HELP.exp}`);
  const formats = (['json', 'csv', 'md'] as const).filter((f) => values[f]);
  if (formats.length > 1) throw new UsageError(`choose one of --${formats.join(', --')}`);
  const env = await openWorkspace(values);
  const planner = await loadSpec(values, positionals, 'exp', env);
  const table = await collectExperiments(planner.pipeline, env.store);
  if (sub === 'show') {
    if (positionals.length > 1) throw new UsageError(`exp show takes one spec\n\n${HELP.exp}`);
    const by = values['sort-by'] as string | undefined;
    if (by !== undefined && !table.metrics.includes(by)) throw new UsageError(`--sort-by: no metric '${by}' (metrics: ${table.metrics.join(', ') || 'none recorded'})`);
    process.stdout.write(renderShow(table, by ? sortByMetric(table, by) : table.rows, formats[0] ?? 'table', !!values['only-changed']));
    return 0;
  }
  if (positionals.length !== 3) throw new UsageError(`exp diff needs a spec and two runs\n\n${HELP.exp}`);
  const [a, b] = positionals.slice(1).map((ref) => {
    const hits = table.rows.filter((r) => (r.stage === ref && r.current) || (/^[0-9a-f]{4,32}$/.test(ref) && r.key.startsWith(ref)));
    if (hits.length === 1) return hits[0]!;
    if (hits.length > 1) throw new UsageError(`'${ref}' names ${hits.length} runs (${hits.map((h) => h.id).join(', ')}): give more of the key`);
    throw new UsageError(`no run '${ref}' in ${table.spec} (see \`pipeline exp show ${positionals[0]}\`: a run id, or a stage variant for its current run)`);
  });
  const ra = (await env.store.readRun(a!.key))!;
  const rb = (await env.store.readRun(b!.key))!;
  const other = (await explainChange(ra.fingerprint, rb.fingerprint, { manifest: (d) => env.store.readManifest(d) })).filter((r) => r.kind !== 'param' && r.kind !== 'seed').map((r) => r.text);
  process.stdout.write(renderDiff(diffRows(table, a!, b!, other), !!values.json));
  return 0;
}
