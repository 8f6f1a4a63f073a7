// `npm run mutate`: StrykerJS over the core, area by area (AREAS below: each module is checked
// against its own area's fast unit tests only, so a mutant costs seconds, and a module counts as
// tested only by tests written for it), then, from the reports:
//   mutation score S% (killed K, survived V, timeout T, no coverage C) over F files
//   unexplained: U of V + C mutants that no test kills (test/reliability/equivalent-mutants.tsv explains E)
// and each unexplained one by file, line, mutator and replacement. A mutant no test kills is either
// a hole to close with a test, or written down in equivalent-mutants.tsv with why no test can tell
// it from the original (same behaviour, or a difference only in speed).
// Too slow for every submission: run it when the core changes (one file: `-- --mutate <file>`).
// `-- --summary`: no run; the figures over every file measured so far (the incremental reports).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/**
 * Stryker's incremental report, one per area (areas may run at once; each keeps its files' last
 * results). Tracked in git, not under the ignored reports/: a measurement takes hours, so a fresh
 * clone must be able to show the score (`--summary`) and to go on from it, rerunning only mutants
 * whose code or tests changed since.
 */
const areaIncremental = (area: string) => `${ROOT}test/reliability/mutation/incremental-${area}.json`;
const EXPLAINED = `${ROOT}test/reliability/equivalent-mutants.tsv`;
/** Declarations of untyped packages the project's modules import. */
const VENDOR_TYPES = ['src/vendor.d.ts', 'stages/lib/vendor.d.ts'];

/**
 * The core by area: the modules mutated and the fast tests that check them (stryker.config.json has
 * the rest). timeoutMS: the pure areas' tests take seconds, so a mutant that loops forever (`i++` ->
 * `i--`) is given up on sooner than the 30 s the engine areas need.
 */
export const AREAS: Array<{ area: string; mutate: string[]; tests: string[]; timeoutMS?: number; isolated?: boolean }> = [
  { area: 'cache', mutate: ['src/cache/hash.ts', 'src/cache/fingerprint.ts', 'src/cache/digests.ts', 'src/cache/store.ts', 'src/cache/objects.ts', 'src/cache/views.ts', 'src/cache/runs.ts', 'src/cache/entries.ts'], tests: ['test/units-cache.test.ts', 'test/units-engine.test.ts', 'test/units-cache-records.test.ts', 'test/units-cache-objects.test.ts', 'test/units-remote.test.ts'] },
  { area: 'spec', mutate: ['src/spec/compile.ts', 'src/spec/references.ts', 'src/spec/shell.ts', 'src/spec/duration.ts'], tests: ['test/units-spec.test.ts', 'test/units-compile.test.ts', 'test/units-compile-variants.test.ts'] },
  { area: 'run', mutate: ['src/run/plan.ts', 'src/run/scheduler.ts'], tests: ['test/units-scheduler.test.ts', 'test/units-slurm.test.ts'] },
  { area: 'remote', mutate: ['src/remote/remote.ts', 'src/remote/folder.ts', 'src/remote/pack.ts', 'src/remote/damage.ts', 'src/remote/config.ts', 'src/remote/trust.ts', 'src/remote/push.ts', 'src/remote/pull.ts', 'src/remote/verify.ts'], tests: ['test/units-remote.test.ts', 'test/units-remote-push.test.ts', 'test/units-remote-verify.test.ts', 'test/units-remote-trust.test.ts', 'test/units-remote-pull.test.ts', 'test/units-remote-folder.test.ts', 'test/units-remote-config.test.ts'], timeoutMS: 20_000 },
  { area: 'experiments', mutate: ['src/experiments/collect.ts', 'src/experiments/render.ts'], tests: ['test/units-experiments.test.ts', 'test/units-experiments-views.test.ts', 'test/units-metric-direction.test.ts'], timeoutMS: 15_000 },
  // Isolated: its code kills processes by group and by environment tag, and a mutant of the tag
  // match (tags.ts) finds every process on the machine and SIGKILLs it (it ended the shell running
  // the measurement, twice). Its run gets a PID namespace of its own, where only its processes are seen.
  { area: 'executors', mutate: ['src/executors/process.ts', 'src/executors/groups.ts', 'src/executors/tags.ts', 'src/executors/environment.ts', 'src/executors/log.ts', 'src/executors/inline.ts', 'src/executors/index.ts'], tests: ['test/units-executors.test.ts'], isolated: true },
  { area: 'data', mutate: ['stages/lib/exvo.ts'], tests: ['test/units-data.test.ts'], timeoutMS: 10_000 },
  { area: 'evaluation', mutate: ['stages/lib/stats.ts', 'stages/lib/selection.ts', 'stages/lib/tf/data-parallel.ts:138-158'], tests: ['test/units-evaluation.test.ts', 'test/units-sign-flip-24.test.ts'], timeoutMS: 10_000 },
  { area: 'features', mutate: ['stages/lib/wav.ts', 'stages/lib/logmel.ts'], tests: ['test/features-wav.test.ts', 'test/features-wav-peers.test.ts', 'test/features-logmel.test.ts'], timeoutMS: 10_000 },
  { area: 'distortions', mutate: ['stages/lib/distort.ts'], tests: ['test/features-distort.test.ts', 'test/features-distort-views.test.ts'], timeoutMS: 10_000 },
  { area: 'training', mutate: ['stages/lib/checkpoint.ts'], tests: ['test/training-checkpoint.test.ts'], timeoutMS: 10_000 },
  { area: 'losses', mutate: ['stages/lib/losses.ts'], tests: ['test/training-losses.test.ts'], timeoutMS: 10_000 },
];

