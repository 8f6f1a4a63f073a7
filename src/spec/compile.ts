// Spec file -> Pipeline: parse, apply --set, check the shape and every stage's params against
// their schemas, expand matrices, resolve references, and find cycles. Every problem is collected
// and thrown together as one SpecError.
import { keyedValue, looksSecret } from '../secrets.ts';
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { inWorkspace, isWithin, pathProblem, type PathRole } from '../paths.ts';
import { parseDuration } from './duration.ts';
import { ShellLexer, shellQuote, shellScriptIndex, ShellValueError } from './shell.ts';
import { nestedValues } from './nested-shells.ts';
import { SpecError, UsageError, type Diagnostic } from '../diagnostics.ts';
import type { StageModules } from '../modules.ts';
import type { StageDefinition } from '../stage-api.ts';
import { checksMemoName, closest, SchemaChecks } from './schema.ts';
import { SpecSource, yamlLib, type SpecPath } from './source.ts';
import { exprText, parsePieces, type Expr } from './references.ts';
import type { ExecutorName, InputSpec, OutputRef, Pipeline, StageNode, Template, TemplatePart } from './model.ts';
import { findCycle, topoOrder } from '../run/graph.ts';
import { SELF_PACKAGE } from '../bundle.js';
import { isRecord } from '../records.ts';

export interface CompileOptions {
  workspace: string;
  /** `--set a.b=value` overrides: `stages.<id>...` edits a stage, anything else edits `params`. */
  sets?: string[];
  env?: Record<string, string | undefined>;
  /** Where built-in stage modules live (the package root), tried after the workspace. */
  builtinRoot?: string;
  /** Display name for the spec in messages (defaults to the path relative to cwd). */
  displayName?: string;
  /** The cache folder: no stage path may touch it; parsed specs are memoized there by content. */
  cacheDir: string;
  /** Compiles and imports stage modules (to read their params schema and outputs). */
  modules: StageModules;
  /** `--executor`: every stage runs there, whatever the spec says (a Slurm job's own run: `process`). */
  executor?: ExecutorName;
}

type Obj = Record<string, unknown>;

interface PendingRef {
  from: string;
  target: string;
  output: string;
  path: SpecPath;
  resolved: OutputRef[];
  /** True when the target is a sweep whose matrix keys the consumer does not pin: all variants. */
  gathers?: boolean;
}

interface Scope {
  params: Obj;
  env: Record<string, string | undefined>;
  matrix: Obj;
  /** Where stage output references may appear; elsewhere they are an error. */
  refs: 'none' | 'inputs' | 'command';
  /** Collects the environment variables read. */
  envRead: Record<string, string | null>;
}

