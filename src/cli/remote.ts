// `pipeline remote add/list/remove`, `pipeline push` and `pipeline pull`: the cache shared through
// a remote (S3-compatible or a folder). With a spec, push sends the runs the spec is served from
// now and pull fetches what the spec needs (through the scheduler, stage by stage, since a stage's
// key is known only once its upstream outputs are); without one, every run of the local cache goes
// up, or every run of the remote comes down.
import { relative } from 'node:path';
import { snapshotPath, unchangedSince } from '../cache/snapshot.ts';
import { inWorkspace } from '../paths.ts';
import { UsageError } from '../diagnostics.ts';
import { acquireLease } from '../cache/lock.ts';
import { pipelineStatus } from '../run/status.ts';
import { resolveStageNames, selectedStages } from '../run/scheduler.ts';
import { configPath, connectRemote, normalizeEntry, readConfig, writeConfig, type Scope } from '../remote/config.ts';
import { formatBytes } from '../remote/meter.ts';
import { TRANSFER_JOBS } from '../remote/pool.ts';
import { pushRuns, type PushResult } from '../remote/push.ts';
import { pullRuns, type PullResult } from '../remote/pull.ts';
import { runKeysIn, type Remote } from '../remote/remote.ts';
import { loadSpec, openWorkspace, parse, sayWaiting, type Env, type Values } from './args.ts';
import { printable } from '../text.ts';
import { checkPublicKey, setTrusted, signingKey, trustedKeys } from '../remote/trust.ts';
import { verifyRemote } from '../remote/verify.ts';
import { HELP, help } from './help.ts';
import { cmdRun } from './run.ts';


/** Stages `pull <spec>` fetches at once by default (each with its own transfers). */
const PULL_STAGES = 8;

const TRANSFER_OPTIONS = {
  remote: { type: 'string', short: 'r' },
  jobs: { type: 'string', short: 'j' },
} as const;

export function transferJobs(values: Values): number {
  const jobs = values.jobs === undefined ? TRANSFER_JOBS : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 256) throw new UsageError(`--jobs must be a whole number from 1 to 256, got '${values.jobs}'`);
  return jobs;
}

export async function cmdRemote(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse('remote', rest, {
    endpoint: { type: 'string' },
    region: { type: 'string' },
    default: { type: 'boolean' },
    cache: { type: 'boolean' },
    remote: { type: 'string', short: 'r' },
    repair: { type: 'boolean' },
    jobs: { type: 'string', short: 'j' },
  });
  if (values.help || sub === undefined || sub === '--help' || sub === '-h') return help('remote');
  if (sub === 'key' || sub === 'trust' || sub === 'untrust') return cmdTrust(sub, positionals);
  const env = await openWorkspace(values);
  if (sub === 'verify') return cmdVerifyRemote(values, env);
  const scope: Scope = values.cache ? 'cache' : 'workspace';
  const file = configPath(scope, env.workspace, env.store.root);
  if (sub === 'add') {
    if (positionals.length !== 2) throw new UsageError(`remote add takes a name and a URL\n\n${HELP.remote}`);
    const [name, url] = positionals as [string, string];
    const entry = normalizeEntry(name, url, { endpoint: values.endpoint as string | undefined, region: values.region as string | undefined }, env.workspace);
    const config = readConfig(file);
    const replaced = Object.hasOwn(config.remotes, name);
    config.remotes[name] = entry;
    if (values.default || Object.keys(config.remotes).length === 1) config.default = name;
    await writeConfig(file, config);
    process.stdout.write(`${replaced ? 'changed' : 'added'} remote '${name}': ${entry.url}${entry.endpoint ? ` at ${entry.endpoint}` : ''}${config.default === name ? ' (the default)' : ''}, in ${relative(env.workspace, file) || file}\n`);
    if (entry.url.startsWith('s3://')) process.stdout.write('credentials come from the AWS environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials): none is kept here\n');
    return 0;
  }
  if (sub === 'remove') {
    if (positionals.length !== 1) throw new UsageError(`remote remove takes a name\n\n${HELP.remote}`);
    const config = readConfig(file);
    if (!Object.hasOwn(config.remotes, positionals[0]!)) throw new UsageError(`no remote '${printable(positionals[0]!)}' in ${file}`);
    delete config.remotes[positionals[0]!];
    if (config.default === positionals[0]) delete config.default;
    await writeConfig(file, config);
    process.stdout.write(`removed remote '${positionals[0]}'\n`);
    return 0;
  }
  if (sub === 'list') {
    const lines: string[] = [];
    for (const s of ['workspace', 'cache'] as const) {
      const c = readConfig(configPath(s, env.workspace, env.store.root));
      for (const [name, e] of Object.entries(c.remotes)) lines.push(`${name}${c.default === name ? ' (default)' : ''}\t${e.url}${e.endpoint ? `\t${e.endpoint}` : ''}\t[${s}]`);
    }
    process.stdout.write(lines.length ? `${lines.join('\n')}\n` : 'no remote is configured (`pipeline remote add NAME URL`)\n');
    return 0;
  }
  throw new UsageError(`unknown remote command '${printable(sub)}' (add, list, remove, key, trust, untrust or verify)\n\n${HELP.remote}`);
}

