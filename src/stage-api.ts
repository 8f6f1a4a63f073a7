// The API a stage module is written against. A stage module's default export is
// `defineStage({...})`; the engine imports it at run time (no build step) and calls `run(ctx)`.
// Keep heavy imports (TensorFlow.js, ...) inside `run`, so validating a spec stays fast.
import { Random } from './random.ts';

export type JsonSchema = Record<string, unknown>;

export interface StageLogger {
  info(message: string): void;
  warn(message: string): void;
}

export interface StageContext<P = Record<string, unknown>> {
  /** The stage's id in the spec (with its matrix values, e.g. `train[mode=ruwl]`). */
  stageId: string;
  /** Resolved params: spec values, references substituted, schema defaults filled in. */
  params: P;
  /** Input name -> path (a list for inputs that gather several, e.g. every variant of a sweep). */
  inputs: Record<string, string | string[]>;
  /**
   * Inputs other stages wrote, labelled: input name -> one entry per path, in the order of
   * `inputs`, with the producing stage's id and matrix values. A stage gathering a sweep reads
   * which variant each path is (`{ stage: 'train[mode=joint]', matrix: { mode: 'joint' }, path }`).
   */
  variants: Record<string, Array<{ stage: string; matrix: Record<string, unknown>; path: string }>>;
  /** Output name -> path the stage must create (a file or a folder). Private until the stage succeeds. */
  outputs: Record<string, string>;
  /** A scratch folder, removed after the stage. */
  workDir: string;
  /**
   * A folder that survives a failed or killed attempt of this very stage (same cache key) and is
   * removed once it succeeds: for checkpoints, so a rerun resumes instead of starting over.
   */
  checkpointDir: string;
  /** The workspace root (read-only by convention). */
  workspace: string;
  seed: number;
  random: Random;
  log: StageLogger;
  /** Reports progress: fraction in [0, 1] and an optional short message for the stage's line. */
  progress(fraction: number, message?: string): void;
  /** A line the user must see on the run's console (and in the log): e.g. how many rows were skipped. */
  notice(message: string): void;
  /** Aborted on Ctrl-C or when the run stops; long loops should check it. */
  signal: AbortSignal;
  /**
   * Puts a file into an output unchanged: hardlinked when it comes from another stage's output
   * (already in the cache, no bytes copied), copied otherwise (a reflink where the filesystem
   * offers one), so the cache never shares an inode with a user's own files.
   */
  importFile(src: string, dest: string): Promise<void>;
  /**
   * The compiled JavaScript file of this stage module. A stage can start worker threads on it
   * (`new Worker(ctx.modulePath, { workerData })`) and run its worker code when `workerData` says so.
   */
  modulePath: string;
}

export interface StageDefinition<P = Record<string, unknown>> {
  description?: string;
  /** JSON Schema of the stage's params; the spec is checked against it before anything runs. */
  params: JsonSchema;
  /** Names of the outputs `run` writes under ctx.outputs. */
  outputs: readonly string[];
  /** Names of the inputs the stage expects (checked against the spec when given). */
  inputs?: readonly string[];
  /**
   * Facts outside code, params and inputs that change the stage's results (e.g. the compute
   * backend a training stage will pick). They join the stage's fingerprint.
   */
  fingerprint?(params: P): Record<string, unknown> | Promise<Record<string, unknown>>;
  /** A text file inside an output (`output/path`) that `pipeline run` prints at the end: a headline. */
  summary?: string;
  run(ctx: StageContext<P>): void | Promise<void>;
}

export const STAGE_MARK = Symbol.for('rrtn-pipeline.stage');

export function defineStage<P = Record<string, unknown>>(def: StageDefinition<P>): StageDefinition<P> {
  return Object.assign(def, { [STAGE_MARK]: true });
}

export function isStageDefinition(v: unknown): v is StageDefinition<unknown> {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[STAGE_MARK] === true;
}

export { Random };