export async function compilePipeline(specFile: string, opts: CompileOptions): Promise<Pipeline> {
  const workspace = resolve(opts.workspace);
  const abs = inWorkspace(workspace, specFile);
  const display = opts.displayName ?? (relative(process.cwd(), abs) || abs);
  if (!existsSync(abs)) throw new UsageError(`spec file not found: ${display}`);
  const src = await SpecSource.read(abs, display, opts.cacheDir);
  if (src.syntaxErrors.length) throw new SpecError(src.syntaxErrors);
  const env = opts.env ?? process.env;
  const diags: Diagnostic[] = [];
  const raw = structuredClone(src.value ?? {}) as Obj;
  applySets(raw, opts.sets ?? [], display);
  const checks = new SchemaChecks(join(opts.cacheDir, 'specs', await checksMemoName(raw)));
  await checks.load();
  diags.push(...(await checks.pipeline(src, raw)));
  if (!isRecord(raw) || !isRecord(raw.stages)) throw new SpecError(diags.length ? blameSets(diags, opts.sets ?? [], src) : [src.diagnostic([], 'the spec must be a mapping with a `stages:` section')]);

  const where = { workspace, cacheDir: resolve(opts.cacheDir) };
  const seed = typeof raw.seed === 'number' ? raw.seed : 0;
  const defaultExecutor = (typeof raw.executor === 'string' ? raw.executor : 'process') as ExecutorName;
  const defaultResources = isRecord(raw.resources) ? raw.resources : {};
  const envRead: Record<string, string | null> = {};
  const absent: string[] = [];
  const scope0: Scope = { params: {}, env, matrix: {}, refs: 'none', envRead };
  const params = isRecord(raw.params) ? (resolveValue(src, ['params'], raw.params, scope0, diags, []) as Obj) : {};

  const nodes = new Map<string, StageNode>();
  const variantsByKey = new Map<string, StageNode[]>();
  const refs: PendingRef[] = [];
  const needs: Array<{ node: StageNode; key: string; path: SpecPath }> = [];
  /** Stages whose module failed to load: references to them are not reported again. */
  const broken = new Set<string>();
  const pendingInputs: Array<{ node: StageNode; name: string; index: number; ref: PendingRef }> = [];
  const outsAt: Array<{ id: string; path: string; at: SpecPath }> = [];

  for (const [key, st] of Object.entries(raw.stages)) {
    if (!isRecord(st)) continue;
    const at = ['stages', key];
    const hasUses = typeof st.uses === 'string';
    const hasRun = st.run !== undefined;
    if (hasUses && hasRun) {
      diags.push(src.diagnostic([...at, 'run'], 'give either `uses` (a stage module) or `run` (a command), not both', true));
      continue;
    }
    if (!hasUses && !hasRun) {
      diags.push(src.diagnostic(at, 'a stage needs `uses: <stage module>` or `run: <command>`', true));
      continue;
    }
    let def: StageDefinition<unknown> | undefined;
    let module: StageNode['module'];
    if (hasUses) {
      const found = locateModule(st.uses as string, workspace, opts.builtinRoot, absent);
      if (!found) {
        diags.push(src.diagnostic([...at, 'uses'], `unknown stage module '${st.uses}': no such file in the workspace${opts.builtinRoot ? ' or among the built-in stages' : ''}`));
        continue;
      }
      const outside = moduleOutsideProblem(found.abs, workspace, opts.builtinRoot);
      if (outside) {
        diags.push(src.diagnostic([...at, 'uses'], `stage module '${st.uses}' ${outside}`));
        continue;
      }
      module = found;
      try {
        def = await opts.modules.load(found.abs);
      } catch (e) {
        diags.push(src.diagnostic([...at, 'uses'], `cannot load stage module '${st.uses}': ${firstLine(e)}`));
        broken.add(key);
        continue;
      }
      // `--set stages.<key>.params.<name>=...` names a param the module declares, or is a typo.
      const declared = Object.keys((def.params as { properties?: object }).properties ?? {});
      for (const set of opts.sets ?? []) {
        const m = /^stages\.([^.=]+)\.params\.([^.=]+)[.=]/.exec(set);
        if (m && m[1] === key && declared.length && !declared.includes(m[2]!)) {
          const hint = closest(m[2]!, declared);
          throw new UsageError(`--set '${set}': stage module '${st.uses}' has no param '${m[2]}'${hint ? ` (did you mean '${hint}'?)` : ` (its params: ${declared.join(', ')})`}`);
        }
      }
    }
    const variants = isRecord(st.matrix) ? expandMatrix(st.matrix) : [{}];
    if (!variants.length) {
      diags.push(src.diagnostic([...at, 'matrix', 'exclude'], 'every combination of the matrix is excluded: the stage would have no variant'));
      continue;
    }
    const variantIds = new Map<string, Obj>();
    for (const m of variants) {
      const vid = variantId(key, m);
      const twin = variantIds.get(vid);
      if (twin) diags.push(src.diagnostic([...at, 'matrix'], `two variants would both be named '${vid}' (${JSON.stringify(twin)} and ${JSON.stringify(m)}): make the matrix values distinct as text`));
      variantIds.set(vid, m);
    }
    if (variantIds.size < variants.length) continue;
    // `matrix: { seed: [10, 11, 12] }` makes seeds replicates: each variant runs with its seed.
    if (isRecord(st.matrix) && Array.isArray(st.matrix.seed)) {
      const bad = (st.matrix.seed as unknown[]).findIndex((v) => !Number.isInteger(v) || (v as number) < 0 || (v as number) > 0xffffffff);
      if (bad >= 0) {
        diags.push(src.diagnostic([...at, 'matrix', 'seed', bad], `a matrix seed must be a whole number from 0 to 4294967295 (it becomes the variant's seed), got ${JSON.stringify((st.matrix.seed as unknown[])[bad])}`));
        continue;
      }
      if (st.seed !== undefined) diags.push(src.diagnostic([...at, 'seed'], 'give the seed either as `seed:` or as the matrix key `seed`, not both'));
    }
    const list: StageNode[] = [];
    variantsByKey.set(key, list);
    for (const matrix of variants) {
      const id = variantId(key, matrix);
      const scope: Scope = { params, env, matrix, refs: 'none', envRead };
      let stageParams = (isRecord(st.params) ? resolveValue(src, [...at, 'params'], st.params, scope, diags, []) : {}) as Obj;
      if (def) {
        try {
          const checked = await checks.params(src, [...at, 'params'], def.params, stageParams);
          diags.push(...checked.diags);
          stageParams = checked.value;
        } catch (e) {
          // ajv refuses the module's own schema: the module's mistake, named at `uses`.
          diags.push(src.diagnostic([...at, 'uses'], `stage module '${st.uses}' has an invalid params schema: ${firstLine(e)}`));
          broken.add(key);
          break;
        }
      }
      const node: StageNode = {
        id,
        key,
        matrix,
        kind: def ? 'module' : 'command',
        module,
        params: stageParams,
        inputs: {},
        deps: [],
        code: [],
        outputs: [],
        outs: {},
        overwrite: [],
        metrics: [],
        metricDirections: [],
        plots: [],
        env: {},
        passEnv: [...stringsOf(raw.passEnv), ...stringsOf(st.passEnv)],
        upstream: [],
        seed: typeof matrix.seed === 'number' ? matrix.seed : typeof st.seed === 'number' ? st.seed : seed,
        version: st.version === undefined ? undefined : (resolveValue(src, [...at, 'version'], st.version, scope, diags, []) as string | number),
        executor: opts.executor ?? ((typeof st.executor === 'string' ? st.executor : defaultExecutor) as ExecutorName),
        resources: { ...defaultResources, ...(isRecord(st.resources) ? st.resources : {}) },
      };
      if (typeof node.resources.time === 'string') {
        const ms = parseDuration(node.resources.time);
        const where = isRecord(st.resources) && 'time' in st.resources ? [...at, 'resources', 'time'] : ['resources', 'time'];
        if (ms === undefined) diags.push(src.diagnostic(where, `bad time limit '${node.resources.time}': use minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]] (as Slurm does) or 90s, 30m, 2h, 1d`));
        else node.timeLimitMs = ms;
      }
      const pending: PendingRef[] = [];
      const refScope = (refs: Scope['refs']): Scope => ({ ...scope, refs });

      // Inputs: a workspace path, or another stage's output as the whole value.
      if (isRecord(st.inputs)) {
        for (const [name, value] of Object.entries(st.inputs)) {
          const path = [...at, 'inputs', name];
          const items = Array.isArray(value) ? value : [value];
          const spec: InputSpec = { list: Array.isArray(value), items: [] };
          items.forEach((item, i) => {
            if (typeof item !== 'string') return;
            const ipath = Array.isArray(value) ? [...path, i] : path;
            const t = unlessFailed(diags, () => resolveTemplate(src, ipath, item, refScope('inputs'), diags, pending));
            if (!t) return;
            if (t.length === 1 && typeof t[0] === 'object' && 'ref' in t[0]) {
              // Resolved once every variant exists (below); a sweep's variants widen it to a list.
              pendingInputs.push({ node, name, index: spec.items.length, ref: pending[pending.length - 1]! });
              spec.items.push({ kind: 'path', path: '' });
            } else if (t.every((p) => typeof p === 'string')) {
              const p = confine(src, ipath, where, t.join(''), diags, 'input');
              if (p !== undefined) spec.items.push({ kind: 'path', path: p });
            } else {
              diags.push(src.diagnostic(ipath, 'an input is either a workspace path or one ${stages.<id>.outputs.<name>} reference, not a mix'));
            }
          });
          node.inputs[name] = spec;
        }
      }
      if (def) {
        if (st.deps !== undefined) diags.push(src.diagnostic([...at, 'deps'], '`deps` is for command stages: a module stage reads what its `inputs` name (add the files there)', true));
        node.outputs = [...def.outputs];
        if (def.inputs) {
          for (const name of def.inputs) {
            if (!(name in node.inputs)) diags.push(src.diagnostic(at, `stage module '${st.uses}' needs input '${name}'`, true));
          }
          for (const name of Object.keys(node.inputs)) {
            if (!def.inputs.includes(name)) {
              const hint = closest(name, [...def.inputs]);
              diags.push(src.diagnostic([...at, 'inputs', name], `stage module '${st.uses}' has no input '${name}'${hint ? ` (did you mean '${hint}'?)` : ` (its inputs: ${def.inputs.join(', ') || 'none'})`}`, true));
            }
          }
        }
      } else {
        const shell = st.shell === true;
        const argv = typeof st.run === 'string' ? (shell ? [st.run] : splitArgs(st.run)) : Array.isArray(st.run) ? st.run.map(String) : [];
        // An empty list, or a run that is neither text nor a list, is the schema's to report.
        if ((typeof st.run === 'string' || (Array.isArray(st.run) && st.run.length)) && (!argv.length || !argv[0]!.trim())) diags.push(src.diagnostic([...at, 'run'], 'the command is empty: give the program to run (and its arguments)'));
        const script = shellScriptIndex(argv, shell);
        for (const n of nestedValues(argv, script)) {
          diags.push(src.diagnostic(typeof st.run === 'string' ? [...at, 'run'] : [...at, 'run', n.arg], `${n.ref} lands in text that a second shell reads as code (a nested \`sh -c\`, \`su -c\`, \`eval\`, \`ssh\`, a shell reading its standard input, ...), where no quoting of it is safe: pass it as an environment variable instead (env: { VALUE: '${n.ref}' }, then "$VALUE" in the inner script), or pass it to the inner shell as an argument ("$1")`));
        }
        node.command = {
          shell,
          script,
          argv: argv.map((a, i) => resolveTemplate(src, typeof st.run === 'string' ? [...at, 'run'] : [...at, 'run', i], a, refScope('command'), diags, pending, { shellScript: i === script })),
        };
        node.outputs = isRecord(st.outs) ? Object.keys(st.outs) : [];
        for (const p of Array.isArray(st.deps) ? st.deps : []) {
          const i = (st.deps as unknown[]).indexOf(p);
          const v = unlessFailed(diags, () => resolveValue(src, [...at, 'deps', i], p, scope, diags, []));
          if (typeof v === 'string') {
            const c = confine(src, [...at, 'deps', i], where, v, diags, 'dep');
            if (c !== undefined) node.deps.push(c);
          }
        }
        for (const t of node.command.argv) {
          for (const part of t) if (typeof part === 'object' && 'own' in part && !node.outputs.includes(part.own)) {
            diags.push(src.diagnostic([...at, 'run'], `\${outputs.${part.own}} is not declared under outs (declared: ${node.outputs.join(', ') || 'none'})`));
          }
        }
      }
      for (const [i, p] of (Array.isArray(st.code) ? st.code : []).entries()) {
        const v = unlessFailed(diags, () => resolveValue(src, [...at, 'code', i], p, scope, diags, []));
        if (typeof v === 'string') {
          const c = confine(src, [...at, 'code', i], where, v, diags, 'dep');
          if (c !== undefined) node.code.push(c);
        }
      }
      if (isRecord(st.outs)) {
        for (const [name, entry] of Object.entries(st.outs)) {
          if (def && !node.outputs.includes(name)) {
            diags.push(src.diagnostic([...at, 'outs', name], `stage module '${st.uses}' has no output '${name}' (its outputs: ${node.outputs.join(', ') || 'none'})`, true));
            continue;
          }
          // `name: path`, or `name: { path, overwrite: true }` to let it replace a file no stage wrote.
          const target = isRecord(entry) ? entry.path : entry;
          const tpath = isRecord(entry) ? [...at, 'outs', name, 'path'] : [...at, 'outs', name];
          if (typeof target !== 'string') continue;
          const v = unlessFailed(diags, () => resolveValue(src, tpath, target, scope, diags, []));
          if (typeof v === 'string') {
            const c = confine(src, tpath, where, v, diags, 'outs');
            if (c !== undefined) {
              node.outs[name] = c;
              outsAt.push({ id, path: c, at: tpath });
              if (isRecord(entry) && entry.overwrite === true) node.overwrite.push(name);
            }
          }
        }
      }
      for (const list of ['metrics', 'plots'] as const) {
        if (!Array.isArray(st[list])) continue;
        (st[list] as unknown[]).forEach((entry, i) => {
          const item = list === 'metrics' && isRecord(entry) ? entry.path : entry;
          if (typeof item !== 'string') return;
          const [output, ...inside] = item.split('/');
          const rel = inside.join('/');
          if (!output || !node.outputs.includes(output)) {
            diags.push(src.diagnostic([...at, list, i], `'${item}' must start with one of the stage's outputs (${node.outputs.join(', ') || 'it has none'}): <output>/<file inside it>`));
          } else if (rel.split('/').some((seg) => seg === '..' || seg === '.') || item.endsWith('/')) {
            diags.push(src.diagnostic([...at, list, i], `'${item}' must name a file inside output '${output}'`));
          } else {
            node[list].push([output, rel]);
            if (list === 'metrics') {
              const lower = isRecord(entry) ? stringsOf(entry.lower) : [];
              const higher = isRecord(entry) ? stringsOf(entry.higher) : [];
              const both = lower.filter((n) => higher.includes(n));
              if (both.length) diags.push(src.diagnostic([...at, list, i], `metric${both.length > 1 ? 's' : ''} ${both.map((n) => `'${n}'`).join(', ')} declared both lower and higher is better: keep one`));
              node.metricDirections.push({ lower, higher });
            }
          }
        });
      }
      if (isRecord(st.env)) {
        for (const [name, value] of Object.entries(st.env)) {
          node.env[name] = resolveTemplate(src, [...at, 'env', name], String(value), refScope('command'), diags, pending);
        }
      }
      for (const p of pending) p.from = id;
      refs.push(...pending);
      if (Array.isArray(st.needs)) st.needs.forEach((k, i) => typeof k === 'string' && needs.push({ node, key: k, path: [...at, 'needs', i] }));
      nodes.set(id, node);
      list.push(node);
    }
  }

  // Resolve stage references now that every variant exists.
  const keys = [...variantsByKey.keys()];
  for (const r of refs) {
    if (broken.has(r.target.split('[')[0]!)) continue;
    const consumer = nodes.get(r.from)!;
    const targets = pickVariants(r.target, consumer, nodes, variantsByKey);
    if (!targets) {
      const hint = closest(r.target, keys);
      diags.push(src.diagnostic(r.path, `unknown stage '${r.target}' in \${stages.${r.target}.outputs.${r.output}}${hint ? ` (did you mean '${hint}'?)` : ''}`));
      continue;
    }
    if (!targets.length) {
      diags.push(src.diagnostic(r.path, noMatchingVariant(r.target, consumer, variantsByKey, (id) => `\${stages.${id}.outputs.${r.output}}`)));
      continue;
    }
    const target = targets[0]!;
    if (!target.outputs.includes(r.output)) {
      const hint = closest(r.output, target.outputs);
      diags.push(src.diagnostic(r.path, `stage '${target.key}' has no output '${r.output}' (${hint ? `did you mean '${hint}'?` : `its outputs: ${target.outputs.join(', ') || 'none'}`})`));
      continue;
    }
    r.resolved.push(...targets.map((t) => ({ stage: t.id, output: r.output })));
    r.gathers = !r.target.includes('[') && Object.keys(target.matrix).some((k) => !(k in consumer.matrix));
    for (const t of targets) if (!consumer.upstream.includes(t.id)) consumer.upstream.push(t.id);
  }
  // Splice resolved references into inputs, last index first so earlier indices stay valid.
  for (const { node, name, index, ref } of pendingInputs.reverse()) {
    const spec = node.inputs[name]!;
    if (ref.gathers) spec.list = true;
    spec.items.splice(index, 1, ...ref.resolved.map((r) => ({ kind: 'output' as const, ref: r })));
  }
  // A module stage's workspace inputs are what it depends on in the workspace.
  for (const n of nodes.values()) {
    if (n.kind === 'module') n.deps = Object.values(n.inputs).flatMap((s) => s.items.flatMap((i) => (i.kind === 'path' ? [i.path] : [])));
  }
  for (const { node, key, path } of needs) {
    const targets = pickVariants(key, node, nodes, variantsByKey);
    if (!targets) {
      const hint = closest(key, keys);
      diags.push(src.diagnostic(path, `unknown stage '${key}' in needs${hint ? ` (did you mean '${hint}'?)` : ''}`));
      continue;
    }
    if (!targets.length) diags.push(src.diagnostic(path, noMatchingVariant(key, node, variantsByKey, (id) => id)));
    for (const t of targets) if (!node.upstream.includes(t.id)) node.upstream.push(t.id);
  }

  // A workspace path one stage reads and another publishes (outs) orders them like a reference.
  const producers = [...nodes.values()].flatMap((n) => Object.values(n.outs).map((path) => ({ id: n.id, path })));
  for (const n of nodes.values()) {
    for (const d of n.deps) {
      for (const p of producers) {
        const overlaps = d === p.path || d.startsWith(`${p.path}/`) || p.path.startsWith(`${d}/`);
        if (overlaps && p.id !== n.id && !n.upstream.includes(p.id)) n.upstream.push(p.id);
      }
    }
  }

  // One workspace path, one producer: two stages (or variants) publishing the same or nested paths
  // would overwrite each other.
  const byPath = new Map<string, (typeof outsAt)[number]>();
  // Shorter paths first: a folder is seen before anything published inside it.
  for (const o of [...outsAt].sort((a, b) => a.path.length - b.path.length)) {
    const parts = o.path.split('/');
    const clash = [...parts.keys()].map((i) => byPath.get(parts.slice(0, i + 1).join('/'))).find((x) => x);
    if (clash) {
      const how = clash.path === o.path ? `'${o.path}' is published by both` : `'${o.path}' lies inside '${clash.path}', published by`;
      diags.push(src.diagnostic(o.at, `${how} ${clash.id === o.id ? `stage ${o.id} (twice)` : `${clash.id} and ${o.id}`}: each outs path needs exactly one producer${o.id.includes('[') ? ' (use ${matrix.<key>} in the path to give each variant its own)' : ''}`));
    } else byPath.set(o.path, o);
  }

  const found = findCycle(nodes);
  // Shown from the stage that comes first in the spec, in the direction data flows.
  const cycle = found && rotateToFirst(found, [...nodes.keys()]);
  if (cycle) diags.push(src.diagnostic(['stages', nodes.get(cycle[0]!)!.key], `dependency cycle: ${[...cycle, cycle[0]].join(' -> ')}`, true));
  if (diags.length) throw new SpecError(sortDiagnostics(blameSets(diags, opts.sets ?? [], src)));
  await checks.save();

  return {
    specRel: relative(workspace, abs).split('\\').join('/'),
    name: typeof raw.name === 'string' ? raw.name : relative(workspace, abs),
    workspace,
    stages: nodes,
    order: topoOrder(nodes),
    envRead,
    absent,
    sets: [...(opts.sets ?? [])],
  };
}

