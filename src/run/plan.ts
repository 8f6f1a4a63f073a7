// Computes a stage's fingerprint and cache key from the spec, the workspace and the records of
// the stages it reads. Shared by `run` (to decide and to execute) and `status` (to explain).
import { existsSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { isWithin } from '../paths.ts';
import type { DigestCache, StatSignature } from '../cache/digests.ts';
import { codeLabel, ENGINE_VERSION, fingerprintKey, type Fingerprint } from '../cache/fingerprint.ts';
import type { StageModules } from '../modules.ts';
import type { OutputRef, Pipeline, StageNode, Template } from '../spec/model.ts';
import { shellEnvNames, shellQuote, shellWords, type QuoteContext } from '../spec/shell.ts';
import type { CachedRun, Store } from '../cache/store.ts';
import { named } from '../executors/environment.ts';
import { keyedValue } from '../secrets.ts';

/** Stands for an upstream output not known yet (its stage has to run first). */
export const UNKNOWN_OUTPUT = '@?';

export interface Evaluated {
  fingerprint: Fingerprint;
  key: string;
  /**
   * The workspace files and folders the key was read from for certain (inputs, deps, the module's
   * code, `code:`), with their signatures then: a stage whose input or code moved while it ran read
   * something else than its key says (see the scheduler).
   */
  sources: Array<[string, StatSignature]>;
}

/** Why a stage cannot be evaluated yet. */
export class NotReady extends Error {}

export class Planner {
  /**
   * Facts stages reported themselves (fingerprint extras): not files a snapshot can stat, so the
   * no-op check asks the stage modules again (cheap: the compiled module and its fingerprint hook).
   */
  readonly facts: Array<{ compiled: string; params: Record<string, unknown>; extras: Record<string, unknown> }> = [];

  constructor(
    readonly pipeline: Pipeline,
    readonly store: Store,
    readonly digests: DigestCache,
    readonly modules: StageModules,
  ) {}

  /**
   * The fingerprint of a stage, given the run records of its upstream stages (undefined for an
   * upstream stage that has not run yet: its outputs, and so this key, are unknown).
   */
  async evaluate(node: StageNode, upstream: Map<string, CachedRun | undefined>, partial = false): Promise<Evaluated | undefined> {
    const ws = this.pipeline.workspace;
    let code: Record<string, string> = {};
    let packages: Record<string, string> = {};
    let extras: Record<string, unknown> = {};
    const sources: Array<[string, StatSignature]> = [];
    const pathDigest = async (abs: string) => {
      const d = await this.digests.path(abs);
      sources.push(...this.digests.sourcesOf(abs));
      return d;
    };
    if (node.module) {
      const closure = await this.modules.closures.of(node.module.abs);
      ({ code, packages } = closure);
      code = { ...code };
      for (const f of closure.files) sources.push([f, this.digests.observed.get(f)?.sig ?? null]);
      const def = await this.modules.load(node.module.abs);
      if (def.fingerprint) {
        extras = await def.fingerprint(node.params);
        this.facts.push({ compiled: await this.modules.compiled(node.module.abs), params: node.params, extras });
      }
    }
    const inputs: Record<string, string> = {};
    for (const rel of node.deps) {
      const d = await pathDigest(join(ws, rel));
      inputs[rel] = d.kind === 'missing' ? 'missing' : d.digest;
    }
    // Files and folders the spec names as the stage's code (`code:`): what no import or argument shows.
    for (const rel of node.code) {
      const d = await pathDigest(join(ws, rel));
      code[d.kind === 'dir' ? `${rel}/` : rel] = d.kind === 'missing' ? 'missing' : d.digest;
    }
    const upstreamDigests: Record<string, string> = {};
    let unknown = false;
    const digestOf = (ref: OutputRef): string => {
      const rec = upstream.get(ref.stage);
      const out = rec?.outputs[ref.output];
      if (!out) {
        unknown = true;
        return UNKNOWN_OUTPUT;
      }
      upstreamDigests[`${ref.stage}.${ref.output}`] = out.digest;
      return `@${out.digest}`;
    };
    for (const spec of Object.values(node.inputs)) for (const item of spec.items) if (item.kind === 'output') digestOf(item.ref);
    let command: Fingerprint['command'] = null;
    const shellEnv: Record<string, string | null> = {};
    if (node.command) {
      const argv = node.command.argv.flatMap((t) => renderTemplate(t, (r) => [digestOf(r)], (o) => `\${outputs.${o}}`));
      command = { argv, shell: node.command.shell };
      // An argument naming a workspace file (a script, also inside `sh -c "python3 train.py"`, or
      // as the value of --opt=file or key=file, Hydra style) is code: editing it reruns the stage.
      // One naming a workspace folder (`cp -r data/files ...`) is an input, as under `deps:`.
      const script = argv[node.command.script];
      const words = [...argv.filter((_, i) => i !== node.command!.script), ...(script === undefined ? [] : shellWords(script))];
      for (const w of words) {
        const a = w.slice(w.indexOf('=') + 1); // the whole word when it has no '='
        if (a.startsWith('-') || !a) continue;
        const abs = join(ws, a);
        if (!isWithin(ws, abs) || abs === ws || !existsSync(abs)) continue;
        // Not among the sources checked after the run: a word is a guess, and a script may well
        // write a file it also names (`sort > best.txt; cp best.txt "$0"`).
        const st = statSync(abs);
        if (st.isFile()) code[codeLabel(abs, ws)] = (await this.digests.file(abs)).digest;
        else if (st.isDirectory() && this.argumentFolder(abs)) {
          const rel = relative(ws, abs).split(sep).join('/');
          const d = await this.digests.path(abs);
          inputs[rel] = d.kind === 'missing' ? 'missing' : d.digest;
        }
      }
      // Variables the script reads through the shell ($LR) and the spec does not set: their values
      // as the command will see them (null: unset).
      // One passed with `passEnv:` is not keyed (it is passed as it is); a secret by its digest (secrets.ts).
      if (script !== undefined) {
        for (const name of shellEnvNames(script)) {
          if (name in node.env || named(name, node.passEnv)) continue;
          const v = keyedValue(name, process.env[name]);
          shellEnv[name] = v;
          this.pipeline.envRead[name] = v;
        }
      }
    }
    const env: Record<string, string> = {};
    for (const [k, t] of Object.entries(node.env)) env[k] = keyedValue(k, renderTemplate(t, (r) => [digestOf(r)], (o) => `\${outputs.${o}}`).join(' '))!;
    if (unknown && !partial) return undefined;
    const fingerprint: Fingerprint = {
      engine: ENGINE_VERSION,
      kind: node.kind,
      code,
      packages,
      command,
      params: node.params,
      inputs,
      upstream: upstreamDigests,
      env,
      shellEnv,
      seed: node.seed,
      version: node.version ?? null,
      outputs: node.outputs,
      extras,
    };
    return { fingerprint, key: await fingerprintKey(fingerprint), sources };
  }

  /**
   * True when a folder named in a command's arguments is read as an input: not one that holds the
   * cache or a published output (or lies inside one), which the runs themselves change.
   */
  private argumentFolder(abs: string): boolean {
    const ws = this.pipeline.workspace;
    const written = [this.store.root, ...[...this.pipeline.stages.values()].flatMap((n) => Object.values(n.outs).map((o) => join(ws, o)))];
    return !written.some((w) => isWithin(abs, w) || isWithin(w, abs));
  }

  /** Upstream records as known now from the latest runs (for status and dry runs). */
  upstreamOf(node: StageNode, known: Map<string, CachedRun | undefined>): Map<string, CachedRun | undefined> {
    const m = new Map<string, CachedRun | undefined>();
    for (const id of node.upstream) m.set(id, known.get(id));
    return m;
  }
}

/**
 * Renders a template into arguments: an argument that is exactly one reference to a sweep's
 * outputs becomes one argument per variant; elsewhere several paths are joined by spaces.
 */
export function renderTemplate(t: Template, ref: (r: OutputRef) => string[], own: (name: string) => string): string[] {
  if (t.length === 1 && typeof t[0] === 'object' && 'ref' in t[0]) {
    const q = t[0].quote;
    return t[0].ref.flatMap(ref).map((p) => (q ? shellQuote(p, q) : p));
  }
  const quoted = (q: QuoteContext | undefined, s: string) => (q ? shellQuote(s, q) : s);
  return [
    t
      .map((p) => (typeof p === 'string' ? p : 'ref' in p ? p.ref.flatMap(ref).map((s) => quoted(p.quote, s)).join(' ') : quoted(p.quote, own(p.own))))
      .join(''),
  ];
}
