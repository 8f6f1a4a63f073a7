// `npm run bench:remote`: push and pull of the quickstart's cache to a real S3 server on 127.0.0.1
// (s3rver), against rclone (Debian's) copying the same files to the same server with as many
// transfers at once; the two sides alternate in rounds (this machine is noisy) and each round uses
// a fresh prefix, so every push sends everything and every pull fetches everything. Then a push
// with nothing new, for a cache of 1,000 stage runs: whole process, median of the rounds.
//   BENCH_CACHE (default: <repo>/cache, the quickstart's; run it first if empty), BENCH_ROUNDS (5),
//   BENCH_STAGES (1000), BENCH_JOBS (16: files at once, both tools).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startS3 } from '../test/helpers/s3.ts';
import { median, range } from './stats.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'bin', 'pipeline.js');
const CACHE = process.env.BENCH_CACHE ?? join(ROOT, 'cache');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const STAGES = Number(process.env.BENCH_STAGES ?? 1000);
const JOBS = Number(process.env.BENCH_JOBS ?? 16);

const log = (s: string) => process.stderr.write(`${s}\n`);

/** Runs a command to its end and returns its wall time; `env` values of undefined are unset. */
function timed(cmd: string, args: string[], env: Record<string, string | undefined> = {}, cwd = ROOT): number {
  const full: Record<string, string | undefined> = { ...process.env, CI: 'true', ...env };
  for (const [k, v] of Object.entries(full)) if (v === undefined) delete full[k];
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: full, maxBuffer: 1 << 26 });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return s;
}

/** Bytes under the cache folders a push sends (objects, manifests, runs, logs). */
function sentBytes(cache: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  for (const dir of ['objects', 'manifests', 'runs', 'logs']) {
    const root = join(cache, dir);
    if (!existsSync(root)) continue;
    for (const e of readdirSync(root, { recursive: true, withFileTypes: true })) {
      if (!e.isFile() || (dir === 'logs' && e.parentPath !== root)) continue;
      bytes += statSync(join(e.parentPath, e.name)).size;
      files++;
    }
  }
  return { bytes, files };
}