function rotateToFirst(cycle: string[], order: string[]): string[] {
  const first = cycle.reduce((a, b) => (order.indexOf(b) < order.indexOf(a) ? b : a));
  const i = cycle.indexOf(first);
  return [...cycle.slice(i), ...cycle.slice(0, i)];
}

function sortDiagnostics(d: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return d
    .filter((x) => {
      const k = `${x.line}:${x.col}:${x.path}:${x.message}`;
      return seen.has(k) ? false : (seen.add(k), true);
    })
    .sort((a, b) => a.line - b.line || a.col - b.col);
}

function firstLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split('\n').find((l) => l.trim()) ?? m;
}

/**
 * Why a stage module may not be used from where it is, or undefined: it must be in the workspace,
 * among the built-in stages, or inside an installed package (node_modules), after links.
 */
function moduleOutsideProblem(abs: string, workspace: string, builtinRoot: string | undefined): string | undefined {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return p;
    }
  };
  const r = real(abs);
  if (isWithin(real(workspace), r)) return undefined;
  if (builtinRoot && isWithin(real(builtinRoot), r)) return undefined;
  if (r.split(sep).includes('node_modules')) return undefined;
  return `resolves to ${r}, outside the workspace: copy the module into the workspace, or install it as a package and name it from node_modules`;
}

