// JSON Schema checks (ajv), with every error turned into a positioned Diagnostic. A check that
// passed is remembered (by the hash of schema and value) so that rerunning an unchanged spec needs
// neither ajv's ~70 ms load nor its schema compilation.
import type { ErrorObject, ValidateFunction } from 'ajv';

type Ajv = import('ajv').default;
import { readFileSync } from 'node:fs';
import type { Diagnostic } from '../diagnostics.ts';
import { CORRUPT, readSealed, writeSealed } from '../fsutil.ts';
import { hashJson, jsonExact } from '../cache/hash.ts';
import type { SpecPath, SpecSource } from './source.ts';

export type JsonSchema = Record<string, unknown>;

let ajvInstance: Ajv | undefined;
async function ajv(): Promise<Ajv> {
  if (!ajvInstance) {
    // ajv is CommonJS: its class is the `default` of the module's default export.
    const AjvClass = (await import('ajv')).default as unknown as { default: new (o: object) => Ajv };
    // allErrors: every problem at once; useDefaults: resolved params carry their defaults;
    // verbose: errors carry their schema, for hints.
    ajvInstance = new AjvClass.default({ allErrors: true, useDefaults: true, strict: false, verbose: true });
  }
  return ajvInstance;
}

const pipelineSchema = JSON.parse(readFileSync(new URL('../../schemas/pipeline.schema.json', import.meta.url), 'utf8')) as JsonSchema;
const PIPELINE_SCHEMA_TEXT = JSON.stringify(pipelineSchema);
const compiled = new WeakMap<object, ValidateFunction>();
const schemaTexts = new WeakMap<object, string>();

async function validator(schema: JsonSchema): Promise<ValidateFunction> {
  const hit = compiled.get(schema);
  if (hit) return hit;
  const fn = (await ajv()).compile(schema);
  compiled.set(schema, fn);
  return fn;
}

interface Memo {
  shape?: boolean;
  /** hash of (schema, params as written) -> params with defaults filled in */
  params: Record<string, unknown>;
}

export class SchemaChecks {
  private memo: Memo = { params: {} };
  private dirty = false;

  /** `memoFile`: where passed checks are remembered (none: always check). */
  constructor(private readonly memoFile?: string) {}

  async load(): Promise<void> {
    if (!this.memoFile) return;
    const m = await readSealed<Memo>(this.memoFile);
    // A damaged memo could say a bad spec passed: dropped, everything is checked again.
    this.memo = m === undefined || m === CORRUPT || typeof m.params !== 'object' || m.params === null ? { params: {} } : m;
  }

  /** Saves what passed; call only when the whole spec was free of problems. */
  async save(): Promise<void> {
    if (this.memoFile && this.dirty) await writeSealed(this.memoFile, this.memo);
  }

  async pipeline(src: SpecSource, value: unknown): Promise<Diagnostic[]> {
    if (this.memo.shape) return [];
    const fn = await validator(pipelineSchema);
    fn(value);
    const diags = toDiagnostics(src, [], fn.errors ?? [], value);
    if (!diags.length) {
      this.memo.shape = true;
      this.dirty = true;
    }
    return diags;
  }

  /** Checks a stage's params against its module's schema; returns them with defaults filled in. */
  async params(src: SpecSource, at: SpecPath, schema: JsonSchema, value: Record<string, unknown>): Promise<{ value: Record<string, unknown>; diags: Diagnostic[] }> {
    let text = schemaTexts.get(schema);
    if (text === undefined) {
      text = JSON.stringify(schema);
      schemaTexts.set(schema, text);
    }
    const key = await hashJson({ schema: text, value });
    const hit = this.memo.params[key];
    if (hit !== undefined) return { value: structuredClone(hit) as Record<string, unknown>, diags: [] };
    const fn = await validator(schema);
    fn(value);
    const diags = toDiagnostics(src, at, fn.errors ?? [], value);
    // Remembered only where JSON keeps the value exactly (not .inf or .nan).
    if (!diags.length && jsonExact(value)) {
      this.memo.params[key] = value;
      this.dirty = true;
    }
    return { value, diags };
  }
}

/** Memo file name for a spec value: changes with the value and with the pipeline schema. */
export async function checksMemoName(raw: unknown): Promise<string> {
  return `${await hashJson({ raw, schema: PIPELINE_SCHEMA_TEXT })}.checks.json`;
}

/**
 * ajv's errors as diagnostics at their place in the spec file. `checked` is the value ajv checked
 * (at `at`): what a message says was found is read from it, not from the file, since --set values
 * and resolved references may have replaced what the file says there.
 */
