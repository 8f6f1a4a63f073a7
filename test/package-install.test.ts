// The tool as a user installs it: `npm pack`, `npm install <tarball>` into an empty folder, the
// package then read-only (run as another user when the test runs as root, where modes do not
// bind), and a project outside the repository made by `pipeline init` run end to end: built-in
// stages named by package name, a user stage importing 'rrtn-pipeline', a command stage, the
// log-mel WASM kernel, `exp show`. Nothing may be written into the installed package.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers/workspace.ts';

/** Every path under a folder with its size and mtime: a write anywhere changes it. */
function listing(dir: string): string[] {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .sort()
    .map((f) => {
      const st = statSync(join(dir, f));
      return `${f} ${st.isDirectory() ? 'd' : st.size} ${st.mtimeMs}`;
    });
}

test('npm pack + npm install gives a working, read-only `pipeline` for a project outside the repository', { timeout: 300_000 }, (t) => {
  const base = mkdtempSync(join(tmpdir(), 'pipeline-install-'));
  t.after(() => {
    spawnSync('chmod', ['-R', 'u+w', base]); // a read-only install must still be removable
    rmSync(base, { recursive: true, force: true });
  });
  chmodSync(base, 0o755);
  const pkgDir = join(base, 'pkg');
  const proj = join(base, 'proj');
  mkdirSync(pkgDir);
  mkdirSync(proj);

  // The tarball: the engine prebuilt, no tests or benchmarks.
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', pkgDir], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as Array<{ filename: string; size: number; files: Array<{ path: string }> }>;
  const files = packed[0]!.files.map((f) => f.path);
  for (const want of ['bin/pipeline.js', 'dist/cli.mjs', 'dist/worker.mjs', 'dist/reaper.mjs', 'dist/stage-api.mjs', 'schemas/pipeline.schema.json', 'stages/exvo.ts', 'stages/lib/wasm/logmel_kernel.wasm', 'src/stage-api.ts', 'package.json', 'README.md', 'LICENSE']) {
    assert.ok(files.includes(want), `the tarball has ${want}`);
  }
  assert.deepEqual(files.filter((f) => /^(test|bench|cache|reports|node_modules)\//.test(f)), [], 'no tests, benchmarks or caches in the tarball');
  // A budget that catches tests, caches or data slipping in (megabytes), not the engine's growth: 380 KB
  // before trust round 4 (signatures, remote verify, nested shells: +35 KB, the bundle unminified).
  assert.ok(packed[0]!.size < 450_000, `tarball ${packed[0]!.size} bytes`);
  const pkgJson = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; private?: boolean };
  assert.equal(pkgJson.private, undefined, 'publishable');

  writeFileSync(join(proj, 'package.json'), '{"name":"proj","private":true,"type":"module"}\n');
  const install = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(pkgDir, packed[0]!.filename)], { cwd: proj, encoding: 'utf8' });
  assert.equal(install.status, 0, install.stderr);
  const installed = join(proj, 'node_modules', 'rrtn-pipeline');
  const before = listing(installed);

  // Read-only for whoever runs it: modes for a normal user; root ignores modes, so then the CLI
  // runs as `nobody`, who cannot write there.
  const asRoot = process.getuid?.() === 0;
  if (!asRoot) execFileSync('chmod', ['-R', 'a-w', installed]);
  const work = join(base, 'work');
  mkdirSync(work);
  chmodSync(work, 0o777);
  const cli = join(proj, 'node_modules', '.bin', 'pipeline');
  const runWith = (path: string | undefined, cwd: string, ...args: string[]) => {
    const cmd = asRoot ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, cli, ...args] : [process.execPath, cli, ...args];
    const env: Record<string, string | undefined> = { ...process.env, HOME: work, CI: 'true', ...(path === undefined ? {} : { PATH: path }) };
    delete env.PIPELINE_CACHE_DIR;
    const r = spawnSync(cmd[0]!, cmd.slice(1), { cwd, encoding: 'utf8', env, timeout: 120_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const run = (cwd: string, ...args: string[]) => runWith(undefined, cwd, ...args);

  assert.equal(run(work, '--version').out.trim(), pkgJson.version);
  assert.match(run(work, 'help', 'run').out, /^Usage: pipeline run <spec>/);
  const init = run(work, 'init', 'exp');
  assert.equal(init.code, 0, init.err);
  // A local install: `pipeline` alone is not a command there; on PATH (a global install), it is.
  assert.match(init.out, /wrote pipeline\.yaml[\s\S]*Next: cd exp && npx pipeline run pipeline\.yaml/);
  const onPath = runWith(`${join(proj, 'node_modules', '.bin')}:${process.env.PATH}`, work, 'init', 'my exp');
  assert.equal(onPath.code, 0, onPath.err);
  assert.match(onPath.out, /Next: cd 'my exp' && pipeline run pipeline\.yaml/);
  const exp = join(work, 'exp');
  assert.match(readFileSync(join(exp, 'pipeline.yaml'), 'utf8'), /uses: rrtn-pipeline\/stages\/exvo\.ts/);
  assert.match(readFileSync(join(exp, 'stages', 'summary.ts'), 'utf8'), /from 'rrtn-pipeline'/);
  // The project lives outside proj/: it gets the installed node_modules, as `npm install` in it would.
  execFileSync('ln', ['-s', join(proj, 'node_modules'), join(exp, 'node_modules')]);

  const r = run(exp, 'run', 'pipeline.yaml');
  assert.equal(r.code, 0, `${r.out}\n${r.err}`);
  assert.match(r.out, /my-experiment: 4 stages: 4 done/);
  const report = readFileSync(join(exp, 'results', 'report.md'), 'utf8');
  const metrics = JSON.parse(/```json\n([\s\S]*?)\n```/.exec(report)![1]!) as { clips: number; mean_Amusement: number };
  assert.equal(metrics.clips, 60);
  assert.ok(metrics.mean_Amusement > 0 && metrics.mean_Amusement < 1, "metrics.mean_Amusement > 0 && metrics.mean_Amusement < 1");
  const show = run(exp, 'exp', 'show', 'pipeline.yaml', '--json');
  assert.equal(show.code, 0, show.err);
  assert.deepEqual((JSON.parse(show.out) as { rows: Array<{ stage: string; metrics: unknown }> }).rows.map((x) => [x.stage, x.metrics]), [['summary', metrics]]);

  // The log-mel stage (its WASM kernel lives in the package) by package name, in the process executor.
  writeFileSync(join(exp, 'feat.yaml'), `stages:
  corpus:
    uses: rrtn-pipeline/stages/synth-vocal-bursts.ts
    params: { clips: 12 }
  dataset:
    uses: rrtn-pipeline/stages/exvo.ts
    inputs: { corpus: "\${stages.corpus.outputs.corpus}" }
  features:
    uses: rrtn-pipeline/stages/logmel.ts
    inputs: { dataset: "\${stages.dataset.outputs.dataset}" }
    outs: { features: results/features }
`);
  chmodSync(join(exp, 'feat.yaml'), 0o666);
  const f = run(exp, 'run', 'feat.yaml');
  assert.equal(f.code, 0, `${f.out}\n${f.err}`);
  assert.ok(readdirSync(join(exp, 'results', 'features')).length > 0, "readdirSync(join(exp, 'results', 'features')).length > 0");
  const rerun = run(exp, 'run', 'feat.yaml');
  assert.match(rerun.out, /3 cached/);

  assert.deepEqual(listing(installed), before, 'nothing was written into the installed package');
});
