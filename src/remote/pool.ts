// Bounded concurrency for transfers: many requests in flight hide a round trip's latency, but a
// remote (and this machine's cores) serve only so many at once.

/** Files moved at once by default: enough to hide a round trip's latency, few enough for one NIC. */
export const TRANSFER_JOBS = 16;

/** A gate letting at most `n` tasks run at once (tasks may be added while others run). */
export function limiter(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: Array<() => void> = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    // A finishing task hands its place to the next in line, so no newcomer slips in between.
    if (running >= n) await new Promise<void>((r) => waiting.push(r));
    else running++;
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}

/** Runs `work` on each item, at most `limit` at once; the first failure is thrown once all have settled. */
export async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { e: unknown } | undefined;
  const lane = async () => {
    while (next < items.length && !failure) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (e) {
        failure ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure.e;
}
