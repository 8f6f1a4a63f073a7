// `pipeline exp show` and `exp diff`: experiments compared from the run records; `exp save` and
// `exp forget`: names that keep a spec's current runs past gc.
import { UsageError } from '../diagnostics.ts';
import { collectExperiments, liveRows, sortByMetric, type ExpRow, type ExpTable } from '../experiments/collect.ts';
import type { Planner } from '../run/plan.ts';
import type { Store } from '../cache/store.ts';
import { diffRows, renderDiff, renderShow } from '../experiments/render.ts';
import { explainChange } from '../run/explain.ts';
import { parse, openWorkspace, loadSpec } from './args.ts';
import { HELP, help } from './help.ts';
import { SavedNames, checkName, isSavedName, saveName } from '../cache/names.ts';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { CORRUPT, parseSealed } from '../fsutil.ts';
import { formatBytes } from '../remote/meter.ts';
import { pullRuns } from '../remote/pull.ts';
import { pushRuns } from '../remote/push.ts';
import { BadObject, MAX_BYTES, RemoteError, savedName } from '../remote/remote.ts';
import { transferJobs, withRemote } from './remote.ts';
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
  // push and pull take their own options (--remote, --jobs): parsed there, not as show's.
  if (sub === 'push' || sub === 'pull') return expTransfer(sub, rest);
  const { values, positionals } = parse('exp', rest, {
    json: { type: 'boolean' },
    csv: { type: 'boolean' },
    md: { type: 'boolean' },
    'sort-by': { type: 'string' },
    'only-changed': { type: 'boolean' },
    live: { type: 'boolean' },
  });
  if (values.help || sub === '--help' || sub === '-h' || sub === undefined) return help('exp');
  if (sub !== 'show' && sub !== 'diff' && sub !== 'save' && sub !== 'forget') throw new UsageError(`unknown exp command '${sub}' (show, diff, save, forget, push or pull)\n\n${HELP.exp}`);
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
    const rows = by ? sortByMetric(table, by) : table.rows;
    // --live: stages of this spec running now (in any run on this cache), with their series so far.
    const live = values.live ? await liveRows(planner.pipeline, env.store.root) : [];
    for (const r of live) for (const m of Object.keys(r.metrics)) if (!table.metrics.includes(m)) table.metrics.push(m);
    process.stdout.write(renderShow(table, [...rows, ...live], formats[0] ?? 'table', !!values['only-changed']));
    if (values.live && !live.length && formats[0] === undefined) process.stdout.write('no stage of this spec is running now\n');
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

/**
 * `exp push [NAME...]`: named experiments (all saved ones when none is named) and their runs to the
 * remote, each name's record after its runs. `exp pull [NAME...]`: from the remote (all it holds when
 * none is named), each name saved here only once every run it keeps has arrived intact.
 */
async function expTransfer(sub: 'push' | 'pull', argv: string[]): Promise<number> {
  const { values, positionals } = parse('exp', argv, { remote: { type: 'string', short: 'r' }, jobs: { type: 'string', short: 'j' } });
  const jobs = transferJobs(values);
  const env = await openWorkspace(values);
  const names = new SavedNames(env.store.root);
  return withRemote(values, env, `pipeline exp ${sub}`, async (remote, remoteName) => {
    if (sub === 'push') {
      const saved = await names.all();
      const chosen = positionals.length ? positionals.map((n) => saved.find((s) => s.name === checkName(n)) ?? fail(`no saved experiment '${n}' in this cache (\`pipeline exp save ${n} <spec>\` or \`run --name ${n}\`)`)) : saved;
      if (!chosen.length) throw new UsageError('no saved experiment to push (`pipeline exp save NAME <spec>` or `pipeline run --name NAME`)');
      for (const e of chosen) {
        const r = await pushRuns(env.store, remote, Object.values(e.runs), { jobs });
        if (r.skipped.length) throw new RemoteError(`experiment '${e.name}' not pushed: ${r.skipped.map((s) => `run ${s.key.slice(0, 12)}: ${s.why}`).join('; ')}`);
        // Last: the name, once every run it keeps is there.
        await remote.putBytes(savedName(e.name), await readFile(names.file(e.name)));
        process.stdout.write(`pushed experiment '${e.name}' to ${remoteName}: ${Object.keys(e.runs).length} runs (${r.sent.length} sent, ${r.had.length} already there; ${formatBytes(r.bytes)})\n`);
      }
      return 0;
    }
    const wanted = positionals.length ? positionals.map(checkName) : [...(await remote.list('names/')).keys()].flatMap((n) => /^names\/(.+)\.json$/.exec(n)?.[1] ?? []).filter((n) => { try { return checkName(n) === n; } catch { return false; } });
    if (!wanted.length) throw new UsageError(`${remoteName} holds no named experiment (\`pipeline exp push NAME\` from where it was saved)`);
    let failed = 0;
    for (const name of wanted) {
      const bytes = await remote.getBytes(savedName(name), MAX_BYTES.name);
      if (!bytes) throw new UsageError(`${remoteName} has no experiment '${name}'`);
      const entry = await parseSealed<unknown>(bytes.toString('utf8'));
      if (entry === CORRUPT || !isSavedName(entry) || entry.name !== name) throw new BadObject(`${savedName(name)} on ${remote.where} is damaged (its seal or shape is wrong): refused`);
      const r = await pullRuns(env.store, remote, Object.values(entry.runs).filter((k) => !existsSync(env.store.runPath(k))), { jobs });
      const bad = [...r.refused.map((x) => `run ${x.key.slice(0, 12)}: ${x.why}`), ...r.absent.map((k) => `run ${k.slice(0, 12)} is not on the remote`)];
      if (bad.length) {
        process.stderr.write(`experiment '${name}' not pulled: ${bad.join('; ')}\n`);
        failed++;
        continue;
      }
      await names.save(entry);
      process.stdout.write(`pulled experiment '${name}' (${entry.spec}, saved ${entry.savedAt.slice(0, 16).replace('T', ' ')}${entry.git ? ` at ${entry.git.commit.slice(0, 7)}${entry.git.dirty ? ' (dirty)' : ''}` : ''}): ${Object.keys(entry.runs).length} runs, ${r.pulled.length} fetched (${formatBytes(r.bytes)}); \`pipeline exp show ${entry.spec}\` lists them\n`);
    }
    return failed ? 1 : 0;
  });
}

function fail(text: string): never {
  throw new UsageError(text);
}
