// `npm run fuzz:specs`: every generated malformed spec (spec-cases.ts) through `pipeline validate`
// in one workspace, two at a time. Each must end in a clear error: exit 2, every problem a
// `file:line:col` line or one `pipeline:` line, no stack trace, within 30 s.
//   FUZZ_SEED (default 1), FUZZ_PER_KIND (default 20).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateCases, MODULES, type SpecCase } from './spec-cases.ts';

const CLI = fileURLToPath(new URL('../../bin/pipeline.js', import.meta.url));
const TIMEOUT_MS = 30_000;

export type Verdict = 'clear' | 'stack' | 'hang' | 'accepted';

export interface Outcome {
  c: SpecCase;
  verdict: Verdict;
  code: number | null;
  stderr: string;
}

/** A workspace holding the stage modules the cases name. */
export function fuzzWorkspace(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pipeline-fuzz-'));
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  for (const [p, text] of Object.entries(MODULES)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
  return dir;
}

export function judge(code: number | null, stderr: string, timedOut: boolean): Verdict {
  if (timedOut) return 'hang';
  if (code === 0) return 'accepted';
  if (code !== 2 || /^\s+at |internal error|Error: /m.test(stderr)) return 'stack';
  const lines = stderr.trim().split('\n');
  const clear = lines.length > 0 && lines.every((l) => /^\S+\.yaml:\d+:\d+: .+: ./.test(l) || /^pipeline: ./.test(l) || /^\d+ problems? in the spec$/.test(l) || /^cache: /.test(l) || /^\s*$/.test(l) || /^ {2}\S/.test(l) || /^Usage: |^Runs every stage|^Named stages|^\s+-/.test(l));
  return clear ? 'clear' : 'stack';
}

export async function runCase(dir: string, c: SpecCase, i: number): Promise<Outcome> {
  const file = `case-${i}.yaml`;
  writeFileSync(join(dir, file), c.spec);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'validate', file, ...(c.args ?? [])], { cwd: dir, env: { ...process.env, CI: 'true', PIPELINE_MODULE_LOAD_TIMEOUT_MS: '10000' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ c, verdict: judge(code, stderr, timedOut), code, stderr });
    });
  });
}

export async function runCases(cases: SpecCase[], concurrency = 2): Promise<Outcome[]> {
  const dir = fuzzWorkspace();
  try {
    const out: Outcome[] = new Array(cases.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < cases.length) {
          const i = next++;
          out[i] = await runCase(dir, cases[i]!, i);
        }
      }),
    );
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function summary(outcomes: Outcome[]): string {
  const n = (v: Verdict) => outcomes.filter((o) => o.verdict === v).length;
  return `specs: ${outcomes.length} generated, ${n('clear')} clear errors, ${n('stack')} stack traces, ${n('hang')} hangs, ${n('accepted')} accepted-invalid`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const seed = Number(process.env.FUZZ_SEED ?? 1);
  const perKind = Number(process.env.FUZZ_PER_KIND ?? 20);
  const cases = generateCases(seed, perKind);
  const t0 = Date.now();
  const outcomes = await runCases(cases);
  const byKind = new Map<string, Outcome[]>();
  for (const o of outcomes) byKind.set(o.c.kind, [...(byKind.get(o.c.kind) ?? []), o]);
  for (const [kind, os] of byKind) {
    const bad = os.filter((o) => o.verdict !== 'clear');
    process.stderr.write(`${kind.padEnd(24)} ${os.length - bad.length}/${os.length} clear\n`);
    for (const o of bad.slice(0, 3)) process.stderr.write(`  ${o.verdict} (exit ${o.code}): ${JSON.stringify(o.c.spec.slice(0, 120))} ${o.c.args?.join(' ') ?? ''}\n    ${o.stderr.trim().split('\n').slice(0, 4).join('\n    ')}\n`);
  }
  process.stderr.write(`seed ${seed}, ${perKind} per kind, ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  const line = summary(outcomes);
  process.stdout.write(`${line}\n`);
  process.exitCode = outcomes.every((o) => o.verdict === 'clear') ? 0 : 1;
}
