// Time limits (`resources.time`), in Slurm's forms and short suffixed ones:
//   "30" (minutes), "30:00" (MM:SS), "1:30:00" (HH:MM:SS), "2-12", "2-12:30", "2-12:30:00",
//   and "90s", "30m", "2h", "1d" (also fractions: "1.5h").
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds, or undefined for a string in none of the forms (or a zero/negative time). */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  let ms: number | undefined;
  const suffixed = /^(\d+(?:\.\d+)?)\s*([smhd])$/i.exec(t);
  if (suffixed) ms = Number(suffixed[1]) * UNIT_MS[suffixed[2]!.toLowerCase()]!;
  else {
    const m = /^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$/.exec(t);
    if (!m) return undefined;
    const [, days, a, b, c] = m;
    const n = (x: string | undefined) => (x === undefined ? 0 : Number(x));
    if (days !== undefined) ms = ((n(days) * 24 + n(a)) * 60 + n(b)) * 60_000 + n(c) * 1000; // D-HH[:MM[:SS]]
    else if (c !== undefined) ms = ((n(a) * 60 + n(b)) * 60 + n(c)) * 1000; // HH:MM:SS
    else if (b !== undefined) ms = (n(a) * 60 + n(b)) * 1000; // MM:SS
    else ms = n(a) * 60_000; // minutes
  }
  return ms > 0 && Number.isFinite(ms) ? ms : undefined;
}

/** A limit as people read it: 90 s, 30 min, 2 h 5 min. */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 120) return `${m} min`;
  return `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ''}`;
}