/**
 * Where `uses:` points: a workspace path, else one of the built-in stages (`stages/logmel.ts`);
 * `rrtn-pipeline/stages/logmel.ts` names a built-in stage by package name, and `<package>/<file>`
 * a stage module of another installed package (resolved from the workspace, as Node would).
 * `absent` collects candidates that did not exist: one appearing later would change the answer.
 */
function locateModule(uses: string, workspace: string, builtinRoot: string | undefined, absent: string[]): StageNode['module'] | undefined {
  const candidates = [resolve(workspace, uses)];
  const bare = !isAbsolute(uses) && !uses.startsWith('.');
  if (builtinRoot && bare) candidates.push(resolve(builtinRoot, uses.startsWith(`${SELF_PACKAGE}/`) ? uses.slice(SELF_PACKAGE.length + 1) : uses));
  for (const abs of candidates) {
    if (existsSync(abs)) return { rel: relative(workspace, abs).split('\\').join('/'), abs };
    absent.push(abs);
  }
  if (bare && !uses.startsWith(`${SELF_PACKAGE}/`)) {
    try {
      const abs = createRequire(join(workspace, 'package.json')).resolve(uses);
      return { rel: relative(workspace, abs).split('\\').join('/'), abs };
    } catch {
      // not an installed package's file either
    }
  }
  return undefined;
}

