// Says what differs between two fingerprints of a stage, each difference once, as data (`kind`,
// `name`, `old`, `new`: digests for files) and in a researcher's words (`text`):
// `param lr 0.001 -> 0.0003`, `file stages/logmel.ts changed`, `input data/x.wav changed`,
// `upstream features changed`.
import { looksSecret, SECRET_PREFIX } from '../secrets.ts';
import type { FileEntry } from '../cache/digests.ts';
import type { Fingerprint } from '../cache/fingerprint.ts';
import { UNKNOWN_OUTPUT } from './plan.ts';
import { isRecord } from '../records.ts';

export interface ExplainContext {
  /** Folder manifests by digest, to name the files that changed inside an input folder. */
  manifest(digest: string): Promise<FileEntry[] | undefined>;
}

const MAX_FILES = 5;

/** Why a stage would rerun. `old`/`new`: values, versions or content digests (null: absent). */
export interface Reason {
  kind: 'code' | 'package' | 'command' | 'param' | 'input' | 'upstream' | 'env' | 'seed' | 'version' | 'outputs' | 'engine' | 'stage-kind' | 'fact' | 'state';
  /** The file, param path, variable, `stage.output`, ... it is about ('' for the stage itself). */
  name: string;
  old?: unknown;
  new?: unknown;
  /** The line `pipeline status` prints. */
  text: string;
}

/** A reason about the stage's state rather than a difference (never run, forced, ...). */
export function stateReason(name: string, text: string): Reason {
  return { kind: 'state', name, text };
}

export async function explainChange(old: Fingerprint, cur: Fingerprint, ctx: ExplainContext): Promise<Reason[]> {
  const out: Reason[] = [];
  const say = (kind: Reason['kind'], name: string, a: unknown, b: unknown, text: string) => out.push({ kind, name, old: a ?? null, new: b ?? null, text });
  if (old.engine !== cur.engine) say('engine', '', old.engine, cur.engine, `engine ${old.engine} -> ${cur.engine}`);
  if (old.kind !== cur.kind) say('stage-kind', '', old.kind, cur.kind, `stage kind ${old.kind} -> ${cur.kind}`);
  diffMaps(old.code, cur.code, (k, how, a, b) => say('code', k, a, b, `file ${k} ${how}`));
  diffMaps(old.packages, cur.packages, (k, how, a, b) => say('package', k, a, b, how === 'changed' ? `package ${k} ${a} -> ${b}` : `package ${k} ${how}`));
  // Upstream outputs not known yet are not a change of the command itself.
  const pending = JSON.stringify(cur.command).includes(UNKNOWN_OUTPUT);
  const cmd = (c: Fingerprint['command']) => (pending ? JSON.stringify(c).replace(/@[0-9a-f]{32}/g, UNKNOWN_OUTPUT) : JSON.stringify(c));
  if (cmd(old.command) !== cmd(cur.command)) {
    const a = old.command?.argv.join(' ') ?? '';
    const b = cur.command?.argv.join(' ') ?? '';
    say('command', '', a, b, `command '${a}' -> '${b}'`);
  }
  diffValues('param', old.params, cur.params, [], out);
  for (const [path, d] of Object.entries(cur.inputs)) {
    const was = old.inputs[path];
    if (was === undefined) say('input', path, null, digestOrNull(d), `input ${path} added`);
    else if (was !== d) out.push(...(await describeInputChange(path, was, d, ctx)));
  }
  for (const [path, was] of Object.entries(old.inputs)) if (!(path in cur.inputs)) say('input', path, digestOrNull(was), null, `input ${path} removed`);
  diffMaps(old.upstream, cur.upstream, (k, how, a, b) => {
    const [stage, output] = k.split('.');
    say('upstream', k, a, b, `upstream ${stage} ${how === 'changed' ? `changed (output ${output})` : `output ${output} ${how === 'added' ? 'now read' : 'no longer read'}`}`);
  });
  // A secret's value (secrets.ts) is never shown, not even its digest: that it changed is all.
  const secret = (k: string, ...vs: Array<string | null | undefined>) => looksSecret(k) || vs.some((v) => v?.startsWith(SECRET_PREFIX));
  diffMaps(old.env, cur.env, (k, how, a, b) => {
    if (secret(k, a, b)) say('env', k, null, null, `env ${k} ${how} (a secret: its value is not shown)`);
    else say('env', k, a, b, how === 'changed' ? `env ${k} '${a}' -> '${b}'` : `env ${k} ${how}`);
  });
  const shown = (v: string | null | undefined) => (v === null || v === undefined ? 'unset' : `'${v}'`);
  for (const k of new Set([...Object.keys(old.shellEnv ?? {}), ...Object.keys(cur.shellEnv ?? {})])) {
    const a = old.shellEnv?.[k];
    const b = cur.shellEnv?.[k];
    if (a === b) continue;
    if (secret(k, a, b)) say('env', `$${k}`, null, null, `env $${k} read by the command changed (a secret: its value is not shown)`);
    else say('env', `$${k}`, a, b, `env $${k} read by the command ${shown(a)} -> ${shown(b)}`);
  }
  if (old.seed !== cur.seed) say('seed', '', old.seed, cur.seed, `seed ${old.seed} -> ${cur.seed}`);
  if (old.version !== cur.version) say('version', '', old.version, cur.version, `version ${fmt(old.version)} -> ${fmt(cur.version)}`);
  if (JSON.stringify(old.outputs) !== JSON.stringify(cur.outputs)) say('outputs', '', old.outputs, cur.outputs, `outputs [${old.outputs.join(', ')}] -> [${cur.outputs.join(', ')}]`);
  diffValues('stage fact', old.extras, cur.extras, [], out);
  const seen = new Set<string>();
  return out.filter((r) => (seen.has(r.text) ? false : (seen.add(r.text), true)));
}

