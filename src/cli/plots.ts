// `pipeline plots show <spec>` and `plots diff <spec> A B`: the declared `plots:` series of recorded
// runs overlaid in one self-contained HTML page (src/experiments/plots.ts), written into the workspace.
import { mkdir } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { UsageError } from '../diagnostics.ts';
import { renderPlots } from '../experiments/plots.ts';
import { liveRows } from '../experiments/collect.ts';
import { writeFileAtomic } from '../fsutil.ts';
import { inWorkspace, outsTargetProblem } from '../paths.ts';
import { parse, openWorkspace, loadSpec } from './args.ts';
import { experimentsNow, findRun } from './exp.ts';
import { HELP, help } from './help.ts';

/** How often `plots show --watch` redraws the page (and the page reloads itself). */
export const WATCH_SECONDS = 5;

export async function cmdPlots(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse('plots', rest, { out: { type: 'string', short: 'o' }, live: { type: 'boolean' }, watch: { type: 'boolean', short: 'w' } });
  if (values.help || sub === '--help' || sub === '-h' || sub === undefined) return help('plots');
  if (sub !== 'show' && sub !== 'diff') throw new UsageError(`unknown plots command '${sub}' (show or diff)\n\n${HELP.plots}`);
  if (sub === 'show' && positionals.length !== 1) throw new UsageError(`plots show takes one spec\n\n${HELP.plots}`);
  if (sub === 'diff' && positionals.length !== 3) throw new UsageError(`plots diff needs a spec and two runs\n\n${HELP.plots}`);
  if (sub === 'diff' && (values.live || values.watch)) throw new UsageError('--live and --watch are for plots show (a diff compares two recorded runs)');
  const env = await openWorkspace(values);
  const planner = await loadSpec(values, positionals.slice(0, 1), 'plots', env);
  const out = inWorkspace(env.workspace, (values.out as string | undefined) ?? 'plots.html');
  const problem = outsTargetProblem(env.workspace, env.store.root, out);
  if (problem) throw new UsageError(`--out: ${problem}`);
  const live = !!values.live || !!values.watch;
  const draw = async (): Promise<string> => {
    const table = await experimentsNow(planner, env.store);
    const rows = sub === 'diff' ? positionals.slice(1).map((ref) => findRun(table, ref, positionals[0]!)) : [...table.rows, ...(live ? await liveRows(planner.pipeline, env.store.root) : [])];
    const running = rows.filter((r) => r.running).length;
    const { html, charts } = await renderPlots(`${table.spec}: ${sub === 'diff' ? `${rows[0]!.id} against ${rows[1]!.id}` : live ? 'every recorded run, and those running now' : 'every recorded run'}`, rows, values.watch ? WATCH_SECONDS : undefined);
    await mkdir(dirname(out), { recursive: true });
    await writeFileAtomic(out, html);
    return `${relative(process.cwd(), out) || out}: ${charts} chart${charts === 1 ? '' : 's'} of ${rows.length} run${rows.length === 1 ? '' : 's'}${running ? ` (${running} running)` : ''}${charts ? '' : ' (no run has a declared `plots:` series)'}`;
  };
  if (!values.watch) {
    process.stdout.write(`${await draw()}\n`);
    return 0;
  }
  // --watch: redrawn every few seconds until interrupted; the page reloads itself as often.
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    while (!stop.signal.aborted) {
      process.stderr.write(`${await draw()}; open it in a browser (it reloads every ${WATCH_SECONDS} s); Ctrl-C to stop\n`);
      await new Promise((r) => { const t = setTimeout(r, WATCH_SECONDS * 1000); stop.signal.addEventListener('abort', () => { clearTimeout(t); r(undefined); }, { once: true }); });
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return 0;
}