/** The file of a mutate entry (`file` or `file:lines`). */
export const fileOf = (entry: string) => entry.split(':')[0]!;
const inArea = (a: (typeof AREAS)[number], entry: string) => a.mutate.some((m) => fileOf(m) === fileOf(entry));

/** What to mutate in each area: all of it, or the files (or `file:lines`) asked for that belong to it. */
export function areaRuns(asked: string[] | undefined): Array<(typeof AREAS)[number]> {
  const runs = AREAS.map((a) => ({ ...a, mutate: asked ? asked.filter((f) => inArea(a, f)) : a.mutate }));
  const unknown = (asked ?? []).filter((f) => !AREAS.some((a) => inArea(a, f)));
  if (unknown.length) throw new Error(`not in any area of test/reliability/mutate.ts: ${unknown.join(', ')}`);
  return runs.filter((r) => r.mutate.length);
}

interface Position {
  line: number;
  column: number;
}
interface Mutant {
  status: string;
  mutatorName: string;
  replacement?: string;
  location: { start: Position; end: Position };
}
interface Report {
  files: Record<string, { source: string; mutants: Mutant[] }>;
}

/** The summary line of a Stryker JSON report. */
export function scoreLine(report: Report): string {
  const n: Record<string, number> = {};
  for (const f of Object.values(report.files)) for (const m of f.mutants) n[m.status] = (n[m.status] ?? 0) + 1;
  const [killed, survived, timeout, noCoverage] = [n.Killed ?? 0, n.Survived ?? 0, n.Timeout ?? 0, n.NoCoverage ?? 0];
  const valid = killed + survived + timeout + noCoverage;
  const score = valid ? (100 * (killed + timeout)) / valid : 0;
  return `mutation score ${score.toFixed(1)}% (killed ${killed}, survived ${survived}, timeout ${timeout}, no coverage ${noCoverage}) over ${Object.keys(report.files).length} files`;
}

const collapse = (s: string) => s.replace(/\s+/g, ' ').trim();

