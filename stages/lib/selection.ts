// Model selection over epochs: the epoch with the highest dev mean CCC so far is the one kept (its
// weights, its predictions). Ties keep the earlier epoch; a NaN score never wins. (The shape is
// the one checkpoints store.)
import { createHash } from 'node:crypto';

export interface Best {
  /** 0-based epoch, -1 before any. */
  epoch: number;
  /** Mean dev CCC on the clips that pick the epoch (all dev clips, or the selection half). */
  ccc: number;
  /** With `selectOn: half`: the same epoch's mean CCC on the other half, the honest score. */
  heldout?: number;
}

export const NO_BEST: Best = { epoch: -1, ccc: -Infinity };

/** The best after `epoch` scored `ccc`, and whether that epoch is the new best. */
export function offerEpoch(best: Best, epoch: number, ccc: number): { best: Best; improved: boolean } {
  if (ccc > best.ccc) return { best: { epoch, ccc }, improved: true };
  return { best, improved: false };
}

/**
 * `selectOn: half`: a fixed half of the dev clips picks the best epoch and the other half gives the
 * final score, so that the score is not the maximum of the same noisy numbers it was chosen by.
 * The half is decided by each clip's id alone (a hash bit): the same for every model and seed, so
 * comparisons between them stay paired.
 */
export function inSelectionHalf(clipId: string): boolean {
  return (createHash('sha256').update(clipId).digest()[0]! & 1) === 0;
}
