// Commands that look and run nothing: `status` (why each stage would rerun), `validate`, `dag`.
import { printable } from '../text.ts';
import { renderDag } from '../run/dag.ts';
import { SpecError, UsageError } from '../diagnostics.ts';
import { pipelineStatus, type StageStatus } from '../run/status.ts';
import { detachedStates } from '../executors/slurm.ts';
import { parse, openWorkspace, loadSpec } from './args.ts';
import { help } from './help.ts';

export function printStatus(st: StageStatus[], json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(st, null, 2)}\n`);
    return;
  }
  const w = Math.max(...st.map((s) => s.stage.length));
  for (const s of st) {
    const head = `${s.stage.padEnd(w)}  ${s.state}${s.slurm ? ` [${s.slurm}]` : ''}`;
    if (!s.reasons.length) process.stdout.write(`${head}\n`);
    // Reasons name files inside folders (any bytes a stage wrote): made printable.
    else process.stdout.write(`${head}: ${printable(s.reasons[0]!.text)}\n${s.reasons.slice(1).map((r) => `${' '.repeat(w + 2 + s.state.length + 2)}${printable(r.text)}\n`).join('')}`);
  }
}

export async function cmdStatus(argv: string[]): Promise<number> {
  const { values, positionals } = parse('status', argv, { json: { type: 'boolean' } });
  if (values.help) return help('status');
  const env = await openWorkspace(values);
  const planner = await loadSpec(values, positionals, 'status', env);
  const st = await pipelineStatus(planner);
  const jobs = await detachedStates(env.store.root, env.workspace, planner.pipeline.specRel);
  for (const s of st) if (s.state === 'stale' && jobs.has(s.stage)) s.slurm = jobs.get(s.stage);
  await env.digests.save();
  printStatus(st, !!values.json);
  return 0;
}

export async function cmdValidate(argv: string[]): Promise<number> {
  const { values, positionals } = parse('validate', argv, { json: { type: 'boolean' } });
  if (values.help) return help('validate');
  const env = await openWorkspace(values);
  if (values.json) {
    // Every problem as data, for editors and scripts; the exit code still says valid (0) or not (2).
    try {
      const { pipeline } = await loadSpec(values, positionals, 'validate', env);
      await env.digests.save();
      process.stdout.write(`${JSON.stringify({ spec: positionals[0], valid: true, stages: pipeline.order, diagnostics: [] }, null, 2)}\n`);
      return 0;
    } catch (e) {
      if (!(e instanceof SpecError)) throw e;
      process.stdout.write(`${JSON.stringify({ spec: positionals[0], valid: false, stages: [], diagnostics: e.diagnostics }, null, 2)}\n`);
      return 2;
    }
  }
  const { pipeline } = await loadSpec(values, positionals, 'validate', env);
  await env.digests.save();
  process.stdout.write(`${positionals[0]}: valid (${pipeline.stages.size} stages)\n`);
  return 0;
}

export async function cmdDag(argv: string[]): Promise<number> {
  const { values, positionals } = parse('dag', argv, { format: { type: 'string' } });
  if (values.help) return help('dag');
  const format = (values.format as string | undefined) ?? 'mermaid';
  if (format !== 'mermaid' && format !== 'dot') throw new UsageError(`--format must be mermaid or dot, got '${format}'`);
  const env = await openWorkspace(values);
  process.stdout.write(renderDag((await loadSpec(values, positionals, 'dag', env)).pipeline, format));
  return 0;
}
