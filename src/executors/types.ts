// How a stage's run is carried out sits behind this one interface: in this process, in a child
// process, or as a cluster job. A job is plain data (JSON), so it can travel to another machine.

export interface StageJob {
  stageId: string;
  kind: 'module' | 'command';
  /** Module stages: absolute path of the stage module's source, and of its compiled ESM file. */
  module?: string;
  compiled?: string;
  /** Command stages: the resolved argument list, or one shell line. */
  argv?: string[];
  shell?: boolean;
  params: Record<string, unknown>;
  inputs: Record<string, string | string[]>;
  /** Inputs read from other stages, each path labelled with the stage variant that wrote it. */
  variants: Record<string, InputVariant[]>;
  /** Output name -> absolute path the stage must create. */
  outputs: Record<string, string>;
  workDir: string;
  checkpointDir: string;
  workspace: string;
  seed: number;
  /** The spec's `env:` and the variables the stage's shell line reads, resolved (both in its key). */
  env: Record<string, string>;
  /** `passEnv:`: names (or `PREFIX_*`) of the caller's variables passed through, not keyed. */
  passEnv: string[];
  /** Where the stage's log goes (stdout and stderr for commands and child processes). */
  logFile: string;
  resources: Record<string, unknown>;
  /** The cache's root folder: inputs under it are other stages' outputs. */
  storeRoot: string;
}

/** One path of an input that another stage (a variant of a sweep, say) produced. */
export interface InputVariant {
  /** The producing stage's id, e.g. `train[mode=joint,w3=0.001]`. */
  stage: string;
  /** Its matrix values (empty for a stage without a matrix). */
  matrix: Record<string, unknown>;
  path: string;
}

export interface JobEvents {
  /** fraction in [0, 1] when known; message: a short line for the stage's progress display. */
  progress(fraction: number | undefined, message?: string): void;
  /** A line for the run's console. */
  notice?(message: string): void;
}

export interface Executor {
  readonly name: string;
  /** Resolves when the stage succeeded; rejects with a StageFailure (or is aborted by signal). */
  run(job: StageJob, events: JobEvents, signal: AbortSignal): Promise<void>;
}

export class StageFailure extends Error {
  constructor(message: string, readonly exitCode?: number) {
    super(message);
    this.name = 'StageFailure';
  }
}

/** A stage stopped because the disk holding the cache filled up (its log could not be written). */
export class DiskFull extends StageFailure {}