/** `remote key`, `remote trust NAME:KEY`, `remote untrust NAME[:KEY]`: whose results this user accepts (trust.ts). */
async function cmdTrust(sub: 'key' | 'trust' | 'untrust', positionals: string[]): Promise<number> {
  if (sub === 'key') {
    if (positionals.length) throw new UsageError(`remote key takes no argument\n\n${HELP.remote}`);
    process.stdout.write(`${signingKey().publicKey}\n`);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`remote ${sub} takes one key (NAME:KEY, as \`pipeline remote key\` prints it)\n\n${HELP.remote}`);
  const keys = trustedKeys();
  if (sub === 'trust') {
    const key = checkPublicKey(positionals[0]!);
    if (key === signingKey().publicKey) process.stdout.write('that is your own key: your results are always accepted\n');
    else if (keys.includes(key)) process.stdout.write(`already trusted: ${key}\n`);
    else {
      await setTrusted([...keys, key]);
      process.stdout.write(`trusted: results signed by ${key.split(':')[0]} are accepted from now on\n`);
    }
    return 0;
  }
  const arg = positionals[0]!.trim();
  const left = keys.filter((k) => k !== arg && k.split(':')[0] !== arg);
  if (left.length === keys.length) throw new UsageError(`no trusted key '${printable(arg)}' (trusted: ${keys.map((k) => k.split(':')[0]).join(', ') || 'none but your own'})`);
  await setTrusted(left);
  process.stdout.write(`no longer trusted: ${keys.length - left.length} key${keys.length - left.length === 1 ? '' : 's'} named ${printable(arg.split(':')[0]!)}\n`);
  return 0;
}

/** `remote verify [--repair]`: exit 0 when every run on the remote would be accepted, 1 otherwise (after --repair too: what was found is said). */
async function cmdVerifyRemote(values: Values, env: Env): Promise<number> {
  const jobs = transferJobs(values);
  return withRemote(values, env, 'pipeline remote verify', async (remote, name) => {
    const r = await verifyRemote(env.store, remote, { jobs, repair: !!values.repair });
    const bad = r.badRuns.size + r.badObjects.size + r.badPacks.size + r.badManifests.size;
    process.stdout.write(`verify ${name}: ${r.runs} runs, ${r.objects} objects checked; ${bad ? `${r.badRuns.size} runs cannot be served, ${r.badObjects.size} loose objects, ${r.badPacks.size} packs and ${r.badManifests.size} file lists damaged` : 'all intact'}${r.untrusted.size ? `; ${r.untrusted.size} run${r.untrusted.size === 1 ? '' : 's'} signed only by keys not trusted here` : ''}\n`);
    for (const [key, why] of r.badRuns) process.stdout.write(`  run ${key.slice(0, 12)}: ${why}\n`);
    for (const [key, why] of r.untrusted) process.stdout.write(`  run ${key.slice(0, 12)} (not damage): ${why}\n`);
    for (const p of r.badPacks) process.stdout.write(`  pack ${p}: holds bytes that do not match what its list or an index says\n`);
    for (const o of r.badObjects) process.stdout.write(`  object ${o}: missing or does not match its digest\n`);
    for (const m of r.badManifests) process.stdout.write(`  file list ${m}: not a file list, or does not match its digest\n`);
    if (values.repair && bad) {
      process.stdout.write(`repaired: ${r.resent.length} run${r.resent.length === 1 ? '' : 's'} sent again from this cache; ${r.removed.length} record${r.removed.length === 1 ? '' : 's'} removed (no good copy here: push ${r.removed.length === 1 ? 'it' : 'them'} from where ${r.removed.length === 1 ? 'it' : 'they'} ran, or rerun)\n`);
    } else if (bad) process.stdout.write('run `pipeline remote verify --repair` to take what is bad off the remote and send good copies again\n');
    return bad ? 1 : 0;
  });
}

/**
 * Runs `work` with the cache leased (gc waits) and the remote named by --remote (or the default)
 * connected; closes, clears this process's temp files and lets the lease go however it ends.
 */
