// Model selection over epochs: the epoch with the highest dev mean CCC so far is the one kept (its
// weights, its predictions). Ties keep the earlier epoch; a NaN score never wins. (The shape is
// the one checkpoints store.)
export interface Best {
  /** 0-based epoch, -1 before any. */
  epoch: number;
  ccc: number;
}

export const NO_BEST: Best = { epoch: -1, ccc: -Infinity };

/** The best after `epoch` scored `ccc`, and whether that epoch is the new best. */
export function offerEpoch(best: Best, epoch: number, ccc: number): { best: Best; improved: boolean } {
  if (ccc > best.ccc) return { best: { epoch, ccc }, improved: true };
  return { best, improved: false };
}