if (!existsSync(join(CACHE, 'runs')) || !readdirSync(join(CACHE, 'runs')).length) {
  log(`${CACHE} holds no runs: running the quickstart first (npm run pipeline -- run pipelines/quickstart.yaml)`);
  timed(process.execPath, [CLI, 'run', 'pipelines/quickstart.yaml', '--cache-dir', CACHE]);
}
if (spawnSync('rclone', ['version']).status !== 0) {
  log('rclone is missing: installing Debian\'s (apt-get install rclone)');
  spawnSync('bash', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone'], { stdio: 'inherit' });
}
const rcloneVersion = spawnSync('rclone', ['version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? '?';

const { bytes, files } = sentBytes(CACHE);
log(`cache ${CACHE}: ${files} files, ${(bytes / 1e6).toFixed(1)} MB; ${ROUNDS} rounds, ${JOBS} transfers at once; ${rcloneVersion}`);
// s3rver as it is (the tests' signature-checking front would add its own cost to every figure).
const s3 = await startS3(['ours', 'theirs'], false);
const work = mkdtempSync(join(tmpdir(), 'bench-remote-'));
try {
  // A workspace holding the remote's config (the cache is given by --cache-dir).
  const ws = join(work, 'ws');
  mkdirSync(ws);
  const rcloneEnv = {
    RCLONE_CONFIG_S3_TYPE: 's3',
    RCLONE_CONFIG_S3_PROVIDER: 'Other',
    RCLONE_CONFIG_S3_ENDPOINT: s3.endpoint,
    RCLONE_CONFIG_S3_ACCESS_KEY_ID: s3.env.AWS_ACCESS_KEY_ID!,
    RCLONE_CONFIG_S3_SECRET_ACCESS_KEY: s3.env.AWS_SECRET_ACCESS_KEY!,
    RCLONE_CONFIG_S3_REGION: 'us-east-1',
    RCLONE_CONFIG_S3_FORCE_PATH_STYLE: 'true',
    // The server is plain http: a CA bundle the machine names for AWS only makes rclone's SDK fail.
    AWS_CA_BUNDLE: undefined,
  };
  const rclone = (...args: string[]) => timed('rclone', [...args, '--transfers', String(JOBS), '--checkers', String(JOBS), '--s3-upload-cutoff', '16M', '--s3-chunk-size', '8M', '--fast-list'], rcloneEnv);
  const ours = (...args: string[]) => timed(process.execPath, [CLI, ...args, '-C', ws, '--jobs', String(JOBS)], s3.env);
  const filter = ['--include', '/objects/**', '--include', '/manifests/**', '--include', '/runs/**', '--include', '/logs/*.log'];

  const push: number[] = [];
  const pull: number[] = [];
  const rpush: number[] = [];
  const rpull: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const prefix = `r${r}`;
    timed(process.execPath, [CLI, 'remote', 'add', prefix, `s3://ours/${prefix}`, '--endpoint', s3.endpoint, '-C', ws]);
    const oursRound = () => {
      push.push(ours('push', '--cache-dir', CACHE, '--remote', prefix));
      const fresh = join(work, `pulled-${r}`);
      pull.push(ours('pull', '--cache-dir', fresh, '--remote', prefix));
      rmSync(fresh, { recursive: true, force: true });
    };
    const theirsRound = () => {
      rpush.push(rclone('copy', CACHE, `s3:theirs/${prefix}`, ...filter));
      const fresh = join(work, `rcloned-${r}`);
      rpull.push(rclone('copy', `s3:theirs/${prefix}`, fresh));
      rmSync(fresh, { recursive: true, force: true });
    };
    // Alternating which goes first.
    if (r % 2) {
      theirsRound();
      oursRound();
    } else {
      oursRound();
      theirsRound();
    }
    const mb = bytes / 1e6;
    log(`round ${r + 1}: push ${(mb / push.at(-1)!).toFixed(1)} MB/s (rclone ${(mb / rpush.at(-1)!).toFixed(1)}), pull ${(mb / pull.at(-1)!).toFixed(1)} MB/s (rclone ${(mb / rpull.at(-1)!).toFixed(1)})`);
  }
  const rate = (xs: number[]) => xs.map((s) => bytes / 1e6 / s);
  const pushRatio = push.map((s, i) => rpush[i]! / s);
  const pullRatio = pull.map((s, i) => rpull[i]! / s);
  log(`push ${median(rate(push)).toFixed(1)} MB/s [${range(rate(push), 1)}], rclone ${median(rate(rpush)).toFixed(1)} MB/s [${range(rate(rpush), 1)}]; ours/rclone ${median(pushRatio).toFixed(2)}x [${range(pushRatio, 2)}]`);
  log(`pull ${median(rate(pull)).toFixed(1)} MB/s [${range(rate(pull), 1)}], rclone ${median(rate(rpull)).toFixed(1)} MB/s [${range(rate(rpull), 1)}]; ours/rclone ${median(pullRatio).toFixed(2)}x [${range(pullRatio, 2)}]`);

  // A push with nothing new, for a cache of STAGES runs: a spec of that many small stages, run once.
  const big = join(work, 'many');
  mkdirSync(big);
  writeFileSync(join(big, 'package.json'), '{"type":"module"}\n');
  const lines = ['name: many', 'executor: inline', 'stages:'];
  for (let s = 0; s < STAGES; s++) lines.push(`  s${s}:`, `    uses: ${join(ROOT, 'bench', 'step-stage.ts')}`, `    params: { layer: 0, index: ${s} }`, '    inputs: { from: [p.yaml] }');
  writeFileSync(join(big, 'p.yaml'), `${lines.join('\n')}\n`);
  log(`running a spec of ${STAGES} stages once (for the no-op push)`);
  timed(process.execPath, [CLI, 'run', 'p.yaml', '-C', big], {}, big);
  timed(process.execPath, [CLI, 'remote', 'add', 'origin', 's3://ours/many', '--endpoint', s3.endpoint, '-C', big]);
  timed(process.execPath, [CLI, 'push', '-C', big], s3.env);
  const noop: number[] = [];
  const noopSpec: number[] = [];
  const bare: number[] = [];
  for (let r = 0; r < 7; r++) {
    noop.push(timed(process.execPath, [CLI, 'push', '-C', big], s3.env));
    noopSpec.push(timed(process.execPath, [CLI, 'push', 'p.yaml', '-C', big], s3.env));
    bare.push(timed(process.execPath, ['-e', '']));
  }
  log(`no-op push of ${STAGES} runs (whole process, median of 7): ${median(noop).toFixed(3)} s [${range(noop)}]; with the spec (unchanged since its run: its keys from the no-op snapshot): ${median(noopSpec).toFixed(3)} s [${range(noopSpec)}]; node start-up alone ${median(bare).toFixed(3)} s`);
  process.stdout.write(`remote: push ${median(rate(push)).toFixed(1)} MB/s (rclone ${median(rate(rpush)).toFixed(1)} MB/s), pull ${median(rate(pull)).toFixed(1)} MB/s (rclone ${median(rate(rpull)).toFixed(1)} MB/s), no-op push ${median(noop).toFixed(2)} s\n`);
} finally {
  await s3.stop();
  rmSync(work, { recursive: true, force: true });
}
