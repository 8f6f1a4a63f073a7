// The compiled pipeline: what the spec means once overrides, matrices and references are resolved.
import type { QuoteContext } from './shell.ts';

/** A reference to an output of another stage (a concrete variant id). */
export interface OutputRef {
  stage: string;
  output: string;
}

/**
 * Part of a templated string: literal text, another stage's output, or this stage's own output.
 * In a shell script, `quote` says how a path known only at run time is quoted where it lands.
 */
export type TemplatePart = string | { ref: OutputRef[]; quote?: QuoteContext } | { own: string; quote?: QuoteContext };
export type Template = TemplatePart[];

export type InputItem = { kind: 'path'; path: string } | { kind: 'output'; ref: OutputRef };
export interface InputSpec {
  /** A list input yields string[] to the stage (e.g. every variant of a sweep). */
  list: boolean;
  items: InputItem[];
}

export type ExecutorName = 'inline' | 'process' | 'slurm';

export interface StageNode {
  /** Unique id: the spec key, plus `[k=v,...]` for a matrix variant. */
  id: string;
  /** The spec key this node came from. */
  key: string;
  matrix: Record<string, unknown>;
  kind: 'module' | 'command';
  /** Module stages: workspace-relative and absolute path of the stage module. */
  module?: { rel: string; abs: string };
  /**
   * Command stages: argument list (shell false) or one shell line (shell true); `script`: the index
   * of the argument that is a shell script (the line itself, or SCRIPT in `sh -c SCRIPT`), or -1.
   */
  command?: { argv: Template[]; shell: boolean; script: number };
  params: Record<string, unknown>;
  inputs: Record<string, InputSpec>;
  /** Workspace paths a command reads (module stages: their path inputs). */
  deps: string[];
  /** `code:`: workspace files and folders that are part of the stage's code, beyond what is found. */
  code: string[];
  outputs: string[];
  /** Output name -> workspace path to materialize the output at. */
  outs: Record<string, string>;
  /** Outputs whose outs path may replace a file or folder no stage wrote (`overwrite: true`). */
  overwrite: string[];
  /** `metrics:` and `plots:`: files inside the stage's outputs, as [output, path inside ('' for a file output)]. */
  metrics: Array<[string, string]>;
  /** For each `metrics:` file (same order), the metric names declared lower- or higher-is-better. */
  metricDirections: Array<{ lower: string[]; higher: string[] }>;
  plots: Array<[string, string]>;
  env: Record<string, Template>;
  /** `passEnv:` (the spec's and the stage's): caller variables passed to the stage unkeyed. */
  passEnv: string[];
  /** Stage ids this one waits for (data references and `needs`). */
  upstream: string[];
  seed: number;
  version?: string | number;
  executor: ExecutorName;
  resources: Record<string, unknown>;
  /** `resources.time`: the stage fails when it runs longer. */
  timeLimitMs?: number;
}

export interface Pipeline {
  /** Spec path relative to the workspace; names this pipeline's latest-run records. */
  specRel: string;
  name: string;
  workspace: string;
  stages: Map<string, StageNode>;
  /** Stage ids in a dependency order. */
  order: string[];
  /** Environment variables the spec reads, with the values it got (undefined: unset). */
  envRead: Record<string, string | null>;
  /** Paths looked for and not found while compiling (a stage module found elsewhere). */
  absent: string[];
  /** The `--set` overrides it was compiled with, as given (each run records them). */
  sets: string[];
}
