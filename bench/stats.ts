// Summaries of repeated measurements for the benchmarks: the median and the range over rounds
// (this machine is noisy; one-shot figures mislead).

/** The median (the upper one of an even count). */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** "min-max" with `digits` decimals. */
export const range = (xs: number[], digits = 3): string => `${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}`;

/** "median [min-max]" with `digits` decimals and an optional unit. */
export const summary = (xs: number[], digits = 2, unit = ''): string => `${median(xs).toFixed(digits)}${unit} [${range(xs, digits)}${unit}]`;