/** A location as 0-based [start line, start column, end line, end column] (the report's are 1-based, the end exclusive). */
const bounds = (loc: Mutant['location']) => [loc.start.line - 1, loc.start.column - 1, loc.end.line - 1, loc.end.column - 1] as const;

/** The code a mutant replaced. */
export function originalText(source: string, loc: Mutant['location']): string {
  const lines = source.split('\n');
  const [sl, sc, el, ec] = bounds(loc);
  if (sl === el) return lines[sl]!.slice(sc, ec);
  return [lines[sl]!.slice(sc), ...lines.slice(sl + 1, el), lines[el]!.slice(0, ec)].join('\n');
}

/**
 * A mutant's identity that survives edits elsewhere in its file: file, mutator, the line(s) it is on
 * with the code it replaced marked ⟦so⟧ (two mutants of the same token on different lines stay
 * apart), and the replacement. An edit of that line asks for the explanation to be checked again.
 */
export function mutantKey(file: string, m: Mutant, source: string): string {
  const lines = source.split('\n');
  const [sl, sc, el, ec] = bounds(m.location);
  const marked = `${lines[sl]!.slice(0, sc)}⟦${originalText(source, m.location)}⟧${lines[el]!.slice(ec)}`;
  return [file, m.mutatorName, collapse(marked), collapse(m.replacement ?? '')].join('\t');
}

/** equivalent-mutants.tsv: `file  mutator  line-with-⟦original⟧  replacement  why` per line (tabs; # comments). */
export function readExplained(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const cols = line.split('\t');
    if (cols.length !== 5 || !cols[4]!.trim()) throw new Error(`equivalent-mutants.tsv: each line needs file, mutator, the line with the ⟦original⟧ marked, replacement and a reason, tab-separated: ${line.slice(0, 80)}`);
    out.set(cols.slice(0, 4).join('\t'), cols[4]!);
  }
  return out;
}

/** The mutants no test kills that the explanations do not cover, and how many they cover. */
export function unexplained(report: Report, explained: Map<string, string>): { open: Array<{ file: string; m: Mutant; key: string }>; covered: number } {
  const open: Array<{ file: string; m: Mutant; key: string }> = [];
  let covered = 0;
  for (const [file, f] of Object.entries(report.files)) {
    for (const m of f.mutants.filter((x) => x.status === 'Survived' || x.status === 'NoCoverage')) {
      const key = mutantKey(file, m, f.source);
      if (explained.has(key)) covered++;
      else open.push({ file, m, key });
    }
  }
  return { open, covered };
}

/** The measured files whose code has changed since (their figures describe code that is gone). */
export function staleFiles(report: Report, read: (file: string) => string | undefined): string[] {
  return Object.entries(report.files).filter(([file, f]) => read(file) !== f.source).map(([file]) => file).sort();
}