export async function withRemote<T>(values: Values, env: Env, command: string, work: (remote: Remote, name: string) => Promise<T>): Promise<T> {
  const lease = await acquireLease(env.store.root, command, { onWait: sayWaiting });
  let remote: { name: string; remote: Remote } | undefined;
  try {
    remote = await connectRemote(values.remote as string | undefined, env.workspace, env.store.root);
    return await work(remote.remote, remote.name);
  } finally {
    remote?.remote.close();
    await env.store.dropOwnTemp();
    await lease.release();
  }
}

export async function cmdPush(argv: string[]): Promise<number> {
  const { values, positionals } = parse('push', argv, TRANSFER_OPTIONS);
  if (values.help) return help('push');
  const jobs = transferJobs(values);
  const env = await openWorkspace(values);
  return withRemote(values, env, `pipeline push ${positionals.join(' ')}`, async (remote, name) => {
    let keys: string[];
    const notRun: string[] = [];
    const specAbs = positionals[0] ? inWorkspace(env.workspace, positionals[0]) : '';
    const specRel = relative(env.workspace, specAbs);
    // The whole spec, unchanged since its last complete run (the snapshot `run`'s no-op path
    // reads): its runs are the latest ones, with no key to compute.
    const same = positionals.length === 1 ? await unchangedSince(snapshotPath(env.store, env.workspace, specRel), specAbs, (values.set as string[] | undefined) ?? [], process.env) : undefined;
    if (same) {
      const latest = await env.store.readLatest(env.workspace, specRel);
      keys = same.stages.flatMap((id) => latest.get(id)?.key ?? []);
    } else if (positionals.length) {
      const planner = await loadSpec(values, positionals, 'push', env);
      const selected = selectedStages(planner.pipeline, resolveStageNames(planner.pipeline, positionals.slice(1)));
      const status = (await pipelineStatus(planner)).filter((s) => selected.has(s.stage));
      await env.digests.save();
      keys = status.flatMap((s) => (s.state === 'cached' && s.key ? [s.key] : []));
      notRun.push(...status.filter((s) => s.state !== 'cached').map((s) => s.stage));
    } else keys = await env.store.runKeys();
    const r = await pushRuns(env.store, remote, keys, { jobs });
    process.stdout.write(`${pushLine(name, r)}\n`);
    if (notRun.length) process.stdout.write(`not pushed: ${notRun.join(', ')} (stale: no run of the spec as it is now; run it first)\n`);
    for (const s of r.skipped) process.stdout.write(`not pushed: run ${s.key.slice(0, 12)}: ${s.why}\n`);
    return r.skipped.length ? 1 : 0;
  });
}

function pushLine(name: string, r: PushResult): string {
  if (!r.sent.length) return `push to ${name}: nothing new (${r.had.length} run${r.had.length === 1 ? '' : 's'} already there) in ${r.seconds.toFixed(2)} s`;
  return `push to ${name}: ${r.sent.length} run${r.sent.length === 1 ? '' : 's'} sent (${r.objects} objects, ${formatBytes(r.bytes)}, ${formatBytes(r.bytes / Math.max(r.seconds, 1e-3))}/s); ${r.had.length} already there; ${r.seconds.toFixed(2)} s`;
}

function pullLine(name: string, r: PullResult): string {
  return `pull from ${name}: ${r.pulled.length} run${r.pulled.length === 1 ? '' : 's'} fetched (${r.objects} objects, ${formatBytes(r.bytes)}, ${formatBytes(r.bytes / Math.max(r.seconds, 1e-3))}/s) in ${r.seconds.toFixed(2)} s`;
}

/** `pipeline pull [spec [stage...]]`: a spec goes through the scheduler (`run --pull --no-compute`). */
export async function cmdPull(argv: string[]): Promise<number> {
  const { values, positionals } = parse('pull', argv, TRANSFER_OPTIONS);
  if (values.help) return help('pull');
  const jobs = transferJobs(values);
  // Fetching only, stages wait on the network, not the cores: several more at once than a run.
  if (positionals.length) return cmdRun([...argv, '--pull', '--pull-only', ...(values.jobs === undefined ? ['--jobs', String(PULL_STAGES)] : [])]);
  const env = await openWorkspace(values);
  return withRemote(values, env, 'pipeline pull', async (remote, name) => {
    const local = new Set(await env.store.runKeys());
    const keys = [...runKeysIn(await remote.list('runs/'))].filter((k) => !local.has(k));
    const r = await pullRuns(env.store, remote, keys, { jobs });
    process.stdout.write(`${pullLine(name, r)}\n`);
    for (const x of r.refused) process.stderr.write(`refused run ${x.key.slice(0, 12)}: ${x.why}\n`);
    return r.refused.length ? 1 : 0;
  });
}
