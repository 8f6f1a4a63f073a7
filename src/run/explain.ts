// Says, in a researcher's words, what differs between two fingerprints of a stage:
// `param lr 0.001 -> 0.0003`, `file stages/logmel.ts changed`, `input data/x.wav changed`,
// `upstream features changed`.
import type { FileEntry } from '../cache/digests.ts';
import type { Fingerprint } from '../cache/fingerprint.ts';
import { UNKNOWN_OUTPUT } from './plan.ts';

export interface ExplainContext {
  /** Folder manifests by digest, to name the files that changed inside an input folder. */
  manifest(digest: string): Promise<FileEntry[] | undefined>;
}

const MAX_FILES = 5;

export async function explainChange(old: Fingerprint, cur: Fingerprint, ctx: ExplainContext): Promise<string[]> {
  const out: string[] = [];
  if (old.engine !== cur.engine) out.push(`engine ${old.engine} -> ${cur.engine}`);
  if (old.kind !== cur.kind) out.push(`stage kind ${old.kind} -> ${cur.kind}`);
  diffMaps(old.code, cur.code, (k, how) => out.push(`file ${k} ${how}`));
  diffMaps(old.packages, cur.packages, (k, how, a, b) => out.push(how === 'changed' ? `package ${k} ${a} -> ${b}` : `package ${k} ${how}`));
  // Upstream outputs not known yet are not a change of the command itself.
  const pending = JSON.stringify(cur.command).includes(UNKNOWN_OUTPUT);
  const cmd = (c: Fingerprint['command']) => (pending ? JSON.stringify(c).replace(/@[0-9a-f]{32}/g, UNKNOWN_OUTPUT) : JSON.stringify(c));
  if (cmd(old.command) !== cmd(cur.command)) {
    out.push(`command '${old.command?.argv.join(' ') ?? ''}' -> '${cur.command?.argv.join(' ') ?? ''}'`);
  }
  diffValues('param', old.params, cur.params, [], out);
  for (const [path, d] of Object.entries(cur.inputs)) {
    const was = old.inputs[path];
    if (was === undefined) out.push(`input ${path} added`);
    else if (was !== d) out.push(...(await describeInputChange(path, was, d, ctx)));
  }
  for (const path of Object.keys(old.inputs)) if (!(path in cur.inputs)) out.push(`input ${path} removed`);
  diffMaps(old.upstream, cur.upstream, (k, how) => {
    const [stage, output] = k.split('.');
    out.push(`upstream ${stage} ${how === 'changed' ? `changed (output ${output})` : `output ${output} ${how === 'added' ? 'now read' : 'no longer read'}`}`);
  });
  diffMaps(old.env, cur.env, (k, how, a, b) => out.push(how === 'changed' ? `env ${k} '${a}' -> '${b}'` : `env ${k} ${how}`));
  const shown = (v: string | null | undefined) => (v === null || v === undefined ? 'unset' : `'${v}'`);
  for (const k of new Set([...Object.keys(old.shellEnv ?? {}), ...Object.keys(cur.shellEnv ?? {})])) {
    const a = old.shellEnv?.[k];
    const b = cur.shellEnv?.[k];
    if (a !== b) out.push(`env $${k} read by the command ${shown(a)} -> ${shown(b)}`);
  }
  if (old.seed !== cur.seed) out.push(`seed ${old.seed} -> ${cur.seed}`);
  if (old.version !== cur.version) out.push(`version ${fmt(old.version)} -> ${fmt(cur.version)}`);
  if (JSON.stringify(old.outputs) !== JSON.stringify(cur.outputs)) out.push(`outputs [${old.outputs.join(', ')}] -> [${cur.outputs.join(', ')}]`);
  diffValues('stage fact', old.extras, cur.extras, [], out);
  return out;
}

async function describeInputChange(path: string, was: string, now: string, ctx: ExplainContext): Promise<string[]> {
  if (was === 'missing') return [`input ${path} appeared`];
  if (now === 'missing') return [`input ${path} is missing`];
  const [a, b] = await Promise.all([ctx.manifest(was), ctx.manifest(now)]);
  if (!a || !b) return [`input ${path} changed`];
  const before = new Map(a.map((f) => [f.path, f.digest]));
  const after = new Map(b.map((f) => [f.path, f.digest]));
  const lines: string[] = [];
  for (const [f, d] of after) {
    if (!before.has(f)) lines.push(`input ${path}/${f} added`);
    else if (before.get(f) !== d) lines.push(`input ${path}/${f} changed`);
  }
  for (const f of before.keys()) if (!after.has(f)) lines.push(`input ${path}/${f} removed`);
  if (lines.length > MAX_FILES) return [...lines.slice(0, MAX_FILES), `input ${path}: ${lines.length - MAX_FILES} more files changed`];
  return lines.length ? lines : [`input ${path} changed`];
}

function diffMaps(a: Record<string, string>, b: Record<string, string>, emit: (k: string, how: 'added' | 'removed' | 'changed', before?: string, after?: string) => void): void {
  for (const [k, v] of Object.entries(b)) {
    if (!(k in a)) emit(k, 'added');
    else if (a[k] !== v) emit(k, 'changed', a[k], v);
  }
  for (const k of Object.keys(a)) if (!(k in b)) emit(k, 'removed');
}

function diffValues(label: string, a: unknown, b: unknown, path: string[], out: string[]): void {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) diffValues(label, a[k], b[k], [...path, k], out);
    return;
  }
  if (JSON.stringify(a) === JSON.stringify(b)) return;
  const name = path.join('.') || '(all)';
  if (a === undefined) out.push(`${label} ${name} added (${fmt(b)})`);
  else if (b === undefined) out.push(`${label} ${name} removed (was ${fmt(a)})`);
  else out.push(`${label} ${name} ${fmt(a)} -> ${fmt(b)}`);
}

function fmt(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