/**
 * `--set` edits the raw spec before validation, so overridden values are checked like any other.
 * It sets what exists: a parameter the spec declares, or a key of a stage the spec has (a stage's
 * params are then checked against its module's schema); a typo is an error, not a silent no-op.
 */
/** The strings of a list (what is not a list of strings is the schema's to report). */
function stringsOf(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * A problem with a value a --set gave, at its path or through a `${params.NAME}` reference to a set
 * parameter, says so: the spec's line is where the value is used, but the fix is on the command line.
 */
function blameSets(diags: Diagnostic[], sets: string[], src: SpecSource): Diagnostic[] {
  if (!sets.length) return diags;
  return diags.map((d) => {
    const by = sets.filter((s) => {
      const key = s.slice(0, s.indexOf('='));
      const path = key.startsWith('stages.') || key.startsWith('params.') ? key : `params.${key}`;
      if (d.path === path || d.path.startsWith(`${path}.`)) return true;
      const name = path.startsWith('params.') ? path.split('.')[1]! : undefined;
      return name !== undefined && new RegExp(`\\$\\{params\\.${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[}.\\[]`).test(src.lineText(d.line));
    });
    return by.length ? { ...d, message: `${d.message} (the value given by --set ${by.map((s) => `'${s}'`).join(', ')})` } : d;
  });
}

function applySets(raw: Obj, sets: string[], display: string): void {
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new UsageError(`--set expects key.path=value, got '${s}'`);
    const keyPath = s.slice(0, eq).split('.');
    if (keyPath.some((k) => !k)) throw new UsageError(`--set '${s}': empty name in '${s.slice(0, eq)}'`);
    // Names every JavaScript object answers to: setting one would edit the prototype of all objects.
    const reserved = keyPath.find((k) => RESERVED_KEYS.has(k));
    if (reserved) throw new UsageError(`--set '${s}': '${reserved}' cannot be a name in a spec`);
    if (keyPath[0] === 'stages') {
      const stages = isRecord(raw.stages) ? raw.stages : {};
      const id = keyPath[1];
      if (!id || !Object.hasOwn(stages, id) || !isRecord(stages[id])) {
        const hint = id ? closest(id, Object.keys(stages)) : undefined;
        throw new UsageError(`--set '${s}': ${display} has no stage '${id ?? ''}'${hint ? ` (did you mean '${hint}'?)` : ` (stages: ${Object.keys(stages).join(', ')})`}`);
      }
      if (keyPath.length < 3) throw new UsageError(`--set '${s}': name a key of stage '${id}', e.g. stages.${id}.params.NAME=value`);
    } else {
      const params = isRecord(raw.params) ? raw.params : {};
      const name = keyPath[0] === 'params' ? keyPath[1] : keyPath[0];
      if (!name || !Object.hasOwn(params, name)) {
        const hint = name ? closest(name, Object.keys(params)) : undefined;
        throw new UsageError(`--set '${s}': ${display} declares no parameter '${name ?? ''}'${hint ? ` (did you mean '${hint}'?)` : Object.keys(params).length ? ` (params: ${Object.keys(params).join(', ')})` : ' (it has no params: section)'}; a stage's own param is set with stages.<stage>.params.<name>=value`);
      }
    }
    let value: unknown;
    try {
      value = yamlLib().parse(s.slice(eq + 1));
    } catch {
      value = s.slice(eq + 1);
    }
    if (keyPath[0] !== 'stages' && keyPath[0] !== 'params') keyPath.unshift('params');
    let o: Obj = raw;
    for (const k of keyPath.slice(0, -1)) {
      if (!Object.hasOwn(o, k) || !isRecord(o[k])) o[k] = {};
      o = o[k] as Obj;
    }
    o[keyPath[keyPath.length - 1]!] = value;
  }
}