/** Every file measured so far, as last measured: each area's own files from its report. */
function measured(): Report {
  const read = (f: string) => (existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Report).files : {});
  const files: Report['files'] = {};
  for (const a of AREAS) {
    const own = new Set(a.mutate.map(fileOf));
    for (const [f, v] of Object.entries(read(areaIncremental(a.area)))) if (own.has(f)) files[f] = v;
  }
  return { files };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const summary = args.includes('--summary');
  const at = args.indexOf('--mutate');
  const asked = at >= 0 ? args[at + 1]!.split(',') : undefined;
  const passOn = args.filter((a, i) => !['--summary', '--keys', '--mutate'].includes(a) && !(at >= 0 && i === at + 1));
  const files = new Set<string>();
  if (!summary) {
    const base = JSON.parse(readFileSync(`${ROOT}stryker.config.json`, 'utf8')) as { tap: Record<string, unknown> };
    mkdirSync(`${ROOT}reports/mutation`, { recursive: true });
    mkdirSync(`${ROOT}test/reliability/mutation`, { recursive: true });
    for (const run of areaRuns(asked)) {
      process.stderr.write(`mutate: area ${run.area}: ${run.mutate.join(', ')} against ${run.tests.join(', ')}\n`);
      const config = `${ROOT}reports/mutation/stryker-${run.area}.json`;
      const incremental = areaIncremental(run.area);
      // The checker's program is the area's modules and tests and what they import, not the whole
      // project: it rebuilds that program for every group of mutants, and over all 1,200 files of
      // the project (tfjs's types among them) that cost about three times the tests' own time. The
      // mutated modules are named, not only reached: the checker watches root files only. Beside
      // tsconfig.json (whose options it extends).
      // The ambient declarations of untyped packages are named too (a program of root files only
      // would not see them, and an import of hash-wasm's file fails the checker's dry run).
      const tsconfig = `tsconfig.mutate-${run.area}.json`;
      writeFileSync(`${ROOT}${tsconfig}`, JSON.stringify({ extends: './tsconfig.json', include: [], files: [...new Set([...VENDOR_TYPES, ...run.mutate.map(fileOf), ...run.tests])] }, null, 2));
      writeFileSync(config, JSON.stringify({ ...base, $schema: undefined, mutate: run.mutate, tap: { ...base.tap, testFiles: run.tests }, tsconfigFile: tsconfig, incrementalFile: incremental, ...(run.timeoutMS ? { timeoutMS: run.timeoutMS } : {}) }, null, 2));
      const stryker = [process.execPath, `${ROOT}node_modules/@stryker-mutator/core/bin/stryker.js`, 'run', config, ...passOn];
      // A PID namespace of its own (util-linux unshare; root or user namespaces): /proc and kill()
      // reach only the run's own processes. bash is its process 1: it reaps the orphans the tests
      // leave (node would not, and a zombie still answers kill(pid, 0)).
      const cmd = run.isolated ? ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child', 'bash', '-c', '"$@"; exit $?', 'bash', ...stryker] : stryker;
      if (run.isolated && spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status !== 0) {
        process.stderr.write(`mutate: area ${run.area} must run in a PID namespace of its own (its mutants can signal every process it sees), and \`unshare --pid --fork --mount-proc\` does not work here (as root, or with user namespaces enabled): skipped\n`);
        rmSync(`${ROOT}${tsconfig}`, { force: true });
        continue;
      }
      const r = spawnSync(cmd[0]!, cmd.slice(1), { cwd: ROOT, stdio: 'inherit' });
      rmSync(`${ROOT}${tsconfig}`, { force: true });
      if (r.status !== 0) process.exit(r.status ?? 1);
      for (const f of run.mutate) files.add(fileOf(f));
    }
  }
  const all = measured();
  const report: Report = summary ? all : { files: Object.fromEntries(Object.entries(all.files).filter(([f]) => files.has(f))) };
  const { open, covered } = unexplained(report, readExplained(readFileSync(EXPLAINED, 'utf8')));
  for (const { file, m, key } of open.sort((a, b) => a.file.localeCompare(b.file) || a.m.location.start.line - b.m.location.start.line)) {
    process.stderr.write(`${m.status.padEnd(10)} ${file}:${m.location.start.line} ${m.mutatorName}${m.replacement ? ` -> ${collapse(m.replacement).slice(0, 60)}` : ''}\n`);
    if (args.includes('--keys')) process.stderr.write(`  ${key}\t\n`);
  }
  process.stdout.write(`${scoreLine(report)}\n`);
  process.stdout.write(`unexplained: ${open.length} of ${open.length + covered} mutants that no test kills (test/reliability/equivalent-mutants.tsv explains ${covered})\n`);
  const stale = staleFiles(report, (f) => (existsSync(`${ROOT}${f}`) ? readFileSync(`${ROOT}${f}`, 'utf8') : undefined));
  if (stale.length) process.stdout.write(`stale: ${stale.length} of ${Object.keys(report.files).length} files changed since measured (npm run mutate -- --mutate FILE): ${stale.join(', ')}\n`);
}
