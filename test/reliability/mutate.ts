// `npm run mutate`: StrykerJS over the core's pure modules (stryker.config.json lists them and the
// fast unit tests each is checked by), then one line from its JSON report:
//   mutation score S% (killed K, survived V, timeout T, no coverage C) over F files
// Too slow for every submission: run it when the core changes (one file: `-- --mutate <file>`).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const REPORT = `${ROOT}reports/mutation/mutation.json`;

interface Report {
  files: Record<string, { mutants: Array<{ status: string; mutatorName: string; replacement?: string; location: { start: { line: number } } }> }>;
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

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = spawnSync(process.execPath, [`${ROOT}node_modules/@stryker-mutator/core/bin/stryker.js`, 'run', ...process.argv.slice(2)], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
  const report = JSON.parse(readFileSync(REPORT, 'utf8')) as Report;
  for (const [file, f] of Object.entries(report.files)) {
    for (const m of f.mutants.filter((x) => x.status === 'Survived' || x.status === 'NoCoverage')) {
      process.stderr.write(`${m.status.padEnd(10)} ${file}:${m.location.start.line} ${m.mutatorName}${m.replacement ? ` -> ${m.replacement.replace(/\s+/g, ' ').slice(0, 60)}` : ''}\n`);
    }
  }
  process.stdout.write(`${scoreLine(report)}\n`);
}