/** Every combination of the matrix's values, less those matching an entry of `exclude`. */
function expandMatrix(matrix: Obj): Obj[] {
  let out: Obj[] = [{}];
  for (const [k, values] of Object.entries(matrix)) {
    if (k === 'exclude' || !Array.isArray(values)) continue;
    out = out.flatMap((combo) => values.map((v) => ({ ...combo, [k]: v })));
  }
  const exclude = Array.isArray(matrix.exclude) ? (matrix.exclude as unknown[]).filter(isRecord) : [];
  return out.filter((combo) => !exclude.some((e) => Object.entries(e).every(([k, v]) => JSON.stringify(combo[k]) === JSON.stringify(v))));
}

function variantId(key: string, matrix: Obj): string {
  return Object.keys(matrix).length ? `${key}[${Object.entries(matrix).map(([k, v]) => `${k}=${scalarText(v)}`).join(',')}]` : key;
}

function scalarText(v: unknown): string {
  // Numbers as written (JSON would turn Infinity and NaN into null).
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : JSON.stringify(v);
}

/** Variants of `target` a consumer reads: matching on shared matrix keys, or an exact variant id. */
function pickVariants(target: string, consumer: StageNode, nodes: Map<string, StageNode>, byKey: Map<string, StageNode[]>): StageNode[] | undefined {
  if (target.includes('[')) {
    const n = nodes.get(target);
    return n ? [n] : undefined;
  }
  const variants = byKey.get(target);
  if (!variants) return undefined;
  return variants.filter((v) =>
    Object.entries(v.matrix).every(([k, val]) => !(k in consumer.matrix) || JSON.stringify(consumer.matrix[k]) === JSON.stringify(val)),
  );
}