function toDiagnostics(src: SpecSource, at: SpecPath, errors: ErrorObject[], checked: unknown): Diagnostic[] {
  // A oneOf failure also reports why each branch failed; only the oneOf itself is useful.
  const oneOfs = errors.filter((e) => e.keyword === 'oneOf').map((e) => e.schemaPath);
  const kept = errors.filter(
    (e) => e.keyword === 'oneOf' || !oneOfs.some((p) => e.schemaPath.startsWith(`${p}/`)),
  );
  // A oneOf whose value is of one branch's kind, with errors reported inside the value: those say
  // what is wrong ("must be a string or a list, got a list" would not).
  const inside = (e: ErrorObject) => kept.some((x) => x !== e && x.instancePath.startsWith(`${e.instancePath}/`));
  const ofItsKind = (e: ErrorObject) => {
    const v = valueAt(checked, pointerToPath(e.instancePath));
    return ((e.parentSchema as { oneOf?: JsonSchema[] })?.oneOf ?? []).some((b) => (Array.isArray(v) ? branchName(b).endsWith('list') : branchName(b) === `a ${v === null ? 'null' : typeof v}`));
  };
  const useful = kept.filter((e) => !(e.keyword === 'oneOf' && ofItsKind(e) && inside(e)));
  const seen = new Set<string>();
  const out: Diagnostic[] = [];
  for (const e of useful) {
    const path = indexed(src.value, [...at, ...pointerToPath(e.instancePath)]);
    let d: Diagnostic;
    switch (e.keyword) {
      case 'required':
        d = src.diagnostic(path, `missing required key '${(e.params as { missingProperty: string }).missingProperty}'`);
        break;
      case 'additionalProperties': {
        const name = (e.params as { additionalProperty: string }).additionalProperty;
        const allowed = Object.keys((e.parentSchema as { properties?: object })?.properties ?? {});
        const hint = closest(name, allowed);
        d = src.diagnostic([...path, name], `unknown key '${name}'${hint ? ` (did you mean '${hint}'?)` : allowed.length ? ` (allowed: ${allowed.join(', ')})` : ''}`, true);
        break;
      }
      case 'propertyNames': {
        const name = (e.params as { propertyName: string }).propertyName;
        d = src.diagnostic([...path, name], `'${name}' is not a valid name: use letters, digits, '_' and '-', starting with a letter`, true);
        break;
      }
      case 'pattern':
        if (e.propertyName !== undefined) continue; // reported by propertyNames above
        d = src.diagnostic(path, e.message ?? 'invalid');
        break;
      case 'type':
        d = src.diagnostic(path, `must be ${(e.params as { type: string | string[] }).type.toString().replace(/,/g, ' or ')}, got ${describe(valueAt(checked, pointerToPath(e.instancePath)))}`);
        break;
      case 'enum':
        d = src.diagnostic(path, `must be one of: ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`);
        break;
      case 'oneOf': {
        const branches = ((e.parentSchema as { oneOf?: JsonSchema[] })?.oneOf ?? []).map(branchName);
        d = src.diagnostic(path, `must be ${branches.join(' or ')}, got ${describe(valueAt(checked, pointerToPath(e.instancePath)))}`);
        break;
      }
      default:
        d = src.diagnostic(path, e.message ?? `fails ${e.keyword}`);
    }
    const k = `${d.line}:${d.col}:${d.message}`;
    if (!seen.has(k)) {
      seen.add(k);
      out.push(d);
    }
  }
  return out;
}

function branchName(s: JsonSchema): string {
  if (s.type === 'array' || s.$ref) return typeof s.minItems === 'number' && s.minItems > 0 ? 'a non-empty list' : 'a list';
  return `a ${String(s.type ?? 'value')}`;
}

function pointerToPath(pointer: string): string[] {
  if (!pointer) return [];
  return pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** A path whose segments into lists are numbers (`needs[0]`, as the rest of the diagnostics write it). */
function indexed(root: unknown, path: SpecPath): SpecPath {
  let v = root;
  return path.map((seg) => {
    const out = Array.isArray(v) && /^\d+$/.test(String(seg)) ? Number(seg) : seg;
    v = v && typeof v === 'object' ? (v as Record<string, unknown>)[out] : undefined;
    return out;
  });
}

function valueAt(root: unknown, path: SpecPath): unknown {
  let v = root;
  for (const seg of path) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[seg] : undefined;
  return v;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return v.length ? 'a list' : 'an empty list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

/** The allowed name nearest to a misspelt one, if it is near enough to be a likely typo. */
export function closest(name: string, options: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const o of options) {
    const d = editDistance(name.toLowerCase(), o.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = o;
    }
  }
  return bestD <= Math.max(1, Math.floor(name.length / 3)) ? best : undefined;
}

/** Optimal string alignment distance: a swap of two neighbours ('scael') counts as one edit. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}
