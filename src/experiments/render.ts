// `pipeline exp show` and `exp diff` as text: an aligned table (the best value of each metric
// marked *), Markdown, CSV, or JSON for scripts.
import { printable } from '../text.ts';
import type { ExpRow, ExpTable } from './collect.ts';

export type ExpFormat = 'table' | 'md' | 'csv' | 'json';

function num(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : Math.abs(v) >= 1e-3 && Math.abs(v) < 1e6 ? v.toFixed(4).replace(/0+$/, '').replace(/\.$/, '') : v.toExponential(3);
  if (v === undefined || v === null) return '-';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The columns shown: run, stage, date, varying params, metrics (constant ones left out with onlyChanged). */
function columns(t: ExpTable, onlyChanged: boolean): { params: string[]; metrics: string[] } {
  const metrics = onlyChanged ? t.metrics.filter((m) => new Set(t.rows.map((r) => r.metrics[m])).size > 1) : t.metrics;
  return { params: t.params, metrics };
}

/** Where a run's params came from: the spec as written, or the --set values it ran with. */
function origin(r: ExpRow): string {
  if (r.sets === null) return '?';
  if (!r.sets.length) return 'spec';
  const text = r.sets.map((s) => `--set ${s}`).join(' ');
  return text.length > 48 ? `${text.slice(0, 45)}...` : text;
}

export function renderShow(t: ExpTable, rows: ExpRow[], format: ExpFormat, onlyChanged: boolean): string {
  const { params, metrics } = columns(t, onlyChanged);
  if (format === 'json') return `${JSON.stringify({ ...t, rows, metrics }, null, 2)}\n`;
  // Every cell made printable: names and values may come from records pulled from a remote, whose
  // control characters would otherwise act on the terminal (draw a fake row, recolour the table).
  const head = ['run', 'stage', 'date', 'from', 'commit', ...params, ...metrics, rows.some((r) => r.running) ? 'changed since / progress' : 'changed since'].map(printable);
  const cells = rows.map((r) => [
    `${r.id}${r.names.length ? ` [${r.names.join(', ')}]` : ''}${r.running ? ' (running)' : r.current ? '' : ' (past)'}`,
    r.stage,
    r.committedAt.slice(0, 16).replace('T', ' '),
    origin(r),
    r.git ? `${r.git.commit.slice(0, 7)}${r.git.dirty ? ' (dirty)' : ''}` : '-',
    ...params.map((p) => num(r.params[p])),
    ...metrics.map((m) => `${num(r.metrics[m])}${format !== 'csv' && t.best[m] === r.id ? ' *' : ''}`),
    r.progress ?? (r.changed.length ? `${r.changed.slice(0, 3).map((c) => (c.length > 60 ? `${c.slice(0, 57)}...` : c)).join('; ')}${r.changed.length > 3 ? `; +${r.changed.length - 3} more` : ''}` : ''),
  ].map(printable));
  if (format === 'csv') {
    const q = (raw: string) => {
      const s = printable(raw);
      return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
    };
    const csvHead = ['run', 'key', 'stage', 'current', 'committed_at', 'sets', 'git_commit', 'git_dirty', 'names', ...params, ...metrics];
    const csvRows = rows.map((r) => [r.id, r.key, r.stage, String(r.current), r.committedAt, r.sets === null ? '' : JSON.stringify(r.sets), r.git?.commit ?? '', r.git ? String(r.git.dirty) : '', r.names.join(' '), ...params.map((p) => (r.params[p] === undefined ? '' : typeof r.params[p] === 'string' ? (r.params[p] as string) : JSON.stringify(r.params[p]))), ...metrics.map((m) => (r.metrics[m] === undefined ? '' : String(r.metrics[m])))]);
    return `${[csvHead, ...csvRows].map((l) => l.map(q).join(',')).join('\n')}\n`;
  }
  if (!rows.length) return `${t.spec}: no recorded runs of a stage with metrics (declare \`metrics:\` on a stage and run the spec)\n`;
  const note = `${rows.length} run${rows.length === 1 ? '' : 's'} of ${t.spec}; * best (${metrics.map((m) => `${m} ${t.direction[m] === 'max' ? 'higher' : 'lower'}`).join(', ') || 'no metrics'})`;
  if (format === 'md') {
    const esc = (s: string) => s.replace(/\|/g, '\\|');
    return `| ${head.map(esc).join(' | ')} |\n|${head.map(() => ' --- |').join('')}\n${cells.map((c) => `| ${c.map(esc).join(' | ')} |`).join('\n')}\n\n${note}\n`;
  }
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((s, i) => (i === c.length - 1 ? s : s.padEnd(w[i]!))).join('  ').trimEnd();
  return `${[line(head), ...cells.map(line)].join('\n')}\n${note}\n`;
}

export interface ExpDiff {
  a: Pick<ExpRow, 'id' | 'key' | 'stage' | 'committedAt'>;
  b: Pick<ExpRow, 'id' | 'key' | 'stage' | 'committedAt'>;
  params: Array<{ name: string; a: unknown; b: unknown }>;
  metrics: Array<{ name: string; a: number | null; b: number | null; delta: number | null; better: 'a' | 'b' | null }>;
  /** What else differs (code, inputs, upstream, env), as `status` says it. */
  other: string[];
}

export function diffRows(t: ExpTable, a: ExpRow, b: ExpRow, other: string[]): ExpDiff {
  const pick = (r: ExpRow) => ({ id: r.id, key: r.key, stage: r.stage, committedAt: r.committedAt });
  const names = [...new Set([...Object.keys(a.params), ...Object.keys(b.params)])];
  const params = names.filter((n) => JSON.stringify(a.params[n] ?? null) !== JSON.stringify(b.params[n] ?? null)).map((name) => ({ name, a: a.params[name] ?? null, b: b.params[name] ?? null }));
  const metrics = [...new Set([...Object.keys(a.metrics), ...Object.keys(b.metrics)])].map((name) => {
    const x = a.metrics[name] ?? null;
    const y = b.metrics[name] ?? null;
    const delta = x !== null && y !== null ? y - x : null;
    const dir = t.direction[name] ?? 'max';
    const better = delta === null || delta === 0 ? null : (delta > 0) === (dir === 'max') ? 'b' : 'a';
    return { name, a: x, b: y, delta, better } as const;
  });
  return { a: pick(a), b: pick(b), params, metrics: metrics.filter((m) => m.a !== m.b), other };
}

export function renderDiff(d: ExpDiff, json: boolean): string {
  if (json) return `${JSON.stringify(d, null, 2)}\n`;
  const lines = [`a: ${d.a.id} ${d.a.stage} (${d.a.committedAt.slice(0, 16).replace('T', ' ')})`, `b: ${d.b.id} ${d.b.stage} (${d.b.committedAt.slice(0, 16).replace('T', ' ')})`];
  const table = (head: string[], rows: string[][]) => {
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    return [head, ...rows].map((r) => r.map((s, i) => s.padEnd(w[i]!)).join('  ').trimEnd());
  };
  lines.push('', ...(d.params.length ? table(['param', 'a', 'b'], d.params.map((p) => [p.name, num(p.a), num(p.b)])) : ['params: the same']));
  const sign = (v: number | null) => (v === null ? '-' : `${v > 0 ? '+' : ''}${num(v)}`);
  lines.push('', ...(d.metrics.length ? table(['metric', 'a', 'b', 'b - a', 'better'], d.metrics.map((m) => [m.name, num(m.a), num(m.b), sign(m.delta), m.better ?? '-'])) : ['metrics: the same']));
  if (d.other.length) lines.push('', 'also differs:', ...d.other.map((o) => `  ${o}`));
  return `${lines.map(printable).join('\n')}\n`;
}