/**
 * Why a reference from a variant finds no variant of its target: the keys they share take the
 * consumer's values, and none of the target's variants has them. `naming` shows how to name one
 * variant instead (given the first variant's id).
 */
function noMatchingVariant(target: string, consumer: StageNode, byKey: Map<string, StageNode[]>, naming: (id: string) => string): string {
  const variants = byKey.get(target)!;
  const shared = Object.keys(consumer.matrix).filter((k) => variants.some((v) => k in v.matrix));
  const wanted = shared.map((k) => `${k}=${scalarText(consumer.matrix[k])}`).join(', ');
  return `no variant of stage '${target}' has ${wanted}, as ${consumer.id} needs (its variants: ${variants.map((v) => v.id).join(', ')}); name one, as ${naming(variants[0]!.id)}`;
}

/** A stage path as a workspace-relative path, or undefined (with a diagnostic) where it may not point. */
function confine(src: SpecSource, path: SpecPath, ctx: { workspace: string; cacheDir: string }, p: string, diags: Diagnostic[], role: PathRole): string | undefined {
  const abs = resolve(ctx.workspace, p);
  if (!isWithin(ctx.workspace, abs)) {
    diags.push(src.diagnostic(path, `path '${p}' resolves outside the workspace (${ctx.workspace}); stage paths must stay inside it`));
    return undefined;
  }
  const problem = pathProblem(ctx.workspace, ctx.cacheDir, abs, role);
  if (problem) {
    diags.push(src.diagnostic(path, `path '${p}': ${problem}`));
    return undefined;
  }
  return relative(ctx.workspace, abs).split(sep).join('/');
}

/**
 * A resolved value, or undefined when resolving it reported a mistake (a reference that failed
 * already said so: what is left of a path is not checked again, which would only add a second,
 * misleading error).
 */
function unlessFailed<T>(diags: Diagnostic[], resolveIt: () => T): T | undefined {
  const said = diags.length;
  const v = resolveIt();
  return diags.length === said ? v : undefined;
}

/** Splits a command string into arguments the way a shell would for plain words and quotes. */
function splitArgs(s: string): string[] {
  const out: string[] = [];
  const re = /"((?:\\.|[^"\\])*)"|'([^']*)'|(\S+)/g;
  for (const m of s.matchAll(re)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? m[3]!));
  return out;
}

/** Resolves params/env/matrix references inside any value; stage references are an error here. */
function resolveValue(src: SpecSource, path: SpecPath, value: unknown, scope: Scope, diags: Diagnostic[], pending: PendingRef[]): unknown {
  if (typeof value === 'string') {
    const t = resolveTemplate(src, path, value, scope, diags, pending, { keepValues: true });
    if (t.length === 1 && typeof t[0] === 'object' && 'value' in (t[0] as object)) return (t[0] as { value: unknown }).value;
    return t.map((p) => (typeof p === 'string' ? p : typeof p === 'object' && 'value' in p ? scalarText((p as { value: unknown }).value) : '')).join('');
  }
  if (Array.isArray(value)) return value.map((v, i) => resolveValue(src, [...path, i], v, scope, diags, pending));
  if (isRecord(value)) {
    const out: Obj = {};
    for (const [k, v] of Object.entries(value)) out[k] = resolveValue(src, [...path, k], v, scope, diags, pending);
    return out;
  }
  return value;
}

