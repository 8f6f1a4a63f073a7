// `npm run bench:slurm`: what running on Slurm costs over the local executor, submit to finish, for a
// chain of 5 trivial stages and for one stage swept over 16 variants (one job array). Each side runs
// in a fresh workspace and cache (everything stale), the two sides alternate round by round (this
// machine is noisy), and the median and range are reported. Needs a cluster: starts the local one
// (`npm run slurm:up`) when none answers and this is root.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, summary } from './stats.ts';

const ROOT = join(import.meta.dirname, '..');
const CLI = join(ROOT, 'bin', 'pipeline.js');
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const log = (s: string) => process.stderr.write(`${s}\n`);

const CHAIN = `stages:
${[1, 2, 3, 4, 5].map((i) => `  s${i}:
    run: [sh, -c, 'echo ${i} ${i > 1 ? '| cat - "$1" ' : ''}> "$0"', '\${outputs.o}'${i > 1 ? `, '\${stages.s${i - 1}.outputs.o}'` : ''}]
    outs: { o: null }`).join('\n')}
`;
const ARRAY = `stages:
  sweep:
    matrix: { i: [${Array.from({ length: 16 }, (_, i) => i).join(', ')}] }
    run: [sh, -c, 'echo $1 > "$0"', '\${outputs.o}', '\${matrix.i}']
    outs: { o: null }
`;

function clusterUp(): boolean {
  return spawnSync('sh', ['-c', 'sinfo -h -o %t 2>/dev/null | grep -Eq "idle|mix|alloc"']).status === 0;
}

/** Seconds from `pipeline run` to its exit, everything stale. */
function once(spec: string, executor: 'slurm' | 'process'): number {
  const dir = mkdtempSync(join(tmpdir(), 'bench-slurm-'));
  try {
    writeFileSync(join(dir, 'p.yaml'), spec);
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [CLI, 'run', 'p.yaml', '--executor', executor], { cwd: dir, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
    const s = (performance.now() - t0) / 1000;
    if (r.status !== 0) throw new Error(`${executor} run failed:\n${r.stdout}${r.stderr}`);
    return s;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (xs: number[]) => summary(xs, 2, ' s');

if (!clusterUp()) {
  log('no Slurm cluster answers: starting the local one (npm run slurm:up)');
  const r = spawnSync('bash', [join(ROOT, 'scripts', 'slurm', 'up.sh')], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) process.exit(1);
}
const cpus = spawnSync('sinfo', ['-h', '-o', '%c'], { encoding: 'utf8' }).stdout.trim();
log(`Slurm ${spawnSync('sinfo', ['-V'], { encoding: 'utf8' }).stdout.trim()}, one node with ${cpus} CPUs; ${ROUNDS} rounds, sides alternating`);
const t = { chainSlurm: [] as number[], chainLocal: [] as number[], arraySlurm: [] as number[], arrayLocal: [] as number[] };
once(CHAIN, 'process'); // warm the disk cache and the bundle
for (let i = 0; i < ROUNDS; i++) {
  const order = i % 2 ? (['process', 'slurm'] as const) : (['slurm', 'process'] as const);
  for (const ex of order) (ex === 'slurm' ? t.chainSlurm : t.chainLocal).push(once(CHAIN, ex));
  for (const ex of order) (ex === 'slurm' ? t.arraySlurm : t.arrayLocal).push(once(ARRAY, ex));
  log(`round ${i + 1}: chain slurm ${t.chainSlurm.at(-1)!.toFixed(2)} s, local ${t.chainLocal.at(-1)!.toFixed(2)} s; array slurm ${t.arraySlurm.at(-1)!.toFixed(2)} s, local ${t.arrayLocal.at(-1)!.toFixed(2)} s`);
}
log(`chain of 5:  slurm ${fmt(t.chainSlurm)}, local ${fmt(t.chainLocal)}: ${((median(t.chainSlurm) - median(t.chainLocal)) / 5).toFixed(2)} s more per stage`);
log(`array of 16: slurm ${fmt(t.arraySlurm)}, local ${fmt(t.arrayLocal)}: ${((median(t.arraySlurm) - median(t.arrayLocal)) / 16).toFixed(2)} s more per variant`);
console.log(`slurm: chain of 5 ${median(t.chainSlurm).toFixed(2)} s (local ${median(t.chainLocal).toFixed(2)} s), array of 16 ${median(t.arraySlurm).toFixed(2)} s (local ${median(t.arrayLocal).toFixed(2)} s)`);
