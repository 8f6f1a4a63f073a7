// twin-train's checkpoint: what a killed training run resumes from. After each epoch the stage saves
// the weights, the optimizer's moments and step, the learned RUWL weights, the best epoch so far
// and the metrics written so far, with the best epoch's files (weights, predictions) beside them:
//
//   <checkpointDir>/checkpoint.json   {epoch, best, manifest, s, opt: {step, names, sizes}}
//   <checkpointDir>/weights.bin       the model's weights (float32, the manifest's order)
//   <checkpointDir>/optimizer.bin     each variable's two moments, back to back, in opt.names order
//   <checkpointDir>/metrics.jsonl     the epochs done
//   <checkpointDir>/model.bin, model.json, predictions.json   the best epoch's files
//
// A save is written beside and renamed in, so a kill part-way leaves the previous checkpoint whole.
// A checkpoint that does not hold together (sizes that disagree, JSON that does not parse) is not
// resumed from: the run starts over rather than train on garbage.
import { existsSync, readFileSync } from 'node:fs';
import { constants, copyFile, link, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isRecord } from '../../src/records.ts';
import type { Best } from './selection.ts';

/** The best epoch's files in the output (what a resume must not lose). */
export const BEST_FILES = ['model.bin', 'model.json', 'predictions.json'];

export interface Checkpoint {
  /** The last finished epoch (0-based). */
  epoch: number;
  best: Best;
  /** The model's weight manifest (the model reads it back; opaque here). */
  manifest: unknown;
  weights: Float32Array;
  /** RUWL's learned weights, when the mode learns them. */
  s?: number[];
  /** The optimizer's step count. */
  step: number;
  /** The optimizer's two moments by variable name, in a fixed order. */
  moments: Array<[name: string, first: Float32Array, second: Float32Array]>;
}

/**
 * Saves a checkpoint after an epoch. `out` is the stage's output folder: its metrics.jsonl is
 * copied, and its best files too when this epoch is the new best (`improved`); otherwise they are
 * carried over from the previous checkpoint by link (never linked to the output, whose files then
 * stay single-linked).
 */
export async function saveCheckpoint(dir: string, c: Checkpoint, out: string, improved: boolean): Promise<void> {
  const mom = new Float32Array(c.moments.reduce((a, [, m]) => a + 2 * m.length, 0));
  let o = 0;
  for (const [, first, second] of c.moments) {
    mom.set(first, o);
    mom.set(second, o + first.length);
    o += 2 * first.length;
  }
  const tmp = `${dir}.tmp`;
  await rm(tmp, { recursive: true, force: true }); // what a save killed part-way left
  await mkdir(tmp, { recursive: true });
  await writeFile(join(tmp, 'weights.bin'), new Uint8Array(c.weights.buffer, c.weights.byteOffset, c.weights.byteLength));
  await writeFile(join(tmp, 'optimizer.bin'), new Uint8Array(mom.buffer));
  await writeFile(join(tmp, 'metrics.jsonl'), readFileSync(join(out, 'metrics.jsonl')));
  for (const f of BEST_FILES) {
    if (improved) {
      if (existsSync(join(out, f))) await copyFile(join(out, f), join(tmp, f), constants.COPYFILE_FICLONE);
    } else if (existsSync(join(dir, f))) await link(join(dir, f), join(tmp, f)).catch(() => copyFile(join(dir, f), join(tmp, f)));
  }
  const opt = { step: c.step, names: c.moments.map(([n]) => n), sizes: c.moments.map(([, m]) => m.length) };
  await writeFile(join(tmp, 'checkpoint.json'), JSON.stringify({ epoch: c.epoch, best: c.best, manifest: c.manifest, s: c.s, opt }));
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
}

/** A Float32Array over a file's bytes, or undefined when its length is not whole floats. */
function floats(path: string): Float32Array | undefined {
  const b = readFileSync(path);
  return b.length % 4 ? undefined : new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** The checkpoint read back, or why it cannot be resumed from. */
function readCheckpoint(dir: string): Checkpoint | string {
  let c: unknown;
  try {
    c = JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8'));
  } catch (e) {
    return `checkpoint.json cannot be read (${(e as Error).message})`;
  }
  if (!isRecord(c) || !isCount(c.epoch) || !isRecord(c.best) || typeof c.best.epoch !== 'number' || (typeof c.best.ccc !== 'number' && c.best.ccc !== null) || !isRecord(c.opt)) return 'checkpoint.json is not a checkpoint';
  const { step, names, sizes } = c.opt;
  if (!isCount(step) || !Array.isArray(names) || !Array.isArray(sizes) || names.length !== sizes.length || !names.every((n) => typeof n === 'string') || !sizes.every(isCount)) return 'checkpoint.json: its optimizer state is not {step, names, sizes}';
  if (c.s !== undefined && !(Array.isArray(c.s) && c.s.every((x) => typeof x === 'number'))) return 'checkpoint.json: s is not a list of numbers';
  if (!existsSync(join(dir, 'metrics.jsonl'))) return 'metrics.jsonl is missing';
  const weights = existsSync(join(dir, 'weights.bin')) ? floats(join(dir, 'weights.bin')) : undefined;
  const mom = existsSync(join(dir, 'optimizer.bin')) ? floats(join(dir, 'optimizer.bin')) : undefined;
  if (!weights) return 'weights.bin is missing or cut short';
  const total = (sizes as number[]).reduce((a, b) => a + 2 * b, 0);
  if (!mom || mom.length !== total) return `optimizer.bin holds ${mom?.length ?? 0} numbers, the checkpoint says ${total}`;
  const moments: Checkpoint['moments'] = [];
  let o = 0;
  (names as string[]).forEach((name, i) => {
    const n = (sizes as number[])[i]!;
    moments.push([name, mom.slice(o, o + n), mom.slice(o + n, o + 2 * n)]);
    o += 2 * n;
  });
  // No epoch scored yet (NaN scores): the best score was -Infinity, which JSON wrote as null.
  const best = { ...c.best, ccc: c.best.ccc ?? -Infinity } as unknown as Best;
  return { epoch: c.epoch, best, manifest: c.manifest, weights, s: c.s as number[] | undefined, step, moments };
}

export interface Resumed {
  checkpoint: Checkpoint;
  /** The last epoch's training loss (from the metrics carried over), or null. */
  lastLoss: number | null;
}

/**
 * The checkpoint a killed attempt left, with the output folder put back as it was at that epoch
 * (metrics.jsonl and the best epoch's files); undefined when there is none. A damaged one is
 * reported through `damaged` and not used.
 */
export async function resumeCheckpoint(dir: string, out: string, damaged: (why: string) => void): Promise<Resumed | undefined> {
  if (!existsSync(join(dir, 'checkpoint.json'))) return undefined;
  const c = readCheckpoint(dir);
  if (typeof c === 'string') {
    damaged(c);
    return undefined;
  }
  // The best epoch's files, kept with the checkpoint: a resumed run that finds nothing better still has them.
  for (const f of BEST_FILES) if (existsSync(join(dir, f))) await copyFile(join(dir, f), join(out, f), constants.COPYFILE_FICLONE);
  const done = readFileSync(join(dir, 'metrics.jsonl'), 'utf8');
  await writeFile(join(out, 'metrics.jsonl'), done);
  let lastLoss: number | null = null;
  try {
    const last = JSON.parse(done.trim().split('\n').pop() || 'null') as { loss?: unknown } | null;
    lastLoss = typeof last?.loss === 'number' ? last.loss : null;
  } catch {
    // a metrics line that does not parse: the loss is not known, the training still resumes
  }
  return { checkpoint: c, lastLoss };
}