const digestOrNull = (d: string | undefined) => (d === undefined || d === 'missing' ? null : d);

async function describeInputChange(path: string, was: string, now: string, ctx: ExplainContext): Promise<Reason[]> {
  const r = (name: string, a: string | undefined, b: string | undefined, text: string): Reason => ({ kind: 'input', name, old: digestOrNull(a), new: digestOrNull(b), text });
  if (was === 'missing') return [r(path, was, now, `input ${path} appeared`)];
  if (now === 'missing') return [r(path, was, now, `input ${path} is missing`)];
  const [a, b] = await Promise.all([ctx.manifest(was), ctx.manifest(now)]);
  if (!a || !b) return [r(path, was, now, `input ${path} changed`)];
  const before = new Map(a.map((f) => [f.path, f.digest]));
  const after = new Map(b.map((f) => [f.path, f.digest]));
  const lines: Reason[] = [];
  for (const [f, d] of after) {
    if (!before.has(f)) lines.push(r(`${path}/${f}`, undefined, d, `input ${path}/${f} added`));
    else if (before.get(f) !== d) lines.push(r(`${path}/${f}`, before.get(f), d, `input ${path}/${f} changed`));
  }
  for (const [f, d] of before) if (!after.has(f)) lines.push(r(`${path}/${f}`, d, undefined, `input ${path}/${f} removed`));
  if (lines.length > MAX_FILES) return [...lines.slice(0, MAX_FILES), r(path, was, now, `input ${path}: ${lines.length - MAX_FILES} more files changed`)];
  return lines.length ? lines : [r(path, was, now, `input ${path} changed`)];
}

function diffMaps(a: Record<string, string>, b: Record<string, string>, emit: (k: string, how: 'added' | 'removed' | 'changed', before?: string, after?: string) => void): void {
  for (const [k, v] of Object.entries(b)) {
    if (!(k in a)) emit(k, 'added');
    else if (a[k] !== v) emit(k, 'changed', a[k], v);
  }
  for (const k of Object.keys(a)) if (!(k in b)) emit(k, 'removed');
}

function diffValues(label: 'param' | 'stage fact', a: unknown, b: unknown, path: string[], out: Reason[]): void {
  if (isRecord(a) && isRecord(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) diffValues(label, a[k], b[k], [...path, k], out);
    return;
  }
  if (JSON.stringify(a) === JSON.stringify(b)) return;
  const name = path.join('.') || '(all)';
  const kind = label === 'param' ? 'param' : 'fact';
  const text = a === undefined ? `${label} ${name} added (${fmt(b)})` : b === undefined ? `${label} ${name} removed (was ${fmt(a)})` : `${label} ${name} ${fmt(a)} -> ${fmt(b)}`;
  out.push({ kind, name, old: a ?? null, new: b ?? null, text });
}

function fmt(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