type ValuePart = TemplatePart | { value: unknown };

/**
 * A string with its `${...}` references resolved. `keepValues`: a reference that is the whole
 * string keeps its type. `shellScript`: the text is a shell line, and each substituted value is
 * quoted as one word for where it lands (paths known only at run time carry that context along).
 */
function resolveTemplate(src: SpecSource, path: SpecPath, text: string, scope: Scope, diags: Diagnostic[], pending: PendingRef[], opts?: { shellScript?: boolean }): Template;
function resolveTemplate(src: SpecSource, path: SpecPath, text: string, scope: Scope, diags: Diagnostic[], pending: PendingRef[], opts: { keepValues: true }): ValuePart[];
function resolveTemplate(src: SpecSource, path: SpecPath, text: string, scope: Scope, diags: Diagnostic[], pending: PendingRef[], opts: { keepValues?: boolean; shellScript?: boolean } = {}): ValuePart[] {
  const pieces = parsePieces(text);
  const whole = pieces.length === 1;
  const out: ValuePart[] = [];
  const lexer = opts.shellScript ? new ShellLexer() : undefined;
  for (const p of pieces) {
    if (typeof p === 'string') {
      out.push(p);
      lexer?.feed(p);
      continue;
    }
    const v = evalExpr(src, path, p, scope, diags, pending);
    if (v === undefined) continue;
    if ('ref' in v || 'own' in v) out.push(lexer ? { ...v, quote: lexer.context() } : v);
    else if (opts.keepValues && whole) out.push({ value: v.value });
    else {
      const text = typeof v.value === 'string' ? v.value : scalarText(v.value);
      if (!lexer) out.push(text);
      else {
        try {
          out.push(shellQuote(text, lexer.context()));
        } catch (e) {
          if (!(e instanceof ShellValueError)) throw e;
          diags.push(src.diagnostic(path, `${exprText(p)}: ${e.message}`));
        }
      }
    }
  }
  return mergeStrings(out);
}

function mergeStrings(parts: ValuePart[]): ValuePart[] {
  const out: ValuePart[] = [];
  for (const p of parts) {
    const prev = out[out.length - 1];
    if (typeof p === 'string' && typeof prev === 'string') out[out.length - 1] = prev + p;
    else out.push(p);
  }
  return out.length ? out : [''];
}

function evalExpr(src: SpecSource, path: SpecPath, e: Expr, scope: Scope, diags: Diagnostic[], pending: PendingRef[]): { value: unknown } | { ref: OutputRef[] } | { own: string } | undefined {
  const fail = (msg: string) => {
    diags.push(src.diagnostic(path, msg));
    return undefined;
  };
  switch (e.kind) {
    case 'bad':
      return fail(`bad reference ${exprText(e)}: ${e.why}`);
    case 'params': {
      let v: unknown = scope.params;
      for (const seg of e.path) v = isRecord(v) ? v[seg] : undefined;
      if (v === undefined) {
        const hint = closest(e.path[0]!, Object.keys(scope.params));
        return fail(`unknown reference ${exprText(e)}: no such parameter${hint ? ` (did you mean '${hint}'?)` : ''}`);
      }
      return { value: v };
    }
    case 'env': {
      const v = scope.env[e.name];
      // A secret's value would land in the key and the record (a push sends it): only a stage's env: may take one, keyed by digest.
      if (looksSecret(e.name) && !(path.length === 4 && path[0] === 'stages' && path[2] === 'env')) {
        return fail(`\${env.${e.name}} looks like a secret, and here its value would be written into the cache key and the run record (which a push sends to a remote): pass it to the stage with \`passEnv: [${e.name}]\` and read $${e.name} in the stage, or set it under the stage's env:`);
      }
      scope.envRead[e.name] = keyedValue(e.name, v);
      if (v !== undefined && v !== '') return { value: v };
      if (e.fallback !== undefined) return { value: e.fallback };
      return fail(`environment variable ${e.name} is not set (set it, or give a default: \${env.${e.name}:-value})`);
    }
    case 'matrix': {
      if (!(e.name in scope.matrix)) return fail(`unknown reference ${exprText(e)}: ${Object.keys(scope.matrix).length ? `matrix keys are ${Object.keys(scope.matrix).join(', ')}` : 'this stage has no matrix'}`);
      return { value: scope.matrix[e.name] };
    }
    case 'stage': {
      if (scope.refs === 'none') return fail(`${exprText(e)} can only appear in a stage's inputs, run or env`);
      const ref: PendingRef = { from: '', target: e.stage, output: e.output, path, resolved: [] };
      pending.push(ref);
      return { ref: ref.resolved };
    }
    case 'own':
      if (scope.refs !== 'command') return fail(`${exprText(e)} can only appear in a command stage's run or env`);
      return { own: e.output };
  }
}

